"""The `faultloop` command line (typer + rich), one module per domain.

Tables and progress go to stderr-safe rich consoles; commands meant for scripts
(`token create`, `--json`) print only their result on stdout. Every error a user can cause
is one line on stderr and exit code 2 (``main``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from faultloop.cmd.cli import accounts as accounts_cli
from faultloop.cmd.cli import alarms as alarms_cli
from faultloop.cmd.cli import collectors as collectors_cli
from faultloop.cmd.cli import db as db_cli
from faultloop.cmd.cli import inventory as inventory_cli
from faultloop.cmd.cli import lab as lab_cli
from faultloop.cmd.cli import orders as orders_cli
from faultloop.cmd.cli import tickets as tickets_cli
from faultloop.cmd.cli.common import CliError, err
from faultloop.db import safe_url
from faultloop.errors import ConfigError, DomainError
from faultloop.runtime import StartupError, build_runtime, check_database, configure_logging, service_running
from faultloop.settings import SettingsError, load_settings
from faultloop.vault import VaultError

app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, help="faultloop: network OSS for NOCs."
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides FAULTLOOP_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides FAULTLOOP_PORT")] = None,
    role: Annotated[
        str | None,
        typer.Option(help="all (default: everything), central (no collectors) or collector; overrides FAULTLOOP_ROLE"),
    ] = None,
) -> None:
    """Run the service: HTTP API, pollers, receivers, alarm engine, ticketing."""
    from faultloop.cmd.app import run_collector, run_service

    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port), ("role", role)) if v is not None}
    settings = load_settings(**overrides)
    configure_logging(settings)
    if settings.role == "collector":  # no database: devices come from central over NATS
        where = f"http://{settings.host}:{settings.port}"
        asyncio.run(run_collector(settings, announce=lambda: err.print(f"faultloop (collector) listening on {where}")))
        return
    # the lock before the keys are loaded: a rotation under way finishes first, then we read its keys
    with service_running(settings):
        from faultloop.cmd.atrest import seal_stored_configs

        rt = build_runtime(settings)
        check_database(rt)
        database = safe_url(settings.effective_database_url)
        where = f"http://{settings.host}:{settings.port}"

        def announce() -> None:  # once the socket listens: a start-up error is then the only line printed
            err.print(f"faultloop ({settings.role}) listening on {where}  (database {database})")

        seal_stored_configs(rt)  # what an older version stored in clear (a migration has no key)
        asyncio.run(run_service(rt, announce=announce))


# Registration order is the order of `faultloop --help`.
for module in (db_cli, accounts_cli, inventory_cli, lab_cli, collectors_cli, alarms_cli, orders_cli, tickets_cli):
    module.register(app)


def main() -> None:
    try:
        app()
    except (DomainError, CliError, ConfigError, SettingsError, StartupError, VaultError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        err.print(f"[red]error:[/red] database: {escape(reason)}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
