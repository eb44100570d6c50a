"""Shared test helpers: where the pinned tools live, the repository root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tool_bin_dir() -> Path:
    out = subprocess.run(
        [str(ROOT / "hack" / "build-tools.sh"), "--path"], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="session")
def helm() -> str:
    """The pinned helm built by hack/build-tools.sh (make test builds it first)."""
    path = tool_bin_dir() / "helm"
    if not path.exists():
        found = shutil.which("helm")
        raise AssertionError(f"helm not built at {path} (run hack/build-tools.sh); PATH has {found}")
    return str(path)
