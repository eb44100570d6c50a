"""One sandbox instance: a run folder, a supervisor process that owns the control plane and the node
agent, and the Python API tests use (`Sandbox(name).up()`, `.kubectl(...)`, `.down()`)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox import faults, processes, tools
from sandbox.controlplane import ControlPlane
from sandbox.kube import Kube, KubeError
from sandbox.nodeagent import STORAGE_CLASS, NodeAgent, control_file

log = logging.getLogger("sandbox")


class SandboxError(RuntimeError):
    """The sandbox could not be brought up (the message says why and where the logs are)."""


class ToolFailed(subprocess.CalledProcessError):
    """kubectl or helm exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr.strip()}"


def default_dir(name: str) -> Path:
    return tools.REPO_ROOT / ".sandbox" / name


class Sandbox:
    """A local Kubernetes (control plane + node agent) in run folder `dir` (default `.sandbox/<name>`)."""

    def __init__(self, name: str = "sandbox", dir: Path | None = None, nodes: int = 3,
                 api_port: int | None = None, ip_block: int | None = None) -> None:
        self.name = name
        self.dir = (dir or default_dir(name)).resolve()
        self.nodes = nodes
        self.api_port = api_port
        self.ip_block = ip_block
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- paths -----------------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (exists once the sandbox is up)."""
        return self.dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pids" / "supervisor.pid"

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def supervisor_pid(self) -> int | None:
        """The running supervisor's pid (checked to be this sandbox's own process), else None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid in processes.owned_pids(self.dir) else None

    def running(self) -> bool:
        return self.supervisor_pid() is not None

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def up(self, timeout: float = 600.0, progress: Callable[[str], None] = print) -> Sandbox:
        """Build tools if missing, start the sandbox unless it runs already, wait until nodes are Ready
        and the default StorageClass exists. Idempotent."""
        tools.ensure_built()
        if self.running() and self.state().get("phase") == "failed":
            progress(f"sandbox {self.name!r} runs but failed ({self.state().get('error')}); restarting it")
            self.down()
        if self.running():
            progress(f"sandbox {self.name!r} is already running ({self.dir})")
        else:
            faults.teardown(self)  # rules or paused processes of a run that crashed
            leftovers = processes.kill_owned(self.dir, grace=5)
            if leftovers:
                progress(f"ended {len(leftovers)} stale process(es) of an earlier run")
            self.dir.mkdir(parents=True, exist_ok=True)
            self.state_file.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "sandbox", "--name", self.name, "--dir", str(self.dir), "_serve",
                    "--nodes", str(self.nodes)]
            if self.api_port is not None:
                argv += ["--api-port", str(self.api_port)]
            if self.ip_block is not None:
                argv += ["--ip-block", str(self.ip_block)]
            progress(f"starting sandbox {self.name!r} in {self.dir}")
            self._proc = processes.spawn(argv, owner=self.dir, log=self.dir / "logs" / "sandbox.log",
                                         cwd=tools.REPO_ROOT)
        self._wait_ready(timeout, progress)
        return self

    def _wait_ready(self, timeout: float, progress: Callable[[str], None]) -> None:
        deadline = time.monotonic() + timeout
        last_step = ""
        while time.monotonic() < deadline:
            state = self.state()
            if state.get("step") and state["step"] != last_step:
                last_step = state["step"]
                progress(f"  {last_step}")
            if state.get("phase") == "ready":
                progress(f"sandbox {self.name!r} is ready; kubeconfig: {self.kubeconfig}")
                return
            if state.get("phase") == "failed" or (self._proc is not None and self._proc.poll() is not None):
                raise SandboxError(f"sandbox failed to start: {state.get('error', 'supervisor exited')}\n"
                                   f"{self._log_tail()}")
            time.sleep(0.3)
        raise SandboxError(
            f"sandbox not ready after {timeout:.0f}s (last step: {last_step})\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        log_file = self.dir / "logs" / "sandbox.log"
        text = log_file.read_text(errors="replace").splitlines()[-lines:] if log_file.exists() else []
        return "\n".join(text) + f"\n(logs in {self.dir / 'logs'})"

    def down(self, timeout: float = 90.0) -> list[int]:
        """Stop everything of this sandbox; returns pids that had to be ended by the final sweep."""
        faults.teardown(self)  # first: paused processes must be continued to end, rules removed
        pid = self.supervisor_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and processes.alive(pid):
                if self._proc is not None:
                    self._proc.poll()
                time.sleep(0.2)
        if self._proc is not None:
            processes.stop_group(self._proc, grace=1)
            self._proc = None
        leftovers = processes.kill_owned(self.dir, grace=5)
        faults.remove_cgroups(self.dir)
        self.pid_file.unlink(missing_ok=True)
        return leftovers

    def status(self) -> dict[str, Any]:
        state = self.state()
        state["running"] = self.running()
        state["dir"] = str(self.dir)
        state["processes"] = len(processes.owned_pids(self.dir))
        return state

    def env(self) -> str:
        """Shell lines that point kubectl and helm at this sandbox."""
        return f'export KUBECONFIG={self.kubeconfig}\nexport PATH={tools.bin_dir()}:"$PATH"\n'

    # ---- tools ------------------------------------------------------------------------------------------

    def tool_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{tools.bin_dir()}:{env.get('PATH', '')}"
        for kind in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{kind}_HOME"] = str(self.dir / "helm" / kind.lower())
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this sandbox (output captured as text)."""
        return self._run(tools.tool_path("kubectl"), args, input, check, timeout)

    def helm(self, *args: str, input: str | None = None, check: bool = True,
             timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run the pinned helm against this sandbox (output captured as text)."""
        return self._run(tools.tool_path("helm"), args, input, check, timeout)

    def _run(self, binary: Path, args: tuple[str, ...], input: str | None, check: bool,
             timeout: float) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(binary), *args], input=input, capture_output=True, text=True,
                                env=self.tool_env(), timeout=timeout)
        if check and result.returncode != 0:
            raise ToolFailed(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def kube(self) -> Kube:
        """A raw JSON client with the admin credentials."""
        return Kube(self.kubeconfig)

    # ---- failure injection ------------------------------------------------------------------------------

    def kill_container(self, namespace: str, pod: str, container: str = "mysqld",
                       keep_down: bool = False) -> list[int]:
        """SIGKILL a pod's container processes (whole group); with keep_down the agent does not
        restart it (nor the same container of a recreated pod of that name) until released."""
        if keep_down:
            marker = control_file(self.dir, namespace, pod, container)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        killed = []
        owned = set(processes.owned_pids(self.dir))
        for pid_file in self._pod_files(namespace, pod, f"{container}.pid"):
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if pid in owned:
                processes.signal_group(pid, signal.SIGKILL)
                killed.append(pid)
        return killed

    def logs(self, namespace: str, pod: str, container: str = "mysqld") -> str:
        """A container's output (what `kubectl logs` would show; there is no kubelet API to ask)."""
        files = sorted(self._pod_files(namespace, pod, f"{container}.log"),
                       key=lambda path: path.stat().st_mtime)
        return files[-1].read_text(errors="replace") if files else ""

    def _pod_files(self, namespace: str, pod: str, filename: str) -> list[Path]:
        """filename in the folder of every incarnation of the pod (`<pod>-<uid[:8]>`)."""
        folders = (self.dir / "pods" / namespace).glob(f"{pod}-*")
        pattern = re.compile(re.escape(pod) + r"-[0-9a-f]{8}")
        return [f / filename for f in folders if pattern.fullmatch(f.name) and (f / filename).exists()]

    def release_container(self, namespace: str, pod: str, container: str = "mysqld") -> None:
        """Let the agent start a container held down by kill_container(keep_down=True) again."""
        control_file(self.dir, namespace, pod, container).unlink(missing_ok=True)


# ---- the supervisor (python -m sandbox _serve) ----------------------------------------------------------


def serve(name: str, run_dir: Path, nodes: int, api_port: int | None, ip_block: int | None) -> int:
    """Run control plane + node agent until SIGTERM/SIGINT; report progress in state.json."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = run_dir.resolve()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sandbox = Sandbox(name, run_dir)
    sandbox.pid_file.parent.mkdir(parents=True, exist_ok=True)
    sandbox.pid_file.write_text(f"{os.getpid()}\n")

    def report(phase: str, step: str, **extra: Any) -> None:
        log.info("%s: %s", phase, step)
        state = {"phase": phase, "step": step, "pid": os.getpid(), "name": name,
                 "kubeconfig": str(sandbox.kubeconfig), **extra}
        tmp = sandbox.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(sandbox.state_file)

    faults.prepare_cgroup_root(run_dir, name)
    plane = ControlPlane(run_dir, api_port=api_port, progress=lambda step: report("starting", step))
    agent: NodeAgent | None = None
    code = 0
    try:
        plane.start()
        report("starting", f"kube-apiserver at {plane.api_url}; starting the node agent ({nodes} nodes)")
        agent = NodeAgent(plane.agent_kubeconfig, run_dir, name, nodes=nodes, ip_block=ip_block)
        agent.start()
        _wait_nodes_ready(agent, stop, timeout=120)
        report("ready", f"{nodes} node(s) Ready, StorageClass {STORAGE_CLASS} is the default",
               api=plane.api_url, nodes=agent.node_names, ipBlock=f"127.{agent.block}.0.0/16")
        while not stop.wait(2):
            dead = [component for component, alive in plane.alive().items() if not alive]
            if dead:
                log.error("control plane component(s) exited: %s (see %s)", dead, run_dir / "logs")
                report("failed", f"{', '.join(dead)} exited",
                       error=f"{dead} exited; logs in {run_dir / 'logs'}")
                code = 1
                break
    except Exception as exc:
        log.exception("sandbox failed")
        report("failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__, error=str(exc))
        code = 1
    finally:
        if agent is not None:
            agent.stop()
        plane.stop()
        if sandbox.state().get("phase") != "failed":
            report("stopped", "stopped")
        sandbox.pid_file.unlink(missing_ok=True)
    return code


def _wait_nodes_ready(agent: NodeAgent, stop: threading.Event, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            selector = f"sandbox.local/agent={agent.name}"
            nodes = agent.kube.get("/api/v1/nodes", labelSelector=selector)["items"]
            ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in n.get("status", {}).get("conditions") or [])]
            classes = agent.kube.get("/apis/storage.k8s.io/v1/storageclasses")["items"]
            default = any(c["metadata"]["name"] == STORAGE_CLASS for c in classes)
            # pods can only be created once the namespace's default ServiceAccount exists
            account = agent.kube.get_or_none("/api/v1/namespaces/default/serviceaccounts/default")
            if len(ready) == len(agent.node_names) and default and account:
                return
        except KubeError:
            pass
        time.sleep(0.5)
    raise SandboxError("nodes did not become Ready in time")
