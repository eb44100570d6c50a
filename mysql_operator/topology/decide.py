"""What to do next, as a pure function of what was observed (no I/O here).

`decide(view)` returns a Plan: the primary as it stands, the actions to take now, and the problems to
report. The failover candidate is chosen later by `choose_new_primary`, once the replicas have stopped
receiving and applied their relay logs (the executor observes them again in between).

Invariants (each has a table test named after it in tests/unit/test_topology_failover.py):

1. Memory is authoritative. Status keeps, across operator restarts, the primary, its last observed
   GTID set, the replicas that could acknowledge its writes (semi-sync), the former primaries it
   replaced (deposed) and the operation in progress. A writable instance that memory says was
   deposed is fenced, never the primary memory names; an operation whose target became writable is
   completed, never undone.
2. Never promote an instance lacking a transaction that another reachable candidate holds, applied
   or still in its relay log (the received set counts: a candidate still applying makes the failover
   wait, bounded, then block; it is never dropped from the comparison). Transactions a replica wrote
   itself (errant) exclude it and do not count against the others.
3. A returning primary that lacks its recorded history (came back empty or rolled back) is never
   made writable again; in async mode what the recorded history has and no replica has is the
   documented loss window, reported.
4. Semi-sync (AFTER_SYNC, wait for one acknowledgement): an acknowledged write is on at least one
   replica that was attached to the primary. A failover therefore waits until every such replica
   is reachable, unless `allowDataLossOnFailover` says otherwise; a promoted primary turns its
   semi-sync source side on before it accepts writes.
5. Fence before promote: the old primary is made read-only over SQL (client sessions ended first so
   the fence never waits behind commits waiting for an acknowledgement), and when that fails or it
   is unreachable its pod loses the role label and is deleted before any other pod is labelled.
6. Busy is not dead: an SQL error (1040 too many connections, lock timeouts) or a slow query after
   the login means the server answers; only connection failures that last the grace period lead to
   a failover, and until then the primary keeps its label.
7. A deposed primary rejoins without a human when its extra transactions were provably never
   acknowledged (a semi-sync failover that had every acknowledging replica): they are recorded
   (GTID set, count, Event) and the instance is rebuilt from the new primary. In async mode the same
   needs autoReseed. An instance holding writes the primary lacks is otherwise never rebuilt.
8. A switchover fences the primary only once the target is within `switchover_max_lag` seconds, and
   never repoints an instance being seeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation


class ReplicationMode(StrEnum):
    ASYNC = "async"
    SEMI_SYNC = "semi-sync"


@dataclass(frozen=True)
class Deposed:
    """A former primary the operator replaced; it must never take writes again until it rejoins.

    `lossless`: it was replaced by a semi-sync failover that had every acknowledging replica, so its
    transactions the new primary lacks were never acknowledged to a client."""

    ordinal: int
    lossless: bool = False


@dataclass(frozen=True)
class Operation:
    """A failover or switchover started and not yet known to be complete (kept in status)."""

    kind: str  # "failover" | "switchover"
    source: int | None
    target: int
    lossless: bool = False


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
    # Failover memory and safety settings (see the module docstring).
    deposed: tuple[Deposed, ...] = ()
    operation: Operation | None = None
    acknowledgers: frozenset[int] = frozenset()
    allow_data_loss: bool = False
    switchover_max_lag: int = 1

    def wanted(self, ordinal: int) -> bool:
        """Whether the ordinal stays (below the desired instance count)."""
        return self.desired_instances is None or ordinal < self.desired_instances

    def get(self, ordinal: int | None) -> InstanceObservation | None:
        for observation in self.observations:
            if observation.ordinal == ordinal:
                return observation
        return None

    def deposed_entry(self, ordinal: int) -> Deposed | None:
        return next((d for d in self.deposed if d.ordinal == ordinal), None)


def resolve_operation(view: ClusterView) -> ClusterView:
    """Complete an operation whose target is already the writable primary (an operator killed after
    the promotion and before it recorded it): memory follows the target, the source is deposed."""
    op = view.operation
    if op is None:
        return view
    target = view.get(op.target)
    if target is None or not target.writable or target.replica_configured:
        return view
    deposed = tuple(d for d in view.deposed if d.ordinal != op.target)
    if op.source is not None and op.source != op.target and view.deposed_entry(op.source) is None:
        deposed = (*deposed, Deposed(op.source, op.lossless))
    return replace(view, last_primary=op.target, deposed=deposed, operation=None)


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
    """Fence the failed primary, stop IO on every candidate, wait for relay logs, choose, promote,
    repoint. `lossless`: semi-sync with every acknowledging replica among the candidates."""

    failed: int | None
    candidates: tuple[int, ...]
    reason: str
    lossless: bool = False


@dataclass(frozen=True)
class Switchover:
    """Planned move of the primary: fence, wait for catch-up, promote, repoint `repoint`."""

    source: int
    target: int
    repoint: tuple[int, ...] = ()


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
    # A deposed primary's transactions the new primary lacks, recorded before they are wiped.
    discarded: str = ""
    discarded_count: int = 0


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
    """The outcome of choosing a failover candidate: an ordinal, or why there is none. `waiting`:
    the candidate that holds everything has not applied its relay log yet (try again, never skip it)."""

    ordinal: int | None
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    waiting: bool = False


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


def rightful(flavor: Flavor, instance: InstanceObservation, errant: str) -> str:
    """What the instance received, minus the transactions it wrote itself (`errant`)."""
    return gtid.missing(flavor, errant, instance.received) if errant else instance.received


def choose_new_primary(
    flavor: Flavor, candidates: list[InstanceObservation], known_history: str = ""
) -> Choice:
    """The replica to promote: no errant transactions, and holding (received) every transaction the
    other candidates received, errant ones aside; among those an applied one first, then the lowest
    ordinal. When the only such candidate is still applying its relay log the choice waits.

    `known_history` is the last GTID set seen on the old primary, used to tell a former primary's
    own legitimate transactions from errant ones.
    """
    problems: list[Problem] = []
    reachable = [c for c in candidates if c.reachable]
    if not reachable:
        return Choice(None, (Problem("NoCandidate", "no replica is reachable to promote"),))
    errant: dict[int, str] = {}
    for candidate in reachable:
        others = [c.received for c in reachable if c is not candidate]
        found = errant_transactions(flavor, candidate, gtid.union(flavor, [*others, known_history]))
        errant[candidate.ordinal] = found if (others or known_history) else ""
        if errant[candidate.ordinal]:
            problems.append(
                Problem("ErrantTransactions",
                        f"instance {candidate.ordinal} has transactions no other instance has: {found}",
                        candidate.ordinal)
            )
    held = {c.ordinal: rightful(flavor, c, errant[c.ordinal]) for c in reachable}
    eligible = [c for c in reachable if not errant[c.ordinal]]
    for candidate in sorted(eligible, key=lambda c: (not c.relay_log_applied, c.ordinal)):
        if not all(gtid.includes(flavor, candidate.received, held[o.ordinal])
                   for o in reachable if o is not candidate):
            continue
        if candidate.relay_log_applied:
            return Choice(candidate.ordinal, tuple(problems))
        problems.append(
            Problem("RelayLogNotApplied", f"instance {candidate.ordinal} holds every transaction but has "
                    "not applied its relay log yet; the failover waits for it", candidate.ordinal)
        )
        return Choice(None, tuple(problems), waiting=True)
    if eligible:
        problems.append(
            Problem("DivergentReplicas",
                    "no replica holds every transaction of the others: "
                    + "; ".join(f"{c.ordinal}: {gtid.position(flavor, c.received) or 'empty'}"
                                for c in reachable))
        )
    return Choice(None, tuple(problems))


def discarded_relay_logs(
    flavor: Flavor, winner: InstanceObservation, followers: list[InstanceObservation]
) -> tuple[Problem, ...]:
    """Followers holding (received) transactions the new primary lacks: repointing them discards
    those. Never the case for a winner of `choose_new_primary`; reported if it ever is."""
    return tuple(
        Problem("RelayLogDiscarded", f"instance {f.ordinal} received transactions the new primary "
                f"{winner.ordinal} lacks: {gtid.missing(flavor, winner.gtid_executed, f.received)}",
                f.ordinal)
        for f in followers
        if f.reachable and not gtid.includes(
            flavor, winner.gtid_executed,
            rightful(flavor, f, errant_transactions(flavor, f, winner.gtid_executed)))
    )


# The decision -------------------------------------------------------------------------------------


def decide(view: ClusterView) -> Plan:
    """The next step for the cluster. See the module docstring; pass a view through
    `resolve_operation` first so an interrupted operation is completed."""
    reachable = [o for o in view.observations if o.reachable]
    unreachable = tuple(
        Problem("InstanceBusy", f"instance {o.ordinal} answers but is busy: {o.error}", o.ordinal)
        if o.busy else Problem("InstanceUnreachable", f"instance {o.ordinal} is unreachable: {o.error}",
                               o.ordinal)
        for o in view.observations
        if not o.reachable
    )
    if not reachable:
        return Plan(view.last_primary, problems=(Problem("NoInstanceReachable", "no instance is reachable"),))
    writable = [o for o in reachable if o.writable]
    fences: list[Fence] = []
    notes: list[Problem] = []
    # Memory is authoritative: a deposed primary that is writable again is fenced, whatever it holds;
    # the remembered primary is fenced only when it came back writable without its own history.
    for o in writable:
        if view.deposed_entry(o.ordinal) is not None and o.ordinal != view.last_primary:
            fences.append(Fence(o.ordinal, f"deposed primary {o.ordinal} was writable; "
                                           f"{view.last_primary} is the primary"))
        elif o.ordinal == view.last_primary and not gtid.includes(view.flavor, o.gtid_executed,
                                                                 view.last_primary_gtid):
            fences.append(Fence(o.ordinal, f"primary {o.ordinal} came back writable without transactions "
                                           "it had; never writable again"))
    fenced = {f.ordinal for f in fences}
    writable = [o for o in writable if o.ordinal not in fenced]
    current = next((o for o in writable if o.ordinal == view.last_primary), None)
    followers = _writable_followers(writable)
    if current is not None:
        for o in writable:
            if o is not current:
                fences.append(Fence(o.ordinal, f"instance {o.ordinal} was writable beside the primary "
                                               f"{current.ordinal}"))
        plan = _with_primary(view, current, reachable)
    elif followers and len(writable) - len(followers) == 1:
        # A replica made writable by hand while still replicating from the primary is no contender.
        primary = next(o for o in writable if o not in followers)
        fences.extend(Fence(o.ordinal, f"replica {o.ordinal} of {primary.ordinal} was writable")
                      for o in followers)
        plan = _with_primary(view, primary, reachable)
    elif len(writable) >= 2:
        plan = _split_brain(view, writable)
    elif len(writable) == 1 and _may_adopt(view, writable[0]):
        plan = _with_primary(view, writable[0], reachable)
    else:
        for o in writable:
            fences.append(Fence(o.ordinal, f"instance {o.ordinal} was writable without the primary "
                                           f"{view.last_primary}'s history"))
        plan = _without_writable(view, reachable)
    if fences:
        names = ", ".join(str(f.ordinal) for f in fences)
        kept = plan.primary if plan.primary is not None else view.last_primary
        notes.append(Problem("SplitBrain",
                             f"instances {names} were writable beside the primary {kept}; fenced"))
    return Plan(plan.primary, (*fences, *plan.actions), (*unreachable, *notes, *plan.problems))


def _may_adopt(view: ClusterView, instance: InstanceObservation) -> bool:
    """A writable instance memory does not name (promoted by hand, or memory lost) is adopted only
    when it holds the recorded primary's history."""
    return view.last_primary is None or gtid.includes(view.flavor, instance.gtid_executed,
                                                      view.last_primary_gtid)


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
    lag = candidate.seconds_behind
    if lag is None or lag > view.switchover_max_lag or not candidate.relay_log_applied:
        # Fencing now would stop writes for as long as the target needs to catch up: wait unfenced.
        return Problem("SwitchoverWaitingForCatchUp",
                       f"switchover to {target} waits until it is within {view.switchover_max_lag}s of "
                       f"the primary (now {'unknown' if lag is None else f'{lag}s'} behind); "
                       f"{primary.ordinal} stays writable", target)
    repoint = tuple(
        o.ordinal for o in view.observations
        if o.reachable and o.ordinal not in (primary.ordinal, target) and o.ordinal not in view.seeding
    )
    return Switchover(primary.ordinal, target, (*repoint, primary.ordinal))


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
        deposed = view.deposed_entry(ordinal)
        if extra and deposed is not None:
            return _rejoin_deposed(view, primary, instance, deposed, extra)
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


def _rejoin_deposed(
    view: ClusterView, primary: InstanceObservation, instance: InstanceObservation, deposed: Deposed,
    extra: str,
) -> tuple[Action | None, Problem | None]:
    """A former primary with transactions the new primary lacks: rebuilt from it when those were
    provably never acknowledged (lossless semi-sync failover), or in async mode with autoReseed;
    the discarded set is carried by the Seed so the executor records it first."""
    ordinal = instance.ordinal
    count = gtid.count_missing(view.flavor, primary.gtid_executed, instance.gtid_executed)
    semi = view.replication_mode is ReplicationMode.SEMI_SYNC
    allowed = (semi and deposed.lossless) or (not semi and view.auto_reseed)
    message = (f"former primary {ordinal} holds {count} transaction(s) the primary {primary.ordinal} "
               f"lacks ({extra})")
    if not allowed or not view.wanted(ordinal):
        why = ("the failover was not provably lossless" if semi
               else "async mode rebuilds it only with spec.replication.autoReseed: true")
        return None, Problem("DeposedPrimaryDiverged", f"{message}; not rebuilt: {why}", ordinal)
    seed = _seed(view, primary, ordinal, f"RejoinDeposedPrimary: {message}, never acknowledged"
                 if semi else f"RejoinDeposedPrimary: {message}, discarded (autoReseed)", rebuild=True)
    return replace(seed, discarded=extra, discarded_count=count), None

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
    if last is not None and last.busy:
        return Plan(last.ordinal, problems=(Problem(
            "PrimaryBusy", f"primary {last.ordinal} answers but is busy ({last.error}); no failover",
            last.ordinal),))
    if last is None or not last.reachable:
        last = _primary_followed_by_replicas(view, reachable) if view.last_primary is None else None
    candidates = tuple(o.ordinal for o in reachable
                       if o.ordinal != (last.ordinal if last is not None else view.last_primary)
                       and o.ordinal not in view.seeding and view.deposed_entry(o.ordinal) is None)
    if last is not None and last.reachable and not last.replica_configured:
        if last.ordinal == view.last_primary and not gtid.includes(flavor, last.gtid_executed,
                                                                   view.last_primary_gtid):
            lost = gtid.missing(flavor, last.gtid_executed, view.last_primary_gtid)
            problem = Problem("PrimaryLostHistory",
                              f"primary {last.ordinal} came back without transactions it had ({lost}); "
                              "it is never made writable again", last.ordinal)
            return _failover(view, last.ordinal, candidates,
                             f"primary {last.ordinal} lost part of its history", (problem,))
        reference = gtid.union(flavor, [last.gtid_executed, view.last_primary_gtid])
        ahead = [
            o for o in reachable
            if o is not last and not gtid.includes(
                flavor, last.gtid_executed, rightful(flavor, o, errant_transactions(flavor, o, reference)))
        ]
        if not ahead:
            return Plan(last.ordinal, (Promote(last.ordinal, "the primary was read-only"),))
        names = ", ".join(str(o.ordinal) for o in ahead)
        return _failover(
            view, last.ordinal, candidates,
            f"replicas {names} are ahead of the read-only primary {last.ordinal}",
            (Problem("ReplicaAheadOfPrimary", f"instances {names} hold transactions the primary "
                                              f"{last.ordinal} lacks", last.ordinal),),
        )
    if view.last_primary is not None and (last is None or not last.reachable):
        waited = view.primary_unreachable_for
        if waited < view.grace_period:
            return Plan(view.last_primary, problems=(Problem(
                "PrimaryUnreachable",
                f"primary {view.last_primary} unreachable for {waited:.1f}s "
                f"(failover after {view.grace_period:.0f}s)", view.last_primary),))
        return _failover(view, view.last_primary, candidates,
                         f"primary {view.last_primary} unreachable for {waited:.1f}s")
    return _failover(view, None, candidates, "no writable primary")


def _failover(
    view: ClusterView, failed: int | None, candidates: tuple[int, ...], reason: str,
    problems: tuple[Problem, ...] = (),
) -> Plan:
    """A failover, unless semi-sync cannot guarantee the acknowledged set: an acknowledged write is
    on at least one replica that was attached to the primary, so every such replica must be among
    the reachable candidates (or the user allowed possible loss)."""
    if not candidates:
        return Plan(None, problems=(*problems, Problem("NoCandidate", f"{reason}; no replica to promote")))
    semi = view.replication_mode is ReplicationMode.SEMI_SYNC
    absent = sorted(view.acknowledgers - set(candidates) - {failed} if failed is not None
                    else view.acknowledgers - set(candidates))
    if semi and absent and not view.allow_data_loss:
        names = ", ".join(str(o) for o in absent)
        return Plan(None, problems=(*problems, Problem(
            "FailoverNeedsQuorum",
            f"{reason}; not promoting: replicas {names} may hold the only copy of acknowledged writes "
            "and are unreachable (spec.replication.allowDataLossOnFailover: true accepts the loss)")))
    return Plan(None, (Failover(failed, candidates, reason, lossless=semi and not absent),), problems)


def _primary_followed_by_replicas(
    view: ClusterView, reachable: list[InstanceObservation]
) -> InstanceObservation | None:
    """With no memory of the primary: the one instance the replicas replicate from, if any."""
    sources = {o.source_host for o in reachable if o.replica_configured}
    if len(sources) != 1:
        return None
    host = sources.pop()
    return next((o for o in reachable if o.host == host), None)
