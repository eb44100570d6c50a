"""Local processes of one sandbox: started in their own process group, tagged, and always reaped.

Every process the sandbox starts carries SANDBOX_OWNER=<run dir> in its environment (children inherit
it), so `down` can find and end whatever is left even after a crash, without matching on names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

OWNER_VAR = "SANDBOX_OWNER"


def spawn(
    argv: Sequence[str],
    *,
    owner: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pid_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in a new session (its own process group), output appended to log."""
    full_env = dict(os.environ if env is None else env)
    full_env[OWNER_VAR] = str(owner)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{proc.pid}\n")
    return proc


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def signal_group(pgid: int, sig: int) -> None:
    """Send sig to a process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """True while any non-zombie member of process group pgid remains."""
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def stop_group(proc: subprocess.Popen[bytes] | int, grace: float = 10.0) -> None:
    """SIGTERM a process group, wait up to grace seconds, then SIGKILL it; reap the leader if ours."""
    pgid = proc if isinstance(proc, int) else proc.pid
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if isinstance(proc, subprocess.Popen):
            proc.poll()
        if not group_alive(pgid):
            break
        time.sleep(0.1)
    else:
        signal_group(pgid, signal.SIGKILL)
    if isinstance(proc, subprocess.Popen):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    kill_deadline = time.monotonic() + 5
    while group_alive(pgid) and time.monotonic() < kill_deadline:
        signal_group(pgid, signal.SIGKILL)
        time.sleep(0.1)


def owned_pids(owner: Path) -> list[int]:
    """Live processes tagged with SANDBOX_OWNER=<owner>."""
    marker = f"{OWNER_VAR}={owner}".encode()
    found = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and alive(pid):
            found.append(pid)
    return found


def kill_owned(owner: Path, grace: float = 10.0) -> list[int]:
    """End every process tagged with owner: SIGTERM, then SIGKILL after grace. Returns what was found."""
    pids = owned_pids(owner)
    for pid in pids:
        _signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for _attempt in range(50):
        left = owned_pids(owner)
        if not left:
            break
        for pid in left:
            _signal_pid(pid, signal.SIGKILL)
        time.sleep(0.1)
    return pids


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, ... (empty if gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []
