"""`faultloop ticket ...` and `faultloop technician add`: trouble tickets."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from faultloop import clock
from faultloop.cmd.cli.common import CLI_ACTOR, CliError, out, tx

ticket_app = typer.Typer(no_args_is_help=True, help="Trouble tickets (see docs/tickets.md).")
technician_app = typer.Typer(no_args_is_help=True, help="Technician profiles for dispatch.")


def register(app: typer.Typer) -> None:
    app.add_typer(ticket_app, name="ticket")
    app.add_typer(technician_app, name="technician")


@ticket_app.command("list")
def ticket_list(
    state: Annotated[str | None, typer.Option()] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only tickets not closed or cancelled")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    from ticketing import service as tickets
    from ticketing.schemas import TicketOut

    with tx() as (_rt, session):
        rows, total = tickets.list_tickets(session, limit=limit, offset=0, state=state, open_only=open_only)
        items = [TicketOut.model_validate(t).model_copy(update={"assignee": tickets._username(session, t.assignee_id)})
                 for t in rows]  # fmt: skip
    if as_json:
        print(json.dumps([t.model_dump(mode="json") for t in items], indent=2))
        return
    table = Table("id", "state", "prio", "title", "site", "device", "assignee", "created", title=f"{total} tickets")
    for t in items:
        table.add_row(str(t.id), t.state, t.priority, escape(t.title), t.site, t.device, t.assignee or "-",
                      t.created_at.isoformat(timespec="seconds"))  # fmt: skip
    out.print(table)


@ticket_app.command("show")
def ticket_show(ticket_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    from ticketing import service as tickets
    from ticketing.schemas import TicketOut, TimelineOut

    with tx() as (_rt, session):
        ticket = tickets.get(session, ticket_id)
        assignee = tickets._username(session, ticket.assignee_id)
        data = TicketOut.model_validate(ticket).model_copy(update={"assignee": assignee})
        timeline = [TimelineOut.model_validate(e) for e in tickets.timeline(session, ticket_id)]
    if as_json:
        print(json.dumps({**data.model_dump(mode="json"), "timeline": [e.model_dump(mode="json") for e in timeline]},
                         indent=2))  # fmt: skip
        return
    out.print(f"[bold]#{data.id}[/bold] {escape(data.title)}  [{data.state}] {data.priority} v{data.version}",
              highlight=False)  # fmt: skip
    out.print(f"site {data.site or '-'}  device {data.device or '-'}  assignee {data.assignee or '-'}", highlight=False)
    table = Table("at", "actor", "action", "from", "to", "detail")
    for e in timeline:
        table.add_row(e.at.isoformat(timespec="seconds"), escape(e.actor), e.action, e.from_state or "",
                      e.to_state or "", escape(json.dumps(e.detail, default=str))[:120])  # fmt: skip
    out.print(table)


@ticket_app.command("transition")
def ticket_transition(
    ticket_id: int,
    action: str,
    fields: Annotated[list[str] | None, typer.Option("--set", help="field=value, e.g. --set reason=duplicate")] = None,
    version: Annotated[int | None, typer.Option(help="Refuse if the ticket is no longer at this version")] = None,
) -> None:
    """Apply one state machine action as the CLI operator (role admin).

    Example: faultloop ticket transition 7 cancel --set reason=duplicate
    """
    from ticketing import service as tickets
    from ticketing.notify import outbox_hook
    from ticketing.policy import load_policy

    data: dict[str, Any] = {}
    for item in fields or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set {item!r}: expected field=value")
        data[key] = int(value) if key == "rating" and value.isdigit() else value
    if "parts_used" in data:
        data["parts_used"] = [p for p in str(data["parts_used"]).split(",") if p]
    with tx() as (rt, session), outbox_hook(rt):
        ticket = tickets.transition(
            session, policy=load_policy(rt.settings.ticket_policy_file), ticket_id=ticket_id, action=action,
            actor=tickets.Actor(CLI_ACTOR, "admin"), data=data, expected_version=version, now=clock.now(),
            reopen_window_s=rt.settings.ticket_reopen_window_s,
        )  # fmt: skip
        state, new_version = ticket.state, ticket.version
    out.print(f"ticket {ticket_id}: {action} -> {state} (version {new_version})", highlight=False)


@technician_app.command("add")
def technician_add(
    user: str,
    skills: Annotated[str, typer.Option(help="Comma-separated, e.g. fiber,router")] = "",
    sites: Annotated[str, typer.Option(help="Comma-separated site names; * = anywhere")] = "*",
    team: Annotated[str, typer.Option()] = "",
    tier: Annotated[int, typer.Option(min=1, max=5)] = 1,
    off_shift: Annotated[bool, typer.Option("--off-shift")] = False,
    notify_to: Annotated[
        str | None, typer.Option(help="E-mail address or http(s) webhook URL told of dispatches; '' removes it")
    ] = None,
) -> None:
    """Create or replace the dispatch profile of USER (an existing user with role technician)."""
    from ticketing import dispatch

    split = lambda v: [x.strip() for x in v.split(",") if x.strip()]  # noqa: E731
    with tx() as (rt, session):
        prof = dispatch.upsert_profile(session, username=user, skills=split(skills), sites=split(sites), team=team,
                                       tier=tier, on_shift=not off_shift, notify_to=notify_to,
                                       allow_private=rt.settings.technician_notify_allow_private)  # fmt: skip
        summary = (
            f"technician {user}: skills {','.join(prof.skills) or '-'}, sites {','.join(prof.sites) or '-'},"
            f" tier {prof.tier}"
        )
    out.print(summary, highlight=False)
