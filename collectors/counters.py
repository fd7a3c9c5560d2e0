"""Counter math, pure: rates from two readings, telling a wrap from a reboot and from a
counter discontinuity, and refusing rates a link cannot carry.

A reading is what one poll saw for one counter. Between two readings:

* sysUpTime went backwards -> the device rebooted: no rate (the counter restarted).
* ifCounterDiscontinuityTime changed -> the counters were reset or re-created: no rate.
* the counter width changed (64-bit HC appeared or vanished) -> no rate.
* a 32-bit counter went down -> it wrapped once (modulo 2**32); the rate is kept only if it
  fits the link, otherwise it was a reset we could not see and the sample is dropped.
* a 64-bit counter going down cannot be a wrap in practice -> a reset: no rate.
* a rate above the interface speed (plus a 1 % allowance for poll timing jitter) is an
  invalid sample: dropped, and the caller counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MOD32 = 2**32
MOD64 = 2**64
SPEED_TOLERANCE = 1.01


class Outcome(StrEnum):
    ok = "ok"
    wrapped = "wrapped"  # a 32-bit wrap was accounted for; the rate is valid
    first = "first"
    no_time = "no_time"
    reboot = "reboot"
    discontinuity = "discontinuity"
    width_changed = "width_changed"
    reset = "reset"
    above_speed = "above_speed"


VALID = (Outcome.ok, Outcome.wrapped)


@dataclass(frozen=True, slots=True)
class Reading:
    value: int
    bits: int  # 32 or 64
    time_s: float  # poller clock, seconds
    uptime_cs: int | None = None  # sysUpTime (centiseconds) seen in the same poll
    discontinuity_cs: int | None = None  # ifCounterDiscontinuityTime, when the device has it


@dataclass(frozen=True, slots=True)
class Rate:
    outcome: Outcome
    per_second: float | None = None  # counter units per second (octets/s for octet counters)

    @property
    def valid(self) -> bool:
        return self.outcome in VALID


def rate(prev: Reading | None, cur: Reading, *, max_per_second: float | None = None) -> Rate:
    """The rate between two readings of one counter, or why there is none."""
    if prev is None:
        return Rate(Outcome.first)
    elapsed = cur.time_s - prev.time_s
    if elapsed <= 0:
        return Rate(Outcome.no_time)
    if prev.uptime_cs is not None and cur.uptime_cs is not None and cur.uptime_cs < prev.uptime_cs:
        return Rate(Outcome.reboot)
    if prev.discontinuity_cs != cur.discontinuity_cs and None not in (prev.discontinuity_cs, cur.discontinuity_cs):
        return Rate(Outcome.discontinuity)
    if prev.bits != cur.bits:
        return Rate(Outcome.width_changed)
    outcome = Outcome.ok
    if cur.value >= prev.value:
        delta = cur.value - prev.value
    elif cur.bits == 32:
        delta = (cur.value - prev.value) % MOD32
        outcome = Outcome.wrapped
    else:
        return Rate(Outcome.reset)
    per_second = delta / elapsed
    if max_per_second is not None and per_second > max_per_second * SPEED_TOLERANCE:
        return Rate(Outcome.above_speed)
    return Rate(outcome, per_second)


def uptime_went_back(prev_cs: int | None, cur_cs: int | None) -> bool:
    """sysUpTime going backwards means a reboot (TimeTicks wrap after 497 days is ignored)."""
    return prev_cs is not None and cur_cs is not None and cur_cs < prev_cs


def link_capacity_octets(speed_bps: float | None) -> float | None:
    """The most octets per second a link of ``speed_bps`` can carry (None: unknown)."""
    if not speed_bps or speed_bps <= 0:
        return None
    return speed_bps / 8
