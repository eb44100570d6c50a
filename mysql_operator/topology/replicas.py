"""The step each non-primary instance needs given the primary: attach, repair, seed, rebuild, rejoin a
deposed primary, or report why not. Pure functions over a ClusterView."""

from __future__ import annotations

import re
from dataclasses import replace

from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.candidates import errant_transactions, missing_on
from mysql_operator.topology.model import (
    Action,
    AttachReplica,
    ClusterView,
    Deposed,
    Problem,
    RepairReplica,
    ReplicationMode,
    Seed,
)


def replica_step(
    view: ClusterView, primary: InstanceObservation, instance: InstanceObservation
) -> tuple[Action | None, Problem | None]:
    """What `instance` needs to replicate from `primary`, and what to report about it."""
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


def staying_replica(view: ClusterView, primary: InstanceObservation) -> int | None:
    """The replica to hand the primary role to when the primary's ordinal is scaled away."""
    for o in sorted(view.observations, key=lambda o: o.ordinal):
        if (o.reachable and view.wanted(o.ordinal) and o.ordinal not in view.seeding and o.replicating
                and o.source_host == primary.host
                and not errant_transactions(view.flavor, o, primary.gtid_executed)):
            return o.ordinal
    return None
