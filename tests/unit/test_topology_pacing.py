"""When the topology loop looks again, and which watched changes wake it (topology.pacing), and
which status fields a pass writes (handlers.topology.status_changes)."""

from __future__ import annotations

from typing import Any

from mysql_operator.conventions import ANNOTATION_FENCED
from mysql_operator.handlers.topology import status_changes
from mysql_operator.topology.memory import TopologyMemory
from mysql_operator.topology.pacing import (
    GRACE_MARGIN,
    GRACE_PROBE,
    PROBE_INTERVAL,
    cluster_signature,
    next_pass_in,
    pod_change_wakes,
)


def pod(ready: bool = True, state: str = "running", ip: str | None = "127.0.0.5", restarts: int = 0,
        role: str = "primary", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "db-0", "uid": "u1", "labels": {"mysql.operator.dev/role": role}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "mysql", "ready": ready, "restartCount": restarts, "state": {state: {}}},
            ],
        },
    }


def test_a_healthy_cluster_is_probed_every_interval() -> None:
    assert next_pass_in(TopologyMemory(primary=0), 2.0, now=100.0) == PROBE_INTERVAL


def test_within_the_grace_the_primary_is_probed_often() -> None:
    memory = TopologyMemory(primary=0, primary_unreachable_since=100.0)
    assert next_pass_in(memory, 10.0, now=100.0) == GRACE_PROBE


def test_the_deciding_pass_runs_right_after_the_grace_never_before() -> None:
    memory = TopologyMemory(primary=0, primary_unreachable_since=100.0)
    delay = next_pass_in(memory, 2.0, now=101.9)
    assert 101.9 + delay >= 102.0
    assert delay <= 0.1 + GRACE_MARGIN + 1e-9


def test_past_the_grace_the_next_pass_is_now() -> None:
    memory = TopologyMemory(primary=0, primary_unreachable_since=100.0)
    assert next_pass_in(memory, 2.0, now=103.0) == 0.0


def test_a_stopped_or_unready_container_wakes_the_loop() -> None:
    assert pod_change_wakes(pod(), pod(ready=False))
    assert pod_change_wakes(pod(), pod(state="terminated", ready=False))
    assert pod_change_wakes(pod(), pod(restarts=1))
    assert pod_change_wakes(pod(), pod(ip=None))
    assert pod_change_wakes(pod(), pod(deleting=True))
    assert pod_change_wakes(pod(), None)


def test_the_loops_own_role_label_does_not_wake_it() -> None:
    assert not pod_change_wakes(pod(role="primary"), pod(role="replica"))
    assert not pod_change_wakes(pod(), pod())


def test_status_writes_of_the_loop_do_not_wake_it_but_an_accepted_spec_does() -> None:
    body: dict[str, Any] = {"metadata": {"generation": 3}, "status": {"acceptedSpec": "a", "phase": "Ready"}}
    written = {**body, "status": {**body["status"], "phase": "Degraded", "instances": [{"name": "db-0"}]}}
    assert cluster_signature(body) == cluster_signature(written)
    accepted = {**body, "status": {**body["status"], "acceptedSpec": "b"}}
    assert cluster_signature(body) != cluster_signature(accepted)
    assert cluster_signature(body) != cluster_signature({**body, "metadata": {"generation": 4}})


def test_a_user_fence_wakes_the_loop() -> None:
    body: dict[str, Any] = {"metadata": {"generation": 3}, "status": {"acceptedSpec": "a"}}
    fenced = {**body, "metadata": {"generation": 3, "annotations": {ANNOTATION_FENCED: "db-1"}}}
    assert cluster_signature(body) != cluster_signature(fenced)


def test_an_unchanged_status_is_not_written() -> None:
    fields = {"phase": "Ready", "readyInstances": 3}
    assert status_changes({"phase": "Ready", "readyInstances": 3}, fields, None) == {}


def test_only_changed_fields_are_written() -> None:
    assert status_changes({"phase": "Ready", "readyInstances": 3}, {"phase": "Ready", "readyInstances": 2},
                          None) == {"readyInstances": 2}


def test_a_write_the_watch_has_not_brought_back_is_not_repeated() -> None:
    fresh = {"phase": "Ready"}
    fields = {"phase": "Degraded"}
    assert status_changes(fresh, fields, {"phase": "Degraded"}) == {}
    assert status_changes(fresh, {"phase": "FailingOver"}, {"phase": "Degraded"}) == {"phase": "FailingOver"}
