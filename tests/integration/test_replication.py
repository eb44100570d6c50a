"""Replication topology against three real servers of each flavor, driven through reconcile_topology."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from mysql_operator.conventions import OPERATOR_USER, REPLICATION_USER, Role
from mysql_operator.mysql.session import Login, Statement, open_session
from mysql_operator.topology.decide import ReplicationMode
from mysql_operator.topology.reconcile import TopologyResult
from tests.integration.conftest import CREDENTIALS, Cluster, ready, wait_for
from tests.integration.servers import DbServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def app_connection(server: DbServer) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=server.host,
        user=CREDENTIALS["app-user"],
        password=CREDENTIALS["app-password"],
        database="shop",
        connect_timeout=2,
        read_timeout=10,
        write_timeout=10,
        autocommit=True,
    )


def count_rows(server: DbServer, table: str = "shop.items") -> int:
    return int(server.sql(f"SELECT COUNT(*) FROM {table}")[0][0])  # type: ignore[call-overload]


def ids(server: DbServer) -> set[int]:
    return {int(row[0]) for row in server.sql("SELECT id FROM shop.items")}  # type: ignore[call-overload]


def checksum(server: DbServer) -> int:
    return int(server.sql("CHECKSUM TABLE shop.items")[0][1])  # type: ignore[call-overload]


def role_of(result: TopologyResult, ordinal: int) -> Role:
    return next(i.role for i in result.instances if i.ordinal == ordinal)


def bootstrap(cluster: Cluster) -> TopologyResult:
    # Ready, and nothing left to do (semi-sync switched on once a replica acknowledges).
    result = cluster.reconcile_until(lambda r: ready(r) and not r.actions, timeout=60)
    with app_connection(cluster.servers[result.primary or 0]) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, note VARCHAR(40))")
    return result


def gtid_equal_everywhere(cluster: Cluster, ordinals: list[int]) -> bool:
    return len({cluster.servers[o].executed_gtids() for o in ordinals}) == 1


class Writer(threading.Thread):
    """Inserts rows one by one on a server; records every acknowledged (committed) id."""

    def __init__(self, server: DbServer, start_id: int = 1) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.next_id = start_id
        self.acknowledged: list[int] = []
        self.stopping = threading.Event()
        self.error = ""

    def run(self) -> None:
        try:
            with app_connection(self.server) as connection, connection.cursor() as cursor:
                while not self.stopping.is_set():
                    cursor.execute("INSERT INTO items (id, note) VALUES (%s, 'w')", (self.next_id,))
                    self.acknowledged.append(self.next_id)
                    self.next_id += 1
        except pymysql.err.MySQLError as error:
            self.error = str(error)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def test_bootstrap_attaches_replicas_and_replicates_writes(cluster: Cluster) -> None:
    result = bootstrap(cluster)

    assert result.primary == 0
    assert [i.role for i in result.instances] == [Role.PRIMARY, Role.REPLICA, Role.REPLICA]
    assert {c.type: c.status for c in result.conditions} == {
        "Ready": True,
        "Replicating": True,
        "Degraded": False,
    }
    reasons = [reason for reason, _ in cluster.events()]
    assert "PrimaryBootstrapped" in reasons and reasons.count("ReplicaAttached") == 2
    with app_connection(cluster.servers[0]) as connection, connection.cursor() as cursor:
        cursor.executemany("INSERT INTO items VALUES (%s, 'x')", [(i,) for i in range(1, 101)])
    for replica in cluster.servers[1:]:
        wait_for(lambda r=replica: count_rows(r) == 100, 20, f"rows on {replica.host}")
        assert replica.fenced() and replica.replicates_by_gtid()
        with pytest.raises(pymysql.err.OperationalError), app_connection(replica) as c, c.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1000, 'refused on a replica')")
    # A steady cluster needs no action.
    assert cluster.reconcile().actions == ()


@pytest.mark.parametrize("mode", [ReplicationMode.ASYNC, ReplicationMode.SEMI_SYNC])
def test_failover_after_kill_promotes_a_replica_holding_acknowledged_writes(
    cluster: Cluster, mode: ReplicationMode
) -> None:
    cluster.mode = mode
    bootstrap(cluster)
    if mode is ReplicationMode.SEMI_SYNC:
        assert cluster.servers[0].semi_sync_source_enabled()
        assert cluster.servers[0].semi_sync_wait_point() == "AFTER_SYNC"
    writer = Writer(cluster.servers[0])
    writer.start()
    wait_for(lambda: len(writer.acknowledged) >= 300, 60, "writes acknowledged before the kill")

    killed_at = time.monotonic()
    cluster.servers[0].kill()
    writer.stop()
    result = cluster.reconcile_until(lambda r: r.primary not in (None, 0), timeout=60)
    new = cluster.servers[result.primary or 0]
    writable_after = time.monotonic() - killed_at

    assert new.sql("SELECT @@read_only")[0][0] == 0
    transitions = [r.transition for r in cluster.results if r.transition]
    assert len(transitions) == 1 and transitions[0].kind == "failover" and transitions[0].from_ordinal == 0
    other = cluster.servers[3 - new.ordinal]
    wait_for(lambda: gtid_equal_everywhere(cluster, [new.ordinal, other.ordinal]), 20, "the other replica")
    lost = set(writer.acknowledged) - ids(new)
    print(
        f"\nFAILOVER mode={mode.value} acknowledged={len(writer.acknowledged)} lost={len(lost)} "
        f"kill->writable={writable_after:.2f}s promote={transitions[0].seconds:.3f}s"
    )
    if mode is ReplicationMode.SEMI_SYNC:
        assert lost == set()
    assert role_of(result, other.ordinal) is Role.REPLICA
    # The new primary takes writes, and the remaining replica follows it.
    with app_connection(new) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO items VALUES (999999, 'after failover')")
    wait_for(lambda: 999999 in ids(other), 20, "write after failover on the remaining replica")


def test_returned_old_primary_is_fenced_then_rejoins_as_replica(cluster: Cluster) -> None:
    bootstrap(cluster)
    with app_connection(cluster.servers[0]) as connection, connection.cursor() as cursor:
        cursor.executemany("INSERT INTO items VALUES (%s, 'before')", [(i,) for i in range(1, 51)])
    wait_for(lambda: gtid_equal_everywhere(cluster, [0, 1, 2]), 20, "replicas caught up")
    old = cluster.servers[0]
    old.kill()
    result = cluster.reconcile_until(lambda r: r.primary not in (None, 0), timeout=60)
    new = cluster.servers[result.primary or 0]
    with app_connection(new) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO items VALUES (51, 'after failover')")

    # The old primary comes back writable (worst case: its my.cnf does not say read_only).
    old.extra_config["read_only"] = "OFF"
    old.start()
    assert old.sql("SELECT @@read_only")[0][0] == 0
    fenced = cluster.reconcile()
    assert fenced.primary == new.ordinal
    assert "InstanceFenced" in [e.reason for e in fenced.events]
    assert old.fenced()

    result = cluster.reconcile_until(ready, timeout=60)
    assert role_of(result, 0) is Role.REPLICA
    wait_for(lambda: 51 in ids(old), 20, "the old primary received the write made after failover")
    assert count_rows(old) == 51


def test_old_primary_with_errant_transactions_is_reported_and_not_rejoined(cluster: Cluster) -> None:
    bootstrap(cluster)
    wait_for(lambda: gtid_equal_everywhere(cluster, [0, 1, 2]), 20, "replicas caught up")
    old = cluster.servers[0]
    old.kill()
    result = cluster.reconcile_until(lambda r: r.primary not in (None, 0), timeout=60)
    new_primary = result.primary
    # Transactions the old primary committed that no replica ever received.
    old.start()
    old.sql("INSERT INTO shop.items VALUES (7, 'never replicated')")

    for _ in range(3):
        result = cluster.reconcile()
    assert result.primary == new_primary
    assert role_of(result, 0) is Role.NONE
    # Async mode without autoReseed: the former primary's extra write is reported, never wiped.
    errant = [p for p in result.problems if p.reason == "DeposedPrimaryDiverged" and p.ordinal == 0]
    assert errant and old.origin_mark() in errant[0].message
    assert "DeposedPrimaryDiverged" in [e[0] for e in cluster.events()]
    assert old.replica_status() == []
    degraded = next(c for c in result.conditions if c.type == "Degraded")
    assert degraded.status and "DeposedPrimaryDiverged" in [p.reason for p in result.problems]
    assert count_rows(cluster.servers[new_primary or 0]) == 0


def test_switchover_there_and_back_three_times_keeps_data_identical(cluster: Cluster) -> None:
    cluster.mode = ReplicationMode.SEMI_SYNC
    bootstrap(cluster)
    next_id = 1
    for round_ in range(3):
        for target in (1, 0):
            result = cluster.reconcile_until(
                lambda r, t=target: r.primary == t and ready(r), timeout=60, switchover_to=target
            )
            with app_connection(cluster.servers[target]) as connection, connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO items VALUES (%s, %s)",
                    [(i, f"round {round_} on {target}") for i in range(next_id, next_id + 20)],
                )
            next_id += 20
            assert [i.role for i in result.instances].count(Role.PRIMARY) == 1
    switchovers = [r.transition for r in cluster.results if r.transition]
    assert [(t.from_ordinal, t.to_ordinal) for t in switchovers if t] == [(0, 1), (1, 0)] * 3
    wait_for(lambda: gtid_equal_everywhere(cluster, [0, 1, 2]), 30, "all instances caught up")
    sums = {checksum(s) for s in cluster.servers}
    assert len(sums) == 1 and count_rows(cluster.servers[2]) == 120
    result = cluster.reconcile()
    assert ready(result) and result.actions == ()
    for server in cluster.servers:
        status = server.replica_status()
        assert server.ordinal == 0 or status, "replicas keep replicating"


def test_split_brain_fences_the_writable_replica_and_keeps_the_remembered_primary(cluster: Cluster) -> None:
    bootstrap(cluster)
    rogue = cluster.servers[1]
    rogue.sql("SET GLOBAL read_only=OFF")
    result = cluster.reconcile()
    assert result.primary == 0
    assert rogue.sql("SELECT @@read_only")[0][0] == 1
    assert any(p.reason == "SplitBrain" for p in result.problems)
    assert cluster.servers[0].sql("SELECT @@read_only")[0][0] == 0

    # Now a real divergence: the rogue stops replicating and both take writes. Memory names 0: the
    # rogue is fenced, 0 keeps taking writes (no human needed).
    rogue.sql("STOP REPLICA")
    rogue.sql("SET GLOBAL read_only=OFF")
    rogue.sql("INSERT INTO shop.items VALUES (1, 'rogue')")
    cluster.servers[0].sql("INSERT INTO shop.items VALUES (2, 'primary')")
    result = cluster.reconcile()
    assert result.primary == 0
    assert rogue.sql("SELECT @@read_only")[0][0] == 1
    assert cluster.servers[0].sql("SELECT @@read_only")[0][0] == 0
    assert any(p.reason == "SplitBrain" for p in result.problems)


def test_operator_logs_in_to_a_fresh_and_to_a_restarted_server(cluster: Cluster) -> None:
    # MySQL's caching_sha2_password takes its full-authentication path (RSA key exchange without TLS)
    # on the first login of a user after each server start: once fresh, once after a restart.
    bootstrap(cluster)
    replica = cluster.servers[1]
    logins = (
        Login(OPERATOR_USER, CREDENTIALS["operator-password"]),
        Login(REPLICATION_USER, CREDENTIALS["replication-password"]),
        Login("root", CREDENTIALS["root-password"]),
    )
    for restarted in (False, True):
        if restarted:
            replica.kill()
            replica.start()
        for login in logins:
            with open_session(replica.host, login) as session:
                row = session.query_one(Statement("SELECT CURRENT_USER() AS who"))
            assert row is not None and str(row["who"]).startswith(login.user), (restarted, login.user)
    result = cluster.reconcile_until(lambda r: ready(r) and not r.actions, timeout=60)
    assert role_of(result, 1) is Role.REPLICA
