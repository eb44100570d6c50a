"""How fast the operator turns MysqlClusters into objects, what it costs in memory, CPU and API calls.

Starts its own control plane (audit log on), installs the CRDs and the chart's RBAC, runs the
operator as a local process authenticated as the chart's ServiceAccount, then for N = 1, 10, 50, 200
applies N MysqlClusters at once (each round in a namespace of its own; earlier rounds stay, so the
last round runs with every cluster of the earlier ones managed too) and measures, per cluster, the
time from apply to all owned objects written (the audit log's completion of the MysqlCluster's
create to that of the operator's last write of an owned object): median and p95, RSS and CPU seconds,
API requests per cluster (from the audit log; watch streams excluded).

Objects only: no node runs the pods (they stay Pending, without an IP), so no mysqld runs for these
clusters; 3 x 261 real servers would not fit on this machine. What is measured is the operator's
own cost: the reconcile handler, the watch indices and one topology loop per cluster.

Then, with every cluster applied:
- idle: a quiet minute (`--idle` seconds), the operator's API requests per cluster per minute and
  its CPU share;
- resync: the operator is stopped (SIGTERM as in a rollout, then SIGKILL as in a crash: the new
  process then first waits for the dead one's peering lease, 20 s) and started again; seconds until
  every cluster has been reconciled again (its reconcile counter on /metrics), requests per cluster,
  RSS after.

No pass/fail: the numbers are for reading.

    .venv/bin/python benchmarks/reconcile.py [--sizes 1,10,50,200] [--idle 60]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import processes, tools  # noqa: E402
from sandbox.controlplane import ControlPlane, free_port  # noqa: E402

OPERATOR_NS = "mysql-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:mysql-operator"
OWNED = [
    ("statefulsets", ""),
    ("services", "-primary"),
    ("services", "-replicas"),
    ("services", ""),
    ("configmaps", "-config"),
    ("secrets", "-credentials"),
    ("poddisruptionbudgets", ""),
]
TIMEOUT = 600.0


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(tools.tool_path("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def install_rbac(kubeconfig: Path) -> None:
    """The chart's ServiceAccount, RBAC and peering object, exactly as helm renders them."""
    rendered = subprocess.run(
        [
            str(tools.tool_path("helm")),
            "template",
            "mysql-operator",
            str(ROOT / "charts" / "mysql-operator"),
            "--namespace",
            OPERATOR_NS,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] != "Deployment"]
    kubectl(kubeconfig, "create", "namespace", OPERATOR_NS)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def operator_kubeconfig(admin: Path, cp: ControlPlane, path: Path) -> Path:
    token = kubectl(admin, "create", "token", "mysql-operator", "-n", OPERATOR_NS, "--duration=3h").strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "op",
        "clusters": [
            {"name": "c", "cluster": {"server": cp.api_url, "certificate-authority": str(cp.pki / "ca.crt")}}
        ],
        "users": [{"name": "op", "user": {"token": token}}],
        "contexts": [{"name": "op", "context": {"cluster": "c", "user": "op"}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def wait_operator_live(url: str, operator: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Bounded wait until kopf answers on its liveness endpoint (it is then watching)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError(f"the operator exited with {operator.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the operator did not answer {url} within {timeout:.0f}s")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": name},
        "spec": {"flavor": "mariadb", "instances": 3, "storage": {"size": "1Gi"}},
    }


def present(admin: Path, namespace: str) -> set[tuple[str, str]]:
    out = json.loads(
        kubectl(
            admin,
            "get",
            "statefulsets,services,configmaps,secrets,poddisruptionbudgets",
            "-n",
            namespace,
            "-o",
            "json",
        )
    )
    kinds = {
        "StatefulSet": "statefulsets",
        "Service": "services",
        "ConfigMap": "configmaps",
        "Secret": "secrets",
        "PodDisruptionBudget": "poddisruptionbudgets",
    }
    return {(kinds[item["kind"]], item["metadata"]["name"]) for item in out["items"]}


@dataclass(frozen=True)
class Request:
    """One completed API request of the operator (audit log, stage ResponseComplete)."""

    at: float
    verb: str
    resource: str
    namespace: str


def operator_requests(log: Path) -> list[Request]:
    """Every request the operator's ServiceAccount completed, watch streams excluded."""
    found = []
    for path in (log, *sorted(log.parent.glob(log.stem + "-*" + log.suffix))):
        if not path.exists():
            continue
        with path.open() as handle:
            for line in handle:
                event = json.loads(line)
                if event.get("user", {}).get("username") != OPERATOR_USER:
                    continue
                if event.get("stage") != "ResponseComplete" or event.get("verb") == "watch":
                    continue
                ref = event.get("objectRef") or {}
                stamp = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
                sub = ref.get("subresource")
                resource = ref.get("resource", "?") + (f"/{sub}" if sub else "")
                found.append(Request(stamp, event["verb"], resource, ref.get("namespace", "")))
    return found


def audit_events(log: Path) -> list[dict[str, Any]]:
    events = []
    for path in (log, *sorted(log.parent.glob(log.stem + "-*" + log.suffix))):
        if path.exists():
            with path.open() as handle:
                events += [json.loads(line) for line in handle]
    return [e for e in events if e.get("stage") == "ResponseComplete"]


def apply_latencies(log: Path, namespace: str, names: list[str]) -> dict[str, float]:
    """Per cluster: from the API server's completion of the MysqlCluster's create to its completion of
    the operator's last write of an owned object (both from the audit log, microsecond stamps), so
    the figure does not include how fast a poller notices."""
    created: dict[str, float] = {}
    last: dict[str, float] = {}
    owned = {name + suffix: name for name in names for _, suffix in OWNED}
    for event in audit_events(log):
        ref = event.get("objectRef") or {}
        if ref.get("namespace") != namespace or event.get("verb") not in ("create", "patch", "update"):
            continue
        stamp = datetime.fromisoformat(event["stageTimestamp"]).timestamp()
        name, resource = ref.get("name"), ref.get("resource")
        if resource == "mysqlclusters" and not ref.get("subresource") and name in names:
            created.setdefault(name, stamp)
        elif (event.get("user", {}).get("username") == OPERATOR_USER
              and resource in {kind for kind, _ in OWNED} and name in owned):
            cluster = owned[name]
            last[cluster] = max(last.get(cluster, 0.0), stamp)
    return {name: last[name] - created[name] for name in names if name in created and name in last}


def requests_between(log: Path, since: float, until: float, namespace: str | None = None) -> list[Request]:
    return [r for r in operator_requests(log)
            if since <= r.at < until and (namespace is None or r.namespace == namespace)]


def run_round(admin: Path, cp: ControlPlane, n: int, pid: int) -> dict[str, float]:
    namespace = f"bench-{n}"
    kubectl(admin, "create", "namespace", namespace)
    names = [f"db{i}" for i in range(n)]
    cpu_before = cpu_seconds(pid)
    started = time.time()
    for start in range(0, n, 25):  # in batches: one kubectl call has a time limit
        batch = names[start:start + 25]
        kubectl(admin, "apply", "-n", namespace, "-f", "-",
                stdin=yaml.safe_dump_all([cluster_manifest(name) for name in batch]))
    done: dict[str, float] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(done) < n and time.monotonic() < deadline:
        have = present(admin, namespace)
        now = time.time()
        for name in names:
            if name not in done and all((kind, name + suffix) in have for kind, suffix in OWNED):
                done[name] = now - started
        time.sleep(0.2)
    if len(done) < n:
        raise RuntimeError(f"only {len(done)}/{n} clusters got their objects within {TIMEOUT}s")
    time.sleep(5)  # let the round's last requests (status, events) land in the audit log
    measured = apply_latencies(cp.logs / "audit.log", namespace, names)
    if len(measured) < n:
        raise RuntimeError(f"the audit log has the apply of only {len(measured)}/{n} clusters")
    latencies = sorted(measured.values())
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    requests = requests_between(cp.logs / "audit.log", started - 1, time.time(), namespace)
    return {
        "n": n,
        "median": statistics.median(latencies),
        "p95": p95,
        "rss": rss_mib(pid),
        "cpu": cpu_seconds(pid) - cpu_before,
        "requests_per_cluster": len(requests) / n,
    }


def measure_idle(cp: ControlPlane, pid: int, clusters: int, seconds: float) -> dict[str, Any]:
    """API requests per cluster per minute and CPU share over a quiet window."""
    time.sleep(20)  # the last round's status writes and events settle first
    cpu_before, started = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    ended = time.time()
    cpu = cpu_seconds(pid) - cpu_before
    time.sleep(3)  # audit log flush
    requests = requests_between(cp.logs / "audit.log", started, ended)
    kinds = Counter(f"{r.verb} {r.resource}" for r in requests)
    return {
        "seconds": ended - started,
        "requests": len(requests),
        "per_cluster_per_minute": len(requests) / clusters / ((ended - started) / 60),
        "cpu_percent": 100 * cpu / (ended - started),
        "kinds": dict(kinds.most_common(8)),
        "rss": rss_mib(pid),
    }


def reconciled_clusters(metrics_url: str) -> int:
    """How many clusters the reconcile handler has run for since this operator process started."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return sum(1 for line in text.splitlines()
               if line.startswith("mysql_operator_reconciles_total{") and float(line.rsplit(" ", 1)[1]) >= 1)


class Operator:
    """The operator as a local process (started again by `restart`)."""

    def __init__(self, env: dict[str, str], log: Path, level: str = "WARNING") -> None:
        self.env = env
        self.log = log
        self.level = level
        self.liveness = ""
        self.metrics = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        metrics_port = free_port()
        self.metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mysql_operator", "run", f"--log-level={self.level}",
                 f"--liveness={self.liveness}", f"--metrics=127.0.0.1:{metrics_port}"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            )
        wait_operator_live(self.liveness, self.process, timeout=120)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self, how: signal.Signals) -> None:
        """SIGTERM (a rollout: kopf leaves the peering at once) or SIGKILL (a crash: the standby, here
        the restarted process, waits for the dead leader's peering lease to expire)."""
        if self.process is not None and self.process.poll() is None:
            began = time.monotonic()
            os.killpg(self.process.pid, how)
            self.process.wait(timeout=300)
            print(f"# the operator exited {time.monotonic() - began:.1f}s after {how.name}", file=sys.stderr)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_group(self.process, 10)


def measure_resync(
    cp: ControlPlane, operator: Operator, clusters: int, how: signal.Signals
) -> dict[str, float]:
    """Stop the operator (`how`), start it again, time until every cluster is reconciled again."""
    operator.kill(how)
    started = time.time()
    operator.start()
    deadline = time.monotonic() + TIMEOUT
    seen = 0
    while time.monotonic() < deadline:
        seen = reconciled_clusters(operator.metrics)
        if seen >= clusters:
            break
        time.sleep(0.5)
    resynced = time.time() - started
    if seen < clusters:
        raise RuntimeError(f"only {seen}/{clusters} clusters resynced within {TIMEOUT}s")
    time.sleep(5)
    requests = requests_between(cp.logs / "audit.log", started, time.time())
    return {"seconds": resynced, "requests_per_cluster": len(requests) / clusters,
            "rss": rss_mib(operator.pid)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,10,50,200")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the quiet window")
    parser.add_argument("--operator-log", type=Path, default=None, help="keep the operator's log here")
    parser.add_argument("--log-level", default="WARNING", help="the operator's log level")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools.ensure_built()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        cp = ControlPlane(Path(tmp) / "run", progress=lambda msg: print(f"# {msg}", file=sys.stderr))
        cp.start()
        operator: Operator | None = None
        try:
            admin = cp.kubeconfig
            kubectl(admin, "apply", "-f", str(ROOT / "crds"))
            install_rbac(admin)
            env = {
                **os.environ,
                "KUBECONFIG": str(operator_kubeconfig(admin, cp, Path(tmp) / "op.kubeconfig")),
            }
            operator = Operator(env, args.operator_log or Path(tmp) / "operator.log", args.log_level)
            operator.start()
            rows = []
            for n in sizes:
                rows.append(run_round(admin, cp, n, operator.pid))
                print(f"# N={n}: {rows[-1]}", file=sys.stderr)
            clusters = sum(sizes)
            idle = measure_idle(cp, operator.pid, clusters, args.idle)
            print(f"# idle: {idle}", file=sys.stderr)
            resyncs = {how.name: measure_resync(cp, operator, clusters, how)
                       for how in (signal.SIGTERM, signal.SIGKILL)}
            print(f"# resync: {resyncs}", file=sys.stderr)
        finally:
            if operator is not None:
                operator.stop()
            cp.stop()
    print("| clusters applied at once | median apply->objects (s) | p95 (s) | operator RSS after (MiB) "
          "| operator CPU (s) | API requests / cluster |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['n']} | {row['median']:.2f} | {row['p95']:.2f} | {row['rss']:.0f} | {row['cpu']:.1f} | "
            f"{row['requests_per_cluster']:.1f} |"
        )
    print(f"\nidle, {clusters} clusters, {idle['seconds']:.0f} s: {idle['requests']} API requests = "
          f"{idle['per_cluster_per_minute']:.3f} per cluster per minute (watches excluded); operator CPU "
          f"{idle['cpu_percent']:.1f}% of one core, RSS {idle['rss']:.0f} MiB; by kind: {idle['kinds']}")
    for how, resync in resyncs.items():
        print(f"resync after {how} and restart, {clusters} clusters: {resync['seconds']:.1f} s until every "
              f"cluster was reconciled again, {resync['requests_per_cluster']:.1f} requests per cluster, "
              f"RSS {resync['rss']:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
