"""Physical backups and restores through Jobs: the manifests, the restore hold and the init file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mysql_operator.api.backup import BackupMethod, BackupStorage, MysqlBackupSpec, RestoreFrom
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.backup.physical_restore import (
    AccountsMissing,
    accounts_from_env,
    drop_identity,
    init_sql,
    write_init_sql,
)
from mysql_operator.handlers.backup import backup_method
from mysql_operator.handlers.jobs import FAILED, RUNNING, SUCCEEDED, job_outcome
from mysql_operator.handlers.restore import instance_zero_claim, resolve_source, restore_cap
from mysql_operator.resources.backup_job import (
    DatabaseLogin,
    JobKind,
    JobRequest,
    backup_args,
    build_job,
    restore_args,
)
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.physical_jobs import (
    CLONE_DIR,
    CLONE_MOUNT,
    CLONE_VOLUME,
    ENV_ACCOUNTS,
    INIT_SQL,
    RUN_DIR,
    account_env,
    mariadb_backup,
    mysql_backup,
    restore_job,
)
from mysql_operator.resources.statefulset import statefulset_replicas

PVC = {"pvc": {"claimName": "backups", "path": "shop"}}


def spec(flavor: str = "mariadb", **extra: Any) -> MysqlClusterSpec:
    return MysqlClusterSpec.model_validate({"flavor": flavor, **extra})


def request(flavor: str = "mariadb", kind: JobKind = JobKind.BACKUP, tls: bool = True) -> JobRequest:
    return JobRequest(
        kind=kind,
        name="shop-nightly-backup",
        namespace="shop",
        cluster="shop-db",
        flavor=spec(flavor).flavor,
        image="mysql-operator:1.2",
        args=backup_args("shop-db", "shop-nightly", "shop-db-1"),
        storage=BackupStorage.model_validate(PVC),
        owner={"apiVersion": "v1", "kind": "MysqlBackup", "name": "shop-nightly", "uid": "u1"},
        login=DatabaseLogin("127.0.0.5", "shop-db-1", "mysqlop_backup", "shop-db-credentials",
                            "backup-password"),
        tls_secret="shop-db-tls" if tls else None,
    )


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# ---- which method -------------------------------------------------------------------------------------


def test_the_method_comes_from_the_backup_else_the_cluster_else_logical() -> None:
    storage = {"storage": PVC}
    physical_cluster = spec(backup={**storage, "method": "physical"})
    assert backup_method(MysqlBackupSpec(cluster="c"), spec()) == BackupMethod.LOGICAL
    assert backup_method(MysqlBackupSpec(cluster="c"), physical_cluster) == BackupMethod.PHYSICAL
    own = MysqlBackupSpec.model_validate({"cluster": "c", "method": "logical"})
    assert backup_method(own, physical_cluster) == BackupMethod.LOGICAL


def test_restore_method_goes_with_a_location_only() -> None:
    with pytest.raises(ValueError, match="goes with location"):
        RestoreFrom.model_validate({"backup": "b1", "method": "physical"})
    source = resolve_source(
        RestoreFrom.model_validate({"location": "backups/b1", "storage": PVC, "method": "physical"}), None
    )
    assert source is not None and source.method == BackupMethod.PHYSICAL
    done = {"status": {"phase": "Completed", "location": "backups/b1", "storage": PVC, "method": "physical"}}
    by_name = resolve_source(RestoreFrom(backup="b1"), done)
    assert by_name is not None and by_name.method == BackupMethod.PHYSICAL
    older = {"status": {"phase": "Completed", "location": "backups/b0", "storage": PVC}}
    assert resolve_source(RestoreFrom(backup="b0"), older).method == BackupMethod.LOGICAL  # type: ignore[union-attr]


# ---- the hold ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restore", "primary", "cap"),
    [
        ({}, None, 0),  # method not known yet: no pod may initialise an empty instance 0
        ({"phase": "Pending", "method": "logical"}, None, None),
        ({"phase": "Running", "method": "physical", "job": "j"}, None, 0),
        ({"phase": "Failed", "method": "physical", "job": "j"}, None, 0),
        ({"phase": "Running", "step": "StartingInstance", "method": "physical", "job": "j"}, None, 1),
        # instance 0 alone until it is the primary: an empty instance 1 must not be the candidate
        ({"phase": "Completed", "method": "physical", "job": "j"}, None, 1),
        ({"phase": "Completed", "method": "physical", "job": "j"}, 0, None),
        ({"phase": "Completed", "method": "logical", "job": "j"}, None, None),
        ({"phase": "Running", "job": "j"}, None, None),  # a logical restore started by an earlier version
    ],
)
def test_pods_are_held_until_a_physical_restore_completed_and_instance_0_leads(
    restore: dict[str, Any], primary: int | None, cap: int | None
) -> None:
    restoring = spec(restoreFrom={"backup": "b1"}, instances=3)
    assert restore_cap(restoring, {"restore": restore}, primary) == cap
    assert restore_cap(spec(), {"restore": restore}, primary) is None
    assert statefulset_replicas(restoring, primary, cap) == (3 if cap is None else cap)


def test_instance_zero_claim_is_the_statefulset_s_own() -> None:
    claim = instance_zero_claim(spec(storage={"size": "3Gi"}), "shop", "shop-db")
    assert claim["metadata"]["name"] == "data-shop-db-0"
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


# ---- backup Jobs -----------------------------------------------------------------------------------------


def test_mariadb_physical_backup_runs_beside_the_donor_s_volume_read_only() -> None:
    job = build_job(mariadb_backup(request(), 1, "node-2"))
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeName"] == "node-2"
    assert pod["securityContext"]["runAsUser"] == 999  # the owner of the data files
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"] == {"claimName": "data-shop-db-1", "readOnly": True}
    backup = containers(job)["backup"]
    assert {"name": volume["name"], "mountPath": "/var/lib/mysql", "readOnly": True} in backup["volumeMounts"]
    assert backup["args"][-4:-2] == ["--datadir", "/var/lib/mysql"]
    assert "physical" in backup["args"]
    assert backup["securityContext"]["readOnlyRootFilesystem"] is True


def test_mysql_physical_backup_pulls_into_a_server_of_the_cluster_s_image() -> None:
    cluster = spec("mysql", image="mysql:9.7.4")
    job = build_job(mysql_backup(request("mysql"), cluster))
    pod = containers(job)
    recipient, backup = pod["recipient"], pod["backup"]
    assert recipient["image"] == "mysql:9.7.4"  # the clone plugin needs the donor's exact version
    # the clone is as large as the donor's data: on a disk-backed volume both containers share
    clone = {"name": CLONE_VOLUME, "mountPath": CLONE_MOUNT}
    assert clone in recipient["volumeMounts"] and clone in backup["volumeMounts"]
    assert CLONE_DIR.startswith(CLONE_MOUNT + "/")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes[CLONE_VOLUME] == {"name": CLONE_VOLUME, "emptyDir": {}}
    assert "run" not in volumes  # no memory-backed volume: nothing secret is written
    tls_ca = {"name": "tls-ca", "mountPath": "/etc/mysql-operator/tls", "readOnly": True}
    assert tls_ca in recipient["volumeMounts"]  # clone_ssl_ca is read by the recipient
    assert env_of(recipient)["MYSQL_ROOT_PASSWORD"] == {
        "secretKeyRef": {"name": "shop-db-credentials", "key": "backup-password"}
    }
    env = env_of(backup)
    assert env["RECIPIENT_PASSWORD"] == env_of(recipient)["MYSQL_ROOT_PASSWORD"]
    assert next(e["name"] for e in backup["env"]) == "POD_IP"  # before anything that may use it
    args = backup["args"]
    assert args[args.index("--recipient-host") + 1] == "$(POD_IP)"
    assert args[args.index("--clone-dir") + 1] == CLONE_DIR and "--shutdown-recipient" in args
    assert "nodeName" not in job["spec"]["template"]["spec"]  # no volume of the donor's: any node


# ---- restore Job -------------------------------------------------------------------------------------------


def test_physical_restore_runs_instance_zero_s_own_server_on_its_volume_with_the_init_file() -> None:
    moment = "2026-11-30T10:00:00Z"
    cluster = spec("mysql", image="mysql:9.7.4", restoreFrom={"backup": "b1", "pointInTime": moment})
    base = replace(request("mysql", JobKind.RESTORE), args=restore_args("backups/b1", None),
                   login=DatabaseLogin("$(POD_IP)", "shop-db-0", "mysqlop_admin", "shop-db-credentials",
                                       "operator-password"))
    job = build_job(restore_job(base, ClusterRef("shop-db", "shop", "u9"), cluster, "backups/b1",
                                "2026-11-30T10:00:00Z"))
    pod = job["spec"]["template"]["spec"]
    server, main = containers(job)["mysqld"], containers(job)["backup"]
    unpack = pod["initContainers"][0]
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"] == {"claimName": "data-shop-db-0"}
    for container in (server, unpack):
        assert {"name": claim["name"], "mountPath": "/var/lib/mysql"} in container["volumeMounts"]
    assert server["image"] == "mysql:9.7.4"
    assert f"--init-file={INIT_SQL}" in server["args"] and "--server-id=10" in server["args"]
    assert "--skip-replica-start" in server["args"]  # a replica's copy must not replicate from the source
    assert not any(key.endswith("Probe") for key in server)
    mounted = {m["mountPath"] for m in server["volumeMounts"]}
    assert mounted >= {"/etc/mysql/conf.d", "/etc/mysql/tls", RUN_DIR}
    assert unpack["args"][:2] == ["unpack", "--backup"] and INIT_SQL in unpack["args"]
    accounts = json.loads(env_of(unpack)[ENV_ACCOUNTS])
    assert accounts[0][:2] == ["root", "localhost"]
    assert main["args"][:3] == ["restore-physical", "--backup", "backups/b1"]
    assert "--shutdown" in main["args"] and "2026-11-30T10:00:00Z" in main["args"]
    assert next(e["name"] for e in main["env"]) == "POD_IP" and env_of(main)["DB_HOST"] == "$(POD_IP)"
    assert pod["securityContext"]["runAsUser"] == 999
    medium = next(v for v in pod["volumes"] if v["name"] == "run")["emptyDir"]
    assert medium == {"medium": "Memory"}  # the passwords never reach a disk


def test_account_passwords_come_from_the_secret_optionally() -> None:
    env = account_env("shop-db-credentials")
    refs = [e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e]
    assert all(ref["name"] == "shop-db-credentials" and ref["optional"] for ref in refs)
    assert {"operator-password", "replication-password", "app-user"} <= {ref["key"] for ref in refs}


# ---- the init file ------------------------------------------------------------


def test_init_file_re_passwords_the_accounts_unlogged_one_statement_per_line(tmp_path: Path) -> None:
    accounts_env = json.dumps([["root", "localhost", "P0", ""], ["mysqlop_admin", "%", "P1", ""],
                               ["", "%", "P2", "U2"], ["mysqlop_exporter", "%", "P3", ""]])
    env = {ENV_ACCOUNTS: accounts_env, "P0": "r'o\\ot", "P1": "adm\nin", "P2": "app-pw", "U2": "shop"}
    accounts = accounts_from_env(env)
    assert [a[:2] for a in accounts] == [("root", "localhost"), ("mysqlop_admin", "%"), ("shop", "%")]
    text = init_sql(accounts)
    lines = text.splitlines()
    # the escapes are read as backslash escapes whatever sql_mode the server is configured with
    assert lines[:2] == ["SET SESSION sql_mode='';", "SET SESSION sql_log_bin=0;"]
    assert lines[2] == "ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY 'r\\'o\\\\ot';"
    assert lines[3].endswith("IDENTIFIED BY 'adm\\nin';") and len(lines) == 5
    path = tmp_path / "run" / "init.sql"
    write_init_sql(path, accounts)
    assert path.read_text() == text and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(AccountsMissing):
        accounts_from_env({})


def test_a_copy_leaves_its_identity_and_persisted_settings_behind(tmp_path: Path) -> None:
    for name in ("auto.cnf", "mysqld-auto.cnf", "ibdata1"):
        (tmp_path / name).write_text("x")
    assert drop_identity(tmp_path) == ["auto.cnf", "mysqld-auto.cnf"]
    assert [p.name for p in tmp_path.iterdir()] == ["ibdata1"]
    assert drop_identity(tmp_path) == []


# ---- Job outcomes with a server beside the command ----------------------------------------


def pod_with(main: dict[str, Any] | None, init: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"containerStatuses": [{"name": "mysqld", "state": {"running": {}}}]}
    if main is not None:
        status["containerStatuses"].append({"name": "backup", "state": {"terminated": main}})
    if init is not None:
        status["initContainerStatuses"] = [{"name": "unpack", "state": {"terminated": init}}]
    return {"metadata": {}, "status": status}


def test_the_command_s_end_is_the_outcome_while_its_server_still_stops() -> None:
    running_job: dict[str, Any] = {"status": {"startTime": "T1"}}
    assert job_outcome(running_job, [pod_with(None)]).state == RUNNING
    done = job_outcome(running_job, [pod_with({"exitCode": 0, "message": '{"result": "Restored"}'})])
    assert done.state == SUCCEEDED and done.result == {"result": "Restored"}
    failed = job_outcome(running_job, [pod_with({"exitCode": 3, "message": '{"message": "corrupt"}'})])
    assert failed.state == FAILED and "corrupt" in failed.message


def test_a_failed_unpack_is_the_outcome() -> None:
    job = {"status": {"startTime": "T1", "conditions": [{"type": "Failed", "status": "True"}]}}
    message = '{"result": "Failed", "error": "BackupCorrupt", "message": "sha256 differs"}'
    outcome = job_outcome(job, [pod_with(None, {"exitCode": 3, "message": message})])
    assert outcome.state == FAILED and outcome.exit_code == 3 and "sha256 differs" in outcome.message


def test_every_backup_command_is_reachable_through_python_m_mysql_operator() -> None:
    import argparse

    from mysql_operator.__main__ import BACKUP_COMMANDS
    from mysql_operator.backup.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(BACKUP_COMMANDS) == set(sub.choices)
