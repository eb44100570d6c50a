"""A test-only node agent: fake Nodes with lease heartbeats, a local-directory provisioner for the
default StorageClass, kubelet for pods bound to its nodes (see sandbox.pods), and kube-proxy for
NodePort Services (127.0.0.1:<nodePort> -> a Ready pod matching the selector).

Addresses: sandbox block B (from the name, or chosen), node i has host IP 127.B.i.1 and gives its
pods 127.B.i.2-254, so two sandboxes side by side never share an address. Nothing here dials
anything but 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import socket
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.controlplane import write_kubeconfig
from sandbox.kube import Kube, KubeError
from sandbox.pods import PodWorker
from sandbox.tools import versions

log = logging.getLogger("sandbox.nodeagent")
Obj = dict[str, Any]

STORAGE_CLASS = "sandbox-local"
PROVISIONER = "sandbox.local/hostpath"
NODE_CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"}
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 40


def default_ip_block(name: str) -> int:
    """The second octet of this sandbox's loopback addresses: stable per name, never 0 (127.0.0.x)."""
    return 20 + zlib.crc32(name.encode()) % 200


def choose_ip_block(name: str, run_dir: Path) -> int:
    """The block this run folder used before; else the name's default, moved on past blocks that
    sibling run folders claim or where something already listens (another sandbox's pods)."""
    saved = run_dir / "ip-block"
    if saved.exists():
        return int(saved.read_text())
    claimed = set()
    for other in run_dir.parent.glob("*/ip-block"):
        with contextlib.suppress(ValueError, OSError):
            claimed.add(int(other.read_text()))
    busy = _listening_blocks()
    block = default_ip_block(name)
    for _ in range(200):
        if block not in claimed and block not in busy:
            break
        block = 20 + (block - 20 + 1) % 200
    saved.write_text(f"{block}\n")
    return block


def _listening_blocks() -> set[int]:
    """Second octets of 127.x addresses with a listening TCP socket (from /proc/net/tcp)."""
    blocks = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address = bytes.fromhex(fields[1].split(":")[0])[::-1]  # little-endian IPv4
                if address[0] == 127 and address[1] != 0:
                    blocks.add(address[1])
    return blocks


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def control_file(run_dir: Path, namespace: str, pod: str, container: str) -> Path:
    """The keep-down marker of one container (see `python -m sandbox kill-container --keep-down`)."""
    return run_dir / "control" / "keep-down" / f"{namespace}_{pod}_{container}"


class NodeAgent:
    """Registers `nodes` fake Nodes and plays kubelet, kube-proxy and a provisioner for them."""

    def __init__(self, kubeconfig: Path, run_dir: Path, name: str, nodes: int = 3,
                 ip_block: int | None = None) -> None:
        self.kube = Kube(kubeconfig)
        self.run_dir = run_dir.resolve()
        self.socket_dir = self.run_dir / "sock"
        self.name = name
        self.node_names = [f"{name}-node-{i}" for i in range(1, nodes + 1)]
        self.block = choose_ip_block(name, self.run_dir) if ip_block is None else ip_block
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        self.ips: set[str] = set()
        self.forwarders: dict[int, NodePortForwarder] = {}
        self.threads: list[threading.Thread] = []

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Register nodes and the StorageClass, then run every loop in a daemon thread."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._register_nodes()
        self._ensure_storage_class()
        for target in (self._heartbeat_loop, self._storage_loop, self._pod_loop, self._service_loop):
            thread = threading.Thread(target=self._guard(target), name=target.__name__, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every pod's processes (bounded) and every listener."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
            forwarders = list(self.forwarders.values())
        for worker in workers:
            worker.wake.set()
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(timeout=max(0.1, deadline - time.monotonic()))
        for forwarder in forwarders:
            forwarder.close()

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        """Run loop until stopping; log and restart it (after a pause) if it raises."""
        def run() -> None:
            while not self.stopping.is_set():
                try:
                    loop()
                except Exception:
                    log.error("%s failed:\n%s", loop.__name__, traceback.format_exc())
                    self.stopping.wait(2)
        return run

    # ---- nodes ---------------------------------------------------------------------------------------

    def node_ip(self, node: str) -> str:
        return f"127.{self.block}.{self.node_names.index(node) + 1}.1"

    def _register_nodes(self) -> None:
        version = versions()["KUBERNETES_VERSION"]
        for index, node in enumerate(self.node_names, start=1):
            body = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {
                    "kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": f"zone-{index}", "sandbox.local/agent": self.name,
                }},
            }
            with contextlib.suppress(KubeError):
                self.kube.create("/api/v1/nodes", body)
            status = {
                "capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY,
                "addresses": [{"type": "InternalIP", "address": self.node_ip(node)},
                              {"type": "Hostname", "address": node}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {
                    "kubeletVersion": version, "kubeProxyVersion": "", "containerRuntimeVersion": "sandbox://1",
                    "operatingSystem": "linux", "architecture": "amd64", "osImage": "sandbox node agent",
                    "kernelVersion": "", "machineID": node, "systemUUID": node, "bootID": node,
                },
            }
            self.kube.patch(f"/api/v1/nodes/{node}/status", {"status": status})
            self._heartbeat(node)

    def _heartbeat(self, node: str) -> None:
        now = rfc3339()
        conditions = [
            {"type": kind, "status": "False", "reason": f"KubeletHas{reason}", "message": "sandbox",
             "lastHeartbeatTime": now, "lastTransitionTime": now}
            for kind, reason in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                                 ("PIDPressure", "SufficientPID"))
        ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady",
              "message": "sandbox node agent is posting ready status",
              "lastHeartbeatTime": now, "lastTransitionTime": now}]
        node_obj = self.kube.get(f"/api/v1/nodes/{node}")
        old = {c["type"]: c for c in (node_obj.get("status") or {}).get("conditions") or []}
        for condition in conditions:
            previous = old.get(condition["type"])
            if previous and previous.get("status") == condition["status"]:
                condition["lastTransitionTime"] = previous["lastTransitionTime"]
        self.kube.patch(f"/api/v1/nodes/{node}/status", {"status": {"conditions": conditions}})
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        spec = {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_time()}
        lease = self.kube.get_or_none(lease_path)
        if lease is None:
            owner = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_obj["metadata"]["uid"]}
            self.kube.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "metadata": {"name": node, "ownerReferences": [owner]}, "spec": spec})
        else:
            self.kube.patch(lease_path, {"spec": spec}, kind="merge-patch")

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            for node in self.node_names:
                self._heartbeat(node)

    # ---- storage -------------------------------------------------------------------------------------

    def _ensure_storage_class(self) -> None:
        body = {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS,
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True,
        }
        with contextlib.suppress(KubeError):
            self.kube.create("/apis/storage.k8s.io/v1/storageclasses", body)

    def _storage_loop(self) -> None:
        """Provision a PV (a directory under the run folder) for each pending claim of our class;
        delete released volumes whose policy is Delete. Polled: a handful of objects."""
        while not self.stopping.wait(1.0):
            for pvc in self.kube.get("/api/v1/persistentvolumeclaims")["items"]:
                if (pvc["spec"].get("storageClassName") == STORAGE_CLASS and not pvc["spec"].get("volumeName")
                        and not pvc["metadata"].get("deletionTimestamp")):
                    self._provision(pvc)
            for pv in self.kube.get("/api/v1/persistentvolumes")["items"]:
                annotations = pv["metadata"].get("annotations") or {}
                if (annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
                        and (pv.get("status") or {}).get("phase") == "Released"
                        and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete"):
                    shutil.rmtree(pv["spec"]["hostPath"]["path"], ignore_errors=True)
                    with contextlib.suppress(KubeError):
                        self.kube.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")

    def _provision(self, pvc: Obj) -> None:
        meta = pvc["metadata"]
        name = f"pvc-{meta['uid']}"
        path = self.run_dir / "volumes" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        path.mkdir(parents=True, exist_ok=True)
        body = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
                "accessModes": pvc["spec"].get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": pvc["spec"].get("volumeMode", "Filesystem"),
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
            },
        }
        try:
            self.kube.create("/api/v1/persistentvolumes", body)
            log.info("provisioned %s for %s/%s at %s", name, meta["namespace"], meta["name"], path)
        except KubeError as exc:
            if exc.status != 409:
                raise

    # ---- pods ----------------------------------------------------------------------------------------

    def allocate_ip(self, node: str, preferred: str | None) -> str:
        """A free pod IP on node (the preferred one, from an earlier run, if it is free and fits)."""
        prefix = f"127.{self.block}.{self.node_names.index(node) + 1}."
        with self.lock:
            candidates = [f"{prefix}{host}" for host in range(2, 255)]
            if preferred and preferred.startswith(prefix):
                candidates.insert(0, preferred)
            for ip in candidates:
                if ip not in self.ips:
                    self.ips.add(ip)
                    return ip
        raise RuntimeError(f"node {node} has no free pod IP left")

    def release_ip(self, ip: str) -> None:
        with self.lock:
            self.ips.discard(ip)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]

    def kept_down(self, namespace: str, pod: str, container: str) -> bool:
        return control_file(self.run_dir, namespace, pod, container).exists()

    def service_account_kubeconfig(self, pod: Obj, work_dir: Path) -> Path:
        """A kubeconfig with a token of the pod's ServiceAccount, bound to the pod (TokenRequest)."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 24 * 3600,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                        "name": meta["name"], "uid": meta["uid"]}},
        }
        answer = self.kube.create(
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token", request)
        path = work_dir / "kubeconfig"
        user = f"system:serviceaccount:{meta['namespace']}:{account}"
        write_kubeconfig(path, self.kube.server, self.kube.ca, user, token=answer["status"]["token"])
        return path

    def _dispatch(self, pod: Obj, deleted: bool = False) -> None:
        if pod["spec"].get("nodeName") not in self.node_names or self.stopping.is_set():
            return
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if worker is None and not deleted and not finished:
                worker = self.workers[uid] = PodWorker(self, pod)
                worker.start()
                return
        if worker is None and finished and pod["metadata"].get("deletionTimestamp") and not deleted:
            # nothing runs for a finished pod: complete its deletion, as kubelet does
            meta = pod["metadata"]
            with contextlib.suppress(KubeError):
                self.kube.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                 {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
            return
        if worker is not None:
            worker.remove() if deleted else worker.update(pod)

    def _pod_loop(self) -> None:
        """List, then watch pods (bounded watches); a full relist repairs anything missed."""
        listing = self.kube.get("/api/v1/pods")
        seen = set()
        for pod in listing["items"]:
            seen.add(pod["metadata"]["uid"])
            self._dispatch(pod)
        with self.lock:
            gone = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in gone:
            worker.remove()
        version = listing["metadata"]["resourceVersion"]
        deadline = time.monotonic() + 300
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                for event in self.kube.watch("/api/v1/pods", version, timeout_seconds=20):
                    if self.stopping.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        return  # e.g. 410 Gone: relist
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._dispatch(obj, deleted=event["type"] == "DELETED")
            except KubeError:
                return

    def ready_pod_ip(
        self, namespace: str, selector: dict[str, str], target_port: int | str,
    ) -> tuple[str, int] | None:
        """A Ready pod of ours in namespace matching selector, and the port to reach: kube-proxy's choice."""
        with self.lock:
            workers = list(self.workers.values())
        random.shuffle(workers)
        for worker in workers:
            meta = worker.pod["metadata"]
            labels = meta.get("labels") or {}
            if meta["namespace"] != namespace or any(labels.get(k) != v for k, v in selector.items()):
                continue
            ip = worker.ready_ip()
            if ip is None:
                continue
            if isinstance(target_port, int) or str(target_port).isdigit():
                return ip, int(target_port)
            for container in worker.pod["spec"]["containers"]:
                for port in container.get("ports") or []:
                    if port.get("name") == target_port:
                        return ip, int(port["containerPort"])
        return None

    # ---- NodePort services -----------------------------------------------------------------------------

    def _service_loop(self) -> None:
        while not self.stopping.wait(1.0):
            wanted: dict[int, tuple[str, dict[str, str], int | str]] = {}
            for service in self.kube.get("/api/v1/services")["items"]:
                spec = service["spec"]
                if spec.get("type") not in ("NodePort", "LoadBalancer") or not spec.get("selector"):
                    continue
                for port in spec.get("ports") or []:
                    if port.get("nodePort") and port.get("protocol", "TCP") == "TCP":
                        target = port.get("targetPort", port["port"])
                        namespace = service["metadata"]["namespace"]
                        wanted[port["nodePort"]] = (namespace, spec["selector"], target)
            with self.lock:
                for node_port in set(self.forwarders) - set(wanted):
                    self.forwarders.pop(node_port).close()
                for node_port, route in wanted.items():
                    forwarder = self.forwarders.get(node_port)
                    if forwarder is None:
                        try:
                            forwarder = NodePortForwarder(self, node_port)
                        except OSError as exc:
                            log.error("cannot listen on 127.0.0.1:%d: %s", node_port, exc)
                            continue
                        self.forwarders[node_port] = forwarder
                    forwarder.route = route


class NodePortForwarder:
    """Listens on 127.0.0.1:<nodePort>; each new connection goes to a Ready pod chosen then."""

    def __init__(self, agent: NodeAgent, node_port: int) -> None:
        self.agent = agent
        self.node_port = node_port
        self.route: tuple[str, dict[str, str], int | str] = ("", {}, 0)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", node_port))
        self.listener.listen(64)
        self.listener.settimeout(0.5)
        self.closed = threading.Event()
        threading.Thread(target=self._accept_loop, name=f"nodeport-{node_port}", daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self.closed.is_set() and not self.agent.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        namespace, selector, target = self.route
        backend = self.agent.ready_pod_ip(namespace, selector, target)
        if backend is None:
            conn.close()  # no Ready endpoint: refuse, as kube-proxy's REJECT rule would
            return
        try:
            upstream = socket.create_connection(backend, timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(conn, upstream), daemon=True).start()
        _pump(upstream, conn)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until either side closes, then close both."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
