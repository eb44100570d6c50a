"""Who may become primary: errant transactions, what each candidate really holds (its received set,
relay log included), and the choice of the failover candidate. Pure functions."""

from __future__ import annotations

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import gtid
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.model import Choice, Problem


def errant_transactions(
    flavor: Flavor, instance: InstanceObservation, reference: str
) -> str:
    """Transactions `instance` wrote itself that `reference` (the rightful history) lacks."""
    own = gtid.originated_by(flavor, instance.gtid_executed, instance.origin)
    return gtid.missing(flavor, reference, own)


def missing_on(flavor: Flavor, primary: InstanceObservation, instance: InstanceObservation) -> str:
    """Transactions of `instance` that `primary` does not have (all of them are errant for a
    replica-to-be, whoever wrote them)."""
    return gtid.missing(flavor, primary.gtid_executed, instance.gtid_executed)


def held_from_others(flavor: Flavor, instance: InstanceObservation) -> str:
    """What the instance received that another server wrote (its own writes may be errant)."""
    own = gtid.originated_by(flavor, instance.received, instance.origin) if instance.origin else ""
    return gtid.missing(flavor, own, instance.received) if own else instance.received


def gone_since_held(flavor: Flavor, winner: InstanceObservation, held: str) -> str:
    """Transactions replicas held while the primary was unreachable that the winner lacks."""
    return gtid.missing(flavor, winner.received, held) if held else ""


def rightful(flavor: Flavor, instance: InstanceObservation, errant: str) -> str:
    """What the instance received, minus the transactions it wrote itself (`errant`)."""
    return gtid.missing(flavor, errant, instance.received) if errant else instance.received


def never_replicated(flavor: Flavor, candidate: InstanceObservation, known_history: str) -> bool:
    """A candidate that holds none of the primary's recorded history (its last GTID set seen) never
    replicated from it: a new instance not seeded yet, or one wiped. Never a failover candidate, in
    any mode: a primary made of it would start the cluster's data over. Unknown history: no verdict."""
    return not gtid.is_empty(flavor, known_history) and not gtid.shares_any(flavor, candidate.received,
                                                                             known_history)


def choose_new_primary(
    flavor: Flavor, candidates: list[InstanceObservation], known_history: str = ""
) -> Choice:
    """The replica to promote: no errant transactions, some of the primary's recorded history
    (`never_replicated`), and holding (received) every transaction the
    other candidates received, errant ones aside; among those an applied one first, then the lowest
    ordinal. When the only such candidate is still applying its relay log the choice waits.

    `known_history` is the last GTID set seen on the old primary, used to tell a former primary's
    own legitimate transactions from errant ones.
    """
    problems: list[Problem] = []
    reachable = [c for c in candidates if c.reachable]
    if not reachable:
        return Choice(None, (Problem("NoCandidate", "no replica is reachable to promote"),))
    errant: dict[int, str] = {}
    for candidate in reachable:
        others = [c.received for c in reachable if c is not candidate]
        found = errant_transactions(flavor, candidate, gtid.union(flavor, [*others, known_history]))
        errant[candidate.ordinal] = found if (others or known_history) else ""
        if errant[candidate.ordinal]:
            problems.append(
                Problem("ErrantTransactions",
                        f"instance {candidate.ordinal} has transactions no other instance has: {found}",
                        candidate.ordinal)
            )
    held = {c.ordinal: rightful(flavor, c, errant[c.ordinal]) for c in reachable}
    strangers = {c.ordinal for c in reachable if never_replicated(flavor, c, known_history)}
    for ordinal in sorted(strangers):
        problems.append(
            Problem("NeverReplicated",
                    f"instance {ordinal} holds none of the primary's recorded history "
                    f"({gtid.position(flavor, known_history)}): it never replicated from it (never seeded, "
                    "or wiped), and promoting it would discard every write", ordinal)
        )
    eligible = [c for c in reachable if not errant[c.ordinal] and c.ordinal not in strangers]
    for candidate in sorted(eligible, key=lambda c: (not c.relay_log_applied, c.ordinal)):
        if not all(gtid.includes(flavor, candidate.received, held[o.ordinal])
                   for o in reachable if o is not candidate):
            continue
        if candidate.relay_log_applied:
            return Choice(candidate.ordinal, tuple(problems))
        problems.append(
            Problem("RelayLogNotApplied", f"instance {candidate.ordinal} holds every transaction but has "
                    "not applied its relay log yet; the failover waits for it", candidate.ordinal)
        )
        return Choice(None, tuple(problems), waiting=True)
    if eligible:
        problems.append(
            Problem("DivergentReplicas",
                    "no replica holds every transaction of the others: "
                    + "; ".join(f"{c.ordinal}: {gtid.position(flavor, c.received) or 'empty'}"
                                for c in reachable))
        )
    return Choice(None, tuple(problems))


def discarded_relay_logs(
    flavor: Flavor, winner: InstanceObservation, followers: list[InstanceObservation]
) -> tuple[Problem, ...]:
    """Followers holding (received) transactions the new primary lacks: repointing them discards
    those. Never the case for a winner of `choose_new_primary`; reported if it ever is."""
    return tuple(
        Problem("RelayLogDiscarded", f"instance {f.ordinal} received transactions the new primary "
                f"{winner.ordinal} lacks: {gtid.missing(flavor, winner.gtid_executed, f.received)}",
                f.ordinal)
        for f in followers
        if f.reachable and not gtid.includes(
            flavor, winner.gtid_executed,
            rightful(flavor, f, errant_transactions(flavor, f, winner.gtid_executed)))
    )
