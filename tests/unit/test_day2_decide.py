"""Table tests of the day-2 topology decisions: seeding, re-seeding, scale-down handover, rollouts."""

from __future__ import annotations

from typing import Any

import pytest

from mysql_operator.topology.decide import (
    AttachReplica,
    Failover,
    Fence,
    Plan,
    RepairReplica,
    Seed,
    Switchover,
    choose_donor,
    decide,
)
from tests.unit.test_topology_decide import down, host, idle, primary, reasons, replica, view

PURGED = ("Got fatal error 1236 from master when reading data from binary log: 'Could not find GTID "
          "state requested by slave in any binlog files'")
DUPLICATE = ("Could not execute Write_rows_v1 event on table app.t; Duplicate entry '5' for key "
             "'PRIMARY', Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY")


def day2(*observations: Any, **extra: Any) -> Any:
    extra.setdefault("last_primary", 0)
    extra.setdefault("seed_new_instances", True)
    return view(*observations, **extra)


# Seeding new instances -----------------------------------------------------------------------------


def test_empty_instance_is_seeded_from_the_least_lagging_replica() -> None:
    plan = decide(day2(primary(0), replica(1, seconds_behind=4), replica(2, seconds_behind=0), idle(3)))
    assert plan.actions == (Seed(3, 2, 0, "empty instance"),)


def test_empty_instance_is_seeded_from_the_primary_when_no_replica_is_healthy() -> None:
    plan = decide(day2(primary(0), idle(1)))
    assert plan.actions == (Seed(1, 0, 0, "empty instance"),)


def test_empty_instance_is_attached_when_the_primary_is_empty_too() -> None:
    plan = decide(day2(primary(0, ""), idle(1)))
    assert plan.actions == (AttachReplica(1, 0, "not replicating"),)


def test_without_seeding_an_empty_instance_is_attached_as_before() -> None:
    plan = decide(day2(primary(0), idle(1), seed_new_instances=False))
    assert plan.actions == (AttachReplica(1, 0, "not replicating"),)


def test_empty_instance_already_replicating_is_left_alone() -> None:
    plan = decide(day2(primary(0), replica(1, gtids="")))
    assert plan == Plan(0)


def test_instance_being_seeded_gets_no_other_action() -> None:
    plan = decide(day2(primary(0), replica(1), idle(2), seeding=frozenset({2})))
    assert plan == Plan(0)


def test_instance_being_removed_is_not_seeded() -> None:
    plan = decide(day2(primary(0), replica(1), idle(2), desired_instances=2))
    assert not any(isinstance(a, Seed) for a in plan.actions)


@pytest.mark.parametrize(
    ("donor", "why"),
    [
        (replica(1, io_running=False), "not replicating"),
        (replica(1, source=2), "follows another source"),
        (replica(1, gtids="0-10-10,0-11-3"), "has errant transactions"),
        (replica(1, gtids=""), "is empty"),
        (replica(1, last_sql_error="x"), "has an error"),
        (down(1), "is unreachable"),
    ],
)
def test_unhealthy_replica_is_never_a_donor(donor: Any, why: str) -> None:
    assert choose_donor(day2(primary(0), donor, idle(2)), primary(0), 2) == 0, why


def test_replica_being_seeded_or_removed_is_never_a_donor() -> None:
    assert choose_donor(day2(primary(0), replica(1), idle(2), seeding=frozenset({1})), primary(0), 2) == 0
    assert choose_donor(day2(primary(0), replica(1), idle(2), desired_instances=1), primary(0), 2) == 0


def test_seeding_instance_is_never_a_failover_candidate() -> None:
    plan = decide(day2(down(0), replica(1), idle(2), seeding=frozenset({2}), primary_unreachable_for=60))
    assert plan.actions == (Failover(0, (1,), "primary 0 unreachable for 60.0s"),)


def test_switchover_to_an_instance_being_seeded_is_refused() -> None:
    plan = decide(day2(primary(0), replica(1), switchover_to=1, seeding=frozenset({1})))
    assert "SwitchoverTargetSeeding" in reasons(plan)


# Re-seeding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "reason"),
    [
        (replica(1, gtids="0-10-10,0-11-11"), "ErrantTransactions"),
        (idle(1, "0-10-10,0-11-11"), "ErrantTransactions"),  # a returning old primary with its own writes
        (replica(1, io_running=False, last_io_error=PURGED), "ReplicaNeedsReseed"),
        (replica(1, sql_running=False, last_sql_error=DUPLICATE), "ReplicaNeedsReseed"),
    ],
)
def test_replica_that_cannot_replicate_is_reported_with_how_to_fix(instance: Any, reason: str) -> None:
    plan = decide(day2(primary(0), instance, replica(2)))
    assert not any(isinstance(a, Seed) for a in plan.actions)
    problem = next(p for p in plan.problems if p.reason == reason)
    assert problem.ordinal == 1 and "autoReseed: true" in problem.message


@pytest.mark.parametrize(
    "instance",
    [
        replica(1, gtids="0-10-10,0-11-11"),
        idle(1, "0-10-10,0-11-11"),
        idle(1, "0-10-12"),
        replica(1, io_running=False, last_io_error=PURGED),
        replica(1, sql_running=False, last_sql_error=DUPLICATE),
    ],
)
def test_replica_that_cannot_replicate_is_rebuilt_from_a_healthy_replica_with_auto_reseed(
    instance: Any,
) -> None:
    plan = decide(day2(primary(0), instance, replica(2), auto_reseed=True))
    seeds = [a for a in plan.actions if isinstance(a, Seed)]
    assert len(seeds) == 1 and seeds[0].ordinal == 1 and seeds[0].donor == 2 and seeds[0].rebuild
    assert seeds[0].source == 0


def test_transient_replication_errors_are_restarted_not_reseeded() -> None:
    plan = decide(day2(primary(0), replica(1, io_running=False, last_io_error="connection refused"),
                       auto_reseed=True))
    assert plan.actions == (RepairReplica(1, 0, "connection refused", repoint=False),)


def test_auto_reseed_never_touches_the_primary() -> None:
    plan = decide(day2(primary(0, "0-10-10,0-11-3"), replica(1), auto_reseed=True))
    assert not any(isinstance(a, Seed) and a.ordinal == 0 for a in plan.actions)


def test_replica_made_writable_by_hand_is_fenced_not_a_split_brain() -> None:
    writable_replica = replica(1, gtids="0-10-10,0-11-11", read_only=False)
    healthy = replica(2, gtids="0-10-12")
    plan = decide(day2(primary(0, "0-10-12"), writable_replica, healthy, auto_reseed=True))
    assert plan.primary == 0
    # It keeps replicating: root keeps its fence bypass there (nothing would give it back).
    assert plan.actions[0] == Fence(1, "instance 1 was writable beside the primary 0", bind_root=False)
    assert any(isinstance(a, Seed) and a.ordinal == 1 for a in plan.actions)
    assert reasons(plan)[0] == "SplitBrain" and "fenced" in plan.problems[0].message


def test_replica_that_stopped_replicating_and_took_writes_is_fenced_the_remembered_primary_stays() -> None:
    rogue = replica(1, gtids="0-10-10,0-11-11", read_only=False, io_running=False, sql_running=False)
    plan = decide(day2(primary(0, "0-10-12"), rogue, auto_reseed=True))
    assert plan.primary == 0 and plan.actions[0] == Fence(1, "instance 1 was writable beside the primary 0")


# Scale-down and rollouts ---------------------------------------------------------------------------


def test_scale_down_switches_over_to_the_lowest_staying_replica_first() -> None:
    plan = decide(day2(replica(0, source=4), replica(1, source=4), replica(2, source=4), primary(4),
                       last_primary=4, desired_instances=2))
    assert plan.actions == (Switchover(4, 0, (1, 2, 4)),)


def test_scale_down_overrides_a_switchover_target_that_is_being_removed() -> None:
    plan = decide(day2(replica(0, source=2), primary(2), last_primary=2, desired_instances=1,
                       switchover_to=2))
    assert plan.actions == (Switchover(2, 0, (2,)),)


def test_scale_down_waits_while_no_staying_replica_replicates() -> None:
    plan = decide(day2(idle(0, "0-10-10", replica_configured=True, source_host=host(3)), primary(3),
                       last_primary=3, desired_instances=1))
    assert not any(isinstance(a, Switchover) for a in plan.actions)
    assert "ScaleDownWaiting" in reasons(plan)


def test_primary_below_the_desired_count_stays_put() -> None:
    assert decide(day2(primary(0), replica(1), replica(2), desired_instances=2)) == Plan(0)


def test_rollout_target_takes_precedence_over_the_spec_switchover_target() -> None:
    plan = decide(day2(primary(0), replica(1), replica(2), switchover_to=0, move_primary_to=2))
    assert plan.actions == (Switchover(0, 2, (1, 0)),)
