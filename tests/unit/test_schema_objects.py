from __future__ import annotations

import pytest
from pydantic import ValidationError

from mysql_operator.api.schema import MysqlDatabaseSpec, MysqlUserSpec, mysqldatabase_crd, mysqluser_crd
from mysql_operator.mysql import schema as sql

REF = {"name": "app-password", "key": "password"}


def user(**overrides: object) -> MysqlUserSpec:
    return MysqlUserSpec.model_validate(
        {"cluster": "shop", "user": "app", "passwordSecretRef": REF, **overrides}
    )


def test_defaults_keep_what_was_created_and_allow_any_host() -> None:
    spec = user()
    assert (spec.host, spec.retention_policy.value, spec.grants) == ("%", "Keep", [])
    assert MysqlDatabaseSpec(cluster="shop", name="orders").retention_policy.value == "Keep"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grants": [{"database": "shop", "privileges": ["SUPER"]}]}, "privileges"),
        ({"grants": [{"database": "shop", "privileges": ["FILE"]}]}, "privileges"),
        ({"grants": [{"database": "mysql", "privileges": ["SELECT"]}]}, "system schema"),
        ({"grants": [{"database": "*", "privileges": ["SELECT"]}]}, "pattern"),
        ({"grants": [{"database": "shop", "privileges": ["SELECT", "SELECT"]}]}, "twice"),
        ({"grants": [{"database": "shop", "privileges": []}]}, "at least 1"),
        ({"host": "10.0.0.1'; DROP USER x; --"}, "pattern"),
        ({"host": "a b"}, "pattern"),
        ({"user": "root"}, "reserved"),
        ({"user": "mysqlop_admin"}, "reserved"),
        ({"user": "x" * 33}, "at most 32"),
        ({"password": "inline"}, "Extra inputs"),
    ],
)
def test_users_refuse_global_privileges_system_schemas_bad_hosts_and_inline_passwords(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        user(**overrides)


@pytest.mark.parametrize(
    "host", ["%", "10.0.0.%", "app.example.com", "10.1.0.0/255.255.0.0", "::1", "localhost"]
)
def test_host_patterns_mysql_understands_are_accepted(host: str) -> None:
    assert user(host=host).host == host


def test_database_names_refuse_system_schemas_and_quotes() -> None:
    for bad in ("mysql", "INFORMATION_SCHEMA", "a`b", "a b", ""):
        with pytest.raises(ValidationError):
            MysqlDatabaseSpec(cluster="shop", name=bad)


def test_grant_on_a_database_escapes_its_wildcards_but_a_table_grant_does_not() -> None:
    spec = user(
        grants=[
            {"database": "shop_1", "privileges": ["SELECT", "INSERT"]},
            {"database": "shop_1", "table": "orders", "privileges": ["UPDATE"], "withGrantOption": True},
        ]
    )
    keys = sql.grant_keys(spec.grants)
    assert [k.text() for k in keys] == [
        "INSERT, SELECT ON `shop\\_1`.*",
        "UPDATE ON `shop_1`.`orders` WITH GRANT OPTION",
    ]
    [grant, _] = sql.grant_statements("app", "%", keys)
    assert grant.sql == "GRANT INSERT, SELECT ON `shop\\_1`.* TO %s@%s" and grant.args == ("app", "%")


def test_removed_or_changed_grants_are_revoked_and_kept_ones_are_not() -> None:
    old = sql.grant_keys(
        user(
            grants=[{"database": "a", "privileges": ["SELECT"]}, {"database": "b", "privileges": ["SELECT"]}]
        ).grants
    )
    new = sql.grant_keys(
        user(
            grants=[{"database": "a", "privileges": ["SELECT"]}, {"database": "b", "privileges": ["INSERT"]}]
        ).grants
    )
    [revoke] = sql.revoke_statements("app", "%", old, new)
    assert revoke.sql == "REVOKE SELECT ON `b`.* FROM %s@%s"


def test_passwords_go_as_parameters_never_into_the_sql_text() -> None:
    statement = sql.create_user(user(), "s3cret'; DROP DATABASE x; --")
    assert "s3cret" not in statement.sql and "s3cret'; DROP DATABASE x; --" in statement.args


def test_crds_print_cluster_readiness_and_retention() -> None:
    for crd, name in ((mysqldatabase_crd(), "Database"), (mysqluser_crd(), "User")):
        version = crd["spec"]["versions"][0]
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[:4] == ["Cluster", name, "Ready", "Retention"]
        assert "status" in version["subresources"]
    privileges = mysqluser_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["grants"]["items"]["properties"]["privileges"]["items"]
    assert "SUPER" not in privileges["enum"] and "SELECT" in privileges["enum"]
