"""Seeds run in the background: copying a donor can take minutes, and the topology pass of the same
cluster must go on every few seconds meanwhile (failover included), so a pass only starts a seed and
later passes collect how it went. One `SeedWorkers` per cluster, kept by the caller between passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import actions, seed
from mysql_operator.mysql.dialect import MysqlDialect
from mysql_operator.mysql.session import Login, MysqlError, Timeouts, open_session
from mysql_operator.topology.context import Discarded, InstanceEndpoint, Pass
from mysql_operator.topology.decide import Problem, ReplicationMode, Seed

log = logging.getLogger(__name__)


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
        self._started: dict[int, int] = {}
        self._lock = threading.Lock()

    def start(self, ordinal: int, description: str, work: Callable[[], float]) -> bool:
        """Run `work` (returns seconds taken) for `ordinal` unless a seed of it is running."""
        with self._lock:
            if ordinal in self._jobs:
                return False
            self._jobs[ordinal] = _Job(description, time.monotonic(), self._pool.submit(work))
            self._started[ordinal] = self._started.get(ordinal, 0) + 1
            return True

    def data_generations(self) -> dict[int, int]:
        """ordinal -> how many seeds were started for it: each replaced (or is replacing) its data, so
        what was set up on the instance before (users created unlogged) may be gone."""
        with self._lock:
            return dict(self._started)

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


def start_seed(work: Pass, action: Seed) -> None:
    """Record what a rebuild discards, then run the seed (in the background when the caller keeps
    SeedWorkers, else within the pass)."""
    if action.discarded:
        work.discarded.append(Discarded(action.ordinal, action.discarded, action.discarded_count, work.now))
        work.event("Warning", "TransactionsDiscarded",
                   f"instance {action.ordinal} (former primary): {action.discarded_count} transaction(s) "
                   f"never acknowledged are discarded by its rebuild: {action.discarded}")
    work.rejoined.add(action.ordinal)
    verb = "re-seeding" if action.rebuild else "seeding"
    description = f"{verb} from {work.pod(action.donor)}"
    run = seed_runner(work, action)
    if work.seeds is None:
        seconds = run()
        seed_outcome_event(work, SeedOutcome(action.ordinal, description, seconds))
        return
    if work.seeds.start(action.ordinal, description, run):
        work.seeding[action.ordinal] = description
        work.event("Warning" if action.rebuild else "Normal", "ReseedStarted" if action.rebuild else
                   "SeedStarted", f"instance {action.ordinal}: {description} ({action.reason})")


def seed_runner(work: Pass, action: Seed) -> Callable[[], float]:
    """The seed as a closure over immutable values only, safe to run in another thread."""
    dialect, creds, settings = work.dialect, work.credentials, work.settings
    target, donor, source = (work.endpoints[o] for o in (action.ordinal, action.donor, action.source))
    semi_sync = work.mode is ReplicationMode.SEMI_SYNC
    seed_timeouts = Timeouts(connect=settings.connect_timeout, read=settings.seed_timeout,
                             write=settings.read_timeout)

    def session(endpoint: InstanceEndpoint, login: Login, timeouts: Timeouts | None = None) -> Any:
        return open_session(endpoint.host, login, port=endpoint.port,
                            timeouts=timeouts or Timeouts(settings.connect_timeout, settings.read_timeout,
                                                          settings.read_timeout),
                            secrets=creds.secrets, tls=endpoint.tls)

    # Every step logs in as the operator's user (root is local to its pod only). On MariaDB that user
    # keeps READ_ONLY ADMIN through a fence, so it wipes and loads a fenced old primary too.
    def run() -> float:
        started = time.monotonic()
        ca_pem = donor.tls.ca_pem if donor.tls is not None else ""
        donor_end = seed.SeedEndpoint(donor.host, creds.operator, donor.port, ca_pem)
        if isinstance(dialect, MysqlDialect):
            with session(donor, creds.operator) as donor_session:
                seed.prepare_clone_donor(donor_session, dialect)
            with session(target, creds.operator, seed_timeouts) as target_session:
                seed.clone(target_session, dialect, donor_end, tls=donor.tls is not None)
            return time.monotonic() - started  # it restarts; later passes attach it
        with session(target, creds.operator) as target_session:
            dropped = seed.wipe(target_session, dialect)
        log.info("seed of instance %s: wiped (%d databases dropped)", action.ordinal, len(dropped))
        with session(donor, creds.operator) as donor_session:
            history = seed.donor_binlog_state(donor_session)
        seed.stream_dump(donor_end, seed.SeedEndpoint(target.host, creds.operator, target.port, ca_pem),
                         settings.seed_timeout)
        with session(target, creds.operator) as target_session:
            seed.restore_binlog_state(target_session, history)
        with session(target, creds.operator) as target_session:
            actions.configure_replica(
                target_session, dialect, source_host=source.host, source_port=source.port,
                replication=creds.replication, semi_sync=semi_sync, tls=source.tls is not None,
            )
        return time.monotonic() - started

    return run


def seed_outcome_event(work: Pass, outcome: SeedOutcome) -> None:
    """Report a finished seed (a problem and a Warning when it failed)."""
    if outcome.error:
        work.problems.append(Problem("SeedFailed", f"instance {outcome.ordinal}: {outcome.description} "
                                                   f"failed: {outcome.error}", outcome.ordinal))
        work.event("Warning", "SeedFailed",
                   f"instance {outcome.ordinal}: {outcome.description} failed: {outcome.error}")
        return
    work.event("Normal", "InstanceSeeded",
               f"instance {outcome.ordinal}: {outcome.description} done in {outcome.seconds:.1f}s")
    if work.flavor is Flavor.MARIADB:  # MySQL restarts after a clone; a later pass attaches it
        work.event("Normal", "ReplicaAttached", f"instance {outcome.ordinal} replicates (seeded)")
