"""Restore at creation: a MysqlCluster with `restoreFrom` gets its data before it opens for writes.

The topology loop (handlers/topology.py) stays away from a cluster whose restore has not completed.
Meanwhile this timer waits for instance 0, resolves the backup (a MysqlBackup by name, or a location
in a storage), runs one restore Job as root against instance 0 and reports each step in
`status.restore` and the `Restored` condition. When the Job succeeds, instance 0 is remembered as the
primary, so the topology loop promotes it and seeds the replicas from it. A missing or bad backup
stops here for good (RestoreFailed, one Warning Event): nothing else is changed, nothing retried.

A physical backup is restored before instance 0 ever starts: the StatefulSet is held at zero pods
(`restore_cap`, read by the reconcile handler) until the restore's method is known; for a physical
one this timer makes instance 0's volume itself and runs the Job of resources/physical_jobs.py on
it, then lets instance 0 alone start: an empty instance 1 starting faster than the restored one
would otherwise be the only reachable candidate while instance 0 recovers. The replicas follow
once instance 0 is the primary (handlers/day2.py scales to spec.instances). A logical restore
releases every pod at once and loads into the running instance 0 as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from mysql_operator import conventions as c
from mysql_operator.api.backup import BACKUP_KIND, BackupMethod, BackupPhase, BackupStorage, RestoreFrom
from mysql_operator.api.models import MysqlClusterSpec, Phase
from mysql_operator.handlers import events
from mysql_operator.handlers.backup import API_VERSION, job_image, now_iso
from mysql_operator.handlers.jobs import RUNNING, SUCCEEDED, read_job
from mysql_operator.handlers.suspend import is_suspended
from mysql_operator.kube import Kube, KubeError
from mysql_operator.resources.backup_job import (
    DatabaseLogin,
    JobKind,
    JobRequest,
    build_job,
    job_name,
    owner_reference,
    restore_args,
)
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.physical_jobs import restore_job
from mysql_operator.resources.statefulset import (
    build_volume_claim_template,
    credentials_secret,
    statefulset_replicas,
)
from mysql_operator.status import CREDENTIALS_READY, condition_is, set_condition
from mysql_operator.tls.manifests import server_secret_name
from mysql_operator.topology.reconcile import TopologyMemory

CR = (c.API_GROUP, c.API_VERSION, c.PLURAL)
RESTORED = "Restored"
INTERVAL_SECONDS = 3.0
# status.restore.phase takes the names of a MysqlBackup's phases (handlers/backup.py reads them too)
COMPLETED = BackupPhase.COMPLETED.value
FAILED_PHASE = BackupPhase.FAILED.value
RUNNING_PHASE = BackupPhase.RUNNING.value
STARTING = "StartingInstance"  # a physical restore's data is in place; instance 0 starts on it
PENDING_PHASE = BackupPhase.PENDING.value

# exit code of the restore command -> condition reason
_REASONS = {3: "BackupNotUsable", 4: "RestoreRefused", 5: "RestorePartial"}


class RestoreImpossible(Exception):
    """The restore can never succeed as specified; `reason` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RestoreSource:
    location: str
    storage: BackupStorage
    label: str  # how to name it to people
    method: BackupMethod = BackupMethod.LOGICAL


def restore_cap(spec: MysqlClusterSpec, status: Mapping[str, Any], primary: int | None) -> int | None:
    """At most how many pods the StatefulSet may run for the restore (pure; None: no limit): none
    while a restore is pending whose method is physical or not known yet (no Job started: a cluster
    restoring before this rule existed keeps its pods); instance 0 alone after a physical restore
    until an instance is labelled primary."""
    if spec.restore_from is None:
        return None
    state = status.get("restore") or {}
    physical = state.get("method") == BackupMethod.PHYSICAL.value
    if state.get("phase") == COMPLETED or (physical and state.get("step") == STARTING):
        return 1 if physical and primary is None else None
    if physical or (not state.get("method") and not state.get("job")):
        return 0
    return None


def restore_finished(spec: MysqlClusterSpec, status: Mapping[str, Any]) -> bool:
    """Whether the topology loop may act: no restore asked for, or it completed."""
    if spec.restore_from is None:
        return True
    return bool((status.get("restore") or {}).get("phase") == COMPLETED)


def resolve_source(restore_from: RestoreFrom, backup: Mapping[str, Any] | None) -> RestoreSource | None:
    """Where the backup is (pure). None while the named MysqlBackup is still being taken."""
    if restore_from.location is not None:
        assert restore_from.storage is not None
        return RestoreSource(restore_from.location, restore_from.storage, restore_from.location,
                             restore_from.method or BackupMethod.LOGICAL)
    name = str(restore_from.backup)
    if backup is None:
        raise RestoreImpossible("BackupNotFound", f"MysqlBackup {name} does not exist")
    status = backup.get("status") or {}
    phase = status.get("phase")
    if phase == BackupPhase.FAILED.value:
        raise RestoreImpossible(
            "BackupFailed", f"MysqlBackup {name} failed: {status.get('message') or 'no reason given'}"
        )
    if phase != BackupPhase.COMPLETED.value:
        return None
    if not status.get("location") or not status.get("storage"):
        raise RestoreImpossible("BackupNotUsable", f"MysqlBackup {name} does not say where it is stored")
    try:
        storage = BackupStorage.model_validate(status["storage"])
    except ValidationError as error:
        raise RestoreImpossible(
            "BackupNotUsable", f"MysqlBackup {name}: unusable storage: {str(error).splitlines()[0]}"
        ) from None
    try:
        method = BackupMethod(status.get("method") or BackupMethod.LOGICAL.value)
    except ValueError:
        raise RestoreImpossible("BackupNotUsable", f"MysqlBackup {name}: unknown method "
                                f"{status.get('method')!r}") from None
    return RestoreSource(str(status["location"]), storage, f"MysqlBackup {name}", method)


def _instance_zero(kube: Kube, namespace: str, cluster: str) -> str | None:
    """The IP of instance 0 once its server answers its readiness probe."""
    pod = kube.get("v1", "Pod", namespace, c.pod_name(cluster, 0))
    status = (pod or {}).get("status") or {}
    ready = all(s.get("ready") for s in status.get("containerStatuses") or [{}])
    if not status.get("podIP") or not ready or (pod or {}).get("metadata", {}).get("deletionTimestamp"):
        return None
    return str(status["podIP"])


def _start_job(
    kube: Kube,
    memo: kopf.Memo,
    meta: kopf.Meta,
    namespace: str,
    spec: MysqlClusterSpec,
    source: RestoreSource,
    host: str,
) -> str:
    """Create the restore Job (once): as the operator's user (root is local only), into instance 0
    (`host`: its address; a physical restore's server is the Job's own, at its pod's address)."""
    assert spec.restore_from is not None
    name = str(meta["name"])
    job = job_name(name, "restore")
    login = DatabaseLogin(
        host, c.pod_name(name, 0), c.OPERATOR_USER, credentials_secret(spec, name), c.KEY_OPERATOR_PASSWORD
    )
    request = JobRequest(
        kind=JobKind.RESTORE,
        name=job,
        namespace=namespace,
        cluster=name,
        flavor=spec.flavor,
        image=job_image(memo),
        args=restore_args(source.location, spec.restore_from.point_in_time),
        storage=source.storage,
        owner=owner_reference(API_VERSION, c.KIND, name, str(meta["uid"])),
        login=login,
        tls_secret=server_secret_name(spec, name),
    )
    if source.method == BackupMethod.PHYSICAL:
        kube.create_if_absent(instance_zero_claim(spec, namespace, name))
        ref = ClusterRef(name=name, namespace=namespace, uid=str(meta["uid"]))
        request = restore_job(request, ref, spec, source.location, spec.restore_from.point_in_time)
    kube.create_if_absent(build_job(request))
    return job


def instance_zero_claim(spec: MysqlClusterSpec, namespace: str, cluster: str) -> dict[str, Any]:
    """Instance 0's data volume, made before its pod (pure): the StatefulSet adopts a claim of the
    name it would give; a physical restore fills it first."""
    template = build_volume_claim_template(spec)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # the labels of every owned object (the chart's admission policy lets the operator write only
        # objects labelled managed-by it)
        "metadata": {"name": c.data_claim_name(cluster, 0), "namespace": namespace,
                     "labels": c.common_labels(cluster)},
        "spec": template["spec"],
    }


def release_instances(
    kube: Kube, namespace: str, cluster: str, spec: MysqlClusterSpec, cap: int | None = None
) -> bool:
    """Let the StatefulSet start its pods, at most `cap` (it was held while the restore's method was
    unknown or a physical restore ran). False while the StatefulSet does not exist yet."""
    statefulset = kube.get("apps/v1", "StatefulSet", namespace, c.statefulset_name(cluster))
    if statefulset is None:
        return False
    wanted = statefulset_replicas(spec, None, cap)
    if int((statefulset.get("spec") or {}).get("replicas") or 0) < wanted:
        kube.merge_patch("apps/v1", "StatefulSet", namespace, c.statefulset_name(cluster),
                         {"spec": {"replicas": wanted}})
    return True


def _instance_zero_started(
    kube: Kube, namespace: str, cluster: str, spec: MysqlClusterSpec, state: Mapping[str, Any]
) -> bool:
    """After a physical restore's Job: instance 0 alone is let start, and the restore completes only
    once it answers, so the topology loop's first look finds the restored server running (one it
    found unreachable first would be a returning primary with no history to check it against)."""
    if state.get("method") != BackupMethod.PHYSICAL.value:
        return True
    if not release_instances(kube, namespace, cluster, spec, cap=1):
        return False
    return _instance_zero(kube, namespace, cluster) is not None


def _started(
    state: dict[str, Any], job: str, source: RestoreSource, restore_from: RestoreFrom, pod: str
) -> str:
    """Record a started restore Job in `state`; returns what to tell people."""
    state.update(
        {
            "job": job,
            "source": source.label,
            "location": source.location,
            "pointInTime": restore_from.point_in_time,
            "startTime": now_iso(),
        }
    )
    until = f" up to {restore_from.point_in_time}" if restore_from.point_in_time else ""
    if source.method == BackupMethod.PHYSICAL:
        return f"Job {job} unpacks {source.label}{until} into the volume of {pod}, which starts afterwards"
    return f"Job {job} loads {source.label}{until} into {pod}"


def _not_finished(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    if not spec.get("restoreFrom"):
        return False
    return (status.get("restore") or {}).get("phase") not in (COMPLETED, FAILED_PHASE)


@kopf.timer(*CR, interval=INTERVAL_SECONDS, initial_delay=1.0, when=_not_finished)  # type: ignore[arg-type]
def restore(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger,
    **_: Any,
) -> None:
    """One step of the restore of a new cluster."""
    if meta.get("deletionTimestamp") or is_suspended(spec):
        return
    try:
        cluster_spec = MysqlClusterSpec.model_validate(dict(spec))
    except ValidationError:
        return  # reported by the reconcile handler
    restore_from = cluster_spec.restore_from
    assert restore_from is not None
    conditions = [dict(cond) for cond in (status.get("conditions") or [])]
    if not condition_is(conditions, CREDENTIALS_READY):
        return
    kube: Kube = memo.kube
    ns, name = str(namespace), str(meta["name"])
    generation = meta.get("generation")
    state: dict[str, Any] = dict(status.get("restore") or {})
    before = dict(state)

    condition: list[Any] = []

    def report(phase: str, step: str, message: str, reason: str, ok: bool = False) -> None:
        state.update({"phase": phase, "step": step, "message": message})
        condition[:] = [ok, reason, message]

    try:
        if not state.get("job"):
            backup = None
            if restore_from.backup is not None:
                backup = kube.get(API_VERSION, BACKUP_KIND, ns, restore_from.backup)
            source = resolve_source(restore_from, backup)
            if source is None:
                report(
                    PENDING_PHASE, "WaitingForBackup", f"{restore_from.backup} is not complete yet", "Waiting"
                )
            elif source.method == BackupMethod.PHYSICAL:
                state["method"] = source.method.value
                job = _start_job(kube, memo, meta, ns, cluster_spec, source, "$(POD_IP)")
                message = _started(state, job, source, restore_from, c.pod_name(name, 0))
                report(RUNNING_PHASE, "Restoring", message, "Restoring")
                events.info(body, reason="RestoreStarted", message=message)
            else:
                state["method"] = source.method.value
                release_instances(kube, ns, name, cluster_spec)
                host = _instance_zero(kube, ns, name)
                if host is None:
                    report(
                        PENDING_PHASE,
                        "WaitingForInstance",
                        f"waiting for instance {c.pod_name(name, 0)}",
                        "Waiting",
                    )
                else:
                    job = _start_job(kube, memo, meta, ns, cluster_spec, source, host)
                    message = _started(state, job, source, restore_from, c.pod_name(name, 0))
                    report(RUNNING_PHASE, "Restoring", message, "Restoring")
                    events.info(body, reason="RestoreStarted", message=message)
        else:
            outcome = read_job(kube, ns, str(state["job"]))
            if outcome is None:
                raise RestoreImpossible("RestoreFailed", f"the restore Job {state['job']} disappeared")
            if outcome.state == RUNNING:
                pass
            elif outcome.state == SUCCEEDED and not _instance_zero_started(
                kube, ns, name, cluster_spec, state
            ):
                if state.get("step") != STARTING:
                    waiting = f"the data is restored; waiting for {c.pod_name(name, 0)} to start on it"
                    report(RUNNING_PHASE, STARTING, waiting, "Restoring")
            elif outcome.state == SUCCEEDED:
                replayed = list(outcome.result.get("replayed") or [])
                until = f" to {state.get('pointInTime')}" if state.get("pointInTime") else ""
                message = f"restored {state.get('source')}{until}" + (
                    f", replayed {len(replayed)} binlog file(s)" if replayed else ""
                )
                state["completionTime"] = outcome.finished or now_iso()
                report(COMPLETED, "Done", message, "Restored", ok=True)
                # instance 0 holds the data: the topology loop makes it the primary, replicas follow it
                patch.status["topology"] = TopologyMemory(primary=0).to_dict()
                events.info(body, reason="Restored", message=message)
            else:
                reason = _REASONS.get(int(outcome.exit_code or 0), "RestoreFailed")
                extra = (
                    " Instance 0 holds partial data: delete the cluster and its volumes before retrying."
                    if reason == "RestorePartial"
                    else ""
                )
                raise RestoreImpossible(reason, outcome.message + extra)
    except RestoreImpossible as error:
        message = f"{error.reason}: {error}"
        state["completionTime"] = now_iso()
        report(FAILED_PHASE, "Failed", message, "RestoreFailed")
        kopf.warn(body, reason="RestoreFailed", message=message)
        logger.warning("restore of %s failed: %s", name, message)
    except KubeError as error:
        raise kopf.TemporaryError(str(error), delay=5) from None
    if state != before:
        patch.status["restore"] = state
        if condition:
            ok, reason, message = condition
            patch.status["conditions"] = set_condition(
                conditions, RESTORED, ok, reason, message, generation, now_iso()
            )
            phase = {COMPLETED: Phase.INITIALIZING, FAILED_PHASE: Phase.RESTORE_FAILED}.get(
                str(state.get("phase")), Phase.RESTORING
            )
            patch.status["phase"] = phase.value
