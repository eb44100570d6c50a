"""GTID arithmetic per flavor: pure functions over the text the servers print.

MySQL 8.4: a GTID set `uuid[:tag]:1-5:7,uuid2:1-3` is a set of transactions; comparisons are set
comparisons.

MariaDB 10.11: a GTID is `domain-server_id-seq`. One position holds the last GTID per domain;
`gtid_binlog_state` holds the last seq per (domain, server_id). Within a domain the history is one
line, so a transaction `d-s-n` is contained in a server's history when that history has seen seq >= n
from server s in domain d. Comparing seq numbers alone is wrong after a switchover (server_id
changes): an old primary that wrote 0-10-105 while the new primary wrote 0-11-103 is "ahead" by seq
but diverged; the per-(domain, server) check catches it.

Each instance's GTID text here is, for MySQL, `@@gtid_executed`; for MariaDB, the merge of
`gtid_binlog_state`, `gtid_slave_pos` and `gtid_current_pos` (see `merge_mariadb`).
"""

from __future__ import annotations

import re

from mysql_operator.conventions import Flavor

MysqlSet = dict[str, list[tuple[int, int]]]
MariadbState = dict[tuple[int, int], int]

_INTERVAL = re.compile(r"^\d+(-\d+)?$")


class GtidParseError(ValueError):
    """The text is not a GTID set of the flavor."""


# MySQL -------------------------------------------------------------------------------------------


def _merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def parse_mysql(text: str) -> MysqlSet:
    """Parse a MySQL GTID set (tags of 8.4 included: `uuid:tag:1-3` is keyed `uuid:tag`)."""
    result: MysqlSet = {}
    for chunk in re.sub(r"\s+", "", text).split(","):
        if not chunk:
            continue
        parts = chunk.split(":")
        source = parts[0].lower()
        if len(parts) < 2:
            raise GtidParseError(f"not a MySQL GTID set: {chunk!r}")
        key = source
        for part in parts[1:]:
            if _INTERVAL.match(part):
                bounds = part.split("-")
                start, end = int(bounds[0]), int(bounds[-1])
                if end < start:
                    raise GtidParseError(f"bad interval {part!r}")
                result.setdefault(key, []).append((start, end))
            else:
                key = f"{source}:{part.lower()}"
    return {key: _merge_intervals(value) for key, value in result.items() if value}


def format_mysql(gtids: MysqlSet) -> str:
    chunks = []
    for key in sorted(gtids):
        intervals = _merge_intervals(gtids[key])
        if intervals:
            text = ":".join(f"{a}" if a == b else f"{a}-{b}" for a, b in intervals)
            chunks.append(f"{key}:{text}")
    return ",".join(chunks)


def _subtract_intervals(
    left: list[tuple[int, int]], right: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    for start, end in left:
        pieces = [(start, end)]
        for r_start, r_end in right:
            next_pieces = []
            for p_start, p_end in pieces:
                if r_end < p_start or r_start > p_end:
                    next_pieces.append((p_start, p_end))
                    continue
                if p_start < r_start:
                    next_pieces.append((p_start, r_start - 1))
                if p_end > r_end:
                    next_pieces.append((r_end + 1, p_end))
            pieces = next_pieces
        result.extend(pieces)
    return _merge_intervals(result)


def mysql_subtract(left: MysqlSet, right: MysqlSet) -> MysqlSet:
    """Transactions in `left` that are not in `right`."""
    result: MysqlSet = {}
    for key, intervals in left.items():
        rest = _subtract_intervals(intervals, right.get(key, []))
        if rest:
            result[key] = rest
    return result


# MariaDB -----------------------------------------------------------------------------------------


def parse_mariadb(text: str) -> MariadbState:
    """Parse a MariaDB GTID list into the highest seq seen per (domain, server_id)."""
    state: MariadbState = {}
    for chunk in re.sub(r"\s+", "", text).split(","):
        if not chunk:
            continue
        parts = chunk.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise GtidParseError(f"not a MariaDB GTID: {chunk!r}")
        domain, server, seq = (int(p) for p in parts)
        state[(domain, server)] = max(seq, state.get((domain, server), 0))
    return state


def format_mariadb(state: MariadbState) -> str:
    return ",".join(f"{d}-{s}-{state[(d, s)]}" for d, s in sorted(state))


def mariadb_position(state: MariadbState) -> dict[int, tuple[int, int]]:
    """The last transaction per domain: domain -> (server_id, seq) with the highest seq."""
    position: dict[int, tuple[int, int]] = {}
    for (domain, server), seq in state.items():
        if domain not in position or seq > position[domain][1]:
            position[domain] = (server, seq)
    return position


def merge_mariadb(*texts: str) -> str:
    """One normalised MariaDB GTID state from several lists (binlog state, slave pos, current pos)."""
    state: MariadbState = {}
    for text in texts:
        for key, seq in parse_mariadb(text).items():
            state[key] = max(seq, state.get(key, 0))
    return format_mariadb(state)


def _mariadb_missing(container: MariadbState, other: MariadbState) -> MariadbState:
    # Every (domain, server) of `other`, not only its last GTID per domain: two servers writing the
    # same seq in one domain (a split brain) must not hide each other.
    return {key: seq for key, seq in other.items() if container.get(key, 0) < seq}


# Flavor-neutral API ------------------------------------------------------------------------------


def missing(flavor: Flavor, container: str, other: str) -> str:
    """The transactions of `other` that `container` lacks, as GTID text ("" when none).

    MariaDB reports, per (domain, server_id), the last GTID whose history `container` lacks.
    """
    if flavor is Flavor.MYSQL:
        return format_mysql(mysql_subtract(parse_mysql(other), parse_mysql(container)))
    return format_mariadb(_mariadb_missing(parse_mariadb(container), parse_mariadb(other)))


def includes(flavor: Flavor, container: str, other: str) -> bool:
    """Whether every transaction of `other` is in `container`."""
    return missing(flavor, container, other) == ""


def union(flavor: Flavor, texts: list[str]) -> str:
    """All transactions of all the given GTID texts."""
    if flavor is Flavor.MYSQL:
        merged: MysqlSet = {}
        for text in texts:
            for key, intervals in parse_mysql(text).items():
                merged.setdefault(key, []).extend(intervals)
        return format_mysql(merged)
    return merge_mariadb(*texts)


def originated_by(flavor: Flavor, gtids: str, origin: str) -> str:
    """The part of `gtids` written by the server `origin` (MySQL server_uuid, MariaDB server_id)."""
    if not origin:
        return ""
    if flavor is Flavor.MYSQL:
        parsed = parse_mysql(gtids)
        own = origin.lower()
        return format_mysql(
            {key: value for key, value in parsed.items() if key == own or key.startswith(own + ":")}
        )
    state = parse_mariadb(gtids)
    return format_mariadb({key: seq for key, seq in state.items() if str(key[1]) == origin})


def shares_any(flavor: Flavor, gtids: str, other: str) -> bool:
    """Whether `gtids` holds at least one transaction of `other` (MariaDB: a position in one of its
    domains, whose history is one line)."""
    if flavor is Flavor.MYSQL:
        theirs = parse_mysql(other)
        return transaction_count(flavor, format_mysql(mysql_subtract(theirs, parse_mysql(gtids)))) < \
            transaction_count(flavor, format_mysql(theirs))
    domains = {domain for (domain, _), seq in parse_mariadb(other).items() if seq > 0}
    return any(domain in domains and seq > 0 for (domain, _), seq in parse_mariadb(gtids).items())


def is_empty(flavor: Flavor, gtids: str) -> bool:
    """Whether no transaction was ever executed (a fresh data directory)."""
    if flavor is Flavor.MYSQL:
        return not parse_mysql(gtids)
    return not parse_mariadb(gtids)


def position(flavor: Flavor, gtids: str) -> str:
    """A short human form: the MySQL set itself, or the MariaDB last GTID per domain."""
    if flavor is Flavor.MYSQL:
        return format_mysql(parse_mysql(gtids))
    return ",".join(
        f"{d}-{s}-{n}" for d, (s, n) in sorted(mariadb_position(parse_mariadb(gtids)).items())
    )


def transaction_count(flavor: Flavor, gtids: str) -> int:
    """A size to rank comparable GTID texts (number of MySQL transactions; sum of MariaDB seqs)."""
    if flavor is Flavor.MYSQL:
        return sum(end - start + 1 for ivs in parse_mysql(gtids).values() for start, end in ivs)
    return sum(seq for _, seq in mariadb_position(parse_mariadb(gtids)).values())


def count_missing(flavor: Flavor, container: str, other: str) -> int:
    """How many transactions of `other` `container` lacks (MariaDB: counted by seq within each
    domain from the container's last seq below it, exact for one line of history)."""
    if flavor is Flavor.MYSQL:
        return transaction_count(flavor, missing(flavor, container, other))
    have = parse_mariadb(container)
    total = 0
    for (domain, server), seq in _mariadb_missing(have, parse_mariadb(other)).items():
        below = [s for (d, _), s in have.items() if d == domain and s < seq]
        floor = max([have.get((domain, server), 0), *below])
        total += seq - floor
    return total
