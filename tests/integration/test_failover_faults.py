"""Failover under the faults issue 9 names, against real servers through reconcile_topology: a
primary that stalls past the grace period and resumes (semi-sync), two kills in a row, and a primary
refusing connections (too many connections) that must not fail over. A client writes through "the
Service" (whichever instance the pass labels primary) and records every acknowledged commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pymysql
import pytest

from mysql_operator.conventions import KEY_APP_PASSWORD, KEY_APP_USER, KEY_OPERATOR_PASSWORD, OPERATOR_USER
from mysql_operator.mysql import actions
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.session import Login, open_session
from mysql_operator.topology.decide import ReplicationMode
from mysql_operator.topology.reconcile import TopologyResult, reconcile_topology
from tests.integration.conftest import CREDENTIALS, TICK, Cluster, ready, wait_for
from tests.integration.servers import DbServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def app_connection(server: DbServer) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=server.host, user=CREDENTIALS["app-user"], password=CREDENTIALS["app-password"],
        database="shop", connect_timeout=2, read_timeout=3, write_timeout=3, autocommit=True,
    )


def ids(server: DbServer) -> set[int]:
    return {int(row[0]) for row in server.sql("SELECT id FROM shop.items")}  # type: ignore[call-overload]


class ServiceWriter(threading.Thread):
    """Inserts unique ids through whatever instance is labelled primary right now; an id counts as
    acknowledged only when its COMMIT returned. Reconnects (bounded pause) when the primary moves."""

    def __init__(self, cluster: Cluster, primary: Callable[[], int | None]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.primary = primary
        self.next_id = 1
        self.acknowledged: list[int] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            ordinal = self.primary()
            if ordinal is None:
                time.sleep(0.1)
                continue
            try:
                server = self.cluster.servers[ordinal]
                with app_connection(server) as connection, connection.cursor() as cursor:
                    while not self.stopping.is_set() and self.primary() == ordinal:
                        cursor.execute("INSERT INTO items (id, note) VALUES (%s, 'w')", (self.next_id,))
                        self.acknowledged.append(self.next_id)
                        self.next_id += 1
            except pymysql.err.MySQLError:
                self.failures += 1
                self.next_id += 1  # the outcome of that id is unknown: never reuse it
                time.sleep(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def start(cluster: Cluster) -> tuple[TopologyResult, ServiceWriter]:
    cluster.mode = ReplicationMode.SEMI_SYNC
    result = cluster.reconcile_until(lambda r: ready(r) and not r.actions, timeout=90)
    primary = cluster.servers[result.primary or 0]
    with app_connection(primary) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, note VARCHAR(40))")
    # The "Service": the primary of the latest pass, as the role label would route.
    writer = ServiceWriter(cluster, lambda: cluster.results[-1].primary if cluster.results else None)
    writer.start()
    return result, writer


def assert_no_acknowledged_write_lost(cluster: Cluster, writer: ServiceWriter, primary: int) -> None:
    lost = set(writer.acknowledged) - ids(cluster.servers[primary])
    print(f"\nacknowledged={len(writer.acknowledged)} lost={len(lost)} client errors={writer.failures}")
    assert writer.acknowledged and lost == set()


def test_stalled_primary_resumes_fenced_and_rejoins_without_a_human(cluster: Cluster) -> None:
    _, writer = start(cluster)
    wait_for(lambda: len(writer.acknowledged) >= 200, 60, "writes before the stall")
    old = cluster.servers[0]
    old.pause()
    try:
        result = cluster.reconcile_until(lambda r: r.primary not in (None, 0), timeout=90)
        new = result.primary or 0
        wait_for(lambda: len(writer.acknowledged) >= 400, 60, "writes on the new primary")
    finally:
        old.resume()
    # The resumed old primary is writable with a commit stuck waiting for an acknowledgement.
    result = cluster.reconcile_until(
        lambda r: ready(r) and r.primary == new and all(i.ready for i in r.instances), timeout=120
    )
    assert old.sql("SELECT @@read_only")[0][0] == 1
    assert cluster.servers[new].sql("SELECT @@read_only")[0][0] == 0
    primaries_after = [r.primary for r in cluster.results if r.primary is not None]
    assert primaries_after[primaries_after.index(new):].count(0) == 0, "the old primary never came back"
    writer.stop()
    assert_no_acknowledged_write_lost(cluster, writer, new)
    wait_for(lambda: ids(old) >= set(writer.acknowledged), 30, "the rejoined old primary has every write")
    reasons = [reason for reason, _ in cluster.events()]
    assert "InstanceFenced" in reasons
    discarded = cluster.memory.discarded
    print(f"discarded on rejoin: {[(d.ordinal, d.count, d.gtids) for d in discarded]}")


def test_kill_then_kill_the_new_primary_again_leaves_a_primary_each_time(cluster: Cluster) -> None:
    _, writer = start(cluster)
    wait_for(lambda: len(writer.acknowledged) >= 200, 60, "writes before the first kill")
    first = cluster.servers[0]
    first.kill()
    result = cluster.reconcile_until(lambda r: r.primary not in (None, 0), timeout=90)
    second = result.primary or 0
    first.start()  # the StatefulSet brings the pod back; rejoining it is the operator's job
    cluster.reconcile_until(lambda r: ready(r) and r.primary == second, timeout=120)
    wait_for(lambda: len(writer.acknowledged) >= 400, 60, "writes on the second primary")

    cluster.servers[second].kill()
    result = cluster.reconcile_until(lambda r: r.primary not in (None, second), timeout=90)
    third = result.primary or 0
    wait_for(lambda: len(writer.acknowledged) >= 600, 60, "writes on the third primary")
    writer.stop()
    assert_no_acknowledged_write_lost(cluster, writer, third)
    cluster.servers[second].start()
    cluster.reconcile_until(lambda r: ready(r) and r.primary == third, timeout=120)
    kinds = [(t.kind, t.from_ordinal, t.to_ordinal) for r in cluster.results if (t := r.transition)]
    assert kinds == [("failover", 0, second), ("failover", second, third)]


def test_too_many_connections_on_the_primary_is_no_failover(cluster: Cluster) -> None:
    result, writer = start(cluster)
    writer.stop()
    primary = cluster.servers[result.primary or 0]
    primary.sql("SET GLOBAL max_connections=8")
    held: list[pymysql.connections.Connection] = []  # type: ignore[type-arg]
    try:
        for _ in range(20):  # fill every slot, the one kept for admins included
            try:
                held.append(primary.root_connection())
            except pymysql.err.OperationalError as error:
                assert error.args[0] == 1040
                break
        deadline = time.monotonic() + 4 * cluster.settings.grace_period + 3
        while time.monotonic() < deadline:
            result = cluster.reconcile()
            assert result.primary == primary.ordinal and result.transition is None
            time.sleep(0.2)
        reasons = {p.reason for r in cluster.results for p in r.problems}
        assert "PrimaryBusy" in reasons, "the operator's own probe was refused too (1040): busy, not dead"
    finally:
        for connection in held:
            connection.close()
        primary.sql("SET GLOBAL max_connections=151")
    result = cluster.reconcile_until(ready, timeout=60)
    assert result.primary == primary.ordinal
    assert not any(r.transition for r in cluster.results)


class KubeletCluster(Cluster):
    """The cluster with a Kubernetes-level fence: deleting the pod kills mysqld (the kubelet) and the
    StatefulSet starts it again (here in a thread, as it would a moment later)."""

    fenced: list[tuple[int, int]]  # (ordinal, read_only of every other instance at that moment)

    def fence_pod(self, ordinal: int) -> bool:
        others = [s.sql("SELECT @@read_only")[0][0] for s in self.servers if s.ordinal != ordinal]
        self.fenced.append((ordinal, int(min(others))))  # type: ignore[call-overload]
        server = self.servers[ordinal]
        server.kill()
        threading.Thread(target=server.start, daemon=True).start()
        return True

    def reconcile(self, switchover_to: int | None = None) -> TopologyResult:
        result = reconcile_topology(
            self.endpoints, CREDENTIALS, self.flavor, self.mode, self.memory, switchover_to,
            time.time(), self.settings, fence_pod=self.fence_pod,
        )
        self.memory = result.memory
        self.results.append(result)
        return result


def test_unreachable_old_primary_is_fenced_at_pod_level_before_any_promotion(
    servers: list[DbServer],
) -> None:
    cluster = KubeletCluster(servers)
    cluster.fenced = []
    _, writer = start(cluster)
    wait_for(lambda: len(writer.acknowledged) >= 200, 60, "writes before the stall")
    servers[0].pause()  # SIGKILL (the fence) ends a stopped process too
    result = cluster.reconcile_until(lambda r: r.primary not in (None, 0), timeout=90)
    new = result.primary or 0
    # The pod was fenced once, while no other instance was writable yet.
    assert cluster.fenced == [(0, 1)]
    assert 0 in result.pods_fenced
    wait_for(lambda: len(writer.acknowledged) >= 400, 60, "writes on the new primary")
    result = cluster.reconcile_until(
        lambda r: ready(r) and r.primary == new and all(i.ready for i in r.instances), timeout=120
    )
    writer.stop()
    assert_no_acknowledged_write_lost(cluster, writer, new)
    assert len(cluster.fenced) == 1, "fenced once, not again every pass"
    assert servers[0].sql("SELECT @@read_only")[0][0] == 1


def test_fence_binds_root_too_and_promotion_gives_it_back(cluster: Cluster) -> None:

    result = cluster.reconcile_until(lambda r: ready(r) and not r.actions, timeout=90)
    primary = cluster.servers[result.primary or 0]
    primary.sql("CREATE TABLE IF NOT EXISTS shop.fence (id INT PRIMARY KEY)")
    dialect = dialect_for(cluster.flavor)
    operator = Login(OPERATOR_USER, CREDENTIALS[KEY_OPERATOR_PASSWORD])
    with open_session(primary.host, operator) as session:
        actions.fence(session, dialect)
    # A new root session (READ_ONLY ADMIN through ALL PRIVILEGES) cannot write on the fenced instance:
    # neither root@'%' (instances initialised before root became local) nor root@localhost (the only
    # root the image creates now; here over the server's socket), nor the application user.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        primary.sql("INSERT INTO shop.fence VALUES (1)")
    assert refused.value.args[0] == 1290
    local_root = pymysql.connect(unix_socket=str(primary.socket), user="root", password="", autocommit=True)
    app = pymysql.connect(host=primary.host, user=CREDENTIALS[KEY_APP_USER],
                          password=CREDENTIALS[KEY_APP_PASSWORD], database="shop", autocommit=True)
    for who, connection in (("root@localhost", local_root), ("the application user", app)):
        with (
            connection,
            connection.cursor() as cursor,
            pytest.raises(pymysql.err.OperationalError) as refused,
        ):
            cursor.execute("INSERT INTO shop.fence VALUES (1)")
        assert refused.value.args[0] == 1290, who
    with open_session(primary.host, operator) as session:
        actions.promote(session, dialect)
    primary.sql("INSERT INTO shop.fence VALUES (2)")
    assert primary.sql("SELECT id FROM shop.fence") == [(2,)]


def test_preferred_primary_killed_then_back_is_switched_back_to_and_every_replica_follows(
    cluster: Cluster,
) -> None:
    """switchoverTo names the primary; it is killed (a failover elsewhere), comes back, rejoins, and
    the operator switches back to it at once: the instance the failover promoted seconds earlier is
    demoted and must replicate again, with every write kept, pass after pass. Semi-sync: the killed
    primary's unacknowledged tail is discarded by itself (in async it would wait for autoReseed).
    Clients write all along, so every pass reads replicas already ahead of its primary read."""
    _, writer = start(cluster)
    wait_for(lambda: len(writer.acknowledged) >= 100, 60, "writes before the switchover")
    cluster.reconcile_until(lambda r: ready(r) and r.primary == 1, timeout=120, switchover_to=1)
    wait_for(lambda: len(writer.acknowledged) >= 200, 60, "writes on the preferred primary")
    cluster.servers[1].kill()
    result = cluster.reconcile_until(lambda r: r.primary not in (None, 1), timeout=90, switchover_to=1)
    interim = result.primary or 0
    wait_for(lambda: len(writer.acknowledged) >= 300, 60, "writes on the interim primary")
    cluster.servers[1].start()
    cluster.reconcile_until(lambda r: ready(r) and r.primary == 1 and all(i.ready for i in r.instances),
                            timeout=180, switchover_to=1)
    wait_for(lambda: len(writer.acknowledged) >= 400, 60, "writes after the switch back")
    for _ in range(5):  # it stays so: every replica keeps replicating
        result = cluster.reconcile(1)
        assert ready(result) and result.primary == 1, [(i.pod_name, i.message) for i in result.instances]
        time.sleep(1)
    writer.stop()
    assert_no_acknowledged_write_lost(cluster, writer, 1)
    wait_for(lambda: ids(cluster.servers[interim]) >= set(writer.acknowledged), 30,
             "the demoted interim primary has every write")
    kinds = [(t.kind, t.from_ordinal, t.to_ordinal) for r in cluster.results if (t := r.transition)]
    assert kinds == [("switchover", 0, 1), ("failover", 1, interim), ("switchover", interim, 1)], kinds


def test_a_primary_lost_before_any_replica_was_seeded_is_waited_for_not_replaced(
    servers: list[DbServer],
) -> None:
    # Async (no acknowledgement to wait for): the instances that never replicated from the primary
    # hold none of its history, and promoting one would start the data over. Nobody is promoted; the
    # primary that comes back is the primary again and seeds them.
    alone = Cluster(servers[:1])
    alone.reconcile_until(lambda r: ready(r) and r.primary == 0 and not r.actions, timeout=90)
    primary = servers[0]
    with app_connection(primary) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, note VARCHAR(40))")
        cursor.executemany("INSERT INTO items VALUES (%s, 'w')", [(i,) for i in range(100)])
    alone.reconcile()  # the pass that records the primary's history
    primary.kill()
    cluster = Cluster(servers, memory=alone.memory)  # the replicas' pods start now: empty
    deadline = time.monotonic() + 10 * cluster.settings.grace_period
    while time.monotonic() < deadline:
        assert cluster.reconcile().primary in (None, 0)
        time.sleep(TICK)
    assert [s.sql("SELECT @@read_only")[0][0] for s in servers[1:]] == [1, 1]
    problems = {p.reason for r in cluster.results for p in r.problems}
    assert {"NeverReplicated", "FailoverBlocked"} <= problems, problems
    assert not [r.transition for r in cluster.results if r.transition]

    primary.start()  # the StatefulSet brings the pod back with its data
    cluster.reconcile_until(
        lambda r: ready(r) and r.primary == 0 and all(i.ready for i in r.instances), timeout=180
    )
    wait_for(lambda: all(ids(s) == set(range(100)) for s in servers[1:]), 60, "the replicas seeded from 0")
