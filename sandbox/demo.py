"""`make sandbox`: the local cluster, the chart installed, the MariaDB example Ready, how to connect.

python -m sandbox.demo up      # idempotent: re-running changes nothing that is already there
python -m sandbox.demo down    # stops everything, leaving no process behind
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sandbox.instance import Sandbox, SandboxError

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "mysql-operator"
EXAMPLE = ROOT / "examples" / "mariadb.yaml"
OPERATOR_NS = "mysql-operator"
DEMO_NS = "demo"
READY_TIMEOUT = 600.0


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


def kubectl(box: Sandbox, *args: str, input: str | None = None) -> str:
    return box.kubectl(*args, input=input).stdout


def wait_ready(box: Sandbox, name: str) -> None:
    """Show the cluster's progress (phase, instances, primary) until it is Ready; bounded."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        body = json.loads(kubectl(box, "get", "mysqlcluster", name, "-n", DEMO_NS, "-o", "json"))
        status = body.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        line = (
            f"{name}: phase={status.get('phase', 'Pending')} instances={status.get('instancesReady', '0/?')} "
            f"primary={status.get('primary') or '-'} ready={ready.get('status', 'Unknown')}"
            + (f" ({ready.get('message')})" if ready.get("message") and ready.get("status") != "True" else "")
        )
        if line != last:
            say(line)
            last = line
        if ready.get("status") == "True":
            return
        time.sleep(2)
    raise SandboxError(
        f"{name} not Ready after {READY_TIMEOUT:.0f}s; see `kubectl describe mysqlcluster -n {DEMO_NS}`"
    )


def install_operator(box: Sandbox, *values: str) -> None:
    """helm upgrade --install the chart (cluster-wide), waiting for the operator; `values` are --set's."""
    sets = [arg for value in values for arg in ("--set", value)]
    box.helm(
        "upgrade",
        "--install",
        "mysql-operator",
        str(CHART),
        "-n",
        OPERATOR_NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "300s",
        *sets,
    )


def up(box: Sandbox) -> None:
    say("starting the local Kubernetes (etcd, kube-apiserver, controller-manager, scheduler, node agent)")
    box.up(timeout=3 * 3600, progress=lambda line: print(f"    {line}", flush=True))
    say("installing the chart (helm upgrade --install)")
    install_operator(box)
    if box.kubectl("get", "namespace", DEMO_NS, check=False).returncode != 0:
        kubectl(box, "create", "namespace", DEMO_NS)
    say(f"applying {EXAMPLE.relative_to(ROOT)} in namespace {DEMO_NS}")
    kubectl(box, "apply", "-n", DEMO_NS, "-f", str(EXAMPLE))
    cluster = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] == "MysqlCluster")
    name = cluster["metadata"]["name"]
    wait_ready(box, name)
    print(kubectl(box, "get", "mysqlclusters", "-A"), flush=True)
    secret = json.loads(kubectl(box, "get", "secret", f"{name}-credentials", "-n", DEMO_NS, "-o", "json"))
    user = base64.b64decode(secret["data"]["app-user"]).decode()
    database = base64.b64decode(secret["data"]["app-database"]).decode()
    port = cluster["spec"]["service"]["nodePort"]
    env = box.env().strip().replace("\n", "; ")
    print(
        f"""
The cluster is Ready. Connect through the -primary Service (NodePort {port}, forwarded on 127.0.0.1):

  {env}
  mariadb -h 127.0.0.1 -P {port} -u {user} -p"$(kubectl get secret -n {DEMO_NS} {name}-credentials \\
      -o jsonpath='{{.data.app-password}}' | base64 -d)" {database}

Watch it:      kubectl get mysqlclusters -A -w
Stop it all:   make sandbox-down
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--name", default="sandbox")
    args = parser.parse_args(argv)
    box = Sandbox(args.name)
    try:
        if args.command == "up":
            up(box)
        else:
            left = box.down()
            say(
                f"sandbox {args.name!r} stopped"
                + (f"; ended {len(left)} leftover process(es)" if left else "")
            )
    except (SandboxError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or ""
        print(f"error: {error}\n{detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
