"""Day-2 operations on the e2e cluster, each under a steady write load through the -primary Service.

One 3-instance cluster per flavor (real MySQL 9.7, MariaDB 10.11) serves the whole module, in this
order: a live config change (no restart), a restarting config change and an image change (rollout
order: replicas one at a time, then a switchover, then the old primary), an errant replica (reported,
then re-seeded once autoReseed is on), scale 3 -> 5 (new instances seeded from a replica: CLONE on
MySQL) -> 2 (the primary moved off the removed ordinals first). Every test asserts that no
acknowledged write is missing.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pytest

from tests.e2e.conftest import (
    DOWNGRADES,
    FLAVORS,
    ROLLOUT_IMAGES,
    VERSIONS,
    Cluster,
    cluster_spec,
    connect,
    wait_for,
)

pytestmark = pytest.mark.e2e

NAME = "d2"
ADMIN = "mysqlop_admin"  # the operator's user: root is local to its pod only
NODE_PORTS = {"mysql": 30417, "mariadb": 30418}
ROLE = "mysql.operator.dev/role"
MAX_WRITES = 20_000
MAX_WRITE_SECONDS = 400.0


class D2(Cluster):
    """The e2e cluster seen from one flavor's MysqlCluster: its namespace and its NodePort."""

    def __init__(self, cluster: D2, flavor: str) -> None:
        super().__init__(cluster.sandbox)
        self.flavor = flavor
        self.ns = f"day2-{flavor}"
        self.node_port = NODE_PORTS[flavor]


def manifest(flavor: str) -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": NAME},
        "spec": cluster_spec(
            flavor,
            replication={"mode": "async", "failoverGraceSeconds": 10},
            application={"database": "app", "user": "app"},
            service={"type": "NodePort", "nodePort": NODE_PORTS[flavor]},
        ),
    }


def patch(cluster: D2, body: dict[str, Any]) -> None:
    cluster.kubectl("patch", "mysqlcluster", NAME, "-n", cluster.ns, "--type=merge", "-p", json.dumps(body))


def secret(cluster: D2, key: str) -> str:
    return cluster.secret(f"{NAME}-credentials", cluster.ns)[key]


@pytest.fixture(scope="module", params=FLAVORS)
def d2(operator: Cluster, request: pytest.FixtureRequest) -> Iterator[D2]:
    cluster = D2(operator, request.param)
    cluster.create_namespace(cluster.ns)
    cluster.apply(manifest(cluster.flavor), cluster.ns)
    cluster.wait_ready(NAME, cluster.ns, timeout=420)
    with via_service(cluster) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS writes (id INT PRIMARY KEY, at DOUBLE)")
    yield cluster
    cluster.kubectl("delete", "namespace", cluster.ns, "--wait=false")  # flavors do not pile up


def via_service(cluster: D2) -> Any:
    return connect("127.0.0.1", "app", secret(cluster, "app-password"), "app", port=cluster.node_port)


@dataclass
class Writer:
    """Inserts rows through the -primary Service one at a time; records every acknowledged id."""

    cluster: D2
    next_id: int
    acknowledged: list[int] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        password = secret(self.cluster, "app-password")
        deadline = time.monotonic() + MAX_WRITE_SECONDS
        conn: Any = None
        while not self.stop.is_set() and len(self.acknowledged) < MAX_WRITES and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = connect("127.0.0.1", "app", password, "app", port=self.cluster.node_port)
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO writes VALUES (%s, %s)", (self.next_id, time.time()))
                self.acknowledged.append(self.next_id)
            except pymysql.err.MySQLError:
                self.errors += 1
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection is already gone
                        conn.close()
                conn = None
                time.sleep(0.1)
            self.next_id += 1  # an unacknowledged id is never retried: its fate is unknown
            time.sleep(0.02)
        if conn is not None:
            conn.close()


_next_id = [1]


@contextmanager
def write_load(cluster: D2, what: str) -> Iterator[Writer]:
    """A writer thread for the duration of the block; afterwards every acknowledged write must be
    on the primary and every instance must hold the same data."""
    writer = Writer(cluster, _next_id[0])
    thread = threading.Thread(target=writer.run, name=f"writer-{what}", daemon=True)
    thread.start()
    wait_for(lambda: len(writer.acknowledged) >= 20, 60, "the first writes acknowledged")
    try:
        yield writer
    finally:
        writer.stop.set()
        thread.join(timeout=30)
        _next_id[0] = writer.next_id + 1
    acked = set(writer.acknowledged)
    with via_service(cluster) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM writes WHERE id >= %s", (min(acked),))
        present = {int(row[0]) for row in cur.fetchall()}
    lost = acked - present
    print(f"[{what}] writes acknowledged={len(acked)} lost={len(lost)} errors={writer.errors}")
    assert not lost, f"{len(lost)} acknowledged writes lost: {sorted(lost)[:20]}"
    wait_for(lambda: converged(cluster), 90, "equal checksums on every instance")


def pod_names(cluster: D2) -> list[str]:
    return sorted(
        p["metadata"]["name"] for p in cluster.items("pods", cluster.ns, f"app.kubernetes.io/instance={NAME}")
    )


def checksums(cluster: D2) -> dict[str, Any]:
    admin = secret(cluster, "operator-password")
    sums = {}
    for pod in pod_names(cluster):
        with connect(cluster.pod_ip(pod, cluster.ns), ADMIN, admin, "app") as conn, conn.cursor() as cur:
            cur.execute("CHECKSUM TABLE app.writes")
            sums[pod] = cur.fetchone()[1]
    return sums


def converged(cluster: D2) -> bool:
    sums = checksums(cluster)
    ready = cluster.status(NAME, cluster.ns).get("readyInstances", -1)
    return len(sums) == ready and len(set(sums.values())) == 1


def variable(cluster: D2, pod: str, name: str) -> Any:
    with (
        connect(cluster.pod_ip(pod, cluster.ns), ADMIN, secret(cluster, "operator-password")) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(f"SELECT @@GLOBAL.{name}")
        return cur.fetchone()[0]


def primary_of(cluster: D2) -> str | None:
    return cluster.status(NAME, cluster.ns).get("primary")


@dataclass
class RolloutWatch:
    """Pod incarnations seen while a rollout runs: the order of restarts and how many were down at once."""

    cluster: D2
    initial: dict[str, str] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)
    most_down: int = 0

    def __post_init__(self) -> None:
        self.initial = self.uids()

    def uids(self) -> dict[str, str]:
        pods = self.cluster.items("pods", self.cluster.ns, f"app.kubernetes.io/instance={NAME}")
        return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}

    def poll(self) -> None:
        pods = self.cluster.items("pods", self.cluster.ns, f"app.kubernetes.io/instance={NAME}")
        down = 0
        for pod in pods:
            name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
            if uid != self.initial.get(name) and name not in self.restarted:
                self.restarted.append(name)
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )
            down += 0 if ready and not pod["metadata"].get("deletionTimestamp") else 1
        down += len(self.initial) - len(pods)
        self.most_down = max(self.most_down, down)

    def until_all_restarted(self, timeout: float) -> None:
        def done() -> bool:
            self.poll()
            return len(self.restarted) == len(self.initial)

        wait_for(done, timeout, "every pod restarted", interval=0.3)


def assert_rollout_order(cluster: D2, watch: RolloutWatch, old_primary: str) -> None:
    print(
        f"restart order: {watch.restarted} (primary was {old_primary}); most down at once: {watch.most_down}"
    )
    assert watch.restarted[-1] == old_primary, "the old primary restarts last"
    assert watch.most_down <= 1, "one instance at a time"
    last = cluster.status(NAME, cluster.ns)["roleChanges"][-1]
    assert last["kind"] == "switchover" and last["from"] == old_primary
    assert last["to"] in watch.restarted[:-1], "the primary moved to an already updated replica"


# Tests --------------------------------------------------------------------------------------------


def test_live_config_change_restarts_nothing(d2: D2) -> None:
    before = RolloutWatch(d2)
    with write_load(d2, "live config"):
        patch(d2, {"spec": {"mysqlConfig": {"max_connections": "321", "long_query_time": "3"}}})
        for pod in pod_names(d2):
            wait_for(lambda p=pod: variable(d2, p, "max_connections") == 321, 60, f"max_connections on {pod}")
            assert float(variable(d2, pod, "long_query_time")) == 3.0
    assert before.uids() == before.initial, "no pod was restarted"
    assert "ConfigApplied" in {e["reason"] for e in d2.events(d2.ns, NAME)}


def test_restarting_config_change_rolls_replicas_first_then_the_primary(d2: D2) -> None:
    old_primary = primary_of(d2)
    assert old_primary is not None
    watch = RolloutWatch(d2)
    started = time.monotonic()
    with write_load(d2, "restarting config"):
        patch(
            d2,
            {
                "spec": {
                    "mysqlConfig": {
                        "max_connections": "321",
                        "long_query_time": "3",
                        "table_open_cache_instances": "3",
                    }
                }
            },
        )
        watch.until_all_restarted(300)
        d2.wait_ready(NAME, d2.ns, timeout=180)
    print(f"config rollout took {time.monotonic() - started:.1f}s")
    assert_rollout_order(d2, watch, old_primary)
    for pod in pod_names(d2):
        assert variable(d2, pod, "table_open_cache_instances") == 3
        assert variable(d2, pod, "max_connections") == 321


def test_image_change_rolls_replicas_first_then_the_primary(d2: D2) -> None:
    old_primary = primary_of(d2)
    assert old_primary is not None
    watch = RolloutWatch(d2)
    started = time.monotonic()
    with write_load(d2, "version change"):
        patch(d2, {"spec": {"image": ROLLOUT_IMAGES[d2.flavor][1]}})
        watch.until_all_restarted(300)
        d2.wait_ready(NAME, d2.ns, timeout=180)
    print(f"image rollout took {time.monotonic() - started:.1f}s")
    assert_rollout_order(d2, watch, old_primary)
    pods = d2.items("pods", d2.ns, f"app.kubernetes.io/instance={NAME}")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {ROLLOUT_IMAGES[d2.flavor][1]}


def test_major_downgrade_is_refused(d2: D2) -> None:
    pods_before = RolloutWatch(d2)
    out = d2.kubectl(
        "patch",
        "mysqlcluster",
        NAME,
        "-n",
        d2.ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"version": DOWNGRADES[d2.flavor][0], "image": DOWNGRADES[d2.flavor][1]}}),
        check=False,
    )
    print(f"downgrade refused by the API: {out.strip()[-200:]}")
    assert "downgrade" in out
    assert d2.get("mysqlcluster", NAME, d2.ns)["spec"]["version"] == VERSIONS[d2.flavor]
    d2.wait_ready(NAME, d2.ns, timeout=120)
    assert pods_before.uids() == pods_before.initial, "nothing was restarted for the refused change"


def test_errant_replica_is_reported_then_reseeded(d2: D2) -> None:
    status = d2.status(NAME, d2.ns)
    victim = next(i["name"] for i in status["instances"] if i["role"] == "replica")
    admin = secret(d2, "operator-password")
    with write_load(d2, "re-seed"):
        with connect(d2.pod_ip(victim, d2.ns), ADMIN, admin, "app") as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only=0")
            cur.execute("SET SESSION sql_log_bin=1")
            cur.execute("INSERT INTO writes VALUES (%s, 0)", (999_999_999,))
            cur.execute("SET GLOBAL read_only=1")

        def reported() -> bool:
            cond = d2.condition(NAME, d2.ns, "Degraded") or {}
            return cond.get("status") == "True" and "autoReseed" in cond.get("message", "")

        wait_for(reported, 60, "the errant replica reported in the Degraded condition")
        assert "ErrantTransactions" in {e["reason"] for e in d2.events(d2.ns, NAME)}
        started = time.monotonic()
        patch(d2, {"spec": {"replication": {"autoReseed": True}}})

        def reseeded() -> bool:
            return any(
                e["reason"] == "InstanceSeeded"
                and e["message"].startswith(f"instance {victim.rsplit('-', 1)[1]}: re-seeding")
                for e in d2.events(d2.ns, NAME)
            )

        wait_for(reseeded, 180, f"{victim} re-seeded")
        d2.wait_ready(NAME, d2.ns, timeout=120)
        print(f"re-seed of {victim}: {time.monotonic() - started:.1f}s from autoReseed on to Ready")
    with connect(d2.pod_ip(victim, d2.ns), ADMIN, admin, "app") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM writes WHERE id = 999999999")
        assert cur.fetchone()[0] == 0, "the errant row is gone"


def test_scale_up_seeds_new_instances_from_a_replica(d2: D2) -> None:
    primary = primary_of(d2)
    messages: set[str] = set()
    started = time.monotonic()
    with write_load(d2, "scale 3->5"):
        patch(d2, {"spec": {"instances": 5}})

        def ready_five() -> bool:
            status = d2.status(NAME, d2.ns)
            messages.update(i.get("message") or "" for i in status.get("instances") or [])
            cond = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            return status.get("instancesReady") == "5/5" and cond.get("status") == "True"

        wait_for(ready_five, 300, "5/5 Ready", interval=0.3)
    print(f"scale 3->5 took {time.monotonic() - started:.1f}s; status messages seen: {sorted(messages)}")
    seeds = [e["message"] for e in d2.events(d2.ns, NAME) if e["reason"] == "SeedStarted"]
    for ordinal in (3, 4):
        started_seed = [m for m in seeds if m.startswith(f"instance {ordinal}: seeding from ")]
        assert started_seed, f"instance {ordinal} was seeded: {seeds}"
        assert f"seeding from {primary} " not in started_seed[-1], "seeded from a replica, not the primary"
    done = [e["message"] for e in d2.events(d2.ns, NAME) if e["reason"] == "InstanceSeeded"]
    print(f"seeds done: {done}")


def test_scale_down_moves_the_primary_off_removed_ordinals_first(d2: D2) -> None:
    patch(d2, {"spec": {"replication": {"switchoverTo": 4}}})
    wait_for(lambda: primary_of(d2) == f"{NAME}-4", 120, f"{NAME}-4 primary")
    d2.wait_ready(NAME, d2.ns, timeout=120)
    roles_at_deletion: dict[str, str] = {}
    started = time.monotonic()
    with write_load(d2, "scale 5->2"):
        patch(d2, {"spec": {"instances": 2, "replication": {"switchoverTo": None}}})

        def scaled() -> bool:
            for pod in d2.items("pods", d2.ns, f"app.kubernetes.io/instance={NAME}"):
                meta = pod["metadata"]
                if meta.get("deletionTimestamp") and meta["name"] not in roles_at_deletion:
                    roles_at_deletion[meta["name"]] = (meta.get("labels") or {}).get(ROLE, "")
            status = d2.status(NAME, d2.ns)
            return pod_names(d2) == [f"{NAME}-0", f"{NAME}-1"] and status.get("instancesReady") == "2/2"

        wait_for(scaled, 300, "2 instances left", interval=0.3)
        d2.wait_ready(NAME, d2.ns, timeout=120)
    print(f"scale 5->2 took {time.monotonic() - started:.1f}s; roles at deletion: {roles_at_deletion}")
    assert primary_of(d2) in (f"{NAME}-0", f"{NAME}-1")
    assert all(role != "primary" for role in roles_at_deletion.values()), roles_at_deletion
    last = d2.status(NAME, d2.ns)["roleChanges"][-1]
    assert last["kind"] == "switchover" and last["from"] == f"{NAME}-4"
    scaled = [e["message"] for e in d2.events(d2.ns, NAME) if e["reason"] == "Scaled"]
    print(f"scale events: {scaled}")
    assert any("-> 2 (primary is instance 0)" in m or "-> 2 (primary is instance 1)" in m for m in scaled)

    def volumes_gone() -> bool:
        claims = {c["metadata"]["name"] for c in d2.items("pvc", d2.ns)}
        return not claims & {f"data-{NAME}-{o}" for o in (2, 3, 4)}

    wait_for(volumes_gone, 60, "volumes of removed instances deleted (pvcRetention: Delete)")
