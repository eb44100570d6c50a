"""The fault harness's loss judgement (sandbox/consistency.py): semi-sync never loses an acknowledged
write; async may lose only what the operator reported discarded."""

from __future__ import annotations

import time
from typing import Any

from sandbox.consistency import ConsistencyChecker, Verdict


def checker(mode: str, discarded: list[dict[str, Any]], started: float) -> ConsistencyChecker:
    made = object.__new__(ConsistencyChecker)
    made.lossless = mode == "semi-sync"
    made.started_wall = started
    made.resource = lambda: {"status": {"topology": {"discarded": discarded}}}  # type: ignore[method-assign]
    return made


def judged(mode: str, lost: int, discarded: list[dict[str, Any]], started: float = 1000.0) -> Verdict:
    verdict = Verdict(acknowledged=100, lost=list(range(lost)))
    checker(mode, discarded, started)._judge_loss(verdict, "127.0.0.9", time.monotonic())
    return verdict


def test_semi_sync_loss_is_always_a_problem_even_when_reported() -> None:
    verdict = judged("semi-sync", 2, [{"ordinal": 0, "gtids": "x:1-2", "count": 2, "at": 2000.0}])
    assert verdict.problems and "2 acknowledged write(s) missing" in verdict.problems[0]


def test_async_loss_reported_as_discarded_since_the_start_is_accounted_for() -> None:
    verdict = judged("async", 2, [{"ordinal": 0, "gtids": "x:5-7", "count": 3, "at": 2000.0}])
    assert verdict.problems == [] and verdict.reported_discarded == 3


def test_async_loss_beyond_what_was_reported_is_a_silent_loss() -> None:
    verdict = judged("async", 4, [{"ordinal": 0, "gtids": "x:5-7", "count": 3, "at": 2000.0}])
    assert verdict.problems and "more than the 3 transaction(s)" in verdict.problems[0]


def test_async_discards_reported_before_the_load_started_do_not_count() -> None:
    verdict = judged("async", 1, [{"ordinal": 0, "gtids": "x:1", "count": 5, "at": 10.0}])
    assert verdict.problems and verdict.reported_discarded == 0
