"""`faultloop demo` and `faultloop lab ...`: the built-in lab network."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from faultloop import migrate
from faultloop.accounts import service as accounts
from faultloop.cmd.cli.common import CLI_ACTOR, cli_settings, err
from faultloop.cmd.cli.inventory import import_doc
from faultloop.db import transaction
from faultloop.errors import DomainError
from faultloop.runtime import Runtime, build_runtime, check_database, configure_logging, service_running
from inventory.schemas import InventoryDoc

DEMO_POLL_INTERVAL_S = 15.0
# The demo's loop is watched by a newcomer: a fault runs from alarm to verified ticket in a few
# minutes. These apply unless the settings name them.
DEMO_SETTINGS: dict[str, float] = {
    "poll_interval_s": DEMO_POLL_INTERVAL_S,  # live rates sooner
    "ticket_hold_down_s": 30.0,  # a repaired fault is verified after 30 s clear (default 5 min)
    "provisioning_window_grace_s": 10,  # the orders' maintenance windows close soon after activation
    "alarm_topology_refresh_s": 10.0,  # the alarm engine sees the new services soon
}


def register(app: typer.Typer) -> None:
    app.command()(demo)
    try:
        from lab.cli import app as lab_app
    except ImportError:  # the lab package is optional in a trimmed install
        return
    app.add_typer(lab_app, name="lab", help="The built-in lab network: simulated devices and fault injection.")


def seed_admin(rt: Runtime, session: Session) -> tuple[str | None, str]:
    """Create the demo admin if missing; return (password or None if it existed, new token)."""
    password = None
    try:
        user = accounts.get_user(session, "admin")
    except DomainError:
        password = secrets.token_urlsafe(12)
        user = accounts.create_user(session, username="admin", role="admin", password=password, actor=CLI_ACTOR)
    _row, token = accounts.create_token(
        session, user=user, name="demo", ttl_days=rt.settings.token_ttl_days, actor=CLI_ACTOR
    )
    return password, token


def demo(
    devices: Annotated[int, typer.Option(help="0: the ~20-device demo topology; N: a generated network")] = 0,
    lab_snmp_port: Annotated[int, typer.Option(min=1, max=65535, help="UDP port of every lab SNMP agent")] = 16100,
    lab_ssh_port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port of every lab SSH CLI")] = 2222,
    lab_control_port: Annotated[int, typer.Option(min=1, max=65535, help="lab fault-injection HTTP API")] = 8099,
) -> None:
    """Migrate, seed an admin, start the lab network, import it, and serve."""
    from faultloop.cmd.atrest import seal_stored_configs
    from faultloop.cmd.demo import run_demo
    from faultloop.cmd.demo_loop import seed_crew

    settings = cli_settings()
    unset = {k: v for k, v in DEMO_SETTINGS.items() if k not in settings.model_fields_set}
    settings = settings.model_copy(update=unset)
    configure_logging(settings)
    # the demo's loop calls the service over HTTP every few seconds: its lines, not each request
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    # the service lock `secrets rotate` checks, held for the demo's life and taken before the keys
    # are loaded (a rotation under way finishes first): the demo serves like `faultloop serve`
    with service_running(settings):
        rt = build_runtime(settings)
        check_database(rt, require_current=False)
        migrate.upgrade(rt.engine)
        seal_stored_configs(rt)
        with transaction(rt.sessions) as session:
            password, token = seed_admin(rt, session)
            crew = seed_crew(rt, session) if not devices else None
        asyncio.run(
            run_demo(
                rt,
                password=password,
                token=token,
                generate=devices,
                console=err,
                import_inventory=lambda doc: _import_tx(rt, doc),
                snmp_port=lab_snmp_port,
                ssh_port=lab_ssh_port,
                control_port=lab_control_port,
                crew=crew,
            )
        )


def _import_tx(rt: Runtime, doc: InventoryDoc) -> dict[str, int]:
    with transaction(rt.sessions) as session:
        return import_doc(rt, session, doc, quiet=True)
