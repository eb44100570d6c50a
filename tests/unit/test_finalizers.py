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
