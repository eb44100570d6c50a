"""Monitoring on the e2e cluster: the mysqld_exporter sidecar serves real metrics of each mysqld, per
flavor (Debian's prometheus-mysqld-exporter 0.14 against real MySQL 9.7 and MariaDB 10.11)."""

from __future__ import annotations

import urllib.request

import pytest

from tests.e2e.conftest import FLAVORS, Cluster, cluster_spec, wait_for

pytestmark = pytest.mark.e2e

NAME = "watched"


def metrics_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("flavor", FLAVORS)
def test_exporter_sidecar_reports_each_instance_up_and_replication(operator: Cluster, flavor: str) -> None:
    ns = f"monitoring-{flavor}"
    operator.create_namespace(ns)
    operator.apply(
        {
            "apiVersion": "mysql.operator.dev/v1alpha1",
            "kind": "MysqlCluster",
            "metadata": {"name": NAME},
            "spec": cluster_spec(flavor, instances=2, monitoring={"exporter": True}),
        },
        ns,
    )
    status = operator.wait_ready(NAME, ns, timeout=420)
    assert "exporter-password" in operator.secret(f"{NAME}-credentials", ns)
    for inst in status["instances"]:
        pod = operator.get("pod", inst["name"], ns)
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
        if inst["role"] == "replica" and flavor == "mariadb":
            assert "mysql_slave_status_seconds_behind_master" in text
        if inst["role"] == "replica" and flavor == "mysql":
            # Exporter 0.14 asks SHOW SLAVE STATUS, which MySQL 8.4+ no longer has (SHOW REPLICA
            # STATUS): its replication series are absent; the replica shows as read-only instead.
            assert "\nmysql_global_variables_super_read_only 1" in text
        assert "mysql_global_status_uptime" in text
    operator.kubectl("delete", "namespace", ns, "--wait=false")
