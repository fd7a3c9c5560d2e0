"""Replay a scenario through the real engine on a virtual clock (like ``promtool test rules``).

A scenario file holds a topology, maintenance windows, optional extra rules, a timeline
of events and metric samples at virtual seconds, and the alarms expected at given
times. The replay builds a scratch SQLite database, loads the topology into the real
inventory tables, and runs ``AlarmCore.process`` and ``tick`` with a ``FrozenClock``.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from alarms.engine import AlarmCore, EngineConfig
from alarms.errors import RuleError
from alarms.models import Alarm, MaintenanceWindow
from alarms.rules import DEFAULT_KEY, RuleSet, build_ruleset, default_rules_text
from faultloop import clock, migrate
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.events import AlarmChange, Event, Sample
from inventory import service as inventory
from inventory.errors import InvalidInput as InventoryInvalid
from inventory.schemas import SketchDevice, SketchLink

START = datetime(2026, 1, 1, tzinfo=UTC)
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceSpec(_Strict):
    hostname: str
    role: str = "access"
    site: str | None = None
    tags: list[str] = []
    parents: list[str] = []


class LinkSpec(_Strict):
    a: str = Field(pattern=r"^[^:]+:.+$", description="hostname:interface")
    b: str = Field(pattern=r"^[^:]+:.+$")


class Topology(_Strict):
    poller: list[str] = []
    devices: list[DeviceSpec] = []
    links: list[LinkSpec] = []


class WindowSpec(_Strict):
    name: str
    start: float
    end: float | None = None
    rrule: str | None = None
    cron: str | None = None
    duration_s: int | None = None
    devices: list[str] = []
    sites: list[str] = []
    tags: list[str] = []
    interfaces: list[str] = []


class EventSpec(_Strict):
    at: float = Field(ge=0)
    device: str
    type: str
    object: str = ""
    severity: Literal["critical", "major", "minor", "warning", "indeterminate", "cleared"] = "major"
    source: Literal["poll", "trap", "syslog", "api", "alertmanager"] = "trap"


class SampleSpec(_Strict):
    at: float = Field(ge=0)
    device: str
    metric: str
    value: float
    labels: dict[str, str] = {}


class AlarmExpect(_Strict):
    key: str
    state: Literal["active", "cleared"] | None = "active"
    severity: str | None = None
    count: int | None = None
    root_cause: bool | None = None
    parent: str | None = None  # reduction key of the parent, or "none"
    children: int | None = None
    muted: bool | None = None
    flapping: bool | None = None
    suppression: str | None = None  # substring of the suppression reason
    reason: str | None = None  # substring of the correlation reason


class Expect(_Strict):
    at: float = Field(ge=0)
    alarms: list[AlarmExpect] = []
    active: int | None = None
    root_causes: int | None = None
    muted: int | None = None
    absent: list[str] = []  # keys with no active alarm


class Config(_Strict):
    flap_threshold: int = Field(default=4, ge=1)
    flap_window_s: float = Field(default=600, gt=0)
    settle_s: float = Field(default=60, ge=0)
    tick_s: float = Field(default=1, gt=0)


class Scenario(_Strict):
    name: str
    description: str = ""
    config: Config = Config()
    rules: str = ""  # extra rule YAML, loaded on top of the defaults
    topology: Topology = Topology()
    maintenance: list[WindowSpec] = []
    events: list[EventSpec] = []
    samples: list[SampleSpec] = []
    expect: list[Expect] = Field(min_length=1)


def _expand(items: Any, where: str, file: str) -> Any:
    """Expand list items that carry ``for: {var: "1..N"}`` by formatting their strings."""
    if not isinstance(items, list):
        return items
    out: list[Any] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "for" not in item:
            out.append(item)
            continue
        spec = item["for"]
        if not isinstance(spec, dict) or len(spec) != 1:
            raise RuleError(file, f"{where}[{index}]", "for", 'expected one variable, e.g. {i: "1..20"}')
        ((var, rng),) = spec.items()
        m = _RANGE.match(str(rng))
        if not m:
            raise RuleError(file, f"{where}[{index}]", "for", 'expected a range "FIRST..LAST"')
        step = float(item.get("every_s", 0))
        body = {k: v for k, v in item.items() if k not in ("for", "every_s")}
        for n, value in enumerate(range(int(m.group(1)), int(m.group(2)) + 1)):
            copy = {k: _fmt(v, var, value) for k, v in body.items()}
            if step and "at" in copy:
                copy["at"] = float(copy["at"]) + n * step
            out.append(copy)
    return out


def _fmt(value: Any, var: str, n: int) -> Any:
    if isinstance(value, str):
        return value.replace("{" + var + "}", str(n))
    if isinstance(value, list):
        return [_fmt(v, var, n) for v in value]
    if isinstance(value, dict):
        return {k: _fmt(v, var, n) for k, v in value.items()}
    return value


def parse_scenario(text: str, *, file: str) -> tuple[Scenario, RuleSet]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RuleError(file, "", "(yaml)", f"not valid YAML at line {mark.line + 1 if mark else '?'}") from None
    if not isinstance(doc, dict):
        raise RuleError(file, "", "(document)", "expected a mapping with name, topology, events, expect")
    for section in ("events", "samples", "maintenance"):
        doc[section] = _expand(doc.get(section, []), section, file)
    if isinstance(doc.get("topology"), dict):
        for section in ("devices", "links"):
            doc["topology"][section] = _expand(doc["topology"].get(section, []), f"topology.{section}", file)
    try:
        scenario = Scenario.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        item, rest = "", loc
        for i in range(len(loc) - 1, 0, -1):
            if loc[i].isdigit():
                item, rest = f"{'.'.join(loc[:i])}[{loc[i]}]", loc[i + 1 :]
                break
        raise RuleError(file, item, ".".join(rest) or "(item)", str(err["msg"]).removeprefix("Value error, ")) from None
    files = [("alarms/data/default_rules.yaml", default_rules_text())]
    if scenario.rules:
        files.append((f"{file} (rules)", scenario.rules))
    return scenario, build_ruleset(files)


@dataclass
class ReplayResult:
    name: str
    failures: list[str] = field(default_factory=list)
    checks: int = 0
    changes: list[AlarmChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def run_file(path: Path) -> ReplayResult:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(str(path), "", "(file)", f"cannot read: {exc.strerror}") from None
    scenario, rules = parse_scenario(text, file=str(path))
    return run(scenario, rules)


def run(scenario: Scenario, rules: RuleSet) -> ReplayResult:
    with tempfile.TemporaryDirectory(prefix="faultloop-replay-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'replay.db'}")
        try:
            migrate.upgrade(engine)
            sessions = make_sessionmaker(engine)
            virtual = clock.FrozenClock(START)
            with clock.use(virtual):
                with transaction(sessions) as session:
                    _load_topology(session, scenario)
                core = AlarmCore(
                    rules,
                    EngineConfig(
                        flap_threshold=scenario.config.flap_threshold,
                        flap_window_s=scenario.config.flap_window_s,
                        settle_s=scenario.config.settle_s,
                        poller_devices=tuple(scenario.topology.poller),
                    ),
                )
                with transaction(sessions) as session:
                    core.load(session, clock.now())
                return _timeline(scenario, core, sessions, virtual)
        finally:
            engine.dispose()


def _timeline(scenario: Scenario, core: AlarmCore, sessions: Any, virtual: clock.FrozenClock) -> ReplayResult:
    result = ReplayResult(scenario.name)
    events: dict[float, list[EventSpec]] = {}
    for e in scenario.events:
        events.setdefault(e.at, []).append(e)
    samples: dict[float, list[SampleSpec]] = {}
    for s in scenario.samples:
        samples.setdefault(s.at, []).append(s)
    expects = {x.at: x for x in scenario.expect}
    end = max([*events, *samples, *expects, 0.0])
    # Virtual time advances in ticks, plus every moment something happens.
    moments = set(events) | set(samples) | set(expects)
    t = 0.0
    while t <= end:
        moments.add(round(t, 6))
        t += scenario.config.tick_s
    for at in sorted(moments):
        virtual.current = START + timedelta(seconds=at)
        now = clock.now()
        with transaction(sessions) as session:
            if at in events:
                result.changes += core.process(session, [_event(e, now) for e in events[at]], now)
            if at in samples:
                result.changes += core.process_samples(session, [_sample(s, now) for s in samples[at]], now)
            result.changes += core.tick(session, now)
        if at in expects:
            with sessions() as session:
                _check(session, expects[at], result)
    return result


def _event(spec: EventSpec, now: datetime) -> Event:
    return Event(
        source=spec.source,
        device=spec.device,
        event_type=spec.type,
        severity=spec.severity,
        time=now,
        managed_object=spec.object,
    )


def _sample(spec: SampleSpec, now: datetime) -> Sample:
    return Sample(device=spec.device, metric=spec.metric, value=spec.value, time=now, labels=spec.labels)


def _load_topology(session: Session, scenario: Scenario) -> None:
    now = clock.now()
    devices = [
        SketchDevice(hostname=d.hostname, role=d.role, site=d.site, tags=tuple(d.tags), parents=tuple(d.parents))
        for d in scenario.topology.devices
    ]
    links = [SketchLink(a=_end(link.a), b=_end(link.b)) for link in scenario.topology.links]
    try:
        inventory.sketch_topology(session, devices=devices, links=links)
    except InventoryInvalid as exc:
        where = "topology.links" if exc.field == "links" else "topology.devices"
        raise RuleError("scenario", where, "a/b" if exc.field == "links" else "parents", str(exc)) from None
    for w in scenario.maintenance:
        session.add(
            MaintenanceWindow(
                name=w.name,
                starts_at=START + timedelta(seconds=w.start),
                ends_at=START + timedelta(seconds=w.end) if w.end is not None else None,
                rrule=w.rrule,
                cron=w.cron,
                duration_s=w.duration_s,
                devices=w.devices,
                sites=w.sites,
                tags=w.tags,
                interfaces=w.interfaces,
                reason="scenario",
                created_by="replay",
                created_at=now,
            )
        )
    session.flush()


def _end(ref: str) -> tuple[str, str]:
    host, _, name = ref.partition(":")
    return host, name


def _check(session: Session, expect: Expect, result: ReplayResult) -> None:
    rows = session.scalars(select(Alarm)).all()
    active = [a for a in rows if a.state == "active"]
    by_id = {a.id: a for a in rows}
    at = f"t={expect.at:g}s"

    def fail(msg: str) -> None:
        result.failures.append(f"{at}: {msg}")

    if expect.active is not None:
        result.checks += 1
        if len(active) != expect.active:
            keys = sorted(a.reduction_key for a in active)[:10]
            fail(f"expected {expect.active} active alarms, got {len(active)}: {keys}")
    if expect.root_causes is not None:
        result.checks += 1
        roots = [a.reduction_key for a in active if a.root_cause]
        if len(roots) != expect.root_causes:
            fail(f"expected {expect.root_causes} root-cause alarms, got {len(roots)}: {roots[:10]}")
    if expect.muted is not None:
        result.checks += 1
        muted = sum(1 for a in active if a.muted)
        if muted != expect.muted:
            fail(f"expected {expect.muted} muted active alarms, got {muted}")
    active_keys = {a.reduction_key for a in active}
    for key in expect.absent:
        result.checks += 1
        if key in active_keys:
            fail(f"{key}: expected no active alarm")
    for want in expect.alarms:
        result.checks += 1
        candidates = sorted((a for a in rows if a.reduction_key == want.key), key=lambda a: a.id)
        if want.state is not None:
            candidates = [a for a in candidates if a.state == want.state] or candidates
        if not candidates:
            fail(f"{want.key}: no such alarm")
            continue
        alarm = candidates[-1]
        got: dict[str, Any] = {
            "state": alarm.state,
            "severity": alarm.severity,
            "count": alarm.count,
            "root_cause": alarm.root_cause,
            "muted": alarm.muted,
            "flapping": alarm.flapping,
            "parent": by_id[alarm.parent_id].reduction_key if alarm.parent_id in by_id else "none",
            "children": sum(1 for a in active if a.parent_id == alarm.id),
        }
        for name in ("state", "severity", "count", "root_cause", "muted", "flapping", "parent", "children"):
            value = getattr(want, name)
            if value is not None and value != got[name]:
                fail(f"{want.key}: {name} expected {value!r}, got {got[name]!r}")
        if want.suppression is not None and want.suppression not in (alarm.suppression_reason or ""):
            fail(f"{want.key}: suppression expected to contain {want.suppression!r}, got {alarm.suppression_reason!r}")
        if want.reason is not None and want.reason not in (alarm.correlation_reason or ""):
            fail(f"{want.key}: reason expected to contain {want.reason!r}, got {alarm.correlation_reason!r}")


__all__ = ["DEFAULT_KEY", "ReplayResult", "parse_scenario", "run", "run_file"]
