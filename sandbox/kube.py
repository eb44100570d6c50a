"""A small JSON client for the sandbox's own apiserver (raw dicts in and out, loopback only).

The harness speaks to one apiserver on 127.0.0.1 with the admin kubeconfig; plain dicts keep the
objects exactly as the apiserver sends them (status updates must round-trip every field).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

Obj = dict[str, Any]


class KubeError(Exception):
    """The apiserver answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Kube:
    """Requests to the apiserver named by a kubeconfig (client certificate or bearer token)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.server: str = cluster["server"].rstrip("/")
        self.ca = Path(cluster["certificate-authority"])
        self.headers = {"Accept": "application/json"}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=32, block=False, ca_certs=str(self.ca),
            cert_file=user.get("client-certificate"), key_file=user.get("client-key"),
            retries=False,
        )

    def request(self, method: str, path: str, body: Obj | None = None, params: Obj | None = None,
                content_type: str = "application/json", timeout: float = 30.0) -> Obj:
        """One request; the decoded JSON answer, or KubeError."""
        url = self.server + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        response = self.pool.request(method, url, body=data, headers=headers,
                                     timeout=urllib3.Timeout(connect=5, read=timeout))
        if response.status >= 400:
            try:
                message = json.loads(response.data).get("message", "")
            except (ValueError, AttributeError):
                message = response.data.decode(errors="replace")
            raise KubeError(response.status, message)
        return json.loads(response.data) if response.data else {}  # type: ignore[no-any-return]

    def get(self, path: str, **params: Any) -> Obj:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> Obj | None:
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body)

    def replace(self, path: str, body: Obj) -> Obj:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Obj, kind: str = "strategic-merge-patch") -> Obj:
        return self.request("PATCH", path, body, content_type=f"application/{kind}+json")

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        return self.request("DELETE", path, body)

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 30) -> Iterator[Obj]:
        """Watch events from resource_version; ends after timeout_seconds (server-side, bounded)."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "timeoutSeconds": str(timeout_seconds), "allowWatchBookmarks": "true"}
        url = f"{self.server}{path}?{urlencode(params)}"
        response = self.pool.request("GET", url, headers=self.headers, preload_content=False,
                                     timeout=urllib3.Timeout(connect=5, read=timeout_seconds + 15))
        try:
            if response.status >= 400:
                raise KubeError(response.status, response.read().decode(errors="replace"))
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
            return  # the server closed the watch early: the caller watches again
        finally:
            response.release_conn()
