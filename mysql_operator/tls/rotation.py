"""When to issue, re-issue or reload certificates: pure decisions over certificate facts and `now`.

Invariants:
- A certificate is re-issued once less than a third of its lifetime remains (cert-manager's default
  too), so a failed renewal leaves weeks to notice it, never hours.
- A new CA never cuts off a client: the trust bundle (ca.crt) carries the previous CA as long as it
  is valid, so certificates and clients of either generation verify during the overlap.
- A server certificate is re-issued when it is missing, unreadable, signed by another CA than the
  current one, or lacks a name the cluster needs; never merely because it is old but still fresh.
- A running mysqld is told to reload only when what it serves differs from what its Secret holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mysql_operator import conventions as c
from mysql_operator.tls.issue import CertFacts, certificate_facts, load_certificates, signed_by

RENEW_FRACTION = 3  # re-issue when less than 1/RENEW_FRACTION of the lifetime remains
MAX_TRUSTED_CAS = 2  # the current CA and the one before it


def renewal_due(facts: CertFacts, now: datetime) -> bool:
    """Whether less than a third of the certificate's lifetime remains (or it expired)."""
    lifetime = facts.not_after - facts.not_before
    return facts.not_after - now < lifetime / RENEW_FRACTION


def renew_before(lifetime: timedelta) -> timedelta:
    """How long before expiry a certificate of this lifetime is re-issued."""
    return lifetime / RENEW_FRACTION


def ca_reissue_reason(ca_cert_pem: str | None, ca_key_pem: str | None, now: datetime) -> str | None:
    """Why the cluster's CA must be (re-)issued, or None when it is good."""
    if not ca_cert_pem or not ca_key_pem:
        return "no CA yet"
    try:
        facts = certificate_facts(ca_cert_pem)
        serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    except ValueError:
        return "the CA Secret is unreadable"
    if renewal_due(facts, now):
        return (f"the CA expires at {facts.not_after:%Y-%m-%dT%H:%M:%SZ} "
                "(less than a third of its lifetime left)")
    return None


def server_reissue_reason(
    data: Mapping[str, str] | None, ca_cert_pem: str, wanted_names: Iterable[str], now: datetime
) -> str | None:
    """Why the operator-issued server certificate must be (re-)issued, or None when it is good.

    `data` is the decoded server Secret (ca.crt, tls.crt, tls.key); `ca_cert_pem` the current CA."""
    present = data or {}
    cert, key = present.get(c.KEY_TLS_CERT), present.get(c.KEY_TLS_KEY)
    if not cert or not key:
        return "no server certificate yet"
    try:
        facts = certificate_facts(cert)
    except ValueError:
        return "the server certificate is unreadable"
    if not signed_by(cert, ca_cert_pem):
        return "the server certificate is not signed by the current CA"
    missing = sorted(set(wanted_names) - facts.names)
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        return f"the server certificate lacks names: {shown}"
    if renewal_due(facts, now):
        return (f"the server certificate expires at {facts.not_after:%Y-%m-%dT%H:%M:%SZ} "
                "(less than a third of its lifetime left)")
    return None


def trust_bundle(current_ca_pem: str, previous_bundle: str | None, now: datetime) -> str:
    """ca.crt for the pods and clients: the current CA first, then earlier CAs still valid (at most
    MAX_TRUSTED_CAS in all, no duplicates)."""
    current = load_certificates(current_ca_pem)[0]
    kept: list[x509.Certificate] = [current]
    for cert in load_certificates(previous_bundle or ""):
        if len(kept) >= MAX_TRUSTED_CAS:
            break
        if cert.serial_number in {k.serial_number for k in kept} or cert.not_valid_after_utc <= now:
            continue
        kept.append(cert)
    return "".join(k.public_bytes(serialization.Encoding.PEM).decode() for k in kept)


def parse_served_not_after(value: str) -> datetime | None:
    """mysqld's `Ssl_server_not_after` status (`Nov 30 10:00:00 2027 GMT`), or None when empty."""
    text = " ".join(value.split())
    if not text:
        return None
    try:
        parsed = datetime.strptime(text.replace(" GMT", ""), "%b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC)


def reload_needed(served_not_after: str | None, wanted_cert_pem: str | None) -> bool:
    """Whether mysqld must reload its TLS files: it serves a certificate other than its Secret's.

    Compared by expiry (what mysqld reports as status); a re-issued certificate never has the same
    expiry second as the one it replaces. Nothing to reload while TLS is off or the Secret is empty."""
    if not wanted_cert_pem:
        return False
    try:
        wanted = certificate_facts(wanted_cert_pem).not_after
    except ValueError:
        return False
    served = parse_served_not_after(served_not_after or "")
    return served is None or served.replace(microsecond=0) != wanted.replace(microsecond=0)
