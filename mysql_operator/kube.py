"""The one Kubernetes client wrapper: server-side apply, reads, create-once, status and labels."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mysql_operator import conventions as c

# (apiVersion, kind) -> URL path segment of the kind, all namespaced.
_PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "Pod"): "pods",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("batch/v1", "Job"): "jobs",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (f"{c.API_GROUP}/{c.API_VERSION}", c.KIND): c.PLURAL,
    (f"{c.API_GROUP}/{c.API_VERSION}", "MysqlBackup"): "mysqlbackups",
}


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0 when none came back)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Kubernetes API error {status}: {reason}")
        self.status = status


# Connections kept open to the API server: the handlers' threads, the topology passes and the
# concurrent applies of one reconcile share them; a request finding the pool full opens (and then
# throws away) a connection of its own, a TLS handshake each time.
CONNECTION_POOL_SIZE = 64


def load_config() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return client.ApiClient(configuration)


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    plural = _PLURALS[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _reason(body: Any, fallback: Any) -> str:
    """The apiserver's own message from an error body (never a request body: no Secret data)."""
    try:
        return str(json.loads(body or "{}").get("message") or fallback)
    except (ValueError, AttributeError, TypeError):
        return str(fallback)


class Kube:
    """Typed access to the few API calls the operator makes."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, Any]] | None = None,
    ) -> Any:
        method, url, headers, data, _post = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, body=data, _request_timeout=30)
            response.read()  # type: ignore[no-untyped-call]
        except ApiException as error:
            raise KubeError(error.status or 0, _reason(error.body, error.reason)) from None
        except OSError as error:
            raise KubeError(0, str(error)) from None
        if not 200 <= response.status < 300:
            raise KubeError(response.status, _reason(response.data, response.reason))
        return json.loads(response.data or b"{}")

    def apply(self, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with our field manager: idempotent, and it owns only the fields it sets.

        `dry_run`: the apiserver validates and admits the object but stores nothing."""
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        query: list[tuple[str, Any]] = [("fieldManager", c.FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        result: dict[str, Any] = self._call(
            "PATCH", path, body=manifest, content_type="application/apply-patch+yaml", query=query
        )
        return result

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", _path(api_version, kind, namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return result

    def create_if_absent(self, manifest: dict[str, Any]) -> bool:
        """Create the object unless it exists; True when this call created it."""
        meta = manifest["metadata"]
        try:
            path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
            self._call("POST", path, body=manifest)
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "PATCH",
            _path(api_version, kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
        )
        return result

    def list(
        self, api_version: str, kind: str, namespace: str, labels: dict[str, str]
    ) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        result = self._call("GET", _path(api_version, kind, namespace), query=[("labelSelector", selector)])
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete an object (only the incarnation `uid` when given); False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}} if uid else None
        try:
            self._call("DELETE", _path(api_version, kind, namespace, name), body=body)
        except KubeError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    def node_cordoned(self, name: str) -> bool:
        """Whether a Node is unschedulable (cordoned, e.g. by `kubectl drain`)."""
        node = self._call("GET", f"/api/v1/nodes/{name}")
        return bool((node.get("spec") or {}).get("unschedulable"))

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any],
        *, uid: str, current: Mapping[str, Any] | None = None,
    ) -> bool:
        """Patch the status subresource of the incarnation `uid` only (a JSON patch whose first step
        tests the uid: a cluster deleted and re-created under the same name must never receive its
        predecessor's status). A None value removes the key, if `current` (the status as last read)
        has it. False when the object is gone or is another incarnation."""
        operations = status_patch(uid, status, current)
        try:
            self._call("PATCH", _path(api_version, kind, namespace, name) + "/status",
                       body=operations, content_type="application/json-patch+json")
        except KubeError as error:
            if error.status == 404:
                return False
            if error.status == 422:  # the uid test failed, or the status itself is invalid: which?
                live = self.get(api_version, kind, namespace, name)
                if ((live or {}).get("metadata") or {}).get("uid") != uid:
                    return False
            raise
        return True

    def set_pod_label(self, namespace: str, pod: str, key: str, value: str) -> None:
        self.merge_patch("v1", "Pod", namespace, pod, {"metadata": {"labels": {key: value}}})


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def status_patch(
    uid: str, status: Mapping[str, Any], current: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The JSON patch (RFC 6902) that writes `status` keys on the object whose uid is `uid`: a test of
    the uid first, so the whole patch fails on any other incarnation of the name. `current` is the
    status as last read: None means no status yet (it is added whole)."""
    operations: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid}]
    if current is None:
        operations.append({"op": "add", "path": "/status",
                           "value": {k: v for k, v in status.items() if v is not None}})
        return operations
    for key, value in status.items():
        path = f"/status/{_pointer(key)}"
        if value is not None:
            operations.append({"op": "add", "path": path, "value": value})
        elif key in current:
            operations.append({"op": "remove", "path": path})
    return operations
