"""A Kubernetes control plane as local processes (like envtest): etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, all on 127.0.0.1, all logs in one run folder.

The apiserver runs with RBAC on, `--endpoint-reconciler-type=none` (its address is loopback), a
service CIDR used only to allocate ClusterIPs (no process ever dials one) and admission webhooks off
(calling one means dialing a ClusterIP).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from sandbox import pki, processes, tools

SERVICE_CIDR = "10.96.0.0/16"
# Endpoints/EndpointSlices refuse loopback pod IPs, so these controllers could only log errors.
DISABLED_CONTROLLERS = (
    "endpoints-controller", "endpointslice-controller", "endpointslice-mirroring-controller",
)
# Metadata of every request except the node agent's own polling (so the log shows what clients did).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "None", "users": ["sandbox-node-agent"]}, {"level": "Metadata"}],
}


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message names the component and its log."""


class PortInUse(ControlPlaneError):
    """A port the control plane wants on 127.0.0.1 is taken."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (we can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now on host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler for one run folder."""

    COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

    def __init__(self, run_dir: Path, api_port: int | None = None, audit: bool = True,
                 progress: Callable[[str], None] = print) -> None:
        self.run_dir = run_dir.resolve()
        self.pki = self.run_dir / "pki"
        self.logs = self.run_dir / "logs"
        self.pids = self.run_dir / "pids"
        self.requested_api_port = api_port
        self.audit = audit
        self.progress = progress
        self.ports: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in group system:masters)."""
        return self.run_dir / "kubeconfig"

    @property
    def agent_kubeconfig(self) -> Path:
        """The node agent's kubeconfig (also system:masters, under its own name)."""
        return self.run_dir / "node-agent.kubeconfig"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['api']}"

    def start(self, timeout: float = 180.0) -> None:
        """Start all components in order, each waited for (bounded); on failure stop what started."""
        binaries = {name: tools.tool_path(name) for name in self.COMPONENTS}
        pki.ensure_pki(self.pki)
        self._choose_ports()
        deadline = time.monotonic() + timeout
        try:
            self._start_etcd(binaries["etcd"], deadline)
            self._start_apiserver(binaries["kube-apiserver"], deadline)
            self._write_kubeconfigs()
            self._start_controller_manager(binaries["kube-controller-manager"], deadline)
            self._start_scheduler(binaries["kube-scheduler"], deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 15.0) -> None:
        """Stop components in reverse order: SIGTERM, then SIGKILL after grace; leaves no process."""
        for name in reversed(self.COMPONENTS):
            proc = self._procs.pop(name, None)
            if proc is not None:
                processes.stop_group(proc, grace)
            (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def alive(self) -> dict[str, bool]:
        """Whether each started component process is still running."""
        return {name: proc.poll() is None for name, proc in self._procs.items()}

    # ---- ports -------------------------------------------------------------------------------------

    def _choose_ports(self) -> None:
        """Reuse the ports of the previous run of this folder when free (stable kubeconfig)."""
        saved_file = self.run_dir / "ports.json"
        saved = json.loads(saved_file.read_text()) if saved_file.exists() else {}
        if self.requested_api_port is not None:
            saved["api"] = self.requested_api_port
            if not port_free(self.requested_api_port):
                raise PortInUse(
                    f"port 127.0.0.1:{self.requested_api_port} (kube-apiserver) is already in use")
        for key in ("api", "etcd", "etcd-peer", "controller-manager", "scheduler"):
            port = saved.get(key)
            if port is None or not port_free(port):
                port = free_port()
            self.ports[key] = port
        if len(set(self.ports.values())) != len(self.ports):
            raise PortInUse(f"could not pick distinct free ports: {self.ports}")
        saved_file.write_text(json.dumps(self.ports, indent=2) + "\n")

    # ---- components ----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.progress(f"starting {name}")
        self._procs[name] = processes.spawn(
            argv, owner=self.run_dir, log=self.logs / f"{name}.log", pid_file=self.pids / f"{name}.pid",
            cwd=self.run_dir,
        )

    def _start_etcd(self, binary: Path, deadline: float) -> None:
        client, peer = self.ports["etcd"], self.ports["etcd-peer"]
        self._spawn("etcd", [
            str(binary), "--name=sandbox", f"--data-dir={self.run_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=sandbox=http://127.0.0.1:{peer}",
            # A throwaway test cluster: no fsync keeps a 2-core machine responsive.
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        self._wait("etcd", deadline, lambda: _http_ok(f"http://127.0.0.1:{client}/health"))

    def _start_apiserver(self, binary: Path, deadline: float) -> None:
        p = self.pki
        argv = [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['api']}", f"--cert-dir={self.run_dir / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--requestheader-client-ca-file={p / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            # Webhooks would make the apiserver dial a Service's ClusterIP: off, so nothing leaves loopback.
            "--disable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            "--profiling=false",
        ]
        if self.audit:
            policy = self.run_dir / "audit-policy.yaml"
            policy.write_text(yaml.safe_dump(AUDIT_POLICY))
            argv += [f"--audit-policy-file={policy}", f"--audit-log-path={self.logs / 'audit.log'}",
                     "--audit-log-maxsize=200", "--audit-log-maxbackup=1"]
        self._spawn("kube-apiserver", argv)
        context = ssl.create_default_context(cafile=str(p / "ca.crt"))
        context.load_cert_chain(str(p / "admin.crt"), str(p / "admin.key"))
        self._wait("kube-apiserver", deadline, lambda: _http_ok(f"{self.api_url}/readyz", context))

    def _start_controller_manager(self, binary: Path, deadline: float) -> None:
        kubeconfig = self.run_dir / "controller-manager.kubeconfig"
        controllers = ",".join(["*", *(f"-{c}" for c in DISABLED_CONTROLLERS)])
        self._spawn("kube-controller-manager", [
            str(binary), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['controller-manager']}",
            f"--cert-dir={self.run_dir / 'controller-manager-certs'}",
            "--leader-elect=false",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={self.pki / 'ca.crt'}",
            f"--cluster-signing-key-file={self.pki / 'ca.key'}",
            f"--controllers={controllers}",
        ])
        port = self.ports["controller-manager"]
        self._wait("kube-controller-manager", deadline, lambda: _http_ok(f"https://127.0.0.1:{port}/healthz"))

    def _start_scheduler(self, binary: Path, deadline: float) -> None:
        kubeconfig = self.run_dir / "scheduler.kubeconfig"
        self._spawn("kube-scheduler", [
            str(binary), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['scheduler']}",
            f"--cert-dir={self.run_dir / 'scheduler-certs'}",
            "--leader-elect=false",
        ])
        port = self.ports["scheduler"]
        self._wait("kube-scheduler", deadline, lambda: _http_ok(f"https://127.0.0.1:{port}/healthz"))

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        proc = self._procs[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode}; last log lines:\n{self._log_tail(name)}")
            if ready():
                return
            time.sleep(0.25)
        raise ControlPlaneError(
            f"{name} not ready before the timeout; last log lines:\n{self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 15) -> str:
        log = self.logs / f"{name}.log"
        text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        return "\n".join(text) + f"\n(full log: {log})"

    # ---- kubeconfigs -----------------------------------------------------------------------------------

    def _write_kubeconfigs(self) -> None:
        write_kubeconfig(self.kubeconfig, self.api_url, self.pki / "ca.crt", "sandbox-admin",
                         cert=self.pki / "admin.crt", key=self.pki / "admin.key")
        for name in ("controller-manager", "scheduler", "node-agent"):
            write_kubeconfig(self.run_dir / f"{name}.kubeconfig", self.api_url, self.pki / "ca.crt", name,
                             cert=self.pki / f"{name}.crt", key=self.pki / f"{name}.key")


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, *, cert: Path | None = None,
                     key: Path | None = None, token: str | None = None) -> None:
    """Write a single-context kubeconfig (mode 0600) with either a client cert or a bearer token."""
    credentials: dict[str, str] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate": str(cert), "client-key": str(key)}
    if token is not None:
        credentials = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user}}],
        "current-context": "sandbox",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    if context is None and url.startswith("https://"):
        context = ssl._create_unverified_context()  # components' self-signed serving certs, loopback only
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
