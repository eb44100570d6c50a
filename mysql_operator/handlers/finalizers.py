"""No finalizer for timers and daemons: deleting a cluster (or its namespace) never waits for the operator.

kopf puts its finalizer on every object a timer or a daemon (the topology loop) runs for, so that it
can stop them before the object goes, even when every delete handler is `optional=True`. With the
operator scaled to zero or uninstalled, `kubectl delete` of such an object (or of its namespace) then
hangs for ever. Our timers and daemons hold nothing that needs releasing: each pass re-reads the
object and does nothing once it carries a deletionTimestamp or is another incarnation of its name,
and the objects a cluster owns go by garbage collection. So after the handler modules registered
them, `release_timer_finalizers` marks them as not needing a finalizer; kopf then also removes the
finalizer it added to existing objects (its "no handler requires it" branch). Only a MysqlDatabase or
MysqlUser with `retentionPolicy: Delete` keeps one (handlers/schema.py).

Without a finalizer an object goes without a deletion phase: kopf sees only the watch stream's
DELETED event, whose body has no deletionTimestamp, so it never stops that object's timers and
daemons, which then run for ever with the last body they saw (and, under a re-used name, would act
on the next cluster of that name: the topology pass checks the incarnation, handlers/topology.py).
`stop_timers_on_delete` makes kopf treat a DELETED event as a deletion in progress, which is where
kopf stops an object's daemons and timers (the topology loop also ends on the deletion it watched
itself, handlers/watch.py WakeBoard.gone).
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from typing import Any

import kopf
from kopf._core.intents.handlers import SpawningHandler
from kopf._core.reactor import processing


def release_timer_finalizers(registry: Any = None) -> list[str]:
    """Re-register every timer and daemon of `registry` (default: kopf's) as needing no finalizer.

    Returns the ids of the handlers changed. kopf keeps handlers as frozen dataclasses in its
    spawning registry; `tests/unit/test_finalizers.py` fails if a kopf upgrade moves them.
    """
    real = registry if registry is not None else kopf.get_default_registry()
    spawning = real._spawning
    changed: list[str] = []
    for index, handler in enumerate(list(spawning._handlers)):
        if isinstance(handler, SpawningHandler) and handler.requires_finalizer:
            spawning._handlers[index] = dataclasses.replace(handler, requires_finalizer=False)
            changed.append(str(handler.id))
    return changed


def mark_deleted(raw_event: dict[str, Any]) -> dict[str, Any]:
    """A DELETED watch event whose object carries a deletionTimestamp (the time it was seen gone,
    unless it had one): kopf stops the object's timers and daemons on a deletion in progress."""
    if raw_event.get("type") != "DELETED":
        return raw_event
    obj = dict(raw_event.get("object") or {})
    metadata = dict(obj.get("metadata") or {})
    if metadata.get("deletionTimestamp"):
        return raw_event
    metadata["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**raw_event, "object": {**obj, "metadata": metadata}}


def stop_timers_on_delete() -> bool:
    """Wrap kopf's per-event processor (looked up when the operator starts) so that a DELETED event
    stops the object's timers and daemons; False if already wrapped. `tests/unit/test_finalizers.py`
    fails if a kopf upgrade moves the processor."""
    original: Any = processing.process_resource_event
    if getattr(original, "_mysql_operator_stops_timers", False):
        return False

    @functools.wraps(original)
    async def process_resource_event(*args: Any, raw_event: Any, **kwargs: Any) -> Any:
        return await original(*args, raw_event=mark_deleted(raw_event), **kwargs)

    setattr(process_resource_event, "_mysql_operator_stops_timers", True)  # noqa: B010
    setattr(processing, "process_resource_event", process_resource_event)  # noqa: B010
    return True
