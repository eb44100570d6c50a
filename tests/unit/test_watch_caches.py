"""The caches that keep an idle cluster from costing API requests (handlers/watch.py), and the
reconcile handler's reads from the watch indices (handlers/objects.py)."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import pytest

from mysql_operator.handlers.objects import primary_ordinal, ready_instances
from mysql_operator.handlers.watch import GONE_TTL, NodeCache, SecretCache, WakeBoard, quiet_watch_handlers


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


def test_a_deleted_cluster_ends_its_loop_and_a_new_one_of_that_name_gets_its_own_event() -> None:
    async def scenario() -> tuple[bool, bool, bool, bool, bool]:
        board = WakeBoard()
        old = board.register(("ns", "db"))
        board.gone(("ns", "db"), "uid-old", now=0.0)
        woken, gone = old.is_set(), board.is_gone("uid-old")
        new = board.register(("ns", "db"))  # the cluster created again under that name
        board.unregister(("ns", "db"), old)  # the old loop ends after the new one started
        board.wake(("ns", "db"))
        board.gone(("ns", "other"), "uid-other", now=GONE_TTL + 1)  # prunes what is long gone
        fresh = new is not old and new.is_set()
        return woken, gone, fresh, board.is_gone("uid-new"), board.is_gone("uid-old")

    assert asyncio.run(scenario()) == (True, True, True, False, False)


def pod(name: str, role: str | None) -> dict[str, Any]:
    labels = {"mysql.operator.dev/role": role} if role else {}
    return {"metadata": {"name": name, "labels": labels}}


def test_the_primary_ordinal_comes_from_the_role_labels_of_indexed_pods() -> None:
    assert primary_ordinal([pod("db-0", "replica"), pod("db-2", "primary"), pod("db-1", None)]) == 2
    assert primary_ordinal([pod("db-0", "replica")]) is None
    assert ready_instances({"status": {"readyReplicas": 2}}) == 2
    assert ready_instances(None) == 0


class TlsSecretKube(CountingKube):
    """A user's TLS Secret (spec.tls.secretName), every key present."""

    def __init__(self) -> None:
        super().__init__()
        keys = ("ca.crt", "tls.crt", "tls.key")
        self.secret = {"data": {k: base64.b64encode(f"pem of {k}".encode()).decode() for k in keys}}


def test_the_tls_secret_is_read_per_certificate_check_not_per_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from mysql_operator.api.models import MysqlClusterSpec
    from mysql_operator.handlers import topology

    spec = MysqlClusterSpec.model_validate(
        {"flavor": "mariadb", "storage": {"size": "1Gi"}, "tls": {"secretName": "mine"}})
    meta = {"name": "shop-db", "uid": "uid-tls-cache"}
    kube, clock = TlsSecretKube(), [1000.0]
    monkeypatch.setattr(topology.time, "monotonic", lambda: clock[0])
    log = logging.getLogger("test")
    for _ in range(40):  # 10 s of passes every 0.25 s (a primary within its grace)
        data = topology._tls_pass(kube, {}, spec, meta, "tls-cache-test", log)  # type: ignore[arg-type]
        assert data["ca.crt"] == "pem of ca.crt"
        clock[0] += 0.25
    assert kube.gets == 2  # the certificate check's read, then the cache's
    clock[0] += topology.TLS_CHECK_SECONDS
    topology._tls_pass(kube, {}, spec, meta, "tls-cache-test", log)  # type: ignore[arg-type]
    assert kube.gets == 4  # a minute later: checked and read again (a rotated Secret is seen)


def test_kopf_success_lines_of_the_watch_handlers_are_dropped_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.kopf.objects")
    quiet_watch_handlers(logger)
    quiet_watch_handlers(logger)  # once only
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("Handler 'pod_changed' succeeded.")
        logger.info("Handler 'cluster_changed' succeeded.")
        logger.info("Handler 'reconcile' succeeded.")
        logger.error("Handler 'pod_changed' failed with an exception and will stop now: boom")
    assert [r.getMessage() for r in caplog.records] == [
        "Handler 'reconcile' succeeded.",
        "Handler 'pod_changed' failed with an exception and will stop now: boom",
    ]
    assert len(logger.filters) == 1
