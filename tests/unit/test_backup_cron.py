from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from croniter import croniter
from pydantic import ValidationError

from mysql_operator.api.backup import _NEVER_FIRES, BackupSchedule
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


NEVER = ["0 0 30 2 *", "0 0 31 2 *", "0 0 30,31 feb *", "0 0 31 4,6,9,11 *", "0 0 31 apr *", "0 0 31 6 *"]


@pytest.mark.parametrize("expression", NEVER)
def test_expression_that_never_fires_is_refused_when_parsed(expression: str) -> None:
    with pytest.raises(CronError, match="never fires"):
        CronSchedule.parse(expression)


@pytest.mark.parametrize("expression", NEVER)
def test_model_refuses_never_firing_schedule_and_the_crd_pattern_does_too(expression: str) -> None:
    storage = {"pvc": {"claimName": "backups"}}
    with pytest.raises(ValidationError, match="never fires"):
        BackupSchedule.model_validate({"schedule": expression, "storage": storage})
    # the same forms are refused by the CRD's CEL rule (RE2 and Python agree on these patterns)
    assert any(re.search(pattern, expression) for pattern in _NEVER_FIRES)


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 1,4 *", "0 0 30 * *"])
def test_rare_but_possible_schedules_are_accepted(expression: str) -> None:
    CronSchedule.parse(expression)
    assert not any(re.search(pattern, expression) for pattern in _NEVER_FIRES)


def test_unknown_time_zone_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="not a known IANA time zone"):
        BackupSchedule.model_validate(
            {"schedule": "@daily", "timeZone": "Mars/Olympus", "storage": {"pvc": {"claimName": "b"}}}
        )


def test_both_day_fields_restricted_means_either_as_in_vixie_cron_and_cronjobs() -> None:
    # */2 in day-of-month is a restriction (as in croniter and Kubernetes CronJobs): the 1st, 3rd, ...
    # OR any Monday. 2026-11-30 is a Monday, 2026-12-01 the 1st.
    assert next_fire_time("0 0 */2 * 1", at("2026-11-29T00:00:00")) == at("2026-11-30T00:00:00")
    assert next_fire_time("0 0 */2 * 1", at("2026-11-30T00:00:00")) == at("2026-12-01T00:00:00")


def test_time_zone_fire_times_are_wall_clock_there_including_across_dst() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    assert schedule.next_after(at("2026-06-01T00:00:00")) == at("2026-06-01T00:30:00")  # CEST, +2
    assert schedule.next_after(at("2026-12-01T00:00:00")) == at("2026-12-01T01:30:00")  # CET, +1


EXPRESSIONS = [
    "0 0 */2 * 1",
    "0 0 13 * 5",
    "*/7 3-5 * * *",
    "15 4 1,15 * mon-fri",
    "0 12 1 jan,jul *",
    "5/20 * * * *",
    "0 0 29 2 *",
    "0 22 * * 0,7",
    "@weekly",
    "0 0 31 * *",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("zone", [None, "America/New_York", "Asia/Kolkata"])
def test_fire_times_equal_croniters_over_sampled_start_times(expression: str, zone: str | None) -> None:
    from zoneinfo import ZoneInfo

    rng = random.Random(f"{expression}{zone}")
    schedule = CronSchedule.parse(expression, zone)
    fields = CronSchedule.parse(expression).fields
    tz = ZoneInfo(zone) if zone else UTC
    start = at("2020-01-01T00:00:00").timestamp()
    for _ in range(300):
        moment = datetime.fromtimestamp(start + rng.randrange(0, 10 * 365 * 86400), UTC)
        expected = croniter(fields, moment.astimezone(tz)).get_next(datetime).astimezone(UTC)
        assert schedule.next_after(moment) == expected, (expression, zone, moment)


def test_is_due_collapses_missed_fire_times_into_one() -> None:
    created = at("2026-01-01T00:30:00")
    assert not is_due("0 * * * *", None, at("2026-01-01T00:59:59"), created)
    assert is_due("0 * * * *", None, at("2026-01-01T01:00:00"), created)
    # last backup at 01:00; at 05:10 one backup is due (not four)
    assert is_due("0 * * * *", at("2026-01-01T01:00:00"), at("2026-01-01T05:10:00"), created)
    assert not is_due("0 * * * *", at("2026-01-01T05:00:00"), at("2026-01-01T05:10:00"), created)
