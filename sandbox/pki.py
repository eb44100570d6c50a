"""Certificates and keys for the local control plane, made once per run dir with the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Client identities the control plane components use; RBAC's bootstrap policy knows these names.
CLIENTS = {
    "admin": ("sandbox-admin", "system:masters"),
    "node-agent": ("sandbox-node-agent", "system:masters"),  # its own name: kept out of the audit log
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    # the apiserver's identity towards aggregated APIs (requestheader authentication)
    "front-proxy-client": ("front-proxy-client", None),
}
DAYS = "3650"


class PKIError(RuntimeError):
    """openssl failed or is missing."""


def ensure_pki(pki: Path) -> None:
    """Create the CA, apiserver serving cert, client certs and service-account key pair if absent."""
    if shutil.which("openssl") is None:
        raise PKIError("openssl not found on PATH (apt-get install openssl)")
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        _openssl("genrsa", "-out", str(pki / "ca.key"), "2048")
        _openssl("req", "-x509", "-new", "-key", str(pki / "ca.key"), "-sha256", "-days", DAYS,
                 "-subj", "/CN=sandbox-ca", "-out", str(pki / "ca.crt"))
    if not (pki / "apiserver.crt").exists():
        # The service IP SAN is only a name in the certificate (in-cluster clients would check it);
        # nothing ever dials it.
        sans = ("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
                "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")
        _issue(pki, "apiserver", "/CN=kube-apiserver", sans, "serverAuth")
    for name, (cn, org) in CLIENTS.items():
        if not (pki / f"{name}.crt").exists():
            subject = f"/CN={cn}" + (f"/O={org}" if org else "")
            _issue(pki, name, subject, None, "clientAuth")
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def _issue(pki: Path, name: str, subject: str, sans: str | None, usage: str) -> None:
    key, csr, crt = (pki / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ext_file = pki / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={usage}"]
    if sans:
        lines.append(sans)
    ext_file.write_text("\n".join(lines) + "\n")
    _openssl("genrsa", "-out", str(key), "2048")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
             "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", str(ext_file), "-out", str(crt))
    csr.unlink()
    ext_file.unlink()


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {result.stderr.strip()}")
