"""How a topology pass turns into role labels and status (the pure half of the topology handler)."""

from __future__ import annotations

from typing import Any

from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.conventions import Role
from mysql_operator.handlers.topology import (
    desired_role_labels,
    history_entry,
    pod_endpoint,
    topology_status,
)
from mysql_operator.status import RESOURCES_READY, VALID, set_condition
from mysql_operator.topology.reconcile import (
    ConditionFact,
    InstanceStatus,
    TopologyMemory,
    TopologyResult,
    TransitionRecord,
)

NOW = "2026-11-25T10:00:00Z"
SPEC = MysqlClusterSpec.model_validate({"instances": 3, "flavor": "mariadb"})


def pod(name: str, ip: str | None = "127.1.0.5", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"podIP": ip} if ip else {}}


def result(
    primary: int | None,
    ready: tuple[bool, bool, bool],
    transition: TransitionRecord | None = None,
    all_ready: bool | None = None,
) -> TopologyResult:
    instances = tuple(
        InstanceStatus(
            o,
            f"db-{o}",
            Role.PRIMARY if o == primary else Role.REPLICA,
            ready[o],
            True,
            f"0-1{primary}-{o + 5}",
            0 if o != primary else None,
        )
        for o in range(3)
    )
    ok = all(ready) if all_ready is None else all_ready
    conditions = (
        ConditionFact("Ready", ok, "AllInstancesReady" if ok else "InstancesNotReady", "m"),
        ConditionFact("Replicating", ok, "AllReplicasReplicating", ""),
        ConditionFact("Degraded", not ok, "Healthy" if ok else "InstancesNotReady", ""),
    )
    return TopologyResult(primary, instances, conditions, (), transition, TopologyMemory(primary=primary))


def applied() -> list[dict[str, Any]]:
    return set_condition([], RESOURCES_READY, True, "Applied", "", 1, NOW)


def test_pod_endpoint_needs_an_ip_and_a_wanted_ordinal_and_marks_terminating_pods() -> None:
    endpoint = pod_endpoint(pod("db-1"), 3)
    assert endpoint is not None and (endpoint.ordinal, endpoint.host) == (1, "127.1.0.5")
    assert pod_endpoint(pod("db-1", ip=None), 3) is None
    terminating = pod_endpoint(pod("db-1", deleting=True), 3)
    assert terminating is not None and terminating.terminating
    assert pod_endpoint(pod("db-3"), 3) is None


def test_role_labels_send_reads_only_to_ready_replicas() -> None:
    labels = desired_role_labels(result(0, (True, True, False)))
    assert labels == {"db-0": "primary", "db-1": "replica", "db-2": "none"}


def test_no_primary_label_without_a_primary() -> None:
    assert "primary" not in desired_role_labels(result(None, (False, True, True), all_ready=False)).values()


def test_status_ready_when_all_instances_replicate() -> None:
    fields = topology_status(SPEC, "db", result(0, (True, True, True)), applied(), [], 1, NOW)
    assert fields["phase"] == "Ready" and fields["primary"] == "db-0" and fields["instancesReady"] == "3/3"
    ready = next(c for c in fields["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert [i["role"] for i in fields["instances"]] == ["primary", "replica", "replica"]
    assert fields["topology"]["primary"] == 0


def test_status_not_ready_when_instances_are_missing() -> None:
    spec = MysqlClusterSpec.model_validate({"instances": 5, "flavor": "mariadb"})
    fields = topology_status(spec, "db", result(0, (True, True, True)), applied(), [], 1, NOW, "Ready")
    ready = next(c for c in fields["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InstancesMissing"
    assert fields["instancesReady"] == "3/5" and fields["phase"] == "Degraded"


def test_phase_is_initializing_until_first_ready() -> None:
    starting = result(0, (True, False, False))
    assert topology_status(SPEC, "db", starting, applied(), [], 1, NOW, "Creating")["phase"] == "Initializing"
    assert topology_status(SPEC, "db", starting, applied(), [], 1, NOW, "Ready")["phase"] == "Degraded"
    no_primary = result(None, (False, True, True), all_ready=False)
    assert topology_status(SPEC, "db", no_primary, applied(), [], 1, NOW, "Ready")["phase"] == "FailingOver"


def test_failover_is_recorded_in_a_bounded_history() -> None:
    record = TransitionRecord("failover", 1_764_064_800.0, 0, 1, "primary unreachable for 10s", 0.42)
    old = [
        {"time": NOW, "kind": "switchover", "from": "db-1", "to": "db-0", "reason": "r", "seconds": 1}
    ] * 10
    fields = topology_status(SPEC, "db", result(1, (False, True, True), record), applied(), old, 1, NOW)
    assert len(fields["roleChanges"]) == 10
    assert fields["roleChanges"][-1] == history_entry(record, {0: "db-0", 1: "db-1"}, "db")
    assert fields["roleChanges"][-1]["from"] == "db-0" and fields["roleChanges"][-1]["to"] == "db-1"
    assert fields["roleChanges"][-1]["seconds"] == 0.42


def test_a_refused_spec_keeps_the_phase_invalid_whatever_the_topology_pass_sees() -> None:
    # The reconcile handler writes Valid=False and phase Invalid; the timer must not overwrite it.
    refused = set_condition(applied(), VALID, False, "InvalidSpec", "version change refused", 2, NOW)
    healthy = result(0, (True, True, True))
    assert topology_status(SPEC, "db", healthy, refused, [], 2, NOW, "Invalid")["phase"] == "Invalid"
    accepted = set_condition(refused, VALID, True, "Accepted", "", 3, NOW)
    assert topology_status(SPEC, "db", healthy, accepted, [], 3, NOW, "Invalid")["phase"] == "Ready"
