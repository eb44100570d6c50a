"""The Jobs of physical backups and restores (pure builders over resources/backup_job.py).

A physical copy needs the data files or a server of the cluster's own version next to it:
- MariaDB backup: `mariadb-backup` reads the donor's data directory, so the Job runs on the donor's
  node (`nodeName`) and mounts the donor's volume read-only (a ReadWriteOnce volume may be mounted
  by several pods of one node), as the mysql user that owns the files.
- MySQL backup: MySQL refuses a clone target inside the data directory, and the data directory is
  the instance's whole volume, so the copy is pulled instead: a throwaway server of the cluster's
  own image (the clone plugin needs the donor's exact version) runs beside the backup command in
  the Job's pod, and `CLONE INSTANCE FROM <donor> DATA DIRECTORY` writes into a directory the two
  containers share; the command streams it to storage and stops that server, so the pod completes.
- Restore (both flavors): the new cluster's first volume is filled before its first server starts
  (the StatefulSet is held at zero pods meanwhile, handlers/restore.py). An init container unpacks
  the backup into the volume and writes, into a memory-only directory of the pod, an init file
  that gives the operator's accounts the new cluster's passwords (the copied data holds the source
  cluster's). Then instance 0's own container (same image, configuration, TLS files and volume)
  starts on it with that `--init-file`, and the restore command rolls it forward with the archived
  binlogs over the pod's address and shuts it down. No password is written to the volume.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.users import MANAGED_ACCOUNTS
from mysql_operator.resources.backup_job import (
    TLS_CA_DIR,
    TMP_DIR,
    JobRequest,
    operator_container,
)
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.statefulset import CONTAINER_NAME as SERVER_CONTAINER
from mysql_operator.resources.statefulset import (
    DATA_DIR,
    MYSQL_UID,
    build_pod_template,
    credentials_secret,
)

RUN_VOLUME = "run"
RUN_DIR = "/run/mysqlop"  # memory-backed, shared by the containers of one Job pod: secrets only
# MySQL backup: the recipient's CLONE writes into CLONE_DIR (must not exist), on a disk-backed
# volume both containers mount: the copy is as large as the donor's data, which memory could not hold
CLONE_VOLUME = "clone"
CLONE_MOUNT = "/var/lib/mysqlop-clone"
CLONE_DIR = f"{CLONE_MOUNT}/data"
INIT_SQL = f"{RUN_DIR}/init.sql"  # restore: the accounts' new passwords, read by the server at start
DATA_MOUNT_VOLUME = "instance-data"
RECIPIENT_CONTAINER = "recipient"
UNPACK_CONTAINER = "unpack"
PHYSICAL_MEMORY_LIMIT = "1Gi"  # zstd on every core and mariadb-backup --prepare's buffer pool
ENV_ACCOUNTS = "RESET_ACCOUNTS"  # JSON [[user or "", host, password variable, user variable or ""], ...]


def _run_volume() -> dict[str, Any]:
    return {"name": RUN_VOLUME, "emptyDir": {"medium": "Memory"}}


def _run_mount() -> dict[str, Any]:
    return {"name": RUN_VOLUME, "mountPath": RUN_DIR}


def _clone_mount() -> dict[str, Any]:
    return {"name": CLONE_VOLUME, "mountPath": CLONE_MOUNT}


def _claim_volume(claim: str, read_only: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": DATA_MOUNT_VOLUME, "persistentVolumeClaim": source}


def physical_backup_args(flavor: c.Flavor) -> list[str]:
    """What the backup command adds for a physical copy of this flavor (pure)."""
    if flavor == c.Flavor.MARIADB:
        return ["--method", "physical", "--datadir", DATA_DIR]
    return ["--method", "physical", "--recipient-host", "$(POD_IP)", "--clone-dir", CLONE_DIR,
            "--shutdown-recipient"]


def mariadb_backup(request: JobRequest, donor_ordinal: int, node: str) -> JobRequest:
    """The backup Job, physical, MariaDB: on the donor's node, its volume mounted read-only."""
    return replace(
        request,
        args=[*request.args, *physical_backup_args(c.Flavor.MARIADB)],
        node_name=node,
        run_as=MYSQL_UID,
        volumes=[_claim_volume(c.data_claim_name(request.cluster, donor_ordinal), read_only=True)],
        mounts=[{"name": DATA_MOUNT_VOLUME, "mountPath": DATA_DIR, "readOnly": True}],
        memory_limit=PHYSICAL_MEMORY_LIMIT,
    )


def _pod_ip_env() -> dict[str, Any]:
    return {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _server_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}


def mysql_backup(request: JobRequest, spec: MysqlClusterSpec) -> JobRequest:
    """The backup Job, physical, MySQL: a throwaway server of the cluster's image pulls the donor's
    data with the clone plugin into the shared directory; the command streams it and stops it.
    The throwaway server's root password is the backup user's (no new secret to keep)."""
    secret = credentials_secret(spec, request.cluster)
    mounts = [_clone_mount(), {"name": "recipient-data", "mountPath": DATA_DIR}]
    volumes = [{"name": CLONE_VOLUME, "emptyDir": {}}, {"name": "recipient-data", "emptyDir": {}}]
    if request.tls_secret:
        mounts.append({"name": "tls-ca", "mountPath": TLS_CA_DIR, "readOnly": True})
    recipient = {
        "name": RECIPIENT_CONTAINER,
        "image": spec.effective_image,
        "imagePullPolicy": spec.image_pull_policy,
        "env": [
            _secret_env("MYSQL_ROOT_PASSWORD", secret, c.KEY_BACKUP_PASSWORD),
            {"name": "MYSQL_ROOT_HOST", "value": "%"},
        ],
        "ports": [{"name": "mysql", "containerPort": c.MYSQL_PORT, "protocol": "TCP"}],
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": _server_security(),
    }
    return replace(
        request,
        args=[*request.args, *physical_backup_args(c.Flavor.MYSQL)],
        run_as=MYSQL_UID,
        volumes=volumes,
        mounts=[_clone_mount()],
        env=[_pod_ip_env(), _secret_env("RECIPIENT_PASSWORD", secret, c.KEY_BACKUP_PASSWORD)],
        sidecars=[recipient],
        memory_limit=PHYSICAL_MEMORY_LIMIT,
    )


def account_env(secret: str) -> list[dict[str, Any]]:
    """The passwords (and the application user's name) the restored accounts get, by Secret
    reference, and RESET_ACCOUNTS saying which variable is whose (pure)."""
    env: list[dict[str, Any]] = []
    accounts: list[list[str]] = []
    for index, account in enumerate(MANAGED_ACCOUNTS):
        password_var = f"ACCOUNT_PASSWORD_{index}"
        env.append(_secret_env(password_var, secret, account.password_key, optional=True))
        user_var = ""
        if account.user_key:
            user_var = f"ACCOUNT_USER_{index}"
            env.append(_secret_env(user_var, secret, account.user_key, optional=True))
        accounts.append([account.user, account.host, password_var, user_var])
    env.append({"name": ENV_ACCOUNTS, "value": json.dumps(accounts)})
    return env


def restore_job(request: JobRequest, ref: ClusterRef, spec: MysqlClusterSpec, location: str,
                point_in_time: str | None) -> JobRequest:
    """The restore Job, physical: unpack into instance 0's volume, start instance 0's own server on
    it with the init file, roll forward, shut down (see the module's docstring)."""
    secret = credentials_secret(spec, ref.name)
    template = build_pod_template(ref, spec)
    instance = template["spec"]["containers"][0]
    assert instance["name"] == SERVER_CONTAINER
    data = {"name": DATA_MOUNT_VOLUME, "mountPath": DATA_DIR}
    server = {
        key: value for key, value in instance.items()
        if key not in ("startupProbe", "readinessProbe", "livenessProbe", "volumeMounts", "args")
    }
    # A copy of a replica carries its replication settings (MySQL keeps them in InnoDB tables, which
    # a clone copies): the restoring server must not start replicating from the source cluster.
    server["args"] = [f"--server-id={c.SERVER_ID_PREFIX}0", f"--init-file={INIT_SQL}",
                      dialect_for(spec.flavor).skip_replica_start]
    server["volumeMounts"] = [
        data if mount["name"] == c.DATA_VOLUME else mount for mount in instance["volumeMounts"]
    ] + [_run_mount()]
    mounted = {mount["name"] for mount in instance["volumeMounts"]}
    volumes = [v for v in template["spec"]["volumes"] if v["name"] in mounted]
    volumes += [_claim_volume(c.data_claim_name(ref.name, 0)), _run_volume()]
    tmp = {"name": "tmp", "mountPath": TMP_DIR}
    unpack_args = ["unpack", "--backup", location, "--datadir", DATA_DIR, "--init-sql", INIT_SQL]
    with_accounts = replace(request, env=account_env(secret))
    unpack = operator_container(with_accounts, UNPACK_CONTAINER, unpack_args, [tmp, data, _run_mount()])
    unpack["resources"]["limits"]["memory"] = PHYSICAL_MEMORY_LIMIT
    args = ["restore-physical", "--backup", location, "--shutdown"]
    if point_in_time:
        args += ["--point-in-time", point_in_time]
    return replace(
        request,
        args=args,
        run_as=MYSQL_UID,
        volumes=volumes,
        env=[_pod_ip_env()],
        sidecars=[server],
        init_containers=[unpack],
    )

