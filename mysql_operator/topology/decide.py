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
   itself (errant) exclude it and do not count against the others. Nor an instance holding none of
   the primary's recorded history (it never replicated from it: not seeded yet, or wiped), in any
   mode: that failover blocks until the primary is back (NeverReplicated).
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

from dataclasses import replace
from enum import StrEnum

from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.candidates import (
    choose_new_primary,
    discarded_relay_logs,
    errant_transactions,
    missing_on,
    rightful,
)
from mysql_operator.topology.model import (
    Action,
    AttachReplica,
    Bootstrap,
    Choice,
    ClusterView,
    Deposed,
    DisableSemiSyncSource,
    EnableSemiSyncSource,
    Failover,
    Fence,
    Operation,
    Plan,
    Problem,
    Promote,
    RepairReplica,
    ReplicationMode,
    Seed,
    Switchover,
)
from mysql_operator.topology.replicas import RESEED_HINT, choose_donor, replica_step, staying_replica

__all__ = [
    "RESEED_HINT",
    "Action",
    "AttachReplica",
    "Bootstrap",
    "Choice",
    "ClusterView",
    "Deposed",
    "DisableSemiSyncSource",
    "EnableSemiSyncSource",
    "Failover",
    "Fence",
    "Operation",
    "Plan",
    "Problem",
    "Promote",
    "RepairReplica",
    "ReplicationMode",
    "Seed",
    "State",
    "Switchover",
    "choose_donor",
    "choose_new_primary",
    "decide",
    "discarded_relay_logs",
    "errant_transactions",
    "missing_on",
    "resolve_operation",
    "rightful",
    "state_of",
]


class State(StrEnum):
    """Where the cluster stands in the failover state machine after a decision (status.topology.state).

    Steady -> PrimaryUnreachable (grace) -> FailingOver -> Steady, or FailoverBlocked (waiting for a
    relay log, for quorum, or for a fence) until a pass can finish it; Fencing when a writable
    instance other than the primary was found; Rejoining while a deposed primary is rebuilt;
    SwitchingOver / SwitchoverWaiting for planned moves; PrimaryBusy when the primary answers only
    with errors (never a failover)."""

    BOOTSTRAPPING = "Bootstrapping"
    STEADY = "Steady"
    PRIMARY_BUSY = "PrimaryBusy"
    PRIMARY_UNREACHABLE = "PrimaryUnreachable"
    FAILING_OVER = "FailingOver"
    FAILOVER_BLOCKED = "FailoverBlocked"
    FENCING = "Fencing"
    REJOINING = "Rejoining"
    SWITCHING_OVER = "SwitchingOver"
    SWITCHOVER_WAITING = "SwitchoverWaiting"
    NO_PRIMARY = "NoPrimary"


_BLOCKED = frozenset({"FailoverNeedsQuorum", "NoCandidate", "FailoverBlocked", "FailoverWaiting",
                      "WaitingForFirstInstance", "NoInstanceReachable"})


def state_of(plan: Plan) -> State:
    """The state a plan (and what acting on it reported) puts the cluster in. Pure."""
    kinds = {type(a) for a in plan.actions}
    reasons = {p.reason for p in plan.problems}
    if Bootstrap in kinds:
        return State.BOOTSTRAPPING
    if Failover in kinds:
        return State.FAILING_OVER
    if Switchover in kinds:
        return State.SWITCHING_OVER
    if Fence in kinds:
        return State.FENCING
    if any(isinstance(a, Seed) and a.discarded for a in plan.actions):
        return State.REJOINING
    if "PrimaryBusy" in reasons:
        return State.PRIMARY_BUSY
    if "PrimaryUnreachable" in reasons:
        return State.PRIMARY_UNREACHABLE
    if plan.primary is None:
        return State.FAILOVER_BLOCKED if reasons & _BLOCKED else State.NO_PRIMARY
    if "SwitchoverWaitingForCatchUp" in reasons:
        return State.SWITCHOVER_WAITING
    return State.STEADY


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
                                               f"{current.ordinal}",
                                    bind_root=not (o.replicating and o.source_host == current.host)))
        plan = _with_primary(view, current, reachable)
    elif followers and len(writable) - len(followers) == 1:
        # A replica made writable by hand while still replicating from the primary is no contender.
        primary = next(o for o in writable if o not in followers)
        fences.extend(Fence(o.ordinal, f"replica {o.ordinal} of {primary.ordinal} was writable",
                            bind_root=False) for o in followers)
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
        target = staying_replica(view, primary)
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
        action, problem = replica_step(view, primary, instance)
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
                       and o.ordinal not in view.seeding and view.deposed_entry(o.ordinal) is None
                       and o.ordinal not in view.terminating)
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
