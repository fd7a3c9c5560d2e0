"""Notification channels with no domain knowledge, shared by alarm and ticket notifications.

A domain turns what happened into a ``Message`` (title, severity, facts, the JSON body a plain
webhook gets, a PagerDuty action and dedup key); a channel carries it: a signed JSON webhook,
e-mail over SMTP, a Slack/Mattermost-compatible incoming webhook, a Microsoft Teams workflows
webhook (an Adaptive Card) or the PagerDuty Events API v2. Each domain keeps its own outbox
table with the columns of ``OutboxRow``; ``attempt`` is the one retry/give-up policy for all.

Channel URLs are checked when the file is loaded: http(s) only, and not a loopback, link-local
or unspecified address (a notification must not become a way to reach the service's own host
or a cloud metadata endpoint) unless the channel says ``allow_private: true``. URLs and routing
keys carry credentials: they are never logged, and errors name the host at most.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import yaml
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from faultloop import clock
from faultloop.db import UTCDateTime
from faultloop.errors import InvalidInput
from faultloop.leader import Leadership, NotLeader, fenced_transaction
from faultloop.metrics import REGISTRY
from faultloop.settings import Settings

log = logging.getLogger("faultloop.notify")
RETRY_BASE_S = 10.0
RETRY_MAX_S = 3600.0
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"

ATTEMPTS = Counter(
    "faultloop_notification_attempts_total", "Notification delivery attempts", ["channel", "result"], registry=REGISTRY
)
GAVE_UP = Counter(
    "faultloop_notifications_given_up_total",
    "Notifications that will never be sent (attempts ran out, or the row cannot be built)",
    ["channel", "reason"],
    registry=REGISTRY,
)


class NotifyConfigError(InvalidInput):
    """A notification file (or address) is invalid; the message names file, entry and field."""

    def __init__(self, file: str, entry: str, field: str, message: str) -> None:
        where = f"{file}: entry {entry!r}" if entry else file
        super().__init__(f"{where}: field {field!r}: {message}", field=field)
        self.file = file
        self.entry = entry
        self.entry_field = field
        self.message = message


class DeliveryError(Exception):
    """The channel refused or failed this time; the row is retried."""


class PermanentError(DeliveryError):
    """The row can never be sent as it is (no such channel, a payload the channel cannot carry)."""


# ---- addresses -------------------------------------------------------------------------------------


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, as the resolver would read it (``127.1``, ``2130706433``
    and ``0x7f.1`` are all 127.0.0.1 to ``inet_aton``); None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_url(url: str, *, allow_private: bool) -> str:
    """``url`` if a notification may be sent there; ValueError naming the reason (never the URL's
    path or query, which carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise ValueError("expected an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL's authority are not accepted")
    if allow_private:
        return url
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        raise ValueError(f"host {name} is a loopback name; set allow_private: true to allow it")
    address = _literal_address(name)
    if address is not None:
        for kind, hit in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                          ("unspecified", address.is_unspecified)):  # fmt: skip
            if hit:
                raise ValueError(f"host {address} is a {kind} address; set allow_private: true to allow it")
    return url


def redact_url(url: str) -> str:
    """What may be shown of a webhook URL: scheme and host (the path and query hold its token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


# ---- what a channel carries -----------------------------------------------------------------------


PdAction = Literal["trigger", "acknowledge", "resolve"]
PD_SEVERITY = {"critical": "critical", "major": "error", "minor": "warning", "warning": "warning"}


@dataclass(frozen=True)
class Message:
    title: str  # one line: the e-mail subject, the chat headline, the PagerDuty summary
    severity: str  # critical, major, minor, warning, indeterminate
    source: str  # the affected system (device, or site)
    facts: dict[str, str]  # shown in order in e-mail, chat and cards
    body: dict[str, Any]  # the JSON a plain webhook receives
    dedup_key: str = ""  # one per root cause: PagerDuty's incident key
    pd_action: PdAction | None = None  # None: PagerDuty has nothing to do with this message
    kind: str = "alarm"  # alarm, ticket: the PagerDuty class and the e-mail's first line
    headers: dict[str, str] = field(default_factory=dict)


def header_text(value: object, *, limit: int = 200) -> str:
    """Device-supplied text made safe for one header line: control characters (CR/LF among them,
    which would end the header) become spaces, runs of white space fold, and it is cut to ``limit``."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return " ".join(text.split())[:limit]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Channel(Protocol):
    def accepts(self, message: Message) -> bool:
        """False: this channel has nothing to do with the message (no outbox row is written)."""
        ...

    def send(self, delivery_id: int, message: Message) -> None:
        """Deliver or raise: ``PermanentError`` when retrying can never help, anything else is retried."""
        ...


def _post_json(
    url: str, body: dict[str, Any], *, timeout_s: float, headers: dict[str, str] | None = None
) -> httpx.Response:
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    try:
        response = httpx.post(url, content=data, headers={"Content-Type": "application/json", **(headers or {})},
                              timeout=timeout_s)  # fmt: skip
    except httpx.HTTPError as exc:  # the message of some of these holds the URL, and so its token
        raise DeliveryError(type(exc).__name__) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryError(f"HTTP {response.status_code}")
    if response.status_code >= 400:  # the receiver refuses this payload: sending it again will not help
        raise PermanentError(f"HTTP {response.status_code}")
    if response.status_code >= 300:
        raise DeliveryError(f"HTTP {response.status_code}")
    return response


@dataclass
class WebhookChannel:
    url: str
    secret: bytes | None
    timeout_s: float = 10.0

    def accepts(self, message: Message) -> bool:
        return True

    def send(self, delivery_id: int, message: Message) -> None:
        body = json.dumps(message.body, sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Faultloop-Delivery": str(delivery_id),
            "X-Faultloop-Timestamp": timestamp,
            **message.headers,
        }
        if self.secret:
            headers["X-Faultloop-Signature"] = sign(self.secret, timestamp, body)
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DeliveryError(type(exc).__name__) from None
        if response.status_code >= 300:
            raise DeliveryError(f"HTTP {response.status_code}")


@dataclass
class EmailChannel:
    host: str
    port: int
    sender: str
    to: list[str]
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 10.0
    allow_plaintext_auth: bool = False
    ca_file: str | None = None  # PEM bundle that signs the server's certificate; None: the system CAs

    def accepts(self, message: Message) -> bool:
        return True

    def send(self, delivery_id: int, message: Message) -> None:
        if not self.host:
            raise DeliveryError("FAULTLOOP_SMTP_HOST is not set")
        if self.username and not self.starttls and not self.allow_plaintext_auth:
            # the settings refuse this at start; checked here too, before any connection
            raise DeliveryError("SMTP credentials need STARTTLS (FAULTLOOP_SMTP_STARTTLS=true)")
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = header_text(f"[faultloop] {message.title}")
        msg["X-Faultloop-Delivery"] = str(delivery_id)
        lines = [f"{k}: {v}" for k, v in message.facts.items()]
        msg.set_content(f"{message.title}\n\n" + "\n".join(lines) + "\n")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                # a verified certificate: TLS to whoever answers would hand the password to a man in the middle
                context = ssl.create_default_context(cafile=self.ca_file)
                try:
                    smtp.starttls(context=context)  # raises when the server offers none: nothing sent in clear
                except smtplib.SMTPNotSupportedError:
                    raise DeliveryError(f"{self.host}:{self.port} offers no STARTTLS; credentials not sent") from None
                except ssl.SSLCertVerificationError as exc:
                    raise DeliveryError(
                        f"{self.host}:{self.port}: certificate not trusted ({exc.verify_message}); credentials not sent"
                    ) from None
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(msg)


def _chat_escape(text: str) -> str:
    # Slack and Mattermost read <...> as links and mentions (<!channel>): device text must not ping anyone
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class SlackChannel:
    """A Slack incoming webhook, or Mattermost's (the same JSON ``text``); both answer 200 ``ok``."""

    url: str
    timeout_s: float = 10.0

    def accepts(self, message: Message) -> bool:
        return True

    def send(self, delivery_id: int, message: Message) -> None:
        facts = "\n".join(f"*{_chat_escape(k)}*: {_chat_escape(v)}" for k, v in message.facts.items())
        _post_json(self.url, {"text": f"*{_chat_escape(message.title)}*\n{facts}"}, timeout_s=self.timeout_s)


@dataclass
class TeamsChannel:
    """A Microsoft Teams workflows webhook ("Send webhook alerts to a channel"): one Adaptive Card."""

    url: str
    timeout_s: float = 10.0

    def accepts(self, message: Message) -> bool:
        return True

    def send(self, delivery_id: int, message: Message) -> None:
        color = {"critical": "Attention", "major": "Attention", "minor": "Warning", "warning": "Warning"}
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "text": message.title,
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                    "color": color.get(message.severity, "Default"),
                },  # fmt: skip
                {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in message.facts.items()]},
            ],
        }
        body = {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
            ],  # fmt: skip
        }
        _post_json(self.url, body, timeout_s=self.timeout_s)


@dataclass
class PagerDutyChannel:
    """PagerDuty Events API v2: trigger, acknowledge and resolve one alert per ``dedup_key``."""

    routing_key: str
    url: str = PAGERDUTY_URL
    timeout_s: float = 10.0

    def accepts(self, message: Message) -> bool:
        return message.pd_action is not None and bool(message.dedup_key)

    def send(self, delivery_id: int, message: Message) -> None:
        if message.pd_action is None or not message.dedup_key:
            raise PermanentError("nothing for PagerDuty in this notification")
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": message.pd_action,
            "dedup_key": message.dedup_key[:255],
        }
        if message.pd_action == "trigger":
            event["payload"] = {
                "summary": message.title[:1024],
                "source": message.source or "faultloop",
                "severity": PD_SEVERITY.get(message.severity, "info"),
                "class": message.kind,
                "custom_details": message.facts,
            }
        response = _post_json(self.url, event, timeout_s=self.timeout_s)
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(f"HTTP {response.status_code}: not a JSON answer") from None
        status = answer.get("status") if isinstance(answer, dict) else answer
        if status != "success":
            raise DeliveryError(f"HTTP {response.status_code}: status {str(status)[:50]!r}")


# ---- channel configuration --------------------------------------------------------------------------


class ChannelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    type: Literal["webhook", "email", "slack", "mattermost", "teams", "pagerduty"]
    url: str | None = None
    to: list[str] = []
    routing_key: SecretStr | None = None
    allow_private: bool = False  # a receiver on loopback / link-local (a local relay, the tests' servers)
    timeout_s: float = Field(10, gt=0, le=120)

    @model_validator(mode="after")
    def _fields_for_type(self) -> ChannelSpec:
        if self.type == "email":
            if not self.to:
                raise ValueError("an email channel needs at least one address in to")
            for address in self.to:
                check_email(address)
            return self
        if self.type == "pagerduty":
            if self.routing_key is None or not self.routing_key.get_secret_value().strip():
                raise ValueError("a pagerduty channel needs routing_key")
            self.url = self.url or PAGERDUTY_URL
        elif not self.url:
            raise ValueError(f"a {self.type} channel needs url")
        try:
            check_url(self.url, allow_private=self.allow_private)
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        return self


def check_email(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(not ch.isprintable() or ch.isspace() for ch in address):
        raise ValueError(f"expected an e-mail address, got {header_text(address, limit=100)!r}")
    return address


def validate_entries(model: type[BaseModel], doc: dict[str, Any], key: str, *, file: str) -> list[Any]:
    """Validate ``doc[key]`` as a list of ``model``; an error names the file, the entry and the field."""
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise NotifyConfigError(file, "", key, "expected a list")
    out = []
    for index, raw in enumerate(entries):
        name = raw.get("name") if isinstance(raw, dict) else None
        entry = str(name or f"{key}[{index}]")
        try:
            out.append(model.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(entry)"
            message = str(err["msg"]).removeprefix("Value error, ")
            if message.startswith("url: "):  # raised by the whole-entry check: name the field
                loc, message = "url", message.removeprefix("url: ")
            raise NotifyConfigError(file, entry, loc, message) from None
    return out


# the sections of the notification file: alarm routes (alarms/notify.py), ticket routes (ticketing/notify.py)
FILE_SECTIONS = ("channels", "routes", "ticket_routes")


def read_document(text: str, *, file: str) -> tuple[dict[str, Any], list[ChannelSpec]]:
    """The notification file as a mapping, and its channels validated (shared with ticketing)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise NotifyConfigError(file, "", "(yaml)", "not valid YAML") from None
    if not isinstance(doc, dict):
        raise NotifyConfigError(file, "", "(document)", "expected a mapping with channels and routes")
    for key in doc:
        if key not in FILE_SECTIONS:
            raise NotifyConfigError(file, "", str(key), f"unknown section; expected {', '.join(FILE_SECTIONS)}")
    channels = validate_entries(ChannelSpec, doc, "channels", file=file)
    names = [c.name for c in channels]
    for name in names:
        if names.count(name) > 1:
            raise NotifyConfigError(file, name, "name", "two channels have this name")
    return doc, channels


def build_channel(spec: ChannelSpec, settings: Settings) -> Channel:
    s = settings
    if spec.type == "email":
        password = s.smtp_password.get_secret_value() if s.smtp_password else ""
        return EmailChannel(s.smtp_host, s.smtp_port, s.smtp_from, spec.to, s.smtp_starttls, s.smtp_username,
                            password, spec.timeout_s, s.smtp_allow_plaintext_auth,
                            str(s.smtp_ca_file) if s.smtp_ca_file else None)  # fmt: skip
    assert spec.url is not None
    if spec.type == "webhook":
        secret = s.alarm_webhook_secret.get_secret_value().encode() if s.alarm_webhook_secret else None
        return WebhookChannel(spec.url, secret, spec.timeout_s)
    if spec.type in ("slack", "mattermost"):
        return SlackChannel(spec.url, spec.timeout_s)
    if spec.type == "teams":
        return TeamsChannel(spec.url, spec.timeout_s)
    assert spec.routing_key is not None
    return PagerDutyChannel(spec.routing_key.get_secret_value(), spec.url, spec.timeout_s)


# ---- one delivery attempt (every outbox table) --------------------------------------------------------


class OutboxRow(Protocol):
    id: int
    channel: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    gave_up_at: datetime | None


class OutboxColumns:
    """The columns every notification outbox table shares (alarm and ticket notifications): what
    ``attempt`` and ``deliver_due`` read and write. A table adds its key, its subject's foreign key
    and the index ``(delivered_at, next_attempt_at)`` that ``deliver_due`` scans."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(100))
    route: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # set when the row will never be sent: its attempts ran out, or it cannot be built (last_error says why)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def attempt(row: OutboxRow, send: Any, now: datetime, *, max_attempts: int) -> bool:
    """Run ``send()`` for one row; on failure schedule its retry (10 s doubling to 1 h) or give it up
    visibly (``gave_up_at``, ``last_error``, counted, logged). True when it was delivered.

    ``send`` raising PermanentError, or a payload it cannot build (ValueError, KeyError, TypeError),
    gives the row up at once: it would fail the same way every time."""
    row.attempts += 1
    try:
        send()
    except Exception as exc:  # every failure is retried with back-off or given up visibly, never dropped
        ATTEMPTS.labels(channel=row.channel, result="failed").inc()
        row.last_error = (str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__)[:500]
        permanent = isinstance(exc, PermanentError | ValueError | KeyError | TypeError)
        if permanent or row.attempts >= max_attempts:
            row.gave_up_at = now
            GAVE_UP.labels(channel=row.channel, reason="unsendable" if permanent else "attempts").inc()
            log.error("notification %d via %s given up after %d attempt(s): %s", row.id, row.channel,
                      row.attempts, row.last_error)  # fmt: skip
            return False
        delay = min(RETRY_BASE_S * 2 ** (row.attempts - 1), RETRY_MAX_S)
        row.next_attempt_at = now + timedelta(seconds=delay)
        log.warning("notification %d via %s failed (%s); retry in %.0f s", row.id, row.channel, row.last_error,
                    delay)  # fmt: skip
        return False
    ATTEMPTS.labels(channel=row.channel, result="delivered").inc()
    row.delivered_at = clock.now()
    return True


def deliver_due(
    sessions: Any, leadership: Leadership | None, model: Any, send_row: Callable[[Session, Any], None],
    now: datetime, *, max_attempts: int, limit: int = 100,
) -> tuple[int, int]:  # fmt: skip
    """Send the due rows of one outbox table (``model``), each in its own fenced transaction, so one
    bad row never holds up the others; (delivered, failed)."""
    with sessions() as session:
        ids = session.scalars(
            select(model.id)
            .where(model.delivered_at.is_(None), model.gave_up_at.is_(None), model.next_attempt_at <= now)
            .order_by(model.next_attempt_at, model.id)
            .limit(limit)
        ).all()
    delivered = failed = 0
    for row_id in ids:
        with fenced_transaction(sessions, leadership) as session:
            row = session.get(model, row_id)
            if row is None or row.delivered_at is not None or row.gave_up_at is not None:
                continue
            if attempt(row, functools.partial(send_row, session, row), now, max_attempts=max_attempts):
                delivered += 1
            else:
                failed += 1
    return delivered, failed


def leader_round(leadership: Leadership | None, deliver: Callable[[], tuple[int, int]], *, log: logging.Logger,
                 what: str) -> tuple[int, int]:  # fmt: skip
    """One round of an outbox's delivery loop, on the leader only (``leadership`` None: the only
    instance): ``deliver()``'s (delivered, failed), or (0, 0) when this instance does not lead or
    loses the lead in the round (a fenced transaction's NotLeader: logged, the next leader sends)."""
    if leadership is not None and not leadership.leading:
        return 0, 0
    try:
        return deliver()
    except NotLeader as exc:
        log.warning("%s round not written: %s", what, exc)
        return 0, 0
