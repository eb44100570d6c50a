"""The row phase of a parallel logical restore with stand-in client sessions (real processes, real
pipes): every statement reaches exactly one session after its `USE` line, and a session that fails
stops the load without reading the rest of the dump."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from mysql_operator.backup.manifest import Manifest
from mysql_operator.backup.restore import RestoreFailed, _load_rows
from mysql_operator.backup.storage import DirectoryStorage
from tests.unit.test_backup_engine import PASSWORD, T0, manifest

STATEMENTS = 2000


def dump_text() -> bytes:
    lines = [b"/*!40101 SET NAMES utf8mb4 */;\n", b"USE `shop`;\n"]
    for table in ("a", "b"):
        lines.append(f"-- Dumping data for table `{table}`\n".encode())
        lines.append(f"LOCK TABLES `{table}` WRITE;\n".encode())
        lines += [f"INSERT INTO `{table}` VALUES ({i},'{'x' * 200}');\n".encode() for i in range(STATEMENTS)]
        lines.append(b"UNLOCK TABLES;\n")
    return b"".join(lines)


class CountingStorage(DirectoryStorage):
    """A directory storage that counts the bytes read through `open`."""

    read_bytes = 0

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        with super().open(key) as stream:
            outer = self

            class Counting:
                def read(self, size: int = -1) -> bytes:
                    chunk = stream.read(size)
                    outer.read_bytes += len(chunk)
                    return chunk

            yield Counting()  # type: ignore[misc]


def stored(tmp_path: Path) -> tuple[CountingStorage, Manifest]:
    # level 0: the stored size is the dump's, so "read it all" cannot hide in compression
    data = gzip.compress(dump_text(), compresslevel=0)
    storage = CountingStorage(tmp_path / "pvc")
    backup = manifest("b1", T0, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    storage.put_bytes(backup.dump_key, data)
    return storage, backup


def test_every_statement_reaches_one_session_after_its_use_line(tmp_path: Path) -> None:
    storage, backup = stored(tmp_path)
    # each stand-in session writes what it is fed to a file of its own (by its process id)
    script = tmp_path / "client.sh"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path}/session-$$.sql\n")
    script.chmod(0o755)
    loaded = _load_rows(storage, backup, [str(script)], b"SET x=1;\n", 3, (PASSWORD,))
    assert loaded == 2 * STATEMENTS
    fed = [o.read_bytes() for o in tmp_path.glob("session-*.sql")]
    assert len(fed) == 3 and all(f.startswith(b"SET x=1;\nUSE `shop`;\n") for f in fed)
    inserts = [line for f in fed for line in f.splitlines() if line.startswith(b"INSERT")]
    assert sorted(inserts) == sorted(line for line in dump_text().splitlines() if line.startswith(b"INSERT"))
    assert storage.read_bytes == backup.size  # read once, to the end: the sha256 was checked


def test_a_failing_session_stops_the_load_without_reading_the_rest(tmp_path: Path) -> None:
    storage, backup = stored(tmp_path)
    script = tmp_path / "client.sh"
    message = tmp_path / "error.txt"
    message.write_text(f"ERROR 1045: denied for {PASSWORD}\n")  # as a client could print it
    script.write_text(f"#!/bin/sh\ncat {message} >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(RestoreFailed, match="exit 3") as failure:
        _load_rows(storage, backup, [str(script)], b"SET x=1;\n", 4, (PASSWORD,))
    assert PASSWORD not in str(failure.value) and "ERROR 1045" in str(failure.value)
    assert storage.read_bytes < backup.size // 2, "the rest of the dump was read after a session failed"
