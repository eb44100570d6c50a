"""A node drain of the primary becomes a switchover, never a failover.

`kubectl drain` cordons the node (`spec.unschedulable`), then evicts its pods through the eviction
API, retrying while a PodDisruptionBudget refuses. The pod labelled primary has a budget of its own
that allows no disruption (resources/services.py), so its eviction is refused while it is the primary.
The operator sees the primary's node cordoned and asks for a switchover (the `move_primary_to` input
of the topology pass) to a ready replica on a schedulable node: the old primary is fenced, the new one
promoted, the role label moves, the budget stops covering the old pod, and the drain's next eviction
of it succeeds. Nothing here acts; the decision is a pure function of pods and nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mysql_operator import conventions as c


@dataclass(frozen=True)
class Placement:
    """An instance pod as a drain sees it."""

    ordinal: int
    role: str | None
    ready: bool
    cordoned: bool  # its node is unschedulable (cordoned for a drain)


def placements(pods: Iterable[Mapping[str, Any]], cordoned_nodes: set[str]) -> list[Placement]:
    """Placement of each live instance pod, given the names of the cordoned nodes."""
    found = []
    for pod in pods:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        found.append(Placement(
            ordinal=c.ordinal_of_pod(meta["name"]),
            role=(meta.get("labels") or {}).get(c.LABEL_ROLE),
            ready=any(cond.get("type") == "Ready" and cond.get("status") == "True"
                      for cond in status.get("conditions") or []),
            cordoned=spec.get("nodeName") in cordoned_nodes,
        ))
    return found


def primary_node(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The node of the pod labelled primary (the one whose Node the operator must read), if any."""
    for pod in pods:
        if ((pod.get("metadata") or {}).get("labels") or {}).get(c.LABEL_ROLE) == c.Role.PRIMARY.value:
            node = (pod.get("spec") or {}).get("nodeName")
            return str(node) if node else None
    return None


def drain_switchover_target(pods: Sequence[Placement]) -> int | None:
    """The replica to switch over to because the primary's node is cordoned, or None (no drain of
    the primary, or no ready replica on a schedulable node yet: the budget keeps the primary until
    there is one)."""
    primaries = [p for p in pods if p.role == c.Role.PRIMARY.value]
    if len(primaries) != 1 or not primaries[0].cordoned:
        return None
    candidates = sorted(p.ordinal for p in pods
                        if p.role == c.Role.REPLICA.value and p.ready and not p.cordoned)
    return candidates[0] if candidates else None
