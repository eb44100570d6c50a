"""Act: make the owned objects of a cluster exist as built, idempotently (server-side apply)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec, check_update
from mysql_operator.kube import Kube
from mysql_operator.resources.config import build_config_map
from mysql_operator.resources.credentials import (
    build_credentials_secret,
    build_exporter_secret,
    credentials_owned,
    decode_secret_data,
    generated_values,
    left_by_another_incarnation,
    missing_keys,
    owner_patch,
    unsafe_passwords,
)
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.network_policy import build_network_policy
from mysql_operator.resources.services import (
    build_headless_service,
    build_pod_disruption_budget,
    build_primary_disruption_budget,
    build_primary_service,
    build_replicas_service,
)
from mysql_operator.resources.statefulset import build_statefulset, credentials_secret, statefulset_replicas


class InvalidSpec(Exception):
    """The spec cannot be acted on; the message says what to fix."""


def encode_accepted_spec(spec: MysqlClusterSpec) -> str:
    """status.acceptedSpec: the spec last acted on, as one JSON string (a merge patch replaces a
    string whole, where it would merge a nested object and keep keys the new spec dropped)."""
    return json.dumps(spec.wire(), sort_keys=True, separators=(",", ":"))


def accepted_spec(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec last accepted and acted on, from status (None before the first)."""
    text = status.get("acceptedSpec")
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_spec(raw: dict[str, Any], old_raw: dict[str, Any] | None = None) -> MysqlClusterSpec:
    """Validate a spec (and, on update, the transition from the old one) or raise InvalidSpec."""
    try:
        spec = MysqlClusterSpec.model_validate(raw)
    except ValidationError as error:
        problems = [
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else f"spec: {e['msg']}"
            for e in error.errors()
        ]
        raise InvalidSpec("; ".join(problems)) from None
    if old_raw:
        try:
            old = MysqlClusterSpec.model_validate(old_raw)
        except ValidationError:
            return spec  # the old spec was itself invalid: nothing to protect
        problems = check_update(old, spec)
        if problems:
            raise InvalidSpec("; ".join(problems))
    return spec


@dataclass
class CredentialsOutcome:
    secret: str
    ok: bool
    message: str
    created: bool = False
    added_keys: list[str] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict, repr=False)  # decoded: never log it


def ensure_credentials(kube: Kube, ref: ClusterRef, spec: MysqlClusterSpec) -> CredentialsOutcome:
    """Generate the credentials Secret once (adding only missing keys), or validate the user's.

    A generated Secret is owned by the cluster only when its volumes are deleted with it
    (credentials_owned): a cluster recreated on retained volumes finds the old passwords."""
    name = credentials_secret(spec, ref.name)
    existing = kube.get("v1", "Secret", ref.namespace, name)
    data = decode_secret_data(existing.get("data")) if existing else None
    if spec.credentials.secret_name:
        if existing is None:
            return CredentialsOutcome(name, False, f"Secret {name} not found")
        missing = missing_keys(spec, data)
        if missing:
            return CredentialsOutcome(name, False, f"Secret {name} lacks keys: {', '.join(missing)}")
        unsafe = unsafe_passwords(data or {})
        if unsafe:
            return CredentialsOutcome(
                name,
                False,
                f"Secret {name}: {', '.join(unsafe)} may not hold control characters, quotes "
                "or backslashes (they are written into option files)",
            )
        return CredentialsOutcome(name, True, f"using Secret {name}", data=dict(data or {}))
    owned = credentials_owned(spec)
    if existing is not None and left_by_another_incarnation(ref, existing):
        # A cluster deleted and re-created at once: remove the old incarnation's Secret now rather
        # than race the garbage collector, then generate this cluster's own.
        kube.delete("v1", "Secret", ref.namespace, name, uid=(existing.get("metadata") or {}).get("uid"))
        existing, data = None, None
    values = generated_values(spec, data)
    if existing is None:
        created = kube.create_if_absent(build_credentials_secret(ref, values, owned=owned))
        return CredentialsOutcome(name, True, f"generated Secret {name}", created=created, data=values)
    ownership = owner_patch(ref, existing, owned)
    if ownership:
        kube.merge_patch("v1", "Secret", ref.namespace, name, ownership)
    if values:
        # Add what a spec change needs (the application user); existing passwords are never touched.
        kube.merge_patch("v1", "Secret", ref.namespace, name, {"stringData": values})
        return CredentialsOutcome(
            name,
            True,
            f"added keys to Secret {name}",
            added_keys=sorted(values),
            data={**(data or {}), **values},
        )
    return CredentialsOutcome(name, True, f"using generated Secret {name}", data=dict(data or {}))


def owned_objects(
    ref: ClusterRef,
    spec: MysqlClusterSpec,
    primary_ordinal: int | None = None,
    credentials: Mapping[str, str] | None = None,
    cap: int | None = None,
) -> list[dict[str, Any]]:
    """Every object applied for a cluster except the credentials Secret, in apply order (`cap`: at
    most that many pods, see statefulset_replicas).

    The exporter's option-file Secret needs the exporter password (from `credentials`)."""
    objects = [build_config_map(ref, spec)]
    if spec.monitoring.exporter and credentials and credentials.get(c.KEY_EXPORTER_PASSWORD):
        objects.append(build_exporter_secret(ref, spec, credentials[c.KEY_EXPORTER_PASSWORD]))
    objects += [
        build_headless_service(ref),
        build_primary_service(ref, spec),
        build_replicas_service(ref),
        build_pod_disruption_budget(ref, spec),
        build_primary_disruption_budget(ref),
    ]
    if spec.network_policy.enabled:
        objects.append(build_network_policy(ref, spec))
    objects.append(build_statefulset(ref, spec, statefulset_replicas(spec, primary_ordinal, cap)))
    return objects


def primary_ordinal(pods: Iterable[Mapping[str, Any]]) -> int | None:
    """The ordinal of the pod labelled primary, if any (scale-down must not remove it)."""
    ordinals = [c.ordinal_of_pod(p["metadata"]["name"]) for p in pods
                if (p["metadata"].get("labels") or {}).get(c.LABEL_ROLE) == c.Role.PRIMARY.value]
    return max(ordinals) if ordinals else None


def apply_objects(
    kube: Kube,
    ref: ClusterRef,
    spec: MysqlClusterSpec,
    pods: Iterable[Mapping[str, Any]],
    logger: logging.Logger,
    credentials: Mapping[str, str] | None = None,
    cap: int | None = None,
) -> list[str]:
    """Apply every owned object; returns `Kind/name` of each. Idempotent.

    Everything but the StatefulSet goes concurrently (those objects do not depend on one another);
    the StatefulSet goes last, so its pods never start before their NetworkPolicy and Secrets."""
    manifests = owned_objects(ref, spec, primary_ordinal(pods), credentials, cap)
    _apply_concurrently(kube, manifests[:-1])
    kube.apply(manifests[-1])
    applied = [f"{m['kind']}/{m['metadata']['name']}" for m in manifests]
    if not spec.network_policy.enabled:
        kube.delete("networking.k8s.io/v1", "NetworkPolicy", ref.namespace, c.network_policy_name(ref.name))
    logger.info("applied %s", ", ".join(applied))
    return applied


def _apply_concurrently(kube: Kube, manifests: list[dict[str, Any]], dry_run: bool = False) -> None:
    if not manifests:
        return
    with ThreadPoolExecutor(max_workers=len(manifests)) as pool:
        list(pool.map(lambda manifest: kube.apply(manifest, dry_run=dry_run), manifests))


def dry_run_objects(
    kube: Kube, ref: ClusterRef, spec: MysqlClusterSpec, pods: Iterable[Mapping[str, Any]]
) -> None:
    """Have the apiserver validate every owned object without storing any (raises KubeError).

    Run before anything is created, so a spec the API would refuse (a 422 for a malformed
    toleration or affinity, a taken nodePort) creates nothing at all. Concurrent: nothing is stored."""
    _apply_concurrently(kube, owned_objects(ref, spec, primary_ordinal(pods)), dry_run=True)


def ready_instances(statefulset: Mapping[str, Any] | None) -> int:
    return int(((statefulset or {}).get("status") or {}).get("readyReplicas") or 0)
