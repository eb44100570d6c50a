"""The caches that keep an idle cluster from costing API requests (handlers/watch.py), and the
reconcile handler's reads from the watch indices (handlers/objects.py)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from mysql_operator.handlers.objects import primary_ordinal, ready_instances
from mysql_operator.handlers.watch import NodeCache, SecretCache, WakeBoard


class CountingKube:
    """Answers reads from a dict and counts them (what the API server would see)."""

    def __init__(self) -> None:
        self.gets = 0
        self.node_reads = 0
        self.secret: dict[str, Any] | None = {"data": {"root-password": base64.b64encode(b"pw").decode()}}
        self.cordoned = False

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.secret

    def node_cordoned(self, name: str) -> bool:
        self.node_reads += 1
        return self.cordoned


def test_a_secret_is_read_once_then_kept() -> None:
    kube, cache = CountingKube(), SecretCache(ttl=300)
    for second in range(100):
        assert cache.get(kube, "ns", "db-credentials", now=float(second)) == {"root-password": "pw"}  # type: ignore[arg-type]
    assert kube.gets == 1


def test_a_forgotten_or_expired_secret_is_read_again() -> None:
    kube, cache = CountingKube(), SecretCache(ttl=300)
    cache.get(kube, "ns", "s", now=0.0)  # type: ignore[arg-type]
    cache.forget("ns", "s")
    cache.get(kube, "ns", "s", now=1.0)  # type: ignore[arg-type]
    cache.get(kube, "ns", "s", now=302.0)  # type: ignore[arg-type]
    assert kube.gets == 3


def test_a_missing_secret_is_not_cached() -> None:
    kube, cache = CountingKube(), SecretCache()
    kube.secret = None
    assert cache.get(kube, "ns", "s", now=0.0) is None  # type: ignore[arg-type]
    assert cache.get(kube, "ns", "s", now=1.0) is None  # type: ignore[arg-type]
    assert kube.gets == 2


def test_a_node_is_read_once_per_ttl_for_every_cluster_on_it() -> None:
    kube, nodes = CountingKube(), NodeCache(ttl=60)
    for second in range(0, 120, 2):
        for _cluster in range(50):
            nodes.cordoned(kube, "node-1", now=float(second))  # type: ignore[arg-type]
    assert kube.node_reads == 2


def test_a_wake_reaches_only_a_running_loop() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        board = WakeBoard()
        event = board.register(("ns", "db"))
        woke = board.wake(("ns", "db"))
        other = board.wake(("ns", "other"))
        board.unregister(("ns", "db"), event)
        return woke and event.is_set(), other, board.wake(("ns", "db"))

    assert asyncio.run(scenario()) == (True, False, False)


def pod(name: str, role: str | None) -> dict[str, Any]:
    labels = {"mysql.operator.dev/role": role} if role else {}
    return {"metadata": {"name": name, "labels": labels}}


def test_the_primary_ordinal_comes_from_the_role_labels_of_indexed_pods() -> None:
    assert primary_ordinal([pod("db-0", "replica"), pod("db-2", "primary"), pod("db-1", None)]) == 2
    assert primary_ordinal([pod("db-0", "replica")]) is None
    assert ready_instances({"status": {"readyReplicas": 2}}) == 2
    assert ready_instances(None) == 0
