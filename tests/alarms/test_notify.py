"""Notifications against real peers on loopback: an HTTP server (HMAC verified) and an aiosmtpd server."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from alarms.errors import RuleError
from alarms.models import Alarm, MaintenanceWindow, Notification
from alarms.notify import Notifier, parse_config
from faultloop import clock
from faultloop.events import Event
from faultloop.notify import Message
from inventory.models import Device, Site
from tests.support import Hook, Mailbox, smtp_server, start_smtp

SECRET = "hook-secret-123"


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def smtp():
    with smtp_server() as server:
        yield server


def config(hook_url: str, **route_extra) -> str:
    route = {"name": "noc", "severities": ["critical", "major"], "channels": ["hook"], **route_extra}
    return json.dumps(
        {
            "channels": [
                {"name": "hook", "type": "webhook", "url": hook_url, "allow_private": True},
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
    engine.add_outbox("notifications", notifier.enqueue)
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
    assert "Subject: [faultloop] CRITICAL device_down pe7 (raised)" in text
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


def test_outbox_rows_commit_with_the_alarm_change_even_if_the_process_dies_before_publishing(
    runtime, engine, session, hook, frozen
):
    """The rows are written in the engine's own transaction: nothing after the commit is needed."""
    notifier = make_notifier(runtime, engine, config(hook.url))
    engine.bus.publish = lambda changes: None  # the process dies right after the commit
    engine.submit_events([ev("device_unreachable")])
    engine.run_once()
    (row,) = session.scalars(select(Notification)).all()
    assert (row.channel, row.reason, row.delivered_at) == ("hook", "raised", None)
    assert notifier.deliver_due() == (1, 0)  # the restarted delivery loop sends it


def test_a_row_that_can_never_be_sent_is_given_up_at_once_and_the_others_still_go(
    runtime, engine, session, hook, frozen
):
    from faultloop.metrics import REGISTRY

    notifier = make_notifier(runtime, engine, config(hook.url))
    engine.submit_events([ev("device_unreachable", device="r1"), ev("device_unreachable", device="r2")])
    engine.run_once()
    first, second = session.scalars(select(Notification).order_by(Notification.id)).all()
    first.channel = "retired"  # a channel removed from the routes file since the row was written
    session.commit()
    before = REGISTRY.get_sample_value(
        "faultloop_notifications_given_up_total", {"channel": "retired", "reason": "unsendable"}
    ) or 0
    assert notifier.deliver_due() == (1, 1)
    session.refresh(first)
    session.refresh(second)
    assert first.gave_up_at == clock.now() and first.attempts == 1
    assert first.last_error == "channel 'retired' is not configured"
    assert second.delivered_at is not None
    assert REGISTRY.get_sample_value(
        "faultloop_notifications_given_up_total", {"channel": "retired", "reason": "unsendable"}
    ) == before + 1
    frozen.advance(7200)
    assert notifier.deliver_due() == (0, 0)  # never tried again
    assert len(hook.requests) == 1


def test_attempts_run_out_then_the_row_is_given_up_visibly(runtime, engine, session, hook, frozen):
    from faultloop.metrics import REGISTRY

    runtime.settings.alarm_notify_max_attempts = 3
    notifier = make_notifier(runtime, engine, config(hook.url))
    engine.submit_events([ev("device_unreachable")])
    engine.run_once()
    before = REGISTRY.get_sample_value(
        "faultloop_notifications_given_up_total", {"channel": "hook", "reason": "attempts"}
    ) or 0
    hook.statuses = [503, 503, 503, 200]
    for _ in range(3):
        assert notifier.deliver_due() == (0, 1)
        frozen.advance(3600)
    (row,) = session.scalars(select(Notification)).all()
    session.refresh(row)
    assert (row.attempts, row.delivered_at, row.last_error) == (3, None, "HTTP 503")
    assert row.gave_up_at is not None
    assert notifier.deliver_due() == (0, 0)
    assert len(hook.requests) == 3
    assert REGISTRY.get_sample_value(
        "faultloop_notifications_given_up_total", {"channel": "hook", "reason": "attempts"}
    ) == before + 1


def test_crlf_from_a_trap_varbind_cannot_break_the_mail_header(runtime, engine, session, smtp, frozen):
    """A device-supplied managed object with CR/LF once made every attempt fail (and retry for ever)."""
    box, host, port = smtp
    runtime.settings.smtp_host, runtime.settings.smtp_port = host, port
    notifier = make_notifier(
        runtime,
        engine,
        json.dumps(
            {
                "channels": [{"name": "mail", "type": "email", "to": ["noc@example.net"]}],
                "routes": [{"name": "all", "channels": ["mail"]}],
            }
        ),
    )
    engine.submit_events([ev("linkDown", mo="interface:Gi0/1\r\nBcc: thief@example.org\r\n")])
    engine.run_once()
    assert notifier.deliver_due() == (1, 0)
    ((_sender, rcpts, content),) = box.messages
    assert rcpts == ["noc@example.net"]
    headers = content.decode().split("\r\n\r\n", 1)[0].replace("\r\n ", " ").split("\r\n")  # unfolded
    assert not [line for line in headers if line.lower().startswith("bcc")]
    (subject,) = [line for line in headers if line.startswith("Subject:")]
    assert subject == "Subject: [faultloop] MAJOR link_down r1 interface:Gi0/1 Bcc: thief@example.org (raised)"


def test_pagerduty_triggers_on_raise_and_resolves_on_clear_with_the_reduction_key(
    runtime, engine, session, hook, frozen
):
    hook.default = (202, {"status": "success", "message": "Event processed", "dedup_key": "x"})
    text = json.dumps({
        "channels": [{"name": "pd", "type": "pagerduty", "routing_key": "R0UTING", "url": hook.url,
                      "allow_private": True}],
        "routes": [{"name": "noc", "severities": ["critical"], "channels": ["pd"], "renotify_s": 600}],
    })  # fmt: skip
    notifier = make_notifier(runtime, engine, text)
    engine.submit_events([ev("device_unreachable")])
    engine.run_once()
    assert notifier.deliver_due() == (1, 0)
    frozen.advance(30)
    engine.submit_events([ev("device_reachable", severity="cleared")])
    engine.run_once()
    assert notifier.deliver_due() == (1, 0)
    trigger, resolve = hook.bodies()
    alarm = session.scalars(select(Alarm)).one()
    assert (trigger["event_action"], trigger["dedup_key"]) == ("trigger", alarm.reduction_key)
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "r1"
    assert resolve == {"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": alarm.reduction_key}


def test_a_loopback_webhook_needs_allow_private():
    text = json.dumps({"channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/h"}]})
    with pytest.raises(RuleError) as exc:
        parse_config(text, file="notify.yaml")
    assert str(exc.value) == (
        "notify.yaml: rule 'hook': field 'url': host 127.0.0.1 is a loopback address;"
        " set allow_private: true to allow it"
    )
    allowed = json.loads(text)
    allowed["channels"][0]["allow_private"] = True
    assert parse_config(json.dumps(allowed), file="notify.yaml").channels[0].allow_private


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


ALARM_MESSAGE = Message(
    title="MAJOR link_down r1 interface:Gi0/1 (raised)", severity="major", source="r1",
    facts={"device": "r1", "managed_object": "interface:Gi0/1"}, body={"reason": "raised"},
)  # fmt: skip


def test_smtp_credentials_never_go_without_tls(plain_smtp):
    from faultloop.notify import DeliveryError, EmailChannel

    box, auth, host, port = plain_smtp
    # asked for STARTTLS, the server offers none: no credentials, no mail
    channel = EmailChannel(host, port, "f@x", ["noc@x"], starttls=True, username="u", password="marker-pw-1")
    with pytest.raises(DeliveryError, match="offers no STARTTLS; credentials not sent"):
        channel.send(1, ALARM_MESSAGE)
    # no STARTTLS configured: refused before connecting
    channel = EmailChannel(host, port, "f@x", ["noc@x"], starttls=False, username="u", password="marker-pw-1")
    with pytest.raises(DeliveryError, match="need STARTTLS"):
        channel.send(2, ALARM_MESSAGE)
    assert auth.seen == [] and box.messages == []
    # only when explicitly allowed does the password cross in clear (and this server does record it)
    channel.allow_plaintext_auth = True
    channel.send(3, ALARM_MESSAGE)
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
    from faultloop.notify import DeliveryError, EmailChannel

    box, auth, host, port, cert_file = tls_smtp
    untrusted = EmailChannel(host, port, "f@x", ["noc@x"], starttls=True, username="u", password="marker-pw-2")
    with pytest.raises(DeliveryError, match="certificate not trusted.*credentials not sent"):
        untrusted.send(1, ALARM_MESSAGE)
    assert auth.seen == [] and box.messages == []
    trusted = EmailChannel(host, port, "f@x", ["noc@x"], starttls=True, username="u", password="marker-pw-2",
                           ca_file=str(cert_file))  # fmt: skip
    trusted.send(2, ALARM_MESSAGE)
    assert auth.seen == [(b"u", b"marker-pw-2")] and len(box.messages) == 1
