"""Pure ticket logic: the state machine table, the auto-ticketing policy, priorities, SLA targets.

The state machine is ONE table of (from-state, action, to-state, roles allowed), ``TICKETS``,
enforced by the one function every state machine uses (``faultloop.statemachine.check``) and
rendered into docs/tickets.md by ``render_markdown``.
No I/O here except reading the policy YAML in ``load_policy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from faultloop import statemachine
from faultloop.errors import InvalidInput
from faultloop.statemachine import SAME, StateTable, Transition, roles_of

STATES: tuple[str, ...] = (
    "new",
    "acknowledged",
    "diagnosed",
    "dispatched",
    "accepted",
    "en_route",
    "on_site",
    "waiting",
    "resolved",
    "verified",
    "closed",
    "cancelled",
)
OPEN_STATES = frozenset(STATES) - {"closed", "cancelled"}
FIELD_STATES = frozenset({"dispatched", "accepted", "en_route", "on_site", "waiting"})
# SLA: the clocks stop for good once the fault is repaired and pause while waiting on others.
SLA_PAUSED_STATES = frozenset({"waiting"})
SLA_STOPPED_STATES = frozenset({"resolved", "verified", "closed", "cancelled"})

# Who may act. "assignee" means the technician the ticket is dispatched to (or one of its team);
# "system" is faultloop itself (auto verification, recurrence, SLA escalation).
NOC = frozenset({"admin", "noc"})
FIELD = frozenset({"admin", "noc", "assignee"})
NOC_SYSTEM = frozenset({"admin", "noc", "system"})
SYSTEM = frozenset({"system"})
# "oss" is a northbound integration (the TM Forum API's client, an external service desk): it may take
# the ticket, pause and resume it, cancel, close and reopen it as the NOC does, and resolve a ticket whose
# field work it ran itself (resolve_external); never the dispatch and field steps faultloop runs.
OSS_NOC = NOC | {"oss"}
OSS_FIELD = FIELD | {"oss"}
OSS_NOC_SYSTEM = NOC_SYSTEM | {"oss"}
OSS = frozenset({"oss"})
SELF_HEALED = "cleared before dispatch"  # close reason of a ticket whose fault went away on its own


def _t(froms: str, action: str, to: str, roles: frozenset[str], note: str = "") -> list[Transition]:
    return [Transition(f, action, to, roles, note) for f in froms.split()]


TRANSITIONS: tuple[Transition, ...] = tuple(
    _t("new", "acknowledge", "acknowledged", OSS_NOC, "NOC takes the ticket; stops the response clock")
    + _t("acknowledged", "diagnose", "diagnosed", NOC, "diagnosis notes and fault category required")
    + _t("diagnosed", "dispatch", "dispatched", NOC, "to a technician (or auto: site, skill, least load) or a team")
    + _t("dispatched accepted en_route on_site waiting", "reassign", "dispatched", NOC, "to another technician/team")
    + _t("dispatched accepted en_route on_site waiting", "escalate", "dispatched", NOC_SYSTEM, "next tier")
    + _t("dispatched", "accept", "accepted", FIELD)
    + _t("accepted", "en_route", "en_route", FIELD, "ETA and location note")
    + _t("accepted en_route", "on_site", "on_site", FIELD)
    + _t("en_route on_site", "update", SAME, FIELD, "new ETA / location note, state unchanged")
    + _t("on_site", "wait", "waiting", OSS_FIELD, "waiting for parts or access: SLA clock paused")
    + _t("waiting", "resume", "on_site", OSS_FIELD)
    + _t("on_site", "resolve", "resolved", FIELD, "feedback: cause category, action taken, parts, notes")
    + _t(
        "resolved", "verify", "verified", NOC_SYSTEM,
        "automatic once linked alarms stay clear for the hold-down and affected services pass their checks",
    )
    + _t(
        "new acknowledged diagnosed dispatched accepted en_route on_site waiting", "resolve_external", "resolved", OSS,
        "the external service desk that owns the ticket resolved it; verified here as any resolution",
    )
    + _t("verified", "close", "closed", OSS_NOC, "feedback rating 1-5; linked alarms archived")
    + _t("new", "auto_close", "closed", SYSTEM, "cleared before dispatch: alarms cleared before anyone acknowledged")
    + _t("resolved verified closed", "reopen", "acknowledged", OSS_NOC_SYSTEM, "recurrence or failed verification")
    + _t(
        "new acknowledged diagnosed dispatched accepted en_route on_site waiting",
        "cancel",
        "cancelled",
        OSS_NOC,
        "duplicate, false alarm, ... (reason required)",
    )
)

TICKETS = StateTable(
    states=STATES,
    transitions=TRANSITIONS,
    illegal="cannot {action} a ticket in state {state!r}; allowed: {allowed}",
    forbidden="{who} may not {action} a ticket in state {state!r}",
    who={"technician": "the assigned technician"},
    strict_actions=True,  # an unknown action is bad input (422), not a move the state lacks
)
ACTIONS: tuple[str, ...] = TICKETS.actions


def _relations(is_assignee: bool) -> tuple[str, ...]:
    return ("assignee",) if is_assignee else ()


def allowed_actions(state: str, *, role: str, is_assignee: bool = False) -> list[str]:
    """What this actor may do to a ticket in this state (the 409's list)."""
    return TICKETS.allowed(state, roles_of(role, _relations(is_assignee)))


def check(state: str, action: str, *, role: str, is_assignee: bool = False) -> str:
    """The next state, or IllegalTransition (409) / Forbidden (403) / InvalidInput (faultloop.statemachine.check)."""
    return statemachine.check(TICKETS, state, action, role=role, relations=_relations(is_assignee)).next_state()


def render_markdown() -> str:
    """The state machine table as Markdown (docs/tickets.md embeds exactly this; a test checks)."""
    return statemachine.markdown(TICKETS)


# ---- auto-ticketing policy ------------------------------------------------------------------

SEVERITY_RANK = {"critical": 5, "major": 4, "minor": 3, "warning": 2, "indeterminate": 1, "cleared": 0}
PRIORITIES = ("P1", "P2", "P3", "P4")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SlaTarget:
    response_s: float
    restore_s: float
    business_hours: bool = False


@dataclass(frozen=True)
class BusinessHours:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    tz: ZoneInfo

    def seconds_between(self, a: datetime, b: datetime) -> float:
        """Business seconds in [a, b); 0 when b <= a (an SLA clock never runs backwards)."""
        if b <= a:
            return 0.0
        la, lb = a.astimezone(self.tz), b.astimezone(self.tz)
        total = 0.0
        day = la.date()
        while day <= lb.date():
            if day.weekday() in self.days:
                start = datetime.combine(day, self.start, self.tz)
                end = datetime.combine(day, self.end, self.tz)
                lo, hi = max(start, la), min(end, lb)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total


@dataclass(frozen=True)
class SlaClass:
    """A service class of the catalog (gold, silver, ...): a fault on a service of it gets this priority
    and these SLA targets (24x7, or counted in business hours)."""

    name: str
    rank: int  # higher wins when a ticket affects services of several classes
    priority: str
    target: SlaTarget


@dataclass(frozen=True)
class Policy:
    root_cause_only: bool = True
    min_severity: str = "major"
    min_active_s: float = 60.0
    skip_muted: bool = True
    severity_priority: dict[str, int] = field(default_factory=lambda: {"critical": 2, "major": 3, "minor": 4})
    role_raise: dict[str, int] = field(default_factory=dict)  # device role -> priority steps up
    site_raise: dict[str, int] = field(default_factory=dict)
    impact_raise_at: int = 10  # correlated child alarms (customers behind it) that raise one step
    skills: dict[str, str] = field(default_factory=dict)  # alarm type -> skill a technician needs
    sla: dict[str, SlaTarget] = field(default_factory=dict)
    business_hours: BusinessHours | None = None
    sla_classes: dict[str, SlaClass] = field(default_factory=dict)
    auto_close_self_healed: bool = True  # close a ticket whose alarms cleared before anyone acknowledged it
    # before verifying a resolved ticket, the services it affected pass their catalog checks again
    verify_services: bool = True
    service_check_attempts: int = 3  # rounds a device may be unreadable before the ticket reopens
    service_check_retry_s: float = 60.0  # between those rounds

    def service_class(self, classes: Iterable[str | None]) -> SlaClass | None:
        """The highest of these SLA classes the policy defines (None: no service with a class)."""
        known = [self.sla_classes[c] for c in classes if c is not None and c in self.sla_classes]
        return max(known, key=lambda c: (c.rank, -PRIORITIES.index(c.priority)), default=None)

    def opens_ticket(self, *, severity: str, parent_id: int | None, muted: bool, active_s: float) -> str | None:
        """None if the alarm opens a ticket now, else why not."""
        if self.root_cause_only and parent_id is not None:
            return "symptom of another alarm"
        if self.skip_muted and muted:
            return "muted (maintenance, flapping or correlated)"
        if SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK[self.min_severity]:
            return f"severity {severity} below {self.min_severity}"
        if active_s < self.min_active_s:
            return f"active {active_s:.0f}s < {self.min_active_s:.0f}s"
        return None

    def priority(self, *, severity: str, role: str, site: str, impact: int) -> str:
        level = self.severity_priority.get(severity, 4)
        level -= self.role_raise.get(role, 0)
        level -= self.site_raise.get(site, 0)
        if self.impact_raise_at and impact >= self.impact_raise_at:
            level -= 1
        return PRIORITIES[min(max(level, 1), 4) - 1]

    def target(self, priority: str) -> SlaTarget:
        return self.sla.get(priority) or SlaTarget(response_s=3600, restore_s=86400)


def parse_policy(data: Any, *, source: str = "policy") -> Policy:
    """Validate the whole document; an error names the key and what was expected."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: expected a mapping at the top level", field="policy")

    def fail(key: str, expected: str) -> InvalidInput:
        return InvalidInput(f"{source}: {key}: expected {expected}", field=key)

    opens = data.get("open", {}) or {}
    prio = data.get("priority", {}) or {}
    if not isinstance(opens, dict):
        raise fail("open", "a mapping")
    if not isinstance(prio, dict):
        raise fail("priority", "a mapping")
    min_sev = opens.get("min_severity", "major")
    if min_sev not in SEVERITY_RANK or min_sev == "cleared":
        raise fail("open.min_severity", "critical, major, minor, warning or indeterminate")
    min_active = opens.get("min_active_s", 60)
    if not isinstance(min_active, int | float) or isinstance(min_active, bool) or min_active < 0:
        raise fail("open.min_active_s", "a number of seconds >= 0")
    sev_prio = prio.get("severity", {"critical": 2, "major": 3, "minor": 4})
    if not isinstance(sev_prio, dict) or not all(
        k in SEVERITY_RANK and isinstance(v, int) and 1 <= v <= 4 for k, v in sev_prio.items()
    ):
        raise fail("priority.severity", "severity -> 1..4")
    ints: dict[str, dict[str, int]] = {}
    for key in ("role_raise", "site_raise"):
        raw = prio.get(key, {}) or {}
        if not isinstance(raw, dict) or not all(isinstance(v, int) and 0 <= v <= 3 for v in raw.values()):
            raise fail(f"priority.{key}", "name -> steps 0..3")
        ints[key] = {str(k): v for k, v in raw.items()}
    impact = prio.get("impact_raise_at", 10)
    if not isinstance(impact, int) or impact < 0:
        raise fail("priority.impact_raise_at", "an integer >= 0")
    skills = data.get("skills", {}) or {}
    if not isinstance(skills, dict):
        raise fail("skills", "alarm type -> skill")
    sla: dict[str, SlaTarget] = {}
    for p, target in (data.get("sla", {}) or {}).items():
        if p not in PRIORITIES or not isinstance(target, dict):
            raise fail(f"sla.{p}", "P1..P4 -> {response_s, restore_s}")
        r, s = target.get("response_s"), target.get("restore_s")
        if not isinstance(r, int | float) or not isinstance(s, int | float) or r <= 0 or s <= 0:
            raise fail(f"sla.{p}", "positive response_s and restore_s")
        sla[p] = SlaTarget(float(r), float(s), bool(target.get("business_hours", False)))
    classes = _sla_classes(data.get("sla_classes"), fail)
    auto = data.get("auto_close", {}) or {}
    if not isinstance(auto, dict) or not isinstance(auto.get("cleared_before_dispatch", True), bool):
        raise fail("auto_close.cleared_before_dispatch", "true or false")
    verify = _verify_services(data.get("verify_services", True), fail)
    hours = None
    bh = data.get("business_hours")
    if bh:
        try:
            days = frozenset(WEEKDAYS.index(d) for d in bh.get("days", ["mon", "tue", "wed", "thu", "fri"]))
            start, end = time.fromisoformat(bh.get("start", "08:00")), time.fromisoformat(bh.get("end", "18:00"))
            tz = ZoneInfo(bh.get("tz", "UTC"))
        except (ValueError, AttributeError, ZoneInfoNotFoundError):
            raise fail("business_hours", "days (mon..sun), start/end HH:MM and an IANA tz") from None
        if end <= start:
            raise fail("business_hours.end", "a time after start")
        hours = BusinessHours(days, start, end, tz)
    return Policy(
        root_cause_only=bool(opens.get("root_cause_only", True)),
        min_severity=min_sev,
        min_active_s=float(min_active),
        skip_muted=bool(opens.get("skip_muted", True)),
        severity_priority={str(k): int(v) for k, v in sev_prio.items()},
        role_raise=ints["role_raise"],
        site_raise=ints["site_raise"],
        impact_raise_at=impact,
        skills={str(k): str(v) for k, v in skills.items()},
        sla=sla,
        business_hours=hours,
        sla_classes=classes,
        auto_close_self_healed=auto.get("cleared_before_dispatch", True),
        verify_services=verify[0],
        service_check_attempts=verify[1],
        service_check_retry_s=verify[2],
    )


def _verify_services(raw: Any, fail: Callable[[str, str], InvalidInput]) -> tuple[bool, int, float]:
    """``verify_services``: true / false, or {enabled, attempts, retry_s}."""
    if isinstance(raw, bool):
        return raw, 3, 60.0
    if not isinstance(raw, dict):
        raise fail("verify_services", "true, false or a mapping {enabled, attempts, retry_s}")
    unknown = set(raw) - {"enabled", "attempts", "retry_s"}
    if unknown:
        raise fail(f"verify_services.{sorted(unknown)[0]}", "one of enabled, attempts, retry_s")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("verify_services.enabled", "true or false")
    attempts = raw.get("attempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 100:
        raise fail("verify_services.attempts", "an integer 1..100")
    retry = raw.get("retry_s", 60)
    if not isinstance(retry, int | float) or isinstance(retry, bool) or not 0 <= retry <= 86400:
        raise fail("verify_services.retry_s", "a number of seconds 0..86400")
    return enabled, attempts, float(retry)


def _sla_classes(raw: Any, fail: Callable[[str, str], InvalidInput]) -> dict[str, SlaClass]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail("sla_classes", "class name -> {rank, priority, response_s, restore_s, hours}")
    out: dict[str, SlaClass] = {}
    for name, spec in raw.items():
        key = f"sla_classes.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
            raise fail(key, "a class name of lower-case letters, digits, _ and - (at most 32)")
        if not isinstance(spec, dict):
            raise fail(key, "a mapping {rank, priority, response_s, restore_s, hours}")
        unknown = set(spec) - {"rank", "priority", "response_s", "restore_s", "hours"}
        if unknown:
            raise fail(f"{key}.{sorted(unknown)[0]}", "one of rank, priority, response_s, restore_s, hours")
        rank = spec.get("rank")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
            raise fail(f"{key}.rank", "an integer >= 0 (higher wins)")
        if spec.get("priority") not in PRIORITIES:
            raise fail(f"{key}.priority", "P1, P2, P3 or P4")
        for seconds in ("response_s", "restore_s"):
            value = spec.get(seconds)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise fail(f"{key}.{seconds}", "a positive number of seconds")
        hours = spec.get("hours", "24x7")
        if hours not in ("24x7", "business"):
            raise fail(f"{key}.hours", "24x7 or business")
        target = SlaTarget(float(spec["response_s"]), float(spec["restore_s"]), hours == "business")
        out[name] = SlaClass(name=name, rank=rank, priority=spec["priority"], target=target)
    return out


DEFAULT_POLICY_FILE = Path(__file__).parent / "data" / "policy.yaml"


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read the ticket policy ({type(exc).__name__})", field="policy") from None
    return parse_policy(data, source=str(path))


if __name__ == "__main__":  # python -m ticketing.policy: the table for docs/tickets.md
    print(render_markdown(), end="")
