"""`faultloop ticket list|show|transition` and `faultloop technician add`, as subprocesses on a SQLite file."""

from __future__ import annotations

import json

from sqlalchemy import select

from faultloop import clock
from faultloop.db import make_engine, make_sessionmaker, transaction
from ticketing import service
from ticketing.models import TicketNotification
from ticketing.policy import load_policy

from ..faultloop.test_cli import env, run  # noqa: F401 - the shared CLI fixture and runner


def test_ticket_and_technician_commands(env, tmp_path):  # noqa: F811
    run(["user", "add", "tom", "--role", "technician", "--no-password"], env)
    done = run(["technician", "add", "tom", "--skills", "fiber,router", "--sites", "pop-1", "--tier", "2"], env)
    assert done.stdout.strip() == "technician tom: skills fiber,router, sites pop-1, tier 2"
    bad = run(["technician", "add", "nobody"], env, check=False)
    assert bad.returncode == 2 and "user 'nobody' not found" in bad.stderr

    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'faultloop.db'}")
    with transaction(make_sessionmaker(engine)) as session:
        t = service.create_manual(session, policy=load_policy(), actor=service.SYSTEM, title="fiber cut <b>x</b>",
                                  now=clock.now())  # fmt: skip
        tid = t.id
    engine.dispose()

    listed = json.loads(run(["ticket", "list", "--json"], env).stdout)
    assert [(t["id"], t["state"], t["title"]) for t in listed] == [(tid, "new", "fiber cut <b>x</b>")]
    moved = run(["ticket", "transition", str(tid), "acknowledge", "--version", "1"], env)
    assert moved.stdout.strip() == f"ticket {tid}: acknowledge -> acknowledged (version 2)"
    refused = run(["ticket", "transition", str(tid), "resolve"], env, check=False)
    assert refused.returncode == 2
    assert "cannot resolve a ticket in state 'acknowledged'; allowed: diagnose, cancel" in " ".join(
        refused.stderr.split()
    )
    stale = run(["ticket", "transition", str(tid), "cancel", "--set", "reason=dup", "--version", "1"], env, check=False)
    assert stale.returncode == 2 and "is at version 2, not 1" in " ".join(stale.stderr.split())
    run(["ticket", "transition", str(tid), "cancel", "--set", "reason=duplicate of 3"], env)
    shown = json.loads(run(["ticket", "show", str(tid), "--json"], env).stdout)
    assert shown["state"] == "cancelled" and shown["cancel_reason"] == "duplicate of 3"
    assert [(e["action"], e["actor"]) for e in shown["timeline"]] == [
        ("create", "system"), ("acknowledge", "cli"), ("cancel", "cli")]  # fmt: skip
    assert "fiber cut" in run(["ticket", "list"], env).stdout


def test_a_cli_transition_writes_its_notifications_and_a_bad_notify_file_is_one_line(env, tmp_path):  # noqa: F811
    notify = tmp_path / "notify.yaml"
    notify.write_text(
        "channels: [{name: chat, type: slack, url: 'https://hooks.example.net/services/T/B/SECRETTOKEN'}]\n"
        "ticket_routes: [{name: noc, events: [acknowledged], channels: [chat]}]\n"
    )
    env = {**env, "FAULTLOOP_ALARM_NOTIFY_FILE": str(notify)}
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'faultloop.db'}")
    with transaction(make_sessionmaker(engine)) as session:
        tid = service.create_manual(session, policy=load_policy(), actor=service.SYSTEM, title="t",
                                    now=clock.now()).id  # fmt: skip
    run(["ticket", "transition", str(tid), "acknowledge"], env)
    with transaction(make_sessionmaker(engine)) as session:
        rows = session.execute(select(TicketNotification.channel, TicketNotification.reason)).all()
    assert [tuple(r) for r in rows] == [("chat", "acknowledged")]

    notify.write_text("channels: [{name: chat, type: slack, url: 'http://127.0.0.1:9/services/T/B/SECRETTOKEN'}]\n")
    bad = run(["ticket", "transition", str(tid), "diagnose"], env, check=False)
    engine.dispose()
    assert bad.returncode == 2
    line = " ".join(bad.stderr.split())
    assert f"{notify}: entry 'chat': field 'url': host 127.0.0.1 is a loopback address" in line
    assert "SECRETTOKEN" not in bad.stderr and "Traceback" not in bad.stderr
