"""Cron expressions as users know them: standard cron semantics evaluated by `croniter`, in a time zone.

Five fields (minute hour day-of-month month day-of-week) or a macro (@yearly @annually @monthly @weekly
@daily @midnight @hourly). As in Vixie cron and Kubernetes CronJobs, when both day-of-month and
day-of-week are restricted a day matches if EITHER does (croniter's `day_or`, its default).
Evaluation is croniter's own: this module only checks fields first (so a mistake is reported by
field, in words) and refuses schedules that never fire (say `0 0 30 2 *`), which would otherwise
stop backups silently. `timeZone` is an IANA name (Europe/Berlin); fire times are wall-clock times
there, returned in UTC. Default UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    name: i
    for i, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
# Every calendar combination repeats within 28 years (leap years and weekdays; 2100 is no leap
# year, so search a little more): a schedule with no fire time in that span never fires.
SEARCH_YEARS = 30
# Where the never-fires check starts: any fixed instant works, the calendar repeats.
_PROBE_START = datetime(2000, 1, 1, tzinfo=UTC)


class CronError(ValueError):
    """An expression that is not a valid 5-field cron expression, or one that never fires."""


def _check_value(text: str, low: int, high: int, names: dict[str, int], field: str) -> None:
    if names and text.lower() in names:
        return
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} is not a number" + (" or name" if names else ""))
    if not low <= int(text) <= high:
        raise CronError(f"{field}: {int(text)} is outside {low}-{high}")


def _check_field(text: str, low: int, high: int, names: dict[str, int], field: str) -> None:
    """Refuse a field croniter would refuse (or silently misread), saying what is wrong with it."""
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise CronError(f"{field}: step {step!r} must be a positive number")
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        _check_value(first, low, high, names, field)
        if dash:
            _check_value(last, low, high, names, field)
            start = names.get(first.lower(), int(first) if first.isdigit() else 0)
            end = names.get(last.lower(), int(last) if last.isdigit() else 0)
            if start > end:
                raise CronError(f"{field}: range {base!r} runs backwards")


def time_zone(name: str | None) -> tzinfo:
    """The zone of an IANA name (None: UTC); CronError when there is no such zone."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"timeZone: {name!r} is not a known IANA time zone (e.g. Europe/Berlin)") from None


@dataclass(frozen=True)
class CronSchedule:
    """A checked cron expression in a zone. `CronSchedule.parse("*/15 * * * *").next_after(now)`."""

    expression: str
    fields: str  # the five fields (a macro expanded)
    zone: tzinfo

    @classmethod
    def parse(cls, expression: str, zone_name: str | None = None) -> CronSchedule:
        """Check an expression (and zone); raises CronError saying which field is wrong, or that the
        schedule never fires."""
        text = _MACROS.get(expression.strip().lower(), expression.strip())
        fields = text.split()
        if len(fields) != 5:
            raise CronError(
                f"{expression!r}: need 5 fields (minute hour day month weekday), got {len(fields)}"
            )
        for part, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
            _check_field(part, low, high, names, name)
        schedule = cls(expression=expression, fields=" ".join(fields), zone=time_zone(zone_name))
        if not croniter.is_valid(schedule.fields):
            raise CronError(f"{expression!r} is not a cron expression croniter accepts")
        schedule.next_after(_PROBE_START)  # raises when it never fires
        return schedule

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after`, in UTC (whole minutes). Naive times are UTC."""
        moment = after.replace(tzinfo=UTC) if after.tzinfo is None else after
        iterator = croniter(
            self.fields, moment.astimezone(self.zone), day_or=True, max_years_between_matches=SEARCH_YEARS
        )
        try:
            fire: datetime = iterator.get_next(datetime)
        except CroniterBadDateError:
            raise CronError(
                f"{self.expression!r} never fires (no matching day in {SEARCH_YEARS} years: check that "
                "the day of month exists in the months given)"
            ) from None
        return fire.astimezone(UTC)


def next_fire_time(expression: str, after: datetime, zone_name: str | None = None) -> datetime:
    """The first time strictly after `after` at which `expression` fires (UTC)."""
    return CronSchedule.parse(expression, zone_name).next_after(after)


def is_due(
    expression: str,
    last_fire: datetime | None,
    now: datetime,
    created: datetime,
    zone_name: str | None = None,
) -> bool:
    """Whether a backup is due now: a fire time passed since the last one (or since `created`).

    Missed fire times collapse into one backup, as a CronJob with concurrencyPolicy Forbid would.
    """
    return next_fire_time(expression, last_fire or created, zone_name) <= now
