from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mysql_operator.plugin.cli import client_argv, connect_target, parse
from mysql_operator.plugin.render import (
    FENCED_ANNOTATION,
    fence_annotation,
    render_status,
    restore_manifest,
    switchover_target,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def cluster(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "shop", "namespace": "prod", "annotations": {FENCED_ANNOTATION: "shop-2"}},
        "spec": {"flavor": "mariadb", "instances": 3, "suspend": True, "replication": {"switchoverTo": 0}},
        "status": {
            "phase": "Ready",
            "primary": "shop-0",
            "instancesReady": "3/3",
            "version": "10.11",
            "instances": [
                {"name": "shop-0", "role": "primary", "ready": True, "reachable": True, "gtid": "0-10-42"},
                {"name": "shop-1", "role": "replica", "ready": True, "reachable": True, "lagSeconds": 2.0},
                {"name": "shop-2", "role": "replica", "ready": True, "reachable": True, "lagSeconds": 0.0},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllReady",
                    "message": "3/3",
                    "lastTransitionTime": "2026-11-30T11:55:00Z",
                },
            ],
            "roleChanges": [
                {
                    "time": "2026-11-30T11:00:00Z",
                    "kind": "failover",
                    "from": "shop-1",
                    "to": "shop-0",
                    "reason": "primary unreachable",
                    "seconds": 1.25,
                },
            ],
            **status,
        },
    }


def test_status_shows_topology_lag_gtid_fences_conditions_and_role_changes() -> None:
    text = render_status(cluster(), NOW)
    assert "Primary:     shop-0" in text and "Suspended:   yes" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("NAME"))
    assert header.split() == ["NAME", "ROLE", "READY", "REACHABLE", "LAG", "FENCE", "GTID", "MESSAGE"]
    assert next(line for line in lines if line.startswith("shop-2")).split()[:6] == [
        "shop-2",
        "replica",
        "yes",
        "yes",
        "0s",
        "fenced",
    ]
    assert any(line.split()[:4] == ["Ready", "True", "AllReady", "5m"] for line in lines)
    assert any("failover" in line and "1.25s" in line for line in lines)


def test_switchover_picks_the_least_lagging_ready_replica_unless_told() -> None:
    assert switchover_target(cluster(), None) == 2
    assert switchover_target(cluster(), 1) == 1
    with pytest.raises(ValueError, match="primary already"):
        switchover_target(cluster(), 0)
    with pytest.raises(ValueError, match=r"instances 0\.\.2"):
        switchover_target(cluster(), 3)
    with pytest.raises(ValueError, match="no ready replica"):
        switchover_target(cluster(instances=[]), None)


def test_connect_dials_the_primary_or_the_least_lagging_replica() -> None:
    assert connect_target(cluster(), replica=False) == "shop-0"
    assert connect_target(cluster(), replica=True) == "shop-2"


def test_the_client_reads_the_password_from_an_option_file_never_the_command_line() -> None:
    argv = client_argv("mariadb", 5, ["-e", "SELECT 1"])
    assert argv == ["mariadb", "--defaults-extra-file=/dev/fd/5", "-e", "SELECT 1"]
    args = parse(["-n", "prod", "connect", "shop", "--user", "app", "--", "-e", "SELECT 1", "--user", "x"])
    assert (args.cluster, args.user, args.args) == ("shop", "app", ["-e", "SELECT 1", "--user", "x"])


def test_fence_and_unfence_edit_one_annotation() -> None:
    meta = cluster()["metadata"]
    assert fence_annotation(meta, "shop-1", True) == "shop-1,shop-2"
    assert fence_annotation(meta, "shop-2", False) is None


def test_restore_builds_a_cluster_shaped_like_the_source_from_the_backup() -> None:
    backup = {"metadata": {"name": "shop-20261130", "namespace": "prod"}, "spec": {"cluster": "shop"}}
    manifest = restore_manifest(backup, cluster(), "shop-restored", "2026-11-30T10:00:00Z")
    assert manifest["metadata"] == {"name": "shop-restored", "namespace": "prod"}
    spec = manifest["spec"]
    assert spec["flavor"] == "mariadb" and spec["instances"] == 3
    assert spec["restoreFrom"] == {"backup": "shop-20261130", "pointInTime": "2026-11-30T10:00:00Z"}
    assert "switchoverTo" not in spec["replication"] and "suspend" not in spec
    assert restore_manifest(backup, None, "x")["spec"] == {"restoreFrom": {"backup": "shop-20261130"}}
