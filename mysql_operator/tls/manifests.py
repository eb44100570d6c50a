"""The Secrets the operator writes for TLS, and cert-manager's Certificate when asked. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.tls.issue import server_names
from mysql_operator.tls.rotation import renew_before

CA_LIFETIME = timedelta(days=3650)
CERT_MANAGER_API = "cert-manager.io/v1"
COMPONENT = "tls"
TLS_VOLUME = "tls"  # the pod volume holding the server certificate Secret


class TlsSource:
    """Where the server certificate of a cluster comes from."""

    OPERATOR = "operator"
    SECRET = "secret"
    CERT_MANAGER = "cert-manager"


def tls_source(spec: MysqlClusterSpec) -> str:
    if spec.tls.secret_name:
        return TlsSource.SECRET
    if spec.tls.cert_manager is not None:
        return TlsSource.CERT_MANAGER
    return TlsSource.OPERATOR


def server_secret_name(spec: MysqlClusterSpec, cluster: str) -> str | None:
    """The Secret (ca.crt, tls.crt, tls.key) the pods mount, or None when TLS is off."""
    if not spec.tls.enabled:
        return None
    return spec.tls.secret_name or c.tls_secret_name(cluster)


def server_lifetime(spec: MysqlClusterSpec) -> timedelta:
    return timedelta(days=spec.tls.duration_days)


def wanted_names(spec: MysqlClusterSpec, ref: ClusterRef) -> tuple[str, ...]:
    """The names the cluster's server certificate must carry."""
    return server_names(ref.name, ref.namespace, spec.tls.additional_names)


def build_ca_secret(ref: ClusterRef, cert_pem: str, key_pem: str) -> dict[str, Any]:
    """The operator's CA of one cluster; the key never leaves this Secret (no pod mounts it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": ref.metadata(c.ca_secret_name(ref.name), component=COMPONENT),
        "stringData": {c.KEY_TLS_CA: cert_pem, c.KEY_CA_KEY: key_pem},
    }


def build_server_secret(ref: ClusterRef, ca_bundle: str, cert_pem: str, key_pem: str) -> dict[str, Any]:
    """The server certificate Secret the pods mount (kubernetes.io/tls, plus ca.crt)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": ref.metadata(c.tls_secret_name(ref.name), component=COMPONENT),
        "stringData": {c.KEY_TLS_CA: ca_bundle, c.KEY_TLS_CERT: cert_pem, c.KEY_TLS_KEY: key_pem},
    }


def _hours(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 3600)}h"


def build_certificate(ref: ClusterRef, spec: MysqlClusterSpec) -> dict[str, Any]:
    """cert-manager's Certificate for the cluster: it writes <cluster>-tls (with ca.crt from a CA
    issuer) and renews it a third of the lifetime before expiry, as the operator would."""
    manager = spec.tls.cert_manager
    if manager is None:
        raise ValueError("spec.tls.certManager is not set")
    names = wanted_names(spec, ref)
    lifetime = server_lifetime(spec)
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": ref.metadata(c.tls_secret_name(ref.name), component=COMPONENT),
        "spec": {
            "secretName": c.tls_secret_name(ref.name),
            "secretTemplate": {"labels": c.common_labels(ref.name, COMPONENT)},
            "commonName": c.primary_service_name(ref.name) + f".{ref.namespace}.svc",
            "dnsNames": [n for n in names if not _is_ip(n)],
            "ipAddresses": [n for n in names if _is_ip(n)],
            "duration": _hours(lifetime),
            "renewBefore": _hours(renew_before(lifetime)),
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature", "key encipherment"],
            "issuerRef": {
                "name": manager.issuer_ref.name,
                "kind": manager.issuer_ref.kind,
                "group": manager.issuer_ref.group,
            },
        },
    }


def _is_ip(name: str) -> bool:
    return ":" in name or name.replace(".", "").isdigit()


def pod_mounts_tls(pod: Mapping[str, Any]) -> bool:
    """Whether a pod was started with the server certificate Secret mounted (its mysqld serves TLS
    with the cluster's certificate); a pod from before TLS was turned on does not."""
    volumes = ((pod.get("spec") or {}).get("volumes")) or []
    return any(v.get("name") == TLS_VOLUME and "secret" in v for v in volumes)
