"""Operator metrics on /metrics (prometheus_client): one place for every series' name and labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

LABELS = ("namespace", "cluster")

RECONCILES = Counter("mysql_operator_reconciles_total", "Reconcile handler runs", LABELS)
RECONCILE_ERRORS = Counter("mysql_operator_reconcile_errors_total", "Reconcile handler failures", LABELS)
TOPOLOGY_PASSES = Counter(
    "mysql_operator_topology_passes_total", "Topology observe/decide/act passes", LABELS
)
FAILOVERS = Counter("mysql_operator_failovers_total", "Automatic failovers", LABELS)
SWITCHOVERS = Counter("mysql_operator_switchovers_total", "Switchovers", LABELS)
FAILOVER_SECONDS = Gauge(
    "mysql_operator_last_failover_seconds", "Duration of the last failover or switchover", LABELS
)
READY_INSTANCES = Gauge("mysql_operator_ready_instances", "Instances ready", LABELS)
CLUSTER_READY = Gauge("mysql_operator_cluster_ready", "1 when the cluster is Ready", LABELS)
REPLICATION_LAG = Gauge(
    "mysql_operator_replication_lag_seconds", "Replica lag behind the primary", (*LABELS, "instance")
)
INSTANCE_UP = Gauge(
    "mysql_operator_instance_up", "1 when the operator reaches the instance", (*LABELS, "instance")
)
SUSPENDED = Gauge(
    "mysql_operator_cluster_suspended", "1 while spec.suspend keeps the operator's hands off", LABELS
)
PRIMARY = Gauge(
    "mysql_operator_instance_primary",
    "1 for the instance the operator keeps as primary",
    (*LABELS, "instance"),
)
LAST_BACKUP = Gauge(
    "mysql_operator_last_backup_timestamp_seconds", "Completion time of the newest complete backup", LABELS
)


def serve(address: str, port: int) -> None:
    """Serve /metrics in a background thread."""
    start_http_server(port, addr=address)
