"""Where the pinned Kubernetes toolchain lives, and how to build it (hack/build-tools.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-tools.sh"
TOOL_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "helm")


class ToolMissing(RuntimeError):
    """A binary the sandbox needs is not built; run hack/build-tools.sh."""


def cache_dir() -> Path:
    """The toolchain cache: $TOOLS_CACHE, else $HOME/.cache/mysql-operator (same rule as the script)."""
    return Path(os.environ.get("TOOLS_CACHE") or Path.home() / ".cache" / "mysql-operator")


def bin_dir() -> Path:
    """The directory of symlinks to the pinned binaries; put it first on PATH."""
    return cache_dir() / "bin"


def versions() -> dict[str, str]:
    """The pinned versions from hack/versions.env."""
    pinned: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pinned[key.strip()] = value.strip()
    return pinned


def tool_path(tool: str) -> Path:
    """The absolute path of one pinned binary, checked to exist."""
    path = bin_dir() / tool
    if not os.access(path, os.X_OK):
        raise ToolMissing(f"{tool} not found at {path}; build the toolchain with {BUILD_SCRIPT}")
    return path


def ensure_built(timeout: float = 3 * 3600) -> None:
    """Build whatever is missing (a warm cache returns at once). Long on a cold machine: see the script."""
    if all(os.access(bin_dir() / t, os.X_OK) for t in TOOL_NAMES):
        subprocess.run([str(BUILD_SCRIPT)], check=True, timeout=60)  # re-links if versions changed
        return
    subprocess.run([str(BUILD_SCRIPT)], check=True, timeout=timeout)
