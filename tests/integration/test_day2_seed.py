"""Seeding and re-seeding against real servers of each flavor, driven through reconcile_topology.

MariaDB seeds with a logical dump piped into the target, MySQL with CLONE (the recipient shuts down to
load the copy; the harness restarts it as a kubelet would). The servers live on 127.<IT_NET>.163.x
(their own addresses: other integration tests use 127.<IT_NET>.20.x).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from mysql_operator.topology.decide import ReplicationMode
from mysql_operator.topology.reconcile import (
    InstanceEndpoint,
    TopologyMemory,
    TopologyResult,
    TopologySettings,
    reconcile_topology,
)
from mysql_operator.topology.seeding import SeedWorkers
from tests.integration.conftest import CREDENTIALS, NET, ready
from tests.integration.servers import DbServer, make_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOSTS = tuple(f"127.{NET}.163.{n}" for n in (1, 2, 3))
TICK = 0.2


@dataclass
class Day2Cluster:
    servers: list[DbServer]
    members: list[int] = field(default_factory=lambda: [0, 1, 2])
    auto_reseed: bool = False
    live_config: dict[str, str] = field(default_factory=dict)
    seeds: SeedWorkers = field(default_factory=SeedWorkers)
    memory: TopologyMemory = field(default_factory=TopologyMemory)
    results: list[TopologyResult] = field(default_factory=list)

    def reconcile(self) -> TopologyResult:
        servers = [self.servers[o] for o in self.members]
        endpoints = [InstanceEndpoint(s.ordinal, s.pod_name, s.host) for s in servers]
        result = reconcile_topology(
            endpoints, CREDENTIALS, self.servers[0].flavor, ReplicationMode.ASYNC, self.memory, None,
            time.time(),
            TopologySettings(grace_period=1.0, seed_timeout=120.0),
            desired_instances=len(self.servers), seed_new_instances=True, auto_reseed=self.auto_reseed,
            live_config=self.live_config, seeds=self.seeds,
        )
        self.memory = result.memory
        self.results.append(result)
        return result

    def reconcile_until(
        self, done: Callable[[TopologyResult], bool], timeout: float = 90.0
    ) -> TopologyResult:
        deadline = time.monotonic() + timeout
        while True:
            result = self.reconcile()
            if done(result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"not reached in {timeout}s: primary={result.primary} "
                            f"problems={result.problems} actions={result.actions}")
            time.sleep(TICK)

    def events(self) -> list[tuple[str, str]]:
        return [(e.reason, e.message) for r in self.results for e in r.events]


@pytest.fixture
def day2(flavor: str) -> Iterator[Day2Cluster]:
    base = Path(tempfile.mkdtemp(prefix="mysqlop-day2-"))
    servers = [make_server(flavor, i, host, base / f"db-{i}") for i, host in enumerate(HOSTS)]
    cluster = Day2Cluster(servers)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda s: s.start(), servers))
        yield cluster
    finally:
        cluster.seeds.wait(30)
        cluster.seeds.shutdown()
        for server in servers:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


def settled(result: TopologyResult) -> bool:
    return ready(result) and not result.actions


def write_rows(server: DbServer, start: int, count: int) -> None:
    server.sql("CREATE TABLE IF NOT EXISTS shop.items (id INT PRIMARY KEY, note VARCHAR(40))")
    values = ", ".join(f"({i}, 'row {i}')" for i in range(start, start + count))
    server.sql(f"INSERT INTO shop.items VALUES {values}")


def purge_binlogs(server: DbServer) -> None:
    server.sql("FLUSH BINARY LOGS")
    current = server.current_binlog()
    deadline = time.monotonic() + 20
    # A log still read by a replica's dump thread is kept; it moves on to the new one soon.
    while True:
        server.sql("PURGE BINARY LOGS TO %s", (current,))
        if len(server.sql("SHOW BINARY LOGS")) == 1:
            return
        assert time.monotonic() < deadline, "binary logs not purged"
        time.sleep(0.2)


def checksum(server: DbServer) -> Any:
    return server.sql("CHECKSUM TABLE shop.items")[0][1]


def gtid_pos(server: DbServer) -> Any:
    return server.executed_gtids()


def caught_up(cluster: Day2Cluster) -> bool:
    return len({gtid_pos(s) for s in cluster.servers}) == 1


def test_new_empty_instance_is_seeded_from_a_replica_even_after_binlogs_were_purged(
    day2: Day2Cluster,
) -> None:
    day2.members = [0, 1]
    day2.reconcile_until(settled)
    primary = day2.servers[0]
    write_rows(primary, 0, 500)
    # History from more than one server, as switchovers and rollouts leave it.
    primary.write_as_other_server("INSERT INTO shop.items VALUES (99999, 'from server 99')")
    write_rows(primary, 100000, 1)
    # Without its binary logs, a replica starting empty could never catch up: only a seed works.
    purge_binlogs(primary)
    day2.members = [0, 1, 2]
    day2.reconcile_until(lambda r: settled(r) and len(r.instances) == 3)
    reasons = [reason for reason, _ in day2.events()]
    assert "SeedStarted" in reasons and "InstanceSeeded" in reasons, "\n".join(map(str, day2.events()))
    started = [m for r, m in day2.events() if r == "SeedStarted" and m.startswith("instance 2:")]
    assert started and started[0].startswith("instance 2: seeding from db-1")
    write_rows(primary, 500, 10)
    deadline = time.monotonic() + 30
    while not caught_up(day2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len({checksum(s) for s in day2.servers}) == 1
    assert day2.servers[2].sql("SELECT COUNT(*) FROM shop.items")[0][0] == 512
    # The copy created no transaction of the target's own, and it holds the whole history (every
    # server that wrote, not only the last position), so it can take part in a switchover.
    assert day2.servers[2].origin_mark() not in history(day2.servers[2])
    assert seeded_history_complete(day2, 2)
    if day2.servers[2].flavor is Flavor.MYSQL:  # the clone ended with mysqld stopping to load the copy
        assert day2.servers[2].restarts == 1


def history(server: DbServer) -> str:
    """The server's whole GTID history, as the operator reads it."""
    if server.flavor is Flavor.MARIADB:
        row = server.sql("SELECT @@gtid_binlog_state, @@gtid_slave_pos, @@gtid_current_pos")[0]
        return gtid.merge_mariadb(*(str(v) for v in row))
    return server.executed_gtids()


def seeded_history_complete(day2: Day2Cluster, ordinal: int) -> bool:
    return gtid.includes(day2.servers[0].flavor, history(day2.servers[ordinal]), history(day2.servers[0]))


def test_errant_replica_is_reported_then_reseeded_when_allowed(day2: Day2Cluster) -> None:
    day2.reconcile_until(settled)
    primary, victim = day2.servers[0], day2.servers[2]
    write_rows(primary, 0, 200)
    day2.reconcile_until(lambda r: settled(r) and caught_up(day2))
    with victim.root_connection() as connection, connection.cursor() as cursor:
        cursor.execute("SET GLOBAL read_only=0")  # super_read_only too, on MySQL
        cursor.execute("SET SESSION sql_log_bin=1")
        cursor.execute("INSERT INTO shop.items VALUES (100000, 'errant')")
        # Fenced again as a replica is (MySQL: super_read_only, which CLONE refuses on the recipient).
        fence = "super_read_only" if victim.flavor is Flavor.MYSQL else "read_only"
        cursor.execute(f"SET GLOBAL {fence}=1")
    result = day2.reconcile()
    errant = [p for p in result.problems if p.reason == "ErrantTransactions"]
    assert errant and "autoReseed" in errant[0].message
    assert not any(a.startswith("Seed(") for a in result.actions)
    day2.auto_reseed = True
    day2.reconcile_until(lambda r: any(a.startswith("Seed(ordinal=2") for a in r.actions), timeout=10)
    write_rows(primary, 200, 20)
    day2.reconcile_until(lambda r: settled(r) and caught_up(day2) and not day2.seeds.running())
    assert ("InstanceSeeded" in [r for r, _ in day2.events()])
    assert victim.sql("SELECT COUNT(*) FROM shop.items WHERE id = 100000")[0][0] == 0
    assert len({checksum(s) for s in day2.servers}) == 1


def test_replica_behind_purged_binlogs_is_reseeded(day2: Day2Cluster) -> None:
    day2.auto_reseed = True
    day2.reconcile_until(settled)
    primary, lagging = day2.servers[0], day2.servers[1]
    write_rows(primary, 0, 50)
    day2.reconcile_until(lambda r: settled(r) and caught_up(day2))
    lagging.kill()
    write_rows(primary, 50, 50)
    purge_binlogs(primary)
    lagging.start()
    day2.reconcile_until(lambda r: any(a.startswith("Seed(ordinal=1") for a in r.actions), timeout=30)
    day2.reconcile_until(lambda r: settled(r) and caught_up(day2) and not day2.seeds.running())
    assert lagging.sql("SELECT COUNT(*) FROM shop.items")[0][0] == 100


def test_dynamic_config_is_applied_live_on_every_instance(day2: Day2Cluster) -> None:
    day2.reconcile_until(settled)
    day2.live_config = {"max_connections": "217", "long_query_time": "2.5", "slow_query_log": "ON"}
    result = day2.reconcile()
    assert sum(1 for e in result.events if e.reason == "ConfigApplied") == 3
    for server in day2.servers:
        assert server.sql("SELECT @@max_connections, @@long_query_time, @@slow_query_log")[0] == (217, 2.5, 1)
    assert not any(e.reason == "ConfigApplied" for e in day2.reconcile().events)  # nothing left to do
