"""Logical restores load the rows in several sessions (dumpsplit.py), against real servers of each flavor.

The parallel load must give what a serial load gives: every row (CHECKSUM TABLE and the rows
themselves), the triggers, views, routines and events, and (MySQL) the same GTID state; a trigger
that fired on loaded rows would change them. A target that dies during the row load fails the
restore promptly, with no client left behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mysql_operator.backup.manifest import Manifest
from mysql_operator.backup.restore import RestoreFailed, restore
from mysql_operator.backup.storage import DirectoryStorage, Storage
from mysql_operator.backup.take import take_backup
from mysql_operator.conventions import Flavor
from tests.integration.conftest import NET
from tests.integration.servers import ROOT_PASSWORD, DbServer
from tests.integration.test_backup_restore import (
    Servers,
    assert_same_data,
    create_backup_user,
    create_schema,
    instance_of,
    snapshot,
    write_batch,
)

pytestmark = pytest.mark.integration

HOSTS = [f"127.{NET}.32.{i}" for i in (1, 2, 3)]
BOUND = 120.0


@pytest.fixture
def running(flavor: str) -> Iterator[Servers]:
    started = Servers(Flavor(flavor))
    try:
        yield started
    finally:
        started.stop_all()


def fill(server: DbServer, wide_rows: int) -> None:
    """Tables over two databases, a foreign key across them, a trigger that would change rows it
    fired on, a view, a procedure and an event; `wide_rows` rows of 1 KiB make several INSERTs."""
    create_schema(server)
    for batch in (1, 2):
        write_batch(server, batch)
    for statement in (
        "CREATE TABLE shop.wide (id INT PRIMARY KEY, customer VARCHAR(64), body TEXT, "
        "n INT NOT NULL DEFAULT 0, KEY (customer))",
        "CREATE TABLE crm.refs (id INT PRIMARY KEY, wide_id INT NOT NULL, "
        "FOREIGN KEY (wide_id) REFERENCES shop.wide (id))",
        "CREATE TRIGGER shop.wide_bump BEFORE INSERT ON shop.wide FOR EACH ROW SET NEW.n = NEW.n + 1000",
        "CREATE VIEW crm.big_refs AS SELECT r.id, w.customer FROM crm.refs r "
        "JOIN shop.wide w ON w.id = r.wide_id",
        "CREATE PROCEDURE shop.add_order(IN who VARCHAR(64))\nBEGIN\n"
        "INSERT INTO shop.orders (customer, amount, created) VALUES (who, 1, NOW(6));\nEND",
        "CREATE EVENT shop.nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM crm.audit",
    ):
        server.sql(statement)
    with server.root_connection() as connection, connection.cursor() as cursor:
        for start in range(0, wide_rows, 500):
            cursor.executemany(
                "INSERT INTO shop.wide (id, customer, body) VALUES (%s, %s, %s)",
                [(i, f"c{i % 97}", f"row {i}; -- Dumping data for table `x`\nINSERT INTO `y` " + "é" * 480)
                 for i in range(start, min(start + 500, wide_rows))],
            )
        refs = [(i, i * 3) for i in range(wide_rows // 3)]
        cursor.executemany("INSERT INTO crm.refs VALUES (%s, %s)", refs)


def objects(server: DbServer) -> dict[str, Any]:
    """The schema objects a restore must recreate, by name and definition."""
    return {
        "triggers": server.sql(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA IN ('shop', 'crm') ORDER BY 1, 2"),
        "views": server.sql(
            "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA IN ('shop', 'crm') ORDER BY 1, 2"),
        "routines": server.sql(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA IN ('shop', 'crm') ORDER BY 1, 2"),
        "events": server.sql(
            "SELECT EVENT_SCHEMA, EVENT_NAME, EVENT_DEFINITION, STATUS FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA IN ('shop', 'crm') ORDER BY 1, 2"),
    }


def backed_up(running: Servers, tmp_path: Path, wide_rows: int) -> tuple[DbServer, Storage, Manifest]:
    """A filled source server and its logical backup in a directory storage."""
    source = running.start(HOSTS[0], 0)
    create_backup_user(source)
    fill(source, wide_rows=wide_rows)
    storage = DirectoryStorage(tmp_path / "pvc")
    return source, storage, take_backup(instance_of(source), storage, cluster="shop-db", name="shop-db-1")


def test_rows_loaded_in_several_sessions_equal_the_source_and_a_serial_load(
    running: Servers, tmp_path: Path
) -> None:
    source, storage, backup = backed_up(running, tmp_path, wide_rows=6000)
    expected, expected_objects = snapshot(source), objects(source)
    assert expected["`shop`.`wide`"]["count"] == 6000
    assert backup.uncompressed_size > 4 << 20  # several INSERT statements (the tools cut at 1 MB)

    parallel, serial = running.start(HOSTS[1], 0), running.start(HOSTS[2], 0)
    restore(instance_of(parallel, "root", ROOT_PASSWORD), storage, backup.location, threads=4)
    restore(instance_of(serial, "root", ROOT_PASSWORD), storage, backup.location, threads=1)
    for target in (parallel, serial):
        assert_same_data(expected, snapshot(target))  # the trigger fired on no loaded row
        assert objects(target) == expected_objects
    if source.flavor == Flavor.MYSQL:  # GTID_PURGED set, and the row sessions wrote no binlog
        assert parallel.executed_gtids() == serial.executed_gtids() == backup.gtid_position
    # the trigger is there and works once loaded
    parallel.sql("INSERT INTO shop.wide (id, customer, body) VALUES (-1, 'new', 'x')")
    assert parallel.sql("SELECT n FROM shop.wide WHERE id = -1")[0][0] == 1000


def test_a_target_that_dies_during_the_row_load_fails_the_restore_promptly(
    running: Servers, tmp_path: Path
) -> None:
    _, storage, backup = backed_up(running, tmp_path, wide_rows=40000)
    target = running.start(HOSTS[1], 0)

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            restore(instance_of(target, "root", ROOT_PASSWORD), storage, backup.location, threads=4)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    # once the schema is in and rows are arriving, the target dies
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and not _has_rows(target):
        time.sleep(0.02)
    assert _has_rows(target), "the row load never started"
    target.kill()
    worker.join(BOUND)
    assert not worker.is_alive(), "the restore hung after its target died"
    assert len(outcome) == 1 and isinstance(outcome[0], RestoreFailed), outcome
    assert ROOT_PASSWORD not in str(outcome[0])
    assert not _clients_of(os.getpid()), "a client session outlived the failed restore"


def _has_rows(server: DbServer) -> bool:
    try:
        return bool(server.sql("SELECT COUNT(*) FROM shop.wide")[0][0])
    except Exception:
        return False


def _clients_of(parent: int) -> list[int]:
    """Live client tools started by `parent` (they log in with our option file; servers do not)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent and state != "Z" and "--defaults-extra-file=" in argv:
            found.append(int(entry.name))
    return found
