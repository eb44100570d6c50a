"""A drain of the primary's node becomes a switchover: the pure decision and the two budgets."""

from __future__ import annotations

from typing import Any

import pytest

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.services import build_pod_disruption_budget, build_primary_disruption_budget
from mysql_operator.topology.drain import Placement, drain_switchover_target, placements, primary_node

P, R, N = c.Role.PRIMARY.value, c.Role.REPLICA.value, c.Role.NONE.value
X = Placement  # ordinal, role, ready, cordoned


def pod(ordinal: int, role: str | None, node: str, ready: bool = True,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"db-{ordinal}", "labels": {c.LABEL_ROLE: role} if role else {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param([X(0, P, True, False), X(1, R, True, False)], None, id="no-drain"),
        pytest.param([X(0, P, True, True), X(1, R, True, False), X(2, R, True, False)],
                     1, id="drained-primary-goes-to-lowest-ready-replica"),
        pytest.param([X(0, P, True, True), X(1, R, False, False), X(2, R, True, False)],
                     2, id="unready-replica-skipped"),
        pytest.param([X(0, P, True, True), X(1, R, True, True), X(2, R, True, False)],
                     2, id="replica-on-a-cordoned-node-skipped"),
        pytest.param([X(0, P, True, True), X(1, N, True, False)], None,
                     id="no-replica-the-budget-keeps-the-primary"),
        pytest.param([X(0, P, True, True), X(1, P, True, False), X(2, R, True, False)],
                     None, id="two-primary-labels-no-guess"),
        pytest.param([X(0, R, True, True), X(1, R, True, False)], None, id="no-primary"),
    ],
)
def test_drain_of_the_primarys_node_switches_over_to_a_ready_replica_elsewhere(
    pods: list[Placement], expected: int | None
) -> None:
    assert drain_switchover_target(pods) == expected


def test_placements_read_roles_readiness_and_cordoned_nodes_and_skip_deleted_pods() -> None:
    pods = [pod(0, P, "n1"), pod(1, R, "n2", ready=False), pod(2, R, "n3", deleting=True), pod(3, None, "n1")]
    assert primary_node(pods) == "n1"
    assert placements(pods, {"n1"}) == [Placement(0, P, True, True), Placement(1, R, False, False),
                                        Placement(3, None, True, True)]


def test_each_pod_is_covered_by_exactly_one_budget_and_the_primary_by_one_allowing_nothing() -> None:
    ref = ClusterRef(name="db", namespace="shop", uid="u")
    spec = MysqlClusterSpec.model_validate({"instances": 3})
    general, primary = build_pod_disruption_budget(ref, spec), build_primary_disruption_budget(ref)
    assert general["metadata"]["name"] != primary["metadata"]["name"]
    assert general["spec"]["selector"]["matchLabels"][c.LABEL_ROLE] == R
    assert primary["spec"]["selector"]["matchLabels"][c.LABEL_ROLE] == P
    assert primary["spec"]["minAvailable"] == 1  # its only pod: no disruption allowed
