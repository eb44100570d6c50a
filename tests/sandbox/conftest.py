"""A sandbox instance of its own for the harness tests (`test-sandbox`), fresh each session."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from sandbox import Sandbox, processes

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0, every: float = 0.5) -> T:
    """Poll probe until it returns something truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    # Its own name beside an e2e run of the same E2E_SANDBOX (parallel runs on one machine).
    name = f"{os.environ['E2E_SANDBOX']}-harness" if os.environ.get("E2E_SANDBOX") else "test-sandbox"
    instance = Sandbox(name)
    instance.down()
    shutil.rmtree(instance.dir, ignore_errors=True)
    instance.up(timeout=900)
    try:
        yield instance
    finally:
        instance.down()
        left = processes.owned_pids(instance.dir)
        assert not left, f"processes left after down: {left}"
