"""`faultloop user ...` and `faultloop token ...`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from faultloop.accounts import service as accounts
from faultloop.cmd.cli.common import CLI_ACTOR, err, out, tx

user_app = typer.Typer(no_args_is_help=True, help="Users and roles.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="admin, noc, technician, provisioner, viewer, servicedesk or oss")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="Token-only user")] = False,
) -> None:
    """Add a user; the password comes from a prompt or stdin, never from arguments."""
    accounts.parse_role(role)  # fail before prompting
    password = _read_password(password_stdin, no_password)
    with tx() as (_rt, session):
        user = accounts.create_user(session, username=name, role=role, password=password, actor=CLI_ACTOR)
        err.print(f"user {user.username} ({user.role.value}) created")


@user_app.command("list")
def user_list() -> None:
    with tx() as (_rt, session):
        table = Table("username", "role", "disabled", "created")
        for u in accounts.list_users(session):
            table.add_row(u.username, u.role.value, str(u.disabled), u.created_at.isoformat(timespec="seconds"))
        out.print(table)


def _read_password(password_stdin: bool, no_password: bool) -> str | None:
    if no_password:
        return None
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Disable a user and revoke every token of theirs (sessions included); audited."""
    with tx() as (_rt, session):
        user, revoked = accounts.set_disabled(session, username=name, disabled=True, actor=CLI_ACTOR)
        err.print(f"user {user.username} disabled, {revoked} token(s) revoked")


@user_app.command("enable")
def user_enable(name: str) -> None:
    """Enable a user again (revoked tokens stay revoked); audited."""
    with tx() as (_rt, session):
        user, _ = accounts.set_disabled(session, username=name, disabled=False, actor=CLI_ACTOR)
        err.print(f"user {user.username} enabled")


@user_app.command("role")
def user_role(name: str, role: str) -> None:
    """Change a user's role (admin, noc, technician, provisioner, viewer, servicedesk, oss); audited."""
    accounts.parse_role(role)
    with tx() as (_rt, session):
        user = accounts.set_role(session, username=name, role=role, actor=CLI_ACTOR)
        err.print(f"user {user.username} is now {user.role.value}")


@user_app.command("password")
def user_password(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="Remove the password (token-only)")] = False,
) -> None:
    """Set a user's password (prompt or stdin, never arguments); their dashboard sessions are revoked."""
    password = _read_password(password_stdin, no_password)
    with tx() as (_rt, session):
        user, revoked = accounts.set_password(session, username=name, password=password, actor=CLI_ACTOR)
        err.print(f"password of {user.username} {'set' if password else 'removed'}, {revoked} session(s) revoked")


@token_app.command("list")
def token_list(username: str) -> None:
    """A user's tokens (never the tokens themselves)."""
    with tx() as (_rt, session):
        user = accounts.get_user(session, username)
        table = Table("id", "name", "kind", "prefix", "created", "expires", "revoked", "made by")
        for t in accounts.list_tokens(session, user=user):
            table.add_row(
                str(t.id),
                t.name,
                t.kind,
                t.prefix,
                t.created_at.isoformat(timespec="seconds"),
                t.expires_at.isoformat(timespec="seconds"),
                t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "",
                str(t.created_by_token_id or ""),
            )
        out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token, and the tokens it made; audited."""
    with tx() as (_rt, session):
        accounts.revoke_token(session, token_id=token_id, actor=CLI_ACTOR)
        err.print(f"token {token_id} revoked")


@token_app.command("create")
def token_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
) -> None:
    """Create an API token; only the token is printed on stdout."""
    with tx() as (rt, session):
        user = accounts.get_user(session, username)
        _row, token = accounts.create_token(
            session, user=user, name=name, ttl_days=rt.settings.token_ttl_days, actor=CLI_ACTOR
        )
    print(token)
