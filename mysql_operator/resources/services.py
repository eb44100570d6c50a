"""Services: headless (stable pod DNS), -primary (read-write) and -replicas (read-only) by role label."""

from __future__ import annotations

from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec, ServiceType
from mysql_operator.resources.meta import ClusterRef


def _port(node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "mysql", "port": c.MYSQL_PORT, "targetPort": "mysql", "protocol": "TCP"}
    if node_port is not None:
        port["nodePort"] = node_port
    return port


def build_headless_service(ref: ClusterRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ref.metadata(c.headless_service_name(ref.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": c.selector_labels(ref.name),
            "ports": [_port()],
        },
    }


def build_primary_service(ref: ClusterRef, spec: MysqlClusterSpec) -> dict[str, Any]:
    service_spec: dict[str, Any] = {
        "type": spec.service.type.value,
        "selector": {**c.selector_labels(ref.name), c.LABEL_ROLE: c.Role.PRIMARY.value},
        "ports": [_port(spec.service.node_port if spec.service.type != ServiceType.CLUSTER_IP else None)],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ref.metadata(c.primary_service_name(ref.name), annotations=spec.service.annotations),
        "spec": service_spec,
    }


def build_replicas_service(ref: ClusterRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ref.metadata(c.replicas_service_name(ref.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": {**c.selector_labels(ref.name), c.LABEL_ROLE: c.Role.REPLICA.value},
            "ports": [_port()],
        },
    }


def build_pod_disruption_budget(ref: ClusterRef, spec: MysqlClusterSpec) -> dict[str, Any]:
    """At most one replica down by choice (drains); failover handles the rest. Replicas only: the
    eviction API refuses a pod that two budgets select, and the primary has its own. minAvailable,
    not maxUnavailable: the latter counts every pod of the StatefulSet, primary included."""
    selector = {**c.selector_labels(ref.name), c.LABEL_ROLE: c.Role.REPLICA.value}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ref.metadata(c.pdb_name(ref.name)),
        "spec": {"minAvailable": max(spec.instances - 2, 0), "selector": {"matchLabels": selector}},
    }


def build_primary_disruption_budget(ref: ClusterRef) -> dict[str, Any]:
    """No eviction of the primary: a drain waits until the operator switched over (topology/drain.py)
    and the role label moved to a pod on another node."""
    selector = {**c.selector_labels(ref.name), c.LABEL_ROLE: c.Role.PRIMARY.value}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ref.metadata(f"{c.pdb_name(ref.name)}-primary"),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
    }
