"""`up` is idempotent and `down` leaves no process behind (an instance of its own)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxError, processes
from sandbox.controlplane import ControlPlane
from sandbox.tools import REPO_ROOT, ToolMissing

from .conftest import wait_for

# The first test also pays for building the toolchain on a cold machine (about 5 minutes here).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def test_up_twice_is_idempotent_and_down_leaves_no_process() -> None:
    instance = Sandbox("test-sandbox-lifecycle", nodes=1)
    instance.down()
    shutil.rmtree(instance.dir, ignore_errors=True)
    try:
        cli = [sys.executable, "-m", "sandbox", "--name", instance.name]
        first = subprocess.run([*cli, "up"], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
        assert first.returncode == 0, first.stderr
        assert f"export KUBECONFIG={instance.kubeconfig}" in first.stdout
        supervisor = instance.supervisor_pid()
        second = subprocess.run([*cli, "up"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert instance.supervisor_pid() == supervisor

        instance.kubectl("apply", "-f", "-", input=textwrap.dedent("""
            apiVersion: v1
            kind: Pod
            metadata: {name: scratch-db, namespace: default}
            spec:
              containers:
              - name: mysqld
                image: mariadb:11.4
                env: [{name: MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, value: "1"}]
        """))

        def running_pid() -> int | None:
            found = instance.kube().get_or_none("/api/v1/namespaces/default/pods/scratch-db") or {}
            for status in (found.get("status") or {}).get("containerStatuses") or []:
                if "running" in status["state"]:
                    return int(status["containerID"].split("://")[1])
            return None

        mariadbd = wait_for("scratch-db running", running_pid, timeout=120)
        assert processes.alive(mariadbd)

        down = subprocess.run([*cli, "down"], capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        assert not processes.alive(mariadbd)
        assert processes.owned_pids(instance.dir) == []
        pgrep = subprocess.run(["pgrep", "-f", str(instance.dir)], capture_output=True, text=True)
        assert pgrep.stdout == "", f"left running: {pgrep.stdout}"
        status = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
        assert status.returncode == 3
    finally:
        instance.down()


def test_up_fails_clearly_when_the_apiserver_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        instance = Sandbox("test-sandbox-port", api_port=port, nodes=1)
        try:
            with pytest.raises(SandboxError, match=f"127.0.0.1:{port} .*already in use"):
                instance.up(timeout=120, progress=lambda _line: None)
        finally:
            instance.down()
        assert processes.owned_pids(instance.dir) == []


def test_a_missing_binary_is_named_with_the_way_to_build_it(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ToolMissing, match=r"etcd not found at .*build-tools\.sh"):
        ControlPlane(tmp_path / "run").start(timeout=10)
