"""A consistency checker for a MysqlCluster in the sandbox while faults are injected.

Client threads write through the cluster's `-primary` Service (its NodePort on 127.0.0.1) with unique
ids; a write is acknowledged only when its COMMIT returned OK. A sampler reads `@@read_only` (and
`@@super_read_only` on MySQL) on every instance by pod IP at a bounded rate. After a fault and its
heal, `verify` asserts the invariants a user relies on:

(a) every acknowledged write is on the primary; in async mode (documented to lose the writes the
    primary acknowledged that no replica received) every missing write must be accounted for: the
    operator reported at least that many transactions discarded (status.topology.discarded) since the
    load started, never a silent loss;
(b) no sample saw two instances accepting writes (split brain);
(c) the cluster returned to Ready with one writable primary, the one status names, without anyone
    acting (bounded wait: a cluster that needs longer "needed a human");
(d) CHECKSUM TABLE agrees on every instance (bounded wait for replicas to catch up).

Only 127.0.0.0/8 is dialled. Every loop is bounded in time; every connection has short timeouts.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymysql

from mysql_operator.conventions import OPERATOR_USER as ADMIN_USER
from mysql_operator.conventions import ordinal_of_pod, server_id_for_ordinal

if TYPE_CHECKING:
    from sandbox.instance import Sandbox

TABLE = "fault_writes"
GROUP = "mysql.operator.dev"
WRITE_BUDGET_SECONDS = 1800.0  # writers and sampler stop by themselves after this
CONNECT_TIMEOUT, READ_TIMEOUT = 1, 3


@dataclass(frozen=True)
class Ack:
    """One acknowledged write: its id, when COMMIT returned, and the server_id that took it."""

    id: int
    at: float
    server_id: int


@dataclass(frozen=True)
class Sample:
    """One sampling pass over every instance: ip -> (server_id, accepts writes), None if unreachable."""

    started: float
    ended: float
    instances: dict[str, tuple[int, bool] | None]

    def writable(self) -> list[str]:
        return sorted(ip for ip, seen in self.instances.items() if seen is not None and seen[1])


@dataclass
class Verdict:
    """What verify found; `problems` is empty when every invariant held."""

    acknowledged: int = 0
    lost: list[int] = field(default_factory=list)
    split_brain: list[Sample] = field(default_factory=list)
    recovered: bool = False
    primary: str | None = None
    checksums: dict[str, Any] = field(default_factory=dict)
    reported_discarded: int = 0  # async: transactions the operator reported discarded since the start
    problems: list[str] = field(default_factory=list)

    @property
    def needed_human(self) -> bool:
        return not self.recovered


class ConsistencyChecker:
    """Writers and a read_only sampler against one MysqlCluster; `verify` checks the invariants."""

    def __init__(self, sandbox: Sandbox, namespace: str, cluster: str, node_port: int, *,
                 writers: int = 2, sample_interval: float = 0.25) -> None:
        self.sandbox = sandbox
        self.namespace = namespace
        self.cluster = cluster
        self.node_port = node_port
        self.writer_count = writers
        self.sample_interval = sample_interval
        self.acks: list[Ack] = []
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._ids = itertools.count(int(time.time() * 1000) * 1000)  # unique across checkers of a run
        self._ips: list[str] = []
        self._ips_read = 0.0
        secret = self._kube_get(f"/api/v1/namespaces/{namespace}/secrets/{cluster}-credentials")["data"]
        plain = {k: base64.b64decode(v).decode() for k, v in secret.items()}
        # Reads of every instance log in as the operator's user: root is local to its pod only.
        self.admin_password = plain["operator-password"]
        self.app_user, self.app_password = plain["app-user"], plain["app-password"]
        self.database = plain["app-database"]
        spec = self.resource()["spec"]
        self.flavor = str(spec.get("flavor", "mysql"))
        self.lossless = (spec.get("replication") or {}).get("mode") == "semi-sync"
        self.started_wall = time.time()

    # ---- reads of the cluster ------------------------------------------------------------------------

    def _kube_get(self, path: str) -> dict[str, Any]:
        return dict(self.sandbox.kube().get(path))

    def resource(self) -> dict[str, Any]:
        path = f"/apis/{GROUP}/v1alpha1/namespaces/{self.namespace}/mysqlclusters/{self.cluster}"
        return self._kube_get(path)

    def pods(self) -> list[dict[str, Any]]:
        selector = (f"app.kubernetes.io/name=mysql,app.kubernetes.io/instance={self.cluster},"
                    "app.kubernetes.io/component=database")
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        return list(self.sandbox.kube().get(path, labelSelector=selector)["items"])

    def instance_ips(self, max_age: float = 2.0) -> list[str]:
        """Pod IPs of the cluster's instances (re-read at most every max_age seconds)."""
        if time.monotonic() - self._ips_read > max_age:
            with contextlib.suppress(Exception):
                ips = [p["status"]["podIP"] for p in self.pods() if (p.get("status") or {}).get("podIP")]
                self._ips, self._ips_read = sorted(ips), time.monotonic()
        return list(self._ips)

    def primary_ip(self) -> str | None:
        """The IP of the pod that status names as primary."""
        name = (self.resource().get("status") or {}).get("primary")
        for pod in self.pods():
            if pod["metadata"]["name"] == name:
                return (pod.get("status") or {}).get("podIP")
        return None

    def ready(self) -> bool:
        conditions = (self.resource().get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def admin(self, ip: str, read_timeout: float = READ_TIMEOUT) -> Any:
        return pymysql.connect(host=ip, port=3306, user=ADMIN_USER, password=self.admin_password,
                               connect_timeout=CONNECT_TIMEOUT, read_timeout=read_timeout,
                               write_timeout=read_timeout, autocommit=True)

    def via_service(self) -> Any:
        return pymysql.connect(host="127.0.0.1", port=self.node_port, user=self.app_user,
                               password=self.app_password, database=self.database,
                               connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                               write_timeout=READ_TIMEOUT, autocommit=False)

    # ---- load and sampling ---------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ConsistencyChecker:
        """Create the table through the Service (bounded retries), then start writers and the sampler."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with contextlib.closing(self.via_service()) as conn, conn.cursor() as cur:
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, "
                                "server_id INT NOT NULL)")
                    conn.commit()
                break
            except pymysql.MySQLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.started_wall = time.time()
        for index in range(self.writer_count):
            self._spawn(self._write_loop, f"writer-{index}")
        self._spawn(self._sample_loop, "sampler")
        return self

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=f"consistency-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=2 * READ_TIMEOUT + 5)
        self.threads.clear()

    def _write_loop(self) -> None:
        deadline = time.monotonic() + WRITE_BUDGET_SECONDS
        conn: Any = None
        server_id = 0
        while not self.stopping.is_set() and time.monotonic() < deadline:
            with self.lock:
                row_id = next(self._ids)
            try:
                if conn is None:
                    conn = self.via_service()
                    with conn.cursor() as cur:
                        cur.execute("SELECT @@server_id")
                        server_id = int(cur.fetchone()[0])
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {TABLE} (id, server_id) VALUES (%s, %s)", (row_id, server_id))
                conn.commit()  # acknowledged only once COMMIT returned OK
                with self.lock:
                    self.acks.append(Ack(row_id, time.monotonic(), server_id))
            except (pymysql.MySQLError, OSError):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                self.stopping.wait(0.05)

    def _read_only(self, ip: str) -> tuple[int, bool] | None:
        query = ("SELECT @@server_id, @@read_only, @@super_read_only" if self.flavor == "mysql"
                 else "SELECT @@server_id, @@read_only")
        try:
            with contextlib.closing(self.admin(ip, read_timeout=1)) as conn, conn.cursor() as cur:
                cur.execute(query)
                row = cur.fetchone()
        except (pymysql.MySQLError, OSError):
            return None
        # an application user writes unless read_only is on (super_read_only implies read_only)
        return int(row[0]), not any(int(value) for value in row[1:])

    def _sample_loop(self) -> None:
        deadline = time.monotonic() + WRITE_BUDGET_SECONDS
        with ThreadPoolExecutor(max_workers=9, thread_name_prefix="consistency-probe") as pool:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                ips = self.instance_ips()
                started = time.monotonic()
                try:
                    seen = dict(zip(ips, pool.map(self._read_only, ips), strict=True))
                except RuntimeError:  # the interpreter is shutting down under a test run interrupted
                    return
                with self.lock:
                    self.samples.append(Sample(started, time.monotonic(), seen))
                self.stopping.wait(max(0.0, self.sample_interval - (time.monotonic() - started)))

    # ---- what happened -------------------------------------------------------------------------------

    def acked(self) -> list[Ack]:
        with self.lock:
            return list(self.acks)

    def wait_acks(self, count: int, timeout: float = 60.0, after: float = 0.0) -> None:
        """Until `count` writes were acknowledged after `after` (monotonic), or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for ack in self.acked() if ack.at > after) >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"fewer than {count} writes acknowledged through the Service in {timeout:.0f}s")

    def first_ack_after(self, moment: float, timeout: float, other_than: int | None = None) -> Ack | None:
        """The first write acknowledged after `moment` (monotonic) by a server other than `other_than`
        (the faulty primary's server_id: a commit it answered just as the fault struck is no recovery),
        waiting up to timeout for one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [ack for ack in self.acked() if ack.at > moment and ack.server_id != other_than]
            if later:
                return min(later, key=lambda ack: ack.at)
            time.sleep(0.05)
        return None

    @staticmethod
    def server_id(pod: str) -> int:
        """The server_id of an instance pod (from its StatefulSet ordinal, as the operator sets it)."""
        return server_id_for_ordinal(ordinal_of_pod(pod))

    def split_brain(self, since: float = 0.0) -> list[Sample]:
        """Samples taken after `since` in which two or more instances accepted writes."""
        with self.lock:
            return [s for s in self.samples if s.started >= since and len(s.writable()) > 1]

    def service_server_id(self) -> int | None:
        """server_id of the writable instance the Service reaches now, or None."""
        try:
            with contextlib.closing(self.via_service()) as conn, conn.cursor() as cur:
                cur.execute("SELECT @@server_id, @@read_only")
                server_id, read_only = cur.fetchone()
        except (pymysql.MySQLError, OSError):
            return None
        return int(server_id) if not int(read_only) else None

    # ---- the invariants ------------------------------------------------------------------------------

    def recovered(self) -> str | None:
        """The primary's IP if the cluster is Ready and exactly one instance accepts writes, the one
        status names, and the Service reaches it; else None."""
        if not self.ready():
            return None
        primary = self.primary_ip()
        seen = {ip: self._read_only(ip) for ip in self.instance_ips(max_age=0)}
        writable = [ip for ip, state in seen.items() if state is not None and state[1]]
        if primary is None or writable != [primary]:
            return None
        server = seen[primary]
        return primary if server is not None and self.service_server_id() == server[0] else None

    def checksums(self) -> dict[str, Any]:
        sums: dict[str, Any] = {}
        for ip in self.instance_ips(max_age=0):
            try:
                with contextlib.closing(self.admin(ip, read_timeout=10)) as conn, conn.cursor() as cur:
                    cur.execute(f"CHECKSUM TABLE `{self.database}`.{TABLE}")
                    sums[ip] = cur.fetchone()[1]
            except (pymysql.MySQLError, OSError) as exc:
                sums[ip] = f"unreachable: {exc}"
        return sums

    def verify(self, recover_timeout: float = 180.0, catch_up_timeout: float = 90.0) -> Verdict:
        """Stop the load, then check (c), (a), (d) and (b); bounded waits only."""
        self.stop()
        verdict = Verdict(acknowledged=len(self.acked()))
        deadline = time.monotonic() + recover_timeout
        while time.monotonic() < deadline and verdict.primary is None:
            with contextlib.suppress(Exception):
                verdict.primary = self.recovered()
            if verdict.primary is None:
                time.sleep(1.0)
        verdict.recovered = verdict.primary is not None
        if not verdict.recovered:
            status = (self.resource().get("status") or {})
            conditions = [(c["type"], c["status"], c.get("reason")) for c in status.get("conditions") or []]
            read_only = {ip: self._read_only(ip) for ip in self.instance_ips(max_age=0)}
            verdict.problems.append(
                f"(c) no Ready cluster with one writable primary behind the Service after "
                f"{recover_timeout:.0f}s: phase {status.get('phase')!r}, primary {status.get('primary')!r}, "
                f"conditions {conditions}, (server_id, writable) by IP {read_only}")
        primary = verdict.primary or self.primary_ip()
        if primary is not None:
            try:
                with contextlib.closing(self.admin(primary, read_timeout=30)) as conn, conn.cursor() as cur:
                    cur.execute(f"SELECT id FROM `{self.database}`.{TABLE}")
                    present = {int(row[0]) for row in cur.fetchall()}
                verdict.lost = sorted(ack.id for ack in self.acked() if ack.id not in present)
            except (pymysql.MySQLError, OSError) as exc:
                verdict.problems.append(f"(a) the primary {primary} could not be read: {exc}")
        else:
            verdict.problems.append("(a) no primary to read the acknowledged writes from")
        catch_up = time.monotonic() + catch_up_timeout
        while True:
            verdict.checksums = self.checksums()
            if len(set(map(str, verdict.checksums.values()))) == 1 or time.monotonic() > catch_up:
                break
            time.sleep(1.0)
        if len(set(map(str, verdict.checksums.values()))) != 1:
            verdict.problems.append(f"(d) CHECKSUM TABLE differs: {verdict.checksums}")
        if verdict.lost:
            self._judge_loss(verdict, primary, max(catch_up, time.monotonic() + 30.0))
        verdict.split_brain = self.split_brain()
        if verdict.split_brain:
            first = verdict.split_brain[0]
            verdict.problems.append(f"(b) {len(verdict.split_brain)} sample(s) with two writable instances, "
                                    f"first: {first.instances}")
        return verdict


    def discarded_since(self, since: float) -> int:
        """Transactions the operator reported discarded (status.topology.discarded) from `since` on."""
        topology = (self.resource().get("status") or {}).get("topology") or {}
        return sum(int(d.get("count") or 0) for d in topology.get("discarded") or []
                   if float(d.get("at") or 0.0) >= since)

    def _judge_loss(self, verdict: Verdict, primary: str | None, deadline: float) -> None:
        """(a) for missing acknowledged writes: always a problem in semi-sync; in async a problem
        unless the operator reported at least as many transactions discarded (bounded wait: the
        report is written when the deposed primary is rebuilt)."""
        if not self.lossless:
            while True:
                with contextlib.suppress(Exception):
                    verdict.reported_discarded = self.discarded_since(self.started_wall - 1.0)
                if verdict.reported_discarded >= len(verdict.lost) or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            if verdict.reported_discarded >= len(verdict.lost):
                return
            verdict.problems.append(
                f"(a) {len(verdict.lost)} acknowledged write(s) missing on the primary {primary}, more than "
                f"the {verdict.reported_discarded} transaction(s) the operator reported discarded (async), "
                f"e.g. {verdict.lost[:5]}")
            return
        verdict.problems.append(f"(a) {len(verdict.lost)} acknowledged write(s) missing on the "
                                f"primary {primary}, e.g. {verdict.lost[:5]}")


def assert_consistent(verdict: Verdict) -> None:
    """Fail with every broken invariant named."""
    assert not verdict.problems, "invariants broken:\n" + "\n".join(verdict.problems)
