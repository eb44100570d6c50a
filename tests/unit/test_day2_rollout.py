"""Table tests of the rollout order: replicas one at a time, a switchover, the old primary last."""

from __future__ import annotations

from mysql_operator.topology.rollout import (
    Done,
    MovePrimary,
    PodRevision,
    RestartPod,
    Wait,
    next_rollout_step,
)

NEW, OLD = "rev-new", "rev-old"


def pods(*revisions: str, terminating: int | None = None) -> list[PodRevision]:
    return [PodRevision(o, f"db-{o}", f"uid-{o}", r, terminating=o == terminating)
            for o, r in enumerate(revisions)]


def all_ready(n: int) -> dict[int, bool]:
    return dict.fromkeys(range(n), True)


def test_nothing_to_do_when_every_pod_runs_the_update_revision() -> None:
    assert next_rollout_step(pods(NEW, NEW, NEW), NEW, 3, 0, all_ready(3)) == Done()


def test_replicas_restart_first_highest_ordinal_first() -> None:
    step = next_rollout_step(pods(OLD, OLD, OLD), NEW, 3, 0, all_ready(3))
    assert isinstance(step, RestartPod) and step.name == "db-2" and step.uid == "uid-2"


def test_next_replica_waits_until_the_restarted_one_is_ready_again() -> None:
    step = next_rollout_step(pods(OLD, OLD, NEW), NEW, 3, 0, {0: True, 1: True, 2: False})
    assert isinstance(step, Wait)


def test_nothing_restarts_while_a_pod_is_terminating_or_missing() -> None:
    assert isinstance(next_rollout_step(pods(OLD, OLD, OLD, terminating=2), NEW, 3, 0, all_ready(3)), Wait)
    assert isinstance(next_rollout_step(pods(OLD, OLD), NEW, 3, 0, all_ready(3)), Wait)


def test_primary_moves_to_an_updated_ready_replica_before_it_restarts() -> None:
    assert next_rollout_step(pods(OLD, NEW, NEW), NEW, 3, 0, all_ready(3)) == MovePrimary(
        1, "primary 0 is the last instance on the old revision")


def test_old_primary_restarts_once_it_is_a_replica() -> None:
    step = next_rollout_step(pods(OLD, NEW, NEW), NEW, 3, 1, all_ready(3))
    assert isinstance(step, RestartPod) and step.name == "db-0"


def test_an_outdated_replica_that_is_not_ready_restarts_first() -> None:
    step = next_rollout_step(pods(OLD, OLD, OLD), NEW, 3, 0, {0: True, 1: False, 2: True})
    assert isinstance(step, RestartPod) and step.name == "db-1"


def test_an_updated_replica_that_is_not_ready_blocks_the_rollout() -> None:
    assert isinstance(next_rollout_step(pods(OLD, NEW, OLD), NEW, 3, 0, {0: True, 1: False, 2: True}), Wait)


def test_single_instance_restarts_in_place() -> None:
    step = next_rollout_step(pods(OLD), NEW, 1, 0, all_ready(1))
    assert isinstance(step, RestartPod) and step.name == "db-0"


def test_no_primary_no_restart() -> None:
    assert isinstance(next_rollout_step(pods(OLD, OLD), NEW, 2, None, all_ready(2)), Wait)


def test_unknown_update_revision_waits() -> None:
    assert isinstance(next_rollout_step(pods(OLD, OLD), "", 2, 0, all_ready(2)), Wait)


def test_pods_being_scaled_away_are_not_rolled() -> None:
    assert next_rollout_step(pods(NEW, NEW, OLD), NEW, 2, 0, all_ready(2)) == Done()


def test_next_replica_waits_for_the_kubelet_to_see_the_restarted_one_ready() -> None:
    revisions = pods(OLD, OLD, NEW)
    revisions[2] = PodRevision(2, "db-2", "uid-2", NEW, pod_ready=False)
    assert isinstance(next_rollout_step(revisions, NEW, 3, 0, all_ready(3)), Wait)
