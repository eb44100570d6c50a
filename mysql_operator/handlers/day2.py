"""Day-2 glue: scaling, rolling restarts, seeding and live configuration, around the topology pass.

The topology loop (handlers/topology.py) asks `topology_options` what to pass to the pass and calls
`after_topology` with its outcome: the StatefulSet's replicas follow spec.instances once the primary
is off the ordinals being removed, and pods on an old revision are deleted in the rollout's order.
What one cluster needs between passes (its background seeds, the primary a rollout wants) lives
here in memory, keyed by the object's uid; an operator restart only loses a running seed, which the
next pass starts again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.handlers import events
from mysql_operator.kube import Kube, KubeError
from mysql_operator.mysql.variables import dynamic_config
from mysql_operator.resources.statefulset import statefulset_replicas
from mysql_operator.status import VALID
from mysql_operator.topology.reconcile import TopologyResult
from mysql_operator.topology.rollout import (
    Done,
    MovePrimary,
    PodRevision,
    RestartPod,
    Wait,
    next_rollout_step,
)
from mysql_operator.topology.seeding import SeedWorkers

CR = (c.API_GROUP, c.API_VERSION, c.PLURAL)
REVISION_LABEL = "controller-revision-hash"
log = logging.getLogger(__name__)


@dataclass
class ClusterDay2:
    """What the operator remembers about one cluster between passes."""

    seeds: SeedWorkers = field(default_factory=SeedWorkers)
    move_primary_to: int | None = None
    last_wait: str = ""


_CLUSTERS: dict[str, ClusterDay2] = {}
_LOCK = threading.Lock()


def state_for(uid: str) -> ClusterDay2:
    with _LOCK:
        return _CLUSTERS.setdefault(uid, ClusterDay2())


def spec_accepted(conditions: Sequence[Mapping[str, Any]], generation: Any) -> bool:
    """Whether the reconcile handler accepted this generation of the spec (a refused change, such as
    a downgrade, must not scale or roll anything)."""
    for cond in conditions:
        if cond.get("type") == VALID:
            return cond.get("status") == "True" and cond.get("observedGeneration") == generation
    return False


def topology_options(spec: MysqlClusterSpec, state: ClusterDay2, accepted: bool) -> dict[str, Any]:
    """The day-2 keyword arguments of reconcile_topology."""
    options: dict[str, Any] = {
        "seed_new_instances": True,
        "auto_reseed": spec.replication.auto_reseed,
        "seeds": state.seeds,
    }
    if accepted:
        options.update(
            desired_instances=spec.instances,
            move_primary_to=state.move_primary_to,
            live_config=dynamic_config(spec.flavor, spec.mysql_config),
        )
    return options


def pod_revisions(pods: Sequence[Mapping[str, Any]]) -> list[PodRevision]:
    revisions = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        revisions.append(PodRevision(
            ordinal=c.ordinal_of_pod(meta["name"]),
            name=meta["name"],
            uid=str(meta.get("uid") or ""),
            revision=str((meta.get("labels") or {}).get(REVISION_LABEL) or ""),
            terminating=bool(meta.get("deletionTimestamp")),
            pod_ready=any(cond.get("type") == "Ready" and cond.get("status") == "True"
                          for cond in (pod.get("status") or {}).get("conditions") or []),
        ))
    return revisions


def after_topology(
    kube: Kube,
    body: kopf.Body,
    spec: MysqlClusterSpec,
    pods: Sequence[Mapping[str, Any]],
    statefulset: Mapping[str, Any] | None,
    result: TopologyResult,
    state: ClusterDay2,
    logger: logging.Logger,
) -> None:
    """Scale the StatefulSet down once the primary is safe, and take the next rollout step."""
    if statefulset is None:
        return
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    current = int((statefulset.get("spec") or {}).get("replicas") or 0)
    if result.primary is not None:
        wanted = statefulset_replicas(spec, result.primary)
        # More pods only once the primary serves: a new, empty instance must never be the only
        # reachable one while the primary starts (after a physical restore, instance 0 recovers).
        serving = any(i.ordinal == result.primary and i.ready for i in result.instances)
        if wanted < current or (wanted > current and serving):
            try:
                kube.merge_patch("apps/v1", "StatefulSet", namespace, c.statefulset_name(name),
                                 {"spec": {"replicas": wanted}})
            except KubeError as error:
                logger.warning("could not scale StatefulSet %s: %s", name, error)
            else:
                events.info(body, reason="Scaled", message=f"StatefulSet replicas {current} -> {wanted} "
                                                            f"(primary is instance {result.primary})")
    step = next_rollout_step(
        pod_revisions(pods),
        str((statefulset.get("status") or {}).get("updateRevision") or ""),
        spec.instances,
        result.primary,
        {inst.ordinal: inst.ready for inst in result.instances},
    )
    if isinstance(step, Done):
        state.move_primary_to, state.last_wait = None, ""
    elif isinstance(step, Wait):
        if step.reason != state.last_wait:
            logger.info("rollout: %s", step.reason)
        state.last_wait = step.reason
    elif isinstance(step, MovePrimary):
        if state.move_primary_to != step.ordinal:
            events.info(body, reason="RolloutSwitchover",
                        message=f"switching over to instance {step.ordinal}: {step.reason}")
        state.move_primary_to = step.ordinal
    elif isinstance(step, RestartPod):
        try:
            deleted = kube.delete("v1", "Pod", namespace, step.name, uid=step.uid)
        except KubeError as error:
            logger.warning("could not restart pod %s: %s", step.name, error)
            return
        if deleted:
            events.info(body, reason="RollingRestart", message=f"restarting {step.name}: {step.reason}")


@kopf.on.delete(*CR, optional=True)
def forget(meta: kopf.Meta, **_: Any) -> None:
    """Drop what was remembered about a deleted cluster (its seeds stop with their servers)."""
    with _LOCK:
        state = _CLUSTERS.pop(str(meta.get("uid")), None)
    if state is not None:
        state.seeds.shutdown()
