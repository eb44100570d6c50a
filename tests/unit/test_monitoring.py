"""The mysqld_exporter sidecar: built only when asked, least-privilege user, password from the Secret."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.resources.credentials import build_exporter_secret, generated_values, missing_keys
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.statefulset import build_statefulset

REF = ClusterRef(name="db", namespace="ns", uid="u")


def containers(**spec: Any) -> dict[str, dict[str, Any]]:
    sts = build_statefulset(REF, MysqlClusterSpec.model_validate(spec))
    return {ctr["name"]: ctr for ctr in sts["spec"]["template"]["spec"]["containers"]}


def test_no_sidecar_by_default() -> None:
    assert list(containers()) == ["mysqld"]


def test_sidecar_reads_its_login_from_a_mounted_file_and_never_gates_readiness() -> None:
    sts = build_statefulset(
        REF, MysqlClusterSpec.model_validate({"flavor": "mariadb", "monitoring": {"exporter": True}})
    )
    pod = sts["spec"]["template"]["spec"]
    exporter = {ctr["name"]: ctr for ctr in pod["containers"]}["exporter"]
    assert exporter["image"] == "prom/mysqld-exporter:v0.18.0"
    assert exporter["args"] == ["--config.my-cnf=/etc/mysqld-exporter/my.cnf"]
    assert "env" not in exporter, "no password (nor anything else) in the environment"
    assert "readinessProbe" not in exporter, "a metrics failure must not take the instance out of its Service"
    (mount,) = exporter["volumeMounts"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "db-exporter-config" and mount["readOnly"] is True
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9104, "protocol": "TCP"}]
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True


def test_exporter_option_file_secret_holds_the_password_and_the_pods_loopback() -> None:
    plain = MysqlClusterSpec.model_validate({"tls": {"enabled": False}})
    secret = build_exporter_secret(REF, plain, "s3cret-_x")
    text = base64.b64decode(secret["data"]["my.cnf"]).decode()
    assert text.splitlines() == [
        "[client]",
        "user = mysqlop_exporter",
        'password = "s3cret-_x"',
        "host = 127.0.0.1",
        "port = 3306",
    ]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u"
    for bad in ("a\nb", 'a"b', "a\\b", "a\rb"):
        with pytest.raises(ValueError):
            build_exporter_secret(REF, plain, bad)


def test_exporter_asks_for_tls_when_the_server_serves_it() -> None:
    # TLS is on by default: the exporter negotiates it (tls = preferred, as the driver's DSN mode).
    secret = build_exporter_secret(REF, MysqlClusterSpec.model_validate({}), "pw")
    assert base64.b64decode(secret["data"]["my.cnf"]).decode().splitlines()[-1] == "tls = preferred"


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
