"""The mysqld_exporter sidecar: built only when asked, least-privilege user, password from the Secret."""

from __future__ import annotations

from typing import Any

from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.resources.credentials import generated_values, missing_keys
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.statefulset import build_statefulset

REF = ClusterRef(name="db", namespace="ns", uid="u")


def containers(**spec: Any) -> dict[str, dict[str, Any]]:
    sts = build_statefulset(REF, MysqlClusterSpec.model_validate(spec))
    return {ctr["name"]: ctr for ctr in sts["spec"]["template"]["spec"]["containers"]}


def test_no_sidecar_by_default() -> None:
    assert list(containers()) == ["mysqld"]


def test_sidecar_reads_this_pods_mysqld_with_the_exporter_password() -> None:
    exporter = containers(flavor="mariadb", monitoring={"exporter": True})["exporter"]
    assert exporter["image"] == "prom/mysqld-exporter:v0.14.0"
    env = {e["name"]: e for e in exporter["env"]}
    assert env["EXPORTER_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "db-credentials",
        "key": "exporter-password",
    }
    # TLS is on by default: the exporter negotiates it (tls=preferred).
    dsn = "mysqlop_exporter:$(EXPORTER_PASSWORD)@($(POD_IP):3306)/?tls=preferred"
    assert env["DATA_SOURCE_NAME"]["value"] == dsn
    names = [e["name"] for e in exporter["env"]]
    assert names.index("POD_IP") < names.index("DATA_SOURCE_NAME") > names.index("EXPORTER_PASSWORD")
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9104, "protocol": "TCP"}]
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True


def test_exporter_password_is_generated_and_required_only_when_enabled() -> None:
    on = MysqlClusterSpec.model_validate({"monitoring": {"exporter": True}})
    off = MysqlClusterSpec.model_validate({})
    assert "exporter-password" in generated_values(on, None)
    assert "exporter-password" not in generated_values(off, None)
    full = {"root-password": "a", "replication-password": "b", "operator-password": "c"}
    assert missing_keys(on, full) == ["exporter-password"] and missing_keys(off, full) == []


def test_exporter_grants_are_read_only_per_flavor() -> None:
    assert dialect_for(Flavor.MARIADB).grant_exporter("x").sql == (
        "GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR, SELECT ON *.* TO %s@'%%'"
    )
    assert dialect_for(Flavor.MYSQL).grant_exporter("x").sql == (
        "GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO %s@'%%'"
    )
