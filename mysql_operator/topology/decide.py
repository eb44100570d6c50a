"""What to do next, as a pure function of what was observed (no I/O here).

`decide(view)` returns a Plan: the primary as it stands, the actions to take now, and the problems to
report. The failover candidate is chosen later by `choose_new_primary`, once the replicas have stopped
receiving and applied their relay logs (the executor observes them again in between).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation


class ReplicationMode(StrEnum):
    ASYNC = "async"
    SEMI_SYNC = "semi-sync"


@dataclass(frozen=True)
class ClusterView:
    """Everything the decision needs: observations plus what the operator remembers."""

    flavor: Flavor
    observations: tuple[InstanceObservation, ...]
    last_primary: int | None = None
    last_primary_gtid: str = ""
    switchover_to: int | None = None
    primary_unreachable_for: float = 0.0
    grace_period: float = 10.0
    replication_mode: ReplicationMode = ReplicationMode.ASYNC
    # Day-2: instances wanted (higher ordinals are on their way out), whether an empty instance is
    # seeded from a donor rather than attached to replicate from nothing, whether a replica that
    # cannot replicate is rebuilt, instances with a seed in progress, and a primary wanted by a rollout.
    desired_instances: int | None = None
    seed_new_instances: bool = False
    auto_reseed: bool = False
    seeding: frozenset[int] = frozenset()
    move_primary_to: int | None = None

    def wanted(self, ordinal: int) -> bool:
        """Whether the ordinal stays (below the desired instance count)."""
        return self.desired_instances is None or ordinal < self.desired_instances

    def get(self, ordinal: int | None) -> InstanceObservation | None:
        for observation in self.observations:
            if observation.ordinal == ordinal:
                return observation
        return None


# Actions --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    """Make a fresh instance the first primary (users, writable, application database)."""

    ordinal: int


@dataclass(frozen=True)
class AttachReplica:
    ordinal: int
    source: int
    reason: str


@dataclass(frozen=True)
class RepairReplica:
    """Restart or repoint a replica that does not replicate from the primary."""

    ordinal: int
    source: int
    reason: str
    repoint: bool


@dataclass(frozen=True)
class Promote:
    """Make an instance the writable primary (it holds every transaction the others have)."""

    ordinal: int
    reason: str


@dataclass(frozen=True)
class Failover:
    """Stop IO on every candidate, wait for relay logs, choose, promote, repoint."""

    failed: int | None
    candidates: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class Switchover:
    """Planned move of the primary: fence, wait for catch-up, promote, repoint."""

    source: int
    target: int


@dataclass(frozen=True)
class Fence:
    ordinal: int
    reason: str


@dataclass(frozen=True)
class Seed:
    """Wipe `ordinal` and copy a consistent snapshot of `donor` into it, then attach it to `source`.

    `rebuild` is set when the instance had data of its own (a re-seed), not for an empty one."""

    ordinal: int
    donor: int
    source: int
    reason: str
    rebuild: bool = False


@dataclass(frozen=True)
class EnableSemiSyncSource:
    ordinal: int


@dataclass(frozen=True)
class DisableSemiSyncSource:
    ordinal: int


Action = (
    Bootstrap
    | AttachReplica
    | RepairReplica
    | Promote
    | Failover
    | Switchover
    | Fence
    | Seed
    | EnableSemiSyncSource
    | DisableSemiSyncSource
)


@dataclass(frozen=True)
class Problem:
    """Something a human should know; becomes a condition reason and message."""

    reason: str
    message: str
    ordinal: int | None = None


@dataclass(frozen=True)
class Plan:
    primary: int | None
    actions: tuple[Action, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Choice:
    """The outcome of choosing a failover candidate: an ordinal, or why there is none."""

    ordinal: int | None
    problems: tuple[Problem, ...] = field(default_factory=tuple)


# Helpers --------------------------------------------------------------------------------------------


def errant_transactions(
    flavor: Flavor, instance: InstanceObservation, reference: str
) -> str:
    """Transactions `instance` wrote itself that `reference` (the rightful history) lacks."""
    own = gtid.originated_by(flavor, instance.gtid_executed, instance.origin)
    return gtid.missing(flavor, reference, own)


def missing_on(flavor: Flavor, primary: InstanceObservation, instance: InstanceObservation) -> str:
    """Transactions of `instance` that `primary` does not have (all of them are errant for a
    replica-to-be, whoever wrote them)."""
    return gtid.missing(flavor, primary.gtid_executed, instance.gtid_executed)


def choose_new_primary(
    flavor: Flavor, candidates: list[InstanceObservation], known_history: str = ""
) -> Choice:
    """The replica to promote: applied its relay log, no errant transactions, and holding every
    transaction the other candidates hold (ties go to the lowest ordinal).

    `known_history` is the last GTID set seen on the old primary, used to tell a former primary's
    own legitimate transactions from errant ones.
    """
    problems: list[Problem] = []
    reachable = [c for c in candidates if c.reachable]
    if not reachable:
        return Choice(None, (Problem("NoCandidate", "no replica is reachable to promote"),))
    eligible: list[InstanceObservation] = []
    for candidate in reachable:
        if not candidate.relay_log_applied:
            problems.append(
                Problem("RelayLogNotApplied", f"instance {candidate.ordinal} has not applied its relay log",
                        candidate.ordinal)
            )
            continue
        others = [c.gtid_executed for c in reachable if c is not candidate]
        errant = errant_transactions(flavor, candidate, gtid.union(flavor, [*others, known_history]))
        if errant and (others or known_history):
            problems.append(
                Problem("ErrantTransactions",
                        f"instance {candidate.ordinal} has transactions no other instance has: {errant}",
                        candidate.ordinal)
            )
            continue
        eligible.append(candidate)
    applied = [c for c in reachable if c.relay_log_applied]
    for candidate in sorted(eligible, key=lambda c: c.ordinal):
        if all(gtid.includes(flavor, candidate.gtid_executed, o.gtid_executed) for o in applied):
            return Choice(candidate.ordinal, tuple(problems))
    if eligible:
        problems.append(
            Problem("DivergentReplicas",
                    "no replica holds every transaction of the others: "
                    + "; ".join(f"{c.ordinal}: {gtid.position(flavor, c.gtid_executed) or 'empty'}"
                                for c in applied))
        )
    return Choice(None, tuple(problems))


# The decision -------------------------------------------------------------------------------------


def decide(view: ClusterView) -> Plan:
    """The next step for the cluster. See the module docstring."""
    reachable = [o for o in view.observations if o.reachable]
    if not reachable:
        return Plan(view.last_primary, problems=(Problem("NoInstanceReachable", "no instance is reachable"),))
    unreachable = [
        Problem("InstanceUnreachable", f"instance {o.ordinal} is unreachable: {o.error}", o.ordinal)
        for o in view.observations
        if not o.reachable
    ]
    writable = [o for o in reachable if o.writable]
    followers = _writable_followers(writable)
    if followers and len(writable) - len(followers) == 1:
        # A replica made writable by hand while still replicating from the primary is no contender.
        primary = next(o for o in writable if o not in followers)
        plan = _with_primary(view, primary, reachable)
        fences = tuple(Fence(o.ordinal, f"replica {o.ordinal} of {primary.ordinal} was writable")
                       for o in followers)
        names = ", ".join(str(o.ordinal) for o in followers)
        problem = Problem("SplitBrain", f"replica {names} of {primary.ordinal} was writable while "
                                        f"replicating; fenced, {primary.ordinal} stays primary")
        plan = Plan(plan.primary, (*fences, *plan.actions), (problem, *plan.problems))
    elif len(writable) >= 2:
        plan = _split_brain(view, writable)
    elif len(writable) == 1:
        plan = _with_primary(view, writable[0], reachable)
    else:
        plan = _without_writable(view, reachable)
    return Plan(plan.primary, plan.actions, (*unreachable, *plan.problems))


def _writable_followers(writable: list[InstanceObservation]) -> list[InstanceObservation]:
    hosts = {o.host for o in writable}
    # Only one still replicating: a replica that stopped and took writes is a real split brain.
    return [o for o in writable if o.replicating and o.source_host in hosts - {o.host}]


def _split_brain(view: ClusterView, writable: list[InstanceObservation]) -> Plan:
    names = ", ".join(str(o.ordinal) for o in writable)
    supersets = [
        w for w in writable
        if all(gtid.includes(view.flavor, w.gtid_executed, o.gtid_executed) for o in writable)
    ]
    # Equal histories: keep the remembered primary, else the lowest ordinal.
    supersets.sort(key=lambda o: (o.ordinal != view.last_primary, o.ordinal))
    if supersets:
        winner = supersets[0]
        return Plan(
            winner.ordinal,
            tuple(
                Fence(o.ordinal, f"split brain: instances {names} were writable; "
                                 f"{winner.ordinal} holds every transaction")
                for o in writable if o is not winner
            ),
            (Problem("SplitBrain", f"instances {names} were writable; kept {winner.ordinal}"),),
        )
    return Plan(
        None,
        tuple(Fence(o.ordinal, f"split brain: instances {names} were writable with diverged data")
              for o in writable),
        (Problem("SplitBrain",
                 f"instances {names} were writable and none holds all transactions of the others; "
                 "all fenced, a human must choose"),),
    )


def _with_primary(
    view: ClusterView, primary: InstanceObservation, reachable: list[InstanceObservation]
) -> Plan:
    actions: list[Action] = []
    problems: list[Problem] = []
    target = view.move_primary_to if view.move_primary_to is not None else view.switchover_to
    if not view.wanted(primary.ordinal) and (target is None or not view.wanted(target)):
        # Scaling down past the primary: hand over to a staying replica before it goes.
        target = _staying_replica(view, primary)
        if target is None:
            problems.append(Problem("ScaleDownWaiting", f"primary {primary.ordinal} is to be removed; "
                                    "no staying replica to switch over to yet", primary.ordinal))
    if target is not None and target != primary.ordinal:
        switch = _switchover(view, primary, target)
        if isinstance(switch, Switchover):
            return Plan(primary.ordinal, (switch,))
        problems.append(switch)
    if primary.replica_configured:
        actions.append(Promote(primary.ordinal, "the writable primary still had a replication source"))
    for instance in reachable:
        if instance is primary or instance.ordinal in view.seeding:
            continue
        action, problem = _replica_step(view, primary, instance)
        if action is not None:
            actions.append(action)
        if problem is not None:
            problems.append(problem)
    semi = primary.semi_sync
    if view.replication_mode is ReplicationMode.SEMI_SYNC:
        if not semi.source_enabled and semi.source_clients > 0:
            actions.append(EnableSemiSyncSource(primary.ordinal))
        elif not semi.source_enabled:
            problems.append(Problem("SemiSyncWaiting", "semi-sync waits for a replica to acknowledge",
                                    primary.ordinal))
    elif semi.source_enabled:
        actions.append(DisableSemiSyncSource(primary.ordinal))
    return Plan(primary.ordinal, tuple(actions), tuple(problems))


def _switchover(view: ClusterView, primary: InstanceObservation, target: int) -> Switchover | Problem:
    candidate = view.get(target)
    if candidate is None:
        return Problem("SwitchoverTargetUnknown", f"instance {target} does not exist", target)
    if not candidate.reachable:
        return Problem("SwitchoverTargetUnreachable", f"instance {target} is unreachable", target)
    if target in view.seeding:
        return Problem("SwitchoverTargetSeeding", f"instance {target} is being seeded", target)
    if not (candidate.replicating and candidate.source_host == primary.host):
        return Problem("SwitchoverTargetNotReplicating",
                       f"instance {target} does not replicate from the primary {primary.ordinal}", target)
    errant = errant_transactions(view.flavor, candidate, primary.gtid_executed)
    if errant:
        return Problem("ErrantTransactions",
                       f"switchover refused: instance {target} has errant transactions {errant}", target)
    return Switchover(primary.ordinal, target)


def _replica_step(
    view: ClusterView, primary: InstanceObservation, instance: InstanceObservation
) -> tuple[Action | None, Problem | None]:
    flavor = view.flavor
    ordinal = instance.ordinal
    follows_primary = instance.replica_configured and instance.source_host == primary.host
    if (
        view.seed_new_instances and view.wanted(ordinal) and not instance.replicating
        and gtid.is_empty(flavor, instance.gtid_executed) and not gtid.is_empty(flavor, primary.gtid_executed)
    ):
        return _seed(view, primary, ordinal, "empty instance", rebuild=False), None
    if not follows_primary:
        # Its data is static (not receiving from us): everything it has must be on the primary.
        extra = missing_on(flavor, primary, instance)
        if extra:
            return _reseed_or_report(
                view, primary, ordinal, "ErrantTransactions",
                f"instance {ordinal} has transactions the primary {primary.ordinal} lacks ({extra}); "
                "not rejoined as replica",
            )
        if not instance.replica_configured:
            return AttachReplica(ordinal, primary.ordinal, "not replicating"), None
        return RepairReplica(ordinal, primary.ordinal,
                             f"replicated from {instance.source_host}", repoint=True), None
    errant = errant_transactions(flavor, instance, primary.gtid_executed)
    if errant:
        if view.auto_reseed:
            return _reseed_or_report(view, primary, ordinal, "ErrantTransactions",
                                     f"replica {ordinal} has transactions written on it: {errant}")
        problem = Problem("ErrantTransactions",
                          f"replica {ordinal} has transactions written on it: {errant}{RESEED_HINT}", ordinal)
    else:
        problem = None
    unrecoverable = _unrecoverable_error(instance)
    if unrecoverable and (view.auto_reseed or problem is None):
        return _reseed_or_report(view, primary, ordinal, "ReplicaNeedsReseed",
                                 f"replica {ordinal} cannot replicate: {unrecoverable}")
    if view.replication_mode is ReplicationMode.SEMI_SYNC and not instance.semi_sync.replica_enabled:
        return RepairReplica(ordinal, primary.ordinal, "semi-sync not enabled", repoint=True), problem
    if not instance.sql_running:
        message = instance.last_sql_error or "SQL thread stopped"
        return (
            RepairReplica(ordinal, primary.ordinal, message, repoint=False),
            problem or Problem("ReplicaBroken", f"replica {ordinal}: {message}", ordinal),
        )
    if not instance.io_running and instance.last_io_error:
        return (
            RepairReplica(ordinal, primary.ordinal, instance.last_io_error, repoint=False),
            problem or Problem("ReplicaBroken", f"replica {ordinal}: {instance.last_io_error}", ordinal),
        )
    if not instance.io_running:
        return RepairReplica(ordinal, primary.ordinal, "IO thread stopped", repoint=False), problem
    return None, problem


RESEED_HINT = "; set spec.replication.autoReseed: true to rebuild it from a healthy replica"

# Replication errors that no restart cures: the source no longer has the binlogs the replica needs
# (1236), or the replica's data differs from the source's (row not found, duplicate key, missing or
# existing table/database/column).
_PURGED_BINLOGS = re.compile(r"\b1236\b")
_DATA_DRIFT_CODES = frozenset({1007, 1008, 1032, 1050, 1051, 1054, 1062, 1091, 1146})
_ERROR_CODE = re.compile(r"Error_code: ?(\d+)")


def _unrecoverable_error(instance: InstanceObservation) -> str:
    """The replication error that only a re-seed cures, or ""."""
    if not instance.io_running and _PURGED_BINLOGS.search(instance.last_io_error):
        return instance.last_io_error
    if not instance.sql_running:
        codes = {int(code) for code in _ERROR_CODE.findall(instance.last_sql_error)}
        if codes & _DATA_DRIFT_CODES:
            return instance.last_sql_error
    return ""


def _reseed_or_report(
    view: ClusterView, primary: InstanceObservation, ordinal: int, reason: str, message: str
) -> tuple[Action | None, Problem | None]:
    """Rebuild the instance when the spec allows it; otherwise say what is wrong and how to fix it."""
    if view.auto_reseed and view.wanted(ordinal):
        return _seed(view, primary, ordinal, f"{reason}: {message}", rebuild=True), None
    return None, Problem(reason, message + RESEED_HINT, ordinal)


def _seed(
    view: ClusterView, primary: InstanceObservation, ordinal: int, reason: str, *, rebuild: bool
) -> Seed:
    return Seed(ordinal, choose_donor(view, primary, ordinal), primary.ordinal, reason, rebuild)


def choose_donor(view: ClusterView, primary: InstanceObservation, target: int) -> int:
    """The healthiest replica to copy from (least lag, then lowest ordinal), else the primary.

    A donor replicates from the primary with both threads running, has no transactions of its own,
    holds data (unless the primary has none), is staying, and is not being seeded itself.
    """
    candidates = [
        o for o in view.observations
        if o.reachable and o.ordinal not in (target, primary.ordinal) and o.ordinal not in view.seeding
        and view.wanted(o.ordinal) and o.replicating and o.source_host == primary.host
        and not o.last_sql_error and not o.last_io_error
        and not errant_transactions(view.flavor, o, primary.gtid_executed)
        and not gtid.is_empty(view.flavor, o.gtid_executed)
    ]
    if not candidates:
        return primary.ordinal
    best = min(candidates, key=lambda o: (o.seconds_behind if o.seconds_behind is not None else 1 << 30,
                                          o.ordinal))
    return best.ordinal


def _staying_replica(view: ClusterView, primary: InstanceObservation) -> int | None:
    """The replica to hand the primary role to when the primary's ordinal is scaled away."""
    for o in sorted(view.observations, key=lambda o: o.ordinal):
        if (o.reachable and view.wanted(o.ordinal) and o.ordinal not in view.seeding and o.replicating
                and o.source_host == primary.host
                and not errant_transactions(view.flavor, o, primary.gtid_executed)):
            return o.ordinal
    return None


def _without_writable(view: ClusterView, reachable: list[InstanceObservation]) -> Plan:
    flavor = view.flavor
    if view.last_primary is None and all(gtid.is_empty(flavor, o.gtid_executed) for o in reachable):
        zero = view.get(0)
        if zero is not None and zero.reachable:
            return Plan(None, (Bootstrap(0),))
        return Plan(None, problems=(Problem("WaitingForFirstInstance",
                                            "instance 0 bootstraps the cluster and is not reachable", 0),))
    last = view.get(view.last_primary)
    if last is None or not last.reachable:
        last = _primary_followed_by_replicas(view, reachable) if view.last_primary is None else None
    if last is not None and last.reachable and not last.replica_configured:
        ahead = [
            o for o in reachable
            if o is not last and not gtid.includes(flavor, last.gtid_executed, o.gtid_executed)
        ]
        if not ahead:
            return Plan(last.ordinal, (Promote(last.ordinal, "the primary was read-only"),))
        others = tuple(o.ordinal for o in reachable if o is not last and o.ordinal not in view.seeding)
        names = ", ".join(str(o.ordinal) for o in ahead)
        return Plan(
            None,
            (Failover(last.ordinal, others, f"replicas {names} are ahead of the read-only primary "
                                            f"{last.ordinal}"),),
            (Problem("ReplicaAheadOfPrimary", f"instances {names} hold transactions the primary "
                                              f"{last.ordinal} lacks", last.ordinal),),
        )
    candidates = tuple(o.ordinal for o in reachable
                       if o.ordinal != view.last_primary and o.ordinal not in view.seeding)
    if view.last_primary is not None and (last is None or not last.reachable):
        waited = view.primary_unreachable_for
        if waited < view.grace_period:
            return Plan(view.last_primary, problems=(Problem(
                "PrimaryUnreachable",
                f"primary {view.last_primary} unreachable for {waited:.1f}s "
                f"(failover after {view.grace_period:.0f}s)", view.last_primary),))
        return Plan(None, (Failover(view.last_primary, candidates,
                                    f"primary {view.last_primary} unreachable for {waited:.1f}s"),))
    return Plan(None, (Failover(None, candidates, "no writable primary"),))


def _primary_followed_by_replicas(
    view: ClusterView, reachable: list[InstanceObservation]
) -> InstanceObservation | None:
    """With no memory of the primary: the one instance the replicas replicate from, if any."""
    sources = {o.source_host for o in reachable if o.replica_configured}
    if len(sources) != 1:
        return None
    host = sources.pop()
    return next((o for o in reachable if o.host == host), None)
