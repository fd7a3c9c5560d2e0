"""Dashboard login and logout: a session is an ordinary, revocable API token kept in an
HttpOnly, SameSite=Strict cookie; its CSRF token is derived from it (api.deps.csrf_for)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SESSION_COOKIE, SessionDep, UserDep
from api.login import password_login
from api.web.render import landing, page
from faultloop.accounts import service as accounts
from faultloop.db import writing
from faultloop.errors import Busy, Forbidden, TooManyRequests, Unauthorized
from faultloop.runtime import Runtime

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str | None:
    """Only a local path: never another host (an open redirect), never '//host'."""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def _check_origin(request: Request) -> None:
    """A login form posted from another site is refused (login CSRF)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("login form posted from another origin")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> HTMLResponse:  # noqa: A002 - the query parameter's name
    return page(request, "login.html", None, next=_safe_next(next) or "", error="")


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2048)] = "",  # noqa: A002
) -> Response:
    _check_origin(request)
    rt: Runtime = request.app.state.runtime
    try:
        user = password_login(request, session, username=username, password=password, channel="dashboard")
    except (Unauthorized, TooManyRequests, Busy) as exc:
        refused = page(
            request, "login.html", None, status_code=exc.status, next=_safe_next(next) or "", error=exc.detail
        )
        if exc.retry_after is not None:
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    hours = rt.settings.session_ttl_hours
    with writing(session):
        _row, token = accounts.create_token(
            session,
            user=user,
            name="dashboard session",
            ttl_days=hours / 24,
            actor=user.username,
            kind=accounts.SESSION,
        )
        session.commit()
    response = RedirectResponse(_safe_next(next) or landing(user), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=hours * 3600,
        path="/",
        httponly=True,
        samesite="strict",
        secure=rt.settings.session_cookie_secure,
    )
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, session: SessionDep, user: UserDep) -> Response:
    token = getattr(request.state, "session_token", None)
    with writing(session):
        row = accounts.find_token(session, token) if token else None
        if row is not None:
            accounts.revoke_token(session, token_id=row.id, actor=user.username)
        session.commit()
    response = Response(status_code=204, headers={"HX-Redirect": "/login"})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
