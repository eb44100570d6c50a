"""Cron expressions: five fields (minute hour day-of-month month day-of-week), evaluated in UTC.

Grammar per field: `*`, `n`, `a-b`, any of those with `/step`, and comma-separated lists of them;
month and weekday names (jan, mon); weekday 0 and 7 are Sunday. As in cron, when both day-of-month
and day-of-week are restricted a day matches if either does. Macros: @yearly @annually @monthly
@weekly @daily @midnight @hourly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
# Every calendar combination repeats within 28 years (leap-year and weekday cycle); an expression
# that matches nothing in that span (say 30 February) never fires.
_SEARCH_YEARS = 28


class CronError(ValueError):
    """An expression that is not a valid 5-field cron expression."""


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    number = names.get(text.lower()) if names else None
    if number is None:
        if not text.isdigit():
            raise CronError(f"{field}: {text!r} is not a number" + (" or name" if names else ""))
        number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field}: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, low: int, high: int, names: dict[str, int], field: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, low, high, names, field)
            end = _value(last, low, high, names, field)
            if start > end:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, low, high, names, field)
            # `5/15` means from 5 to the end in steps of 15, as in Vixie cron.
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression. `CronSchedule.parse("*/15 * * * *").next_after(now)`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse an expression; raises CronError saying which field is wrong."""
        text = _MACROS.get(expression.strip().lower(), expression.strip())
        fields = text.split()
        if len(fields) != 5:
            raise CronError(
                f"{expression!r}: need 5 fields (minute hour day month weekday), got {len(fields)}"
            )
        parsed = [
            _parse_field(part, low, high, names, name)
            for part, (name, low, high, names) in zip(fields, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in parsed[4])  # 7 is Sunday too
        return cls(
            expression=expression,
            minutes=parsed[0],
            hours=parsed[1],
            days=parsed[2],
            months=parsed[3],
            weekdays=weekdays,
            days_restricted=not fields[2].startswith("*"),
            weekdays_restricted=not fields[4].startswith("*"),
        )

    def _day_matches(self, moment: datetime) -> bool:
        in_days = moment.day in self.days
        in_weekdays = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (UTC, whole minutes). Naive times are UTC."""
        moment = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment.replace(year=moment.year + _SEARCH_YEARS, month=1, day=1)
        while moment < limit:
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
                continue
            if moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
                continue
            return moment
        raise CronError(f"{self.expression!r} never fires")


def next_fire_time(expression: str, after: datetime) -> datetime:
    """The first time strictly after `after` at which `expression` fires (UTC)."""
    return CronSchedule.parse(expression).next_after(after)


def is_due(expression: str, last_fire: datetime | None, now: datetime, created: datetime) -> bool:
    """Whether a backup is due now: a fire time passed since the last one (or since `created`).

    Missed fire times collapse into one backup, as a CronJob with concurrencyPolicy Forbid would.
    """
    return next_fire_time(expression, last_fire or created) <= now
