"""No finalizer for timers and daemons: deleting a cluster (or its namespace) never waits for the operator.

kopf puts its finalizer on every object a timer or a daemon (the topology loop) runs for, so that it
can stop them before the object goes, even when every delete handler is `optional=True`. With the
operator scaled to zero or uninstalled, `kubectl delete` of such an object (or of its namespace) then
hangs for ever. Our timers and daemons hold nothing that needs releasing: each pass re-reads the
object and does nothing once it carries a deletionTimestamp (a daemon is stopped by kopf once its
object is gone), and the objects a cluster owns go by garbage collection. So after the handler
modules registered them, `release_timer_finalizers` marks them as not needing a finalizer; kopf then
also removes the finalizer it added to existing objects (its "no handler requires it" branch). Only a
MysqlDatabase or MysqlUser with `retentionPolicy: Delete` keeps one (handlers/schema.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf
from kopf._core.intents.handlers import SpawningHandler


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
