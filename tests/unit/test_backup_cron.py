from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mysql_operator.backup.cron import CronError, CronSchedule, is_due, next_fire_time


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2026-01-01T10:07:30", "2026-01-01T10:08:00"),
        ("*/15 * * * *", "2026-01-01T10:07:00", "2026-01-01T10:15:00"),
        ("*/15 * * * *", "2026-01-01T10:45:00", "2026-01-01T11:00:00"),
        ("0 3 * * *", "2026-01-01T03:00:00", "2026-01-02T03:00:00"),
        ("0 3 * * *", "2026-12-31T04:00:00", "2027-01-01T03:00:00"),
        ("30 2 * * 1-5", "2026-11-27T03:00:00", "2026-11-30T02:30:00"),  # Friday -> Monday
        ("0 0 * * 0", "2026-11-25T00:00:00", "2026-11-29T00:00:00"),  # Sunday as 0
        ("0 0 * * 7", "2026-11-25T00:00:00", "2026-11-29T00:00:00"),  # ... and as 7
        ("0 0 * * sun", "2026-11-25T00:00:00", "2026-11-29T00:00:00"),
        ("0 12 1 jan,jul *", "2026-02-01T00:00:00", "2026-07-01T12:00:00"),
        ("5,10-12 8 * * *", "2026-01-01T08:06:00", "2026-01-01T08:10:00"),
        ("10-20/5 * * * *", "2026-01-01T08:16:00", "2026-01-01T08:20:00"),
        ("5/20 * * * *", "2026-01-01T08:26:00", "2026-01-01T08:45:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),  # leap day
        ("0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00"),  # skips 30-day months
        # both day fields restricted: either matches (the 13th, or any Friday)
        ("0 0 13 * 5", "2026-11-01T00:00:00", "2026-11-06T00:00:00"),
        ("0 0 13 * 5", "2026-11-07T00:00:00", "2026-11-13T00:00:00"),
        ("@hourly", "2026-01-01T08:00:00", "2026-01-01T09:00:00"),
        ("@daily", "2026-01-01T08:00:00", "2026-01-02T00:00:00"),
        ("@weekly", "2026-11-25T08:00:00", "2026-11-29T00:00:00"),
        ("@monthly", "2026-11-25T08:00:00", "2026-12-01T00:00:00"),
        ("@yearly", "2026-11-25T08:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_next_fire_time_follows_cron_semantics(expression: str, after: str, expected: str) -> None:
    assert next_fire_time(expression, at(after)) == at(expected)


def test_next_fire_time_is_strictly_after_and_in_utc() -> None:
    schedule = CronSchedule.parse("0 3 * * *")
    exactly = at("2026-05-05T03:00:00")
    assert schedule.next_after(exactly) == at("2026-05-06T03:00:00")
    berlin = exactly.astimezone(timezone(timedelta(hours=2)))
    assert schedule.next_after(berlin) == at("2026-05-06T03:00:00")
    assert schedule.next_after(exactly.replace(tzinfo=None)) == at("2026-05-06T03:00:00")


def test_successive_fire_times_of_every_15_minutes_are_15_minutes_apart() -> None:
    schedule = CronSchedule.parse("*/15 * * * *")
    moment = at("2026-02-28T23:00:00")
    times = []
    for _ in range(10):
        moment = schedule.next_after(moment)
        times.append(moment)
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(times))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "need 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside 1-12"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("5-1 * * * *", "runs backwards"),
        ("a * * * *", "'a' is not a number"),
        ("1,,2 * * * *", "empty list item"),
        ("* * * foo *", "'foo' is not a number or name"),
        ("@sometimes", "need 5 fields"),
    ],
)
def test_invalid_expressions_say_which_field_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression)


def test_expression_that_never_fires_is_an_error() -> None:
    with pytest.raises(CronError, match="never fires"):
        next_fire_time("0 0 30 2 *", at("2026-01-01T00:00:00"))


def test_is_due_collapses_missed_fire_times_into_one() -> None:
    created = at("2026-01-01T00:30:00")
    assert not is_due("0 * * * *", None, at("2026-01-01T00:59:59"), created)
    assert is_due("0 * * * *", None, at("2026-01-01T01:00:00"), created)
    # last backup at 01:00; at 05:10 one backup is due (not four)
    assert is_due("0 * * * *", at("2026-01-01T01:00:00"), at("2026-01-01T05:10:00"), created)
    assert not is_due("0 * * * *", at("2026-01-01T05:00:00"), at("2026-01-01T05:10:00"), created)
