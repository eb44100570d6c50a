"""Day-2 spec rules (versions, autoReseed), manifests (OnDelete, replicas, config hash), and SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mysql_operator.api import models
from mysql_operator.api.crd import mysqlcluster_crd
from mysql_operator.api.models import MysqlClusterSpec, check_update, server_version
from mysql_operator.conventions import Flavor
from mysql_operator.handlers.day2 import ClusterDay2, pod_revisions, spec_accepted, topology_options
from mysql_operator.mysql import seed, variables
from mysql_operator.mysql.dialect import (
    MariadbDialect,
    MysqlDialect,
    same_value,
    variable_value,
)
from mysql_operator.mysql.session import Login, Statement
from mysql_operator.resources.config import config_hash
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.statefulset import build_statefulset, statefulset_replicas

REF = ClusterRef(name="db", namespace="shop", uid="u-1")


def spec(**fields: Any) -> MysqlClusterSpec:
    return MysqlClusterSpec.model_validate(fields)


# Versions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "refused"),
    [
        ({"flavor": "mariadb"}, {"flavor": "mariadb", "image": "mariadb:10.11.9"}, None),
        ({"flavor": "mariadb", "version": "10.11"}, {"flavor": "mariadb", "version": "11.4"}, None),
        ({"flavor": "mariadb", "version": "10.11.9"}, {"flavor": "mariadb", "version": "10.11.5"}, None),
        ({"flavor": "mariadb", "version": "11.4"}, {"flavor": "mariadb", "version": "10.11"}, "downgrade"),
        ({"flavor": "mariadb", "version": "11.4"}, {"flavor": "mariadb", "image": "mariadb:10.11"},
         "downgrade"),
        ({"flavor": "mariadb", "version": "10.11"}, {"flavor": "mariadb", "version": "12.1"},
         "skips a major"),
        ({"version": "8.4"}, {"version": "9.7"}, None),
        ({}, {"version": "9.7.4"}, None),
        ({"version": "8.4"}, {"image": "mysql:9.7.4"}, None),
        ({"version": "9.7"}, {"version": "8.4"}, "downgrade"),
        ({"version": "9.7.4"}, {"image": "registry.local/mysql:8.4.6"}, "downgrade"),
        ({"version": "8.4.2"}, {"version": "8.4.4"}, None),
        ({"version": "9.7.4"}, {"version": "9.7.2"}, None),
    ],
)
def test_version_changes(old: dict[str, Any], new: dict[str, Any], refused: str | None) -> None:
    problems = check_update(spec(**old), spec(**new))
    if refused is None:
        assert problems == []
    else:
        assert len(problems) == 1 and refused in problems[0]
        assert problems[0].startswith("version change refused")


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({"version": "8.4"}, None),
        ({"version": "9.7.4"}, None),
        ({"image": "mysql:9.7"}, None),
        ({"image": "mysql:latest"}, None),
        ({"version": "8.0"}, "MySQL 8.0 is not supported"),
        ({"version": "9.1"}, "MySQL 9.1 is not supported"),
        ({"image": "mysql:8.0.36"}, "MySQL 8.0 is not supported"),
        ({"flavor": "mariadb", "version": "10.11"}, None),
        ({"flavor": "mariadb", "version": "11.8"}, None),
        ({"flavor": "mariadb", "version": "10.6"}, "MariaDB 10.6 is not supported"),
    ],
)
def test_only_supported_series_are_accepted(fields: dict[str, Any], refused: str | None) -> None:
    if refused is None:
        spec(**fields)
    else:
        with pytest.raises(ValueError, match=refused):
            spec(**fields)


def test_mysql_upgrade_that_skips_an_lts_series_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a third LTS series (a hypothetical 10.7), 8.4 -> 10.7 skips 9.7.
    monkeypatch.setattr(models, "MYSQL_SERIES", ((8, 4), (9, 7), (10, 7)))
    assert models.check_version_change(Flavor.MYSQL, (8, 4), (9, 7)) is None
    assert models.check_version_change(Flavor.MYSQL, (9, 7), (10, 7)) is None
    refused = models.check_version_change(Flavor.MYSQL, (8, 4), (10, 7))
    assert refused is not None and "skips an LTS series" in refused
    refused = models.check_version_change(Flavor.MYSQL, (8, 4), (9, 1))
    assert refused is not None and "not supported" in refused


def test_crd_carries_the_mysql_lts_rules() -> None:
    rules = mysqlcluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"
    ]
    text = " ".join(rule["rule"] for rule in rules)
    assert "['8.4>9.7']" in text and "['8.4', '9.7']" in text


def test_server_version_prefers_a_version_tag_of_the_image() -> None:
    assert server_version(spec(flavor="mariadb", image="registry.local:5000/mariadb:10.11.9")) == (10, 11, 9)
    assert server_version(spec(flavor="mariadb", image="mariadb:latest")) == (10, 11)
    assert server_version(spec()) == (8, 4)


def test_auto_reseed_defaults_off_and_is_in_the_crd() -> None:
    assert spec().replication.auto_reseed is False
    schema = mysqlcluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    replication = schema["properties"]["spec"]["properties"]["replication"]["properties"]
    assert replication["autoReseed"]["type"] == "boolean"
    rules = [r["rule"] for r in schema["properties"]["spec"]["x-kubernetes-validations"]]
    assert any("oldSelf.version" in rule for rule in rules)


# Manifests -----------------------------------------------------------------------------------------


def test_pods_are_restarted_by_the_operator_not_the_statefulset_controller() -> None:
    assert build_statefulset(REF, spec())["spec"]["updateStrategy"] == {"type": "OnDelete"}


@pytest.mark.parametrize(
    ("instances", "primary", "replicas"), [(3, 0, 3), (2, 4, 5), (2, 1, 2), (2, None, 2)]
)
def test_statefulset_keeps_the_primary_until_it_moved(
    instances: int, primary: int | None, replicas: int
) -> None:
    assert statefulset_replicas(spec(instances=instances), primary) == replicas
    assert build_statefulset(REF, spec(instances=instances), replicas)["spec"]["replicas"] == replicas


def test_dynamic_config_key_does_not_change_the_pod_template_hash() -> None:
    base = spec(flavor="mariadb")
    live = spec(flavor="mariadb", mysqlConfig={"max_connections": "500"})
    restart = spec(flavor="mariadb", mysqlConfig={"table_open_cache_instances": "4"})
    assert config_hash(base) == config_hash(live)
    assert config_hash(base) != config_hash(restart)


# Handler glue --------------------------------------------------------------------------------------


def test_day2_acts_only_on_an_accepted_generation() -> None:
    valid = [{"type": "Valid", "status": "True", "observedGeneration": 7}]
    assert spec_accepted(valid, 7)
    assert not spec_accepted(valid, 8)
    assert not spec_accepted([{"type": "Valid", "status": "False", "observedGeneration": 8}], 8)
    state = ClusterDay2()
    cluster = spec(flavor="mariadb", mysqlConfig={"max_connections": "9", "innodb_buffer_pool_size": "1G"})
    accepted = topology_options(cluster, state, True)
    assert accepted["live_config"] == {"max_connections": "9"} and accepted["desired_instances"] == 3
    refused = topology_options(cluster, state, False)
    assert "desired_instances" not in refused and "live_config" not in refused
    state.seeds.shutdown()


def test_pod_revisions_read_the_controller_revision_hash() -> None:
    pod = {"metadata": {"name": "db-2", "uid": "u", "labels": {"controller-revision-hash": "db-abc"},
                        "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    (revision,) = pod_revisions([pod])
    assert (revision.ordinal, revision.revision, revision.terminating) == (2, "db-abc", True)


# SQL -----------------------------------------------------------------------------------------------


def test_mariadb_wipe_drops_user_databases_and_resets_gtid_history() -> None:
    assert MariadbDialect().wipe(["app", "we`ird"]) == [
        Statement("STOP SLAVE"),
        Statement("RESET SLAVE ALL"),
        Statement("DROP DATABASE IF EXISTS `app`"),
        Statement("DROP DATABASE IF EXISTS `we``ird`"),
        Statement("RESET MASTER"),
        Statement("SET GLOBAL gtid_slave_pos = ''"),
    ]


def test_mysql_wipe_and_clone_statements() -> None:
    dialect = MysqlDialect()
    assert dialect.wipe(["app"])[-1] == Statement("RESET BINARY LOGS AND GTIDS")
    assert dialect.clone_from("127.0.9.2", 3306, "root", "s3cret") == [
        Statement("SET GLOBAL super_read_only = OFF"),
        Statement("SET GLOBAL clone_valid_donor_list = %s", ("127.0.9.2:3306",)),
        Statement("CLONE INSTANCE FROM %s@%s:%s IDENTIFIED BY %s", ("root", "127.0.9.2", 3306, "s3cret")),
    ]
    assert dialect.install_clone == Statement("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")


class FakeSession:
    def __init__(self, rows: dict[str, Any]) -> None:
        self.rows, self.executed, self.host = rows, [], "127.0.9.1"

    def query_one(self, statement: Statement) -> dict[str, Any] | None:
        return self.rows.get(statement.sql)

    def execute(self, *statements: Statement) -> None:
        self.executed.extend(statements)


def test_clone_installs_the_plugin_when_missing_then_clones() -> None:
    dialect = MysqlDialect()
    session = FakeSession({})
    seed.clone(session, dialect, seed.SeedEndpoint("127.0.9.2", Login("root", "pw")))  # type: ignore[arg-type]
    assert [s.sql.split()[0] for s in session.executed] == ["INSTALL", "SET", "SET", "CLONE"]


def test_live_config_statements_per_flavor() -> None:
    assert MariadbDialect().set_variable("max-connections", "64") == Statement(
        "SET GLOBAL max_connections = %s", (64,))
    assert MysqlDialect().set_variable("max_allowed_packet", "64M") == Statement(
        "SET PERSIST max_allowed_packet = %s", (64 * 2**20,))
    assert MariadbDialect().variables_query(["a_b", "c"]).sql == "SELECT @@GLOBAL.a_b AS a_b, @@GLOBAL.c AS c"
    with pytest.raises(ValueError):
        MariadbDialect().set_variable("x; DROP", "1")


@pytest.mark.parametrize(
    ("wanted", "running", "same"),
    [("ON", 1, True), ("OFF", "0", True), ("64M", 67108864, True), ("2.5", 2.5, True),
     ("3", "3.000000", True), ("100", 200, False), ("ROW", "row", True)],
)
def test_running_values_compare_like_my_cnf_values(wanted: str, running: Any, same: bool) -> None:
    assert same_value(wanted, running) is same


def test_apply_live_sets_only_what_differs() -> None:
    session = FakeSession({"SELECT @@GLOBAL.long_query_time AS long_query_time, "
                           "@@GLOBAL.max_connections AS max_connections": {"max_connections": 151,
                                                                          "long_query_time": 3.0}})
    wanted = {"max_connections": "200", "long_query_time": "3"}
    changed = variables.apply_live(session, MariadbDialect(), wanted)  # type: ignore[arg-type]
    assert changed == ["max_connections=200"]
    assert session.executed == [Statement("SET GLOBAL max_connections = %s", (200,))]


def test_dynamic_keys_are_per_flavor() -> None:
    assert variables.is_dynamic(Flavor.MARIADB, "max-connections")
    assert not variables.is_dynamic(Flavor.MARIADB, "innodb_buffer_pool_size")
    assert variables.is_dynamic(Flavor.MYSQL, "max_execution_time")
    assert not variables.is_dynamic(Flavor.MARIADB, "max_execution_time")
    assert variable_value("yes") == 1


def test_seed_tools_take_passwords_from_an_option_file_only() -> None:
    dump, load = seed.dump_command(Path("/run/d.cnf")), seed.load_command(Path("/run/l.cnf"))
    assert dump[1] == "--defaults-extra-file=/run/d.cnf"
    assert {"--single-transaction", "--master-data=1", "--gtid", "--all-databases"} <= set(dump)
    assert "--init-command=SET SESSION sql_log_bin=0" in load
    assert not any("password" in word.lower() for word in dump + load)
