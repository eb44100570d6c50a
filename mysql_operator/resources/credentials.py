"""Credentials: generated once with `secrets`, never regenerated; a user's Secret is validated."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec, PvcRetention
from mysql_operator.resources.meta import ClusterRef

PASSWORD_BYTES = 24
EXPORTER_CONFIG_KEY = "my.cnf"  # the file name the exporter sidecar reads (statefulset.py mounts it)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def required_keys(spec: MysqlClusterSpec) -> list[str]:
    keys = list(c.REQUIRED_SECRET_KEYS)
    if spec.application is not None:
        keys.append(c.KEY_APP_PASSWORD)
    if spec.monitoring.exporter:
        keys.append(c.KEY_EXPORTER_PASSWORD)
    return keys


def missing_keys(spec: MysqlClusterSpec, data: Mapping[str, str] | None) -> list[str]:
    """Keys the spec needs that the Secret's data lacks (or holds empty)."""
    present = data or {}
    return [key for key in required_keys(spec) if not present.get(key)]


def generated_values(spec: MysqlClusterSpec, data: Mapping[str, str] | None) -> dict[str, str]:
    """Plain-text values to add to a generated Secret, given its decoded data.

    Only what is missing: a password once generated is never regenerated.
    """
    values = {key: new_password() for key in missing_keys(spec, data)}
    present = data or {}
    if spec.application is not None:
        app = spec.application
        for key, wanted in ((c.KEY_APP_USER, app.user), (c.KEY_APP_DATABASE, app.database)):
            if present.get(key) != wanted:
                values[key] = wanted
    return values


def decode_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's base64 `data` as text."""
    return {key: base64.b64decode(value).decode() for key, value in (data or {}).items()}


def credentials_owned(spec: MysqlClusterSpec) -> bool:
    """Whether the generated credentials Secret goes with the cluster when it is deleted.

    Only when the volumes go too: retained volumes hold users whose passwords are in this Secret, and
    a cluster recreated with the same name finds and reuses it (never generating new passwords for
    old data)."""
    return spec.storage.pvc_retention == PvcRetention.DELETE


def build_credentials_secret(
    ref: ClusterRef, values: Mapping[str, str], owned: bool = True
) -> dict[str, Any]:
    """A generated credentials Secret holding the given plain-text values (owned by the cluster only
    when `owned`, see credentials_owned)."""
    metadata = ref.metadata(c.credentials_secret_name(ref.name), component="credentials")
    if not owned:
        del metadata["ownerReferences"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "stringData": dict(values),
    }


def left_by_another_incarnation(ref: ClusterRef, secret: Mapping[str, Any]) -> bool:
    """Whether a generated Secret belongs to a deleted cluster of the same name: owned by a
    MysqlCluster of another uid, not by this one, or already being deleted. The garbage collector
    removes it (its volumes went with that cluster), so its passwords must not be used: a cluster
    bootstrapped with them would lose them a moment later and generate others the data lacks."""
    metadata = secret.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return True
    refs = metadata.get("ownerReferences") or []
    ours = [r for r in refs
            if r.get("kind") == c.KIND and str(r.get("apiVersion", "")).startswith(c.API_GROUP)]
    return bool(ours) and not any(r.get("uid") == ref.uid for r in ours)


def owner_patch(ref: ClusterRef, secret: Mapping[str, Any], owned: bool) -> dict[str, Any] | None:
    """The metadata patch that makes a generated Secret owned (or not) as wanted; None when it is."""
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    has_owner = any(r.get("uid") == ref.uid for r in refs)
    if has_owner == owned:
        return None
    others = [r for r in refs if r.get("uid") != ref.uid]
    return {"metadata": {"ownerReferences": [*others, ref.owner_reference()] if owned else others or None}}


# Every password reaches an option file of some client (backup tools, seeding, the exporter): a
# control character would start a new line there. The exporter's reader (Go ini) has no escapes
# inside quotes, so its password may not hold a quote or backslash either.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPTION_FILE_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')


def unsafe_passwords(data: Mapping[str, str]) -> list[str]:
    """Keys of a credentials Secret whose value cannot be written safely into an option file."""
    return sorted(
        key
        for key, value in data.items()
        if key.endswith("-password")
        and (_OPTION_FILE_UNSAFE if key == c.KEY_EXPORTER_PASSWORD else _CONTROL).search(value)
    )


def exporter_option_file(password: str, *, tls: bool = False) -> str:
    """mysqld_exporter's --config.my-cnf: it reaches mysqld over the pod's own loopback. With `tls`
    (the server serves TLS) the connection is encrypted: `tls = preferred`, the go driver's mode
    (exporter 0.15+), as the DSN's `?tls=preferred` was before the option file. The connection never
    leaves the pod, so the certificate is not verified."""
    if _OPTION_FILE_UNSAFE.search(password):
        raise ValueError("the exporter password holds a control character, a quote or a backslash")
    text = (
        "[client]\n"
        f"user = {c.EXPORTER_USER}\n"
        f'password = "{password}"\n'
        "host = 127.0.0.1\n"
        f"port = {c.MYSQL_PORT}\n"
    )
    if tls:
        text += "tls = preferred\n"
    return text


def build_exporter_secret(ref: ClusterRef, spec: MysqlClusterSpec, password: str) -> dict[str, Any]:
    """The Secret mounted into the exporter sidecar (its option file); owned by the cluster."""
    text = exporter_option_file(password, tls=spec.tls.enabled)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": ref.metadata(c.exporter_secret_name(ref.name), component="monitoring"),
        "data": {EXPORTER_CONFIG_KEY: base64.b64encode(text.encode()).decode()},
    }
