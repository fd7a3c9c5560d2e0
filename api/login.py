"""Password login for the API (POST /api/v1/auth/token) and the dashboard (POST /login):
the abuse limits (faultloop.accounts.guard), the argon2 check in a bounded slot, and an audit
entry for every refused password."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session

from faultloop.accounts import service as accounts
from faultloop.accounts.guard import LoginGuard
from faultloop.accounts.models import User
from faultloop.db import writing


def client_address(request: Request) -> str:
    # The peer address: behind a reverse proxy every client shares the proxy's address and
    # its limit (X-Forwarded-For is not trusted; anyone can send it).
    return request.client.host if request.client else "unknown"


def password_login(request: Request, session: Session, *, username: str, password: str, channel: str) -> User:
    """The user, or 429 / 503 (refused before any hash) or 401 (audited, committed)."""
    guard: LoginGuard = request.app.state.login_guard
    source = client_address(request)
    guard.admit(source=source, username=username)
    try:
        with guard.password_check():
            user = accounts.authenticate(session, username=username, password=password)
    except accounts.LoginFailed as exc:
        guard.failed(username)
        # the refusal is the answer, and its record must outlive the request's rollback
        with writing(session):
            accounts.record_login_failure(
                session, username=username, source=source, channel=channel, reason=exc.reason
            )
            session.commit()
        raise
    guard.succeeded(username)
    return user
