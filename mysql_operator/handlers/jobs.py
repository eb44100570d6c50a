"""Following a backup Job: is it still running, and what did it say (its termination message)?"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mysql_operator.kube import Kube
from mysql_operator.resources.backup_job import CONTAINER_NAME

RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"

# Exit codes of backup/cli.py, as people should read them.
EXIT_MEANINGS = {
    1: "failed",
    2: "bad configuration",
    3: "backup missing or corrupt",
    4: "restore refused",
    5: "restore failed part way",
    137: "killed",
    143: "terminated",
}


@dataclass(frozen=True)
class JobOutcome:
    """Where a Job stands. `result` is the command's JSON result when it wrote one."""

    state: str
    result: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    message: str = ""
    started: str | None = None
    finished: str | None = None


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _terminated(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """How the command ended: the command's container, or an init container that failed (a physical
    restore unpacks in one; the command never starts then)."""
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or "")):
        status = pod.get("status") or {}
        for init in status.get("initContainerStatuses") or []:
            ended = (init.get("state") or {}).get("terminated")
            if ended and ended.get("exitCode") not in (0, None):
                return dict(ended)
        for container in status.get("containerStatuses") or []:
            if container.get("name") == CONTAINER_NAME and "terminated" in (container.get("state") or {}):
                return dict(container["state"]["terminated"])
    return None


def _parse_message(text: str) -> tuple[dict[str, Any], str]:
    """The JSON result the command wrote, or (with a crash) the tail of its log."""
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                return value, ""
        except ValueError:
            pass
    lines = [line for line in text.splitlines() if line.strip()]
    return {}, " | ".join(lines[-3:])[-600:]


def job_outcome(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobOutcome:
    """The outcome of a Job from it and its pods (pure)."""
    status = job.get("status") or {}
    complete = _condition(job, "Complete")
    failed = _condition(job, "Failed")
    terminated = _terminated(pods)
    # A pod with a server beside the command (physical backups and restores) completes when the
    # command stopped that server; the command's own end is the outcome even before that.
    if complete is None and failed is None and terminated is None:
        return JobOutcome(RUNNING, started=status.get("startTime"))
    result, tail = _parse_message(str((terminated or {}).get("message") or ""))
    exit_code = (terminated or {}).get("exitCode")
    if (complete is not None and exit_code in (0, None)) or (failed is None and exit_code == 0):
        return JobOutcome(SUCCEEDED, result, 0, "", status.get("startTime"), status.get("completionTime"))
    if result.get("message"):
        message = f"{result.get('error', 'Error')}: {result['message']}"
    elif exit_code is not None:
        meaning = EXIT_MEANINGS.get(int(exit_code), "failed")
        message = f"the Job's container exited with code {exit_code} ({meaning})"
        if tail:
            message += f"; last output: {tail}"
    else:
        cond = failed or {}
        message = (
            f"the Job failed ({cond.get('reason') or 'unknown reason'}): {cond.get('message') or ''}".strip()
        )
    finished = (failed or {}).get("lastTransitionTime") or (terminated or {}).get("finishedAt")
    return JobOutcome(FAILED, result, exit_code, message, status.get("startTime"), finished)


def read_job(kube: Kube, namespace: str, name: str) -> JobOutcome | None:
    """The outcome of Job `name`, or None when there is no such Job."""
    job = kube.get("batch/v1", "Job", namespace, name)
    if job is None:
        return None
    pods = kube.list("v1", "Pod", namespace, {"job-name": name})
    return job_outcome(job, pods)
