"""Backup and restore throughput on >= 1 GiB of generated data, next to a plain dump piped into a load.

    .venv/bin/python benchmarks/backup.py [--flavor mysql|mariadb] [--gib 1.05] [--work /tmp/bench-backup]
        [--method logical|physical] [--rounds N] [--compression zstd|none] [--threads 1,4]

Starts three servers of the flavor on 127.<IT_NET>.30.101-103 (MySQL: .31.x; IT_NET default 0) (the
source and two empty targets, the same config): real MySQL 9.7 from the cached root (its tools through
MYSQL_TOOLS_DIR, as in the operator's image) or MariaDB. With --method physical and MySQL, a fourth
on .31.104: the recipient (see below). Loads generated rows into the source with LOAD DATA, then, in
the same run:
  ours:  take_backup (the flavor's dump -> gzip -> directory storage, manifest) + restore into target 1,
         once per --threads value (the rows loaded in that many sessions; target emptied in between)
  plain: mysqldump|mariadb-dump --single-transaction | mysql|mariadb into target 2
MB/s is logical data (bytes of SQL the dump produces) per second. Both targets are checked against
the source with CHECKSUM TABLE. Every step has a time limit; the servers are stopped at the end.

With --method physical, ours is a physical backup (backup/physical.py; zstd level 1 -> directory
storage), taken as the operator's backup Job takes it: MariaDB with mariadb-backup reading the
source's data directory; MySQL through a recipient, a throwaway mysqld of the same version (the
Job's second container; here on its own, clone plugin loaded, performance_schema on) that runs
`CLONE INSTANCE FROM <source> DATA DIRECTORY = <a new directory under --work>` as root with a
password (as cli.recipient_from_env), the donor login being the source's root (BACKUP_ADMIN); the
directory is then tarred to storage and removed. Then its restore: target 1 stopped, its data
directory emptied, the backup unpacked (sha256 checked; mariadb-backup --prepare) and the server
started until it answers. MB/s is then the InnoDB size of the data per second. Each of the --rounds
rounds runs ours, then the plain pipeline (its target's database dropped first, not timed), and
checks both targets' checksums against the source; the medians over the rounds and their ratio are
printed, with each step of ours (clone, stream, unpack, prepare, start). The recipient serves every
round, each into a directory of its own, and is stopped at the end with the other servers.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import mysql_root  # noqa: E402

# The operator's image carries MySQL's tools in MYSQL_TOOLS_DIR; here wrappers over the cached root
# play that directory (set before the backup modules read it).
if "MYSQL_TOOLS_DIR" not in os.environ and mysql_root.is_built():
    _TOOLS_DIR = Path(tempfile.mkdtemp(prefix="bench-mysql-tools-"))
    atexit.register(shutil.rmtree, _TOOLS_DIR, ignore_errors=True)
    mysql_root.write_wrappers(_TOOLS_DIR)
    os.environ["MYSQL_TOOLS_DIR"] = str(_TOOLS_DIR)

from mysql_operator.backup.cli import recipient_from_env  # noqa: E402
from mysql_operator.backup.commands import Instance, Tools, child_env, defaults_file, load_command  # noqa: E402
from mysql_operator.backup.physical import (  # noqa: E402
    COMPRESSIONS,
    ZSTD,
    take_physical_backup,
    unpack_physical,
)
from mysql_operator.backup.restore import restore  # noqa: E402
from mysql_operator.backup.storage import DirectoryStorage  # noqa: E402
from mysql_operator.backup.take import take_backup  # noqa: E402
from mysql_operator.conventions import MYSQL_PORT, Flavor  # noqa: E402
from mysql_operator.mysql.session import Login  # noqa: E402
from tests.integration.servers import ROOT_PASSWORD, DbServer, make_server  # noqa: E402

NET = os.environ.get("IT_NET", "0")  # side-by-side runs use their own loopback block
# One address block per flavor, so both flavors' runs can go side by side.
HOSTS = {"mariadb": (f"127.{NET}.30.101", f"127.{NET}.30.102", f"127.{NET}.30.103"),
         "mysql": (f"127.{NET}.31.101", f"127.{NET}.31.102", f"127.{NET}.31.103")}
# MySQL physical: the throwaway server that clones the source (the backup Job's "recipient" container).
RECIPIENT_HOST = f"127.{NET}.31.104"
# As the integration tests' recipient: performance_schema on (clone_status is read there; the stock
# image's default too); the clone plugin is loaded by every MySQL test server (plugin_load_add).
RECIPIENT_CONFIG = {"performance_schema": "ON"}
CONFIG = {
    "read_only": "OFF",
    "innodb_buffer_pool_size": "2G",
    "innodb_flush_log_at_trx_commit": "2",
    "sync_binlog": "0",
    "max_allowed_packet": "1G",
    "local_infile": "ON",
}
# The same redo log size, spelled per flavor (MySQL 8.0.30+ sizes it with innodb_redo_log_capacity).
REDO_LOG = {Flavor.MARIADB: {"innodb_log_file_size": "1G"}, Flavor.MYSQL: {"innodb_redo_log_capacity": "2G"}}
STEP_TIMEOUT = 1800
CHUNK_ROWS = 250_000
WORDS = [
    *("order", "customer", "invoice", "shipping", "payment", "refund", "warehouse", "parcel"),
    *("delivery", "address", "street", "city", "discount", "coupon", "product", "category"),
    *("review", "rating", "stock", "supplier", "return", "exchange", "gift", "voucher"),
]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _instance(server: DbServer) -> Instance:
    return Instance(host=server.host, login=Login("root", ROOT_PASSWORD), flavor=server.flavor)


def _sentences(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(8, 40))) for _ in range(count)]


def generate(server: DbServer, work: Path, target_bytes: int) -> int:
    """Load rows of mixed text, hex and numbers until the CSV loaded reaches `target_bytes`."""
    import pymysql

    rng = random.Random(5)
    sentences = _sentences(rng, 20_000)
    server.sql("CREATE DATABASE bench")
    server.sql(
        "CREATE TABLE bench.orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(12,2), "
        "created DATETIME, token CHAR(64), note TEXT, KEY (customer))"
    )
    server.sql("CREATE TABLE bench.events (id BIGINT PRIMARY KEY, kind VARCHAR(32), payload TEXT)")
    loaded = 0
    next_id = 1
    csv = work / "chunk.tsv"
    connection = pymysql.connect(
        host=server.host,
        user="root",
        password=ROOT_PASSWORD,
        local_infile=True,
        autocommit=True,
        read_timeout=STEP_TIMEOUT,
    )
    try:
        with connection.cursor() as cursor:
            while loaded < target_bytes:
                lines = []
                for offset in range(CHUNK_ROWS):
                    row_id = next_id + offset
                    created = f"2026-{1 + row_id % 12:02d}-{1 + row_id % 28:02d} {row_id % 24:02d}:00:00"
                    lines.append(
                        f"{row_id}\t{rng.randrange(100_000)}\t{rng.randrange(10**7) / 100:.2f}\t{created}\t"
                        f"{os.urandom(32).hex()}\t{sentences[rng.randrange(len(sentences))]}\n"
                    )
                csv.write_text("".join(lines))
                loaded += csv.stat().st_size
                cursor.execute(
                    f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE bench.orders "
                    "(id, customer, amount, created, token, note)"
                )
                cursor.execute(
                    "INSERT INTO bench.events SELECT id, "
                    "ELT(1 + id %% 4, 'created', 'paid', 'shipped', 'done'), "
                    "CONCAT(token, ' ', LEFT(note, 80)) FROM bench.orders WHERE id >= %s AND id %% 3 = 0",
                    (next_id,),
                )
                next_id += CHUNK_ROWS
                _log(f"generated {loaded / 2**30:.2f} GiB of rows")
    finally:
        connection.close()
        csv.unlink(missing_ok=True)
    return loaded


def flavor_tools(flavor: Flavor) -> Tools:
    """The flavor's client tools: MySQL's from MYSQL_TOOLS_DIR (wrappers over the cached root here)."""
    tools = Tools.for_flavor(flavor)
    directory = os.environ.get("MYSQL_TOOLS_DIR")
    if flavor == Flavor.MYSQL and directory:
        return Tools(*(f"{directory}/{Path(name).name}" for name in (tools.dump, tools.client, tools.binlog)))
    return tools


def _recipient_instance(recipient: DbServer) -> Instance:
    """The recipient as the backup Job's command sees it (cli.recipient_from_env: root, a password)."""
    return recipient_from_env({"RECIPIENT_PASSWORD": ROOT_PASSWORD}, recipient.host, MYSQL_PORT)


def physical_backup_and_restore(source: DbServer, target: DbServer, recipient: DbServer | None, work: Path,
                                round_: int, compression: str) -> tuple[dict[str, float], int]:
    """Physical backup of `source` (MySQL: cloned by `recipient` into a new directory under `work`,
    as the backup Job does), restored into `target` (stopped, emptied, unpacked, started); returns
    the seconds of each step (backup, restore, and theirs) and the stored bytes."""
    storage = DirectoryStorage(work / "storage-physical")
    steps: dict[str, float] = {}
    name = f"bench-p{round_}"
    recipient_instance: Instance | None = None
    clone_dir: Path | None = None
    if source.flavor == Flavor.MYSQL:
        if recipient is None:
            raise RuntimeError("a MySQL physical backup needs the recipient server")
        recipient_instance = _recipient_instance(recipient)
        shared = work / "shared"  # the Job's directory that both of its containers mount
        shared.mkdir(exist_ok=True)
        clone_dir = shared / f"clone-{name}"  # new: the recipient creates it, the backup removes it
    began = time.monotonic()
    manifest = take_physical_backup(
        _instance(source), storage, cluster="bench", name=name,
        datadir=source.datadir if source.flavor == Flavor.MARIADB else None,
        recipient=recipient_instance, clone_dir=clone_dir, compression=compression, timings=steps,
    )
    backup_seconds = time.monotonic() - began
    _log(f"physical backup: {manifest.size / 2**30:.2f} GiB stored in {backup_seconds:.1f}s ({steps})")
    target.kill()
    shutil.rmtree(target.datadir)
    began = time.monotonic()
    unpack_physical(storage, manifest, target.datadir, timings=steps)
    started = time.monotonic()
    target.start()
    steps["start"] = time.monotonic() - started
    restore_seconds = time.monotonic() - began
    _log(f"physical restore (unpack, prepare, start) in {restore_seconds:.1f}s ({steps})")
    shutil.rmtree(work / "storage-physical")
    return {**steps, "backup": backup_seconds, "restore": restore_seconds}, manifest.size


def checksums(server: DbServer) -> list[tuple[object, ...]]:
    """CHECKSUM TABLE of the generated tables: over a GiB, so longer than the helper's read timeout."""
    connection = server.root_connection()
    try:
        connection._read_timeout = 1800  # pymysql's per-statement read timeout
        with connection.cursor() as cursor:
            cursor.execute("CHECKSUM TABLE bench.orders, bench.events")
            return list(cursor.fetchall())
    finally:
        connection.close()


def _reset(target: DbServer) -> None:
    """An empty target again: its copy of the data and the GTIDs a MySQL dump sets dropped."""
    target.sql("DROP DATABASE IF EXISTS bench")
    target.sql("RESET BINARY LOGS AND GTIDS" if target.flavor == Flavor.MYSQL else "RESET MASTER")


def plain_dump_and_load(source: DbServer, target: DbServer) -> float:
    """The flavor's `dump --single-transaction | client`, the baseline; returns seconds. The target's
    copy of a previous round is dropped first (not timed)."""
    _reset(target)  # MySQL's dump sets GTID_PURGED, refused once the target holds those GTIDs
    tools = flavor_tools(source.flavor)
    with defaults_file(_instance(source)) as source_cnf, defaults_file(_instance(target)) as target_cnf:
        dump = [
            tools.dump,
            f"--defaults-extra-file={source_cnf}",
            "--single-transaction",
            "--quick",
            "--max-allowed-packet=1G",
            "--databases",
            "bench",
        ]
        began = time.monotonic()
        producer = subprocess.Popen(dump, stdout=subprocess.PIPE, env=child_env())
        consumer = subprocess.run(
            load_command(tools, target_cnf),
            stdin=producer.stdout,
            env=child_env(),
            timeout=STEP_TIMEOUT,
            check=False,
        )
        assert producer.stdout is not None
        producer.stdout.close()
        if producer.wait(timeout=STEP_TIMEOUT) != 0 or consumer.returncode != 0:
            raise RuntimeError(f"plain {tools.dump} | {tools.client} failed")
        return time.monotonic() - began


def physical_rounds(rounds: int, compression: str, source: DbServer, ours_target: DbServer,
                    plain_target: DbServer, recipient: DbServer | None, work: Path,
                    expected: list[tuple[object, ...]], plain_name: str, loaded: int,
                    table_bytes: int) -> int:
    """Ours then plain, `rounds` times, every restore checked against the source; prints medians."""
    ours: list[dict[str, float]] = []
    plain: list[float] = []
    all_ok = True
    stored = 0
    for round_ in range(1, rounds + 1):
        steps, stored = physical_backup_and_restore(source, ours_target, recipient, work, round_, compression)
        ours_ok = checksums(ours_target) == expected
        _log(f"round {round_}: plain {plain_name} ...")
        plain.append(plain_dump_and_load(source, plain_target))
        plain_ok = checksums(plain_target) == expected
        ours.append(steps)
        all_ok = all_ok and ours_ok and plain_ok
        _log(f"round {round_}: ours {steps['backup'] + steps['restore']:.1f}s, plain {plain[-1]:.1f}s, "
             f"checksums equal: ours {ours_ok}, plain {plain_ok}")
    mb = table_bytes / 1e6
    totals = [r["backup"] + r["restore"] for r in ours]
    median_ours, median_plain = statistics.median(totals), statistics.median(plain)
    print()
    print(f"flavor: {source.flavor.value}, {source.sql('SELECT VERSION()')[0][0]}")
    print(f"data: {loaded / 2**30:.2f} GiB generated rows, InnoDB {table_bytes / 2**30:.2f} GiB, "
          f"physical backup stored {stored / 2**30:.2f} GiB ({compression}); {rounds} round(s), medians")
    print(f"{'step':<48} {'seconds':>8} {'MB/s':>8}   rounds")
    names = {"clone": "ours:   CLONE INSTANCE into a recipient (MySQL)",
             "stream": "ours:   copy | compress | hash | store",
             "manifest": "ours:   manifest", "unpack": "ours:   fetch | hash | decompress | extract",
             "prepare": "ours:   mariadb-backup --prepare", "start": "ours:   server start until it answers"}
    rows = [("ours: physical backup", [r["backup"] for r in ours])]
    rows += [(names[k], [r[k] for r in ours]) for k in ("clone", "stream", "manifest") if k in ours[0]]
    rows += [("ours: physical restore", [r["restore"] for r in ours])]
    rows += [(names[k], [r[k] for r in ours]) for k in ("unpack", "prepare", "start") if k in ours[0]]
    rows += [("ours: backup + restore", totals), (f"plain: {plain_name}", plain)]
    for name, values in rows:
        median = statistics.median(values)
        rate = f"{'':>8}" if name.startswith("ours:   ") else f"{mb / median:>8.1f}"
        print(f"{name:<48} {median:>8.1f} {rate}   " + " ".join(f"{v:.1f}" for v in values))
    print(f"ratio plain dump|load / ours (backup+restore), medians: {median_plain / median_ours:.2f}x faster")
    print(f"checksums equal to the source after every restore: {all_ok}")
    return 0 if all_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--gib", type=float, default=1.05, help="GiB of rows to generate (>= 1 for the issue)"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-backup"))
    parser.add_argument(
        "--flavor", choices=[f.value for f in Flavor], default=Flavor.MYSQL.value, help="server flavor"
    )
    parser.add_argument("--method", choices=["logical", "physical"], default="logical")
    parser.add_argument("--threads", type=lambda v: [int(n) for n in v.split(",")], default=[1, 4],
                        help="logical: the restore's sessions, one restore each, in order (default 1,4; "
                             "the last counts in backup + restore)")
    parser.add_argument("--rounds", type=int, default=1, help="physical: rounds of ours and plain (medians)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default=ZSTD, help="physical: of the stream")
    args = parser.parse_args()
    flavor = Flavor(args.flavor)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    servers = [
        make_server(flavor, i, host, args.work / f"db{i}", {**CONFIG, **REDO_LOG[flavor]})
        for i, host in enumerate(HOSTS[args.flavor])
    ]
    source, ours_target, plain_target = servers
    recipient: DbServer | None = None
    if args.method == "physical" and flavor == Flavor.MYSQL:
        recipient = make_server(flavor, len(servers), RECIPIENT_HOST, args.work / "recipient",
                                RECIPIENT_CONFIG)
        servers.append(recipient)
    try:
        for server in servers:
            server.start()
        began = time.monotonic()
        loaded = generate(source, args.work, int(args.gib * 2**30))
        _log(f"loaded {loaded / 2**30:.2f} GiB of CSV in {time.monotonic() - began:.0f}s")
        source.sql("ANALYZE TABLE bench.orders, bench.events")
        size_row = source.sql(
            "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = 'bench'"
        )
        table_bytes = int(str(size_row[0][0]))
        expected = checksums(source)

        tools = flavor_tools(flavor)
        plain_name = f"{Path(tools.dump).name} | {Path(tools.client).name}"
        if args.method == "physical":
            return physical_rounds(args.rounds, args.compression, source, ours_target, plain_target,
                                   recipient, args.work, expected, plain_name, loaded, table_bytes)
        storage = DirectoryStorage(args.work / "storage")
        began = time.monotonic()
        manifest = take_backup(_instance(source), storage, cluster="bench", name="bench-1", progress=_log,
                               tools=tools)
        backup_seconds = time.monotonic() - began
        restores: dict[int, float] = {}
        restored_ok: dict[int, bool] = {}
        for threads in args.threads:
            _reset(ours_target)  # empty again (not timed)
            began = time.monotonic()
            restore(
                _instance(ours_target),
                storage,
                "bench-1",
                tools=tools,
                progress=lambda step, message: _log(f"{step}: {message}"),
                threads=threads,
            )
            restores[threads] = time.monotonic() - began
            restored_ok[threads] = checksums(ours_target) == expected
            _log(f"restore with {threads} session(s): {restores[threads]:.1f}s, checksums equal: "
                 f"{restored_ok[threads]}")
        restore_seconds = restores[args.threads[-1]]
        _log(f"plain {plain_name} ...")
        plain_seconds = plain_dump_and_load(source, plain_target)

        ours_ok = all(restored_ok.values())
        plain_ok = checksums(plain_target) == expected
        logical = manifest.uncompressed_size
        mb = logical / 1e6
        ours_total = backup_seconds + restore_seconds
        rows = [("ours: backup (dump+gzip+store)", backup_seconds, mb / backup_seconds)]
        rows += [(f"ours: restore, {n} session(s)", t, mb / t) for n, t in restores.items()]
        rows += [
            (f"ours: backup + restore ({args.threads[-1]})", ours_total, mb / ours_total),
            (f"plain: {plain_name}", plain_seconds, mb / plain_seconds),
        ]
        print()
        print(f"flavor: {flavor.value}, {source.sql('SELECT VERSION()')[0][0]}")
        print(f"data: {loaded / 2**30:.2f} GiB generated rows, InnoDB {table_bytes / 2**30:.2f} GiB,")
        stored = manifest.size / 2**30
        print(f"      dump {logical / 2**30:.2f} GiB of SQL, stored {stored:.2f} GiB (gzip level 1)")
        print(f"{'step':<34} {'seconds':>8} {'MB/s':>8}")
        for name, seconds, rate in rows:
            print(f"{name:<34} {seconds:>8.1f} {rate:>8.1f}")
        print(f"ratio ours (backup+restore) / plain dump|load: {ours_total / plain_seconds:.2f}")
        first = args.threads[0]
        for n, t in restores.items():
            if n != first:
                print(f"restore speed-up, {n} sessions against {first}: {restores[first] / t:.2f}x")
        print(f"checksums equal to the source: ours {ours_ok} (every restore), plain {plain_ok}")
        return 0 if ours_ok and plain_ok else 1
    finally:
        for server in servers:
            server.kill()
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
