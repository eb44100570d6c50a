"""Status facts of a pass, computed in one place: per-instance roles and readiness, the Ready,
Replicating and Degraded conditions, Warning events for new problems, and the memory for the next
pass (topology.memory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mysql_operator.conventions import Role
from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.context import EventFact, Pass, TransitionRecord
from mysql_operator.topology.decide import ClusterView, Plan, Problem, ReplicationMode, State, state_of
from mysql_operator.topology.memory import TopologyMemory, remember

# Problems that are already events of their own, or expected transient states.
_QUIET = frozenset({"ActionFailed", "RepointFailed", "SemiSyncWaiting"})


@dataclass(frozen=True)
class InstanceStatus:
    ordinal: int
    pod_name: str
    role: Role
    ready: bool
    reachable: bool
    gtid: str
    lag_seconds: int | None
    message: str = ""


@dataclass(frozen=True)
class ConditionFact:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class TopologyResult:
    primary: int | None
    instances: tuple[InstanceStatus, ...]
    conditions: tuple[ConditionFact, ...]
    events: tuple[EventFact, ...]
    transition: TransitionRecord | None
    memory: TopologyMemory
    actions: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    pods_fenced: tuple[int, ...] = ()
    state: State = State.STEADY


def primary_status(o: InstanceObservation, mode: ReplicationMode) -> tuple[bool, str]:
    """Whether the primary is ready and why not: writable, and in semi-sync mode with a replica
    acknowledging (with none, every write blocks)."""
    if not o.writable:
        return False, ("busy: " if o.busy else "") + (o.error or "not writable")
    if mode is ReplicationMode.SEMI_SYNC and o.semi_sync.source_enabled and o.semi_sync.source_clients == 0:
        return False, "no replica acknowledges: writes wait"
    return True, ""


def report(
    work: Pass, plan: Plan, view: ClusterView, previous: TopologyMemory,
    observed: Mapping[int, InstanceObservation], since: float | None,
) -> TopologyResult:
    """Everything status needs from this pass."""
    primary = work.primary
    primary_host = work.endpoints[primary].host if primary is not None else None
    statuses: list[InstanceStatus] = []
    for ordinal in sorted(work.endpoints):
        o = observed[ordinal]
        follows = o.replica_configured and o.source_host == primary_host
        if ordinal == primary:
            role = Role.PRIMARY
            ready, message = primary_status(o, work.mode)
        elif follows:
            lag_ok = o.seconds_behind is not None and o.seconds_behind <= work.settings.lag_threshold
            role = Role.REPLICA
            ready = o.replicating and lag_ok
            message = "" if ready else (o.last_sql_error or o.last_io_error or
                                        ("lagging" if o.replicating else "not replicating"))
        else:
            role, ready, message = Role.NONE, False, o.error or "not replicating from the primary"
        if ordinal in work.seeding:
            role, ready, message = Role.NONE, False, work.seeding[ordinal]
        statuses.append(InstanceStatus(ordinal, work.endpoints[ordinal].pod_name, role, ready and o.reachable,
                                       o.reachable, gtid.position(work.flavor, o.gtid_executed)
                                       if o.reachable else "", o.seconds_behind, message))
    problems = [*plan.problems, *work.problems]
    conditions = _conditions(statuses, problems, primary)
    for problem in problems:
        if f"{problem.reason}/{problem.ordinal}" not in previous.problems and problem.reason not in _QUIET:
            work.event("Warning", problem.reason, problem.message)
    state = state_of(plan)
    if state in (State.FAILING_OVER, State.SWITCHING_OVER):
        # The pass carried the operation out, or it is still to be finished by a later pass.
        done = work.transition is not None
        state = State.STEADY if done else (
            State.FAILOVER_BLOCKED if state is State.FAILING_OVER else State.SWITCHOVER_WAITING)
    return TopologyResult(
        primary=primary,
        instances=tuple(statuses),
        conditions=conditions,
        events=tuple(work.events),
        transition=work.transition,
        memory=remember(previous, view, work, observed, since, problems),
        actions=tuple(work.done),
        problems=tuple(problems),
        pods_fenced=tuple(work.pods_fenced),
        state=state,
    )


def _conditions(
    statuses: list[InstanceStatus], problems: list[Problem], primary: int | None
) -> tuple[ConditionFact, ...]:
    replicas = [s for s in statuses if s.ordinal != primary]
    all_ready = primary is not None and all(s.ready for s in statuses)
    not_ready = ", ".join(f"{s.pod_name} ({s.message})" for s in statuses if not s.ready)
    ready = ConditionFact(
        "Ready", all_ready,
        "AllInstancesReady" if all_ready else ("NoPrimary" if primary is None else "InstancesNotReady"),
        "primary and every replica ready" if all_ready else f"not ready: {not_ready}" if not_ready
        else "no primary",
    )
    replicating_ok = primary is not None and all(s.role is Role.REPLICA and s.reachable for s in replicas)
    replicating = ConditionFact(
        "Replicating", replicating_ok,
        ("SingleInstance" if not replicas else "AllReplicasReplicating") if replicating_ok
        else "ReplicasNotReplicating",
        "" if replicating_ok else ", ".join(s.pod_name for s in replicas if s.role is not Role.REPLICA)
        or "no primary",
    )
    degraded_problems = [p for p in problems if p.reason != "SemiSyncWaiting"]
    degraded_flag = bool(degraded_problems) or not all_ready
    degraded = ConditionFact(
        "Degraded", degraded_flag,
        degraded_problems[0].reason if degraded_problems else ("InstancesNotReady" if degraded_flag
                                                               else "Healthy"),
        "; ".join(p.message for p in degraded_problems) if degraded_problems else not_ready,
    )
    return ready, replicating, degraded
