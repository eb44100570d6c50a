"""Split a logical dump into what can load in parallel and what must not (pure).

A dump of `mysqldump`/`mariadb-dump --single-transaction --routines --events --triggers --databases`
is one consistent stream, loaded in three phases (restore.py):

1. SCHEMA, one session, in the dump's order: databases, tables, views, routines, the GTID state and
   every session setting. Everything not recognised as data or deferred is schema (the safe side: it
   runs before any row is loaded, as in a serial load).
2. DATA, several sessions at once: each `INSERT INTO ... ;` statement of a table's data section (the
   MariaDB tool writes one row per line, MySQL's one statement per line). Rows of one table may load
   in different sessions: a consistent dump holds no duplicate key, and the dump's own session
   settings (unique and foreign key checks off) are replayed in each session first (`preamble`).
3. DEFERRED, one session, after all data: triggers (the dump creates a table's triggers right after
   its data: created before rows loaded by another session, they would fire on them) and events.

Markers are recognised only outside `DELIMITER ;;` blocks (routine, trigger and event bodies may hold
any text) and at the start of a line: string values in INSERTs never span lines (the tools escape
line breaks), so a value holding "-- Dumping data for table" or "INSERT INTO" is never a marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum


class Phase(Enum):
    SCHEMA = "schema"
    DATA = "data"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class Piece:
    """A line (SCHEMA, DEFERRED) or a whole INSERT statement (DATA), with the `USE` line in force."""

    phase: Phase
    use: bytes
    text: bytes


_DATA_MARKER = b"-- Dumping data for table "
_EVENTS_MARKER = b"-- Dumping events for database "
_HEADER_END = (b"-- Current Database:", b"CREATE DATABASE", b"USE ")
_INSERT = b"INSERT INTO "
_UNLOCK = b"UNLOCK TABLES;"
_SANDBOX = b"/*M!999999"  # mariadb-dump's first line: a client command, not a statement


class _Section(Enum):
    SCHEMA = 0
    DATA = 1  # between "-- Dumping data for table" and its UNLOCK TABLES
    TRIGGERS = 2  # after a table's data, up to the next comment line
    EVENTS = 3  # from "-- Dumping events for database" up to the next marker


@dataclass
class DumpSplitter:
    """Routes the lines of one dump. `preamble` holds, once the header is read, the session
    statements a data or deferred session replays first (not the global ones: GTID_PURGED)."""

    preamble: list[bytes] = field(default_factory=list)
    _header: bool = True
    _statement: list[bytes] = field(default_factory=list)

    def split(self, lines: Iterable[bytes]) -> Iterator[Piece]:
        use = b""
        section = _Section.SCHEMA
        delimited = False
        source = iter(lines)
        for line in source:
            if delimited:
                if line.rstrip() == b"DELIMITER ;":
                    delimited = False
                yield Piece(_phase(section), use, line)
                continue
            if self._header:
                if line.startswith(_HEADER_END):
                    self._header = False
                else:
                    self._read_header(line)
            if section is _Section.DATA:
                if line.startswith(_INSERT):
                    yield Piece(Phase.DATA, use, _statement(line, source))
                    continue
                if line.startswith(_UNLOCK):
                    section = _Section.TRIGGERS
                yield Piece(Phase.SCHEMA, use, line)
                continue
            if line.startswith(b"DELIMITER "):
                delimited = line.rstrip() != b"DELIMITER ;"
            elif line.startswith(b"--"):
                if line.startswith(_DATA_MARKER):
                    section = _Section.DATA
                elif line.startswith(_EVENTS_MARKER):
                    section = _Section.EVENTS
                elif section is _Section.TRIGGERS or (section is _Section.EVENTS and line.startswith(b"-- ")):
                    section = _Section.SCHEMA
            elif line.startswith(b"USE "):
                use = line
            yield Piece(_phase(section), use, line)

    def _read_header(self, line: bytes) -> None:
        if line.startswith(_SANDBOX):
            self.preamble.append(line)
            return
        if not self._statement and (line.startswith(b"--") or not line.strip()):
            return
        self._statement.append(line)
        if line.rstrip().endswith(b";"):
            text = b"".join(self._statement)
            self._statement = []
            if b"@@GLOBAL" not in text.upper():
                self.preamble.append(text)


def _phase(section: _Section) -> Phase:
    return Phase.DEFERRED if section in (_Section.TRIGGERS, _Section.EVENTS) else Phase.SCHEMA


def _statement(first: bytes, rest: Iterator[bytes]) -> bytes:
    """An INSERT from its first line to the line ending in `;` (MariaDB writes a row per line)."""
    if first.rstrip().endswith(b";"):
        return first
    parts = [first]
    for line in rest:
        parts.append(line)
        if line.rstrip().endswith(b";"):
            break
    return b"".join(parts)
