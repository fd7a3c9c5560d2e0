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
    role: Annotated[str, typer.Option(help="admin, noc, technician, provisioner or viewer")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="Token-only user")] = False,
) -> None:
    """Add a user; the password comes from a prompt or stdin, never from arguments."""
    accounts.parse_role(role)  # fail before prompting
    password: str | None
    if no_password:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
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
