"""The chart's monitoring: alert rules and dashboard queries pass promtool, and name only metrics
that exist (the operator's from its metrics module here; the exporter's against a real exporter in
tests/integration/test_exporter_metrics.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_chart import CHART, render

DASHBOARD = CHART / "dashboards" / "mysql-cluster.json"
# Grafana's variables, replaced by values PromQL accepts before promtool reads the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "ns", "$cluster": "db"}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in re.findall(r"\b(mysql_[a-z0-9_]+)\b", expr)}


def dashboard_metric_names() -> set[str]:
    return metric_names(dashboard_queries())


def operator_metric_names() -> set[str]:
    """Every series name the operator's metrics module exposes (counters with their _total)."""
    from prometheus_client import REGISTRY

    import mysql_operator.metrics  # noqa: F401  registers the metrics

    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("mysql_operator_"):
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def promtool(rules: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool not installed: `make apt` installs Debian's prometheus package"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True)


def prometheus_rule(helm: str) -> dict[str, Any]:
    (rule,) = [
        d for d in render(helm, "metrics.prometheusRule.enabled=true") if d["kind"] == "PrometheusRule"
    ]
    return dict(rule)


def test_prometheus_rules_pass_promtool(helm: str, tmp_path: Path) -> None:
    result = promtool({"groups": prometheus_rule(helm)["spec"]["groups"]}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_refuses_a_broken_expression(tmp_path: Path) -> None:
    broken = {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "rate(mysql_up[5m]"}]}]}
    assert promtool(broken, tmp_path).returncode != 0


def test_alerts_name_only_metrics_the_operator_exposes(helm: str) -> None:
    exprs = [r["expr"] for group in prometheus_rule(helm)["spec"]["groups"] for r in group["rules"]]
    unknown = metric_names(exprs) - operator_metric_names()
    assert not unknown, f"alerts on metrics nobody exposes: {sorted(unknown)}"


def test_dashboard_queries_pass_promtool(tmp_path: Path) -> None:
    rules = []
    for index, expr in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    result = promtool({"groups": [{"name": "dashboard", "rules": rules}]}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_shows_the_cluster_view_from_metrics_the_operator_exposes() -> None:
    names = dashboard_metric_names()
    operator = {name for name in names if name.startswith("mysql_operator_")}
    assert operator <= operator_metric_names(), sorted(operator - operator_metric_names())
    for wanted in (
        "mysql_operator_ready_instances",
        "mysql_operator_instance_primary",
        "mysql_operator_replication_lag_seconds",
        "mysql_operator_failovers_total",
        "mysql_operator_last_backup_timestamp_seconds",
        "mysql_operator_reconcile_errors_total",
        "mysql_global_status_queries",
        "mysql_global_status_threads_connected",
    ):
        assert wanted in names, wanted


def test_dashboard_configmap_carries_the_sidecar_label_and_the_json(helm: str) -> None:
    assert not [d for d in render(helm) if d["kind"] == "ConfigMap"]
    (config_map,) = [
        d for d in render(helm, "metrics.grafanaDashboard.enabled=true") if d["kind"] == "ConfigMap"
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["mysql-cluster.json"]) == json.loads(DASHBOARD.read_text())


def test_pod_monitor_scrapes_the_exporter_port_of_instance_pods(helm: str) -> None:
    assert not [d for d in render(helm) if d["kind"] == "PodMonitor"]
    (monitor,) = [d for d in render(helm, "metrics.podMonitor.enabled=true") if d["kind"] == "PodMonitor"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "mysql"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    from mysql_operator.api.models import MysqlClusterSpec
    from mysql_operator.resources.meta import ClusterRef
    from mysql_operator.resources.statefulset import build_pod_template

    spec = MysqlClusterSpec.model_validate({"monitoring": {"exporter": True}})
    pod = build_pod_template(ClusterRef(name="db", namespace="ns", uid="u"), spec)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = [p["name"] for container in pod["spec"]["containers"] for p in container.get("ports", [])]
    assert "metrics" in ports
