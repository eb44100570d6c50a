"""Credentials: generated once with `secrets`, never regenerated; a user's Secret is validated."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.resources.meta import ClusterRef

PASSWORD_BYTES = 24


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


def build_credentials_secret(ref: ClusterRef, values: Mapping[str, str]) -> dict[str, Any]:
    """A generated credentials Secret holding the given plain-text values."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": ref.metadata(c.credentials_secret_name(ref.name), component="credentials"),
        "stringData": dict(values),
    }
