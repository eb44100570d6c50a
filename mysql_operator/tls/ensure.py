"""Act: make a cluster's certificates exist and stay fresh; make running mysqld serve the current ones.

Observe (the Secrets, what each mysqld serves) -> decide (tls.rotation, pure) -> act (write Secrets,
apply cert-manager's Certificate, `ALTER INSTANCE RELOAD TLS` / `FLUSH SSL`). Runs from the
reconcile handler (so new pods find their Secret) and, throttled, from the topology loop (so a
certificate is re-issued before it expires even when nobody touches the cluster).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.kube import Kube, KubeError
from mysql_operator.mysql.actions import source_tls
from mysql_operator.mysql.dialect import Dialect
from mysql_operator.mysql.session import Session
from mysql_operator.resources.credentials import decode_secret_data
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.tls import rotation
from mysql_operator.tls.client import ClientTls
from mysql_operator.tls.issue import KeyPair, issue_ca, issue_server
from mysql_operator.tls.manifests import (
    CA_LIFETIME,
    TlsSource,
    build_ca_secret,
    build_certificate,
    build_server_secret,
    server_lifetime,
    server_secret_name,
    tls_source,
    wanted_names,
)

log = logging.getLogger(__name__)

SERVER_KEYS = (c.KEY_TLS_CA, c.KEY_TLS_CERT, c.KEY_TLS_KEY)


@dataclass(frozen=True)
class TlsOutcome:
    """What ensure_tls found or did; `ok` False means the pods cannot get their certificate yet."""

    ok: bool
    message: str
    issued: tuple[str, ...] = ()


def _write_secret(kube: Kube, manifest: dict[str, object], existing: Mapping[str, object] | None) -> None:
    values = manifest.pop("stringData")
    assert isinstance(values, dict)
    data = {k: base64.b64encode(str(v).encode()).decode() for k, v in values.items()}
    if existing is None:
        kube.create_if_absent({**manifest, "data": data})
    else:
        meta = manifest["metadata"]
        assert isinstance(meta, dict)
        kube.merge_patch("v1", "Secret", str(meta["namespace"]), str(meta["name"]), {"data": data})


def ensure_tls(kube: Kube, ref: ClusterRef, spec: MysqlClusterSpec, now: datetime) -> TlsOutcome:
    """Issue, re-issue or check the cluster's server certificate, per spec.tls. Never logs key material."""
    if not spec.tls.enabled:
        return TlsOutcome(True, "TLS is off")
    source = tls_source(spec)
    name = server_secret_name(spec, ref.name) or ""
    if source == TlsSource.CERT_MANAGER:
        try:
            kube.apply(build_certificate(ref, spec))
        except KubeError as error:
            if error.status not in (403, 404):
                raise  # the API server is busy: retried
            return TlsOutcome(False, f"cannot create the cert-manager Certificate {name} ({error}): "
                                     "is cert-manager installed, and may the operator create Certificates?")
    if source != TlsSource.OPERATOR:
        secret = kube.get("v1", "Secret", ref.namespace, name)
        data = decode_secret_data((secret or {}).get("data"))
        missing = [k for k in SERVER_KEYS if not data.get(k)]
        if secret is None:
            waiting = " (cert-manager has not written it yet)" if source == TlsSource.CERT_MANAGER else ""
            return TlsOutcome(False, f"TLS Secret {name} not found{waiting}")
        if missing:
            return TlsOutcome(False, f"TLS Secret {name} lacks keys: {', '.join(missing)}")
        return TlsOutcome(True, f"using TLS Secret {name}")
    return _ensure_operator_issued(kube, ref, spec, now)


def _ensure_operator_issued(kube: Kube, ref: ClusterRef, spec: MysqlClusterSpec, now: datetime) -> TlsOutcome:
    issued: list[str] = []
    ca_secret = kube.get("v1", "Secret", ref.namespace, c.ca_secret_name(ref.name))
    ca_data = decode_secret_data((ca_secret or {}).get("data"))
    ca = KeyPair(ca_data.get(c.KEY_TLS_CA, ""), ca_data.get(c.KEY_CA_KEY, ""))
    why_ca = rotation.ca_reissue_reason(ca.cert_pem, ca.key_pem, now)
    if why_ca:
        ca = issue_ca(ref.name, ref.namespace, now, CA_LIFETIME)
        _write_secret(kube, build_ca_secret(ref, ca.cert_pem, ca.key_pem), ca_secret)
        issued.append(f"CA ({why_ca})")
    server = kube.get("v1", "Secret", ref.namespace, c.tls_secret_name(ref.name))
    data = decode_secret_data((server or {}).get("data"))
    names = wanted_names(spec, ref)
    why = rotation.server_reissue_reason(data, ca.cert_pem, names, now)
    bundle = rotation.trust_bundle(ca.cert_pem, data.get(c.KEY_TLS_CA), now)
    if why:
        pair = issue_server(ca, names, now, server_lifetime(spec))
        _write_secret(kube, build_server_secret(ref, bundle, pair.cert_pem, pair.key_pem), server)
        issued.append(f"server certificate ({why})")
    elif bundle != data.get(c.KEY_TLS_CA):
        # An expired previous CA leaves the bundle; the certificate itself is still good.
        kept = build_server_secret(ref, bundle, data[c.KEY_TLS_CERT], data[c.KEY_TLS_KEY])
        _write_secret(kube, kept, server)
        issued.append("trust bundle")
    current = f"certificate in Secret {c.tls_secret_name(ref.name)} is current"
    message = f"issued {', '.join(issued)}" if issued else current
    return TlsOutcome(True, message, tuple(issued))


def read_server_secret(kube: Kube, spec: MysqlClusterSpec, cluster: str, namespace: str) -> dict[str, str]:
    """The decoded server certificate Secret ({} when TLS is off or it does not exist yet)."""
    name = server_secret_name(spec, cluster)
    if not name:
        return {}
    secret = kube.get("v1", "Secret", namespace, name)
    return decode_secret_data((secret or {}).get("data"))


def client_tls(
    server_secret: Mapping[str, str], cluster: str, namespace: str, ordinal: int
) -> ClientTls | None:
    """How the operator verifies instance `ordinal`: the cluster's CA bundle and the pod's DNS name."""
    ca = server_secret.get(c.KEY_TLS_CA)
    if not ca:
        return None
    return ClientTls(ca_pem=ca, server_name=c.pod_domain_name(cluster, namespace, ordinal))


def serves_current(session: Session, dialect: Dialect, cert_pem: str) -> bool:
    """Whether mysqld serves `cert_pem` (the Secret's certificate). On MariaDB the status is the
    session's own handshake: ask on a session opened after any reload."""
    row = session.query_one(dialect.served_certificate_query) or {}
    served = str(row.get("Value") or row.get("VALUE") or "")
    return not rotation.reload_needed(served, cert_pem)


def reload_if_stale(session: Session, dialect: Dialect, cert_pem: str) -> bool:
    """Make mysqld serve the certificate files anew when it serves another certificate than
    `cert_pem` (the Secret's). Whether a reload was issued. The files themselves are refreshed by
    kubelet; a reload before that is harmless and a later pass tries again."""
    if serves_current(session, dialect, cert_pem):
        return False
    session.execute(dialect.reload_tls)
    return True


def ensure_replication_tls(
    session: Session, dialect: Dialect, serves_tls: bool, tls_sources: Collection[str]
) -> str | None:
    """Bring an active replica's connection to its source in line with the cluster's TLS (a replica
    attached before TLS was turned on, or after it was turned off, keeps its old setting otherwise):
    TLS when this instance and its source (a host of `tls_sources`) were both started with the
    certificate. Returns what was changed, or None. A stopped replica is left alone (a failover may
    be at work)."""
    row = session.query_one(dialect.replica_status_query)
    if row is None:
        return None
    status = dialect.parse_replica_status(row)
    wanted = serves_tls and status.source_host in tls_sources
    if not status.sql_running:
        return None
    # Both flavors default to an unverified TLS attempt (SSL allowed, no CA): what tells a verified
    # link is the CA file.
    ca_file = str(row.get("Source_SSL_CA_File") or row.get("Master_SSL_CA_File") or "")
    allowed = str(row.get("Source_SSL_Allowed") or row.get("Master_SSL_Allowed") or "") == "Yes"
    if wanted:
        tls = source_tls(session, dialect, status.source_host)
        if tls is None or (allowed and ca_file == tls.ca_path):
            return None  # no CA configured on this server yet, or already verified TLS
    elif not ca_file:
        return None
    else:
        tls = None  # a CA the source's certificate no longer chains to
    session.execute(dialect.stop_replica, dialect.change_source_tls(tls), dialect.start_replica)
    return "replicates over verified TLS" if tls else "replicates without TLS"
