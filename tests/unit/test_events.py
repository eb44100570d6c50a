"""The handlers' own Normal Events (Applied, Scaled, Created, ...) are posted although kopf posts only
warnings: `kopf.info` obeys settings.posting.level, which the operator sets to WARNING (its own
per-handler lines would each cost an API request), so it would drop them silently (the e2e tier saw
no Applied and no Scaled Event). handlers/events.info posts whatever the level."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest
from kopf._core.engines import posting

from mysql_operator.handlers import cluster, events

PACKAGE = Path(__file__).resolve().parents[2] / "mysql_operator"


def test_a_normal_event_is_posted_at_the_operators_posting_level(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = kopf.OperatorSettings()
    monkeypatch.setattr(cluster, "load_config", lambda: None)  # no API client needed here
    monkeypatch.setattr(cluster, "Kube", lambda _: None)
    cluster.configure(settings=settings, memo=kopf.Memo())

    async def scenario() -> list[tuple[str, str]]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        posting.settings_var.set(settings)
        posting.event_queue_var.set(queue)
        posting.event_queue_loop_var.set(asyncio.get_running_loop())
        body = kopf.Body({"apiVersion": "mysql.operator.dev/v1alpha1", "kind": "MysqlCluster",
                          "metadata": {"name": "db", "namespace": "ns", "uid": "u"}})
        kopf.info(body, reason="Dropped", message="kopf.info at the operator's level")
        events.info(body, reason="Applied", message="applied 8 objects")
        kopf.warn(body, reason="Warned", message="a warning")
        return [(e.type, e.reason) for e in [queue.get_nowait() for _ in range(queue.qsize())]]

    assert asyncio.run(scenario()) == [("Normal", "Applied"), ("Warning", "Warned")]


def test_no_handler_posts_with_kopf_info() -> None:
    callers = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "kopf.info(" in p.read_text()]
    assert callers == [], "kopf.info posts nothing at the operator's posting level: use handlers/events.info"
