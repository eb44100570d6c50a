"""Conditions, phase and the kubectl columns, computed from what was observed."""

from __future__ import annotations

from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.status import (
    READY,
    RESOURCES_READY,
    VALID,
    Observed,
    compute_phase,
    condition_is,
    observed_conditions,
    set_condition,
    status_fields,
)

T0, T1 = "2026-11-25T10:00:00Z", "2026-11-25T10:05:00Z"
SPEC = MysqlClusterSpec.model_validate({"instances": 3})


def applied() -> list[dict[str, object]]:
    return set_condition([], RESOURCES_READY, True, "Applied", "", 1, T0)


def test_transition_time_moves_only_when_status_flips() -> None:
    conds = set_condition([], READY, False, "InstancesNotReady", "0/3", 1, T0)
    same = set_condition(conds, READY, False, "InstancesNotReady", "1/3", 2, T1)
    assert (
        same[0]["lastTransitionTime"] == T0
        and same[0]["message"] == "1/3"
        and same[0]["observedGeneration"] == 2
    )
    flipped = set_condition(same, READY, True, "ClusterReady", "", 2, T1)
    assert flipped[0]["lastTransitionTime"] == T1 and flipped[0]["status"] == "True"


def test_set_condition_keeps_other_conditions() -> None:
    conds = set_condition([], VALID, True, "SpecValid", "", 1, T0)
    conds = set_condition(conds, READY, False, "X", "", 1, T0)
    assert [c["type"] for c in conds] == [READY, VALID]


def test_ready_when_all_instances_replicate() -> None:
    observed = Observed(
        ready_instances=3, primary="shop-db-0", replicating=True, replication_reason="AllReplicating"
    )
    conds = observed_conditions(SPEC, applied(), observed, 1, T0)
    assert condition_is(conds, READY)
    assert compute_phase(SPEC, conds, observed).value == "Ready"
    fields = status_fields(SPEC, conds, observed, 1)
    assert (
        fields["instancesReady"] == "3/3" and fields["primary"] == "shop-db-0" and fields["version"] == "8.4"
    )


def test_not_ready_while_instances_start() -> None:
    observed = Observed(ready_instances=0)
    conds = observed_conditions(SPEC, applied(), observed, 1, T0)
    assert condition_is(conds, READY, "False")
    ready = next(c for c in conds if c["type"] == READY)
    assert ready["reason"] == "InstancesNotReady" and ready["message"] == "0/3 instances ready"
    assert compute_phase(SPEC, conds, observed).value == "Creating"


def test_initializing_until_a_primary_is_known() -> None:
    observed = Observed(ready_instances=3)
    conds = observed_conditions(SPEC, applied(), observed, 1, T0)
    ready = next(c for c in conds if c["type"] == READY)
    assert ready["reason"] == "NoPrimary"
    assert compute_phase(SPEC, conds, observed).value == "Initializing"


def test_degraded_when_an_instance_is_down() -> None:
    observed = Observed(ready_instances=2, primary="shop-db-0", replicating=True)
    conds = observed_conditions(SPEC, applied(), observed, 1, T0)
    assert condition_is(conds, "Degraded") and condition_is(conds, READY, "False")
    assert compute_phase(SPEC, conds, observed).value == "Degraded"


def test_replication_problem_is_reported() -> None:
    observed = Observed(
        ready_instances=3,
        primary="shop-db-0",
        replicating=False,
        replication_reason="ReplicaBroken",
        replication_message="shop-db-2: IO thread stopped",
        degraded_reasons=["shop-db-2: IO thread stopped"],
    )
    conds = observed_conditions(SPEC, applied(), observed, 1, T0)
    replicating = next(c for c in conds if c["type"] == "Replicating")
    assert replicating["status"] == "False" and replicating["reason"] == "ReplicaBroken"
    assert condition_is(conds, READY, "False")


def test_single_instance_is_ready_without_replicas() -> None:
    spec = MysqlClusterSpec.model_validate({"instances": 1})
    observed = Observed(ready_instances=1, primary="solo-0")
    assert condition_is(observed_conditions(spec, applied(), observed, 1, T0), READY)


def test_invalid_and_pending_phases() -> None:
    observed = Observed(ready_instances=0)
    invalid = set_condition([], VALID, False, "InvalidSpec", "bad", 1, T0)
    assert compute_phase(SPEC, invalid, observed).value == "Invalid"
    pending = set_condition([], "CredentialsReady", False, "CredentialsInvalid", "missing", 1, T0)
    assert compute_phase(SPEC, pending, observed).value == "Pending"


def test_failing_over_phase() -> None:
    observed = Observed(ready_instances=2, primary=None, failing_over=True)
    assert compute_phase(SPEC, applied(), observed).value == "FailingOver"
