from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.accounts.models import ApiToken, Role, User
from faultloop.audit import service as audit
from faultloop.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

TOKEN_PREFIX = "flt_"  # noqa: S105 - a prefix, not a secret
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps a login's cost bounded too
_hasher = PasswordHasher()


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"role: expected one of {allowed}, got {value!r}", field="role") from None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: expected at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password: expected at most {MAX_PASSWORD} characters", field="password")


class LoginFailed(Unauthorized):
    """A refused password login. The client sees one message for every cause (no user
    enumeration); ``reason`` is for the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid username or password")
        self.reason = reason


def create_user(session: Session, *, username: str, role: str, password: str | None, actor: str) -> User:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "username: expected 1-64 characters of letters, digits, '.', '_', '@', '-'", field="username"
        )
    parsed_role = parse_role(role)
    if password is not None:
        _check_password(password)
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists", field="username")
    user = User(
        username=username,
        role=parsed_role,
        password_hash=_hasher.hash(password) if password else None,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        after={"username": username, "role": parsed_role.value},
    )
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def authenticate(session: Session, *, username: str, password: str) -> User:
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password: expected at most {MAX_PASSWORD} characters", field="password")
    user = session.scalar(select(User).where(User.username == username))
    # Same message for unknown user and wrong password: no user enumeration.
    if user is None or user.disabled or not user.password_hash:
        _hasher.hash(password)  # keep the timing of unknown users close to known ones
        reason = "unknown user" if user is None else "user disabled" if user.disabled else "no password set"
        raise LoginFailed(reason)
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise LoginFailed("wrong password") from None
    return user


def record_login_failure(session: Session, *, username: str, source: str, channel: str, reason: str) -> None:
    """One audit entry per refused password (never the password). Rate-limited attempts are
    refused before this and only counted (faultloop_login_attempts_total), so a flood does
    not become a flood of rows."""
    audit.record(
        session,
        actor=username[:100],
        action="auth.login_failed",
        object_type="user",
        object_id=username[:100],
        after={"source": source[:100], "channel": channel, "reason": reason},
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SESSION = "session"
API = "api"


def create_token(
    session: Session,
    *,
    user: User,
    name: str,
    ttl_days: float,
    actor: str,
    kind: str = API,
    created_by: Credential | None = None,
) -> tuple[ApiToken, str]:
    """Return the stored row and the token itself, which is never stored nor shown again.

    ``created_by``: the credential of the request that asks (None for a password login or the
    CLI). A dashboard session may not create tokens: its cookie would otherwise outlive logout
    as a 90-day token."""
    if created_by is not None and created_by.kind == SESSION:
        raise Forbidden(
            "a dashboard session may not create API tokens; log in with POST /api/v1/auth/token "
            "or run `faultloop token create`"
        )
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    row = ApiToken(
        user_id=user.id,
        name=name[:100],
        token_hash=_digest(plaintext),
        prefix=plaintext[:12],
        created_at=now,
        expires_at=now + timedelta(days=ttl_days),
        kind=kind,
        created_by_token_id=created_by.token_id if created_by is not None else None,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.create",
        object_type="api_token",
        object_id=row.id,
        after={
            "user": user.username,
            "name": row.name,
            "kind": kind,
            "prefix": row.prefix,
            "expires_at": row.expires_at.isoformat(),
            "created_by_token_id": row.created_by_token_id,
        },
    )
    return row, plaintext


def find_token(session: Session, token: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))


@dataclass(frozen=True)
class Credential:
    """Who a request is: the user, and the token it came with (by id, never the token)."""

    user: User
    token_id: int
    kind: str


def _valid(found: Any) -> None:
    if found is None or found.revoked_at is not None:
        raise Unauthorized("invalid or revoked token")
    if found.expires_at <= clock.now():
        raise Unauthorized("token expired")
    if found.User.disabled:
        raise Unauthorized("user disabled")


def _token_row(session: Session, condition: ColumnElement[bool]) -> Any:
    return session.execute(
        select(ApiToken.id, ApiToken.kind, ApiToken.revoked_at, ApiToken.expires_at, User)
        .join(User, User.id == ApiToken.user_id)
        .where(condition)
    ).first()


def resolve_token(session: Session, token: str) -> Credential:
    """The token's user and id, in one query (every API request asks)."""
    found = _token_row(session, ApiToken.token_hash == _digest(token))
    _valid(found)
    return Credential(user=found.User, token_id=found.id, kind=found.kind)


def check_token(session: Session, token_id: int) -> None:
    """Unauthorized (naming why) unless the token is still good: not revoked, not expired, its
    user not disabled. A long-lived connection (the alarm stream) asks again now and then."""
    _valid(_token_row(session, ApiToken.id == token_id))


def list_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_token(session: Session, *, token_id: int, actor: str) -> ApiToken:
    """Revoke the token and, with it, every token it made (and those they made)."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    _revoke(session, row, actor=actor, reason="revoked")
    return row


def _revoke(session: Session, row: ApiToken, *, actor: str, reason: str) -> int:
    """Revoke ``row`` and what it made, each audited once; returns how many were revoked now."""
    revoked = 0
    pending, seen = [row], set()
    now = clock.now()
    while pending:
        current = pending.pop()
        if current.id in seen:
            continue
        seen.add(current.id)
        if current.revoked_at is None:
            current.revoked_at = now
            revoked += 1
            audit.record(
                session,
                actor=actor,
                action="token.revoke",
                object_type="api_token",
                object_id=current.id,
                before={"revoked": False},
                after={"revoked": True, "reason": reason if current is row else f"made by token {row.id}"},
            )
        pending.extend(session.scalars(select(ApiToken).where(ApiToken.created_by_token_id == current.id)))
    session.flush()
    return revoked


def revoke_user_tokens(session: Session, *, user: User, actor: str, reason: str, kind: str | None = None) -> int:
    """Revoke every live token of ``user`` (only sessions with ``kind="session"``); the count."""
    query = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if kind is not None:
        query = query.where(ApiToken.kind == kind)
    return sum(_revoke(session, row, actor=actor, reason=reason) for row in session.scalars(query).all())


def _enabled_admins(session: Session) -> int:
    return (
        session.scalar(select(func.count()).select_from(User).where(User.role == Role.admin, User.disabled.is_(False)))
        or 0
    )


def _keep_an_admin(session: Session, user: User, what: str) -> None:
    if user.role is Role.admin and not user.disabled and _enabled_admins(session) <= 1:
        raise Conflict(f"{what} {user.username!r}: it is the last enabled admin", field="username")


def set_disabled(session: Session, *, username: str, disabled: bool, actor: str) -> tuple[User, int]:
    """Disable (every token of the user revoked, the count returned) or enable a user. Enabling
    brings no token back."""
    user = get_user(session, username)
    if user.disabled == disabled:
        return user, 0
    if disabled:
        _keep_an_admin(session, user, "refusing to disable")
    user.disabled = disabled
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.disable" if disabled else "user.enable",
        object_type="user",
        object_id=user.id,
        before={"username": user.username, "disabled": not disabled},
        after={"username": user.username, "disabled": disabled},
    )
    revoked = revoke_user_tokens(session, user=user, actor=actor, reason="user disabled") if disabled else 0
    return user, revoked


def set_role(session: Session, *, username: str, role: str, actor: str) -> User:
    """Change a user's role; it holds at once for every token of the user (read per request)."""
    parsed = parse_role(role)
    user = get_user(session, username)
    if user.role is parsed:
        return user
    if parsed is not Role.admin:
        _keep_an_admin(session, user, "refusing to change the role of")
    before = user.role.value
    user.role = parsed
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.role",
        object_type="user",
        object_id=user.id,
        before={"username": user.username, "role": before},
        after={"username": user.username, "role": parsed.value},
    )
    return user


def set_password(session: Session, *, username: str, password: str | None, actor: str) -> tuple[User, int]:
    """Set (or, with None, remove: token-only) a user's password. The user's dashboard sessions
    were opened with the old password and are revoked (the count returned); API tokens stay."""
    if password is not None:
        _check_password(password)
    user = get_user(session, username)
    user.password_hash = _hasher.hash(password) if password is not None else None
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.password",
        object_type="user",
        object_id=user.id,
        after={"username": user.username, "password_set": password is not None},
    )
    revoked = revoke_user_tokens(session, user=user, actor=actor, reason="password changed", kind=SESSION)
    return user, revoked
