"""Notifications against real peers on loopback: an HTTP server (HMAC verified) and an aiosmtpd server."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select

from alarms.errors import RuleError
from alarms.models import Alarm, MaintenanceWindow, Notification
from alarms.notify import Notifier, parse_config
from faultloop import clock
from faultloop.events import Event
from inventory.models import Device, Site

SECRET = "hook-secret-123"


class Hook:
    """A real HTTP server on a random 127.x address; answers with the queued status codes."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((f"127.{random.randint(40, 60)}.{random.randint(0, 250)}.9", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def start_smtp(handler, host: str = "127.0.0.1", **options) -> Controller:
    """A real aiosmtpd server on a free port of ``host``."""
    for _ in range(20):
        controller = Controller(handler, hostname=host, port=random.randint(20000, 60000), **options)
        try:
            controller.start()
            return controller
        except Exception:
            continue
    raise RuntimeError("no free port for the SMTP server")


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = start_smtp(box, f"127.{random.randint(40, 60)}.{random.randint(0, 250)}.25")
    yield box, controller.hostname, controller.port
    controller.stop()


def config(hook_url: str, **route_extra) -> str:
    route = {"name": "noc", "severities": ["critical", "major"], "channels": ["hook"], **route_extra}
    return json.dumps(
        {
            "channels": [
                {"name": "hook", "type": "webhook", "url": hook_url},
                {"name": "mail", "type": "email", "to": ["noc@example.net"]},
            ],
            "routes": [route],
        }
    )


def ev(event_type, device="r1", severity="critical", mo=""):
    return Event("poll", device, event_type, severity, clock.now(), managed_object=mo)


def make_notifier(runtime, engine, text):
    runtime.settings.alarm_webhook_secret = SecretStr(SECRET)
    notifier = Notifier(runtime, parse_config(text, file="notify.yaml"))
    engine.bus.subscribe("notifications", notifier.on_alarm_changes)
    return notifier


def test_webhook_is_signed_retried_with_backoff_and_delivered_once_accepted(runtime, engine, session, hook, frozen):
    notifier = make_notifier(runtime, engine, config(hook.url))
    engine.submit_events([ev("device_unreachable"), ev("config_changed", severity="warning")])
    engine.run_once()
    rows = session.scalars(select(Notification)).all()
    assert [(r.channel, r.reason) for r in rows] == [("hook", "raised")]  # the warning is not routed
    hook.statuses = [500]
    assert notifier.deliver_due() == (0, 1)
    (row,) = session.scalars(select(Notification)).all()
    session.refresh(row)
    assert (row.attempts, row.delivered_at, row.last_error) == (1, None, "HTTP 500")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=10)
    assert notifier.deliver_due() == (0, 0)  # not due yet: back-off
    frozen.advance(10)
    assert notifier.deliver_due() == (1, 0)
    assert notifier.deliver_due() == (0, 0)  # delivered once accepted
    assert len(hook.requests) == 2
    (h1, b1), (h2, b2) = hook.requests
    assert h1["x-faultloop-delivery"] == h2["x-faultloop-delivery"] == str(row.id)  # receivers dedupe on it
    expected = (
        "sha256="
        + hmac.new(SECRET.encode(), h2["x-faultloop-timestamp"].encode() + b"." + b2, hashlib.sha256).hexdigest()
    )
    assert h2["x-faultloop-signature"] == expected
    payload = json.loads(b2)
    assert payload["reason"] == "raised"
    assert (payload["alarm"]["alarm_type"], payload["alarm"]["device"], payload["alarm"]["severity"]) == (
        "device_down",
        "r1",
        "critical",
    )


def test_routing_by_severity_muted_alarms_and_clear(runtime, engine, session, hook, frozen):
    notifier = make_notifier(runtime, engine, config(hook.url))
    session.add(
        MaintenanceWindow(
            name="r2 work",
            starts_at=clock.now(),
            ends_at=clock.now() + timedelta(hours=1),
            devices=["r2"],
            sites=[],
            tags=[],
            interfaces=[],
            reason="",
            created_by="t",
            created_at=clock.now(),
        )
    )
    session.flush()
    engine.submit_events(
        [
            ev("config_changed", severity="warning"),  # warning: not routed
            ev("device_unreachable", device="r2"),  # in maintenance: muted, nobody told
            ev("linkDown", mo="interface:Gi0/1"),  # major: routed
        ]
    )
    engine.run_once()
    rows = session.scalars(select(Notification)).all()
    alarm_types = {session.get(Alarm, r.alarm_id).alarm_type for r in rows}
    assert alarm_types == {"link_down"}
    engine.submit_events(
        [
            ev("linkUp", severity="cleared", mo="interface:Gi0/1"),
            ev("device_reachable", device="r2", severity="cleared"),
        ]
    )
    engine.run_once()
    reasons = sorted(r.reason for r in session.scalars(select(Notification)))
    assert reasons == ["cleared", "raised"]  # r2's clear is not announced: its raise never was
    assert notifier.deliver_due() == (2, 0)


def test_email_over_real_smtp_routed_by_site(runtime, engine, session, smtp, hook, frozen):
    box, host, port = smtp
    runtime.settings.smtp_host, runtime.settings.smtp_port = host, port
    site = Site(name="pop1", description="", created_at=clock.now())
    session.add(site)
    session.flush()
    session.add(
        Device(
            hostname="pe7",
            address="127.0.0.7",
            role="edge",
            site_id=site.id,
            tags=[],
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    session.flush()
    notifier = make_notifier(
        runtime,
        engine,
        json.dumps(
            {
                "channels": [{"name": "mail", "type": "email", "to": ["noc@example.net", "oncall@example.net"]}],
                "routes": [{"name": "pop1", "sites": ["pop1"], "channels": ["mail"]}],
            }
        ),
    )
    engine.submit_events([ev("device_unreachable", device="pe7"), ev("device_unreachable", device="elsewhere")])
    engine.run_once()
    assert notifier.deliver_due() == (1, 0)
    ((sender, rcpts, content),) = box.messages
    assert rcpts == ["noc@example.net", "oncall@example.net"]
    text = content.decode()
    assert "Subject: [faultloop] CRITICAL device_down pe7  (raised)" in text
    assert "reduction_key: device_down:pe7:" in text


def test_renotify_and_escalation_intervals(runtime, engine, session, hook, frozen):
    notifier = make_notifier(
        runtime, engine, config(hook.url, renotify_s=600, escalate_after_s=900, escalate_to=["mail"])
    )
    engine.submit_events([ev("device_unreachable"), ev("device_unreachable", device="r3")])
    engine.run_once()
    r3 = session.scalar(select(Alarm).where(Alarm.device == "r3"))
    r3.acknowledged = True  # acknowledged alarms are neither re-notified nor escalated
    session.flush()

    def reasons():
        return sorted(
            (r.reason, r.channel) for r in session.scalars(select(Notification).where(Notification.alarm_id != r3.id))
        )

    frozen.advance(599)
    notifier.run_once()
    assert reasons() == [("raised", "hook")]
    frozen.advance(1)
    notifier.run_once()
    assert reasons() == [("raised", "hook"), ("renotify", "hook")]
    frozen.advance(300)
    notifier.run_once()
    assert reasons() == [("escalation", "mail"), ("raised", "hook"), ("renotify", "hook")]
    frozen.advance(300)
    notifier.run_once()
    assert reasons().count(("escalation", "mail")) == 1  # escalated once
    assert reasons().count(("renotify", "hook")) == 2
    assert (
        session.scalar(select(Notification.id).where(Notification.alarm_id == r3.id, Notification.reason != "raised"))
        is None
    )


@pytest.mark.parametrize(
    "text,where",
    [
        ('{"channels": [{"name": "h", "type": "webhook"}]}', "notify.yaml: rule 'h': field '(entry)': a webhook"),
        ('{"channels": [{"name": "h", "type": "pager", "url": "http://x"}]}', "notify.yaml: rule 'h': field 'type'"),
        ('{"channels": [{"name": "h", "type": "webhook", "url": "ftp://x"}]}', "field 'url'"),
        (
            '{"routes": [{"name": "r", "channels": ["nope"]}]}',
            "notify.yaml: rule 'r': field 'channels': unknown channel",
        ),
        ('{"routes": [{"name": "r", "channels": []}]}', "rule 'r': field 'channels'"),
        ('{"routes": [{"name": "r", "channels": ["x"], "renotify_s": 5}]}', "field 'renotify_s'"),
    ],
)
def test_bad_notification_config_names_file_entry_and_field(text, where):
    with pytest.raises(RuleError) as exc:
        parse_config(text, file="notify.yaml")
    assert where in str(exc.value)


class Authenticator:
    """Records every AUTH the server receives (what a listener on the path would see)."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bytes]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if isinstance(auth_data, LoginPassword):
            self.seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)


@pytest.fixture
def plain_smtp():
    """A real SMTP server without TLS that accepts AUTH in clear (a careless or hostile relay)."""
    box, auth = Mailbox(), Authenticator()
    controller = start_smtp(box, authenticator=auth, auth_require_tls=False)
    yield box, auth, controller.hostname, controller.port
    controller.stop()


ALARM_PAYLOAD = {
    "reason": "raised",
    "alarm": {"severity": "major", "alarm_type": "linkDown", "device": "r1", "managed_object": "interface:Gi0/1"},
}


def test_smtp_credentials_never_go_without_tls(plain_smtp):
    from alarms.notify import DeliveryError, EmailChannel

    box, auth, host, port = plain_smtp
    # asked for STARTTLS, the server offers none: no credentials, no mail
    channel = EmailChannel(host, port, "f@x", ["noc@x"], starttls=True, username="u", password="marker-pw-1")
    with pytest.raises(DeliveryError, match="offers no STARTTLS; credentials not sent"):
        channel.send(1, ALARM_PAYLOAD)
    # no STARTTLS configured: refused before connecting
    channel = EmailChannel(host, port, "f@x", ["noc@x"], starttls=False, username="u", password="marker-pw-1")
    with pytest.raises(DeliveryError, match="need STARTTLS"):
        channel.send(2, ALARM_PAYLOAD)
    assert auth.seen == [] and box.messages == []
    # only when explicitly allowed does the password cross in clear (and this server does record it)
    channel.allow_plaintext_auth = True
    channel.send(3, ALARM_PAYLOAD)
    assert auth.seen == [(b"u", b"marker-pw-1")] and len(box.messages) == 1


def test_settings_refuse_smtp_credentials_without_starttls():
    from faultloop.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as exc:
        load_settings(smtp_host="mail", smtp_username="u", smtp_password="marker-pw-1")
    assert "FAULTLOOP_SMTP_STARTTLS" in str(exc.value) and "marker-pw-1" not in str(exc.value)
    assert "FAULTLOOP_SETTINGS" not in str(exc.value)
    assert load_settings(smtp_host="mail", smtp_username="u", smtp_starttls=True).smtp_starttls
    assert load_settings(smtp_host="mail", smtp_username="u", smtp_allow_plaintext_auth=True).smtp_username == "u"


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faultloop test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp(tmp_path):
    """A real SMTP server that requires STARTTLS before AUTH, with a self-signed certificate."""
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    box, auth = Mailbox(), Authenticator()
    controller = start_smtp(box, authenticator=auth, tls_context=context, require_starttls=True, auth_require_tls=True)
    yield box, auth, controller.hostname, controller.port, cert_file
    controller.stop()


def test_starttls_verifies_the_server_certificate_before_sending_credentials(tls_smtp):
    from alarms.notify import DeliveryError, EmailChannel

    box, auth, host, port, cert_file = tls_smtp
    untrusted = EmailChannel(host, port, "f@x", ["noc@x"], starttls=True, username="u", password="marker-pw-2")
    with pytest.raises(DeliveryError, match="certificate not trusted.*credentials not sent"):
        untrusted.send(1, ALARM_PAYLOAD)
    assert auth.seen == [] and box.messages == []
    trusted = EmailChannel(host, port, "f@x", ["noc@x"], starttls=True, username="u", password="marker-pw-2",
                           ca_file=str(cert_file))  # fmt: skip
    trusted.send(2, ALARM_PAYLOAD)
    assert auth.seen == [(b"u", b"marker-pw-2")] and len(box.messages) == 1
