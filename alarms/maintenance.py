"""Maintenance windows: one-off or recurring (RRULE or cron), scoped by device, site, tag or interface.

Pure logic over plain values; the engine loads the rows and asks ``covering``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from dateutil.rrule import rrulestr

from alarms.topology import interface_of


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
    """The start of the latest occurrence at or before t."""
    if window.rrule is not None:
        rule = rrulestr(window.rrule, dtstart=window.starts_at)
        occurrence: datetime | None = rule.before(t, inc=True)  # type: ignore[union-attr]
        return occurrence
    if window.cron is not None:
        it = croniter(window.cron, t + timedelta(seconds=1))
        prev: datetime = it.get_prev(datetime)
        return prev if prev >= window.starts_at else None
    return window.starts_at


def validate_recurrence(*, rrule: str | None, cron: str | None, starts_at: datetime) -> str | None:
    """None when fine, else the message (the caller names the field)."""
    if rrule is not None:
        try:
            rrulestr(rrule, dtstart=starts_at)
        except (ValueError, TypeError) as exc:
            return f"not a valid RRULE: {exc}"
    if cron is not None and not croniter.is_valid(cron):
        return "not a valid cron expression (5 fields: minute hour day month weekday)"
    return None


def covering(
    windows: Iterable[Window], t: datetime, *, device: str, managed_object: str, site: str | None, tags: Iterable[str]
) -> Window | None:
    tag_set = frozenset(tags)
    for window in windows:
        if window.in_scope(device, managed_object, site, tag_set) and window.active_at(t):
            return window
    return None
