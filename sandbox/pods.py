"""Playing kubelet for one pod: set up its volumes, run its (init) containers as local processes by
image, probe them, restart them per restartPolicy, publish the pod's status, and on deletion stop
every process before removing the pod object (grace 0), as kubelet does."""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import ssl
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3

from sandbox import processes
from sandbox.faults import in_pod_cgroup
from sandbox.images import ContainerContext, Launch, NotRunnable, runner_for
from sandbox.kube import KubeError
from sandbox.podenv import (
    ContainerConfigError,
    PodFacts,
    VolumeNotReady,
    container_env,
    container_mounts,
    expand,
    expanded_command,
    pod_volumes,
)

if TYPE_CHECKING:
    from sandbox.nodeagent import NodeAgent

log = logging.getLogger("sandbox.pods")
Obj = dict[str, Any]
OUR_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
MAX_BACKOFF = 20.0  # kubelet's is 300 s; shorter keeps tests quick
MAX_GRACE = 30.0
TERMINATION_MESSAGE_LIMIT = 4096  # kubelet's limit per container
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048  # FallbackToLogsOnError, as kubelet


VOLUME_REFRESH_SECONDS = 10.0  # kubelet's sync period is about a minute; the sandbox is quicker


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    """The runtime record of one (init) container of the pod."""

    spec: Obj
    init: bool
    proc: subprocess.Popen[bytes] | None = None
    launch: Launch | None = None
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ever_started: bool = False
    started: bool = False  # startup probe passed (or none)
    ready: bool = False  # readiness probe passed (or none)
    done: bool = False  # terminated for good (no restart)
    succeeded: bool = False
    not_runnable: bool = False
    backoff: float = 0.0
    next_start: float = 0.0
    started_mono: float = 0.0
    started_iso: str = ""
    container_id: str = ""
    probe_stop: threading.Event = field(default_factory=threading.Event)
    termination_log: Path | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> Obj:
        return {
            "name": self.name,
            "image": self.spec["image"],
            "imageID": f"sandbox://{self.spec['image']}",
            **({"containerID": self.container_id} if self.container_id else {}),
            "ready": bool(self.proc is not None and self.ready),
            "started": bool(self.proc is not None and self.started),
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker(threading.Thread):
    """One thread per pod bound to one of the agent's nodes."""

    def __init__(self, agent: NodeAgent, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid: str = meta["uid"]
        self.node: str = pod["spec"]["nodeName"]
        self.pod_dir = agent.run_dir / "pods" / meta["namespace"] / f"{meta['name']}-{self.uid[:8]}"
        self.init_containers = [Container(c, True) for c in pod["spec"].get("initContainers") or []]
        self.containers = [Container(c, False) for c in pod["spec"]["containers"]]
        self.ip: str | None = None
        self.host_ip = agent.node_ip(self.node)
        self.start_time = now_iso()
        self.volumes: dict[str, Path] | None = None
        self.volumes_synced = 0.0  # monotonic time the ConfigMap/Secret volumes were last written
        self.volume_error = ""
        self.transitions: dict[str, tuple[str, str]] = {}
        self.published: Obj | None = None
        self.wake = threading.Event()
        self.removed = threading.Event()

    # ---- called from the agent's watch thread --------------------------------------------------------

    def update(self, pod: Obj) -> None:
        """The latest version of the pod object."""
        self.pod = pod
        self.wake.set()

    def remove(self) -> None:
        """The pod object is gone: stop its processes now."""
        self.removed.set()
        self.wake.set()

    def ready_ip(self) -> str | None:
        """The pod IP if every container is ready (what a Service forwards to), else None."""
        if self.removed.is_set() or self.pod["metadata"].get("deletionTimestamp"):
            return None
        all_ready = all(c.proc is not None and c.ready for c in self.containers)
        return self.ip if all_ready else None

    def kill_container(self, name: str) -> bool:
        """SIGKILL a running container's whole process group (a crash, as far as anyone can tell)."""
        for c in self.containers + self.init_containers:
            if c.name == name and c.proc is not None:
                processes.signal_group(c.proc.pid, 9)
                self.wake.set()
                return True
        return False

    # ---- the loop ----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                if self.removed.is_set() or self.agent.stopping.is_set():
                    self._kill_all(grace=5.0)
                    return
                if self.pod["metadata"].get("deletionTimestamp"):
                    self._terminate()
                    return
                try:
                    self._sync()
                    self._publish()
                except (KubeError, urllib3.exceptions.HTTPError) as exc:
                    # the apiserver is briefly unavailable: keep the processes, try again next tick
                    log.warning("pod %s: %s", self.name, exc)
                    self.wake.wait(2)
                self.wake.wait(0.5)
                self.wake.clear()
        except Exception:
            log.error("pod worker %s failed:\n%s", self.name, traceback.format_exc())
            self._kill_all(grace=5.0)
        finally:
            if self.ip:
                self.agent.release_ip(self.ip)
            self.agent.worker_done(self)

    def _sync(self) -> None:
        if self.ip is None:
            self.ip = self.agent.allocate_ip(self.node, (self.pod.get("status") or {}).get("podIP"))
            self.pod_dir.mkdir(parents=True, exist_ok=True)
        if self.volumes is None:
            try:
                self.volumes = pod_volumes(self.agent.kube, self._facts(), self.pod_dir)
                self.volumes_synced = time.monotonic()
                self.volume_error = ""
            except (VolumeNotReady, ContainerConfigError) as exc:
                self.volume_error = str(exc)
                for c in self.init_containers + self.containers:
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": str(exc)}}
                return
        elif time.monotonic() - self.volumes_synced > VOLUME_REFRESH_SECONDS:
            # As kubelet does: a running pod's ConfigMap and Secret volumes follow their objects (a
            # rotated certificate reaches mysqld's files without a restart); on trouble the old stay.
            self.volumes_synced = time.monotonic()
            try:
                self.volumes = pod_volumes(self.agent.kube, self._facts(), self.pod_dir)
            except (VolumeNotReady, ContainerConfigError) as exc:
                log.warning("pod %s: volumes not refreshed: %s", self.name, exc)
        for c in self.init_containers:
            if not c.succeeded:
                self._drive(c)
                return  # one init container at a time, in order
        for c in self.containers:
            self._drive(c)

    def _drive(self, c: Container) -> None:
        if c.proc is not None:
            code = c.proc.poll()
            if code is None:
                if time.monotonic() - c.started_mono > 60:
                    c.backoff = 0.0
                return
            self._exited(c, code)
        if c.done or c.not_runnable:
            return
        meta = self.pod["metadata"]
        if self.agent.kept_down(meta["namespace"], meta["name"], c.name):
            c.state = {"waiting": {"reason": "KeptDown", "message":
                                   "held down by `python -m sandbox kill-container --keep-down`"}}
            return
        if time.monotonic() < c.next_start:
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                   f"back-off {c.backoff:.0f}s restarting failed container={c.name}"}}
            return
        self._start(c)

    def _start(self, c: Container) -> None:
        meta = self.pod["metadata"]
        facts = self._facts()
        try:
            self.volumes = pod_volumes(self.agent.kube, facts, self.pod_dir)  # fresh ConfigMaps/Secrets
            env = container_env(self.agent.kube, facts, c.spec)
            command, args = expanded_command(c.spec, env)
            work_dir = self.pod_dir / c.name
            work_dir.mkdir(parents=True, exist_ok=True)
            c.termination_log = work_dir / "termination-log"
            c.termination_log.unlink(missing_ok=True)  # one message per incarnation
            ctx = ContainerContext(
                pod=self.pod, container=c.spec, env=env, command=command, args=args,
                mounts=container_mounts(c.spec, self.volumes), pod_ip=str(self.ip), work_dir=work_dir,
                socket_dir=self.agent.socket_dir,
                service_account_kubeconfig=lambda: self.agent.service_account_kubeconfig(self.pod, work_dir),
                termination_log=c.termination_log,
            )
            launch = runner_for(c.spec["image"]).launch(ctx)
        except NotRunnable as exc:
            c.state = {"waiting": {"reason": exc.reason, "message": exc.message}}
            c.not_runnable = True
            log.warning("%s/%s container %s: %s", meta["namespace"], meta["name"], c.name, exc.message)
            self.event("Warning", "Failed", f"Error: {exc.reason}: {exc.message}", c)
            return
        except (ContainerConfigError, VolumeNotReady) as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.next_start = time.monotonic() + 2
            return
        if c.ever_started:
            c.restart_count += 1
        c.launch = launch
        # in the pod's cgroup, so that `sandbox fault isolate` can also drop what the pod sends
        argv = in_pod_cgroup(self.agent.run_dir, meta["namespace"], meta["name"], self.uid, launch.argv)
        c.proc = processes.spawn(argv, owner=self.agent.run_dir, log=self.pod_dir / f"{c.name}.log",
                                 env=launch.env, cwd=launch.cwd, pid_file=self.pod_dir / f"{c.name}.pid")
        c.ever_started = True
        c.started_mono, c.started_iso = time.monotonic(), now_iso()
        c.container_id = f"sandbox://{c.proc.pid}"
        c.state = {"running": {"startedAt": c.started_iso}}
        c.started = "startupProbe" not in c.spec
        c.ready = "readinessProbe" not in c.spec and c.started
        c.probe_stop = threading.Event()
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in c.spec and not c.init:
                Prober(self, c, kind, c.spec[kind], {**launch.env, **launch.probe_env}).start()
        log.info("%s/%s: started %s (pid %d)", meta["namespace"], meta["name"], c.name, c.proc.pid)
        self.event("Normal", "Started", f"Started container {c.name} (pid {c.proc.pid})", c)

    def _exited(self, c: Container, code: int) -> None:
        c.probe_stop.set()
        exit_code = code if code >= 0 else 128 - code  # killed by a signal: 128 + signo, as a runtime says
        terminated = {"exitCode": exit_code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": c.started_iso, "finishedAt": now_iso(), "containerID": c.container_id}
        message = self._termination_message(c, code)
        if message:
            terminated["message"] = message
        c.proc, c.ready, c.started = None, False, False
        c.state = {"terminated": terminated}
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if c.init:
            c.succeeded = code == 0
            restart = code != 0 and policy != "Never"
        else:
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not restart:
            c.done = True
            return
        c.last_state = {"terminated": terminated}
        if code != 0:
            self.event("Warning", "BackOff", f"Back-off restarting failed container {c.name} "
                       f"(exit code {exit_code})", c)
        ran_for = time.monotonic() - c.started_mono
        c.backoff = 0.0 if ran_for > 60 else min(max(c.backoff * 2, 1.0), MAX_BACKOFF)
        c.next_start = time.monotonic() + c.backoff

    def _termination_message(self, c: Container, code: int) -> str:
        """As kubelet: the file at terminationMessagePath (at most 4096 bytes); with the policy
        FallbackToLogsOnError and a failure, the end of the log when the file is empty."""
        text = ""
        if c.termination_log is not None and c.termination_log.is_file():
            with open(c.termination_log, "rb") as source:
                text = source.read(TERMINATION_MESSAGE_LIMIT).decode(errors="replace")
        fallback = c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not text.strip() and code != 0 and fallback:
            log_file = self.pod_dir / f"{c.name}.log"
            if log_file.is_file():
                lines = log_file.read_bytes().decode(errors="replace").splitlines()[-FALLBACK_LOG_LINES:]
                text = "\n".join(lines)[-FALLBACK_LOG_BYTES:]
        return text

    def _terminate(self) -> None:
        """Graceful deletion: stop every process, then remove the pod object (grace 0), like kubelet."""
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30))
        for c in self.containers:
            if c.proc is not None:
                self.event("Normal", "Killing", f"Stopping container {c.name}", c)
        self._kill_all(grace=min(float(grace if grace is not None else 30), MAX_GRACE))
        try:
            options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
            self.agent.kube.delete(self._path(), options)
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise

    def _kill_all(self, grace: float) -> None:
        running = [c for c in self.init_containers + self.containers if c.proc is not None]
        for c in running:
            c.probe_stop.set()
            processes.signal_group(c.proc.pid, 15)  # type: ignore[union-attr]
        deadline = time.monotonic() + max(grace, 0.5)
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in running):  # type: ignore[union-attr]
            time.sleep(0.1)
        for c in running:
            processes.stop_group(c.proc, grace=0.5)  # type: ignore[arg-type]
            c.proc = None

    # ---- status ----------------------------------------------------------------------------------------

    def event(self, kind: str, reason: str, message: str, c: Container | None = None) -> None:
        """Post an Event about the pod, as kubelet does (best effort)."""
        meta = self.pod["metadata"]
        involved = {"apiVersion": "v1", "kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                    "uid": self.uid}
        if c is not None:
            involved["fieldPath"] = f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": involved, "type": kind, "reason": reason, "message": message[:1000],
            "source": {"component": "kubelet", "host": self.node}, "reportingComponent": "kubelet",
            "reportingInstance": self.node, "firstTimestamp": now_iso(), "lastTimestamp": now_iso(),
            "count": 1,
        }
        try:
            self.agent.kube.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except KubeError as exc:
            log.debug("event for %s/%s not posted: %s", meta["namespace"], meta["name"], exc)

    def _path(self) -> str:
        meta = self.pod["metadata"]
        return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"

    def _facts(self) -> PodFacts:
        return PodFacts(pod=self.pod, pod_ip=str(self.ip), host_ip=self.host_ip)

    def _phase(self) -> str:
        if any(c.done and not c.succeeded for c in self.init_containers):
            return "Failed"
        if not all(c.succeeded for c in self.init_containers):
            return "Pending"
        if all(c.done for c in self.containers):
            ok = all(c.state.get("terminated", {}).get("exitCode") == 0 for c in self.containers)
            return "Succeeded" if ok else "Failed"
        return "Running" if any(c.ever_started for c in self.containers) else "Pending"

    def _conditions(self) -> dict[str, tuple[str, str, str]]:
        """type -> (status, reason, message) for the conditions kubelet owns."""
        initialized = all(c.succeeded for c in self.init_containers)
        not_ready = [c.name for c in self.containers if not (c.proc is not None and c.ready)]
        message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
        ready = ("False", "ContainersNotReady", message) if not_ready else ("True", "", "")
        if self._phase() == "Succeeded":
            ready = ("False", "PodCompleted", "")
        uninit = [c.name for c in self.init_containers if not c.succeeded]
        return {
            "PodReadyToStartContainers": ("True", "", "") if self.volumes is not None and self.ip
            else ("False", "", self.volume_error),
            "Initialized": ("True", "", "") if initialized else
            ("False", "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(uninit)}]"),
            "ContainersReady": ready,
            "Ready": ready,
        }

    def _status(self) -> Obj:
        conditions = []
        for kind, (status, reason, message) in self._conditions().items():
            previous = self.transitions.get(kind)
            if previous is None or previous[0] != status:
                self.transitions[kind] = (status, now_iso())
            condition = {"type": kind, "status": status, "lastProbeTime": None,
                         "lastTransitionTime": self.transitions[kind][1]}
            if reason:
                condition["reason"] = reason
            if message:
                condition["message"] = message
            conditions.append(condition)
        status: Obj = {
            "phase": self._phase(),
            "conditions": conditions,
            "hostIP": self.host_ip, "hostIPs": [{"ip": self.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        return status

    def _publish(self) -> None:
        status = self._status()
        if status == self.published:
            return
        meta = self.pod["metadata"]
        try:
            fresh = self.agent.kube.get(self._path())
            if fresh["metadata"]["uid"] != self.uid or fresh["metadata"].get("deletionTimestamp"):
                return
            merged = dict(fresh.get("status") or {})
            merged.update({k: v for k, v in status.items() if k != "conditions"})
            others = [c for c in merged.get("conditions") or [] if c["type"] not in OUR_CONDITIONS]
            ours = status["conditions"]
            gates = [g["conditionType"] for g in self.pod["spec"].get("readinessGates") or []]
            passed = {o["type"] for o in others if o["status"] == "True"}
            if not set(gates) <= passed:
                gate_off = {"status": "False", "reason": "ReadinessGatesNotReady"}
                ours = [dict(c, **gate_off) if c["type"] == "Ready" else c for c in ours]
            merged["conditions"] = others + ours
            fresh["status"] = merged
            self.agent.kube.replace(self._path() + "/status", fresh)
            self.published = status
        except KubeError as exc:
            if exc.status not in (404, 409):
                log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], exc)


class Prober(threading.Thread):
    """Runs one probe of one container incarnation on its schedule, as kubelet's prober does."""

    def __init__(self, worker: PodWorker, c: Container, kind: str, probe: Obj, env: dict[str, str]) -> None:
        super().__init__(name=f"{kind}-{worker.name}-{c.name}", daemon=True)
        self.worker, self.c, self.kind, self.probe, self.env = worker, c, kind, probe, env
        self.stop = c.probe_stop

    def run(self) -> None:
        p = self.probe
        period = float(p.get("periodSeconds") or 10)
        success_threshold = int(p.get("successThreshold") or 1)
        failure_threshold = int(p.get("failureThreshold") or 3)
        if self.stop.wait(float(p.get("initialDelaySeconds") or 0)):
            return
        successes = failures = 0
        while not self.stop.is_set():
            if self.kind != "startupProbe" and not self.c.started:
                self.stop.wait(0.5)
                continue
            ok = self.check()
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if self.kind == "readinessProbe":
                if ok and successes >= success_threshold and not self.c.ready:
                    self.c.ready = True
                    self.worker.wake.set()
                elif not ok and failures >= failure_threshold and self.c.ready:
                    self.c.ready = False
                    self.worker.wake.set()
            elif self.kind == "startupProbe" and ok:
                self.c.started = True
                self.c.ready = "readinessProbe" not in self.c.spec
                self.worker.wake.set()
                return
            elif not ok and failures >= failure_threshold:  # liveness or startup: restart the container
                log.warning("%s: %s failed %d times; killing %s", self.worker.name, self.kind, failures,
                            self.c.name)
                probe = self.kind.removesuffix("Probe").capitalize()
                self.worker.event("Warning", "Unhealthy", f"{probe} probe failed {failures} times; "
                                  f"container {self.c.name} will be restarted", self.c)
                proc = self.c.proc
                if proc is not None:
                    grace = self.worker.pod["spec"].get("terminationGracePeriodSeconds", 30)
                    processes.stop_group(proc, grace=min(float(grace), 10.0))
                self.worker.wake.set()
                return
            self.stop.wait(period)

    def check(self) -> bool:
        timeout = float(self.probe.get("timeoutSeconds") or 1)
        try:
            if "exec" in self.probe:
                return self._exec(self.probe["exec"]["command"], timeout)
            if "httpGet" in self.probe:
                return self._http(self.probe["httpGet"], timeout)
            if "tcpSocket" in self.probe:
                action = self.probe["tcpSocket"]
                address = (self._host(action), self._port(action["port"]))
                with socket.create_connection(address, timeout=timeout):
                    return True
        except (OSError, ValueError, http.client.HTTPException, subprocess.SubprocessError):
            return False
        return False  # grpc probes: not supported

    def _exec(self, command: list[str], timeout: float) -> bool:
        argv = [expand(word, self.env) for word in command]
        proc = processes.spawn(argv, owner=self.worker.agent.run_dir, log=self.worker.pod_dir / "probes.log",
                               env=self.env, cwd=self.worker.pod_dir)
        try:
            return proc.wait(timeout=timeout) == 0
        except subprocess.TimeoutExpired:
            processes.stop_group(proc, grace=0)
            return False

    def _http(self, action: Obj, timeout: float) -> bool:
        host, port = self._host(action), self._port(action["port"])
        conn: http.client.HTTPConnection
        if action.get("scheme") == "HTTPS":  # as kubelet: no certificate verification
            conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
            conn.request("GET", action.get("path") or "/", headers=headers)
            return 200 <= conn.getresponse().status < 400
        finally:
            conn.close()

    def _host(self, action: Obj) -> str:
        host = action.get("host") or str(self.worker.ip)
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"probe host {host} is not a loopback address")  # never dial out
        return host

    def _port(self, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in self.c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"no container port named {port!r}")
