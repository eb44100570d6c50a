"""Faults on the e2e cluster: seconds to a writable primary behind the Service, writes lost, split brain.

For each flavor, replication mode and fault: a fresh 3-instance MysqlCluster, and N rounds of: start
the consistency checker (clients writing through the -primary Service, NodePort on 127.0.0.1, each
write acknowledged only when COMMIT returned OK; a sampler of read_only on every instance), inject the
fault on the primary, wait (bounded) for the first write acknowledged through the Service, remove the
fault, and let the checker verify (sandbox/consistency.py).

Faults: kill (SIGKILL of mysqld, kept down until a writable primary is back: a lost node that then
returns), pause (SIGSTOP until a writable primary is back, then SIGCONT), isolate (every packet to or
from the pod dropped, then healed).

The benchmark never repairs anything: a round that is not back to Ready with one writable primary
within the bound counts as needing a human, and its series stops there (the cluster stays broken).

With `--background N --unreachable K` the measured cluster is not alone on its operator: N more
MysqlClusters are managed at the same time (objects only: their pods are pinned to a node that does
not exist and stay Pending, so no mysqld runs for them), and K one-instance clusters run a real
server whose pod is then isolated (every packet dropped), so their topology passes spend their
connect timeouts on instances that never answer. One slow cluster must not delay another's failover.

    .venv/bin/python benchmarks/failover.py [--faults kill,pause,isolate] [--flavor mariadb]
        [--mode async,semi-sync] [--rounds 10] [--grace 3] [--background 196 --unreachable 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.consistency import ConsistencyChecker  # noqa: E402
from sandbox.demo import install_operator  # noqa: E402
from sandbox.faults import Faults  # noqa: E402
from sandbox.instance import Sandbox  # noqa: E402
from tests.e2e.conftest import Cluster, cluster_spec, wait_for  # noqa: E402

NS = "bench"
NAME = "fo"
# Not the e2e tier's NodePorts: a benchmark and the e2e tier may run side by side. NodePorts listen on
# 127.0.0.1 whatever the sandbox, so two benchmarks side by side need --node-port apart.
NODE_PORT = 32150
# (NodePorts listen on 127.0.0.1: two benchmarks side by side need --node-port apart)
FAULT_BOUND = 120.0  # seconds: no writable primary through the Service by then = a human was needed
PAUSE_BOUND = 45.0  # a pause longer than the liveness probe's minute would become a restart
RECOVER_BOUND = 180.0


@dataclass
class Series:
    """The rounds of one flavor, mode and fault."""

    flavor: str
    mode: str
    fault: str
    seconds: list[float] = field(default_factory=list)
    acknowledged: int = 0
    lost: int = 0
    split_brain: int = 0
    human: int = 0
    rounds: int = 0
    notes: list[str] = field(default_factory=list)


def manifest(flavor: str, mode: str, grace: int, node_port: int = NODE_PORT) -> dict[str, Any]:
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": NAME},
        "spec": cluster_spec(
            flavor,
            # autoReseed: a deposed async primary with writes nobody acknowledged rejoins by a rebuild
            # (the documented async loss window); without it a human decides, by design
            replication={"mode": mode, "failoverGraceSeconds": grace, "autoReseed": True},
            application={"database": "bench", "user": "bench"},
            service={"type": "NodePort", "nodePort": node_port},
        ),
    }


BACKGROUND_NS = "bench-bg"
NOWHERE = {"mysql.operator.dev/benchmark-node": "none"}  # no node carries this label


def background_clusters(cluster: Cluster, flavor: str, count: int, unreachable: int) -> list[str]:
    """`count` objects-only clusters and `unreachable` one-instance clusters whose pod is isolated;
    returns the isolated pods (healed by the caller)."""
    cluster.create_namespace(BACKGROUND_NS)
    def doc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "mysql.operator.dev/v1alpha1", "kind": "MysqlCluster",
                "metadata": {"name": name}, "spec": spec}

    docs = [doc(f"bg{i}", cluster_spec(flavor, podTemplate={"nodeSelector": NOWHERE})) for i in range(count)]
    docs += [doc(f"slow{i}", cluster_spec(flavor, instances=1)) for i in range(unreachable)]
    for start in range(0, len(docs), 20):  # in batches: one kubectl call has a time limit
        cluster.apply("\n---\n".join(yaml.safe_dump(doc) for doc in docs[start:start + 20]), BACKGROUND_NS)
    pods = []
    faults = Faults(cluster.sandbox)
    for i in range(unreachable):
        cluster.wait_ready(f"slow{i}", BACKGROUND_NS, timeout=600)
        pod = f"slow{i}-0"
        faults.isolate(BACKGROUND_NS, pod)
        pods.append(pod)
    print(f"# {count} objects-only clusters and {unreachable} isolated ones beside the measured one",
          file=sys.stderr, flush=True)
    return pods


def inject(faults: Faults, kind: str, pod: str) -> None:
    if kind == "kill":
        faults.kill(NS, pod, keep_down=True)
    elif kind == "pause":
        faults.pause(NS, pod)
    else:
        faults.isolate(NS, pod)


def remove(faults: Faults, kind: str, pod: str) -> None:
    if kind == "kill":
        faults.sandbox.release_container(NS, pod)
    elif kind == "pause":
        faults.resume(NS, pod)
    else:
        faults.heal(NS, pod)


def run_round(cluster: Cluster, series: Series, node_port: int = NODE_PORT) -> bool:
    """One round; False when the cluster did not recover by itself (the series stops)."""
    faults = Faults(cluster.sandbox)
    checker = ConsistencyChecker(cluster.sandbox, NS, NAME, node_port).start()
    checker.wait_acks(50)
    old = cluster.status(NAME, NS)["primary"]
    inject(faults, series.fault, old)
    # After the fault is in place: a loaded machine takes a while to inject it, and a write the old
    # primary acknowledged meanwhile is no failover.
    fault_at = time.monotonic()
    try:
        ack = checker.first_ack_after(fault_at, PAUSE_BOUND if series.fault == "pause" else FAULT_BOUND,
                                      other_than=checker.server_id(old))
    finally:
        remove(faults, series.fault, old)
        removed_at = time.monotonic()
    if ack is None and series.fault == "pause":  # resumed: the old primary may take writes again
        ack = checker.first_ack_after(removed_at, FAULT_BOUND - PAUSE_BOUND)
    verdict = checker.verify(recover_timeout=RECOVER_BOUND)
    series.rounds += 1
    series.acknowledged += verdict.acknowledged
    series.lost += len(verdict.lost)
    series.split_brain += len(verdict.split_brain)
    needed_human = ack is None or verdict.needed_human
    series.human += needed_human
    if ack is not None:
        series.seconds.append(ack.at - fault_at)
    series.notes += verdict.problems
    print(f"# {series.flavor} {series.mode} {series.fault} round {series.rounds}: "
          + (f"{ack.at - fault_at:.2f}s to a writable primary, " if ack else "no writable primary in bound, ")
          + f"{verdict.acknowledged} acknowledged, {len(verdict.lost)} lost, "
          f"{len(verdict.split_brain)} split-brain samples, needed a human: {needed_human}"
          + (f"; {verdict.problems}" if verdict.problems else ""), file=sys.stderr, flush=True)
    return not verdict.needed_human


def run_series(
    cluster: Cluster, flavor: str, mode: str, fault: str, rounds: int, grace: int, node_port: int = NODE_PORT
) -> Series:
    series = Series(flavor, mode, fault)
    cluster.apply(manifest(flavor, mode, grace, node_port), NS)
    try:
        try:
            cluster.wait_ready(NAME, NS, timeout=420)
        except AssertionError:
            status = cluster.status(NAME, NS)
            print(f"# {flavor} {mode} {fault}: never Ready; phase {status.get('phase')}, conditions "
                  f"{[(c['type'], c['status'], c.get('message')) for c in status.get('conditions') or []]}, "
                  f"events {[e.get('message') for e in cluster.events(NS, NAME)][-8:]}",
                  file=sys.stderr, flush=True)
            raise
        for _ in range(rounds):
            if not run_round(cluster, series, node_port):
                series.notes.append(f"stopped after round {series.rounds}: the cluster needs a human")
                break
    finally:
        Faults(cluster.sandbox).heal_all()
        cluster.kubectl("delete", "mysqlcluster", NAME, "-n", NS, "--wait=true", "--timeout=180s")
        # The next series reuses the name: its pods must not find this one's volumes (garbage
        # collection deletes them after the cluster is gone).
        wait_for(lambda: not cluster.kubectl("get", "pods,pvc", "-n", NS, "-o", "name").strip(), 300,
                 f"the pods and volumes of {NS}/{NAME} to be gone")
    return series


def table(rows: list[Series], grace: int) -> str:
    lines = [
        f"3 instances, failoverGraceSeconds={grace}, autoReseed on; seconds from the fault to the first "
        "write acknowledged through the -primary Service",
        "| flavor | mode | fault | rounds | median s | max s | acknowledged writes | lost | "
        "split-brain samples | needed a human |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        median = f"{statistics.median(r.seconds):.2f}" if r.seconds else "-"
        worst = f"{max(r.seconds):.2f}" if r.seconds else "-"
        lines.append(f"| {r.flavor} | {r.mode} | {r.fault} | {r.rounds} | {median} | {worst} | "
                     f"{r.acknowledged} | {r.lost} | {r.split_brain} | {r.human} |")
    by_key = {(r.flavor, r.mode, r.fault): r for r in rows if r.seconds}
    for (flavor, mode, fault), r in by_key.items():
        kill = by_key.get((flavor, mode, "kill"))
        if fault != "kill" and kill:
            ratio = statistics.median(r.seconds) / statistics.median(kill.seconds)
            lines.append(f"{flavor} {mode}: median {fault} / median kill = {ratio:.2f}")
        asynchronous = by_key.get((flavor, "async", fault))
        if mode == "semi-sync" and asynchronous:
            ratio = statistics.median(r.seconds) / statistics.median(asynchronous.seconds)
            lines.append(f"{flavor} {fault}: median semi-sync / median async = {ratio:.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default="kill,pause,isolate")
    parser.add_argument("--flavor", default="mariadb", help="mysql, mariadb, or both comma-separated")
    parser.add_argument("--mode", default="async,semi-sync")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--grace", type=int, default=3, help="spec.replication.failoverGraceSeconds")
    parser.add_argument("--sandbox", default="bench-failover", help="sandbox name")
    parser.add_argument("--background", type=int, default=0, help="objects-only clusters managed beside")
    parser.add_argument("--unreachable", type=int, default=0,
                        help="clusters beside whose instance is isolated")
    parser.add_argument("--node-port", type=int, default=NODE_PORT,
                        help="the cluster's NodePort on 127.0.0.1 (two benchmarks side by side need two)")
    args = parser.parse_args()
    faults = args.faults.split(",")
    unknown = set(faults) - {"kill", "pause", "isolate"}
    if unknown:
        parser.error(f"unknown fault(s): {sorted(unknown)}")
    box = Sandbox(args.sandbox, nodes=3)
    box.down()
    shutil.rmtree(box.dir, ignore_errors=True)
    box.up(timeout=3 * 3600, progress=lambda line: print(f"# {line}", file=sys.stderr, flush=True))
    rows: list[Series] = []
    try:
        cluster = Cluster(box)
        install_operator(box)
        cluster.create_namespace(NS)
        isolated: list[str] = []
        if args.background or args.unreachable:
            first = args.flavor.split(",")[0]
            isolated = background_clusters(cluster, first, args.background, args.unreachable)
        for flavor in args.flavor.split(","):
            for mode in args.mode.split(","):
                for fault in faults:
                    for pod in isolated:  # each series heals every rule when it ends
                        Faults(box).isolate(BACKGROUND_NS, pod)
                    rows.append(run_series(cluster, flavor, mode, fault, args.rounds, args.grace,
                                           args.node_port))
                    print(table(rows, args.grace), file=sys.stderr, flush=True)  # so far
    finally:
        box.down()
    if args.background or args.unreachable:
        print(f"beside the measured cluster: {args.background} objects-only clusters and "
              f"{args.unreachable} clusters whose only instance is isolated")
    print(table(rows, args.grace))
    for row in rows:
        for note in dict.fromkeys(row.notes):
            print(f"# {row.flavor} {row.mode} {row.fault}: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
