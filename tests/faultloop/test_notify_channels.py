"""The kernel's notification channels against real peers on loopback: a local HTTP server speaking
the Slack/Mattermost, Teams workflows and PagerDuty Events API v2 shapes, and URL checks at load."""

from __future__ import annotations

import json
import logging

import pytest

from faultloop.leader import NotLeader
from faultloop.notify import (
    ChannelSpec,
    DeliveryError,
    Message,
    NotifyConfigError,
    PagerDutyChannel,
    PermanentError,
    SlackChannel,
    TeamsChannel,
    check_url,
    leader_round,
    validate_entries,
)
from tests.support import Hook


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def message(**kw) -> Message:
    base = dict(title="CRITICAL device_down r1 <!channel>", severity="critical", source="r1",
                facts={"device": "r1", "state": "active"}, body={"x": 1}, dedup_key="device_down:r1",
                pd_action="trigger", kind="alarm")  # fmt: skip
    return Message(**{**base, **kw})


@pytest.mark.parametrize(
    "url,reason",
    [
        ("ftp://example.net/x", "http:// or https://"),
        ("http:///nohost", "with a host"),
        ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
        ("http://127.1/hook", "127.0.0.1 is a loopback address"),  # what the resolver makes of it
        ("http://2130706433/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]:8080/x", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/x", "127.0.0.1 is a loopback address"),
        ("http://localhost:8080/x", "localhost is a loopback name"),
        ("http://api.localhost/x", "loopback name"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://0.0.0.0:80/x", "unspecified"),
        ("https://user:pw@hooks.example.net/x", "credentials"),
    ],
)
def test_a_channel_url_that_is_not_http_or_points_at_this_host_is_refused(url, reason):
    with pytest.raises(ValueError) as exc:
        check_url(url, allow_private=False)
    assert reason in str(exc.value)
    assert "/hook" not in str(exc.value) and "meta-data" not in str(exc.value)  # the path (a token) is never echoed


def test_allow_private_admits_loopback_but_never_another_scheme():
    assert check_url("http://127.0.0.1:9/hook", allow_private=True) == "http://127.0.0.1:9/hook"
    assert check_url("http://169.254.1.1/x", allow_private=True) == "http://169.254.1.1/x"
    assert check_url("https://hooks.slack.com/services/T/B/x", allow_private=False)
    with pytest.raises(ValueError, match="http:// or https://"):
        check_url("file:///etc/passwd", allow_private=True)


@pytest.mark.parametrize(
    "entry,field,expected",
    [
        ({"name": "chat", "type": "slack", "url": "http://127.0.0.1/services/T0/B0/SECRETTOKEN"}, "url",
         "loopback address; set allow_private: true"),
        ({"name": "teams", "type": "teams"}, "(entry)", "a teams channel needs url"),
        ({"name": "pd", "type": "pagerduty"}, "(entry)", "needs routing_key"),
        ({"name": "pd", "type": "pagerduty", "routing_key": "k", "url": "gopher://x"}, "url", "http://"),
        ({"name": "mail", "type": "email", "to": ["not an address"]}, "(entry)", "expected an e-mail address"),
    ],
)  # fmt: skip
def test_bad_channel_entries_name_file_entry_and_field_and_never_the_token(entry, field, expected):
    with pytest.raises(NotifyConfigError) as exc:
        validate_entries(ChannelSpec, {"channels": [entry]}, "channels", file="notify.yaml")
    text = str(exc.value)
    assert text.startswith(f"notify.yaml: entry {entry['name']!r}: field {field!r}: ")
    assert expected in text
    assert "SECRETTOKEN" not in text


def test_the_routing_key_is_not_shown_by_the_parsed_channel():
    (spec,) = validate_entries(
        ChannelSpec, {"channels": [{"name": "pd", "type": "pagerduty", "routing_key": "R0UTINGKEY"}]}, "channels",
        file="n.yaml",
    )  # fmt: skip
    assert spec.url == "https://events.pagerduty.com/v2/enqueue"
    assert "R0UTINGKEY" not in repr(spec) and "R0UTINGKEY" not in str(spec.model_dump())


def test_slack_and_mattermost_get_text_with_mentions_made_inert(hook):
    hook.default = (200, None)
    SlackChannel(hook.url).send(1, message())
    (body,) = hook.bodies()
    assert set(body) == {"text"}
    assert body["text"].startswith("*CRITICAL device_down r1 &lt;!channel&gt;*\n")
    assert "*device*: r1" in body["text"]


def test_teams_workflows_webhook_gets_one_adaptive_card(hook):
    hook.default = (202, None)
    TeamsChannel(hook.url).send(1, message())
    (body,) = hook.bodies()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0]["text"] == "CRITICAL device_down r1 <!channel>"
    assert card["body"][1] == {"type": "FactSet", "facts": [{"title": "device", "value": "r1"},
                                                             {"title": "state", "value": "active"}]}  # fmt: skip


def test_pagerduty_events_v2_trigger_acknowledge_resolve_share_the_dedup_key(hook):
    ok = {"status": "success", "message": "Event processed", "dedup_key": "device_down:r1"}
    hook.default = (202, ok)
    pd = PagerDutyChannel("R0UTING", url=hook.url)
    for action in ("trigger", "acknowledge", "resolve"):
        pd.send(1, message(pd_action=action))
    trigger, ack, resolve = hook.bodies()
    assert trigger == {
        "routing_key": "R0UTING", "event_action": "trigger", "dedup_key": "device_down:r1",
        "payload": {"summary": "CRITICAL device_down r1 <!channel>", "source": "r1", "severity": "critical",
                    "class": "alarm", "custom_details": {"device": "r1", "state": "active"}},
    }  # fmt: skip
    assert ack == {"routing_key": "R0UTING", "event_action": "acknowledge", "dedup_key": "device_down:r1"}
    assert resolve == {"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": "device_down:r1"}
    assert not pd.accepts(message(pd_action=None))


def test_pagerduty_refusals_are_permanent_throttling_and_outages_are_retried(hook):
    pd = PagerDutyChannel("R0UTING", url=hook.url)
    hook.replies = [(400, {"status": "invalid event", "errors": ["'payload.summary' is missing"]}),
                    (429, None), (503, None), (202, {"status": "oops"})]  # fmt: skip
    with pytest.raises(PermanentError, match="HTTP 400"):
        pd.send(1, message())
    with pytest.raises(DeliveryError, match="HTTP 429") as throttled:
        pd.send(1, message())
    assert not isinstance(throttled.value, PermanentError)
    with pytest.raises(DeliveryError, match="HTTP 503"):
        pd.send(1, message())
    with pytest.raises(DeliveryError, match="status 'oops'"):
        pd.send(1, message())
    assert len(hook.requests) == 4
    assert json.loads(hook.requests[0][1])["routing_key"] == "R0UTING"


def test_a_delivery_round_runs_on_the_leader_only_and_a_lost_lead_is_logged(caplog):
    class Standing:
        def __init__(self, leading: bool) -> None:
            self.leading = leading

    log = logging.getLogger("faultloop.test.outbox")
    rounds: list[str] = []

    def deliver() -> tuple[int, int]:
        rounds.append("ran")
        return 3, 1

    assert leader_round(None, deliver, log=log, what="test") == (3, 1)  # the only instance
    assert leader_round(Standing(True), deliver, log=log, what="test") == (3, 1)  # type: ignore[arg-type]
    assert leader_round(Standing(False), deliver, log=log, what="test") == (0, 0)  # type: ignore[arg-type]
    assert rounds == ["ran", "ran"]  # a follower does not even read the outbox

    def deposed() -> tuple[int, int]:
        raise NotLeader("leadership lost: epoch 2, this instance had 1")

    with caplog.at_level(logging.WARNING, logger="faultloop.test.outbox"):
        assert leader_round(Standing(True), deposed, log=log, what="test") == (0, 0)  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == ["test round not written: leadership lost: epoch 2, this "
                                                        "instance had 1"]  # fmt: skip
