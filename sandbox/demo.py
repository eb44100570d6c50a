"""`make sandbox`: the local cluster, the chart installed, an example cluster Ready, how to connect.

python -m sandbox.demo up                    # MySQL 9.7 (examples/mysql.yaml) in namespace demo
python -m sandbox.demo up --example mariadb  # MariaDB (examples/mariadb.yaml) in namespace demo-mariadb
python -m sandbox.demo down                  # stops everything, leaving no process behind

`up` is idempotent: re-running changes nothing that is already there, and both examples can run side
by side. The connect line it prints uses the flavor's real client: MySQL's `mysql` from the cached
MySQL root (a wrapper script in the sandbox's folder), MariaDB's `mariadb` from the host.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox import mysql_root
from sandbox.instance import Sandbox, SandboxError

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "mysql-operator"
OPERATOR_NS = "mysql-operator"
READY_TIMEOUT = 600.0


@dataclass(frozen=True)
class Example:
    """One example cluster the sandbox can bring up, and where."""

    file: Path
    namespace: str


EXAMPLES = {
    "mysql": Example(ROOT / "examples" / "mysql.yaml", "demo"),
    "mariadb": Example(ROOT / "examples" / "mariadb.yaml", "demo-mariadb"),
}
DEFAULT_EXAMPLE = "mysql"


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


def kubectl(box: Sandbox, *args: str, input: str | None = None) -> str:
    return box.kubectl(*args, input=input).stdout


def wait_ready(box: Sandbox, name: str, namespace: str) -> None:
    """Show the cluster's progress (phase, instances, primary) until it is Ready; bounded."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        body = json.loads(kubectl(box, "get", "mysqlcluster", name, "-n", namespace, "-o", "json"))
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
        f"{name} not Ready after {READY_TIMEOUT:.0f}s; see `kubectl describe mysqlcluster -n {namespace}`"
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


def client_command(box: Sandbox, flavor: str) -> list[str]:
    """The flavor's real command-line client: MySQL's from wrapper scripts over the cached root,
    written into the sandbox's folder; MariaDB's from the host."""
    if flavor == "mariadb":
        return ["mariadb"]
    return [str(mysql_root.write_wrappers(box.dir / "mysql-client")["mysql"])]


def check_client(client: list[str], port: int, user: str, password: str, database: str) -> str:
    """Run the printed client once through the NodePort (password in a 0600 option file, never argv):
    the connect line is shown only once it works. Returns the server's version."""
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as options:
        os.chmod(options.name, 0o600)
        options.write(f"[client]\npassword={password}\n")
        options.flush()
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                [client[0], f"--defaults-extra-file={options.name}", *client[1:], "-h", "127.0.0.1",
                 "-P", str(port), "-u", user, "--batch", "--skip-column-names", "-e", "SELECT VERSION()",
                 database],
                capture_output=True, text=True, timeout=60,
            )
            if done.returncode == 0:
                return done.stdout.strip()
            if time.monotonic() > deadline:
                raise SandboxError(f"the client could not connect via the NodePort: {done.stderr.strip()}")
            time.sleep(1)  # the NodePort forwarder may still be choosing a ready pod


def up(box: Sandbox, example_name: str = DEFAULT_EXAMPLE) -> None:
    example = EXAMPLES[example_name]
    namespace = example.namespace
    say("starting the local Kubernetes (etcd, kube-apiserver, controller-manager, scheduler, node agent)")
    box.up(timeout=3 * 3600, progress=lambda line: print(f"    {line}", flush=True))
    say("installing the chart (helm upgrade --install)")
    install_operator(box)
    if box.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        kubectl(box, "create", "namespace", namespace)
    say(f"applying {example.file.relative_to(ROOT)} in namespace {namespace}")
    kubectl(box, "apply", "-n", namespace, "-f", str(example.file))
    docs = yaml.safe_load_all(example.file.read_text())
    cluster = next(d for d in docs if d and d["kind"] == "MysqlCluster")
    name = cluster["metadata"]["name"]
    flavor = cluster["spec"].get("flavor", "mysql")
    wait_ready(box, name, namespace)
    print(kubectl(box, "get", "mysqlclusters", "-A"), flush=True)
    secret = json.loads(kubectl(box, "get", "secret", f"{name}-credentials", "-n", namespace, "-o", "json"))
    user = base64.b64decode(secret["data"]["app-user"]).decode()
    database = base64.b64decode(secret["data"]["app-database"]).decode()
    password = base64.b64decode(secret["data"]["app-password"]).decode()
    port = cluster["spec"]["service"]["nodePort"]
    client = client_command(box, flavor)
    version = check_client(client, port, user, password, database)
    env = box.env().strip().replace("\n", "; ")
    print(
        f"""
The cluster is Ready: {flavor} {version}, checked with the client below.
Connect through the -primary Service (NodePort {port}, forwarded on 127.0.0.1):

  {env}
  {shlex.join(client)} -h 127.0.0.1 -P {port} -u {user} -p"$(kubectl get secret -n {namespace} \\
      {name}-credentials -o jsonpath='{{.data.app-password}}' | base64 -d)" {database}

Watch it:      kubectl get mysqlclusters -A -w
The other flavor beside it: make sandbox EXAMPLE={"mariadb" if flavor == "mysql" else "mysql"}
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
    parser.add_argument("--example", choices=sorted(EXAMPLES), default=DEFAULT_EXAMPLE,
                        help="which example cluster `up` brings up (default: %(default)s)")
    args = parser.parse_args(argv)
    box = Sandbox(args.name)
    try:
        if args.command == "up":
            up(box, args.example)
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
