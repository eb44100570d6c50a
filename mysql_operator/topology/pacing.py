"""When the next topology pass runs, and which watched changes call for one now (pure).

The topology loop of a cluster probes its instances over SQL every `PROBE_INTERVAL` seconds; events
start a pass at once: a pod whose container stopped, restarted, lost its readiness or its IP, a
cluster whose spec was accepted. Once the remembered primary stops answering, the loop probes every
`GRACE_PROBE` seconds and runs one pass right at the end of the grace period, so a failover starts
at `primary_unreachable_since + grace` rather than up to a whole interval later.

Never faster than the grace: the decision (topology.decide) compares the time the primary has been
unreachable with the grace period; pacing only chooses when to look, and the pass that ends the
grace is scheduled a hair after it (`GRACE_MARGIN`), so it sees the grace over rather than a few
milliseconds short of it. A primary that answers again before the deadline clears the memory
(topology.memory.remember), and the next outage starts a full grace period again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mysql_operator.conventions import ANNOTATION_FENCED
from mysql_operator.topology.memory import TopologyMemory

PROBE_INTERVAL = 2.0  # seconds between SQL probes of a healthy cluster (no API request)
GRACE_PROBE = 0.25  # seconds between probes while the primary is within its grace period
GRACE_MARGIN = 0.01  # the deciding pass runs this long after the grace ends
BUSY_INTERVAL = 0.5  # an operation in progress (switchover, failover half done) is followed closely


def next_pass_in(memory: TopologyMemory, grace_period: float, now: float) -> float:
    """Seconds until the next pass of a cluster whose last pass left `memory` (at time `now`)."""
    since = memory.primary_unreachable_since
    if since is not None:
        remaining = since + grace_period + GRACE_MARGIN - now
        return max(0.0, min(GRACE_PROBE, remaining))
    if memory.operation is not None:
        return BUSY_INTERVAL
    return PROBE_INTERVAL


def pod_signature(pod: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """What of a pod the topology depends on: where it is, whether it is going, whether its
    containers run and pass their probes. Labels are left out: the topology loop writes the role
    label itself, and its own write must not start another pass."""
    if pod is None:
        return ()
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    containers = tuple(sorted(
        (
            str(cs.get("name")),
            bool(cs.get("ready")),
            int(cs.get("restartCount") or 0),
            tuple(sorted((cs.get("state") or {}).keys())),
        )
        for cs in status.get("containerStatuses") or ()
    ))
    ready = next((str(cond.get("status")) for cond in status.get("conditions") or ()
                  if cond.get("type") == "Ready"), "")
    return (
        meta.get("uid"),
        bool(meta.get("deletionTimestamp")),
        status.get("podIP"),
        status.get("phase"),
        ready,
        containers,
    )


def pod_change_wakes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether a watched pod change (`None` for absent) calls for a topology pass now."""
    return pod_signature(old) != pod_signature(new)


def cluster_signature(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of the MysqlCluster makes its topology loop look again at once: a new generation, a
    newly accepted spec, credentials becoming ready, a restore finishing, the pods a user fenced
    (`kubectl mysql fence`, an annotation). The loop's own status writes (instances, conditions it
    owns, memory) are left out, so they never wake it."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    credentials = next((str(cond.get("status")) for cond in status.get("conditions") or ()
                        if cond.get("type") == "CredentialsReady"), "")
    return (
        meta.get("generation"),
        bool(meta.get("deletionTimestamp")),
        status.get("acceptedSpec"),
        credentials,
        (status.get("restore") or {}).get("phase"),
        (meta.get("annotations") or {}).get(ANNOTATION_FENCED),
    )
