"""Central HA with real processes: two or three `faultloop serve --role central` on one scratch
PostgreSQL database, the live stream fanned out over the real NATS server.

- kill -9 of the leader: another instance leads within 15 s; one active alarm per key and one
  open ticket per root cause, before and after; the follower's dashboards saw the leader's alarms.
- a stale leader (SIGSTOP, another takes over, SIGCONT): it does not lead again, the new leader
  keeps its epoch, and the invariants still hold.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from alarms.models import Alarm, EventRecord
from faultloop.accounts import service as accounts
from faultloop.db import make_engine, make_sessionmaker, transaction
from tests.pgdb import needs_postgresql, scratch_database
from ticketing.models import Ticket
from ticketing.policy import OPEN_STATES

pytestmark = [pytest.mark.slow, needs_postgresql]

LEASE_S = 3
FAILOVER_S = 15  # the bound


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(condition, what, deadline_s=60.0):
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        time.sleep(0.1)


class Central:
    """One `faultloop serve --role central` process; its output goes to a file (never a full pipe)."""

    def __init__(self, name: str, env: dict[str, str], tmp: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faultloop.cmd", "serve", "--role", "central", "--port", str(self.port)],
                env={**env, "FAULTLOOP_DATA_DIR": str(tmp / f"var-{name}")},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()

    def health(self) -> dict | None:
        try:
            r = httpx.get(f"{self.base}/healthz", timeout=2)
        except httpx.TransportError:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.output()}"
            return None
        return r.json() if r.status_code == 200 else None

    def wait_up(self) -> dict:
        return until(self.health, f"{self.name} answers /healthz", 90)

    def leading(self) -> bool:
        health = self.health()
        return bool(health and health["leader"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process must wake to stop
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SseListener:
    """A dashboard tab: GET /api/v1/alarms/stream on one instance, lines collected in a thread."""

    def __init__(self, central: Central, token: str) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(central, token), daemon=True)
        self._thread.start()

    def _run(self, central: Central, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.stream("GET", f"{central.base}/api/v1/alarms/stream", headers=headers, timeout=300) as r:
                for line in r.iter_lines():
                    self.lines.append(line)
        except httpx.TransportError:
            pass  # the instance stopped: the tab loses its stream

    def devices(self) -> set[str]:
        import json

        return {json.loads(line[5:])["device"] for line in self.lines if line.startswith("data:")}


def post_events(central: Central, token: str, devices: list[str]) -> None:
    body = {"events": [{"device": d, "event_type": "device_unreachable", "severity": "critical"} for d in devices]}
    r = httpx.post(f"{central.base}/api/v1/events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text


def invariants(sessions) -> tuple[int, int, int]:
    """(active alarm keys, open ticket root keys, unprocessed events); asserts one of each per key."""
    with transaction(sessions) as session:
        active = session.execute(
            select(Alarm.reduction_key, func.count()).where(Alarm.state == "active").group_by(Alarm.reduction_key)
        ).all()
        assert all(n == 1 for _key, n in active), active  # one active alarm per key
        tickets = session.execute(
            select(Ticket.root_key, func.count()).where(Ticket.state.in_(OPEN_STATES)).group_by(Ticket.root_key)
        ).all()
        assert all(n == 1 for _key, n in tickets), tickets  # one open ticket per root cause
        pending = session.scalar(select(func.count()).where(EventRecord.processed.is_(False)))
        return len(active), len(tickets), int(pending or 0)


def settled(sessions, keys: int):
    def check() -> bool:
        return invariants(sessions) == (keys, keys, 0)

    return check


@contextmanager
def cluster_env(url: str, sessions, tmp_path: Path, **extra: str) -> Iterator[tuple[Callable[[str], Central], str]]:
    """(start(name) -> a running central on ``url``, an API token of a NOC user); every central
    started is stopped at the end, and none may have logged a traceback. ``extra``: more (or
    other) FAULTLOOP_* settings for every central."""
    with transaction(sessions) as session:
        user = accounts.create_user(session, username="noc1", role="noc", password=None, actor="test")
        _row, token = accounts.create_token(session, user=user, name="test", ttl_days=1, actor="test")
    policy = yaml.safe_load((Path("ticketing/data/policy.yaml")).read_text())
    policy["open"]["min_active_s"] = 0  # a ticket at once, not after a minute
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    env.update(
        FAULTLOOP_DATABASE_URL=url,
        FAULTLOOP_CONFIG=str(tmp_path / "none.toml"),
        FAULTLOOP_SECRET_KEY=Fernet.generate_key().decode(),
        FAULTLOOP_LEADER_LEASE_S=str(LEASE_S),
        FAULTLOOP_ALARM_TICK_S="0.2",
        FAULTLOOP_TICKET_TICK_S="0.5",
        FAULTLOOP_TICKET_POLICY_FILE=str(policy_file),
        FAULTLOOP_NATS_URL="nats://127.0.0.1:4222",
        COLUMNS="200",
    )
    env.update(extra)
    started: list[Central] = []

    def start(name: str) -> Central:
        central = Central(name, env, tmp_path)
        started.append(central)
        return central

    try:
        yield start, token
    finally:
        for central in started:
            central.stop()
    for central in started:
        assert "Traceback" not in central.output(), central.output()


@pytest.fixture
def cluster(tmp_path):
    with scratch_database() as url:
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            with cluster_env(url, sessions, tmp_path) as (start, token):
                yield start, token, sessions, engine
        finally:
            engine.dispose()


def epoch(engine) -> tuple[int, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT epoch, holder FROM leader_epochs WHERE name = 'central'")).one())


def test_kill_9_of_the_leader_then_a_stale_leader_wakes_up(cluster):
    start, token, sessions, engine = cluster
    a, b = start("a"), start("b")
    a.wait_up(), b.wait_up()
    until(lambda: a.leading() != b.leading(), "exactly one of two centrals leads")
    leader, follower = (a, b) if a.leading() else (b, a)
    assert follower.health() == {"status": "ok", "role": "central", "election": "postgresql", "leader": False,
                                 "epoch": None}  # fmt: skip

    # work arrives through the follower's API; the leader's engine and ticketing handle it
    tab = SseListener(follower, token)
    until(lambda: ": connected" in tab.lines, "the follower's live stream is open", 10)
    first = [f"r{i}" for i in range(10)]
    post_events(follower, token, first)
    until(settled(sessions, 10), "10 alarms, 10 tickets, nothing pending")
    # the follower runs no engine: its dashboard saw the leader's alarms through NATS
    until(lambda: set(first) <= tab.devices(), "the follower's stream shows the leader's alarms", 15)

    # kill -9 of the leader: the follower leads within 15 s
    leader.proc.kill()
    killed = time.monotonic()
    leader.proc.wait()
    until(follower.leading, "the follower takes over after kill -9", FAILOVER_S)
    print(f"failover after kill -9: {time.monotonic() - killed:.1f} s")
    post_events(follower, token, first + [f"r{i}" for i in range(10, 15)])  # repeats count, new keys raise
    until(settled(sessions, 15), "15 alarms, 15 tickets after the failover")
    with transaction(sessions) as session:
        assert session.scalar(select(func.sum(Alarm.count)).where(Alarm.state == "active")) == 25

    # a stale leader: the leader is paused, another takes over, the old one wakes up
    stale, c = follower, start("c")
    c.wait_up()
    assert not c.leading()
    os.kill(stale.proc.pid, signal.SIGSTOP)
    paused = time.monotonic()
    until(c.leading, "c takes over from the paused leader", FAILOVER_S)
    print(f"failover after SIGSTOP: {time.monotonic() - paused:.1f} s")
    new_epoch = epoch(engine)
    assert new_epoch[1].endswith(f":{c.proc.pid}")
    post_events(c, token, [f"r{i}" for i in range(15, 20)])
    until(settled(sessions, 20), "20 alarms, 20 tickets under the new leader")
    os.kill(stale.proc.pid, signal.SIGCONT)
    until(lambda: stale.health() == {"status": "ok", "role": "central", "election": "postgresql", "leader": False,
                                     "epoch": None}, "the woken leader knows it does not lead", 30)  # fmt: skip
    post_events(stale, token, [f"r{i}" for i in range(20, 25)])  # through the woken instance's API
    until(settled(sessions, 25), "25 alarms, 25 tickets, by the new leader")
    assert epoch(engine) == new_epoch and c.leading()  # the woken one did not take over again
    woke = stale.output()
    assert "no longer leads" in woke.split("leads the singleton loops")[-1]  # it noticed, and led no more
    print("\n".join(line for line in woke.splitlines() if "faultloop.leader" in line or "not written" in line))
    with transaction(sessions) as session:
        assert session.scalar(select(func.sum(Alarm.count)).where(Alarm.state == "active")) == 35
