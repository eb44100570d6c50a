"""Pure status computation: conditions with transition times, phase, and the kubectl columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mysql_operator.api.models import MysqlClusterSpec, Phase

# Condition types.
VALID = "Valid"
CREDENTIALS_READY = "CredentialsReady"
RESOURCES_READY = "ResourcesReady"
REPLICATING = "Replicating"
DEGRADED = "Degraded"
READY = "Ready"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with the condition set; lastTransitionTime moves only when the status flips."""
    text = "True" if status else "False"
    previous = next((cond for cond in conditions if cond.get("type") == type_), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == text else now
    updated = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    others = [cond for cond in conditions if cond.get("type") != type_]
    return sorted([*others, updated], key=lambda cond: str(cond["type"]))


def condition_is(conditions: list[dict[str, Any]], type_: str, status: str = "True") -> bool:
    return any(cond.get("type") == type_ and cond.get("status") == status for cond in conditions)


@dataclass(frozen=True)
class Observed:
    """What the handlers saw this round, reduced to what status needs."""

    ready_instances: int
    primary: str | None = None
    replicating: bool | None = None  # None: replication not observed yet
    replication_reason: str = "NotObserved"
    replication_message: str = ""
    degraded_reasons: list[str] = field(default_factory=list)
    failing_over: bool = False


def compute_phase(spec: MysqlClusterSpec, conditions: list[dict[str, Any]], observed: Observed) -> Phase:
    if condition_is(conditions, VALID, "False"):
        return Phase.INVALID
    if condition_is(conditions, CREDENTIALS_READY, "False"):
        return Phase.PENDING
    if observed.failing_over:
        return Phase.FAILING_OVER
    if condition_is(conditions, READY):
        return Phase.READY
    if observed.ready_instances == 0:
        return Phase.CREATING
    if observed.primary is None or observed.replicating is None:
        return Phase.INITIALIZING
    return Phase.DEGRADED


def observed_conditions(
    spec: MysqlClusterSpec,
    conditions: list[dict[str, Any]],
    observed: Observed,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Set Ready, Replicating and Degraded from what was observed."""
    desired = spec.instances
    all_up = observed.ready_instances >= desired
    if observed.replicating is not None:
        conditions = set_condition(
            conditions,
            REPLICATING,
            observed.replicating,
            observed.replication_reason,
            observed.replication_message,
            generation,
            now,
        )
    degraded = bool(observed.degraded_reasons) or (observed.primary is not None and not all_up)
    degraded_message = "; ".join(observed.degraded_reasons) or (
        f"{observed.ready_instances}/{desired} instances ready" if degraded else "all instances healthy"
    )
    conditions = set_condition(
        conditions,
        DEGRADED,
        degraded,
        "InstancesUnhealthy" if degraded else "AllHealthy",
        degraded_message,
        generation,
        now,
    )
    replication_ok = observed.replicating is True or (desired == 1 and observed.primary is not None)
    ready = all_up and replication_ok and not degraded and condition_is(conditions, RESOURCES_READY)
    if ready:
        reason, message = "ClusterReady", f"primary {observed.primary}, {desired}/{desired} instances ready"
    elif not all_up:
        reason, message = "InstancesNotReady", f"{observed.ready_instances}/{desired} instances ready"
    elif observed.primary is None:
        reason, message = "NoPrimary", "no writable primary yet"
    else:
        reason, message = "ReplicationNotReady", observed.replication_message or degraded_message
    return set_condition(conditions, READY, ready, reason, message, generation, now)


def status_fields(
    spec: MysqlClusterSpec, conditions: list[dict[str, Any]], observed: Observed, generation: int | None
) -> dict[str, Any]:
    """The status subresource fields the handlers write (besides per-instance details)."""
    return {
        "phase": compute_phase(spec, conditions, observed).value,
        "conditions": conditions,
        "primary": observed.primary,
        "readyInstances": observed.ready_instances,
        "instancesReady": f"{observed.ready_instances}/{spec.instances}",
        "version": spec.effective_version,
        "observedGeneration": generation,
    }
