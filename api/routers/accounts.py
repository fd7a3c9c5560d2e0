from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.json_schema import JsonDict

from api.deps import PageDep, SessionDep, UserDep, WriteSessionDep, runtime
from api.login import password_login
from api.params import Id
from faultloop.accounts import service as accounts
from faultloop.accounts.models import Role
from faultloop.audit import service as audit
from faultloop.db import writing
from faultloop.errors import Forbidden
from faultloop.runtime import Runtime
from inventory.schemas import Page

router = APIRouter(prefix="/api/v1", tags=["users"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(..., min_length=1, max_length=64)
    password: SecretStr = Field(..., max_length=accounts.MAX_PASSWORD)
    name: str = Field("api login", max_length=100)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)


class TokenCreated(BaseModel):
    id: int
    token: str = Field(description="Shown once; only its hash is stored.")
    prefix: str
    expires_at: datetime


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: str = Field(description="api, or session (a dashboard login)")
    created_by_token_id: int | None
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


# What accounts.service checks, written into the document (the service keeps its own messages).
_USERNAME_DOC: JsonDict = {"minLength": 1, "pattern": accounts.USERNAME_RE.pattern}
_PASSWORD_DOC: JsonDict = {"minLength": accounts.MIN_PASSWORD}


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(..., max_length=64, json_schema_extra=_USERNAME_DOC)
    role: Role
    password: SecretStr | None = Field(None, max_length=accounts.MAX_PASSWORD, json_schema_extra=_PASSWORD_DOC)


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: SecretStr | None = Field(
        ...,
        max_length=accounts.MAX_PASSWORD,
        description="null: no password (a token-only user)",
        json_schema_extra=_PASSWORD_DOC,
    )


class Revoked(BaseModel):
    username: str
    tokens_revoked: int


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict | None
    after: dict | None


@router.post("/auth/token", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def login(
    body: LoginIn, request: Request, session: SessionDep, rt: Annotated[Runtime, Depends(runtime)]
) -> TokenCreated:
    """A password login: 429 with Retry-After over the per-address or per-user limit, 503 when
    too many password checks run at once; every refused password is in the audit log."""
    user = password_login(
        request, session, username=body.username, password=body.password.get_secret_value(), channel="api"
    )
    with writing(session):  # the password check read; on SQLite write from a fresh snapshot
        row, token = accounts.create_token(
            session, user=user, name=body.name, ttl_days=rt.settings.token_ttl_days, actor=user.username
        )
        session.commit()
    return TokenCreated(id=row.id, token=token, prefix=row.prefix, expires_at=row.expires_at)


@router.get("/me", response_model=UserOut)
def me(user: UserDep) -> UserOut:
    return UserOut.model_validate(user)


@router.get("/users", response_model=list[UserOut])
def list_users(session: SessionDep, user: UserDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in accounts.list_users(session)]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(body: UserIn, session: WriteSessionDep, user: UserDep) -> UserOut:
    created = accounts.create_user(
        session,
        username=body.username,
        role=body.role.value,
        password=body.password.get_secret_value() if body.password else None,
        actor=user.username,
    )
    return UserOut.model_validate(created)


@router.post("/users/{username}/disable", response_model=Revoked)
def disable_user(username: str, session: WriteSessionDep, user: UserDep) -> Revoked:
    """Disable a user: every token of theirs (sessions included) is revoked at once; audited.
    409 for the last enabled admin."""
    target, revoked = accounts.set_disabled(session, username=username, disabled=True, actor=user.username)
    return Revoked(username=target.username, tokens_revoked=revoked)


@router.post("/users/{username}/enable", response_model=UserOut)
def enable_user(username: str, session: WriteSessionDep, user: UserDep) -> UserOut:
    """Enable a user again (the tokens revoked on disable stay revoked); audited."""
    target, _ = accounts.set_disabled(session, username=username, disabled=False, actor=user.username)
    return UserOut.model_validate(target)


@router.put("/users/{username}/role", response_model=UserOut)
def set_role(username: str, body: RoleIn, session: WriteSessionDep, user: UserDep) -> UserOut:
    """Change a user's role (holds at once for every token of theirs); audited. 409 when it would
    leave no enabled admin."""
    return UserOut.model_validate(
        accounts.set_role(session, username=username, role=body.role.value, actor=user.username)
    )


@router.put("/users/{username}/password", response_model=Revoked)
def set_password(username: str, body: PasswordIn, session: WriteSessionDep, user: UserDep) -> Revoked:
    """Set a user's password (10 to 1,024 characters; null: none). Their dashboard sessions are
    revoked, their API tokens kept; audited (never the password)."""
    password = body.password.get_secret_value() if body.password is not None else None
    target, revoked = accounts.set_password(session, username=username, password=password, actor=user.username)
    return Revoked(username=target.username, tokens_revoked=revoked)


@router.get("/users/{username}/tokens", response_model=list[TokenOut])
def list_user_tokens(username: str, session: WriteSessionDep, user: UserDep) -> list[TokenOut]:
    """Any user's tokens, revoked and expired ones included (never the tokens themselves)."""
    target = accounts.get_user(session, username)
    return [TokenOut.model_validate(t) for t in accounts.list_tokens(session, user=target)]


@router.delete("/users/{username}/tokens", response_model=Revoked)
def revoke_user_tokens(username: str, session: WriteSessionDep, user: UserDep) -> Revoked:
    """Revoke every live token of a user (sessions included); audited one by one."""
    target = accounts.get_user(session, username)
    revoked = accounts.revoke_user_tokens(session, user=target, actor=user.username, reason="revoked by an admin")
    return Revoked(username=target.username, tokens_revoked=revoked)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(session: SessionDep, user: UserDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in accounts.list_tokens(session, user=user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(
    body: TokenIn, request: Request, session: WriteSessionDep, user: UserDep, rt: Annotated[Runtime, Depends(runtime)]
) -> TokenCreated:
    """A new API token of the caller's, made by the caller's token (revoking that one revokes
    this one too). A dashboard session may not: 403."""
    row, token = accounts.create_token(
        session,
        user=user,
        name=body.name,
        ttl_days=rt.settings.token_ttl_days,
        actor=user.username,
        created_by=request.state.credential,
    )
    return TokenCreated(id=row.id, token=token, prefix=row.prefix, expires_at=row.expires_at)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: Id, session: WriteSessionDep, user: UserDep) -> None:
    owned = {t.id for t in accounts.list_tokens(session, user=user)}
    if token_id not in owned and user.role is not Role.admin:
        raise Forbidden("only an admin may revoke another user's token")
    accounts.revoke_token(session, token_id=token_id, actor=user.username)


@router.get("/audit", response_model=Page[AuditOut])
def audit_log(
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    object_type: Annotated[str | None, Query()] = None,
    object_id: Annotated[str | None, Query()] = None,
    actor: Annotated[str | None, Query()] = None,
) -> Page[AuditOut]:
    rows, total = audit.list_entries(
        session, limit=page.limit, offset=page.offset, object_type=object_type, object_id=object_id, actor=actor
    )
    return Page[AuditOut](
        items=[AuditOut.model_validate(r) for r in rows], total=total, limit=page.limit, offset=page.offset
    )
