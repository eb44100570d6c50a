"""Monitoring on the e2e cluster: the mysqld_exporter sidecar serves real metrics of each mysqld."""

from __future__ import annotations

import urllib.request

import pytest

from tests.e2e.conftest import Cluster, wait_for

pytestmark = pytest.mark.e2e

NS = "monitoring"
NAME = "watched"


def metrics_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_exporter_sidecar_reports_each_instance_up_and_replication(operator: Cluster) -> None:
    operator.create_namespace(NS)
    operator.apply(
        {
            "apiVersion": "mysql.operator.dev/v1alpha1",
            "kind": "MysqlCluster",
            "metadata": {"name": NAME},
            "spec": {
                "flavor": "mariadb",
                "instances": 2,
                "storage": {"size": "1Gi", "pvcRetention": "Delete"},
                "monitoring": {"exporter": True},
            },
        },
        NS,
    )
    status = operator.wait_ready(NAME, NS, timeout=300)
    assert "exporter-password" in operator.secret(f"{NAME}-credentials", NS)
    for inst in status["instances"]:
        pod = operator.get("pod", inst["name"], NS)
        names = [c["name"] for c in pod["spec"]["containers"]]
        assert names == ["mysqld", "exporter"]
        exporter = pod["spec"]["containers"][1]
        # Its login comes from the mounted option file; its health never decides Service membership.
        assert "env" not in exporter and "readinessProbe" not in exporter
        assert exporter["args"] == ["--config.my-cnf=/etc/mysqld-exporter/my.cnf"]
        url = f"http://{pod['status']['podIP']}:9104/metrics"
        # mysql_up is 1 only once the exporter logs in with its own user, which the operator creates.
        text = wait_for(
            lambda u=url: (t := metrics_of(u)) and "\nmysql_up 1" in t and t, 60, f"mysql_up on {url}"
        )
        if inst["role"] == "replica":
            assert "mysql_slave_status_seconds_behind_master" in text
        assert "mysql_global_status_uptime" in text
    operator.kubectl("delete", "namespace", NS, "--wait=false")
