"""Maintenance windows: one-off or recurring (RRULE or cron), scoped by device, site, tag or interface.

Pure logic over plain values; the engine loads the rows and asks ``covering``.

Recurrence rules come from clients, so they are bounded where they are accepted
(``validate_recurrence``) and evaluated without walking the window's history: dateutil's
``rrule.before(t)`` iterates every occurrence since ``starts_at`` (a ``FREQ=SECONDLY`` rule
from 2000 is 800 million steps), and skips periods without an occurrence one by one up to
the year 9999 (a rule that can never match, like February 30th, never returns early).
Accepted rules recur at most hourly, have at least one occurrence in every calendar year
and no interval that can skip every matching period; evaluation starts from the period
just before ``t - duration`` (same phase, every default the RRULE takes from ``DTSTART``
written out), so its cost depends on the occurrence's duration, not the window's age.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from dateutil.rrule import rrulestr

from alarms.topology import interface_of

FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
ALLOWED_PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYHOUR", "BYMINUTE"}
)
MAX_INTERVAL = {"HOURLY": 168, "DAILY": 366, "WEEKLY": 52, "MONTHLY": 12, "YEARLY": 10}
MAX_COUNT = 1000
MAX_OCCURRENCES_PER_DAY = 24
# Recurring windows start no earlier than this before they are created and no later than this after.
HORIZON_PAST = timedelta(days=366)
HORIZON_FUTURE = timedelta(days=5 * 366)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    name: str
    starts_at: datetime
    ends_at: datetime | None
    rrule: str | None
    cron: str | None
    duration_s: int | None
    devices: frozenset[str]
    sites: frozenset[str]
    tags: frozenset[str]
    interfaces: frozenset[str]

    def active_at(self, t: datetime) -> bool:
        if t < self.starts_at or (self.ends_at is not None and t >= self.ends_at):
            return False
        if self.rrule is None and self.cron is None:
            return True
        duration = timedelta(seconds=self.duration_s or 0)
        start = last_occurrence(self, t)
        return start is not None and t < start + duration

    def in_scope(self, device: str, managed_object: str, site: str | None, tags: Iterable[str]) -> bool:
        if device in self.devices or (site is not None and site in self.sites):
            return True
        if self.tags and not self.tags.isdisjoint(tags):
            return True
        iface = interface_of(managed_object)
        return iface is not None and f"{device}:{iface}" in self.interfaces


def last_occurrence(window: Window, t: datetime) -> datetime | None:
    """The start of the latest occurrence at or before t that may still cover t.

    Occurrences that ended (started ``duration_s`` or more before t) may be answered as None:
    only ``active_at`` asks, and finding them would mean walking back through the window's history.
    A stored rule that the current bounds refuse (saved before they existed) never matches.
    """
    if window.rrule is not None:
        duration = timedelta(seconds=window.duration_s or 0)
        return _rrule_last(window.rrule, window.starts_at, duration, t)
    if window.cron is not None:
        if _cron_problem(window.cron) is not None:
            return None
        try:
            prev: datetime = croniter(window.cron, t + timedelta(seconds=1)).get_prev(datetime)
        except CroniterBadDateError:
            return None
        return prev if prev >= window.starts_at else None
    return window.starts_at


def validate_recurrence(*, rrule: str | None, cron: str | None, starts_at: datetime) -> str | None:
    """None when fine, else the message (the caller names the field)."""
    if rrule is not None:
        return _rrule_problem(rrule, starts_at)
    if cron is not None:
        return _cron_problem(cron)
    return None


def horizon_problem(starts_at: datetime, now: datetime) -> str | None:
    """A recurring window's start must lie within the horizon around now (None when it does)."""
    if starts_at < now - HORIZON_PAST:
        return f"a recurring window may start at most {HORIZON_PAST.days} days in the past"
    if starts_at > now + HORIZON_FUTURE:
        return f"a recurring window may start at most {HORIZON_FUTURE.days} days in the future"
    return None


def covering(
    windows: Iterable[Window], t: datetime, *, device: str, managed_object: str, site: str | None, tags: Iterable[str]
) -> Window | None:
    tag_set = frozenset(tags)
    for window in windows:
        if window.in_scope(device, managed_object, site, tag_set) and window.active_at(t):
            return window
    return None


# ---- RRULE bounds ------------------------------------------------------------------------------


def _parts(rrule: str) -> dict[str, str]:
    text = rrule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    if not text or any(c in text for c in "\r\n"):
        raise ValueError("expected one RRULE line, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2")
    parts: dict[str, str] = {}
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or not name or not value:
            raise ValueError(f"expected NAME=value, got {item!r}")
        if name in parts:
            raise ValueError(f"{name} given twice")
        parts[name] = value.strip().upper()
    return parts


def _ints(value: str | None) -> list[int]:
    return [int(v) for v in value.split(",")] if value else []


@lru_cache(maxsize=1024)
def _rrule_problem(rrule: str, starts_at: datetime) -> str | None:
    try:
        parts = _parts(rrule)
        rrulestr(rrule, dtstart=starts_at)
    except (ValueError, TypeError, OverflowError) as exc:
        return f"not a valid RRULE: {exc}"
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        return f"FREQ={freq} is not allowed: a maintenance window recurs at most hourly (FREQ={', '.join(FREQUENCIES)})"
    refused = sorted(set(parts) - ALLOWED_PARTS)
    if refused:
        return f"{', '.join(refused)} not allowed (use {', '.join(sorted(ALLOWED_PARTS))})"
    try:
        interval = int(parts.get("INTERVAL", "1"))
        count = int(parts["COUNT"]) if "COUNT" in parts else None
        hours = _ints(parts.get("BYHOUR"))
        minutes = _ints(parts.get("BYMINUTE"))
    except ValueError as exc:
        return f"not a valid RRULE: {exc}"
    if not 1 <= interval <= MAX_INTERVAL[freq]:
        return f"INTERVAL must be 1 to {MAX_INTERVAL[freq]} with FREQ={freq}"
    if count is not None and not 1 <= count <= MAX_COUNT:
        return f"COUNT must be 1 to {MAX_COUNT}"
    per_day = (len(hours) or (24 if freq == "HOURLY" else 1)) * (len(minutes) or 1)
    if per_day > MAX_OCCURRENCES_PER_DAY:
        return f"BYHOUR x BYMINUTE give {per_day} occurrences a day; at most {MAX_OCCURRENCES_PER_DAY} (hourly)"
    days = [d for d in parts.get("BYDAY", "").split(",") if d]
    ordinals = [d for d in days if d[:-2]]
    if ordinals and freq not in ("MONTHLY", "YEARLY"):
        return f"BYDAY ordinals ({ordinals[0]}) only with FREQ=MONTHLY or YEARLY"
    if interval > 1:
        # A filter that only some in-phase periods can meet could leave none at all
        # (FREQ=DAILY;INTERVAL=7;BYDAY=TU starting on a Monday).
        # Yearly periods are whole calendar years, each checked below to hold a match.
        fixed = set() if freq == "YEARLY" else {"BYMONTH", "BYMONTHDAY"}
        if freq in ("HOURLY", "DAILY"):
            fixed.add("BYDAY")
        if freq == "HOURLY":
            fixed.add("BYHOUR")
        if any(d[:-2] and abs(int(d[:-2])) > 4 for d in days):
            fixed.add("BYDAY")
        clash = sorted(fixed & set(parts))
        if clash:
            return f"INTERVAL > 1 cannot be combined with {', '.join(clash)} with FREQ={freq}"
    if {"BYMONTH", "BYMONTHDAY", "BYDAY"} & set(parts) and not _every_year_matches(parts, freq):
        return "BYMONTH/BYMONTHDAY/BYDAY leave some calendar year without an occurrence"
    return None


def _every_year_matches(parts: dict[str, str], freq: str) -> bool:
    """Whether the rule's day filters match at least one day in every year of the 400-year Gregorian cycle.

    Checked as a yearly rule (first match of each year) placed at the end of dateutil's calendar,
    so even a filter that never matches costs at most 400 yearly steps.
    """
    check = ["FREQ=YEARLY", "BYSETPOS=1", "BYHOUR=0", "BYMINUTE=0", "BYSECOND=0"]
    if "BYMONTH" in parts:
        check.append(f"BYMONTH={parts['BYMONTH']}")
    elif freq == "MONTHLY":
        check.append("BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12")  # ordinals count within the month
    for name in ("BYMONTHDAY", "BYDAY"):
        if name in parts:
            check.append(f"{name}={parts[name]}")
    first = 10_000 - 400
    occurrences = list(rrulestr(";".join(check), dtstart=datetime(first, 1, 1)))
    return len({o.year for o in occurrences}) == 400


# ---- RRULE evaluation --------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _anchored_text(rrule: str, starts_at: datetime) -> tuple[str, str, int, int] | None:
    """The rule with every default it takes from DTSTART written out, its FREQ, INTERVAL, WKST.

    None when the rule is outside the bounds (never matches) or counts occurrences (COUNT: at
    most MAX_COUNT, evaluated from DTSTART).
    """
    if _rrule_problem(rrule, starts_at) is not None:
        return None
    parts = _parts(rrule)
    if "COUNT" in parts:
        return ("", parts["FREQ"], 1, 0)
    freq = parts["FREQ"]
    extra = {"BYSECOND": str(starts_at.second)}
    if "BYMINUTE" not in parts:
        extra["BYMINUTE"] = str(starts_at.minute)
    if freq != "HOURLY" and "BYHOUR" not in parts:
        extra["BYHOUR"] = str(starts_at.hour)
    if not ({"BYMONTHDAY", "BYDAY"} & set(parts)):
        if freq == "YEARLY":
            extra.setdefault("BYMONTH", parts.get("BYMONTH", str(starts_at.month)))
            extra["BYMONTHDAY"] = str(starts_at.day)
        elif freq == "MONTHLY":
            extra["BYMONTHDAY"] = str(starts_at.day)
        elif freq == "WEEKLY":
            extra["BYDAY"] = _WEEKDAYS[starts_at.weekday()]
    merged = {k: v for k, v in parts.items() if k not in extra} | extra
    text = ";".join(f"{k}={v}" for k, v in merged.items())
    wkst = _WEEKDAYS.index(parts.get("WKST", "MO"))
    return (text, freq, int(parts.get("INTERVAL", "1")), wkst)


def _period_index(freq: str, at: datetime, wkst: int) -> int:
    if freq == "HOURLY":
        return (at.date().toordinal() * 24) + at.hour
    if freq == "DAILY":
        return at.date().toordinal()
    if freq == "WEEKLY":
        day = at.date()
        return (day.toordinal() - (day.weekday() - wkst) % 7) // 7
    if freq == "MONTHLY":
        return at.year * 12 + at.month - 1
    return at.year


def _period_start(freq: str, index: int, wkst: int, tz: object) -> datetime:
    def midnight(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=tz)  # type: ignore[arg-type]

    if freq == "HOURLY":
        return midnight(date.fromordinal(index // 24)) + timedelta(hours=index % 24)
    if freq == "DAILY":
        return midnight(date.fromordinal(index))
    if freq == "WEEKLY":
        # The seven days from index * 7 hold exactly one WKST day: the start of that week.
        first = date.fromordinal(index * 7)
        return midnight(first + timedelta(days=(wkst - first.weekday()) % 7))
    if freq == "MONTHLY":
        return datetime(index // 12, index % 12 + 1, 1, tzinfo=tz)  # type: ignore[arg-type]
    return datetime(index, 1, 1, tzinfo=tz)  # type: ignore[arg-type]


def _rule_from(rrule: str, starts_at: datetime, earliest: datetime) -> Any:
    """The rule, started at the in-phase period just before ``earliest`` (None: never matches)."""
    anchored = _anchored_text(rrule, starts_at)
    if anchored is None:
        return None
    text, freq, interval, wkst = anchored
    dtstart = starts_at
    if text:
        first = _period_index(freq, starts_at, wkst)
        index = _period_index(freq, earliest, wkst)
        index -= (index - first) % interval
        if index > first:
            dtstart = _period_start(freq, index, wkst, starts_at.tzinfo)
        else:
            text = rrule
    return rrulestr(text or rrule, dtstart=dtstart)


def _rrule_last(rrule: str, starts_at: datetime, duration: timedelta, t: datetime) -> datetime | None:
    # an occurrence starting at or before t - duration has ended by t
    rule = _rule_from(rrule, starts_at, t - duration)
    if rule is None:
        return None
    occurrence: datetime | None = rule.before(t, inc=True)
    return occurrence


def intervals(window: Window, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The stretches of [start, end) during which the window is active, merged and in order: at every
    instant t, ``t`` lies in one of them exactly when ``window.active_at(t)``. A recurring window's
    occurrences are enumerated from the in-phase period just before ``start - duration`` (the same
    anchoring as ``active_at``), so the cost follows the period asked for, not the window's age."""
    lo = max(start, window.starts_at)
    hi = end if window.ends_at is None else min(end, window.ends_at)
    if hi <= lo:
        return []
    if window.rrule is None and window.cron is None:
        return [(lo, hi)]
    duration = timedelta(seconds=window.duration_s or 0)
    if duration <= timedelta(0):
        return []
    starts: list[datetime] = []
    if window.rrule is not None:
        rule = _rule_from(window.rrule, window.starts_at, lo - duration)
        if rule is not None:
            starts = list(rule.between(lo - duration, hi, inc=True))
    elif _cron_problem(window.cron or "") is None:
        it = croniter(window.cron, lo - duration)
        while True:
            try:
                at: datetime = it.get_next(datetime)
            except CroniterBadDateError:
                break
            if at >= hi:
                break
            starts.append(at)
    merged: list[tuple[datetime, datetime]] = []
    for at in sorted(starts):
        if at < window.starts_at:
            continue
        begin, finish = max(at, lo), min(at + duration, hi)
        if finish <= begin:
            continue
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def _cron_problem(cron: str) -> str | None:
    try:
        valid = croniter.is_valid(cron)
    except (CroniterBadCronError, ValueError, TypeError):
        valid = False
    if not valid:
        return "not a valid cron expression (5 fields: minute hour day month weekday)"
    fields = cron.split()
    if len(fields) != 5:
        return "not a valid cron expression (5 fields: minute hour day month weekday)"
    expanded = croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).expanded
    minutes, hours = expanded[0], expanded[1]
    per_day = (60 if minutes == ["*"] else len(minutes)) * (24 if hours == ["*"] else len(hours))
    if per_day > MAX_OCCURRENCES_PER_DAY:
        return f"the cron expression starts {per_day} occurrences a day; at most {MAX_OCCURRENCES_PER_DAY} (hourly)"
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        return "the cron expression never matches a date"
    return None
