"""The NetworkPolicy of a cluster: who may reach mysqld (3306) and the exporter (9104).

Ingress only. The cluster's own pods (replication, CLONE), its backup Jobs and the operator always
reach 3306; clients come from `spec.networkPolicy.clientsFrom` (anyone when empty); the exporter's
port only from `spec.networkPolicy.metricsFrom`. Egress is left open: replicas dial their source and
DNS, and a default-deny egress would need the cluster's DNS addresses, which differ per distribution.
"""

from __future__ import annotations

from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.resources.backup_job import APP_NAME as BACKUP_APP_NAME
from mysql_operator.resources.meta import ClusterRef

# The chart's operator pods carry this label (app.kubernetes.io/name is the chart's name).
OPERATOR_POD_LABELS = {c.LABEL_NAME: "mysql-operator"}


def _port(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def always_allowed_peers(cluster: str) -> list[dict[str, Any]]:
    """Peers that need 3306 whatever the client list says: instances, backup Jobs, the operator."""
    return [
        {"podSelector": {"matchLabels": c.selector_labels(cluster)}},
        {"podSelector": {"matchLabels": {c.LABEL_NAME: BACKUP_APP_NAME, c.LABEL_INSTANCE: cluster}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": OPERATOR_POD_LABELS}},
    ]


def build_network_policy(ref: ClusterRef, spec: MysqlClusterSpec) -> dict[str, Any]:
    """The NetworkPolicy manifest (build only when spec.networkPolicy.enabled)."""
    policy = spec.network_policy
    mysql_rule: dict[str, Any] = {"ports": [_port(c.MYSQL_PORT)]}
    if policy.clients_from:
        mysql_rule["from"] = [*always_allowed_peers(ref.name), *policy.clients_from]
    ingress = [mysql_rule]
    if spec.monitoring.exporter and policy.metrics_from:
        ingress.append({"ports": [_port(c.EXPORTER_PORT)], "from": list(policy.metrics_from)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ref.metadata(c.network_policy_name(ref.name)),
        "spec": {
            "podSelector": {"matchLabels": c.selector_labels(ref.name)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
