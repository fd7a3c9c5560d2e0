"""Request dependencies: the transaction edge, authentication and the RBAC check."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from api.params import MAX_OFFSET, MAX_PAGE
from api.rbac import PUBLIC, allowed_roles
from api.services import ServiceHandles
from faultloop.accounts import service as accounts
from faultloop.accounts.models import User
from faultloop.db import begin_write, end_read_snapshot
from faultloop.errors import DomainError, Forbidden, InvalidInput, Unauthorized
from faultloop.runtime import Runtime


class RouteNotAllowed(DomainError):
    status = 500
    title = "Route not in allow-table"


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
# the thread pool, and each hop costs more than the work itself.


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def get_session(rt: Annotated[Runtime, Depends(runtime)]) -> Iterator[Session]:
    """The transaction edge for a request: commit if the handler returns, else roll back."""
    session = rt.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def services(request: Request) -> ServiceHandles:
    handles: ServiceHandles = request.app.state.services
    return handles


ServicesDep = Annotated[ServiceHandles, Depends(services)]


# scope="function": commit before the response is sent (FastAPI's default runs a yield
# dependency's exit after the response, so a client could see 2xx for a write whose commit
# then failed, or follow a redirect before the session it was given exists).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


SESSION_COOKIE = "faultloop_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_for(session_token: str) -> str:
    """The CSRF token of a dashboard session: derived from the HttpOnly session cookie,
    which another site can neither read nor compute, so nothing extra is stored."""
    return hmac.new(session_token.encode(), b"faultloop-csrf-v1", hashlib.sha256).hexdigest()


def _credentials(request: Request) -> tuple[str, bool]:
    """(token, from_cookie): a bearer header wins; a browser sends the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie:
        return cookie, True
    raise Unauthorized("missing bearer token (Authorization: Bearer <token>) or dashboard session")


def _check_csrf(request: Request, token: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent, csrf_for(token)):
        raise Forbidden("CSRF token missing or wrong (send the X-CSRF-Token header of the page)")


def authorize(request: Request, session: SessionDep) -> User | None:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    roles = allowed_roles(request.method, path)
    if roles is None:
        raise RouteNotAllowed(f"{request.method} {path} is not in the allow-table; refusing")
    if roles is PUBLIC:
        return None
    token, from_cookie = _credentials(request)
    credential = accounts.resolve_token(session, token)
    user = credential.user
    if request.method not in SAFE_METHODS:
        if from_cookie:
            _check_csrf(request, token)
        # the handler writes: it must not start from the snapshot this read opened (SQLite)
        end_read_snapshot(session)
    request.state.session_token = token if from_cookie else None
    request.state.token_id = credential.token_id
    request.state.credential = credential
    if user.role not in roles:
        raise Forbidden(f"role {user.role.value!r} may not {request.method} {path}")
    return user


async def current_user(user: Annotated[User | None, Depends(authorize)]) -> User:
    if user is None:  # only on a public route, which never asks for a user
        raise Unauthorized("authentication required")
    return user


UserDep = Annotated[User, Depends(current_user)]


def write_session(session: SessionDep, _auth: Annotated[User | None, Depends(authorize)]) -> Session:
    """The request's session for a handler that reads, then writes: once authorization has
    read, the transaction that writes begins at once and waits its turn for SQLite's write
    lock (bounded by busy_timeout), so another writer's commit between the handler's read and
    its write cannot refuse it (``faultloop.db.begin_write``). Not for a handler that does
    slow work (SSH, pushes) before it writes: it would hold the lock throughout."""
    begin_write(session)
    return session


WriteSessionDep = Annotated[Session, Depends(write_session)]


class PageParams:
    def __init__(self, limit: int, offset: int) -> None:
        self.limit = limit
        self.offset = offset


async def page_params(
    rt: Annotated[Runtime, Depends(runtime)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size (at most FAULTLOOP_PAGE_SIZE_MAX)")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> PageParams:
    if limit > rt.settings.page_size_max:
        raise InvalidInput(f"limit: expected at most {rt.settings.page_size_max}", field="limit")
    return PageParams(limit, offset)


PageDep = Annotated[PageParams, Depends(page_params)]
