"""MysqlDatabase/MysqlUser SQL against real servers: created on the primary as the operator's user,
replicated, grants exact (escaped wildcards), revoked when removed, dropped, kept across a switchover."""

from __future__ import annotations

import pymysql
import pytest

from mysql_operator.api.schema import MysqlDatabaseSpec, MysqlUserSpec
from mysql_operator.mysql import actions
from mysql_operator.mysql import schema as sql
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.session import Login, MysqlError, open_session
from tests.integration.conftest import CREDENTIALS, Cluster, ready, wait_for

pytestmark = pytest.mark.integration

OPERATOR = Login("mysqlop_admin", CREDENTIALS["operator-password"])


def user_spec(**overrides: object) -> MysqlUserSpec:
    return MysqlUserSpec.model_validate(
        {
            "cluster": "db",
            "user": "reporter",
            "passwordSecretRef": {"name": "s", "key": "password"},
            "grants": [{"database": "shop_1", "privileges": ["SELECT", "INSERT"]}],
            **overrides,
        }
    )


def login(host: str, user: str, password: str, database: str | None = None) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=host, user=user, password=password, database=database, connect_timeout=5, autocommit=True
    )


def can(host: str, password: str, statement: str) -> bool:
    try:
        with login(host, "reporter", password) as conn, conn.cursor() as cursor:
            cursor.execute(statement)
        return True
    except pymysql.err.OperationalError:
        return False


def test_database_and_user_made_on_the_primary_replicate_and_grants_are_exact(cluster: Cluster) -> None:
    cluster.reconcile_until(lambda r: ready(r) and r.primary == 0, timeout=120)
    primary, replica = cluster.servers[0].host, cluster.servers[1].host
    with open_session(primary, OPERATOR) as session:
        for name in ("shop_1", "shopx1"):  # shopx1 would match an unescaped `shop_1` grant
            session.execute(*sql.create_database(MysqlDatabaseSpec(cluster="db", name=name)))
        session.execute(*sql.create_database(MysqlDatabaseSpec(cluster="db", name="shop_1")))  # idempotent
        spec = user_spec()
        session.execute(sql.create_user(spec, "pw-1"))
        sql.apply_grants(session, spec.user, spec.host, [], sql.grant_keys(spec.grants))
        session.execute(sql.create_user(spec, "pw-1"))  # IF NOT EXISTS: idempotent
    assert can(primary, "pw-1", "CREATE TABLE shop_1.t (id INT PRIMARY KEY)") is False  # no CREATE
    with open_session(primary, OPERATOR) as session:
        session.execute(sql.Statement("CREATE TABLE shop_1.t (id INT PRIMARY KEY)"))
        session.execute(sql.Statement("CREATE TABLE shopx1.t (id INT PRIMARY KEY)"))
    assert can(primary, "pw-1", "INSERT INTO shop_1.t VALUES (1)")
    assert not can(primary, "pw-1", "SELECT * FROM shopx1.t"), "`_` in the grant acted as a wildcard"
    # replicated: the user logs in on a replica and sees the row
    wait_for(lambda: can(replica, "pw-1", "SELECT * FROM shop_1.t"), 30, "the user on a replica")

    # a new password and one grant less: revoked, re-passworded
    changed = user_spec(grants=[{"database": "shop_1", "privileges": ["SELECT"]}])
    with open_session(primary, OPERATOR) as session:
        session.execute(sql.alter_user(changed, "pw-2"))
        sql.apply_grants(
            session, changed.user, changed.host, sql.grant_keys(spec.grants), sql.grant_keys(changed.grants)
        )
        # revoking again what is gone already is not an error
        sql.apply_grants(session, changed.user, changed.host, sql.grant_keys(spec.grants), [])
        sql.apply_grants(session, changed.user, changed.host, [], sql.grant_keys(changed.grants))
    assert not can(primary, "pw-1", "SELECT 1")
    assert can(primary, "pw-2", "SELECT * FROM shop_1.t")
    assert not can(primary, "pw-2", "INSERT INTO shop_1.t VALUES (2)")

    # a switchover keeps them: they are in every instance's data, not re-created
    cluster.reconcile_until(lambda r: ready(r) and r.primary == 1, timeout=120, switchover_to=1)
    assert can(replica, "pw-2", "SELECT * FROM shop_1.t")

    with open_session(replica, OPERATOR) as session:  # instance 1 is the primary now
        session.execute(sql.drop_user("reporter", "%"), sql.drop_database("shop_1"))
        session.execute(sql.drop_user("reporter", "%"), sql.drop_database("shop_1"))  # IF EXISTS
        assert not sql.user_exists(session, "reporter", "%")
        assert not sql.database_exists(session, "shop_1")
    wait_for(lambda: not can(primary, "pw-2", "SELECT 1"), 30, "the drop replicated")


def test_schema_work_refuses_an_instance_that_is_not_the_serving_primary(cluster: Cluster) -> None:
    """status.primary can name an instance a role change has just fenced; on MariaDB the operator's
    user writes through read_only, so the schema session checks first and writes nothing there."""
    from mysql_operator.handlers.schema import NotYet, Primary, primary_session

    result = cluster.reconcile_until(ready, timeout=120)
    serving = cluster.servers[result.primary]
    other = next(s for i, s in enumerate(cluster.servers) if i != result.primary)
    gtids = "SELECT @@GLOBAL.gtid_executed AS g" if cluster.flavor.value == "mysql" else \
        "SELECT @@GLOBAL.gtid_current_pos AS g"
    with open_session(other.host, OPERATOR) as session:
        before = session.query_one(sql.Statement(gtids))
    with pytest.raises(NotYet, match="read-only: not the serving primary"), \
            primary_session(Primary(other.host, "db-x", OPERATOR, flavor=cluster.flavor)) as session:
        session.execute(*sql.create_database(MysqlDatabaseSpec(cluster="db", name="errant_1")))
    with open_session(other.host, OPERATOR) as session:
        assert session.query_one(sql.Statement(gtids)) == before
        assert not sql.database_exists(session, "errant_1")
    with primary_session(Primary(serving.host, "db-y", OPERATOR, flavor=cluster.flavor)) as session:
        session.execute(*sql.create_database(MysqlDatabaseSpec(cluster="db", name="made_1")))  # accepted
        assert sql.database_exists(session, "made_1")
        session.execute(sql.drop_database("made_1"))
        # A fence of the server (a switchover starting) ends this session, which checked read_only
        # before the fence: it writes nothing after it. The fence spares the operator's other sessions.
        dialect = dialect_for(cluster.flavor)
        with open_session(serving.host, OPERATOR) as fencer, open_session(serving.host, OPERATOR) as probe:
            actions.fence(fencer, dialect)
            probe.query_one(sql.Statement("SELECT 1 AS one"))
            with pytest.raises(MysqlError):
                session.execute(*sql.create_database(MysqlDatabaseSpec(cluster="db", name="late_1")))
            assert not sql.database_exists(probe, "late_1")
            actions.unfence(fencer, dialect)
            actions.restore_fence_bypass(fencer, dialect)
