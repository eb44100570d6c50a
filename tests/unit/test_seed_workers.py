"""SeedWorkers: one seed per instance at a time, and a data generation per instance that the exporter
user bookkeeping (handlers/topology.py) keys on, since a seed replaces the users an instance had."""

from __future__ import annotations

import threading

from mysql_operator.topology.seeding import SeedWorkers


def test_each_started_seed_is_a_new_data_generation_and_a_running_one_is_not_started_twice() -> None:
    workers = SeedWorkers(parallel=1)
    release = threading.Event()
    try:
        assert workers.data_generations() == {}
        assert workers.start(1, "seeding from db-0", lambda: float(release.wait(10)))
        assert not workers.start(1, "seeding from db-0", lambda: 0.0)  # already running
        assert workers.data_generations() == {1: 1}
        assert set(workers.running()) == {1}
        release.set()
        outcomes: list = []
        for _ in range(200):
            outcomes = workers.finished()
            if outcomes:
                break
            threading.Event().wait(0.01)
        assert outcomes and outcomes[0].ordinal == 1 and not outcomes[0].error
        assert workers.running() == {}
        assert workers.start(1, "re-seeding from db-0", lambda: 0.0)
        assert workers.data_generations() == {1: 2}
    finally:
        release.set()
        workers.shutdown()
