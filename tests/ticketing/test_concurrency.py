"""Races against the real HTTP server (uvicorn on a random loopback address) and the real database
(SQLite file in WAL mode, PostgreSQL): 50 concurrent updates holding the same version -> exactly one
wins, the rest get 409; 100 concurrent retries with one Idempotency-Key -> one effect."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from sqlalchemy import delete, func, select

from api.main import create_api
from faultloop.accounts import service as accounts
from faultloop.accounts.models import User
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.runtime import Runtime
from ticketing.models import Ticket, TicketEvent

THREADS = 50


class Server:
    def __init__(self, app) -> None:
        self.host = f"127.{random.randint(60, 90)}.{random.randint(0, 250)}.{random.randint(1, 250)}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=0, log_level="warning", workers=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:  # start-up readiness, not a race: the assertions never depend on timing
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def live(db_engine, settings, vault) -> Iterator[tuple[str, dict[str, str], Runtime]]:
    """A live API on committed data; everything made here is deleted afterwards."""
    # a pool as large as the number of concurrent requests: FastAPI runs the session dependency and the
    # endpoint on separate threadpool threads, so more requests than pooled connections can starve each other
    engine = make_engine(db_engine.url.render_as_string(hide_password=False), pool_size=THREADS, max_overflow=5)
    rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
    name = f"noc-{uuid.uuid4().hex[:8]}"
    with transaction(rt.sessions) as s:
        user = accounts.create_user(s, username=name, role="noc", password=None, actor="test")
        _row, token = accounts.create_token(s, user=user, name="t", ttl_days=1, actor="test")
    try:
        with Server(create_api(rt)) as url:
            yield url, {"Authorization": f"Bearer {token}"}, rt
    finally:
        with transaction(rt.sessions) as s:
            mine = list(s.scalars(select(Ticket.id).where(Ticket.created_by == name)))
            s.execute(
                delete(TicketEvent).where(TicketEvent.ticket_id.in_(mine)).execution_options(synchronize_session=False)
            )
            s.execute(delete(Ticket).where(Ticket.id.in_(mine)))
            s.execute(delete(User).where(User.username == name))
        engine.dispose()


def _fire(n: int, request) -> list[httpx.Response]:
    barrier = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            return request(c, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_50_concurrent_updates_with_the_same_version_exactly_one_wins(live):
    url, headers, rt = live
    with httpx.Client(timeout=30) as c:
        created = c.post(f"{url}/api/v1/tickets", json={"title": "race"}, headers=headers)
        assert created.status_code == 201, created.text
        tid, etag = created.json()["id"], created.headers["ETag"]

    def update(c: httpx.Client, i: int) -> httpx.Response:
        return c.post(f"{url}/api/v1/tickets/{tid}/transitions",
                      json={"action": "acknowledge"}, headers={**headers, "If-Match": etag})  # fmt: skip

    responses = _fire(THREADS, update)
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(409) == 49, codes
    for r in responses:
        if r.status_code == 409:
            assert "reload it and retry" in r.json()["detail"] or r.json().get("allowed_actions") is not None
    with transaction(rt.sessions) as s:
        t = s.get(Ticket, tid)
        assert t is not None and (t.state, t.version) == ("acknowledged", 2)
        acks = s.scalar(
            select(func.count())
            .select_from(TicketEvent)
            .where(TicketEvent.ticket_id == tid, TicketEvent.action == "acknowledge")  # fmt: skip
        )
        assert acks == 1


def test_100_concurrent_retries_with_one_idempotency_key_one_effect(live):
    url, headers, rt = live
    title = f"idem-{uuid.uuid4().hex[:6]}"
    key = {**headers, "Idempotency-Key": f"k-{uuid.uuid4().hex}"}

    def create(c: httpx.Client, i: int) -> httpx.Response:
        return c.post(f"{url}/api/v1/tickets", json={"title": title}, headers=key)

    responses = _fire(THREADS, create) + _fire(THREADS, create)  # two waves of 50 at once
    ok = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(ok) + len(busy) == 100, sorted({r.status_code for r in responses})
    assert ok and len({r.json()["id"] for r in ok}) == 1  # every success names the same ticket
    for r in busy:
        assert r.json()["detail"].startswith("Idempotency-Key: a request with this key is in progress")
    with httpx.Client(timeout=30) as c:  # a retry after the dust settles replays the stored answer
        again = c.post(f"{url}/api/v1/tickets", json={"title": title}, headers=key)
    assert again.status_code == 201 and again.json() == ok[0].json()
    with transaction(rt.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.title == title)) == 1
