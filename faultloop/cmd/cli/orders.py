"""`faultloop order ...` and `faultloop catalog list`: service orders."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from faultloop.cmd.cli.common import (
    CLI_ACTOR,
    CliError,
    DurableEventSink,
    cli_settings,
    err,
    open_runtime,
    out,
    tx,
)

order_app = typer.Typer(no_args_is_help=True, help="Service orders: plan (dry run with diff), approve, run, show.")
catalog_app = typer.Typer(no_args_is_help=True, help="The service catalog (service types and their templates).")


def register(app: typer.Typer) -> None:
    app.add_typer(order_app, name="order")
    app.add_typer(catalog_app, name="catalog")


ActorOpt = typer.Option(CLI_ACTOR, "--actor", help="Name recorded in the order's timeline (audit log).")


def _print_order(order_id: int) -> None:
    from provisioning import service as orders

    with tx() as (rt, session):
        view = orders.order_out(session, orders.get_order(session, order_id), vault=rt.vault)
    out.print(
        f"order {view.id}: {view.action} {escape(view.service_type)} for {escape(view.customer)}"
        f" - [bold]{view.state}[/bold]" + (f" (service {view.service_id})" if view.service_id else "")
    )
    if view.result:
        out.print(escape(view.result), highlight=False)
    for item in view.items:
        out.print(f"  {escape(item.hostname)}: {item.status} {escape(item.message)}", highlight=False)


@order_app.command("plan")
def order_plan(file: Path, actor: str = ActorOpt) -> None:
    """Create an order from FILE (YAML or JSON), validate and plan it: prints each device's diff, sends nothing."""
    import yaml

    from provisioning import service as orders

    try:
        body = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{file}: not YAML/JSON: {exc}") from None
    with tx() as (rt, session):
        order = orders.create_order(session, orders.parse_order(body), actor=actor)
        orders.act(session, order.id, "plan", actor=actor, role="provisioner", four_eyes=True, vault=rt.vault)
        for item in orders.items(session, order.id):
            diff = orders.item_diff(rt.vault, item)
            print(diff, end="" if diff.endswith("\n") else "\n")
        order_id = order.id
    err.print(f"order {order_id} planned; approve with `faultloop order approve {order_id} --actor NAME`")


@order_app.command("approve")
def order_approve(order_id: int, actor: str = ActorOpt) -> None:
    """Approve a planned order (four-eyes: the actor must not be its author)."""
    from provisioning import service as orders

    with tx() as (rt, session):
        orders.act(
            session,
            order_id,
            "approve",
            actor=actor,
            role="admin",
            four_eyes=rt.settings.provisioning_four_eyes,
            vault=rt.vault,
        )
    _print_order(order_id)


@order_app.command("cancel")
def order_cancel(order_id: int, actor: str = ActorOpt) -> None:
    """Cancel an order that has not started."""
    from provisioning import service as orders

    with tx() as (rt, session):
        orders.act(
            session,
            order_id,
            "cancel",
            actor=actor,
            role="admin",
            four_eyes=rt.settings.provisioning_four_eyes,
            vault=rt.vault,
        )
    _print_order(order_id)


@order_app.command("run")
def order_run(order_id: int, actor: str = ActorOpt) -> None:
    """Execute an approved order now: backup, push, verify, save - or roll every device back."""
    from provisioning.executor import execute_order

    rt = open_runtime()
    outcome = execute_order(rt, order_id, actor=actor, role="admin", sink=DurableEventSink(rt))
    _print_order(order_id)
    if outcome.state != "completed":
        raise SystemExit(1)


@order_app.command("show")
def order_show(order_id: int) -> None:
    """An order, its devices and its timeline."""
    from provisioning import service as orders

    _print_order(order_id)
    with tx() as (_rt, session):
        for entry in orders.timeline(session, order_id):
            state = (entry.after or {}).get("state", "")
            out.print(f"  {entry.at.isoformat()} {escape(entry.actor)} {entry.action} -> {state}", highlight=False)


@catalog_app.command("list")
def catalog_list() -> None:
    """Service types, their platforms and fields (the catalog is validated as it loads)."""
    from provisioning.render import CatalogError, catalog

    try:
        types = catalog(cli_settings().provisioning_catalog_dir)
    except CatalogError as exc:
        raise CliError(str(exc)) from None
    table = Table("service type", "platforms", "fields", "description")
    for st in types.values():
        fields = ", ".join(f"{f.name}{'' if f.required else '?'}:{f.type}" for f in st.fields.values())
        table.add_row(st.name, ", ".join(st.platforms), fields, st.description)
    out.print(table)
