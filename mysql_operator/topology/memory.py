"""What one pass tells the next, kept in status.topology so an operator restart keeps it: the
primary and its last observed GTID set, since when it is unreachable, the replicas that could
acknowledge its writes (semi-sync), the former primaries it replaced, the operation in progress, and
what rebuilds discarded. `remember` computes it, in one place, from the pass's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.candidates import held_from_others
from mysql_operator.topology.context import Discarded, Pass
from mysql_operator.topology.decide import ClusterView, Deposed, Operation, Problem, ReplicationMode

DISCARDED_KEPT = 10


@dataclass(frozen=True)
class TopologyMemory:
    """What one pass tells the next; keep it in status (`to_dict` / `from_dict`)."""

    primary: int | None = None
    primary_gtid: str = ""
    primary_unreachable_since: float | None = None
    problems: tuple[str, ...] = ()
    acknowledgers: tuple[int, ...] = ()
    deposed: tuple[Deposed, ...] = ()
    operation: Operation | None = None
    discarded: tuple[Discarded, ...] = ()
    pods_fenced: tuple[int, ...] = ()
    # Acknowledgers gone from the primary, with the GTID set bounding what they acknowledged.
    departed: tuple[tuple[int, str], ...] = ()
    # Semi-sync, the primary unreachable: what replicas were seen holding since (ClusterView).
    held: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "primary_gtid": self.primary_gtid,
            "primary_unreachable_since": self.primary_unreachable_since,
            "problems": list(self.problems),
            "acknowledgers": list(self.acknowledgers),
            "deposed": [asdict(d) for d in self.deposed],
            "operation": asdict(self.operation) if self.operation is not None else None,
            "discarded": [d.to_dict() for d in self.discarded],
            "pods_fenced": list(self.pods_fenced),
            "departed": [{"ordinal": o, "gtid": g} for o, g in self.departed],
            "held": self.held,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TopologyMemory:
        if not data:
            return cls()
        operation = data.get("operation")
        return cls(
            primary=data.get("primary"),
            primary_gtid=str(data.get("primary_gtid") or ""),
            primary_unreachable_since=data.get("primary_unreachable_since"),
            problems=tuple(data.get("problems") or ()),
            acknowledgers=tuple(int(o) for o in data.get("acknowledgers") or ()),
            deposed=tuple(Deposed(int(d["ordinal"]), bool(d.get("lossless")))
                          for d in data.get("deposed") or ()),
            operation=Operation(str(operation["kind"]), operation.get("source"), int(operation["target"]),
                                bool(operation.get("lossless"))) if operation else None,
            discarded=tuple(Discarded(int(d["ordinal"]), str(d["gtids"]), int(d["count"]), float(d["at"]))
                            for d in data.get("discarded") or ()),
            pods_fenced=tuple(int(o) for o in data.get("pods_fenced") or ()),
            departed=tuple((int(d["ordinal"]), str(d.get("gtid") or "")) for d in data.get("departed") or ()),
            held=str(data.get("held") or ""),
        )


def unreachable_since(
    previous: TopologyMemory, observed: Mapping[int, InstanceObservation], now: float
) -> float | None:
    """Since when the remembered primary does not answer at all (busy counts as answering)."""
    if previous.primary is None:
        return None
    current = observed.get(previous.primary)
    if current is not None and current.alive:
        return None
    return previous.primary_unreachable_since if previous.primary_unreachable_since is not None else now


def remember(
    previous: TopologyMemory,
    view: ClusterView,
    work: Pass,
    observed: Mapping[int, InstanceObservation],
    since: float | None,
    problems: list[Problem],
) -> TopologyMemory:
    """The memory after a pass. `view` is the (operation-resolved) view the pass decided on."""
    flavor = work.flavor
    serving = work.primary
    primary = serving if serving is not None else view.last_primary
    now_obs = observed.get(primary) if primary is not None else None
    reachable = now_obs is not None and now_obs.reachable
    host = work.endpoints[primary].host if primary is not None and primary in work.endpoints else None
    changed = primary != view.last_primary
    departed = {} if changed else dict(previous.departed)
    if reachable and now_obs is not None and now_obs.writable and work.mode is ReplicationMode.SEMI_SYNC:
        attached = {
            o.ordinal for o in observed.values()
            if o.ordinal != primary and o.reachable and o.replica_configured and o.source_host == host
            and o.semi_sync.replica_enabled
        }
        departed = forget_departed(flavor, view.acknowledgers, attached, departed, now_obs.gtid_executed,
                                   {o: observed[o].received for o in attached})
        acknowledgers = tuple(sorted(attached | set(departed)))
    else:
        acknowledgers = () if changed else tuple(sorted(view.acknowledgers))
    deposed = list(view.deposed)
    if changed and view.last_primary is not None and primary is not None:
        transition = work.transition
        lossless = (transition is not None and transition.lossless
                    and transition.from_ordinal == view.last_primary)
        deposed = [d for d in deposed if d.ordinal != view.last_primary]
        deposed.append(Deposed(view.last_primary, lossless))
    primary_gtid = now_obs.gtid_executed if reachable and now_obs is not None else (
        "" if changed else previous.primary_gtid)
    primary_origin = now_obs.origin if reachable and now_obs is not None else ""

    def rejoined(entry: Deposed) -> bool:
        o = observed.get(entry.ordinal)
        if entry.ordinal == primary or entry.ordinal in work.rejoined:
            return True
        return (o is not None and o.reachable and o.replica_configured and o.source_host == host
                and not o.writable and nothing_beyond_the_primary(flavor, primary_gtid, primary_origin, o))

    operation = work.operation or view.operation
    held = ""
    if not reachable and not changed and since is not None and work.mode is ReplicationMode.SEMI_SYNC:
        held = gtid.union(flavor, [view.held_while_unreachable, *(
            held_from_others(flavor, o) for o in observed.values() if o.reachable and o.ordinal != primary)])
    return TopologyMemory(
        primary=primary,
        primary_gtid=primary_gtid,
        primary_unreachable_since=None if reachable or changed else since,
        problems=tuple(sorted({f"{p.reason}/{p.ordinal}" for p in problems})),
        acknowledgers=acknowledgers,
        deposed=tuple(d for d in deposed if not rejoined(d)),
        operation=operation if serving is None else None,
        discarded=(*previous.discarded, *work.discarded)[-DISCARDED_KEPT:],
        # Forgotten once the instance answers again (a new process: SQL fences it from then on).
        pods_fenced=tuple(sorted(o for o in {*view.pods_fenced, *work.pods_fenced}
                                 if not (o in observed and observed[o].alive))),
        departed=tuple(sorted(departed.items())),
        held=held,
    )


def nothing_beyond_the_primary(
    flavor: Flavor, primary_gtid: str, primary_origin: str, replica: InstanceObservation
) -> bool:
    """Whether a replica holds nothing but the primary's history. The replica is read after the
    primary in a pass, so while clients write it may already hold the primary's newer transactions:
    those (written by the primary itself) are not beyond it; anything else the primary's set lacks is."""
    extra = gtid.missing(flavor, primary_gtid, replica.gtid_executed)
    if not extra:
        return True
    newer = gtid.originated_by(flavor, extra, primary_origin)
    return bool(primary_origin) and gtid.includes(flavor, newer, extra)


def forget_departed(
    flavor: Flavor,
    acknowledgers: frozenset[int],
    attached: set[int],
    departed: dict[int, str],
    primary_gtid: str,
    received: Mapping[int, str],
) -> dict[int, str]:
    """Acknowledgers no longer attached, each with the primary's GTID set that bounds what it can
    have acknowledged; one is forgotten only once every attached replica received that set.

    Missing for the first time it gets no bound yet (it may have acknowledged a write after the
    primary was read in this pass); the next pass's primary set bounds it. Until forgotten it stays
    an acknowledger: a failover waits for it (semi-sync, invariant 4 of topology.decide)."""
    kept: dict[int, str] = {}
    for ordinal in sorted((set(acknowledgers) | set(departed)) - attached):
        if ordinal not in departed:
            kept[ordinal] = ""
        elif not departed[ordinal]:
            kept[ordinal] = primary_gtid
        elif not (attached and all(gtid.includes(flavor, received[o], departed[ordinal]) for o in attached)):
            kept[ordinal] = departed[ordinal]
    return kept
