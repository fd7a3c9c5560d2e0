"""Syslog receiver (UDP, RFC 3164 and RFC 5424) with mapping rules -> ``Event``s.

Link flaps and configuration changes often reach a NOC by syslog before any poll sees
them. Each rule in the rules file (default ``collectors/data/syslog_rules.yaml``;
``FAULTLOOP_SYSLOG_RULES_FILE`` replaces it)::

    - name: cisco-link-down
      pattern: '%LINK-\\d-UPDOWN: Interface (?P<interface>[^,\\s]+), changed state to down'
      event_type: linkDown
      severity: major
      object: "interface:{interface}"     # optional; placeholders are the pattern's named groups

The first rule whose pattern is found in the message wins. A line no rule matches is
counted as dropped with reason ``no_rule`` (not an event: a NOC does not want every
debug line as an alarm candidate). Same queue / rate limit / drop discipline as traps.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from prometheus_client import Counter

from collectors.receiver import (
    DeviceDirectory,
    Handled,
    Malformed,
    ReceiverMetrics,
    ReceiverService,
    Rejected,
    SourcePolicy,
)
from collectors.trapmap import MappingFileError, load_yaml_list
from faultloop.events import SEVERITIES, Event, ObservationSink, Severity
from faultloop.metrics import REGISTRY
from faultloop.settings import Settings

DEFAULT_SYSLOG_RULES = Path(__file__).parent / "data" / "syslog_rules.yaml"
MAX_MESSAGE = 2048
MAX_DESCRIPTION = 500

SYSLOG_RECEIVED = Counter(
    "faultloop_syslog_received", "Syslog messages parsed, by format (rfc3164, rfc5424)", ["format"], registry=REGISTRY
)
SYSLOG_DROPPED = Counter(
    "faultloop_syslog_dropped",
    "Syslog datagrams not turned into events, by reason "
    "(socket_buffer, rate_limited, queue_full, malformed, no_rule, unknown_source, sink_refused)",
    ["reason"],
    registry=REGISTRY,
)
SYSLOG_MALFORMED = Counter("faultloop_syslog_malformed", "Syslog datagrams that could not be parsed", registry=REGISTRY)

_PRI = re.compile(r"<(\d{1,3})>")
_RFC3164_HEAD = re.compile(r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+) ")
_TAG = re.compile(r"([A-Za-z0-9_./-]{1,48})(?:\[([^\]\s]{1,32})\])?: ")
_FIELDS = {"name", "pattern", "event_type", "severity", "object", "description"}


@dataclass(frozen=True, slots=True)
class SyslogRule:
    name: str
    pattern: re.Pattern[str]
    event_type: str
    severity: Severity
    object: str = ""


@dataclass(slots=True)
class SyslogMessage:
    format: str  # "rfc3164" or "rfc5424"
    facility: int
    level: int  # syslog severity 0 (emergency) .. 7 (debug)
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    message: str
    timestamp: str


def load_rules(path: Path | None = None) -> list[SyslogRule]:
    path = path or DEFAULT_SYSLOG_RULES
    rules: list[SyslogRule] = []
    names: set[str] = set()
    for i, entry in enumerate(load_yaml_list(path, "rules"), start=1):
        where = f"{path}: rules entry {i}"
        if not isinstance(entry, dict):
            raise MappingFileError(f"{where}: expected a mapping")
        if "name" in entry:
            where += f" ({entry['name']})"
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise MappingFileError(f"{where}: field '{unknown[0]}': unknown field; expected one of {sorted(_FIELDS)}")
        for required in ("name", "pattern", "event_type", "severity"):
            if not isinstance(entry.get(required), str) or not entry[required]:
                raise MappingFileError(f"{where}: field '{required}': required (text)")
        if entry["name"] in names:
            raise MappingFileError(f"{where}: field 'name': used twice")
        names.add(entry["name"])
        try:
            pattern = re.compile(entry["pattern"])
        except re.error as exc:
            raise MappingFileError(f"{where}: field 'pattern': not a valid regular expression: {exc}") from None
        if entry["severity"] not in SEVERITIES:
            raise MappingFileError(
                f"{where}: field 'severity': expected one of {', '.join(SEVERITIES)}, got {entry['severity']!r}"
            )
        template = entry.get("object", "")
        if not isinstance(template, str):
            raise MappingFileError(f"{where}: field 'object': expected text")
        try:
            fields = {f for _t, f, _s, _c in string.Formatter().parse(template) if f is not None}
        except ValueError as exc:
            raise MappingFileError(f"{where}: field 'object': bad template: {exc}") from None
        missing = sorted(fields - set(pattern.groupindex))
        if missing:
            raise MappingFileError(f"{where}: field 'object': {{{missing[0]}}} is not a named group of the pattern")
        rules.append(
            SyslogRule(
                name=entry["name"],
                pattern=pattern,
                event_type=entry["event_type"],
                severity=cast(Severity, entry["severity"]),
                object=template,
            )
        )
    return rules


def _nil(value: str) -> str:
    return "" if value == "-" else value


def _split_sd(rest: str) -> tuple[str, str]:
    """(structured data, message) of the part after MSGID in RFC 5424."""
    if rest.startswith("-"):
        return "", rest[2:] if rest.startswith("- ") else rest[1:]
    if not rest.startswith("["):
        raise Malformed("RFC 5424 structured data must be '-' or start with '['")
    i, n = 0, len(rest)
    while i < n and rest[i] == "[":
        i += 1
        quoted = False
        while True:
            if i >= n:
                raise Malformed("unterminated RFC 5424 structured data")
            c = rest[i]
            if quoted and c == "\\":
                i += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == "]" and not quoted:
                i += 1
                break
            i += 1
    sd, msg = rest[:i], rest[i:]
    return sd, msg[1:] if msg.startswith(" ") else msg


def parse(data: bytes) -> SyslogMessage:
    if not data:
        raise Malformed("empty datagram")
    text = data.decode("utf-8", errors="replace").rstrip("\r\n\x00")
    m = _PRI.match(text)
    if m is None:
        raise Malformed("no <PRI> at the start")
    pri = int(m.group(1))
    if pri > 191:
        raise Malformed(f"PRI {pri} out of range")
    body = text[m.end() :]
    if body.startswith("1 "):
        parts = body.split(" ", 6)
        if len(parts) < 7:
            if len(parts) == 6:  # no SD and no MSG
                parts.append("-")
            else:
                raise Malformed("RFC 5424 header is incomplete")
        _v, ts, host, app, procid, msgid, rest = parts
        sd, msg = _split_sd(rest)
        msg = msg.removeprefix("\ufeff")
        return SyslogMessage(
            "rfc5424", pri >> 3, pri & 7, _nil(host), _nil(app), _nil(procid), _nil(msgid), sd, msg, _nil(ts)
        )
    host = ts = app = procid = ""
    msg = body
    h = _RFC3164_HEAD.match(body)
    if h is not None:
        ts, host, msg = h.group(1), h.group(2), body[h.end() :]
    t = _TAG.match(msg)
    if t is not None:
        app, procid = t.group(1), t.group(2) or ""
    return SyslogMessage("rfc3164", pri >> 3, pri & 7, host, app, procid, "", "", msg, ts)


class SyslogHandler:
    def __init__(
        self, *, rules: list[SyslogRule], directory: DeviceDirectory, sources: SourcePolicy | None = None
    ) -> None:
        self.rules = rules
        self.directory = directory
        self.sources = sources or SourcePolicy()
        self._received = {f: SYSLOG_RECEIVED.labels(format=f) for f in ("rfc3164", "rfc5424")}

    def __call__(self, data: bytes, source: str, received_at: datetime) -> Handled:
        msg = parse(data)
        self._received[msg.format].inc()
        return Handled(self.to_event(msg, source, received_at))

    def to_event(self, msg: SyslogMessage, source: str, received_at: datetime) -> Event:
        text = msg.message[:MAX_MESSAGE]
        for rule in self.rules:
            m = rule.pattern.search(text)
            if m is not None:
                break
        else:
            raise Rejected("no_rule")
        # the UDP source decides; the HOSTNAME a message claims counts only from a relay
        device = self.sources.attribute(
            self.directory, source, receiver="syslog", forwarded_hostname=msg.hostname or None
        )
        groups = {k: v or "" for k, v in m.groupdict().items()}
        managed_object = rule.object.format(**groups) if rule.object else ""
        raw: dict[str, Any] = {
            "source_address": source,
            "format": msg.format,
            "facility": msg.facility,
            "level": msg.level,
            "hostname": msg.hostname,
            "app_name": msg.app_name,
            "procid": msg.procid,
            "msgid": msg.msgid,
            "timestamp": msg.timestamp,
            "structured_data": msg.structured_data,
            "message": text,
            "rule": rule.name,
        }
        if managed_object and not device:  # unattributed: one alarm per type, not one per claimed object
            raw["claimed_object"] = managed_object
        return Event(
            source="syslog",
            device=device,
            event_type=rule.event_type,
            severity=rule.severity,
            time=received_at,
            managed_object=managed_object if device else "",
            specific_problem=rule.name,
            description=text[:MAX_DESCRIPTION],
            raw=raw,
        )


def receiver_metrics() -> ReceiverMetrics:
    return ReceiverMetrics(received=SYSLOG_RECEIVED, dropped=SYSLOG_DROPPED, malformed=SYSLOG_MALFORMED, name="syslog")


class SyslogReceiverService(ReceiverService):
    """The syslog receiver as a pipeline service (``faultloop.events.Service``)."""

    name = "syslog receiver"

    def __init__(self, *, settings: Settings, sink: ObservationSink, directory: DeviceDirectory) -> None:
        self.directory = directory
        self.handler = SyslogHandler(
            rules=load_rules(settings.syslog_rules_file),
            directory=directory,
            sources=SourcePolicy.from_settings(settings),
        )
        super().__init__(
            settings=settings,
            host=settings.syslog_host,
            port=settings.syslog_port,
            handler=self.handler,
            sink=sink,
            metrics=receiver_metrics(),
        )
