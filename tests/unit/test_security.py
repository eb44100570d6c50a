"""Hostile specs refused by the models (the CRD's CEL says the same; tests/e2e/test_hostile.py drives it)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mysql_operator.api import mycnf
from mysql_operator.api.crd import mysqlcluster_crd
from mysql_operator.api.models import MysqlClusterSpec, check_cluster_name
from mysql_operator.handlers.objects import owned_objects
from mysql_operator.resources.config import INITDB_KEY, build_config_map, render_my_cnf
from mysql_operator.resources.credentials import (
    build_credentials_secret,
    credentials_owned,
    owner_patch,
    unsafe_passwords,
)
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.network_policy import build_network_policy
from mysql_operator.resources.statefulset import build_statefulset

REF = ClusterRef(name="db", namespace="ns", uid="u")


def refused(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as error:
        MysqlClusterSpec.model_validate(spec)
    return str(error.value)


@pytest.mark.parametrize(
    "key",
    [
        "init_file",
        "init-file",
        "loose-init-file",
        "loose_init_file",
        "skip-grant-tables",
        "loose-skip-grant-tables",
        "skip_grant_tables",
        "plugin_load",
        "plugin-load-add",
        "plugin_dir",
        "loose-plugin-load-add",
        "local_infile",
        "enable-local-infile",
        "secure_file_priv",
        "secure-file-priv",
        "init_connect",
        "init_slave",
        "datadir",
        "datad",
        "tmpdir",
        "log_error",
        "general_log_file",
        "slow-query-log-file",
        "server_id",
        "server-id",
        "maximum-server-id",
        "skip-networking",
        "disable-read-only",
        "enable-super-read-only",
        "bind-address",
        "port",
        "log",
        "log-bin",
        "wsrep_provider",
        "wsrep-notify-cmd",
        "early-plugin-load",
        "symbolic-links",
        "skip-symbolic-links",
        "ssl_key",
        "debug",
        "user",
    ],
)
def test_refused_keys_in_every_spelling(key: str) -> None:
    assert mycnf.refusal(key) is not None
    assert "mysqlConfig" in refused({"mysqlConfig": {key: "x"}})


@pytest.mark.parametrize(
    "key",
    [
        "max_connections",
        "max-connections",
        "general_log",
        "slow_query_log",
        "innodb_buffer_pool_size",
        "skip_name_resolve",
        "long_query_time",
        "sql_mode",
        "log_warnings",
        "log_error_verbosity",
    ],
)
def test_ordinary_tuning_keys_are_allowed(key: str) -> None:
    assert mycnf.refusal(key) is None
    MysqlClusterSpec.model_validate({"mysqlConfig": {key: "1"}})


@pytest.mark.parametrize(
    "value", ["1\ninit_file=/tmp/x", "1\r\n[client]", "a\x00b", "\x1b[31m", "1\n!includedir /tmp"]
)
def test_values_with_control_characters_never_reach_my_cnf(value: str) -> None:
    assert "mysqlConfig" in refused({"mysqlConfig": {"max_connections": value}})


def test_length_limits_match_the_crd() -> None:
    assert "mysqlConfig" in refused({"mysqlConfig": {"max_connections": "9" * 1025}})
    assert "mysqlConfig" in refused({"mysqlConfig": {f"k{i}": "1" for i in range(201)}})
    assert "mysqlConfig" in refused({"mysqlConfig": {"k" * 65: "1"}})
    schema = mysqlcluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    config = schema["properties"]["spec"]["properties"]["mysqlConfig"]
    assert config["maxProperties"] == 200
    assert config["additionalProperties"]["maxLength"] == 1024
    assert config["additionalProperties"]["pattern"] == mycnf.SAFE_TEXT_PATTERN
    assert "k.size() <= 64" in config["x-kubernetes-validations"][0]["rule"]


def test_an_allowed_config_renders_one_line_per_key() -> None:
    spec = MysqlClusterSpec.model_validate({"mysqlConfig": {"max_connections": "500", "sql_mode": "ANSI"}})
    lines = render_my_cnf(spec).splitlines()
    assert "max_connections = 500" in lines and "sql_mode = ANSI" in lines
    assert sum(line.startswith("[") for line in lines) == 1


@pytest.mark.parametrize(
    "key",
    [
        "mysql.operator.dev/role",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/name",
        "app.kubernetes.io/managed-by",
        "controller-revision-hash",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "mysql.operator.dev/anything",
    ],
)
def test_pod_template_may_not_set_the_operators_labels(key: str) -> None:
    assert "labels" in refused({"podTemplate": {"labels": {key: "primary"}}})


def test_pod_template_may_not_set_the_operators_annotations_and_bad_label_values() -> None:
    assert "annotations" in refused({"podTemplate": {"annotations": {"mysql.operator.dev/config-hash": "x"}}})
    assert "labels" in refused({"podTemplate": {"labels": {"team": "a b"}}})
    assert "labels" in refused({"podTemplate": {"labels": {"bad key!": "a"}}})
    ok = MysqlClusterSpec.model_validate({"podTemplate": {"labels": {"team": "shop"}}})
    assert build_statefulset(REF, ok)["spec"]["template"]["metadata"]["labels"]["team"] == "shop"


def test_database_pods_never_mount_a_service_account_token() -> None:
    spec = MysqlClusterSpec.model_validate({"podTemplate": {"serviceAccountName": "puller"}})
    pod = build_statefulset(REF, spec)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "puller"
    assert "serviceAccountName" in refused({"podTemplate": {"serviceAccountName": "Bad Name"}})


@pytest.mark.parametrize(
    ("name", "ok"),
    [("db", True), ("a" * 52, True), ("a" * 53, False), ("1db", False), ("db.x", False), ("db-", False)],
)
def test_cluster_names_too_long_or_invalid_for_derived_objects(name: str, ok: bool) -> None:
    assert (check_cluster_name(name) is None) is ok


def test_crd_carries_the_name_rule_at_the_root() -> None:
    root = mysqlcluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [rule["rule"] for rule in root["x-kubernetes-validations"]]
    assert "self.metadata.name.size() <= 52" in rules


def test_generated_credentials_outlive_a_cluster_whose_volumes_are_retained() -> None:
    retain = MysqlClusterSpec.model_validate({})
    delete = MysqlClusterSpec.model_validate({"storage": {"pvcRetention": "Delete"}})
    assert not credentials_owned(retain) and credentials_owned(delete)
    assert "ownerReferences" not in build_credentials_secret(REF, {"a": "b"}, owned=False)["metadata"]
    owned = build_credentials_secret(REF, {"a": "b"}, owned=True)
    assert owner_patch(REF, owned, owned=True) is None
    assert owner_patch(REF, owned, owned=False) == {"metadata": {"ownerReferences": None}}
    loose = build_credentials_secret(REF, {"a": "b"}, owned=False)
    patch = owner_patch(REF, loose, owned=True)
    assert patch is not None and patch["metadata"]["ownerReferences"][0]["uid"] == "u"


def test_a_secret_left_by_a_deleted_cluster_of_the_same_name_is_not_used() -> None:
    from mysql_operator.resources.credentials import left_by_another_incarnation
    from mysql_operator.resources.meta import ClusterRef

    old = build_credentials_secret(ClusterRef(name=REF.name, namespace=REF.namespace, uid="old"), {"a": "b"})
    assert left_by_another_incarnation(REF, old)  # owned by the previous uid only: the GC takes it
    assert not left_by_another_incarnation(REF, build_credentials_secret(REF, {"a": "b"}))  # ours
    kept = build_credentials_secret(REF, {"a": "b"}, owned=False)  # volumes retained: no owner
    assert not left_by_another_incarnation(REF, kept)
    both = {"metadata": {"ownerReferences": [*old["metadata"]["ownerReferences"], REF.owner_reference()]}}
    assert not left_by_another_incarnation(REF, both)  # adopted already
    going = {"metadata": {"deletionTimestamp": "2026-11-30T00:00:00Z"}}
    assert left_by_another_incarnation(REF, going)


def test_user_passwords_that_would_break_an_option_file_are_named() -> None:
    assert unsafe_passwords({"root-password": 'o"k', "exporter-password": 'x"', "app-user": "a\n"}) == [
        "exporter-password"
    ]
    assert unsafe_passwords({"root-password": "a\nb", "operator-password": "ok"}) == ["root-password"]


def test_network_policy_opens_3306_to_clients_and_peers_and_metrics_to_monitoring() -> None:
    spec = MysqlClusterSpec.model_validate({"monitoring": {"exporter": True}})
    policy = build_network_policy(REF, spec)
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "mysql",
        "app.kubernetes.io/instance": "db",
    }
    mysql, metrics = policy["spec"]["ingress"]
    assert mysql == {"ports": [{"protocol": "TCP", "port": 3306}]}
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9104}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    narrowed = MysqlClusterSpec.model_validate(
        {"networkPolicy": {"clientsFrom": [{"podSelector": {"matchLabels": {"app": "shop"}}}]}}
    )
    (rule,) = build_network_policy(REF, narrowed)["spec"]["ingress"]
    peers = [p.get("podSelector", {}).get("matchLabels") for p in rule["from"]]
    assert {"app": "shop"} in peers and {"app.kubernetes.io/name": "mysql-operator"} in peers
    kinds = [
        o["kind"]
        for o in owned_objects(REF, MysqlClusterSpec.model_validate({"networkPolicy": {"enabled": False}}))
    ]
    assert "NetworkPolicy" not in kinds
    assert "NetworkPolicy" in [o["kind"] for o in owned_objects(REF, spec)]


@pytest.mark.parametrize(("flavor", "prefix"), [("mysql", "MYSQL_"), ("mariadb", "MARIADB_")])
def test_root_is_created_for_localhost_only_and_the_operator_user_by_the_image(
    flavor: str, prefix: str
) -> None:
    spec = MysqlClusterSpec.model_validate({"flavor": flavor})
    pod = build_statefulset(REF, spec)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env[f"{prefix}ROOT_HOST"]["value"] == "localhost"
    assert env[f"{prefix}USER"]["value"] == "mysqlop_admin"
    assert env[f"{prefix}PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "db-credentials",
        "key": "operator-password",
    }
    mount = next(
        m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/docker-entrypoint-initdb.d"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["items"] == [{"key": INITDB_KEY, "path": INITDB_KEY}]
    sql = build_config_map(REF, spec)["data"][INITDB_KEY]
    assert "GRANT ALL PRIVILEGES ON *.* TO 'mysqlop_admin'@'%' WITH GRANT OPTION;" in sql
    assert sql.index("sql_log_bin = 0") < sql.index("GRANT"), "unlogged: no errant GTID on any instance"
    assert "IDENTIFIED" not in sql and "root" not in sql.split("\n", 1)[1]
