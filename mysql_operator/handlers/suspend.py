"""`spec.suspend: true`: the operator changes nothing of that cluster until it is turned off again.

Every handler that acts on a cluster asks `is_suspended` at its entry and returns: the reconcile
handler (no object applied, no acceptedSpec moved), the topology loop (no failover, switchover,
seeding, scaling, rollout, role label or user; it only observes each instance over SQL, read-only,
and reports what it saw), the backup schedule (no backup, retention or binlog Job), restores and
the MysqlDatabase/MysqlUser handlers. What is written is status only: phase `Suspended` and the
`Suspended` condition. Turning it off is a spec change like any other: the reconcile handler
applies the spec accepted meanwhile and the next topology pass takes over from what it observes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.conventions import ANNOTATION_FENCED, Role
from mysql_operator.kube import Kube, KubeError
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.observe import InstanceObservation, observe_instance
from mysql_operator.mysql.session import Login, Timeouts
from mysql_operator.resources.credentials import decode_secret_data
from mysql_operator.resources.statefulset import credentials_secret
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


def observe_suspended(kube: Kube, namespace: str, cluster: str, spec: MysqlClusterSpec) -> dict[str, Any]:
    """The status fields of a suspended cluster: phase, and each instance observed over SQL as the
    operator's user, read-only (pods and the Secret read from the API; nothing written)."""
    fields: dict[str, Any] = {"phase": PHASE_SUSPENDED}
    try:
        pods = kube.list("v1", "Pod", namespace, c.selector_labels(cluster))
        secret = kube.get("v1", "Secret", namespace, credentials_secret(spec, cluster))
    except KubeError:
        return fields
    password = decode_secret_data((secret or {}).get("data")).get(c.KEY_OPERATOR_PASSWORD)
    if not password:
        return fields
    login, dialect = Login(c.OPERATOR_USER, password), dialect_for(spec.flavor)
    observations, names = [], {}
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or not status.get("podIP"):
            continue
        ordinal = c.ordinal_of_pod(str(meta["name"]))
        names[ordinal] = str(meta["name"])
        observations.append(
            observe_instance(ordinal, str(status["podIP"]), login, dialect, timeouts=Timeouts())
        )
    fields["instances"] = observed_instances(observations, names)
    return fields
