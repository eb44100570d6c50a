"""The Jobs that take backups, archive binlogs, prune old backups and restore (pure builders).

Each Job runs the operator's own image (`python -m mysql_operator <command>`, see backup/cli.py),
once (`backoffLimit: 0`: a half-done backup is never retried into a different one), non-root, with
a deadline. Its result reaches the operator through the container's termination message: the
command writes a compact JSON result to `/dev/termination-log`, kubelet copies it into
`status.containerStatuses[].state.terminated.message`, which the operator reads from the Job's pod.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.backup import KEY_S3_ACCESS_KEY_ID, KEY_S3_SECRET_ACCESS_KEY, BackupStorage

CONTAINER_NAME = "backup"
TERMINATION_LOG = "/dev/termination-log"
PVC_ROOT = "/backup"
TMP_DIR = "/tmp"
JOB_UID = 10001  # the operator image's user
APP_NAME = "mysql-backup"  # not the instances' app name: Job pods must never look like instances
LABEL_CLUSTER = f"{c.API_GROUP}/cluster"
LABEL_BACKUP = f"{c.API_GROUP}/backup"
LABEL_JOB_KIND = f"{c.API_GROUP}/job"
NAME_LIMIT = 52  # Job names become pod names with a 6-character suffix, and label values (63)


class JobKind(StrEnum):
    """What a Job does; the value is the CLI subcommand."""

    BACKUP = "backup"
    ARCHIVE = "archive-binlogs"
    RETENTION = "retention"
    RESTORE = "restore"


# How long each kind may run before Kubernetes stops it.
DEADLINE_SECONDS = {
    JobKind.BACKUP: 6 * 3600,
    JobKind.ARCHIVE: 3600,
    JobKind.RETENTION: 1800,
    JobKind.RESTORE: 12 * 3600,
}
# Finished Jobs stay this long (the operator reads them within seconds, a human may look later).
TTL_SECONDS = {
    JobKind.BACKUP: 24 * 3600,
    JobKind.ARCHIVE: 300,
    JobKind.RETENTION: 3600,
    JobKind.RESTORE: 7 * 24 * 3600,
}


@dataclass(frozen=True)
class DatabaseLogin:
    """The instance a Job talks to, and where its password is (a Secret key, never a literal)."""

    host: str
    pod: str
    user: str
    secret: str
    password_key: str


@dataclass(frozen=True)
class JobRequest:
    """Everything one Job needs."""

    kind: JobKind
    name: str
    namespace: str
    cluster: str
    flavor: c.Flavor
    image: str
    args: list[str]
    storage: BackupStorage
    owner: dict[str, Any]  # an ownerReference: the MysqlBackup, or the MysqlCluster
    login: DatabaseLogin | None = None  # retention needs no database
    labels: dict[str, str] = field(default_factory=dict)
    tls_secret: str | None = None  # the cluster's server certificate Secret: its ca.crt is mounted
    # Physical backups and restores (resources/physical_jobs.py): a pinned node, volumes shared with
    # other containers (a server of the cluster's image), the mysql user's uid for the data files.
    node_name: str | None = None
    run_as: int = JOB_UID
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    memory_limit: str = "512Mi"


def job_name(base: str, suffix: str) -> str:
    """A Job name from an object name and a suffix, short enough for its pods and labels."""
    head = base[: NAME_LIMIT - len(suffix) - 1].rstrip("-.")
    return f"{head}-{suffix}"


def job_labels(kind: JobKind, cluster: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        c.LABEL_NAME: APP_NAME,
        c.LABEL_INSTANCE: cluster,
        c.LABEL_COMPONENT: "backup",
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_PART_OF: "mysql-operator",
        LABEL_CLUSTER: cluster,
        LABEL_JOB_KIND: kind.value,
        **(extra or {}),
    }


def backup_args(cluster: str, backup: str, binlog_source: str) -> list[str]:
    return ["backup", "--cluster", cluster, "--name", backup, "--binlog-source", binlog_source]


def archive_args(binlog_source: str) -> list[str]:
    return ["archive-binlogs", "--binlog-source", binlog_source]


def retention_args(keep: int, spare: Sequence[str] = ()) -> list[str]:
    """The retention command: keep the newest `keep`, and the backups in `spare` (restores read them)."""
    return ["retention", "--keep", str(keep), *(arg for name in spare for arg in ("--spare", name))]


def restore_args(location: str, point_in_time: str | None) -> list[str]:
    args = ["restore", "--backup", location]
    return [*args, "--point-in-time", point_in_time] if point_in_time else args


TLS_CA_DIR = "/etc/mysql-operator/tls"


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def job_env(request: JobRequest) -> list[dict[str, Any]]:
    """The request's own variables first (later values may use them, as `$(POD_IP)`), then DB_* for
    the instance, BACKUP_STORAGE and the S3 credentials; passwords by Secret reference."""
    env: list[dict[str, Any]] = [
        *request.env,
        {"name": "DB_FLAVOR", "value": request.flavor.value},
        {"name": "BACKUP_STORAGE", "value": json.dumps(request.storage.wire(), sort_keys=True)},
    ]
    login = request.login
    if login is not None:
        env += [
            {"name": "DB_HOST", "value": login.host},
            {"name": "DB_PORT", "value": str(c.MYSQL_PORT)},
            {"name": "DB_USER", "value": login.user},
            _secret_env("DB_PASSWORD", login.secret, login.password_key),
            {"name": "DB_INSTANCE_NAME", "value": login.pod},
        ]
        if request.tls_secret:
            env.append({"name": "DB_SSL_CA", "value": f"{TLS_CA_DIR}/{c.KEY_TLS_CA}"})
    if request.storage.pvc is not None:
        env.append({"name": "BACKUP_PVC_ROOT", "value": PVC_ROOT})
    if request.storage.s3 is not None:
        secret = request.storage.s3.credentials_secret
        env += [
            _secret_env("AWS_ACCESS_KEY_ID", secret, KEY_S3_ACCESS_KEY_ID),
            _secret_env("AWS_SECRET_ACCESS_KEY", secret, KEY_S3_SECRET_ACCESS_KEY),
        ]
    return env


def operator_container(request: JobRequest, name: str, args: list[str], mounts: list[dict[str, Any]],
                       termination_log: bool = True) -> dict[str, Any]:
    """A container of the operator's image running one CLI command, non-root, read-only root."""
    return {
        "name": name,
        "image": request.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "mysql_operator"],
        "args": [*args, "--termination-log", TERMINATION_LOG] if termination_log else list(args),
        "env": job_env(request),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        # a process killed before it wrote its result still leaves the end of its log
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": request.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }


def build_job(request: JobRequest) -> dict[str, Any]:
    """The Job manifest of one backup command."""
    labels = job_labels(request.kind, request.cluster, request.labels)
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_DIR}, *request.mounts]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}, *request.volumes]
    if request.storage.pvc is not None:
        mounts.append({"name": "backups", "mountPath": PVC_ROOT})
        volumes.append(
            {"name": "backups", "persistentVolumeClaim": {"claimName": request.storage.pvc.claim_name}}
        )
    if request.tls_secret and request.login is not None:
        # The CA only (never the server's key): the Job connects over TLS and verifies the server.
        mounts.append({"name": "tls-ca", "mountPath": TLS_CA_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "tls-ca",
                "secret": {
                    "secretName": request.tls_secret,
                    "items": [{"key": c.KEY_TLS_CA, "path": c.KEY_TLS_CA}],
                },
            }
        )
    container = operator_container(request, CONTAINER_NAME, request.args, mounts)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": request.run_as,
            "runAsGroup": request.run_as,
            "fsGroup": request.run_as,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container, *request.sidecars],
        "volumes": volumes,
    }
    if request.init_containers:
        pod_spec["initContainers"] = list(request.init_containers)
    if request.node_name:
        pod_spec["nodeName"] = request.node_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": request.name,
            "namespace": request.namespace,
            "labels": labels,
            "ownerReferences": [request.owner],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": DEADLINE_SECONDS[request.kind],
            "ttlSecondsAfterFinished": TTL_SECONDS[request.kind],
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
