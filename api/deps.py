"""Request dependencies: the transaction edge, authentication and the RBAC check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from api.rbac import PUBLIC, allowed_roles
from faultloop.accounts import service as accounts
from faultloop.accounts.models import User
from faultloop.errors import DomainError, Forbidden, InvalidInput, Unauthorized
from faultloop.runtime import Runtime


class RouteNotAllowed(DomainError):
    status = 500
    title = "Route not in allow-table"


def runtime(request: Request) -> Runtime:
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


SessionDep = Annotated[Session, Depends(get_session)]


def authorize(request: Request, session: SessionDep) -> User | None:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    roles = allowed_roles(request.method, path)
    if roles is None:
        raise RouteNotAllowed(f"{request.method} {path} is not in the allow-table; refusing")
    if roles is PUBLIC:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    user = accounts.resolve_token(session, token.strip())
    if user.role not in roles:
        raise Forbidden(f"role {user.role.value!r} may not {request.method} {path}")
    return user


def current_user(user: Annotated[User | None, Depends(authorize)]) -> User:
    if user is None:  # only on a public route, which never asks for a user
        raise Unauthorized("authentication required")
    return user


UserDep = Annotated[User, Depends(current_user)]


class PageParams:
    def __init__(
        self,
        rt: Annotated[Runtime, Depends(runtime)],
        limit: Annotated[int, Query(ge=1, description="Page size")] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> None:
        if limit > rt.settings.page_size_max:
            raise InvalidInput(f"limit: expected at most {rt.settings.page_size_max}", field="limit")
        self.limit = limit
        self.offset = offset


PageDep = Annotated[PageParams, Depends()]
