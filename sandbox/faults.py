"""Faults a test or benchmark injects into the sandbox's pods, and their removal.

- kill: SIGKILL a container's process group (optionally kept down), as a crash or a lost node.
- pause/resume: SIGSTOP/SIGCONT of a container's process group: a hung server, an I/O stall, a frozen VM.
- isolate/heal: a network partition of one pod. Packet-filter rules drop every packet to or from the
  pod's loopback IP and every packet that the pod's own processes send (they connect out from
  127.0.0.1, so their source address alone does not tell them apart: the node agent starts each
  container in a cgroup of its pod, and a cgroup match catches those). The agent's probes, the
  NodePort forwarder and the operator all reach the pod by its IP, so they lose it too.
- lag: stop or delay a replica's SQL thread through SQL as root (the relay log keeps growing).
- kill_operator: SIGKILL the operator's container(s), e.g. in the middle of a failover.

Only this sandbox's own loopback addresses and cgroups are touched. Every rule carries the comment
`sandbox-fault:<sandbox name>:<namespace>/<pod>`, and `teardown` (called by `Sandbox.down`) removes
every rule with this sandbox's marker, continues stopped processes and removes the cgroups.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pymysql

from mysql_operator.conventions import OPERATOR_USER, Flavor, ordinal_of_pod
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.observe import observe_instance
from mysql_operator.mysql.session import Login, Timeouts
from sandbox import processes

if TYPE_CHECKING:
    from sandbox.instance import Sandbox

MARKER = "sandbox-fault"
OPERATOR_NAMESPACE = "mysql-operator"
OPERATOR_CONTAINER = "operator"
CGROUP_FILE = "cgroup-root"  # in the run folder: the sandbox's cgroup, relative to the cgroup2 root


class FaultError(RuntimeError):
    """A fault could not be injected or removed (the message says why)."""


def marker(sandbox_name: str, target: str = "") -> str:
    """The comment every packet-filter rule of this sandbox carries (`target` is NAMESPACE/POD)."""
    return f"{MARKER}:{sandbox_name}:{target}" if target else f"{MARKER}:{sandbox_name}:"


# ---- cgroups: which processes belong to which pod --------------------------------------------------


def cgroup2_mount() -> Path | None:
    """Where the unified (v2) cgroup hierarchy is mounted, if it is."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return Path(fields[1])
    return None


def own_cgroup() -> str:
    """This process's cgroup v2 path ("/" at the root)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    return "/"


def cgroup_leaf(pod_namespace: str, pod: str, uid: str) -> str:
    """The name of a pod's cgroup below the sandbox's: one per incarnation, as its folder (a pod
    re-created under the same name is a new pod, not isolated with the old one)."""
    return f"{pod_namespace}.{pod}-{uid[:8]}"


def prepare_cgroup_root(run_dir: Path, sandbox_name: str) -> str | None:
    """Create the sandbox's cgroup (once per supervisor start) and remember its path in the run folder;
    None (and no file) where cgroup v2 cannot be written: isolation then matches addresses only."""
    mount = cgroup2_mount()
    if mount is None:
        return None
    relative = f"{own_cgroup().rstrip('/')}/sandbox-{sandbox_name}"
    try:
        (mount / relative.lstrip("/")).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    (run_dir / CGROUP_FILE).write_text(relative + "\n")
    return relative


def cgroup_root(run_dir: Path) -> str | None:
    """The sandbox's cgroup path recorded by prepare_cgroup_root, or None."""
    with contextlib.suppress(OSError):
        return (run_dir / CGROUP_FILE).read_text().strip() or None
    return None


def in_pod_cgroup(run_dir: Path, pod_namespace: str, pod: str, uid: str, argv: Sequence[str]) -> list[str]:
    """argv run inside the pod's cgroup: a shell moves itself there, then execs argv (same pid, and
    every socket the container ever opens belongs to the cgroup). Unchanged without cgroup v2."""
    root, mount = cgroup_root(run_dir), cgroup2_mount()
    if root is None or mount is None:
        return list(argv)
    leaf = mount / root.lstrip("/") / cgroup_leaf(pod_namespace, pod, uid)
    try:
        leaf.mkdir(exist_ok=True)
    except OSError:
        return list(argv)
    return ["/bin/sh", "-c", 'echo $$ > "$0" 2>/dev/null; exec "$@"', str(leaf / "cgroup.procs"), *argv]


def remove_cgroups(run_dir: Path) -> None:
    """Remove the sandbox's (now empty) cgroups; called once its processes are gone."""
    root, mount = cgroup_root(run_dir), cgroup2_mount()
    if root is None or mount is None:
        return
    base = mount / root.lstrip("/")
    if base.is_dir():
        for leaf in base.iterdir():
            if leaf.is_dir():
                with contextlib.suppress(OSError):
                    leaf.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


# ---- packet filter -----------------------------------------------------------------------------------


def iptables() -> str:
    """The iptables binary (Debian's `iptables` package, nf_tables backend)."""
    path = shutil.which("iptables") or ("/usr/sbin/iptables" if Path("/usr/sbin/iptables").exists() else None)
    if path is None:
        raise FaultError("iptables is not installed (apt-get install iptables)")
    return path


def isolation_rules(ip: str, cgroup: str | None, comment: str) -> list[list[str]]:
    """The rules that cut one pod off: (chain, match...) argument lists for `iptables -A`."""
    address = ipaddress.ip_address(ip)
    if not address.is_loopback or str(address).startswith("127.0.0."):
        raise FaultError(f"{ip} is not a sandbox pod address (only 127.B.x.y with B > 0 are)")
    tail = ["-m", "comment", "--comment", comment, "-j", "DROP"]
    rules = [[chain, flag, ip, *tail] for chain in ("INPUT", "OUTPUT") for flag in ("-d", "-s")]
    if cgroup is not None:
        rules.append(["OUTPUT", "-m", "cgroup", "--path", cgroup, *tail])
    return rules


def listed_rules(sandbox_name: str, target: str = "") -> list[str]:
    """`iptables -S` lines carrying this sandbox's marker (for target, or for any pod)."""
    result = subprocess.run([iptables(), "-w", "5", "-S"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise FaultError(f"iptables -S failed: {result.stderr.strip()}")
    wanted = marker(sandbox_name, target)

    def ours(comment: str) -> bool:
        return comment == wanted if target else comment.startswith(wanted)

    return [line for line in result.stdout.splitlines() if line.startswith("-A ") and ours(_comment_of(line))]


def _comment_of(line: str) -> str:
    words = shlex.split(line)  # iptables -S quotes a comment as a shell would
    return words[words.index("--comment") + 1] if "--comment" in words else ""


def remove_rules(sandbox_name: str, target: str = "") -> int:
    """Delete every rule with this sandbox's marker (for one target, or all); returns how many."""
    removed = 0
    for line in listed_rules(sandbox_name, target):
        words = shlex.split(line)
        words[0] = "-D"
        result = subprocess.run([iptables(), "-w", "5", *words], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            removed += 1
    left = listed_rules(sandbox_name, target)
    if left:
        raise FaultError(f"packet-filter rules left after removal: {left}")
    return removed


# ---- the API ---------------------------------------------------------------------------------------


class Faults:
    """Fault injection in one sandbox (`Faults(Sandbox(name))`)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    # processes

    def kill(self, namespace: str, pod: str, container: str = "mysqld", keep_down: bool = False) -> list[int]:
        """SIGKILL the container (see Sandbox.kill_container)."""
        return self.sandbox.kill_container(namespace, pod, container, keep_down=keep_down)

    def pause(self, namespace: str, pod: str, container: str = "mysqld") -> list[int]:
        """SIGSTOP the container's process group: it keeps its sockets and answers nothing."""
        return self._signal(namespace, pod, container, signal.SIGSTOP)

    def resume(self, namespace: str, pod: str, container: str = "mysqld") -> list[int]:
        """SIGCONT the container's process group."""
        return self._signal(namespace, pod, container, signal.SIGCONT)

    def _signal(self, namespace: str, pod: str, container: str, sig: int) -> list[int]:
        owned = set(processes.owned_pids(self.sandbox.dir))
        signalled = []
        for pid_file in self.sandbox._pod_files(namespace, pod, f"{container}.pid"):
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if pid in owned:
                processes.signal_group(pid, sig)
                signalled.append(pid)
        return signalled

    def kill_operator(self, namespace: str = OPERATOR_NAMESPACE) -> list[int]:
        """SIGKILL every operator container (the Deployment's pods restart them)."""
        pods = self.sandbox.kube().get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        killed: list[int] = []
        for pod in pods:
            names = [c["name"] for c in pod["spec"]["containers"]]
            if OPERATOR_CONTAINER in names:
                killed += self.kill(namespace, pod["metadata"]["name"], OPERATOR_CONTAINER)
        return killed

    # network

    def pod_ip(self, namespace: str, pod: str) -> str:
        return self._pod_address(namespace, pod)[0]

    def _pod_address(self, namespace: str, pod: str) -> tuple[str, str]:
        """(IP, uid) of the pod's current incarnation."""
        obj = self.sandbox.kube().get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        ip = (obj.get("status") or {}).get("podIP")
        if not ip:
            raise FaultError(f"pod {namespace}/{pod} has no IP yet")
        return str(ip), str(obj["metadata"]["uid"])

    def isolate(self, namespace: str, pod: str) -> str:
        """Drop every packet to or from the pod (its IP, and whatever its processes send); returns the IP.
        Idempotent. The pod's current incarnation only: one the operator deletes is gone with it."""
        ip, uid = self._pod_address(namespace, pod)
        target = f"{namespace}/{pod}"
        root = cgroup_root(self.sandbox.dir)
        # xt_cgroup resolves the path from the cgroup2 root itself
        cgroup = f"{root.strip('/')}/{cgroup_leaf(namespace, pod, uid)}" if root else None
        remove_rules(self.sandbox.name, target)
        for rule in isolation_rules(ip, cgroup, marker(self.sandbox.name, target)):
            # inserted first: nothing another tool appended may accept these packets before us
            result = subprocess.run([iptables(), "-w", "5", "-I", *rule], capture_output=True, text=True,
                                    timeout=30)
            if result.returncode != 0:
                remove_rules(self.sandbox.name, target)
                raise FaultError(f"iptables refused {rule}: {result.stderr.strip()}")
        return ip

    def heal(self, namespace: str, pod: str) -> int:
        """Remove the pod's isolation rules; returns how many were removed."""
        return remove_rules(self.sandbox.name, f"{namespace}/{pod}")

    def heal_all(self) -> int:
        """Remove every isolation rule of this sandbox."""
        return remove_rules(self.sandbox.name)

    def rules(self) -> list[str]:
        """This sandbox's packet-filter rules, as `iptables -S` lists them."""
        return listed_rules(self.sandbox.name)

    # replication

    def lag(self, namespace: str, pod: str, delay: int | None = None, resume: bool = False) -> str:
        """Make a replica fall behind: stop its SQL thread (delay None), or delay it by `delay` seconds
        (MASTER_DELAY / SOURCE_DELAY); `resume` starts the SQL thread with no delay again. Returns the
        SQL run (no secret in it)."""
        flavor, password = self._instance_access(namespace, pod)
        mysql = flavor == "mysql"
        stop_sql = "STOP REPLICA SQL_THREAD" if mysql else "STOP SLAVE SQL_THREAD"
        # MariaDB changes MASTER_DELAY only with both threads stopped
        stop, start = ("STOP REPLICA", "START REPLICA") if mysql else ("STOP SLAVE", "START SLAVE")
        delay_sql = ("CHANGE REPLICATION SOURCE TO SOURCE_DELAY = {}" if mysql
                     else "CHANGE MASTER TO MASTER_DELAY = {}")
        if resume:
            statements = [stop, delay_sql.format(0), start]
        elif delay is None:
            statements = [stop_sql]
        else:
            statements = [stop, delay_sql.format(int(delay)), start]
        conn = pymysql.connect(host=self.pod_ip(namespace, pod), port=3306, user=OPERATOR_USER,
                               password=password,
                               connect_timeout=5, read_timeout=30, write_timeout=30, autocommit=True)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()
        return "; ".join(statements)

    def stop_receiving(self, namespace: str, pod: str) -> None:
        """Stop a replica's receiver (IO thread): it stops taking the primary's transactions (the
        operator restarts it on a later pass, as it would after any such fault)."""
        flavor, password = self._instance_access(namespace, pod)
        statement = "STOP REPLICA IO_THREAD" if flavor == "mysql" else "STOP SLAVE IO_THREAD"
        conn = pymysql.connect(host=self.pod_ip(namespace, pod), port=3306, user=OPERATOR_USER,
                               password=password, connect_timeout=5, read_timeout=30, write_timeout=30,
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def received(self, namespace: str, pod: str) -> str:
        """The GTID set the instance holds: executed, plus what its relay log received (the product's
        own observation, read-only)."""
        flavor, password = self._instance_access(namespace, pod)
        seen = observe_instance(ordinal_of_pod(pod), self.pod_ip(namespace, pod),
                                Login(OPERATOR_USER, password), dialect_for(cast(Flavor, flavor)),
                                timeouts=Timeouts(connect=2.0, read=5.0, write=5.0))
        if not seen.reachable:
            raise FaultError(f"{namespace}/{pod} unreachable: {seen.error}")
        return seen.received

    def _instance_access(self, namespace: str, pod: str) -> tuple[str, str]:
        """(flavor, the operator user's password) of the MysqlCluster that owns the pod: root is local to
        its pod only."""
        kube = self.sandbox.kube()
        obj = kube.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        cluster = (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/instance")
        if not cluster:
            raise FaultError(f"pod {namespace}/{pod} belongs to no MysqlCluster")
        path = f"/apis/mysql.operator.dev/v1alpha1/namespaces/{namespace}/mysqlclusters/{cluster}"
        resource: Any = kube.get(path)
        secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{cluster}-credentials")
        password = base64.b64decode(secret["data"]["operator-password"]).decode()
        return str(resource["spec"].get("flavor", "mysql")), password


def teardown(sandbox: Sandbox) -> int:
    """Undo every fault of the sandbox that outlives its processes: packet-filter rules and stopped
    processes (continued, so that they can end). Returns the number of rules removed."""
    for pid in processes.owned_pids(sandbox.dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)
    try:
        return remove_rules(sandbox.name)
    except FaultError as exc:
        if "not installed" in str(exc):
            return 0  # nothing could have been added either
        raise
