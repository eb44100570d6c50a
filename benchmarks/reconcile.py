"""How fast the operator turns MysqlClusters into objects, what it costs in memory and API calls.

Starts its own control plane (audit log on), installs the CRDs and the chart's RBAC, runs the
operator as a local process authenticated as the chart's ServiceAccount, then for N = 1, 10, 50
applies N MysqlClusters at once and measures, per cluster, the time from apply to all owned objects
present. Prints medians and p95, the operator's RSS and API requests per cluster (from the audit
log). No pass/fail: the numbers are for reading.

    .venv/bin/python benchmarks/reconcile.py [--sizes 1,10,50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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
        timeout=120,
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


def audit_requests(log: Path, namespace: str, since: float) -> int:
    count = 0
    with log.open() as handle:
        for line in handle:
            event = json.loads(line)
            if event.get("user", {}).get("username") != OPERATOR_USER:
                continue
            if (event.get("objectRef") or {}).get("namespace") != namespace:
                continue
            stamp = time.mktime(time.strptime(event["requestReceivedTimestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
            if stamp - time.timezone >= since - 1:
                count += 1
    return count


def run_round(admin: Path, cp: ControlPlane, n: int, pid: int) -> dict[str, float]:
    namespace = f"bench-{n}"
    kubectl(admin, "create", "namespace", namespace)
    names = [f"db{i}" for i in range(n)]
    started = time.time()
    kubectl(
        admin,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump_all([cluster_manifest(name) for name in names]),
    )
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
    time.sleep(2)  # let the audit log flush the round's last requests
    latencies = sorted(done.values())
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    requests = audit_requests(cp.logs / "audit.log", namespace, started)
    return {
        "n": n,
        "median": statistics.median(latencies),
        "p95": p95,
        "rss": rss_mib(pid),
        "requests_per_cluster": requests / n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,10,50")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools.ensure_built()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        cp = ControlPlane(Path(tmp) / "run", progress=lambda msg: print(f"# {msg}", file=sys.stderr))
        cp.start()
        operator: subprocess.Popen[bytes] | None = None
        try:
            admin = cp.kubeconfig
            kubectl(admin, "apply", "-f", str(ROOT / "crds"))
            install_rbac(admin)
            env = {
                **os.environ,
                "KUBECONFIG": str(operator_kubeconfig(admin, cp, Path(tmp) / "op.kubeconfig")),
            }
            log = (Path(tmp) / "operator.log").open("wb")
            liveness = f"http://127.0.0.1:{free_port()}/healthz"
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mysql_operator",
                    "run",
                    "--log-level=WARNING",
                    f"--liveness={liveness}",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
            wait_operator_live(liveness, operator)
            rows = [run_round(admin, cp, n, operator.pid) for n in sizes]
        finally:
            if operator is not None:
                processes.stop_group(operator, 10)
            cp.stop()
    print("| clusters | median apply->objects (s) | p95 (s) | operator RSS (MiB) | API requests / cluster |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['n']} | {row['median']:.2f} | {row['p95']:.2f} | {row['rss']:.0f} | "
            f"{row['requests_per_cluster']:.1f} |"
        )
    base = rows[0]["median"]
    for row in rows[1:]:
        print(f"median at N={row['n']} is {row['median'] / base:.1f}x the median at N={rows[0]['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
