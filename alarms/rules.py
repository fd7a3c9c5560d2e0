"""Event-mapping and threshold rules, loaded from YAML and validated at load.

Every error names the file, the rule and the field. Loading builds a new ``RuleSet``;
the engine swaps it in only when the whole load succeeded, so a reload never
half-applies.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alarms.errors import RuleError
from faultloop.events import SEVERITIES, Event

AlarmSeverity = Literal["critical", "major", "minor", "warning", "indeterminate"]
SEVERITY_RANK = {"cleared": 0, "indeterminate": 1, "warning": 2, "minor": 3, "major": 4, "critical": 5}
KEY_FIELDS = frozenset({"device", "managed_object", "alarm_type", "event_type", "source"})
DEFAULT_KEY = "{alarm_type}:{device}:{managed_object}"
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _check_template(value: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    unknown = names - KEY_FIELDS
    if unknown:
        raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; expected one of {sorted(KEY_FIELDS)}")
    return value


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: AlarmSeverity
    count: int | None = Field(None, ge=2)
    after_s: float | None = Field(None, gt=0)

    def model_post_init(self, _ctx: Any) -> None:
        if (self.count is None) == (self.after_s is None):
            raise ValueError("give exactly one of count or after_s")


class MappingRule(BaseModel):
    """Event types that raise an alarm, event types that clear it, and how to key it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    raise_: list[str] = Field(alias="raise", min_length=1)
    clear: list[str] = []
    alarm_type: str = Field(min_length=1, max_length=100)
    severity: AlarmSeverity | None = None  # None: the event's own severity
    reduction_key: str = DEFAULT_KEY
    topology: Literal["device", "link"] | None = None  # what a raised alarm says about the topology
    groups_interfaces: bool = False  # interface alarms of the same device (within the settle window) group under it
    escalate: list[Escalation] = []

    _template = field_validator("reduction_key")(classmethod(lambda cls, v: _check_template(v)))


class ThresholdRule(BaseModel):
    """A metric condition held for ``for_s`` raises; crossing ``clear_value`` clears (hysteresis)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    metric: str = Field(min_length=1)
    labels: dict[str, str] = {}
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float
    for_s: float = Field(0, ge=0)
    clear_value: float | None = None
    severity: AlarmSeverity = "major"

    def model_post_init(self, _ctx: Any) -> None:
        if self.clear_value is not None and self.op in (">", ">=") and self.clear_value > self.value:
            raise ValueError(f"clear_value {self.clear_value} must not be above value {self.value} for op {self.op}")
        if self.clear_value is not None and self.op in ("<", "<=") and self.clear_value < self.value:
            raise ValueError(f"clear_value {self.clear_value} must not be below value {self.value} for op {self.op}")

    def matches(self, metric: str, labels: Mapping[str, str]) -> bool:
        return metric == self.metric and all(labels.get(k) == v for k, v in self.labels.items())

    def firing(self, value: float) -> bool:
        return OPS[self.op](value, self.value)

    def clearing(self, value: float) -> bool:
        if self.clear_value is None:
            return not self.firing(value)
        return not OPS[self.op](value, self.clear_value) and not self.firing(value)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mappings: list[MappingRule] = []
    thresholds: list[ThresholdRule] = []


@dataclass(frozen=True, slots=True)
class Decision:
    """What an event means: raise or clear the alarm with this key, or nothing."""

    action: Literal["raise", "clear"]
    reduction_key: str
    alarm_type: str
    severity: str
    rule: MappingRule | None


@dataclass
class RuleSet:
    mappings: list[MappingRule] = field(default_factory=list)
    thresholds: list[ThresholdRule] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    _raise: dict[str, MappingRule] = field(default_factory=dict)
    _clear: dict[str, MappingRule] = field(default_factory=dict)
    by_alarm_type: dict[str, MappingRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.mappings:
            for et in rule.raise_:
                self._raise[et] = rule
            for et in rule.clear:
                self._clear[et] = rule
            self.by_alarm_type[rule.alarm_type] = rule

    def decide(self, event: Event) -> Decision:
        fields = {
            "device": event.device,
            "managed_object": event.managed_object,
            "event_type": event.event_type,
            "source": event.source,
        }
        rule = self._raise.get(event.event_type)
        if rule is not None and event.severity != "cleared":
            key = rule.reduction_key.format(alarm_type=rule.alarm_type, **fields)
            severity = rule.severity or (event.severity if event.severity != "cleared" else "indeterminate")
            return Decision("raise", key, rule.alarm_type, severity, rule)
        rule = self._clear.get(event.event_type) or rule
        if rule is not None:
            key = rule.reduction_key.format(alarm_type=rule.alarm_type, **fields)
            return Decision("clear", key, rule.alarm_type, "cleared", rule)
        # Unmapped: the event type is the alarm type; a "cleared" event clears its own key.
        key = DEFAULT_KEY.format(alarm_type=event.event_type, **fields)
        if event.severity == "cleared":
            return Decision("clear", key, event.event_type, "cleared", None)
        return Decision("raise", key, event.event_type, event.severity, None)


def _location(exc: ValidationError, doc: Any) -> tuple[str, str, str]:
    """(rule name, field, message) of the first error of a rule file."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    rule = ""
    if len(loc) >= 2 and loc[0] in ("mappings", "thresholds") and isinstance(loc[1], int):
        try:
            rule = str(doc[loc[0]][loc[1]].get("name") or f"{loc[0]}[{loc[1]}]")
        except (AttributeError, IndexError, KeyError, TypeError):
            rule = f"{loc[0]}[{loc[1]}]"
        loc = loc[2:]
    name = ".".join(str(p) for p in loc) or "(rule)"
    message = str(err["msg"]).removeprefix("Value error, ")
    return rule, name.replace("raise_", "raise"), message


def parse_rules(text: str, *, file: str) -> RuleFile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise RuleError(file, "", "(yaml)", f"not valid YAML at {where}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RuleError(file, "", "(document)", "expected a mapping with 'mappings' and/or 'thresholds'")
    try:
        return RuleFile.model_validate(doc)
    except ValidationError as exc:
        rule, name, message = _location(exc, doc)
        raise RuleError(file, rule, name, message) from None


def build_ruleset(files: list[tuple[str, str]]) -> RuleSet:
    """Parse every (file name, text) and check names and event types are unique across them."""
    mappings: list[MappingRule] = []
    thresholds: list[ThresholdRule] = []
    seen_names: dict[str, str] = {}
    seen_events: dict[str, str] = {}
    for file, text in files:
        parsed = parse_rules(text, file=file)
        named: list[MappingRule | ThresholdRule] = [*parsed.mappings, *parsed.thresholds]
        for rule in named:
            if rule.name in seen_names:
                raise RuleError(file, rule.name, "name", f"duplicate rule name (also in {seen_names[rule.name]})")
            seen_names[rule.name] = file
        for m in parsed.mappings:
            for et in [*m.raise_, *m.clear]:
                key = f"{et}"
                if key in seen_events:
                    raise RuleError(
                        file, m.name, "raise", f"event type {et!r} already mapped by rule {seen_events[key]}"
                    )
                seen_events[key] = m.name
        mappings.extend(parsed.mappings)
        thresholds.extend(parsed.thresholds)
    return RuleSet(mappings=mappings, thresholds=thresholds, sources=[f for f, _ in files])


def default_rules_text() -> str:
    return resources.files("alarms").joinpath("data/default_rules.yaml").read_text(encoding="utf-8")


def load_ruleset(paths: list[Path] | None = None) -> RuleSet:
    """The packaged defaults plus each file given; any error raises RuleError and loads nothing."""
    files = [("alarms/data/default_rules.yaml", default_rules_text())]
    for path in paths or []:
        try:
            files.append((str(path), path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise RuleError(str(path), "", "(file)", f"cannot read: {exc.strerror}") from None
    return build_ruleset(files)


def severity_rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 1)


assert set(SEVERITY_RANK) == set(SEVERITIES)
