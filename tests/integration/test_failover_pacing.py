"""Failover at the detection floor, and never before the grace, against real servers: the topology
loop paced as the operator paces it (topology.pacing.next_pass_in) and woken as the pod watch
wakes it (here by a watcher of the server process, the kubelet's view of the container).

- A kill is followed by a writable new primary after the grace period plus the pass itself.
- A blip shorter than the grace (connections reset for 1 s, or the server paused for 1 s, with a
  2 s grace) is no failover.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mysql_operator.conventions import KEY_OPERATOR_PASSWORD, OPERATOR_USER
from mysql_operator.mysql.sentinel import Sentinel
from mysql_operator.mysql.session import Login
from mysql_operator.topology.pacing import next_pass_in
from mysql_operator.topology.reconcile import TopologyResult, TopologySettings
from tests.integration.conftest import CREDENTIALS, Cluster, ready
from tests.integration.servers import DbServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GRACE = 2.0
SENTINEL_LOGIN = Login(OPERATOR_USER, CREDENTIALS[KEY_OPERATOR_PASSWORD])
RULE_COMMENT = "mysqlop-perf-blip"


class PacedLoop(threading.Thread):
    """The operator's topology loop for one cluster: a pass, then wait for a wake-up or the delay
    pacing chose. Records (wall time, result) of every pass."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.passes: list[tuple[float, TopologyResult]] = []
        self.sentinel = Sentinel()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            result = self.cluster.reconcile()
            self.passes.append((time.time(), result))
            # As handlers/topology.watch_primary: the sentinel's session follows the serving primary.
            if result.primary is None:
                self.sentinel.forget("loop")
            else:
                self.sentinel.watch("loop", self.cluster.servers[result.primary].host, 3306, SENTINEL_LOGIN,
                                    self.wake.set)
            delay = next_pass_in(result.memory, self.cluster.settings.grace_period, time.time())
            self.wake.wait(timeout=delay)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(timeout=60)
        self.sentinel.close()


class _NoSentinel(Sentinel):
    def watch(self, *_: object, **__: object) -> bool:
        return False


def watch_exit(server: DbServer, loop: PacedLoop) -> threading.Thread:
    """What the kubelet and the pod watch stream do: the container ended -> the loop is woken."""
    process = server.process
    assert process is not None

    def wait() -> None:
        process.wait()
        loop.wake.set()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


@contextmanager
def reset_connections(host: str) -> Iterator[None]:
    """Every TCP connection to `host`:3306 refused with a reset (a marked rule on a loopback
    address of this test run only), removed on the way out whatever happens."""
    rule = ["INPUT", "-d", host, "-p", "tcp", "--dport", "3306", "-m", "comment", "--comment",
            RULE_COMMENT, "-j", "REJECT", "--reject-with", "tcp-reset"]
    subprocess.run(["iptables", "-I", *rule], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True, timeout=30)


def settle(cluster: Cluster, sentinel: bool = True) -> PacedLoop:
    """The cluster Ready, and its loop running: woken by the primary sentinel (the operator's way) or,
    without it, by the process watcher alone (the pod watch stream's way)."""
    cluster.settings = TopologySettings(grace_period=GRACE, relay_apply_timeout=20.0)
    cluster.reconcile_until(lambda r: ready(r) and not r.actions and all(i.ready for i in r.instances),
                            timeout=120)
    loop = PacedLoop(cluster)
    if not sentinel:
        loop.sentinel = _NoSentinel()
    loop.start()
    return loop


def first_pass_with(loop: PacedLoop, predicate: object, timeout: float) -> tuple[float, TopologyResult]:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        for at, result in loop.passes[seen:]:
            if predicate(result):  # type: ignore[operator]
                return at, result
        seen = max(0, len(loop.passes) - 1)
        time.sleep(0.02)
    pytest.fail(f"not reached within {timeout}s; last: {loop.passes[-1][1] if loop.passes else None}")


@pytest.mark.parametrize("sentinel", [True, False], ids=["sentinel", "pod-watch"])
def test_kill_fails_over_after_the_grace_and_not_before(cluster: Cluster, sentinel: bool) -> None:
    loop = settle(cluster, sentinel)
    try:
        old = cluster.servers[0]
        if not sentinel:
            watch_exit(old, loop)
        killed = time.time()
        old.kill()
        at, result = first_pass_with(loop, lambda r: r.primary not in (None, 0), timeout=60)
        new = cluster.servers[result.primary or 0]
        assert new.sql("SELECT @@read_only")[0][0] == 0
    finally:
        loop.stop()
    transition = result.transition
    assert transition is not None and transition.kind == "failover" and transition.from_ordinal == 0
    # Never faster than the grace: the deciding pass started a full grace after the first pass
    # that found the primary gone, which itself came after the kill.
    assert transition.at - killed >= GRACE
    timeline = [(round(t - killed, 2), r.primary, [p.reason for p in r.problems]) for t, r in loop.passes
                if t >= killed]
    print(f"\npasses after the kill (s, primary, problems): {timeline}")
    print(f"kill -> writable new primary {at - killed:.2f}s with a {GRACE:.0f}s grace "
          f"(the failover itself {transition.seconds:.2f}s)")


@pytest.mark.parametrize("blip", ["reset", "pause"])
def test_a_blip_shorter_than_the_grace_is_no_failover(cluster: Cluster, blip: str) -> None:
    loop = settle(cluster)
    primary = cluster.servers[0]
    try:
        started = len(loop.passes)
        if blip == "reset":
            with reset_connections(primary.host):
                loop.wake.set()  # a reset connection is an event: look now
                time.sleep(GRACE / 2)
        else:
            primary.pause()
            try:
                time.sleep(GRACE / 2)
            finally:
                primary.resume()
        time.sleep(3 * GRACE)  # long enough for any failover the blip could have caused
    finally:
        loop.stop()
    passes = [result for _, result in loop.passes[started:]]
    assert passes, "the loop kept probing"
    assert all(r.transition is None for r in passes)
    assert all(r.primary == 0 for r in passes)
    if blip == "reset":
        seen = [p for r in passes for p in r.problems if p.reason == "PrimaryUnreachable"]
        assert seen, "the probes saw the primary unreachable during the blip (the test bites)"
    assert primary.sql("SELECT @@read_only")[0][0] == 0
