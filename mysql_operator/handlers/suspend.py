"""`spec.suspend: true`: the operator changes nothing of that cluster until it is turned off again.

Every handler that acts on a cluster asks `is_suspended` at its entry and returns: the reconcile
handler (no object applied, no acceptedSpec moved), the topology timer (no failover, switchover,
seeding, scaling, rollout, role label or user; it only observes each instance over SQL, read-only,
and reports what it saw), the backup schedule (no backup, retention or binlog Job), restores and
the MysqlDatabase/MysqlUser handlers. What is written is status only: phase `Suspended` and the
`Suspended` condition. Turning it off is a spec change like any other: the reconcile handler
applies the spec accepted meanwhile and the next topology pass takes over from what it observes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mysql_operator.conventions import ANNOTATION_FENCED, Flavor, Role
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.observe import InstanceObservation, observe_instance
from mysql_operator.mysql.session import Login, Timeouts
from mysql_operator.status import set_condition

SUSPENDED = "Suspended"
PHASE_SUSPENDED = "Suspended"
MESSAGE = "spec.suspend is true: the operator observes this cluster and changes nothing (failover included)"


def is_suspended(spec: Mapping[str, Any]) -> bool:
    """Whether a cluster's (raw) spec asks the operator to keep its hands off."""
    return bool(spec.get("suspend"))


def suspended_conditions(
    conditions: Sequence[Mapping[str, Any]], suspended: bool, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """The conditions with `Suspended` set (pure); a cluster never suspended gets none."""
    current = [dict(cond) for cond in conditions]
    if not suspended and not any(cond.get("type") == SUSPENDED for cond in current):
        return current
    if suspended:
        return set_condition(current, SUSPENDED, True, "SuspendedBySpec", MESSAGE, generation, now)
    return set_condition(
        current, SUSPENDED, False, "Resumed", "the operator manages this cluster", generation, now
    )


def fenced_pods(meta: Mapping[str, Any]) -> set[str]:
    """Pods a user fenced (`kubectl mysql fence`): the annotation's comma-separated pod names."""
    text = str((meta.get("annotations") or {}).get(ANNOTATION_FENCED) or "")
    return {name.strip() for name in text.split(",") if name.strip()}


def without_fenced(labels: Mapping[str, str], meta: Mapping[str, Any]) -> dict[str, str]:
    """Role labels with every user-fenced pod set to `none`: no Service sends it traffic (pure)."""
    fenced = fenced_pods(meta)
    return {pod: Role.NONE.value if pod in fenced else role for pod, role in labels.items()}


def observed_instances(
    observations: Sequence[InstanceObservation], pod_names: Mapping[int, str]
) -> list[dict[str, Any]]:
    """status.instances from a read-only look (pure): role from read_only, GTID and lag as seen."""
    entries = []
    for obs in sorted(observations, key=lambda o: o.ordinal):
        role = Role.NONE if not obs.reachable else (Role.PRIMARY if obs.writable else Role.REPLICA)
        entry: dict[str, Any] = {
            "name": pod_names[obs.ordinal],
            "role": role.value,
            "reachable": obs.reachable,
            "ready": False,  # nothing is Ready while nobody keeps it so
            "message": obs.error or "suspended: observed only",
        }
        if obs.gtid_executed:
            entry["gtid"] = obs.gtid_executed
        if obs.seconds_behind is not None:
            entry["lagSeconds"] = float(obs.seconds_behind)
        entries.append(entry)
    return entries


def observe_suspended(
    flavor: Flavor,
    endpoints: Sequence[tuple[int, str, str, int]],
    login: Login,
) -> list[dict[str, Any]]:
    """Observe each instance (ordinal, pod, host, port) over SQL, read-only; status.instances."""
    dialect = dialect_for(flavor)
    timeouts = Timeouts()
    observations = [
        observe_instance(ordinal, host, login, dialect, port=port, timeouts=timeouts)
        for ordinal, _, host, port in endpoints
    ]
    return observed_instances(observations, {ordinal: pod for ordinal, pod, _, _ in endpoints})
