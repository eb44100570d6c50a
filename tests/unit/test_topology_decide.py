"""Table tests of the pure topology decisions (MariaDB GTID notation; server_id = 1<ordinal>)."""

from __future__ import annotations

from typing import Any

import pytest

from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import SemiSyncState
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.decide import (
    AttachReplica,
    Bootstrap,
    ClusterView,
    DisableSemiSyncSource,
    EnableSemiSyncSource,
    Failover,
    Fence,
    Plan,
    Promote,
    RepairReplica,
    ReplicationMode,
    Switchover,
    choose_new_primary,
    decide,
)

MARIA = Flavor.MARIADB
MYSQL = Flavor.MYSQL


def host(ordinal: int) -> str:
    return f"10.0.0.{ordinal + 1}"


def primary(ordinal: int, gtids: str = "0-10-10", **extra: Any) -> InstanceObservation:
    return InstanceObservation(ordinal=ordinal, host=host(ordinal), reachable=True, server_id=10 + ordinal,
                               read_only=False, gtid_executed=gtids, **extra)


def replica(ordinal: int, source: int = 0, gtids: str = "0-10-10", **extra: Any) -> InstanceObservation:
    values: dict[str, Any] = dict(
        ordinal=ordinal, host=host(ordinal), reachable=True, server_id=10 + ordinal, read_only=True,
        gtid_executed=gtids, replica_configured=True, io_running=True, sql_running=True,
        source_host=host(source), seconds_behind=0,
    )
    values.update(extra)
    return InstanceObservation(**values)


def idle(ordinal: int, gtids: str = "", **extra: Any) -> InstanceObservation:
    """Reachable, read-only, not replicating (fresh, fenced or restarted)."""
    return InstanceObservation(ordinal=ordinal, host=host(ordinal), reachable=True, server_id=10 + ordinal,
                               read_only=True, gtid_executed=gtids, **extra)


def down(ordinal: int) -> InstanceObservation:
    return InstanceObservation(ordinal=ordinal, host=host(ordinal), reachable=False, error="refused")


def view(*observations: InstanceObservation, **extra: Any) -> ClusterView:
    return ClusterView(flavor=extra.pop("flavor", MARIA), observations=observations, **extra)


def reasons(plan: Plan) -> list[str]:
    return [p.reason for p in plan.problems]


# Bootstrap -------------------------------------------------------------------------------------------


def test_fresh_cluster_bootstraps_ordinal_zero() -> None:
    assert decide(view(idle(0), idle(1), idle(2))) == Plan(None, (Bootstrap(0),))


def test_fresh_cluster_waits_for_ordinal_zero() -> None:
    plan = decide(view(down(0), idle(1), idle(2)))
    assert plan.actions == () and "WaitingForFirstInstance" in reasons(plan)


def test_no_reachable_instance_reports_and_does_nothing() -> None:
    plan = decide(view(down(0), down(1), last_primary=0))
    assert plan == Plan(0, (), plan.problems) and reasons(plan) == ["NoInstanceReachable"]


# Steady state and replicas ------------------------------------------------------------------------------


def test_healthy_cluster_needs_nothing() -> None:
    assert decide(view(primary(0), replica(1), replica(2), last_primary=0)) == Plan(0)


@pytest.mark.parametrize(
    ("instance", "expected", "problem"),
    [
        (idle(1), AttachReplica(1, 0, "not replicating"), None),
        (idle(1, "0-10-4"), AttachReplica(1, 0, "not replicating"), None),
        (replica(1, source=2), RepairReplica(1, 0, f"replicated from {host(2)}", repoint=True), None),
        (replica(1, io_running=False), RepairReplica(1, 0, "IO thread stopped", repoint=False), None),
        (replica(1, io_running=False, last_io_error="access denied"),
         RepairReplica(1, 0, "access denied", repoint=False), "ReplicaBroken"),
        (replica(1, sql_running=False, last_sql_error="Duplicate entry"),
         RepairReplica(1, 0, "Duplicate entry", repoint=False), "ReplicaBroken"),
        # An instance holding transactions the primary lacks is not (re)joined.
        (idle(1, "0-10-10,0-11-11"), None, "ErrantTransactions"),
        (idle(1, "0-10-12"), None, "ErrantTransactions"),
    ],
)
def test_each_non_primary_gets_the_step_it_needs(
    instance: InstanceObservation, expected: object, problem: str | None
) -> None:
    plan = decide(view(primary(0), instance, last_primary=0))
    assert plan.primary == 0
    assert list(plan.actions) == ([expected] if expected else [])
    assert reasons(plan) == ([problem] if problem else [])


def test_writes_made_on_a_running_replica_are_reported() -> None:
    plan = decide(view(primary(0, "0-10-10"), replica(1, gtids="0-10-10,0-11-11"), last_primary=0))
    assert plan.actions == () and reasons(plan) == ["ErrantTransactions"]


def test_unreachable_replica_is_reported_not_acted_on() -> None:
    plan = decide(view(primary(0), replica(1), down(2), last_primary=0))
    assert plan.actions == () and reasons(plan) == ["InstanceUnreachable"]


def test_primary_with_leftover_replication_source_is_cleaned() -> None:
    plan = decide(view(primary(0, replica_configured=True, source_host=host(1)), replica(1), last_primary=0))
    assert Promote(0, "the writable primary still had a replication source") in plan.actions


# Semi-sync ------------------------------------------------------------------------------------------------


def test_semi_sync_source_is_enabled_only_once_a_replica_is_connected() -> None:
    semi = ReplicationMode.SEMI_SYNC
    on = SemiSyncState(replica_enabled=True, replica_active=True)
    waiting = decide(view(primary(0), replica(1, semi_sync=on), last_primary=0, replication_mode=semi))
    assert waiting.actions == () and reasons(waiting) == ["SemiSyncWaiting"]
    acked = decide(view(primary(0, semi_sync=SemiSyncState(source_clients=1)), replica(1, semi_sync=on),
                        last_primary=0, replication_mode=semi))
    assert acked.actions == (EnableSemiSyncSource(0),)


def test_semi_sync_mode_repoints_a_replica_without_semi_sync() -> None:
    plan = decide(view(primary(0, semi_sync=SemiSyncState(source_enabled=True, source_clients=1)), replica(1),
                       last_primary=0, replication_mode=ReplicationMode.SEMI_SYNC))
    assert plan.actions == (RepairReplica(1, 0, "semi-sync not enabled", repoint=True),)


def test_async_mode_turns_semi_sync_source_off() -> None:
    plan = decide(view(primary(0, semi_sync=SemiSyncState(source_enabled=True)), replica(1), last_primary=0))
    assert plan.actions == (DisableSemiSyncSource(0),)


# Primary gone or read-only ----------------------------------------------------------------------------------


def test_restarted_read_only_primary_is_made_writable_again() -> None:
    plan = decide(view(idle(0, "0-10-10"), replica(1), replica(2), last_primary=0))
    assert plan.actions == (Promote(0, "the primary was read-only"),)


def test_replica_ahead_of_the_read_only_old_primary_triggers_failover() -> None:
    plan = decide(view(idle(0, "0-10-8"), replica(1, gtids="0-10-10"), replica(2, gtids="0-10-9"),
                       last_primary=0))
    assert plan.primary is None
    assert plan.actions == (Failover(0, (1, 2), "replicas 1, 2 are ahead of the read-only primary 0"),)
    assert reasons(plan) == ["ReplicaAheadOfPrimary"]


def test_unreachable_primary_within_grace_period_waits() -> None:
    plan = decide(view(down(0), replica(1), replica(2), last_primary=0, primary_unreachable_for=3.0,
                       grace_period=10.0))
    assert plan.actions == () and plan.primary == 0
    assert reasons(plan) == ["InstanceUnreachable", "PrimaryUnreachable"]


def test_unreachable_primary_after_grace_period_fails_over() -> None:
    plan = decide(view(down(0), replica(1), replica(2), last_primary=0, primary_unreachable_for=12.0,
                       grace_period=10.0))
    assert plan.actions == (Failover(0, (1, 2), "primary 0 unreachable for 12.0s"),)


def test_without_memory_the_instance_the_replicas_follow_is_the_primary() -> None:
    plan = decide(view(idle(0, "0-10-10"), replica(1), replica(2)))
    assert plan.actions == (Promote(0, "the primary was read-only"),)


def test_without_memory_or_followed_primary_a_failover_chooses() -> None:
    plan = decide(view(idle(0, "0-10-10"), idle(1, "0-10-9")))
    assert plan.actions == (Failover(None, (0, 1), "no writable primary"),)


# Split brain ------------------------------------------------------------------------------------------------


def test_split_brain_keeps_the_remembered_primary_even_when_another_has_more() -> None:
    # Memory is authoritative: the other writable instance is fenced, whatever it holds (its extra
    # transactions are reported when it rejoins, never adopted by demoting the primary).
    plan = decide(view(primary(0, "0-10-9"), primary(1, "0-10-12"), replica(2), last_primary=0))
    assert plan.primary == 0
    assert plan.actions[0] == Fence(1, "instance 1 was writable beside the primary 0")
    assert "SplitBrain" in reasons(plan)


def test_split_brain_with_equal_histories_keeps_the_remembered_primary() -> None:
    plan = decide(view(primary(0), primary(1), last_primary=1))
    assert plan.primary == 1 and plan.actions[0] == Fence(0, "instance 0 was writable beside the primary 1")


def test_split_brain_without_memory_keeps_the_superset() -> None:
    plan = decide(view(primary(0, "0-10-9"), primary(1, "0-10-12"), replica(2)))
    assert plan.primary == 1
    assert [type(a) for a in plan.actions] == [Fence] and plan.actions[0].ordinal == 0  # type: ignore[union-attr]
    assert reasons(plan) == ["SplitBrain"]


def test_split_brain_without_memory_and_diverged_histories_fences_both_and_reports() -> None:
    plan = decide(view(primary(0, "0-10-11"), primary(1, "0-10-10,0-11-11"), replica(2)))
    assert plan.primary is None
    assert sorted(a.ordinal for a in plan.actions) == [0, 1]  # type: ignore[union-attr]
    assert all(isinstance(a, Fence) for a in plan.actions)
    assert reasons(plan) == ["SplitBrain"]


def test_split_brain_mysql_sets() -> None:
    a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4a22fb58-82db-22f2-0f44-d91bb0530673"
    first = primary(0, f"{a}:1-10", server_uuid=a)
    second = primary(1, f"{a}:1-10,{b}:1", server_uuid=b)
    plan = decide(view(first, second, flavor=MYSQL))
    assert plan.primary == 1 and [a.ordinal for a in plan.actions] == [0]  # type: ignore[union-attr]


# Switchover -----------------------------------------------------------------------------------------------


def test_switchover_to_a_healthy_replica() -> None:
    plan = decide(view(primary(0), replica(1), replica(2), last_primary=0, switchover_to=1))
    assert plan == Plan(0, (Switchover(0, 1, (2, 0)),))


def test_switchover_there_and_back() -> None:
    there = decide(view(primary(0, "0-10-10"), replica(1, gtids="0-10-10"), last_primary=0, switchover_to=1))
    assert there.actions == (Switchover(0, 1, (0,)),)
    # After it: 1 writes as server 11; the old primary replicates from it.
    done = decide(view(replica(0, source=1, gtids="0-10-10,0-11-15"), primary(1, "0-10-10,0-11-15"),
                       last_primary=1, switchover_to=1))
    assert done == Plan(1)
    back = decide(view(replica(0, source=1, gtids="0-10-10,0-11-15"), primary(1, "0-10-10,0-11-15"),
                       last_primary=1, switchover_to=0))
    assert back.actions == (Switchover(1, 0, (1,)),)


@pytest.mark.parametrize(
    ("target", "instances", "problem"),
    [
        (5, (primary(0), replica(1)), "SwitchoverTargetUnknown"),
        (1, (primary(0), down(1)), "SwitchoverTargetUnreachable"),
        (1, (primary(0), replica(1, io_running=False)), "SwitchoverTargetNotReplicating"),
        (1, (primary(0, "0-10-10"), replica(1, gtids="0-10-10,0-11-11")), "ErrantTransactions"),
    ],
)
def test_switchover_refused_with_a_reason(
    target: int, instances: tuple[InstanceObservation, ...], problem: str
) -> None:
    plan = decide(view(*instances, last_primary=0, switchover_to=target))
    assert not any(isinstance(a, Switchover) for a in plan.actions)
    assert problem in reasons(plan)


# Choosing the failover candidate ----------------------------------------------------------------------------


def test_failover_promotes_most_advanced_replica() -> None:
    choice = choose_new_primary(MARIA, [replica(1, gtids="0-10-9"), replica(2, gtids="0-10-12")], "0-10-8")
    assert choice.ordinal == 2 and choice.problems == ()


def test_failover_ties_go_to_the_lowest_ordinal() -> None:
    assert choose_new_primary(MARIA, [replica(2), replica(1)]).ordinal == 1


def test_failover_waits_for_the_most_advanced_replica_to_apply_its_relay_log() -> None:
    choice = choose_new_primary(
        MARIA, [replica(1, gtids="0-10-9"),
                replica(2, gtids="0-10-9", received_gtids="0-10-12", relay_log_applied=False)]
    )
    assert choice.ordinal is None and choice.waiting
    assert [p.reason for p in choice.problems] == ["RelayLogNotApplied"]


def test_failover_promotes_the_clean_replica_beside_one_with_errant_transactions() -> None:
    choice = choose_new_primary(
        MARIA, [replica(1, gtids="0-10-10,0-11-11"), replica(2, gtids="0-10-10")], "0-10-10"
    )
    assert choice.ordinal == 2
    assert [p.reason for p in choice.problems] == ["ErrantTransactions"]


def test_failover_accepts_a_former_primarys_own_transactions_known_to_the_cluster() -> None:
    # 1 was primary before (0-11-*), everyone has its writes: not errant.
    choice = choose_new_primary(
        MARIA, [replica(1, gtids="0-11-20,0-10-25"), replica(2, gtids="0-11-20,0-10-24")], "0-11-20,0-10-25"
    )
    assert choice.ordinal == 1


def test_failover_with_no_reachable_replica() -> None:
    choice = choose_new_primary(MARIA, [down(1)])
    assert choice.ordinal is None and [p.reason for p in choice.problems] == ["NoCandidate"]


def test_failover_mysql_picks_the_superset() -> None:
    a = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    choice = choose_new_primary(MYSQL, [replica(1, gtids=f"{a}:1-90"), replica(2, gtids=f"{a}:1-100")],
                                f"{a}:1-100")
    assert choice.ordinal == 2
