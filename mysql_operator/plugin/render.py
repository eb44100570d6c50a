"""What the kubectl plugin shows and builds, as pure functions of API objects (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mysql_operator import conventions as c
from mysql_operator.handlers.suspend import fenced_pods

FENCED_ANNOTATION = c.ANNOTATION_FENCED


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A kubectl-style table: upper-case headers, columns padded with three spaces."""
    cells = [[str(h).upper() for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "   ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def age(timestamp: str | None, now: datetime) -> str:
    """`5m`, `3h`, `2d` since an RFC 3339 time, as kubectl prints ages."""
    if not timestamp:
        return ""
    seconds = int((now - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def render_status(cluster: Mapping[str, Any], now: datetime | None = None) -> str:
    """`kubectl mysql status`: the cluster, its instances, conditions and role changes."""
    now = now or datetime.now(UTC)
    meta, spec, status = cluster.get("metadata") or {}, cluster.get("spec") or {}, cluster.get("status") or {}
    fenced = fenced_pods(meta)
    summary = [
        ("Cluster", f"{meta.get('namespace')}/{meta.get('name')}"),
        (
            "Flavor",
            f"{spec.get('flavor', 'mysql')} {status.get('version') or spec.get('version') or ''}".strip(),
        ),
        ("Phase", status.get("phase", "Pending")),
        ("Primary", status.get("primary") or "-"),
        ("Ready", status.get("instancesReady") or f"0/{spec.get('instances', '?')}"),
        ("Replication", (spec.get("replication") or {}).get("mode", "async")),
        ("Suspended", "yes (maintenance: the operator changes nothing)" if spec.get("suspend") else "no"),
    ]
    lines = [f"{key + ':':<13}{value}" for key, value in summary]
    instances = [
        (
            inst.get("name"),
            inst.get("role"),
            "yes" if inst.get("ready") else "no",
            "yes" if inst.get("reachable") else "no",
            "" if inst.get("lagSeconds") is None else f"{inst['lagSeconds']:g}s",
            "fenced" if inst.get("name") in fenced else "",
            inst.get("gtid") or "",
            inst.get("message") or "",
        )
        for inst in status.get("instances") or []
    ]
    lines += [
        "",
        "Instances:",
        table(["name", "role", "ready", "reachable", "lag", "fence", "gtid", "message"], instances),
    ]
    conditions = [
        (
            cond.get("type"),
            cond.get("status"),
            cond.get("reason"),
            age(cond.get("lastTransitionTime"), now),
            cond.get("message"),
        )
        for cond in status.get("conditions") or []
    ]
    lines += ["", "Conditions:", table(["type", "status", "reason", "age", "message"], conditions)]
    changes = [
        (
            ch.get("time"),
            ch.get("kind"),
            ch.get("from") or "-",
            ch.get("to"),
            f"{ch.get('seconds', 0):g}s",
            ch.get("reason"),
        )
        for ch in reversed(status.get("roleChanges") or [])
    ]
    lines += ["", "Role changes (newest first):"]
    lines.append(table(["time", "kind", "from", "to", "took", "reason"], changes) if changes else "none")
    backup = status.get("backup") or {}
    if backup:
        lines += [
            "",
            f"Backups:     last scheduled {backup.get('lastScheduleTime', '-')}, "
            f"{backup.get('lastRetention', '')}",
        ]
    return "\n".join(lines) + "\n"


def switchover_target(cluster: Mapping[str, Any], to: int | None) -> int:
    """The ordinal to switch over to: `to`, else the ready replica with the least lag. ValueError
    when there is none, or `to` is the primary already or out of range."""
    spec, status = cluster.get("spec") or {}, cluster.get("status") or {}
    instances = int(spec.get("instances") or 0)
    primary = status.get("primary")
    if to is not None:
        if not 0 <= to < instances:
            raise ValueError(f"--to {to}: the cluster has instances 0..{instances - 1}")
        if primary and c.ordinal_of_pod(primary) == to:
            raise ValueError(f"instance {to} is the primary already")
        return to
    replicas = [
        inst
        for inst in status.get("instances") or []
        if inst.get("role") == c.Role.REPLICA.value and inst.get("ready")
    ]
    if not replicas:
        raise ValueError("no ready replica to switch over to")
    best = min(
        replicas, key=lambda inst: (float(inst.get("lagSeconds") or 0.0), c.ordinal_of_pod(inst["name"]))
    )
    return c.ordinal_of_pod(best["name"])


def fence_annotation(meta: Mapping[str, Any], pod: str, fenced: bool) -> str | None:
    """The annotation's new value with `pod` added or removed; None removes the annotation."""
    names = [name for name in sorted(fenced_pods(meta)) if name != pod]
    if fenced:
        names.append(pod)
    return ",".join(sorted(names)) or None


def restore_manifest(
    backup: Mapping[str, Any], source: Mapping[str, Any] | None, name: str, point_in_time: str | None = None
) -> dict[str, Any]:
    """A new MysqlCluster from a MysqlBackup, shaped like the cluster it was taken of (flavor,
    version, instances, storage, replication) when that still exists."""
    meta = backup.get("metadata") or {}
    src = dict((source or {}).get("spec") or {})
    keep = ("flavor", "version", "image", "instances", "storage", "resources", "replication", "monitoring")
    spec: dict[str, Any] = {key: src[key] for key in keep if key in src}
    if "replication" in spec:
        spec["replication"] = {k: v for k, v in spec["replication"].items() if k != "switchoverTo"}
    restore: dict[str, Any] = {"backup": meta.get("name")}
    if point_in_time:
        restore["pointInTime"] = point_in_time
    spec["restoreFrom"] = restore
    return {
        "apiVersion": f"{c.API_GROUP}/{c.API_VERSION}",
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": meta.get("namespace")},
        "spec": spec,
    }
