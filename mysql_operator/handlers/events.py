"""The Normal Events the handlers post on purpose (Applied, Scaled, Created, BackupStarted, ...).

kopf posts its own log lines about every handler run as Events too, one API request each, at
`settings.posting.level` and above; the operator sets that level to WARNING (handlers/cluster.py).
`kopf.info` obeys the same level, so it would post nothing: every Normal Event goes through `info`
here, which posts whatever the level (as kopf.event does). Warnings go through `kopf.warn`."""

from __future__ import annotations

from typing import Any

import kopf


def info(objs: Any, *, reason: str, message: str = "") -> None:
    """Post a Normal Event on `objs` (a body, or several)."""
    kopf.event(objs, type="Normal", reason=reason, message=message)
