"""Dashboard test fixtures: browsers are real in tests/web/e2e; here a TestClient logs in
through the same /login form and carries the session cookie and the page's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.deps import SESSION_COOKIE, csrf_for
from api.main import create_api
from faultloop.accounts import service as accounts

PASSWORD = "correct horse battery"  # noqa: S105 - test password
CSRF_RE = re.compile(r'"X-CSRF-Token": "([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page carries no CSRF token"
    return match.group(1)


@pytest.fixture
def web(runtime, session) -> Iterator:
    """web("noc") -> a TestClient logged in as a fresh user of that role, with
    `client.csrf` set and sent on every request (X-CSRF-Token), as htmx does."""
    clients: list[TestClient] = []

    def login(role: str, username: str | None = None) -> TestClient:
        name = username or f"web-{role}"
        accounts.create_user(session, username=name, role=role, password=PASSWORD, actor="test")
        session.commit()
        client = TestClient(create_api(runtime), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        r = client.post("/login", data={"username": name, "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303, r.text
        # what the page's hx-headers carry (test_auth checks a page against csrf_for)
        client.csrf = csrf_for(client.cookies.get(SESSION_COOKIE))  # type: ignore[attr-defined]
        client.headers["X-CSRF-Token"] = client.csrf  # type: ignore[attr-defined]
        client.headers["accept"] = "text/html"
        return client

    yield login
    for client in clients:
        client.__exit__(None, None, None)
