"""Failover on the e2e cluster: seconds to a writable new primary behind the Service, and writes lost.

For each replication mode (async, semi-sync): a 3-instance MariaDB MysqlCluster, a client writing
through the -primary Service (NodePort on 127.0.0.1) and recording every acknowledged write; K
times, the primary's mysqld is killed with SIGKILL and kept down (a lost node) through the node
agent. Measured: seconds from the kill until the Service reaches a writable primary on another
instance (detection, the grace period, promotion and relabelling included) and the acknowledged
writes missing on the new primary. Between rounds the lost instance comes back; one the operator
refuses to rejoin (errant transactions: the writes it took but never shipped) is re-created empty
so the next round starts from three healthy instances.

    .venv/bin/python benchmarks/failover.py [--rounds 5] [--grace 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.demo import install_operator  # noqa: E402
from sandbox.instance import Sandbox  # noqa: E402
from tests.e2e.conftest import Cluster, connect, wait_for  # noqa: E402

NS = "bench"
NODE_PORT = 30506
WRITE_BUDGET_SECONDS = 600  # the writer stops by itself after this


def manifest(name: str, mode: str, grace: int) -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": name},
        "spec": {
            "flavor": "mariadb",
            "instances": 3,
            "replication": {"mode": mode, "failoverGraceSeconds": grace},
            "application": {"database": "bench", "user": "bench"},
            "storage": {"size": "1Gi", "pvcRetention": "Delete"},
            "service": {"type": "NodePort", "nodePort": NODE_PORT},
        },
    }


class Writer(threading.Thread):
    """Inserts rows through the Service; an id is acknowledged once its autocommit INSERT returned."""

    def __init__(self, password: str, first_id: int) -> None:
        super().__init__(daemon=True)
        self.password = password
        self.acknowledged: list[int] = []
        self.stop = threading.Event()
        self.next_id = first_id

    def run(self) -> None:
        deadline = time.monotonic() + WRITE_BUDGET_SECONDS
        conn = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = pymysql.connect(
                        host="127.0.0.1",
                        port=NODE_PORT,
                        user="bench",
                        password=self.password,
                        database="bench",
                        connect_timeout=2,
                        read_timeout=5,
                        write_timeout=5,
                        autocommit=True,
                    )
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO writes (id) VALUES (%s)", (self.next_id,))
                self.acknowledged.append(self.next_id)
                self.next_id += 1
            except pymysql.MySQLError:
                self.next_id += 1  # that id may or may not exist: it was never acknowledged
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def service_primary(password: str) -> tuple[int, int] | None:
    """(server_id, read_only) of whatever the Service reaches now, or None."""
    try:
        with connect("127.0.0.1", "bench", password, "bench", port=NODE_PORT) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@server_id, @@read_only")
            row = cur.fetchone()
            return int(row[0]), int(row[1])
    except pymysql.MySQLError:
        return None


def missing_on_primary(cluster: Cluster, name: str, root: str, ids: list[int]) -> int:
    primary = cluster.status(name, NS)["primary"]
    with connect(cluster.pod_ip(primary, NS), "mysqlop_admin", root, "bench") as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM writes")
        present = {row[0] for row in cur.fetchall()}
    return sum(1 for i in ids if i not in present)


def heal(cluster: Cluster, name: str, lost: str) -> str:
    """Bring the lost instance back; re-create it empty when the operator will not rejoin it."""
    cluster.sandbox.release_container(NS, lost, "mysqld")
    try:
        wait_for(lambda: cluster.condition(name, NS, "Ready")["status"] == "True", 60, "rejoin")  # type: ignore[index]
        return "rejoined"
    except AssertionError:
        cluster.kubectl("delete", "pvc", f"data-{lost}", "-n", NS, "--wait=false")
        cluster.kubectl("delete", "pod", lost, "-n", NS, "--wait=true", "--timeout=60s")
        cluster.wait_ready(name, NS, timeout=240)
        return "re-created"


def run_mode(cluster: Cluster, mode: str, rounds: int, grace: int) -> dict[str, Any]:
    name = f"fo-{mode.replace('-', '')}"
    cluster.apply(manifest(name, mode, grace), NS)
    cluster.wait_ready(name, NS, timeout=300)
    secrets = cluster.secret(f"{name}-credentials", NS)
    password, root = secrets["app-password"], secrets["operator-password"]
    with connect("127.0.0.1", "bench", password, "bench", port=NODE_PORT) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS writes (id BIGINT PRIMARY KEY)")
    times: list[float] = []
    lost_total = 0
    acknowledged_total = 0
    outcomes: list[str] = []
    for round_no in range(1, rounds + 1):
        writer = Writer(password, first_id=round_no * 10_000_000)
        writer.start()
        wait_for(lambda w=writer: len(w.acknowledged) >= 50, 60, "a steady write load")
        old = cluster.status(name, NS)["primary"]
        old_server = service_primary(password)
        assert old_server is not None and old_server[1] == 0
        killed_at = time.monotonic()
        cluster.sandbox.kill_container(NS, old, "mysqld", keep_down=True)
        wait_for(
            lambda s=old_server[0]: (p := service_primary(password)) and p[0] != s and p[1] == 0,
            180,
            "a writable new primary behind the Service",
            interval=0.05,
        )
        seconds = time.monotonic() - killed_at
        acknowledged_at_promotion = len(writer.acknowledged)
        wait_for(
            lambda w=writer, n=acknowledged_at_promotion: len(w.acknowledged) >= n + 20,
            60,
            "writes acknowledged by the new primary",
        )
        writer.stop.set()
        writer.join(10)
        lost = missing_on_primary(cluster, name, root, writer.acknowledged)
        times.append(seconds)
        lost_total += lost
        acknowledged_total += len(writer.acknowledged)
        outcomes.append(heal(cluster, name, old))
        print(
            f"# {mode} round {round_no}: {seconds:.2f}s to a writable primary, {len(writer.acknowledged)} "
            f"acknowledged, {lost} lost, old primary {outcomes[-1]}",
            file=sys.stderr,
            flush=True,
        )
    cluster.kubectl("delete", "mysqlcluster", name, "-n", NS, "--wait=true", "--timeout=120s")
    return {
        "mode": mode,
        "rounds": rounds,
        "median": statistics.median(times),
        "max": max(times),
        "acknowledged": acknowledged_total,
        "lost": lost_total,
        "rejoined": outcomes.count("rejoined"),
        "recreated": outcomes.count("re-created"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--grace", type=int, default=2, help="spec.replication.failoverGraceSeconds")
    parser.add_argument("--modes", default="async,semi-sync")
    args = parser.parse_args()
    box = Sandbox("bench-failover", nodes=3)
    box.down()
    shutil.rmtree(box.dir, ignore_errors=True)
    box.up(timeout=3 * 3600, progress=lambda line: print(f"# {line}", file=sys.stderr, flush=True))
    try:
        cluster = Cluster(box)
        install_operator(box)
        cluster.create_namespace(NS)
        rows = [run_mode(cluster, mode, args.rounds, args.grace) for mode in args.modes.split(",")]
    finally:
        box.down()
    print(
        f"Failover of a 3-instance MariaDB cluster, primary's mysqld SIGKILLed and kept down, "
        f"failoverGraceSeconds={args.grace}, operator timer 2 s"
    )
    print(
        "| mode | rounds | median s to writable primary via Service | max s | acknowledged writes | "
        "lost | old primary rejoined / re-created |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['rounds']} | {row['median']:.2f} | {row['max']:.2f} | "
            f"{row['acknowledged']} | {row['lost']} | {row['rejoined']} / {row['recreated']} |"
        )
    if len(rows) == 2 and rows[0]["median"]:
        print(f"semi-sync median / async median = {rows[1]['median'] / rows[0]['median']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
