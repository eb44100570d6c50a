"""python -m sandbox up|down|status|env|logs|kill-container|release-container|fault  (see --help)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.faults import FaultError, Faults
from sandbox.instance import Sandbox, SandboxError, serve


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=argparse.SUPPRESS, help="sandbox name (default: sandbox)")
    common.add_argument("--dir", type=Path, default=argparse.SUPPRESS,
                        help="run folder (default: <repo>/.sandbox/<name>)")
    parser = argparse.ArgumentParser(prog="python -m sandbox", parents=[common],
                                     description="A local Kubernetes (no containers) for mysql-operator.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", parents=[common], help="build tools if missing, start, wait until Ready")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--api-port", type=int, help="kube-apiserver port on 127.0.0.1 (default: a free one)")
    up.add_argument("--ip-block", type=int, help="second octet of pod IPs 127.B.x.y (default: from the name)")
    up.add_argument("--timeout", type=float, default=600.0)
    commands.add_parser("down", parents=[common], help="stop everything, leaving no process")
    commands.add_parser("status", parents=[common], help="print the state as JSON")
    commands.add_parser("env", parents=[common], help="print KUBECONFIG and PATH exports")
    for command, text in (("kill-container", "SIGKILL a pod's container (e.g. mysqld)"),
                          ("release-container", "let a kept-down container start again")):
        sub = commands.add_parser(command, parents=[common], help=text)
        sub.add_argument("pod", help="NAMESPACE/POD")
        sub.add_argument("--container", default="mysqld")
        if command == "kill-container":
            sub.add_argument("--keep-down", action="store_true", help="do not restart it until released")
    logs = commands.add_parser("logs", parents=[common], help="print a container's output (kubectl logs)")
    logs.add_argument("pod", help="NAMESPACE/POD")
    logs.add_argument("--container", "-c", default="mysqld")
    fault = commands.add_parser("fault", parents=[common],
                                help="inject or remove a fault (see sandbox/faults.py)")
    kinds = fault.add_subparsers(dest="fault", required=True)
    for kind, text in (("kill", "SIGKILL a container"), ("pause", "SIGSTOP a container's process group"),
                       ("resume", "SIGCONT a paused container"),
                       ("isolate", "drop every packet to or from a pod (iptables, marked rules)"),
                       ("heal", "remove a pod's isolation rules"),
                       ("lag", "stop (default) or delay a replica's SQL thread, or --resume it")):
        sub = kinds.add_parser(kind, parents=[common], help=text)
        sub.add_argument("pod", help="NAMESPACE/POD")
        if kind in ("kill", "pause", "resume"):
            sub.add_argument("--container", default="mysqld")
        if kind == "kill":
            sub.add_argument("--keep-down", action="store_true")
        if kind == "lag":
            sub.add_argument("--delay", type=int, help="seconds of MASTER_DELAY / SOURCE_DELAY")
            sub.add_argument("--resume", action="store_true", help="start the SQL thread, no delay")
    kill_operator = kinds.add_parser("kill-operator", parents=[common],
                                     help="SIGKILL the operator container(s)")
    kill_operator.add_argument("--namespace", default="mysql-operator")
    kinds.add_parser("heal-all", parents=[common], help="remove every isolation rule of the sandbox")
    kinds.add_parser("list", parents=[common], help="print the sandbox's packet-filter rules")
    serve_parser = commands.add_parser("_serve", parents=[common])  # internal: the supervisor
    serve_parser.add_argument("--nodes", type=int, default=3)
    serve_parser.add_argument("--api-port", type=int)
    serve_parser.add_argument("--ip-block", type=int)
    options = parser.parse_args(argv)
    name = getattr(options, "name", "sandbox")
    run_dir = getattr(options, "dir", None)

    if options.command == "_serve":
        return serve(name, run_dir or Sandbox(name).dir, options.nodes, options.api_port, options.ip_block)
    sandbox = Sandbox(name, run_dir, nodes=getattr(options, "nodes", 3),
                      api_port=getattr(options, "api_port", None),
                      ip_block=getattr(options, "ip_block", None))
    if options.command == "up":
        try:
            sandbox.up(timeout=options.timeout, progress=lambda line: print(line, flush=True))
        except SandboxError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(sandbox.env(), end="")
    elif options.command == "down":
        was_running = sandbox.running()
        swept = sandbox.down()
        print(f"sandbox {sandbox.name!r} " + ("stopped" if was_running else "was not running"))
        if swept:
            print(f"ended {len(swept)} leftover process(es)")
    elif options.command == "status":
        print(json.dumps(sandbox.status(), indent=2))
        return 0 if sandbox.running() else 3
    elif options.command == "env":
        print(sandbox.env(), end="")
    elif options.command == "logs":
        namespace, _, pod = options.pod.partition("/")
        print(sandbox.logs(namespace, pod, options.container), end="")
    elif options.command == "fault":
        return run_fault(sandbox, options)
    elif options.command in ("kill-container", "release-container"):
        namespace, _, pod = options.pod.partition("/")
        if not pod:
            parser.error("pod must be NAMESPACE/POD")
        if options.command == "kill-container":
            pids = sandbox.kill_container(namespace, pod, options.container, keep_down=options.keep_down)
            print(f"killed {options.container} of {namespace}/{pod}: pids {pids}"
                  + (" (kept down until release-container)" if options.keep_down else ""))
            return 0 if pids or options.keep_down else 1
        sandbox.release_container(namespace, pod, options.container)
        print(f"released {options.container} of {namespace}/{pod}")
    return 0


def run_fault(sandbox: Sandbox, options: argparse.Namespace) -> int:
    """`python -m sandbox fault KIND ...`: print what was done; non-zero when nothing was."""
    faults = Faults(sandbox)
    try:
        if options.fault in ("heal-all", "list", "kill-operator"):
            if options.fault == "heal-all":
                print(f"removed {faults.heal_all()} rule(s)")
            elif options.fault == "list":
                print("\n".join(faults.rules()))
            else:
                pids = faults.kill_operator(options.namespace)
                print(f"killed operator container(s): pids {pids}")
                return 0 if pids else 1
            return 0
        namespace, _, pod = options.pod.partition("/")
        if not pod:
            print("error: pod must be NAMESPACE/POD", file=sys.stderr)
            return 2
        if options.fault in ("kill", "pause", "resume"):
            if options.fault == "kill":
                pids = faults.kill(namespace, pod, options.container, keep_down=options.keep_down)
            else:
                pids = getattr(faults, options.fault)(namespace, pod, options.container)
            print(f"{options.fault}: {options.container} of {namespace}/{pod}: pids {pids}")
            return 0 if pids else 1
        if options.fault == "isolate":
            print(f"isolated {namespace}/{pod} ({faults.isolate(namespace, pod)})")
        elif options.fault == "heal":
            print(f"healed {namespace}/{pod}: removed {faults.heal(namespace, pod)} rule(s)")
        else:
            print(faults.lag(namespace, pod, delay=options.delay, resume=options.resume))
    except (FaultError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
