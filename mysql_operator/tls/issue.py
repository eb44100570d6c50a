"""Issue a cluster's CA and server certificate with `cryptography`; read facts back from PEM.

The server certificate names what a client can dial and verify: the Services' DNS names (short and
with the cluster domain), every instance's stable name through the headless Service (for the
ordinals a cluster can have), `localhost` with 127.0.0.1 and ::1 (a client in the pod, or through
`kubectl port-forward`), and the names a user adds. Pod IPs are left out: they change whenever a pod
is rescheduled, so a certificate naming them would be wrong after the next restart. The operator
dials pod IPs and verifies the pod's DNS name instead (tls.client). The CA is per cluster: trusting
it means trusting this cluster's servers only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mysql_operator import conventions as c

MAX_INSTANCES = 9  # api.models: instances <= 9; every ordinal a cluster can have gets its name now
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Back-date validity a little: a node whose clock is a few minutes behind must not refuse it.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM text."""

    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class CertFacts:
    """What the operator decides on, read from a certificate."""

    serial: int
    not_before: datetime
    not_after: datetime
    dns_names: frozenset[str]
    ip_addresses: frozenset[str]
    issuer: str
    subject: str

    @property
    def names(self) -> frozenset[str]:
        return self.dns_names | self.ip_addresses


def server_names(
    cluster: str, namespace: str, extra: Iterable[str] = (), instances: int = MAX_INSTANCES
) -> tuple[str, ...]:
    """Every name the server certificate of a cluster carries (DNS names and IP addresses): the
    primary Service's first (the common name), then the others sorted."""
    first = c.cluster_domain_names(cluster, namespace)[0]
    names = set(c.cluster_domain_names(cluster, namespace))
    names |= {c.pod_domain_name(cluster, namespace, o) for o in range(instances)}
    names |= {f"{c.pod_domain_name(cluster, namespace, o)}.cluster.local" for o in range(instances)}
    names |= set(LOOPBACK_NAMES)
    names |= {n.strip().lower() for n in extra if n.strip()}
    return (first, *sorted(names - {first}))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _subject_alternative_names(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        if _is_ip(name):
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        else:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by OpenSSL, wolfSSL and Go alike, and cheap to generate.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def issue_ca(cluster: str, namespace: str, now: datetime, lifetime: timedelta) -> KeyPair:
    """A self-signed CA for one cluster, valid from (about) now for `lifetime`."""
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, c.MANAGED_BY),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster}.{namespace} CA {now:%Y%m%d%H%M%S}"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def issue_server(ca: KeyPair, names: Iterable[str], now: datetime, lifetime: timedelta) -> KeyPair:
    """A server certificate for `names` (the first is the common name), signed by `ca`."""
    ordered = list(names)
    if not ordered:
        raise ValueError("a server certificate needs at least one name")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key issued by the operator")
    key = _new_key()
    # The validity never outlives the CA: a chain is only as valid as its shortest link.
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, c.MANAGED_BY),
            x509.NameAttribute(NameOID.COMMON_NAME, ordered[0][:64]),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=True, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_subject_alternative_names(ordered), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def load_certificates(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order."""
    return list(x509.load_pem_x509_certificates(pem.encode())) if pem.strip() else []


def certificate_facts(pem: str) -> CertFacts:
    """Facts of the first certificate of a PEM text. Raises ValueError when there is none."""
    certs = load_certificates(pem)
    if not certs:
        raise ValueError("no certificate in PEM text")
    cert = certs[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = frozenset(str(n).lower() for n in san.get_values_for_type(x509.DNSName))
        ips = frozenset(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = frozenset(), frozenset()
    return CertFacts(
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=dns,
        ip_addresses=ips,
        issuer=cert.issuer.rfc4514_string(),
        subject=cert.subject.rfc4514_string(),
    )


def signed_by(cert_pem: str, ca_pem: str) -> bool:
    """Whether the first certificate of `cert_pem` was signed by a CA of the bundle `ca_pem`."""
    certs = load_certificates(cert_pem)
    if not certs:
        return False
    for ca in load_certificates(ca_pem):
        try:
            certs[0].verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def utcnow() -> datetime:
    return datetime.now(UTC)
