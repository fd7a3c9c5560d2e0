"""Ticket notifications against real peers on loopback: local HTTP servers speaking the plain
webhook, Slack/Mattermost and PagerDuty Events API v2 shapes, and an aiosmtpd mailbox."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from email import message_from_bytes

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from alarms import queries as alarm_queries
from faultloop import clock
from faultloop.errors import InvalidInput
from faultloop.notify import NotifyConfigError
from tests.support import Hook, smtp_server
from ticketing import dispatch, service
from ticketing.jobs import TicketingService
from ticketing.models import TicketNotification
from ticketing.notify import TicketNotifier, parse_config

from .conftest import make_alarm, make_device, make_technician, make_user

PD_OK = {"status": "success", "message": "Event processed", "dedup_key": "ignored"}
SECRET = "tech-hook-secret"


@pytest.fixture
def hooks():
    made = {name: Hook() for name in ("chat", "pd", "tech")}
    made["pd"].default = (202, PD_OK)
    yield made
    for h in made.values():
        h.close()


def notify_file(hooks, **route) -> str:
    return json.dumps({
        "channels": [
            {"name": "chat", "type": "mattermost", "url": hooks["chat"].url, "allow_private": True},
            {"name": "pd", "type": "pagerduty", "routing_key": "R0UTINGKEY", "url": hooks["pd"].url,
             "allow_private": True},
        ],
        "routes": [],
        "ticket_routes": [{"name": "noc", "channels": ["chat", "pd"], **route}],
    })  # fmt: skip


@pytest.fixture
def notifier(runtime, hooks):
    runtime.settings.alarm_webhook_secret = SecretStr(SECRET)
    runtime.settings.technician_notify_allow_private = True
    n = TicketNotifier(runtime, parse_config(notify_file(hooks), file="notify.yaml"))
    service.OUTBOX["notifications"] = n.enqueue
    yield n
    service.OUTBOX.pop("notifications", None)


def rows(session):
    return session.scalars(select(TicketNotification).order_by(TicketNotification.id)).all()


def act(session, policy, ticket_id, action, actor, **data):
    return service.transition(session, policy=policy, ticket_id=ticket_id, action=action, actor=actor, data=data,
                              now=clock.now())  # fmt: skip


def test_a_ticket_lifecycle_reaches_chat_pagerduty_and_the_dispatched_technician(
    runtime, session, frozen, policy, hooks, notifier
):
    make_device(session, "agg1", role="distribution", site="pop-7")
    tech_user = make_technician(session, "tech-n", sites=["pop-7"])
    dispatch.upsert_profile(session, username="tech-n", skills=["fiber", "router"], sites=["pop-7"],
                            notify_to=hooks["tech"].url, allow_private=True)  # fmt: skip
    noc = service.Actor.of(make_user(session, "noc-n", "noc"))
    tech = service.Actor.of(tech_user)
    alarm = make_alarm(session, device="agg1", key="linkDown:agg1:Gi0/1")
    record = alarm_queries.alarm(session, alarm.id)
    assert record is not None
    ticket = service.open_for_alarm(session, policy=policy, alarm=record, now=clock.now())
    assert ticket is not None
    act(session, policy, ticket.id, "acknowledge", noc)
    act(session, policy, ticket.id, "diagnose", noc, diagnosis="fiber cut", fault_category="transmission")
    act(session, policy, ticket.id, "dispatch", noc)
    act(session, policy, ticket.id, "accept", tech)
    act(session, policy, ticket.id, "en_route", tech, location_note="leaving depot")  # no event
    act(session, policy, ticket.id, "on_site", tech)
    act(session, policy, ticket.id, "resolve", tech, cause_category="fiber_cut", action_taken="spliced")
    act(session, policy, ticket.id, "verify", noc)
    act(session, policy, ticket.id, "close", noc, rating=5)
    session.commit()

    chat = [r.reason for r in rows(session) if r.channel == "chat"]
    assert chat == ["created", "acknowledged", "dispatched", "accepted", "resolved", "verified", "closed"]
    assert [r.reason for r in rows(session) if r.channel == "pd"] == [
        "created", "acknowledged", "accepted", "resolved", "closed"]  # fmt: skip
    assert [(r.reason, r.recipient_id) for r in rows(session) if r.channel == "technician"] == [
        ("dispatched", tech_user.id)]  # fmt: skip
    assert notifier.deliver_due() == (13, 0)
    assert notifier.deliver_due() == (0, 0)

    pd = hooks["pd"].bodies()
    assert [(b["event_action"], b["dedup_key"]) for b in pd] == [
        ("trigger", "linkDown:agg1:Gi0/1"), ("acknowledge", "linkDown:agg1:Gi0/1"),
        ("acknowledge", "linkDown:agg1:Gi0/1"), ("resolve", "linkDown:agg1:Gi0/1"),
        ("resolve", "linkDown:agg1:Gi0/1"),
    ]  # fmt: skip
    assert pd[0]["routing_key"] == "R0UTINGKEY"
    assert pd[0]["payload"]["summary"].startswith(f"P3 ticket {ticket.id} created: linkDown on agg1")
    assert (pd[0]["payload"]["source"], pd[0]["payload"]["severity"], pd[0]["payload"]["class"]) == (
        "agg1", "error", "ticket")  # fmt: skip
    texts = [b["text"] for b in hooks["chat"].bodies()]
    assert texts[2].startswith(f"*P3 ticket {ticket.id} dispatched: linkDown on agg1")
    assert "*assignee*: tech-n" in texts[2]

    ((headers, body),) = hooks["tech"].requests
    sent = json.loads(body)
    assert (sent["reason"], sent["ticket"]["id"], sent["ticket"]["assignee"]) == ("dispatched", ticket.id, "tech-n")
    expected = "sha256=" + hmac.new(SECRET.encode(), headers["x-faultloop-timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()  # fmt: skip
    assert headers["x-faultloop-signature"] == expected


def test_the_outbox_rows_commit_or_roll_back_with_the_ticket_change(runtime, session, frozen, policy, notifier):
    noc = service.Actor.of(make_user(session, "noc-tx", "noc"))
    session.commit()
    service.create_manual(session, policy=policy, actor=noc, title="rolled back", priority="P2", now=clock.now())
    session.rollback()
    assert rows(session) == []  # the change did not commit: nobody is told of it
    t = service.create_manual(session, policy=policy, actor=noc, title="kept", priority="P2", now=clock.now())
    session.commit()
    assert [(r.ticket_id, r.channel, r.reason, r.delivered_at) for r in rows(session)] == [
        (t.id, "chat", "created", None), (t.id, "pd", "created", None)]  # fmt: skip
    # PagerDuty keys a manual ticket by its id
    assert notifier.deliver_due() == (2, 0)


def test_sla_warning_and_breach_are_routed_by_event_and_priority(runtime, session, frozen, policy, hooks):
    config = parse_config(notify_file(hooks, events=["sla_warning", "sla_breach"], priorities=["P1"]), file="n.yaml")
    notifier = TicketNotifier(runtime, config)
    service.OUTBOX["notifications"] = notifier.enqueue
    try:
        noc = service.Actor.of(make_user(session, "noc-sla-n", "noc"))
        p1 = service.create_manual(session, policy=policy, actor=noc, title="p1", priority="P1", now=clock.now())
        service.create_manual(session, policy=policy, actor=noc, title="p4", priority="P4", now=clock.now())
        session.commit()
        jobs = TicketingService(runtime, policy=policy)
        frozen.advance(0.8 * 900)
        jobs.run_once()
        frozen.advance(180)
        jobs.run_once()
    finally:
        service.OUTBOX.pop("notifications", None)
    assert [(r.ticket_id, r.channel, r.reason) for r in rows(session)] == [
        (p1.id, "chat", "sla_warning"), (p1.id, "chat", "sla_breach")]  # PagerDuty has nothing to do with these
    assert notifier.deliver_due() == (2, 0)
    warning, breach = hooks["chat"].bodies()
    assert "sla warning" in warning["text"] and "*detail.clock*: response" in warning["text"]
    assert "sla breach" in breach["text"] and "*detail.elapsed_s*: 900.0" in breach["text"]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up_visibly(runtime, session, frozen, policy, hooks,
                                                                           notifier):  # fmt: skip
    runtime.settings.alarm_notify_max_attempts = 2
    noc = service.Actor.of(make_user(session, "noc-retry", "noc"))
    service.create_manual(session, policy=policy, actor=noc, title="x", priority="P2", now=clock.now())
    session.commit()
    hooks["chat"].statuses = [503, 503]
    assert notifier.deliver_due() == (1, 1)  # PagerDuty took its row, the chat server did not
    chat = next(r for r in rows(session) if r.channel == "chat")
    session.refresh(chat)
    retry_at = clock.now() + timedelta(seconds=10)
    assert (chat.attempts, chat.last_error, chat.next_attempt_at) == (1, "HTTP 503", retry_at)
    assert notifier.deliver_due() == (0, 0)  # not due yet
    frozen.advance(10)
    assert notifier.deliver_due() == (0, 1)
    session.refresh(chat)
    assert (chat.attempts, chat.gave_up_at, chat.delivered_at) == (2, clock.now(), None)
    assert len(hooks["chat"].requests) == 2


def test_a_technician_is_mailed_a_dispatch_to_them(runtime, session, frozen, policy, notifier):
    with smtp_server() as (box, host, port):
        runtime.settings.smtp_host, runtime.settings.smtp_port = host, port
        make_technician(session, "tech-mail", team="north")
        dispatch.upsert_profile(session, username="tech-mail", skills=["fiber"], sites=["*"], team="north",
                                notify_to="tech-mail@example.net")  # fmt: skip
        make_technician(session, "tech-quiet")  # no address: nobody to tell
        noc = service.Actor.of(make_user(session, "noc-mail", "noc"))
        t = service.create_manual(session, policy=policy, actor=noc, title="cabinet\r\nBcc: x@evil", now=clock.now())
        act(session, policy, t.id, "acknowledge", noc)
        act(session, policy, t.id, "diagnose", noc, diagnosis="d", fault_category="power")
        act(session, policy, t.id, "dispatch", noc, technician="tech-mail")
        act(session, policy, t.id, "reassign", noc, technician="tech-quiet")
        session.commit()
        assert [r.reason for r in rows(session) if r.channel == "technician"] == ["dispatched"]
        notifier.deliver_due()
        ((sender, rcpts, raw),) = box.messages
    assert rcpts == ["tech-mail@example.net"]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == f"[faultloop] {t.priority} ticket {t.id} dispatched: cabinet Bcc: x@evil"
    assert mail["Bcc"] is None
    assert "assignee: tech-mail" in mail.get_payload()


def test_a_technician_webhook_on_loopback_needs_the_setting(runtime, session, client, auth):
    make_user(session, "tech-url", "technician")
    session.commit()
    url = "http://127.0.0.1:9/hooks/SECRETTOKEN"
    with pytest.raises(InvalidInput) as exc:
        dispatch.upsert_profile(session, username="tech-url", skills=[], sites=["*"], notify_to=url)
    assert str(exc.value) == "notify_to: host 127.0.0.1 is a loopback address; set allow_private: true to allow it"
    assert exc.value.field == "notify_to"
    with pytest.raises(InvalidInput, match="notify_to: expected an http:// or https:// URL"):
        dispatch.upsert_profile(session, username="tech-url", skills=[], sites=["*"], notify_to="ftp://h/x")
    with pytest.raises(InvalidInput, match="notify_to: expected an e-mail address"):
        dispatch.upsert_profile(session, username="tech-url", skills=[], sites=["*"], notify_to="nobody")
    session.rollback()
    assert dispatch.profile_of(session, session.scalar(select(dispatch.User.id).where(
        dispatch.User.username == "tech-url"))) is None  # nothing partially written  # fmt: skip

    headers = auth("admin")
    refused = client.put("/api/v1/technicians/tech-url", json={"sites": ["*"], "notify_to": url}, headers=headers)
    assert refused.status_code == 422
    assert "loopback" in refused.text and "SECRETTOKEN" not in refused.text
    runtime.settings.technician_notify_allow_private = True
    ok = client.put("/api/v1/technicians/tech-url", json={"sites": ["*"], "notify_to": url}, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["notify_to"] == "http://127.0.0.1/…"  # the token in the path is never shown
    listed = client.get("/api/v1/technicians", headers=headers)
    assert "SECRETTOKEN" not in listed.text
    # a PUT without notify_to keeps the stored address
    assert client.put("/api/v1/technicians/tech-url", json={"sites": ["*"]}, headers=headers).json()[
        "notify_to"] == "http://127.0.0.1/…"  # fmt: skip


@pytest.mark.parametrize(
    "doc,where",
    [
        ({"ticket_routes": [{"name": "t", "channels": ["nope"]}]},
         "n.yaml: entry 't': field 'channels': unknown channel"),
        ({"ticket_routes": [{"name": "t", "channels": ["c"], "events": ["exploded"]}]}, "entry 't': field 'events.0'"),
        ({"ticket_routes": [{"name": "t", "channels": ["c"], "priorities": ["P9"]}]}, "field 'priorities.0'"),
        ({"ticket_route": []}, "n.yaml: field 'ticket_route': unknown section"),
        ({"channels": [{"name": "c", "type": "teams", "url": "http://169.254.169.254/x"}]},
         "entry 'c': field 'url': host 169.254.169.254 is a link-local address"),
    ],
)  # fmt: skip
def test_bad_ticket_routes_name_file_entry_and_field(doc, where):
    doc.setdefault("channels", [{"name": "c", "type": "slack", "url": "https://hooks.example.net/T/B/x"}])
    with pytest.raises(NotifyConfigError) as exc:
        parse_config(json.dumps(doc), file="n.yaml")
    assert where in str(exc.value)


def test_only_the_leader_delivers(runtime, session, frozen, policy, hooks, notifier):
    class Follower:
        leading = False

    noc = service.Actor.of(make_user(session, "noc-lead", "noc"))
    service.create_manual(session, policy=policy, actor=noc, title="x", priority="P2", now=clock.now())
    session.commit()
    follower = TicketNotifier(runtime, notifier.config, leadership=Follower())  # type: ignore[arg-type]
    assert follower.run_once() == (0, 0)
    assert hooks["chat"].requests == [] and hooks["pd"].requests == []
    assert notifier.run_once() == (2, 0)
