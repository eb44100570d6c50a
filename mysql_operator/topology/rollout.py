"""Rolling restarts (image, version, restart-needing config) as a pure decision over pods and topology.

The StatefulSet uses `updateStrategy: OnDelete`; a pod runs the current template when its
`controller-revision-hash` label equals the StatefulSet's `status.updateRevision`. The order:
replicas first, highest ordinal first, one at a time, each back to Ready (replicating) before the
next; then a switchover to an updated replica; then the old primary, now a replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PodRevision:
    """A pod of the StatefulSet as the rollout sees it."""

    ordinal: int
    name: str
    uid: str
    revision: str
    terminating: bool = False
    pod_ready: bool = True  # the kubelet's Ready condition (Services and the PDB go by it)


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class RestartPod:
    """Delete the pod; the StatefulSet controller recreates it from the current template."""

    ordinal: int
    name: str
    uid: str
    reason: str


@dataclass(frozen=True)
class MovePrimary:
    """Switch over to `ordinal` (an updated, ready replica) before the old primary restarts."""

    ordinal: int
    reason: str


@dataclass(frozen=True)
class Done:
    pass


RolloutStep = Wait | RestartPod | MovePrimary | Done


def next_rollout_step(
    pods: Sequence[PodRevision],
    update_revision: str,
    instances: int,
    primary: int | None,
    ready: Mapping[int, bool],
) -> RolloutStep:
    """The next step of the rollout given the pods, the wanted revision, the primary and which
    instances the topology found ready (a replica: replicating within the lag limit)."""
    if not update_revision:
        return Wait("the StatefulSet has no update revision yet")
    staying = {p.ordinal: p for p in pods if p.ordinal < instances}
    # Ready means both: replicating per the topology, and Ready per the kubelet.
    ready = {o: bool(ready.get(o)) and o in staying and staying[o].pod_ready for o in range(instances)}
    outdated = sorted((p for p in staying.values() if p.revision != update_revision),
                      key=lambda p: -p.ordinal)
    if not outdated:
        return Done()
    missing = [o for o in range(instances) if o not in staying]
    terminating = [p.name for p in staying.values() if p.terminating]
    if missing or terminating:
        return Wait(f"waiting for pods to come back: {', '.join(terminating) or missing}")
    if primary is None:
        return Wait("no primary")
    replicas = [p for p in outdated if p.ordinal != primary]
    not_ready = [o for o in range(instances) if not ready.get(o)]
    broken_outdated = [p for p in replicas if p.ordinal in not_ready]
    if any(o not in {p.ordinal for p in broken_outdated} for o in not_ready):
        return Wait(f"waiting for instances {', '.join(str(o) for o in not_ready)} to be ready")
    if replicas:
        # An outdated replica that is not ready serves nothing; it goes first.
        pod = (broken_outdated or replicas)[0]
        return RestartPod(pod.ordinal, pod.name, pod.uid, f"replica {pod.name} runs revision {pod.revision}")
    updated = sorted(o for o in range(instances) if o != primary and ready.get(o))
    if updated:
        return MovePrimary(updated[0], f"primary {primary} is the last instance on the old revision")
    if instances == 1:
        pod = outdated[0]
        return RestartPod(pod.ordinal, pod.name, pod.uid, "single instance: restarted in place")
    return Wait("no updated replica ready to take over the primary")
