"""Faults against a 3-instance cluster while clients write through the -primary Service.

Every scenario runs the consistency checker (sandbox/consistency.py): writers acknowledge a write only
when COMMIT returned OK, a sampler reads read_only on every instance, and after the fault and its heal
the checker asserts (a) no acknowledged write is missing on the primary, (b) never two writable
instances, (c) Ready again with one writable primary without anyone acting, (d) equal CHECKSUM TABLE.
The harness itself (pause, isolation in both directions, rule removal) is checked first.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pymysql
import pytest

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from sandbox.consistency import ConsistencyChecker, assert_consistent
from sandbox.faults import FaultError, Faults, in_pod_cgroup, marker
from tests.e2e.conftest import FLAVORS, Cluster, cluster_spec, connect, operator_log, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

NAME = "db"
GRACE = 3  # spec.replication.failoverGraceSeconds
FAILOVER_BOUND = 120.0  # seconds a fault may last before the round counts as needing a human
MODES = ("async", "semi-sync")
TOPOLOGIES = [(flavor, mode) for flavor in FLAVORS for mode in MODES]
SEMI_SYNC = [(flavor, "semi-sync") for flavor in FLAVORS]
FIRST_NODE_PORT = 32140  # one NodePort per topology, on 127.0.0.1


def ids(params: list[tuple[str, str]]) -> list[str]:
    return [f"{flavor}-{mode}" for flavor, mode in params]


@dataclass
class Topology:
    """One MysqlCluster of a flavor and replication mode, and the faults to inflict on it."""

    cluster: Cluster
    flavor: str
    mode: str
    namespace: str
    node_port: int

    @property
    def faults(self) -> Faults:
        return Faults(self.cluster.sandbox)

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "mysql.operator.dev/v1alpha1",
            "kind": "MysqlCluster",
            "metadata": {"name": NAME},
            "spec": cluster_spec(
                self.flavor,
                # Async: a deposed primary holding writes no replica received rejoins only by a
                # rebuild, which autoReseed allows (without it a human decides, by design).
                replication={"mode": self.mode, "failoverGraceSeconds": GRACE,
                             "autoReseed": self.mode == "async"},
                application={"database": "app", "user": "app"},
                service={"type": "NodePort", "nodePort": self.node_port},
                mysqlConfig={"max_connections": "40"},
            ),
        }

    def create(self) -> None:
        self.cluster.apply(self.manifest(), self.namespace)
        self.cluster.wait_ready(NAME, self.namespace, timeout=420)

    def primary(self) -> str:
        # Bounded wait: status names no primary for a pass while the operator is between states.
        status = wait_for(lambda: (s := self.cluster.status(NAME, self.namespace)).get("primary") and s, 60,
                          f"status.primary of {self.namespace}/{NAME}")
        return str(status["primary"])

    def replicas(self) -> list[str]:
        primary = self.primary()
        return [f"{NAME}-{i}" for i in range(3) if f"{NAME}-{i}" != primary]

    def ip(self, pod: str) -> str:
        return self.cluster.pod_ip(pod, self.namespace)

    def checker(self) -> ConsistencyChecker:
        checker = ConsistencyChecker(self.cluster.sandbox, self.namespace, NAME, self.node_port)
        checker.start()
        checker.wait_acks(30)
        return checker

    def failovers(self) -> list[dict[str, Any]]:
        events = self.cluster.events(self.namespace, NAME)
        return [e for e in events if e.get("reason") == "FailoverCompleted"]


@pytest.fixture(scope="module")
def topology(request: pytest.FixtureRequest, operator: Cluster) -> Iterator[Topology]:
    flavor, mode = request.param
    namespace = f"faults-{flavor}-{mode.replace('-', '')}"
    topo = Topology(operator, flavor, mode, namespace, FIRST_NODE_PORT + TOPOLOGIES.index((flavor, mode)))
    operator.create_namespace(namespace)
    topo.create()
    yield topo
    operator.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def topo(topology: Topology) -> Topology:
    """The module's cluster, healthy at the start of each scenario: if an earlier scenario left it
    broken (that scenario failed and said why), it is re-created so this one is judged on its own."""
    checker = ConsistencyChecker(topology.cluster.sandbox, topology.namespace, NAME, topology.node_port)
    try:
        wait_for(checker.recovered, 60, "a healthy cluster before the scenario")
    except AssertionError:
        print(f"re-creating {topology.namespace}/{NAME}: an earlier scenario left it broken", flush=True)
        topology.faults.heal_all()
        topology.cluster.kubectl("delete", "mysqlcluster", NAME, "-n", topology.namespace, "--wait=true",
                                 "--timeout=180s")
        wait_for(lambda: not topology.cluster.kubectl("get", "pods,pvc", "-n", topology.namespace, "-o",
                                                      "name").strip(),
                 300, f"the pods and volumes of {topology.namespace}/{NAME} to be gone")
        topology.create()
    return topology


def writable_again(checker: ConsistencyChecker, fault_at: float, what: str, old: str) -> list[str]:
    """Wait (bounded) for a write acknowledged through the Service by another server than the faulty
    primary `old` after the fault; a problem if none."""
    ack = checker.first_ack_after(fault_at, FAILOVER_BOUND, other_than=checker.server_id(old))
    if ack is None:
        return [f"no write acknowledged through the Service within {FAILOVER_BOUND:.0f}s of {what}"]
    print(f"{what}: writable through the Service after {ack.at - fault_at:.2f}s (server_id {ack.server_id})",
          flush=True)
    return []


def judge(checker: ConsistencyChecker, problems: list[str]) -> None:
    verdict = checker.verify()
    print(f"acknowledged {verdict.acknowledged}, lost {len(verdict.lost)} (reported discarded "
          f"{verdict.reported_discarded}), split-brain samples {len(verdict.split_brain)}, "
          f"recovered {verdict.recovered}", flush=True)
    verdict.problems[:0] = problems
    assert_consistent(verdict)


# ---- the harness itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("topology", SEMI_SYNC[:1], ids=ids(SEMI_SYNC[:1]), indirect=True)
def test_pause_freezes_a_server_and_resume_thaws_it(topo: Topology) -> None:
    replica = topo.replicas()[0]
    ip = topo.ip(replica)
    admin = topo.cluster.secret(f"{NAME}-credentials", topo.namespace)["operator-password"]
    assert topo.faults.pause(topo.namespace, replica)
    try:
        with pytest.raises(pymysql.MySQLError):
            pymysql.connect(host=ip, user="mysqlop_admin", password=admin, connect_timeout=2,
                            read_timeout=2).close()
    finally:
        assert topo.faults.resume(topo.namespace, replica)
    with connect(ip, "mysqlop_admin", admin) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")


@pytest.mark.parametrize("topology", SEMI_SYNC[:1], ids=ids(SEMI_SYNC[:1]), indirect=True)
def test_isolation_cuts_a_pod_off_both_ways_and_heal_removes_every_rule(topo: Topology) -> None:
    replica, primary_ip = topo.replicas()[0], topo.ip(topo.primary())
    ip = topo.ip(replica)
    sandbox = topo.cluster.sandbox

    def reach(host: str, from_pod: str | None = None) -> bool:
        """Whether a TCP connection to host:3306 opens, from this process or from inside a pod."""
        code = f"import socket; socket.create_connection(({host!r}, 3306), timeout=2).close()"
        argv = [sys.executable, "-c", code]
        if from_pod is not None:
            uid = topo.cluster.get("pod", from_pod, topo.namespace)["metadata"]["uid"]
            argv = in_pod_cgroup(sandbox.dir, topo.namespace, from_pod, uid, argv)
        return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0

    assert reach(ip) and reach(primary_ip, from_pod=replica)
    topo.faults.isolate(topo.namespace, replica)
    try:
        rules = topo.faults.rules()
        assert rules and all(marker(sandbox.name, f"{topo.namespace}/{replica}") in rule for rule in rules)
        assert not reach(ip), "the isolated pod still answers"
        assert not reach(primary_ip, from_pod=replica), "the isolated pod still reaches the primary"
        assert reach(primary_ip), "isolation must not cut other pods off"
    finally:
        removed = topo.faults.heal(topo.namespace, replica)
    assert removed == len(rules) and topo.faults.rules() == []
    assert reach(ip) and reach(primary_ip, from_pod=replica)


# ---- faults on the primary --------------------------------------------------------------------------
# (in this order: the errant transaction stays on its replica, by design, so it comes last)


@pytest.mark.parametrize("topology", SEMI_SYNC, ids=ids(SEMI_SYNC), indirect=True)
def test_drain_of_the_primarys_node_is_a_switchover_not_a_failover(topo: Topology) -> None:
    checker = topo.checker()
    old = topo.primary()
    node = topo.cluster.get("pod", old, topo.namespace)["spec"]["nodeName"]
    failovers_before = len(topo.failovers())
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # status.roleChanges[].time's format
    drain = topo.cluster.sandbox.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                                         "--timeout=240s", check=False, timeout=300)
    try:
        assert drain.returncode == 0, f"kubectl drain {node} failed: {drain.stderr[-2000:]}"
        judge(checker, [])
        status = topo.cluster.status(NAME, topo.namespace)
        assert status["primary"] != old
        kinds = [change["kind"] for change in status.get("roleChanges") or [] if change["time"] >= started]
        assert "switchover" in kinds and "failover" not in kinds, kinds
        assert len(topo.failovers()) == failovers_before, json.dumps(topo.failovers()[failovers_before:])
    finally:
        topo.cluster.kubectl("uncordon", node)  # the maintenance is over (not a repair of the product)


@pytest.mark.parametrize("topology", SEMI_SYNC, ids=ids(SEMI_SYNC), indirect=True)
def test_too_many_connections_on_the_primary_is_no_failover(topo: Topology) -> None:
    checker = topo.checker()
    primary = topo.primary()
    failovers_before = len(topo.failovers())
    password = topo.cluster.secret(f"{NAME}-credentials", topo.namespace)["app-password"]
    held: list[Any] = []
    refused = None
    try:
        for _ in range(200):  # max_connections is 40: bounded
            try:
                held.append(connect(topo.ip(primary), "app", password, "app"))
            except pymysql.MySQLError as exc:
                refused = exc
                break
        assert refused is not None and refused.args[0] == 1040, f"expected error 1040, got {refused!r}"
        deadline = time.monotonic() + 4 * GRACE + 6
        while time.monotonic() < deadline:
            assert topo.primary() == primary, "the operator moved the primary away from a busy server"
            time.sleep(1)
    finally:
        for conn in held:
            conn.close()
    judge(checker, [])
    assert topo.primary() == primary
    assert len(topo.failovers()) == failovers_before, json.dumps(topo.failovers()[failovers_before:])


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=ids(TOPOLOGIES), indirect=True)
def test_primary_killed_then_the_new_primary_killed(topo: Topology) -> None:
    for round_no in (1, 2):
        checker = topo.checker()
        old = topo.primary()
        fault_at = time.monotonic()
        topo.faults.kill(topo.namespace, old, keep_down=True)  # a lost node
        problems = writable_again(checker, fault_at, f"kill #{round_no} of {old}", old)
        topo.cluster.sandbox.release_container(topo.namespace, old)  # the node comes back
        judge(checker, problems)
        assert topo.primary() != old


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=ids(TOPOLOGIES), indirect=True)
def test_primary_paused_past_the_grace_period_then_resumed(topo: Topology) -> None:
    checker = topo.checker()
    old = topo.primary()
    fault_at = time.monotonic()
    topo.faults.pause(topo.namespace, old)
    try:
        # bounded below the liveness probe's minute, after which kubelet would restart the container
        ack = checker.first_ack_after(fault_at, 45, other_than=checker.server_id(old))
        problems = [] if ack else ["no write acknowledged through the Service within 45s of the pause"]
        if ack:
            print(f"pause: writable again after {ack.at - fault_at:.2f}s", flush=True)
        time.sleep(GRACE)  # the new primary takes writes while the old one is still frozen
    finally:
        topo.faults.resume(topo.namespace, old)
    judge(checker, problems)


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=ids(TOPOLOGIES), indirect=True)
def test_primary_isolated_then_healed(topo: Topology) -> None:
    checker = topo.checker()
    old = topo.primary()
    fault_at = time.monotonic()
    topo.faults.isolate(topo.namespace, old)
    try:
        problems = writable_again(checker, fault_at, f"isolation of {old}", old)
        time.sleep(GRACE)
    finally:
        topo.faults.heal(topo.namespace, old)
    judge(checker, problems)


def frozen_primary_behind(topo: Topology, primary: str, lagging: str, others: list[str]) -> None:
    """Freeze the primary (SIGSTOP) once another replica has received everything the lagging one has.

    Each replica receives a prefix of the primary's binary log, so the lagging one (its receiver is
    not delayed) may be the only holder of the last acknowledged writes at the moment of a kill. The
    right failover then waits for its relay log (RelayLogNotApplied), which a delay of an hour makes
    an hour: not the case under test. Frozen, the primary sends nothing more; within a bounded wait
    the other replica's receiver drains what was already on its way."""
    flavor = Flavor(topo.flavor)
    for _ in range(10):
        topo.faults.pause(topo.namespace, primary)
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                held = topo.faults.received(topo.namespace, lagging)
                if any(gtid.includes(flavor, topo.faults.received(topo.namespace, o), held) for o in others):
                    return
                time.sleep(0.1)
        except BaseException:
            topo.faults.resume(topo.namespace, primary)
            raise
        topo.faults.resume(topo.namespace, primary)
        time.sleep(0.5)
    raise AssertionError(f"no replica other than {lagging} received what {lagging} holds, in 10 tries")


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=ids(TOPOLOGIES), indirect=True)
def test_lagging_replica_does_not_win_when_the_primary_dies(topo: Topology) -> None:
    checker = topo.checker()
    old = topo.primary()
    lagging = topo.replicas()[0]
    # A delay, not a stopped SQL thread: the operator restarts a stopped thread within a pass or two.
    # The delayed replica receives every transaction and applies none of the recent ones.
    topo.faults.lag(topo.namespace, lagging, delay=3600)
    checker.wait_acks(200, after=time.monotonic())
    others = [r for r in topo.replicas() if r != lagging]
    frozen_primary_behind(topo, old, lagging, others)
    fault_at = time.monotonic()
    topo.faults.kill(topo.namespace, old, keep_down=True)  # SIGKILL ends a stopped process too
    try:
        problems = writable_again(checker, fault_at, f"kill of {old} with {lagging} lagging", old)
        winner = topo.primary()
    finally:
        with contextlib.suppress(pymysql.MySQLError, OSError, KeyError, FaultError):
            topo.faults.lag(topo.namespace, lagging, resume=True)  # the fault ends (as a heal)
        topo.cluster.sandbox.release_container(topo.namespace, old)
    judge(checker, problems)
    assert winner != lagging, f"the lagging replica {lagging} was promoted"


def sole_holder(topo: Topology, primary: str, lagging: str, other: str) -> None:
    """Kill the primary once `lagging` holds acknowledged writes `other` lacks: the other replica's
    receiver is stopped (not the server: a frozen server still finds the primary's last bytes in its
    socket buffer when it resumes); the operator restarts it within a pass or two, so try again."""
    flavor = Flavor(topo.flavor)
    for _ in range(10):
        topo.faults.stop_receiving(topo.namespace, other)
        time.sleep(0.5)  # writes go on, acknowledged by the lagging replica alone
        held = topo.faults.received(topo.namespace, lagging)
        if not gtid.includes(flavor, topo.faults.received(topo.namespace, other), held):
            topo.faults.kill(topo.namespace, primary, keep_down=True)
            return
    raise AssertionError(f"{other} kept receiving what {lagging} received, in 10 tries")


def events_since(topo: Topology, reason: str, started: str) -> list[dict[str, Any]]:
    """The cluster's Events of `reason` last seen at or after `started` (ISO seconds, UTC)."""
    return [e for e in topo.cluster.events(topo.namespace, NAME) if e.get("reason") == reason
            and str(e.get("lastTimestamp") or e.get("eventTime") or "") >= started]


@pytest.mark.parametrize("topology", SEMI_SYNC, ids=ids(SEMI_SYNC), indirect=True)
def test_the_only_replica_holding_acknowledged_writes_loses_its_relay_log_during_the_outage(
        topo: Topology) -> None:
    """The lagging replica alone received the last acknowledged writes (the other one is frozen), the
    primary dies, the failover waits for that relay log; then the relay log goes (MariaDB discards it
    when both replication threads start again). Promoting the other replica would lose those writes:
    the operator must wait for the old primary (MySQL keeps the relay log: the lagging replica may
    win once it applied it). Either way nothing acknowledged is lost and the cluster heals alone."""
    checker = topo.checker()
    old = topo.primary()
    lagging, other = topo.replicas()
    topo.faults.lag(topo.namespace, lagging, delay=3600)
    checker.wait_acks(100, after=time.monotonic())
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sole_holder(topo, old, lagging, other)
    try:
        wait_for(lambda: events_since(topo, "FailoverWaiting", started), 90,
                 "the failover to wait for the lagging replica's relay log")
        topo.faults.lag(topo.namespace, lagging, resume=True)  # MariaDB: the relay log is gone
        time.sleep(3 * GRACE + 5)
        promoted = [e.get("message") for e in events_since(topo, "FailoverCompleted", started)]
        print(f"{topo.flavor}: after the relay log of {lagging} was restarted: promoted {promoted or 'none'}",
              flush=True)
    finally:
        topo.cluster.sandbox.release_container(topo.namespace, old)
    judge(checker, [])


@pytest.mark.parametrize("topology", SEMI_SYNC, ids=ids(SEMI_SYNC), indirect=True)
def test_operator_killed_during_a_failover(topo: Topology) -> None:
    checker = topo.checker()
    old = topo.primary()
    fault_at = time.monotonic()
    topo.faults.kill(topo.namespace, old, keep_down=True)
    time.sleep(GRACE + 1.0)  # the operator's next pass after the grace period starts the failover
    assert topo.faults.kill_operator(), "no operator container to kill"
    problems = writable_again(checker, fault_at, f"kill of {old} and of the operator", old)
    topo.cluster.sandbox.release_container(topo.namespace, old)
    judge(checker, problems)


@pytest.mark.parametrize("topology", SEMI_SYNC, ids=ids(SEMI_SYNC), indirect=True)
def test_errant_transaction_on_a_replica_while_the_primary_restarts(topo: Topology) -> None:
    # Back to Ready with no human needs the errant replica rebuilt: that is autoReseed's job (without
    # it the operator reports ErrantTransactions and waits for a human, by design).
    topo.cluster.kubectl("patch", "mysqlcluster", NAME, "-n", topo.namespace, "--type=merge",
                         "-p", '{"spec": {"replication": {"autoReseed": true}}}')
    wait_for(lambda: '"autoReseed":true' in str(topo.cluster.status(NAME, topo.namespace)
                                                .get("acceptedSpec") or "").replace(" ", ""),
             60, "the operator to accept autoReseed")
    checker = topo.checker()
    errant = topo.replicas()[0]
    # Root is local to its pod only: the operator's user (which may write despite read_only) errs.
    admin = topo.cluster.secret(f"{NAME}-credentials", topo.namespace)["operator-password"]
    with connect(topo.ip(errant), "mysqlop_admin", admin) as conn, conn.cursor() as cur:
        if topo.flavor == "mysql":
            cur.execute("SET GLOBAL super_read_only = OFF")  # it then writes despite read_only
        cur.execute("CREATE DATABASE IF NOT EXISTS errant")
        cur.execute("CREATE TABLE IF NOT EXISTS errant.t (id INT PRIMARY KEY)")
        cur.execute("REPLACE INTO errant.t VALUES (1)")
        if topo.flavor == "mysql":
            cur.execute("SET GLOBAL super_read_only = ON")
    old = topo.primary()
    fault_at = time.monotonic()
    topo.faults.kill(topo.namespace, old)  # restarted by the node agent, as kubelet would
    # any server, the restarted one included, may take the writes again
    ack = checker.first_ack_after(fault_at + 0.5, FAILOVER_BOUND)
    problems = [] if ack else [f"no write acknowledged within {FAILOVER_BOUND:.0f}s of the restart of "
                               f"{old} (errant transaction on {errant})"]
    judge(checker, problems)


@pytest.mark.parametrize("topology", SEMI_SYNC, ids=ids(SEMI_SYNC), indirect=True)
def test_a_cluster_recreated_under_the_same_name_inherits_nothing_from_the_old_one(topo: Topology) -> None:
    """The old incarnation has a history (a failover); deleted and re-created at once under the same
    name on fresh volumes, the new one bootstraps on instance 0 and takes writes without a failover,
    fence or split brain: nothing of the old one's memory (status.topology) or passes reaches it."""
    checker = topo.checker()
    old = topo.primary()
    fault_at = time.monotonic()
    topo.faults.kill(topo.namespace, old, keep_down=True)
    problems = writable_again(checker, fault_at, f"kill of {old}", old)
    topo.cluster.sandbox.release_container(topo.namespace, old)
    judge(checker, problems)
    kubectl, ns = topo.cluster.kubectl, topo.namespace
    old_uid = topo.cluster.get("mysqlcluster", NAME, ns)["metadata"]["uid"]
    kubectl("delete", "mysqlcluster", NAME, "-n", ns, "--wait=true", "--timeout=180s")
    wait_for(lambda: not kubectl("get", "pods,pvc", "-n", ns, "-o", "name").strip(), 300,
             f"the pods and volumes of {ns}/{NAME} to be gone")
    topo.create()
    new_uid = topo.cluster.get("mysqlcluster", NAME, ns)["metadata"]["uid"]
    assert new_uid != old_uid
    checker = topo.checker()
    checker.wait_acks(200, after=time.monotonic())
    judge(checker, [])
    status = topo.cluster.status(NAME, ns)
    assert status["primary"] == f"{NAME}-0", status.get("roleChanges")
    assert not status.get("roleChanges"), status["roleChanges"]
    assert not (status.get("topology") or {}).get("deposed"), status["topology"]
    reasons = {"FailoverCompleted", "InstanceFenced", "SplitBrain", "PrimaryLostHistory", "PodFenced",
               "TransactionsDiscarded"}
    inherited = [e for e in topo.cluster.events(ns, NAME)
                 if e["involvedObject"].get("uid") == new_uid and e.get("reason") in reasons]
    assert not inherited, json.dumps([(e["reason"], e.get("message")) for e in inherited])
    # The old incarnation's timer stopped with it: it does not even look any more.
    stale = f"no longer the cluster with uid {old_uid}"
    before = operator_log(topo.cluster).count(stale)
    time.sleep(3 * 2.0)  # three topology intervals
    assert operator_log(topo.cluster).count(stale) == before, "the deleted cluster's timer still fires"
