"""Which cluster a log line is about, for lines logged outside kopf's per-object loggers.

kopf's object loggers stamp each line with the object's reference (`k8s_ref`); the SQL and topology
modules log through plain module loggers. A handler binds its cluster for the duration of its work
and a filter on the root handlers stamps the same reference on those lines, so every line of a JSON
log names its namespace and cluster.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mysql_operator import conventions as c

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "mysql_cluster", default=None
)


@contextmanager
def bound(namespace: str, name: str, kind: str = c.KIND) -> Iterator[None]:
    """Attribute every log line of this block (in this thread or task) to one object."""
    token = _current.set(
        {"apiVersion": f"{c.API_GROUP}/{c.API_VERSION}", "kind": kind, "namespace": namespace, "name": name}
    )
    try:
        yield
    finally:
        _current.reset(token)


class ObjectRefFilter(logging.Filter):
    """Adds the bound object's reference to records that carry none."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = _current.get()
        if ref is not None and not hasattr(record, "k8s_ref"):
            record.k8s_ref = ref
        return True


def install() -> None:
    """Put the filter on every handler of the root logger (call after kopf configured logging)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ObjectRefFilter) for f in handler.filters):
            handler.addFilter(ObjectRefFilter())
