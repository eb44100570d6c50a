from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mysql_operator.api.backup import (
    BackupSchedule,
    BackupStorage,
    MysqlBackupSpec,
    MysqlBackupStatus,
    RestoreFrom,
    human_size,
    mysqlbackup_crd,
    parse_rfc3339,
)

S3 = {"endpoint": "http://127.0.0.1:9000", "bucket": "backups", "credentialsSecret": "s3-creds"}


def test_storage_is_a_pvc_or_an_s3_bucket() -> None:
    pvc = BackupStorage.model_validate({"pvc": {"claimName": "backups", "path": "shop/db"}})
    assert pvc.pvc is not None and pvc.pvc.path == "shop/db"
    s3 = BackupStorage.model_validate({"s3": S3})
    assert s3.s3 is not None
    assert s3.wire()["s3"] == {**S3, "prefix": "", "region": "us-east-1", "forcePathStyle": True}


@pytest.mark.parametrize("value", [{}, {"pvc": {"claimName": "b"}, "s3": S3}])
def test_storage_needs_exactly_one_target(value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of pvc or s3"):
        BackupStorage.model_validate(value)


@pytest.mark.parametrize(
    "value",
    [
        {"pvc": {"claimName": "b", "path": "../etc"}},
        {"pvc": {"claimName": "Bad_Name"}},
        {"s3": {**S3, "endpoint": "ftp://x"}},
        {"s3": {**S3, "bucket": "A"}},
        {"s3": {**S3, "prefix": "/leading"}},
        {"s3": {k: v for k, v in S3.items() if k != "credentialsSecret"}},
    ],
)
def test_storage_rejects_bad_values(value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BackupStorage.model_validate(value)


def test_backup_schedule_defaults_and_cron_validation() -> None:
    schedule = BackupSchedule.model_validate({"storage": {"pvc": {"claimName": "b"}}})
    assert (schedule.schedule, schedule.retention, schedule.binlog_archive_interval_seconds) == (
        "0 3 * * *",
        7,
        300,
    )
    assert BackupSchedule.model_validate({"schedule": "@hourly", "storage": {"s3": S3}}).schedule == "@hourly"
    with pytest.raises(ValidationError, match="minute: 61"):
        BackupSchedule.model_validate({"schedule": "61 * * * *", "storage": {"s3": S3}})
    with pytest.raises(ValidationError):
        BackupSchedule.model_validate({"retention": 0, "storage": {"s3": S3}})
    with pytest.raises(ValidationError):
        BackupSchedule.model_validate({"retention": 1001, "storage": {"s3": S3}})


def test_restore_from_names_a_backup_or_a_location_with_storage() -> None:
    assert RestoreFrom.model_validate({"backup": "shop-db-1"}).backup == "shop-db-1"
    located = RestoreFrom.model_validate(
        {"location": "backups/shop-db-1", "storage": {"s3": S3}, "pointInTime": "2026-11-25T15:16:30Z"}
    )
    assert located.point_in_time == "2026-11-25T15:16:30Z"
    with pytest.raises(ValidationError, match="exactly one of backup or location"):
        RestoreFrom.model_validate({"backup": "a", "location": "backups/a", "storage": {"s3": S3}})
    with pytest.raises(ValidationError, match=r"needs restoreFrom\.storage"):
        RestoreFrom.model_validate({"location": "backups/a"})
    with pytest.raises(ValidationError):
        RestoreFrom.model_validate({"backup": "a", "pointInTime": "2026-11-25 15:16"})


def test_rfc3339_needs_an_offset() -> None:
    assert parse_rfc3339("2026-11-25T15:16:30.5+01:00").utcoffset() is not None
    with pytest.raises(ValueError):
        parse_rfc3339("2026-11-25T15:16:30")


def test_mysqlbackup_spec_and_status() -> None:
    spec = MysqlBackupSpec.model_validate({"cluster": "shop-db"})
    assert spec.wire() == {"cluster": "shop-db"}
    status = MysqlBackupStatus.model_validate(
        {"phase": "Completed", "size": 1234, "binlogFile": "mysql-bin.000002"}
    )
    assert status.wire()["binlogFile"] == "mysql-bin.000002"
    with pytest.raises(ValidationError):
        MysqlBackupStatus.model_validate({"phase": "Exploded"})


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 2**20 + 2**19, 3 * 2**40)] == [
        "0B",
        "1023B",
        "1.0KiB",
        "5.5MiB",
        "3.0TiB",
    ]


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


def test_mysqlbackup_crd_is_structural_with_printer_columns() -> None:
    crd = mysqlbackup_crd()
    assert crd["metadata"]["name"] == "mysqlbackups.mysql.operator.dev"
    version = crd["spec"]["versions"][0]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns)[:4] == ["Cluster", "Phase", "Size", "Age"]
    assert columns["Location"]["priority"] == 1
    schema = version["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["cluster"]
    storage = spec["properties"]["storage"]
    assert storage["x-kubernetes-validations"][0]["rule"] == "has(self.pvc) != has(self.s3)"
    assert set(storage["properties"]) == {"pvc", "s3"}
    for node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node
    assert schema["properties"]["status"]["properties"]["phase"]["enum"] == [
        "Pending",
        "Running",
        "Completed",
        "Failed",
    ]


def test_restore_from_schema_carries_its_cel_rules() -> None:
    from mysql_operator.api.crd import schema_of

    schema = schema_of(RestoreFrom)
    rules = [rule["rule"] for rule in schema["x-kubernetes-validations"]]
    assert "has(self.backup) != has(self.location)" in rules
    assert schema["properties"]["pointInTime"]["pattern"].startswith("^[0-9]{4}")
