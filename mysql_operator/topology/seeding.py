"""Seeds run in the background: copying a donor can take minutes, and the topology pass of the same
cluster must go on every few seconds meanwhile (failover included), so a pass only starts a seed and
later passes collect how it went. One `SeedWorkers` per cluster, kept by the caller between passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from mysql_operator.mysql.session import MysqlError


@dataclass(frozen=True)
class SeedOutcome:
    """How one finished seed went; `error` is empty on success."""

    ordinal: int
    description: str
    seconds: float
    error: str = ""


@dataclass
class _Job:
    description: str
    started: float
    future: Future[float]


class SeedWorkers:
    """At most one seed per instance, at most `parallel` at a time per cluster."""

    def __init__(self, parallel: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="seed")
        self._jobs: dict[int, _Job] = {}
        self._lock = threading.Lock()

    def start(self, ordinal: int, description: str, work: Callable[[], float]) -> bool:
        """Run `work` (returns seconds taken) for `ordinal` unless a seed of it is running."""
        with self._lock:
            if ordinal in self._jobs:
                return False
            self._jobs[ordinal] = _Job(description, time.monotonic(), self._pool.submit(work))
            return True

    def running(self) -> dict[int, str]:
        """ordinal -> what is being done, with the time it has taken so far."""
        now = time.monotonic()
        with self._lock:
            return {
                o: f"{job.description} ({now - job.started:.0f}s)"
                for o, job in self._jobs.items() if not job.future.done()
            }

    def finished(self) -> list[SeedOutcome]:
        """Collect (and forget) the seeds that ended since the last call."""
        with self._lock:
            done = {o: job for o, job in self._jobs.items() if job.future.done()}
            for ordinal in done:
                del self._jobs[ordinal]
        outcomes = []
        for ordinal, job in sorted(done.items()):
            error = job.future.exception()
            if error is None:
                outcomes.append(SeedOutcome(ordinal, job.description, job.future.result()))
            else:
                text = str(error) if isinstance(error, MysqlError) else f"{type(error).__name__}: {error}"
                outcomes.append(SeedOutcome(ordinal, job.description, time.monotonic() - job.started, text))
        return outcomes

    def wait(self, timeout: float) -> bool:
        """Wait (bounded) until no seed runs; whether that happened. For tests and shutdown."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return not self.running()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
