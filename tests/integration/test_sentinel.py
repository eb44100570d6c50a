"""The primary sentinel against real servers: an idle session whose end wakes the topology loop at
once. A kill and a KILL of its session are news; a freeze that ends (SIGSTOP, SIGCONT) and time
passing are not (a frozen server sends nothing: the probes and the grace period handle it)."""

from __future__ import annotations

import threading
import time

import pytest

from mysql_operator.conventions import KEY_OPERATOR_PASSWORD, OPERATOR_USER
from mysql_operator.mysql.sentinel import Sentinel
from mysql_operator.mysql.session import Login
from tests.integration.conftest import CREDENTIALS, Cluster, ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LOGIN = Login(OPERATOR_USER, CREDENTIALS[KEY_OPERATOR_PASSWORD])


def test_the_end_of_the_primary_wakes_at_once_and_nothing_else_does(cluster: Cluster) -> None:
    cluster.reconcile_until(ready)
    primary = cluster.servers[0]
    lost = threading.Event()
    sentinel = Sentinel()
    try:
        assert sentinel.watch("c", primary.host, 3306, LOGIN, lost.set)
        assert sentinel.watch("c", primary.host, 3306, LOGIN, lost.set)  # idempotent: the same session
        time.sleep(2.0)
        primary.pause()
        time.sleep(1.5)
        primary.resume()
        assert not lost.wait(2.0), "an idle session or a freeze that ended woke the loop"
        assert sentinel.watching("c") == (primary.host, 3306)

        # The server ends the session (a fence's KILL, a shutdown): news.
        entry = sentinel._watches["c"]
        thread_id = entry.session._connection.thread_id()
        primary.sql(f"KILL {int(thread_id)}")
        assert lost.wait(5.0), "a killed session did not wake the loop"
        assert sentinel.watching("c") is None

        # The process dies: news within a moment (the kernel closes its sockets).
        lost.clear()
        assert sentinel.watch("c", primary.host, 3306, LOGIN, lost.set)
        killed_at = time.monotonic()
        primary.kill()
        assert lost.wait(5.0), "a killed server did not wake the loop"
        woke_after = time.monotonic() - killed_at
        print(f"{cluster.flavor.value}: kill -> sentinel woke after {woke_after * 1000:.0f} ms")
        assert sentinel.watching("c") is None

        # Watching a server that does not answer is no session and no wake-up.
        lost.clear()
        assert not sentinel.watch("c", primary.host, 3306, LOGIN, lost.set)
        assert not lost.wait(1.0)
    finally:
        sentinel.close()
