from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.deps import PageDep, SessionDep, UserDep, runtime
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
    password: SecretStr
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
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    role: Role
    password: SecretStr | None = None


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
def login(body: LoginIn, session: SessionDep, rt: Annotated[Runtime, Depends(runtime)]) -> TokenCreated:
    user = accounts.authenticate(session, username=body.username, password=body.password.get_secret_value())
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
def create_user(body: UserIn, session: SessionDep, user: UserDep) -> UserOut:
    created = accounts.create_user(
        session,
        username=body.username,
        role=body.role.value,
        password=body.password.get_secret_value() if body.password else None,
        actor=user.username,
    )
    return UserOut.model_validate(created)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(session: SessionDep, user: UserDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in accounts.list_tokens(session, user=user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(
    body: TokenIn, session: SessionDep, user: UserDep, rt: Annotated[Runtime, Depends(runtime)]
) -> TokenCreated:
    row, token = accounts.create_token(
        session, user=user, name=body.name, ttl_days=rt.settings.token_ttl_days, actor=user.username
    )
    return TokenCreated(id=row.id, token=token, prefix=row.prefix, expires_at=row.expires_at)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: Id, session: SessionDep, user: UserDep) -> None:
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
