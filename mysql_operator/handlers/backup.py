"""kopf handlers for backups: one MysqlBackup -> one Job, followed to its end; the schedule, the
retention and the binlog archiving of each MysqlCluster with a `backup` section.

Every decision is a small pure function (`choose_instance`, `backup_storage`, `retention_due`, ...);
the handlers only read objects, create Jobs and write status. A Job's result comes back through the
termination message of its container (handlers/jobs.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from mysql_operator import conventions as c
from mysql_operator import metrics
from mysql_operator.api.backup import (
    BACKUP_KIND,
    BACKUP_PLURAL,
    BackupMethod,
    BackupPhase,
    BackupStorage,
    MysqlBackupSpec,
)
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.backup.cron import is_due
from mysql_operator.handlers import events
from mysql_operator.handlers.jobs import FAILED, RUNNING, SUCCEEDED, read_job
from mysql_operator.handlers.suspend import is_suspended
from mysql_operator.kube import Kube, KubeError
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.session import (
    READ_ONLY_REFUSAL,
    Login,
    MysqlError,
    SqlError,
    Timeouts,
    open_session,
)
from mysql_operator.mysql.users import ensure_backup_user, has_physical_backup_grant
from mysql_operator.resources.backup_job import (
    LABEL_BACKUP,
    LABEL_CLUSTER,
    DatabaseLogin,
    JobKind,
    JobRequest,
    archive_args,
    backup_args,
    build_job,
    job_name,
    owner_reference,
    retention_args,
)
from mysql_operator.resources.credentials import decode_secret_data, new_password
from mysql_operator.resources.physical_jobs import mariadb_backup, mysql_backup
from mysql_operator.resources.statefulset import credentials_secret
from mysql_operator.tls.manifests import server_secret_name

CLUSTER_CR = (c.API_GROUP, c.API_VERSION, c.PLURAL)
BACKUP_CR = (c.API_GROUP, c.API_VERSION, BACKUP_PLURAL)
API_VERSION = f"{c.API_GROUP}/{c.API_VERSION}"
LABEL_SCHEDULED = f"{c.API_GROUP}/scheduled"
FOLLOW_SECONDS = 3.0
SCHEDULE_SECONDS = 5.0
TERMINAL = (BackupPhase.COMPLETED.value, BackupPhase.FAILED.value)
log = logging.getLogger(__name__)


class BackupNotPossible(Exception):
    """This backup can never be taken as specified (the message says why)."""


class NotYet(Exception):
    """This backup cannot start yet (the message says what it waits for)."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- pure decisions -------------------------------------------------------------------------------


def choose_instance(
    instances: Sequence[Mapping[str, Any]], primary: str | None, preferred: str | None = None
) -> str | None:
    """The pod to back up: a ready replica (the preferred one, which holds the archived binlog chain,
    else the lowest ordinal); the primary only when no replica is ready; None when nothing is ready."""
    replicas = sorted(
        (str(i["name"]) for i in instances if i.get("role") == c.Role.REPLICA.value and i.get("ready")),
        key=c.ordinal_of_pod,
    )
    if preferred in replicas:
        return preferred
    if replicas:
        return replicas[0]
    if primary and any(i.get("name") == primary and i.get("ready") for i in instances):
        return primary
    return None


def backup_storage(backup: MysqlBackupSpec, cluster: MysqlClusterSpec) -> BackupStorage:
    """The MysqlBackup's own storage, else the cluster's backup.storage."""
    if backup.storage is not None:
        return backup.storage
    if cluster.backup is not None:
        return cluster.backup.storage
    raise BackupNotPossible(
        "no storage: set spec.storage of the MysqlBackup or spec.backup.storage of MysqlCluster "
        + backup.cluster
    )


def backup_method(backup: MysqlBackupSpec, cluster: MysqlClusterSpec) -> BackupMethod:
    """The MysqlBackup's own method, else the cluster's backup.method, else logical (pure)."""
    if backup.method is not None:
        return backup.method
    if cluster.backup is not None:
        return cluster.backup.method
    return BackupMethod.LOGICAL


def scheduled_backup_name(cluster: str, at: datetime) -> str:
    return f"{cluster[:230]}-{at.strftime('%Y%m%d%H%M%S')}"


def completed(backups: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Completed MysqlBackups, oldest first (by completion time)."""
    done = [b for b in backups if (b.get("status") or {}).get("phase") == BackupPhase.COMPLETED.value]
    return sorted(done, key=lambda b: str((b.get("status") or {}).get("completionTime") or ""))


def retention_due(
    scheduled: Sequence[Mapping[str, Any]], keep: int, retained_after: str | None
) -> str | None:
    """The newest complete scheduled backup when retention should run after it (more than `keep`
    complete, and retention has not yet run since it completed), else None."""
    done = completed(scheduled)
    if len(done) <= keep:
        return None
    newest = str(done[-1]["metadata"]["name"])
    return None if newest == retained_after else newest


def backups_restores_read(clusters: Sequence[Mapping[str, Any]]) -> list[str]:
    """The MysqlBackups that restores of these MysqlClusters may still read (pure): retention spares
    them, else a restore whose Job has not yet read its backup (instance 0 still starting) or is
    replaying its binlogs finds it gone. A restore ends Completed or Failed (handlers/restore.py)."""
    ended = (BackupPhase.COMPLETED.value, BackupPhase.FAILED.value)
    names = set()
    for cluster in clusters:
        backup = ((cluster.get("spec") or {}).get("restoreFrom") or {}).get("backup")
        phase = ((cluster.get("status") or {}).get("restore") or {}).get("phase")
        if backup and phase not in ended and not (cluster.get("metadata") or {}).get("deletionTimestamp"):
            names.add(str(backup))
    return sorted(names)


def binlog_source(backups: Sequence[Mapping[str, Any]], storage: BackupStorage) -> str | None:
    """The instance whose binlogs are archived: where the newest complete backup in the cluster's
    storage was taken (a point-in-time restore replays that instance's binlogs from the dump on)."""
    wire = storage.wire()
    for backup in reversed(completed(backups)):
        status = backup.get("status") or {}
        if status.get("storage") == wire and status.get("instance"):
            return str(status["instance"])
    return None


# ---- acting -----------------------------------------------------------------------------------------


def _kube(memo: kopf.Memo) -> Kube:
    kube: Kube = memo.kube
    return kube


def job_image(memo: kopf.Memo) -> str:
    settings = getattr(memo, "settings", None)
    return str(getattr(settings, "job_image", "mysql-operator:latest"))


def _cluster(kube: Kube, namespace: str, name: str) -> tuple[dict[str, Any], MysqlClusterSpec]:
    body = kube.get(API_VERSION, c.KIND, namespace, name)
    if body is None:
        raise NotYet(f"MysqlCluster {name} does not exist (yet)")
    if is_suspended(body.get("spec") or {}):
        raise NotYet(f"MysqlCluster {name} is suspended (spec.suspend)")
    try:
        return body, MysqlClusterSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        raise NotYet(f"MysqlCluster {name} has an invalid spec: {str(error).splitlines()[0]}") from None


def backup_password(kube: Kube, namespace: str, cluster: str, spec: MysqlClusterSpec) -> tuple[str, str]:
    """(Secret name, backup password); a generated Secret gets the key added the first time."""
    secret_name = credentials_secret(spec, cluster)
    secret = kube.get("v1", "Secret", namespace, secret_name)
    if secret is None:
        raise NotYet(f"credentials Secret {secret_name} does not exist (yet)")
    data = decode_secret_data(secret.get("data"))
    if not data.get(c.KEY_BACKUP_PASSWORD):
        if spec.credentials.secret_name:
            raise BackupNotPossible(f"Secret {secret_name} has no key {c.KEY_BACKUP_PASSWORD}: add one")
        password = new_password()
        kube.merge_patch(
            "v1", "Secret", namespace, secret_name, {"stringData": {c.KEY_BACKUP_PASSWORD: password}}
        )
        data[c.KEY_BACKUP_PASSWORD] = password
    return secret_name, data[c.KEY_BACKUP_PASSWORD]


def _pod_ip(kube: Kube, namespace: str, pod_name: str) -> str:
    pod = kube.get("v1", "Pod", namespace, pod_name)
    host = ((pod or {}).get("status") or {}).get("podIP")
    if not host:
        raise NotYet(f"instance {pod_name} has no IP")
    return str(host)


def _pod_node(kube: Kube, namespace: str, pod_name: str) -> str:
    pod = kube.get("v1", "Pod", namespace, pod_name)
    node = ((pod or {}).get("spec") or {}).get("nodeName")
    if not node:
        raise NotYet(f"instance {pod_name} is not on a node")
    return str(node)


# MySQL answers a write refused by (super_)read_only with ER_OPTION_PREVENTS_STATEMENT.


def instance_login(
    kube: Kube,
    namespace: str,
    cluster: str,
    spec: MysqlClusterSpec,
    pod_name: str,
    primary: str | None = None,
    physical: bool = False,
) -> DatabaseLogin:
    """The backup user's login on `pod_name`, made sure to exist there (`physical`: with the
    privilege a physical backup needs, which users made by earlier versions lack).

    Made as the operator's user, unlogged, on that instance; where the instance refuses it (a MySQL
    replica under super_read_only), made logged on `primary` so it replicates, and the caller retries
    later."""
    host = _pod_ip(kube, namespace, pod_name)
    secret_name, password = backup_password(kube, namespace, cluster, spec)
    login = DatabaseLogin(host, pod_name, c.BACKUP_USER, secret_name, c.KEY_BACKUP_PASSWORD)
    try:
        with open_session(
            host, Login(c.BACKUP_USER, password), timeouts=Timeouts(), secrets=(password,)
        ) as session:
            if not physical or has_physical_backup_grant(session, spec.flavor):
                return login  # already there with this password and grants: nothing to write
    except MysqlError:
        pass
    secret = kube.get("v1", "Secret", namespace, secret_name) or {}
    # The operator's user (root is local to its pod only).
    admin_password = decode_secret_data(secret.get("data")).get(c.KEY_OPERATOR_PASSWORD, "")
    admin = Login(c.OPERATOR_USER, admin_password)
    dialect = dialect_for(spec.flavor)
    try:
        with open_session(
            host, admin, timeouts=Timeouts(), secrets=(password, admin.password)
        ) as session:
            ensure_backup_user(session, dialect, password)
        return login
    except SqlError as error:
        if error.code != READ_ONLY_REFUSAL or not primary or primary == pod_name:
            raise NotYet(f"cannot prepare the backup user on {pod_name}: {error}") from None
    except MysqlError as error:
        raise NotYet(f"cannot prepare the backup user on {pod_name}: {error}") from None
    try:
        with open_session(
            _pod_ip(kube, namespace, primary), admin, timeouts=Timeouts(),
            secrets=(password, admin.password),
        ) as session:
            ensure_backup_user(session, dialect, password, logged=True)
    except MysqlError as error:
        raise NotYet(f"cannot prepare the backup user on the primary {primary}: {error}") from None
    raise NotYet(f"backup user made on the primary {primary}; waiting for it to replicate to {pod_name}")


def _start_backup(
    kube: Kube, image: str, body: kopf.Body, namespace: str, patch: kopf.Patch, logger: logging.Logger
) -> None:
    meta = body["metadata"]
    name = str(meta["name"])
    try:
        spec = MysqlBackupSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as error:
        raise BackupNotPossible(f"invalid spec: {str(error).splitlines()[0]}") from None
    cluster_body, cluster_spec = _cluster(kube, namespace, spec.cluster)
    storage = backup_storage(spec, cluster_spec)
    cluster_status = cluster_body.get("status") or {}
    preferred = (cluster_status.get("backup") or {}).get("binlogSource")
    pod = choose_instance(cluster_status.get("instances") or [], cluster_status.get("primary"), preferred)
    if pod is None:
        raise NotYet(f"MysqlCluster {spec.cluster} has no ready instance to back up")
    method = backup_method(spec, cluster_spec)
    login = instance_login(kube, namespace, spec.cluster, cluster_spec, pod, cluster_status.get("primary"),
                           physical=method == BackupMethod.PHYSICAL)
    job = job_name(name, "backup")
    request = JobRequest(
        kind=JobKind.BACKUP,
        name=job,
        namespace=namespace,
        cluster=spec.cluster,
        flavor=cluster_spec.flavor,
        image=image,
        args=backup_args(spec.cluster, name, binlog_source=pod),
        storage=storage,
        owner=owner_reference(API_VERSION, BACKUP_KIND, name, str(meta["uid"])),
        login=login,
        labels={LABEL_BACKUP: name[:63]},
        tls_secret=server_secret_name(cluster_spec, spec.cluster),
    )
    if method == BackupMethod.PHYSICAL:
        if cluster_spec.flavor == c.Flavor.MARIADB:
            node = _pod_node(kube, namespace, pod)
            request = mariadb_backup(request, c.ordinal_of_pod(pod), node)
        else:
            request = mysql_backup(request, cluster_spec)
    kube.create_if_absent(build_job(request))
    patch.meta.labels[LABEL_CLUSTER] = spec.cluster
    patch.status.update(
        {
            "phase": BackupPhase.RUNNING.value,
            "startTime": now_iso(),
            "instance": pod,
            "storage": storage.wire(),
            "job": job,
            "method": method.value,
            "message": f"Job {job} backs up instance {pod} ({method.value})",
        }
    )
    events.info(body, reason="BackupStarted",
                message=f"Job {job} backs up {spec.cluster} from instance {pod}")
    logger.info("backup %s: Job %s on %s", name, job, pod)


def _follow_backup(
    kube: Kube, body: kopf.Body, status: kopf.Status, namespace: str, patch: kopf.Patch
) -> None:
    job = str(status.get("job") or "")
    outcome = read_job(kube, namespace, job) if job else None
    name = str(body["metadata"]["name"])
    if outcome is None:
        _fail(body, patch, f"the backup Job {job or '(none)'} disappeared before it finished")
        return
    if outcome.state == RUNNING:
        return
    result = outcome.result
    if outcome.state == SUCCEEDED and result.get("result") == "Completed":
        fields = dict(result.get("status") or {})
        patch.status.update({**fields, "phase": BackupPhase.COMPLETED.value})
        events.info(
            body,
            reason="BackupCompleted",
            message=f"{fields.get('sizeHuman', '?')} at {fields.get('location', '?')}",
        )
        finished = fields.get("completionTime")
        if finished:
            spec = body.get("spec") or {}
            metrics.LAST_BACKUP.labels(namespace, str(spec.get("cluster"))).set(
                parse_time(str(finished)).timestamp()
            )
        return
    reason = outcome.message if outcome.state == FAILED else "the Job succeeded without a backup result"
    _fail(body, patch, reason, outcome.finished)
    log.info("backup %s failed: %s", name, reason)


def _fail(body: kopf.Body, patch: kopf.Patch, message: str, finished: str | None = None) -> None:
    patch.status.update(
        {"phase": BackupPhase.FAILED.value, "message": message, "completionTime": finished or now_iso()}
    )
    kopf.warn(body, reason="BackupFailed", message=message)


def _not_terminal(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL


@kopf.timer(*BACKUP_CR, interval=FOLLOW_SECONDS, initial_delay=0.5, when=_not_terminal)  # type: ignore[arg-type]
def backup(
    body: kopf.Body,
    status: kopf.Status,
    meta: kopf.Meta,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger,
    **_: Any,
) -> None:
    """Drive one MysqlBackup: Pending -> (Job created) Running -> Completed | Failed."""
    if meta.get("deletionTimestamp"):
        return
    kube = _kube(memo)
    ns = str(namespace)
    try:
        if status.get("phase") == BackupPhase.RUNNING.value:
            _follow_backup(kube, body, status, ns, patch)
        else:
            _start_backup(kube, job_image(memo), body, ns, patch, logger)
    except BackupNotPossible as error:
        _fail(body, patch, str(error))
    except NotYet as error:
        if status.get("message") != str(error) or status.get("phase") != BackupPhase.PENDING.value:
            patch.status.update({"phase": BackupPhase.PENDING.value, "message": str(error)})
    except KubeError as error:
        raise kopf.TemporaryError(str(error), delay=5) from None


# ---- the schedule, retention and binlog archiving of a cluster -----------------------------------------


def _has_backup_section(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("backup"))


def _cluster_owner(meta: kopf.Meta) -> dict[str, Any]:
    return owner_reference(API_VERSION, c.KIND, str(meta["name"]), str(meta["uid"]))


def _follow_side_job(
    kube: Kube, body: kopf.Body, namespace: str, state: dict[str, Any], key: str
) -> dict[str, Any] | None:
    """Follow the archive or retention Job named in state[key]; its result once, when it ended."""
    job = state.get(key)
    if not job:
        return None
    outcome = read_job(kube, namespace, str(job))
    if outcome is not None and outcome.state == RUNNING:
        return None
    state[key] = None
    if outcome is None or outcome.state == FAILED:
        message = outcome.message if outcome else f"Job {job} disappeared"
        kopf.warn(
            body, reason="BinlogArchiveFailed" if key == "archiveJob" else "RetentionFailed", message=message
        )
        return {"ok": False, "message": message, "started": outcome.started if outcome else None}
    return {"ok": True, "result": outcome.result, "started": outcome.started}


@kopf.index(*BACKUP_CR)
async def backups_by_cluster(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]] | None:
    """(namespace, cluster) -> its MysqlBackups, from the watch stream: the schedule, checked every
    few seconds, reads them here instead of listing them from the API server each time."""
    cluster = labels.get(LABEL_CLUSTER)
    if cluster is None:
        return None
    return {(str(namespace), cluster): {"metadata": dict(body.metadata), "spec": dict(body.spec),
                                        "status": dict(body.status)}}


@kopf.timer(*CLUSTER_CR, interval=SCHEDULE_SECONDS, initial_delay=2.0, when=_has_backup_section)  # type: ignore[arg-type]
def backup_schedule(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger,
    backups_by_cluster: kopf.Index[tuple[str, str], dict[str, Any]],
    **_: Any,
) -> None:
    """Scheduled backups (MysqlBackup objects when due), retention after each, binlog archiving."""
    if meta.get("deletionTimestamp") or is_suspended(spec):
        return
    try:
        cluster_spec = MysqlClusterSpec.model_validate(dict(spec))
    except ValidationError:
        return  # reported by the reconcile handler
    assert cluster_spec.backup is not None
    schedule = cluster_spec.backup
    kube = _kube(memo)
    ns, name = str(namespace), str(meta["name"])
    state: dict[str, Any] = dict(status.get("backup") or {})
    before = dict(state)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        backups = [dict(b) for b in backups_by_cluster.get((ns, name), [])]
        # 1. the schedule: a MysqlBackup when a fire time has passed and there is something to back up
        last = state.get("lastScheduleTime")
        created = parse_time(str(meta.get("creationTimestamp") or now_iso()))
        due = is_due(schedule.schedule, parse_time(last) if last else None, now, created, schedule.time_zone)
        if due and status.get("primary"):
            backup_name = scheduled_backup_name(name, now)
            kube.create_if_absent(
                {
                    "apiVersion": API_VERSION,
                    "kind": BACKUP_KIND,
                    "metadata": {
                        "name": backup_name,
                        "namespace": ns,
                        "labels": {LABEL_CLUSTER: name, LABEL_SCHEDULED: "true"},
                    },
                    "spec": {"cluster": name},
                }
            )
            state["lastScheduleTime"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            state["lastScheduledBackup"] = backup_name
            events.info(body, reason="BackupScheduled", message=f"MysqlBackup {backup_name} created")
        # 2. retention, once after each scheduled backup completes; the engine picks what goes
        finished = _follow_side_job(kube, body, ns, state, "retentionJob")
        if finished is not None:
            deleted = list((finished.get("result") or {}).get("deleted") or [])
            for old in deleted:
                kube.delete(API_VERSION, BACKUP_KIND, ns, str(old))
            kept = len((finished.get("result") or {}).get("kept") or [])
            state["lastRetention"] = (
                f"kept {kept}, deleted {', '.join(deleted) or 'none'}"
                if finished["ok"]
                else f"failed: {finished['message']}"
            )
            if deleted:
                events.info(body, reason="BackupsPruned", message=f"retention deleted {', '.join(deleted)}")
        scheduled = [b for b in backups if (b["metadata"].get("labels") or {}).get(LABEL_SCHEDULED) == "true"]
        newest = retention_due(scheduled, schedule.retention, state.get("retainedAfter"))
        if newest is not None and not state.get("retentionJob"):
            job = job_name(name, f"retention-{now.strftime('%H%M%S')}")
            kube.create_if_absent(
                build_job(
                    JobRequest(
                        kind=JobKind.RETENTION,
                        name=job,
                        namespace=ns,
                        cluster=name,
                        flavor=cluster_spec.flavor,
                        image=job_image(memo),
                        args=retention_args(
                            schedule.retention,
                            backups_restores_read(kube.list(API_VERSION, c.KIND, ns, {})),
                        ),
                        storage=schedule.storage,
                        owner=_cluster_owner(meta),
                    )
                )
            )
            state["retentionJob"], state["retainedAfter"] = job, newest
        # 3. binlog archiving from the instance the backups come from
        finished = _follow_side_job(kube, body, ns, state, "archiveJob")
        if finished is not None:
            if finished["ok"]:
                result = finished.get("result") or {}
                # every event before the Job started is in a file it closed and copied
                state["lastBinlogArchiveTime"] = finished.get("started")
                state["lastBinlogArchive"] = f"copied {len(result.get('copied') or [])} file(s)"
            else:
                state["lastBinlogArchive"] = f"failed: {finished['message']}"
        source = binlog_source(backups, schedule.storage)
        state["binlogSource"] = source
        last_archive = state.get("lastArchiveAttempt")
        interval_passed = (
            last_archive is None
            or (now - parse_time(str(last_archive))).total_seconds()
            >= schedule.binlog_archive_interval_seconds
        )
        if source and interval_passed and not state.get("archiveJob"):
            try:
                login = instance_login(kube, ns, name, cluster_spec, source, status.get("primary"))
            except (NotYet, BackupNotPossible) as error:
                state["lastBinlogArchive"] = f"waiting: {error}"
            else:
                job = job_name(name, f"binlogs-{now.strftime('%H%M%S')}")
                kube.create_if_absent(
                    build_job(
                        JobRequest(
                            kind=JobKind.ARCHIVE,
                            name=job,
                            namespace=ns,
                            cluster=name,
                            flavor=cluster_spec.flavor,
                            image=job_image(memo),
                            args=archive_args(source),
                            storage=schedule.storage,
                            owner=_cluster_owner(meta),
                            login=login,
                            tls_secret=server_secret_name(cluster_spec, name),
                        )
                    )
                )
                state["archiveJob"] = job
                state["lastArchiveAttempt"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    except KubeError as error:
        raise kopf.TemporaryError(str(error), delay=5) from None
    if state != before:
        patch.status["backup"] = state
