from __future__ import annotations

import kopf

from mysql_operator.handlers.finalizers import release_timer_finalizers


def test_operator_timers_need_no_finalizer_once_released() -> None:
    # Importing the handler modules registers them with kopf's default registry, as run_operator does.
    import mysql_operator.handlers.backup
    import mysql_operator.handlers.cluster
    import mysql_operator.handlers.topology  # noqa: F401

    registry = kopf.get_default_registry()
    timers = [h for h in registry._spawning.get_all_handlers() if "Timer" in type(h).__name__]
    assert timers, "kopf no longer keeps timers where release_timer_finalizers looks"
    daemons = [h for h in registry._spawning.get_all_handlers() if "Daemon" in type(h).__name__]
    assert daemons, "the topology loop is a daemon: kopf keeps it where release_timer_finalizers looks"
    release_timer_finalizers()
    assert all(h.requires_finalizer is False for h in registry._spawning.get_all_handlers())
    # every delete handler is optional too, so nothing asks kopf for a finalizer on a MysqlCluster
    deletes = [h for h in registry._changing.get_all_handlers() if str(h.reason) == "delete"]
    assert deletes and all(not h.requires_finalizer for h in deletes if "mysqlclusters" in str(h.selector))


def test_releasing_a_private_registry_changes_only_its_timers_and_daemons() -> None:
    registry = kopf.OperatorRegistry()

    @kopf.timer("example.com", "v1", "things", interval=1, registry=registry)
    def tick(**_: object) -> None:
        """A timer."""

    @kopf.daemon("example.com", "v1", "things", registry=registry)
    async def loop(**_: object) -> None:
        """A daemon."""

    @kopf.on.delete("example.com", "v1", "things", registry=registry)
    def gone(**_: object) -> None:
        """A mandatory delete handler keeps its finalizer."""

    spawning = registry._spawning.get_all_handlers()
    assert release_timer_finalizers(registry) == [h.id for h in spawning]
    assert not any(h.requires_finalizer for h in registry._spawning.get_all_handlers())
    assert registry._changing.get_all_handlers()[0].requires_finalizer


def test_a_deleted_event_reaches_kopf_as_a_deletion_in_progress_so_it_stops_the_timers() -> None:
    """Without a finalizer the object has no deletion phase: only the DELETED event, whose body has
    no deletionTimestamp, so kopf would never stop its timers. The wrapper kopf's reactor calls
    marks it; every other event passes unchanged."""
    import asyncio

    from kopf._cogs.structs import finalizers as kopf_finalizers
    from kopf._core.reactor import processing

    from mysql_operator.handlers import finalizers

    seen: list[dict[str, object]] = []

    async def recording(*_: object, raw_event: dict[str, object], **__: object) -> None:
        seen.append(raw_event)

    saved = processing.process_resource_event
    processing.process_resource_event = recording  # type: ignore[assignment]
    try:
        assert finalizers.stop_timers_on_delete()
        assert not finalizers.stop_timers_on_delete()  # wrapped once
        wrapped = processing.process_resource_event
        body = {"metadata": {"name": "db", "uid": "u1"}}
        asyncio.run(wrapped(raw_event={"type": "MODIFIED", "object": body}))
        asyncio.run(wrapped(raw_event={"type": "DELETED", "object": body}))
    finally:
        processing.process_resource_event = saved
    modified, deleted = seen
    assert not kopf_finalizers.is_deletion_ongoing(modified["object"])  # type: ignore[arg-type]
    assert kopf_finalizers.is_deletion_ongoing(deleted["object"])  # type: ignore[arg-type]
    assert "deletionTimestamp" not in body["metadata"]  # the watch stream's own object is not changed
