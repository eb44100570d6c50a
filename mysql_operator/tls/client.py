"""How the operator's own connections trust a cluster's servers.

The operator dials an instance by its pod IP (the same in a real cluster and in the sandbox), but a
pod IP is not in the certificate (it changes with every reschedule). So the TLS handshake verifies
the chain against the cluster's CA and the certificate against the pod's stable DNS name
(`<pod>.<cluster>.<ns>.svc`), whatever address was dialed: the name is what the pod is, the IP is
only where it is right now.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


class _NamedContext(ssl.SSLContext):
    """An SSLContext that verifies one fixed name, whatever host the caller dialed."""

    expected_name: str | None = None

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        if self.expected_name:
            kwargs["server_hostname"] = self.expected_name
        return super().wrap_socket(sock, *args, **kwargs)


@dataclass(frozen=True)
class ClientTls:
    """Trust for one server: the CA bundle (PEM) and the name its certificate must carry.

    `server_name` None verifies the chain only (for a server whose name is not known)."""

    ca_pem: str
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client SSLContext: TLS 1.2 or later, the CA bundle only (no system roots)."""
        context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cadata=self.ca_pem)
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = self.server_name is not None
        context.expected_name = self.server_name
        return context
