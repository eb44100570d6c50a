"""Acting on a Plan: each action of `decide` becomes SQL on the instances (and, for a fence that SQL
cannot do, a Kubernetes-level fence through the caller's hook). Every wait is bounded; SQL trouble
becomes problems and Warning events, never an exception out of `act`.

The failover and switchover are the state machine's active steps: fence the old primary, stop
receiving, let relay logs apply, choose, record the operation (checkpoint), promote with semi-sync
on, repoint. An operator killed between the checkpoint and the end of the pass finds the operation
in status and completes it (decide.resolve_operation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from mysql_operator.mysql import actions, gtid
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.mysql.session import MysqlError
from mysql_operator.mysql.users import ensure_application, ensure_system_users
from mysql_operator.topology.candidates import gone_since_held
from mysql_operator.topology.context import Pass, TransitionRecord, parallel
from mysql_operator.topology.decide import (
    Action,
    AttachReplica,
    Bootstrap,
    DisableSemiSyncSource,
    EnableSemiSyncSource,
    Failover,
    Fence,
    Operation,
    Problem,
    Promote,
    RepairReplica,
    ReplicationMode,
    Seed,
    Switchover,
    choose_new_primary,
    discarded_relay_logs,
)
from mysql_operator.topology.seeding import start_seed

log = logging.getLogger(__name__)


def describe(action: Action) -> str:
    return f"{type(action).__name__}({', '.join(f'{k}={v}' for k, v in asdict(action).items())})"


def act(work: Pass, action: Action, observed: Mapping[int, InstanceObservation]) -> None:
    """Carry out one action; SQL failures become an ActionFailed problem and Warning event."""
    try:
        _act(work, action, observed)
    except MysqlError as error:
        work.problems.append(Problem("ActionFailed", f"{describe(action)}: {error}"))
        work.event("Warning", "ActionFailed", f"{describe(action)}: {error}")


def _act(work: Pass, action: Action, observed: Mapping[int, InstanceObservation]) -> None:
    work.done.append(describe(action))
    dialect = work.dialect
    semi = work.mode is ReplicationMode.SEMI_SYNC
    if isinstance(action, Bootstrap):
        with work.session(action.ordinal) as session:
            ensure_system_users(session, dialect, work.credentials)
            actions.promote(session, dialect)
            created = ensure_application(session, dialect, work.credentials)
        work.primary = action.ordinal
        extra = f"; created {', '.join(created)}" if created else ""
        work.event("Normal", "PrimaryBootstrapped", f"instance {action.ordinal} is the first primary{extra}")
    elif isinstance(action, AttachReplica | RepairReplica):
        attach(work, action)
    elif isinstance(action, Promote):
        # A restarted primary's replicas reconnect by themselves: semi-sync is on before it writes.
        with work.session(action.ordinal) as session:
            actions.promote(session, dialect, semi_sync=semi)
        ensure_application_on(work, action.ordinal)
        work.primary = action.ordinal
        work.event("Normal", "PrimaryPromoted", f"instance {action.ordinal} is writable: {action.reason}")
    elif isinstance(action, Fence):
        fence(work, action.ordinal, action.reason, bind_root=action.bind_root)
    elif isinstance(action, EnableSemiSyncSource):
        with work.session(action.ordinal) as session:
            actions.enable_semi_sync_source(session, dialect)
        work.event("Normal", "SemiSyncEnabled", f"primary {action.ordinal} waits for a replica's ack")
    elif isinstance(action, DisableSemiSyncSource):
        with work.session(action.ordinal) as session:
            actions.disable_semi_sync_source(session, dialect)
        work.event("Normal", "SemiSyncDisabled", f"primary {action.ordinal} replicates asynchronously")
    elif isinstance(action, Seed):
        start_seed(work, action)
    elif isinstance(action, Failover):
        failover(work, action, observed)
    elif isinstance(action, Switchover):
        switchover(work, action)


def fence(work: Pass, ordinal: int, reason: str, *, reachable: bool = True, bind_root: bool = True) -> bool:
    """Make the instance refuse writes: SQL first (bounded); when that fails or the instance is
    unreachable, at the Kubernetes level (role label off, pod deleted). Whether it is fenced."""
    if reachable:
        try:
            with work.session(ordinal) as session:
                killed = actions.fence(session, work.dialect, bind_root=bind_root)
            work.event("Warning", "InstanceFenced",
                       f"instance {ordinal} set read-only ({killed} connections ended): {reason}")
            return True
        except MysqlError as error:
            log.warning("fence of instance %s over SQL failed: %s", ordinal, error)
    if work.fence_pod is None:
        work.problems.append(Problem("FenceFailed", f"instance {ordinal} could not be fenced: {reason}",
                                     ordinal))
        return False
    if not work.fence_pod(ordinal):
        work.problems.append(Problem("FenceFailed", f"pod of instance {ordinal} could not be fenced: "
                                                    f"{reason}", ordinal))
        return False
    work.pods_fenced.append(ordinal)
    work.event("Warning", "PodFenced", f"pod {work.pod(ordinal)} deleted and unlabelled: {reason}")
    return True


def attach(work: Pass, action: AttachReplica | RepairReplica) -> None:
    source = work.endpoints[action.source]
    with work.session(action.ordinal) as session:
        # The operator's user exists from the image's first start; the replication user is ours to
        # create (unlogged, idempotent) before an instance replicates or can be promoted.
        ensure_system_users(session, work.dialect, work.credentials)
        if isinstance(action, RepairReplica) and not action.repoint:
            actions.start_replica(session, work.dialect)
            work.event("Normal", "ReplicaRestarted", f"instance {action.ordinal}: {action.reason}")
            return
        actions.configure_replica(
            session, work.dialect, source_host=source.host, source_port=source.port,
            replication=work.credentials.replication, semi_sync=work.mode is ReplicationMode.SEMI_SYNC,
            tls=source.tls is not None,
        )
    reason = "ReplicaAttached" if isinstance(action, AttachReplica) else "ReplicaRepointed"
    work.event("Normal", reason, f"instance {action.ordinal} replicates from {action.source} "
                                 f"({action.reason})")


def ensure_application_on(work: Pass, ordinal: int) -> None:
    """The replication user (unlogged) and the application user/database exist on a new primary (a
    no-op when they were there: an instance never attached, e.g. restored, lacks the first)."""
    try:
        with work.session(ordinal) as session:
            created = ensure_system_users(session, work.dialect, work.credentials)
            created += ensure_application(session, work.dialect, work.credentials)
    except MysqlError as error:
        work.problems.append(Problem("ApplicationUserUnchecked", str(error), ordinal))
        return
    if created:
        work.event("Normal", "UsersCreated", f"instance {ordinal}: created {', '.join(created)}")


def _repoint_all(work: Pass, primary: int, ordinals: Sequence[int]) -> None:
    def repoint(ordinal: int) -> str:
        try:
            attach(work, RepairReplica(ordinal, primary, f"new primary {primary}", repoint=True))
            return ""
        except MysqlError as error:
            return f"instance {ordinal}: {error}"

    for failure in parallel(repoint, [o for o in ordinals if o not in work.seeding]):
        if failure:
            work.problems.append(Problem("RepointFailed", failure))
            work.event("Warning", "RepointFailed", failure)


def _promote(work: Pass, ordinal: int, operation: Operation) -> None:
    """Record the operation (so a restarted operator completes it), then make `ordinal` writable with
    semi-sync's source side already on in semi-sync mode."""
    work.operation = operation
    if work.checkpoint is not None:
        work.checkpoint(work)
    with work.session(ordinal) as session:
        actions.promote(session, work.dialect, semi_sync=work.mode is ReplicationMode.SEMI_SYNC)
    work.primary = ordinal
    if work.route_primary is not None:
        try:
            work.route_primary(operation.source, ordinal)
        except Exception:  # routing early is a shortcut: the end of the pass moves the labels anyway
            log.exception("routing clients to the new primary %s failed", ordinal)


def failover(work: Pass, action: Failover, observed: Mapping[int, InstanceObservation]) -> None:
    started = time.monotonic()
    dialect = work.dialect
    failed = action.failed
    if failed is not None and failed in work.endpoints:
        # Fence before promote: over SQL when it answers, else its pod goes (hook of the caller).
        old = observed.get(failed)
        reachable = old is not None and old.reachable
        already = not reachable and work.view is not None and failed in work.view.pods_fenced
        if not already and not fence(work, failed, "replaced by a failover", reachable=reachable) \
                and work.fence_pod is not None:
            work.problems.append(Problem("FailoverBlocked", f"{action.reason}; not promoting: the old "
                                                            f"primary {failed} could not be fenced"))
            return

    def stop_receiving(ordinal: int) -> bool:
        # A half-dead old primary must not collect acknowledgements any more: IO threads first.
        try:
            with work.session(ordinal) as session:
                actions.stop_io_thread(session, dialect)
                return True
        except MysqlError as error:
            log.warning("failover: instance %s: %s", ordinal, error)
            return False

    def apply_relay_log(ordinal: int) -> bool:
        try:
            with work.session(ordinal) as session:
                return actions.wait_relay_log_applied(session, dialect, work.settings.relay_apply_timeout)
        except MysqlError as error:
            log.warning("failover: instance %s: %s", ordinal, error)
            return False

    parallel(stop_receiving, list(action.candidates))
    known = work.view.last_primary_gtid if work.view is not None else ""
    candidates = list(work.observe_all(list(action.candidates)).values())
    choice = choose_new_primary(work.flavor, candidates, known)
    if choice.waiting:
        # Only the candidate that holds everything is waited for (bounded), not a slow one not needed.
        waited_for = [p.ordinal for p in choice.problems if p.reason == "RelayLogNotApplied"]
        parallel(apply_relay_log, [o for o in waited_for if o is not None])
        candidates = list(work.observe_all(list(action.candidates)).values())
        choice = choose_new_primary(work.flavor, candidates, known)
    work.problems.extend(choice.problems)
    if choice.ordinal is None:
        # IO threads stay stopped: restarting them toward a presumed-dead primary would let it collect
        # acknowledgements again. A primary that comes back gets its replicas restarted by `decide`.
        why = "; ".join(p.message for p in choice.problems) or "no candidate"
        reason = "FailoverWaiting" if choice.waiting else "FailoverBlocked"
        work.problems.append(Problem(reason, f"{action.reason}; not promoting yet: {why}"))
        return
    new = choice.ordinal
    winner = next(c for c in candidates if c.ordinal == new)
    held = work.view.held_while_unreachable if work.view is not None else ""
    gone = gone_since_held(work.flavor, winner, held)
    allowed = work.view is not None and work.view.allow_data_loss
    if gone and work.mode is ReplicationMode.SEMI_SYNC and not allowed:
        # A replica held them after the primary stopped answering (they may be acknowledged) and none
        # does now: the old primary is their only copy left. IO threads stay stopped (see below).
        work.problems.append(Problem(
            "FailoverNeedsQuorum",
            f"{action.reason}; not promoting: transactions {gtid.position(work.flavor, gone)} were held by a "
            f"replica after the primary stopped answering and no reachable instance holds them now (a "
            f"discarded relay log); they may be acknowledged writes, so the failover waits for the old "
            f"primary (spec.replication.allowDataLossOnFailover: true accepts the loss)", failed))
        return
    discarded = discarded_relay_logs(work.flavor, winner, [c for c in candidates if c is not winner])
    work.problems.extend(discarded)
    _promote(work, new, Operation("failover", failed, new, action.lossless))
    seconds = time.monotonic() - started
    _repoint_all(work, new, [o for o in action.candidates if o != new])
    ensure_application_on(work, new)
    work.transition = TransitionRecord("failover", work.now, failed, new, action.reason,
                                       round(seconds, 3), action.lossless)
    work.event("Warning", "FailoverCompleted",
               f"instance {new} promoted (was {failed}): {action.reason}; writable after {seconds:.2f}s"
               + ("" if action.lossless or work.mode is ReplicationMode.ASYNC
                  else "; possible loss of acknowledged writes was allowed"))


def switchover(work: Pass, action: Switchover) -> None:
    started = time.monotonic()
    dialect = work.dialect
    source, target = action.source, action.target
    with work.session(source) as session:
        actions.fence(session, dialect)
        history = actions.executed_gtids(session, dialect)
    with work.session(target) as session:
        caught_up = actions.wait_for_gtids(session, dialect, history, work.settings.catchup_timeout)
        # A client killed by the fence may still have been committing: promote only once the old
        # primary's history stopped moving and the target holds all of it.
        for _ in range(20):
            if not caught_up:
                break
            time.sleep(0.1)
            with work.session(source) as old:
                latest = actions.executed_gtids(old, dialect)
            if latest == history:
                break
            history = latest
            caught_up = actions.wait_for_gtids(session, dialect, history, work.settings.catchup_timeout)
    if not caught_up:
        with work.session(source) as old:
            actions.unfence(old, dialect)
        message = (f"instance {target} did not catch up with {source} within "
                   f"{work.settings.catchup_timeout:.0f}s; {source} stays primary")
        work.problems.append(Problem("SwitchoverTimedOut", message, target))
        work.event("Warning", "SwitchoverFailed", message)
        return
    _promote(work, target, Operation("switchover", source, target, True))
    seconds = time.monotonic() - started
    _repoint_all(work, target, list(action.repoint))
    work.transition = TransitionRecord("switchover", work.now, source, target, "requested",
                                       round(seconds, 3), True)
    work.event("Normal", "SwitchoverCompleted",
               f"instance {target} is the primary (was {source}); writable after {seconds:.2f}s")
