"""Password logins under abuse: limits per address and per user (429 + Retry-After), a bounded
number of argon2 checks at once (503), bounded input sizes, failed logins in the audit log."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_api
from faultloop.accounts import service as accounts
from faultloop.accounts.models import User
from faultloop.audit.models import AuditEntry
from faultloop.errors import InvalidInput
from faultloop.metrics import REGISTRY

PASSWORD = "correct horse battery"  # noqa: S105 - test password
WRONG = "a wrong password marker"  # noqa: S105 - test password


@pytest.fixture
def app_for(runtime, session):
    """app_for(**settings) -> (app, client(address)) with users alice and bob."""
    for name in ("alice", "bob"):
        accounts.create_user(session, username=name, role="noc", password=PASSWORD, actor="test")
    session.commit()
    clients: list[TestClient] = []

    def make(**overrides):
        for key, value in overrides.items():
            setattr(runtime.settings, key, value)
        app = create_api(runtime)

        def client(address: str = "192.0.2.1") -> TestClient:
            c = TestClient(app, raise_server_exceptions=False, client=(address, 50000))
            c.__enter__()
            clients.append(c)
            return c

        return app, client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def login(c: TestClient, username: str = "alice", password: str = PASSWORD):
    return c.post("/api/v1/auth/token", json={"username": username, "password": password})


def _retry_after(r) -> int:
    value = int(r.headers["retry-after"])
    assert 1 <= value <= 60, value
    return value


def test_one_address_gets_429_with_retry_after_past_its_limit(app_for):
    _app, client = app_for(login_rate_per_source="3/minute", login_rate_per_user="100/minute")
    c = client("192.0.2.1")
    assert [login(c, password=WRONG).status_code for _ in range(3)] == [401, 401, 401]
    r = login(c)  # even the right password: the address is over its limit, no hash is computed
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "too many logins from this address" in r.json()["detail"]
    _retry_after(r)
    # another address is not affected
    assert login(client("192.0.2.2")).status_code == 201


def test_failed_logins_lock_the_username_from_every_address_and_a_success_resets_them(app_for):
    _app, client = app_for(login_rate_per_source="100/minute", login_rate_per_user="3/minute")
    a, b = client("192.0.2.1"), client("192.0.2.2")
    assert [login(a, password=WRONG).status_code for _ in range(2)] == [401, 401]
    assert login(a).status_code == 201  # a success forgets the failures
    assert [login(a, password=WRONG).status_code for _ in range(3)] == [401, 401, 401]
    r = login(b)  # the username is locked, from any address, right password or not
    assert r.status_code == 429 and "too many failed logins for this user" in r.json()["detail"]
    _retry_after(r)
    assert login(b, username="ALICE").status_code == 429  # one username, whatever its case
    assert login(b, username="bob").status_code == 201  # other users are not affected


def test_refused_logins_are_audited_with_the_reason_never_the_password(app_for, session):
    _app, client = app_for()
    c = client("192.0.2.7")
    assert login(c, password=WRONG).status_code == 401
    assert login(c, username="mallory", password=WRONG).status_code == 401
    session.get(User, session.scalar(select(User.id).where(User.username == "bob"))).disabled = True
    session.commit()
    assert login(c, username="bob").status_code == 401
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "auth.login_failed").order_by(AuditEntry.id)
    ).all()
    got = [(r.actor, r.object_id, r.after["reason"], r.after["source"], r.after["channel"]) for r in rows]
    assert got == [
        ("alice", "alice", "wrong password", "192.0.2.7", "api"),
        ("mallory", "mallory", "unknown user", "192.0.2.7", "api"),
        ("bob", "bob", "user disabled", "192.0.2.7", "api"),
    ]
    assert WRONG not in json.dumps([r.after for r in rows])
    # the client is told the same for every cause (no user enumeration)
    assert login(c, username="mallory", password=WRONG).json()["detail"] == "invalid username or password"


def test_rate_limited_attempts_are_counted_not_audited(app_for, session):
    _app, client = app_for(login_rate_per_source="1/minute")
    c = client()
    before = REGISTRY.get_sample_value("faultloop_login_attempts_total", {"result": "rate_limited"}) or 0
    assert login(c, password=WRONG).status_code == 401
    assert [login(c, password=WRONG).status_code for _ in range(5)] == [429] * 5
    assert REGISTRY.get_sample_value("faultloop_login_attempts_total", {"result": "rate_limited"}) == before + 5
    audited = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "auth.login_failed")
    )
    assert audited == 1


def test_beyond_the_concurrent_password_checks_a_login_gets_503_at_once(app_for):
    app, client = app_for(login_concurrency=1)
    c = client()
    with app.state.login_guard.password_check():  # the one slot is busy (a slow hash elsewhere)
        r = login(c)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1" and "too many logins in progress" in r.json()["detail"]
    assert login(c).status_code == 201


def test_password_length_is_bounded_everywhere(app_for, session):
    _app, client = app_for()
    c = client()
    r = login(c, password="x" * (accounts.MAX_PASSWORD + 1))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password"
    r = c.post("/login", data={"username": "alice", "password": "x" * 1025}, follow_redirects=False)
    assert r.status_code == 422
    with pytest.raises(InvalidInput, match="password: expected at most 1024 characters"):
        accounts.authenticate(session, username="alice", password="x" * 1025)
    with pytest.raises(InvalidInput, match="password: expected at most 1024 characters"):
        accounts.create_user(session, username="carol", role="noc", password="x" * 1025, actor="test")
    assert session.scalar(select(User).where(User.username == "carol")) is None
    audited = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "auth.login_failed")
    )
    assert audited == 0  # refused before any check: nothing to audit


def test_create_user_api_bounds_its_fields(app_for, auth):
    _app, client = app_for()
    c = client()
    r = c.post(
        "/api/v1/users",
        json={"username": "u" * 65, "role": "noc", "password": "p" * 2000},
        headers=auth("admin"),
    )
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"username", "password"}


def test_dashboard_login_shares_the_limits_and_the_audit(app_for, session):
    _app, client = app_for(login_rate_per_source="2/minute")
    c = client("192.0.2.9")
    form = {"username": "alice", "password": WRONG}
    assert c.post("/login", data=form, follow_redirects=False).status_code == 401
    assert login(c, password=WRONG).status_code == 401  # the API and the form share the address's limit
    r = c.post("/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 429 and "set-cookie" not in r.headers
    assert "too many logins from this address" in r.text and "<form" in r.text
    _retry_after(r)
    channels = session.scalars(
        select(AuditEntry.after).where(AuditEntry.action == "auth.login_failed").order_by(AuditEntry.id)
    ).all()
    assert [a["channel"] for a in channels] == ["dashboard", "api"]
