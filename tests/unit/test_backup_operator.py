"""The Kubernetes half of backups: the cluster's backup/restoreFrom fields, the Jobs, and the pure
decisions of the backup and restore handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from mysql_operator.api.backup import BackupStorage, MysqlBackupSpec, RestoreFrom
from mysql_operator.api.models import MysqlClusterSpec, check_update
from mysql_operator.handlers.backup import (
    BackupNotPossible,
    backup_storage,
    backups_restores_read,
    binlog_source,
    choose_instance,
    retention_due,
    scheduled_backup_name,
)
from mysql_operator.handlers.jobs import FAILED, RUNNING, SUCCEEDED, job_outcome
from mysql_operator.handlers.restore import RestoreImpossible, resolve_source, restore_finished
from mysql_operator.resources.backup_job import (
    DatabaseLogin,
    JobKind,
    JobRequest,
    backup_args,
    build_job,
    job_name,
    restore_args,
    retention_args,
)

S3 = {"endpoint": "http://127.0.0.1:9000", "bucket": "backups", "credentialsSecret": "s3-creds"}
PVC = {"pvc": {"claimName": "backups", "path": "shop"}}


def cluster(**extra: Any) -> MysqlClusterSpec:
    return MysqlClusterSpec.model_validate({"flavor": "mariadb", **extra})


# ---- API --------------------------------------------------------------------------------------------


def test_cluster_accepts_a_backup_section_and_a_restore_source() -> None:
    spec = cluster(
        backup={"schedule": "*/5 * * * *", "retention": 2, "storage": {"s3": S3}},
        restoreFrom={"backup": "shop-1", "pointInTime": "2026-01-02T03:04:05Z"},
    )
    assert spec.backup is not None and spec.backup.retention == 2
    assert spec.restore_from is not None and spec.restore_from.point_in_time == "2026-01-02T03:04:05Z"
    assert cluster().backup is None and cluster().restore_from is None


@pytest.mark.parametrize(
    "extra",
    [
        {"backup": {"schedule": "every day", "storage": {"s3": S3}}},
        {"backup": {"storage": {}}},
        {"backup": {"storage": {"s3": S3}, "binlogArchiveIntervalSeconds": 5}},
        {"restoreFrom": {}},
        {"restoreFrom": {"backup": "a", "pointInTime": "yesterday"}},
        {"restoreFrom": {"location": "backups/a"}},
    ],
)
def test_cluster_refuses_bad_backup_and_restore_sections(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        cluster(**extra)


def test_restore_from_is_immutable_once_created() -> None:
    old = cluster(restoreFrom={"backup": "shop-1"})
    assert check_update(old, cluster(restoreFrom={"backup": "shop-1"})) == []
    assert check_update(old, cluster(restoreFrom={"backup": "shop-2"})) == [
        "restoreFrom is immutable (it is read only when the cluster is created)"
    ]
    assert check_update(old, cluster()) != []
    assert check_update(cluster(), cluster(restoreFrom={"backup": "shop-1"})) != []
    # the backup section is not: schedules and retention change freely
    assert check_update(cluster(), cluster(backup={"storage": PVC})) == []


# ---- the Jobs -----------------------------------------------------------------------------------------


def request(kind: JobKind = JobKind.BACKUP, storage: dict[str, Any] | None = None) -> JobRequest:
    return JobRequest(
        kind=kind,
        name=job_name("shop-nightly", "backup"),
        namespace="shop",
        cluster="shop-db",
        flavor=cluster().flavor,
        image="mysql-operator:1.2",
        args=backup_args("shop-db", "shop-nightly", "shop-db-1"),
        storage=BackupStorage.model_validate(storage or {"s3": S3}),
        owner={
            "apiVersion": "mysql.operator.dev/v1alpha1",
            "kind": "MysqlBackup",
            "name": "shop-nightly",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": True,
        },
        login=DatabaseLogin(
            "127.0.0.5", "shop-db-1", "mysqlop_backup", "shop-db-credentials", "backup-password"
        ),
    )


def test_backup_job_runs_the_operator_image_once_non_root_with_a_deadline() -> None:
    job = build_job(request())
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["template"]["spec"]["restartPolicy"]) == (0, "Never")
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    assert job["metadata"]["ownerReferences"][0]["kind"] == "MysqlBackup"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    container = pod["containers"][0]
    assert container["image"] == "mysql-operator:1.2"
    assert container["command"] == ["python", "-m", "mysql_operator"]
    assert container["args"][:1] == ["backup"] and container["args"][-2:] == [
        "--termination-log",
        "/dev/termination-log",
    ]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_backup_job_takes_passwords_from_secrets_never_literally() -> None:
    env = {e["name"]: e for e in build_job(request())["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "shop-db-credentials",
        "key": "backup-password",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-creds",
        "key": "secret-access-key",
    }
    assert json.loads(env["BACKUP_STORAGE"]["value"])["s3"]["bucket"] == "backups"
    assert env["DB_HOST"]["value"] == "127.0.0.5" and env["DB_INSTANCE_NAME"]["value"] == "shop-db-1"
    assert all("value" not in e or "password" not in e["name"].lower() for e in env.values())


def test_pvc_storage_is_mounted_at_the_pvc_root() -> None:
    pod = build_job(request(storage=PVC))["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "backups"}} in pod["volumes"]
    container = pod["containers"][0]
    assert {"name": "backups", "mountPath": "/backup"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BACKUP_PVC_ROOT"] == "/backup" and "AWS_ACCESS_KEY_ID" not in env


def test_job_pods_never_carry_the_instance_selector() -> None:
    labels = build_job(request())["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] != "mysql"  # the topology loop lists instance pods by it


def test_job_names_stay_short_enough_for_pod_names() -> None:
    assert len(job_name("x" * 200, "binlogs-235959")) <= 52
    assert restore_args("backups/a", None) == ["restore", "--backup", "backups/a"]
    assert restore_args("backups/a", "2026-01-01T00:00:00Z")[-2:] == [
        "--point-in-time",
        "2026-01-01T00:00:00Z",
    ]


# ---- choosing, retention, binlog source --------------------------------------------------------------


def instances(*rows: tuple[str, str, bool]) -> list[dict[str, Any]]:
    return [{"name": name, "role": role, "ready": ready} for name, role, ready in rows]


def test_backup_never_runs_on_the_primary_while_a_replica_is_ready() -> None:
    view = instances(("db-0", "primary", True), ("db-1", "replica", False), ("db-2", "replica", True))
    assert choose_instance(view, "db-0") == "db-2"
    both = instances(("db-0", "primary", True), ("db-1", "replica", True), ("db-2", "replica", True))
    assert choose_instance(both, "db-0") == "db-1"
    assert choose_instance(both, "db-0", preferred="db-2") == "db-2"
    assert choose_instance(instances(("db-0", "primary", True), ("db-1", "replica", False)), "db-0") == "db-0"
    assert choose_instance(instances(("db-0", "primary", False)), "db-0") is None


def test_backup_storage_comes_from_the_backup_else_the_cluster() -> None:
    own = MysqlBackupSpec.model_validate({"cluster": "db", "storage": PVC})
    assert backup_storage(own, cluster(backup={"storage": {"s3": S3}})).pvc is not None
    plain = MysqlBackupSpec.model_validate({"cluster": "db"})
    assert backup_storage(plain, cluster(backup={"storage": {"s3": S3}})).s3 is not None
    with pytest.raises(BackupNotPossible, match="no storage"):
        backup_storage(plain, cluster())


def backup(name: str, phase: str, finished: str = "", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase, "completionTime": finished, **status}}


def test_retention_runs_once_after_each_backup_beyond_the_count() -> None:
    three = [backup("b1", "Completed", "1"), backup("b2", "Completed", "2"), backup("b3", "Completed", "3")]
    assert retention_due(three, keep=2, retained_after=None) == "b3"
    assert retention_due(three, keep=2, retained_after="b3") is None
    assert retention_due(three, keep=3, retained_after=None) is None
    assert retention_due([*three[:2], backup("b4", "Failed", "4")], keep=2, retained_after=None) is None


def test_retention_spares_the_backups_of_restores_not_yet_ended() -> None:
    def restoring(
        name: str, backup_name: str | None, phase: str | None, deleting: bool = False
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if deleting:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        spec = {"restoreFrom": {"backup": backup_name}} if backup_name else {}
        status = {"restore": {"phase": phase}} if phase else {}
        return {"metadata": meta, "spec": spec, "status": status}

    clusters = [
        restoring("new", "b3", None),  # instance 0 still starting: no restore status yet
        restoring("loading", "b1", "Running"),
        restoring("waiting", "b1", "Pending"),
        restoring("done", "b2", "Completed"),
        restoring("ghost", "b9", "Failed"),
        restoring("gone", "b4", "Running", deleting=True),
        restoring("plain", None, None),
    ]
    spared = backups_restores_read(clusters)
    assert spared == ["b1", "b3"]
    assert retention_args(2, spared) == ["retention", "--keep", "2", "--spare", "b1", "--spare", "b3"]
    assert retention_args(2) == ["retention", "--keep", "2"]


def test_binlogs_are_archived_from_the_instance_of_the_newest_backup_in_the_cluster_storage() -> None:
    storage = BackupStorage.model_validate({"s3": S3})
    elsewhere = BackupStorage.model_validate(PVC)
    found = [
        backup("b1", "Completed", "1", instance="db-1", storage=storage.wire()),
        backup("b2", "Completed", "2", instance="db-2", storage=elsewhere.wire()),
        backup("b3", "Running", "", instance="db-0", storage=storage.wire()),
    ]
    assert binlog_source(found, storage) == "db-1"
    assert binlog_source([], storage) is None
    assert (
        scheduled_backup_name("db", __import__("datetime").datetime(2026, 1, 2, 3, 4, 5))
        == "db-20260102030405"
    )


# ---- Job outcomes --------------------------------------------------------------------------------------


def job(condition: str | None) -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "lastTransitionTime": "T2"}] if condition else []
    return {"status": {"startTime": "T1", "completionTime": "T2", "conditions": conditions}}


def pod(exit_code: int, message: str) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "message": message, "finishedAt": "T2"}
    return {
        "metadata": {},
        "status": {"containerStatuses": [{"name": "backup", "state": {"terminated": terminated}}]},
    }


def test_job_outcome_reads_the_termination_message() -> None:
    assert job_outcome(job(None), []).state == RUNNING
    done = job_outcome(job("Complete"), [pod(0, json.dumps({"result": "Completed", "status": {"size": 5}}))])
    assert done.state == SUCCEEDED and done.result["status"] == {"size": 5}
    failed = job_outcome(
        job("Failed"), [pod(1, json.dumps({"result": "Failed", "error": "DumpFailed", "message": "killed"}))]
    )
    assert (failed.state, failed.message, failed.exit_code) == (FAILED, "DumpFailed: killed", 1)


def test_job_outcome_of_a_killed_container_names_the_signal_and_the_log_tail() -> None:
    killed = job_outcome(job("Failed"), [pod(137, "dumping 2 database(s)\nstill going")])
    assert killed.state == FAILED and "137 (killed)" in killed.message and "still going" in killed.message
    deadline = job_outcome(
        {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}, []
    )
    assert "DeadlineExceeded" in deadline.message


# ---- restore --------------------------------------------------------------------------------------------


def test_restore_source_from_a_completed_backup_or_a_location() -> None:
    by_name = RestoreFrom.model_validate({"backup": "b1"})
    done = backup("b1", "Completed", "1", location="backups/b1", storage={"s3": S3})
    source = resolve_source(by_name, done)
    assert source is not None and source.location == "backups/b1" and source.storage.s3 is not None
    assert resolve_source(by_name, backup("b1", "Running")) is None
    located = RestoreFrom.model_validate({"location": "backups/x", "storage": PVC})
    assert resolve_source(located, None).location == "backups/x"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("found", "reason"),
    [(None, "BackupNotFound"), (backup("b1", "Failed", "1", message="disk full"), "BackupFailed")],
)
def test_restore_from_a_missing_or_failed_backup_is_refused(
    found: dict[str, Any] | None, reason: str
) -> None:
    with pytest.raises(RestoreImpossible) as error:
        resolve_source(RestoreFrom.model_validate({"backup": "b1"}), found)
    assert error.value.reason == reason


def test_topology_waits_for_the_restore_only_when_one_is_asked_for() -> None:
    restoring = cluster(restoreFrom={"backup": "b1"})
    assert restore_finished(cluster(), {}) is True
    assert restore_finished(restoring, {}) is False
    assert restore_finished(restoring, {"restore": {"phase": "Running"}}) is False
    assert restore_finished(restoring, {"restore": {"phase": "Failed"}}) is False
    assert restore_finished(restoring, {"restore": {"phase": "Completed"}}) is True
