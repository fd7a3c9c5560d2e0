"""`faultloop rules ...`, `alarm ...` and `maintenance ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from faultloop import clock
from faultloop.cmd.cli.common import CLI_ACTOR, CliError, err, out, tx

rules_app = typer.Typer(no_args_is_help=True, help="Alarm rules: check files, replay scenarios.")
alarm_app = typer.Typer(no_args_is_help=True, help="Alarms: list, acknowledge, comment, clear.")
maintenance_app = typer.Typer(no_args_is_help=True, help="Maintenance windows (alarms inside are muted).")


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
    app.add_typer(alarm_app, name="alarm")
    app.add_typer(maintenance_app, name="maintenance")


@rules_app.command("check")
def rules_check(files: Annotated[list[Path], typer.Argument(help="Rule YAML files")]) -> None:
    """Validate rule files on top of the defaults; errors name file, rule and field."""
    from alarms.rules import load_ruleset

    rules = load_ruleset(files)
    out.print(f"ok: {len(rules.mappings)} mapping rules, {len(rules.thresholds)} threshold rules")


@rules_app.command("test")
def rules_test(scenarios: Annotated[list[Path], typer.Argument(help="Scenario YAML files")]) -> None:
    """Replay scenarios through the real engine on a virtual clock and check the expected alarms."""
    from alarms.replay import run_file

    failed = 0
    for path in scenarios:
        result = run_file(path)
        if result.ok:
            out.print(f"[green]PASS[/green] {escape(str(path))}: {result.checks} checks", highlight=False)
            continue
        failed += 1
        out.print(f"[red]FAIL[/red] {escape(str(path))}", highlight=False)
        for failure in result.failures:
            out.print(f"  {escape(failure)}", highlight=False)
    if failed:
        raise typer.Exit(1)


@alarm_app.command("list")
def alarm_list(
    state: Annotated[str, typer.Option(help="active, cleared or all")] = "active",
    severity: Annotated[str | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alarms, newest first."""
    from alarms import service as alarms
    from alarms.schemas import AlarmOut

    if state not in ("active", "cleared", "all"):
        raise CliError("--state: expected active, cleared or all")
    with tx() as (_rt, session):
        rows, total = alarms.list_alarms(
            session, limit=limit, offset=0, state=None if state == "all" else state, severity=severity, device=device
        )
        items = [AlarmOut.model_validate(a) for a in rows]
    if as_json:
        print(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        return
    table = Table("id", "severity", "state", "device", "object", "type", "count", "last", "notes")
    for a in items:
        notes = "ROOT " if a.root_cause else ""
        notes += f"under #{a.parent_id} " if a.parent_id else ""
        notes += f"ack {a.ack_by} " if a.acknowledged else ""
        notes += f"muted: {a.suppression_reason}" if a.muted else ""
        table.add_row(
            str(a.id),
            a.severity,
            a.state,
            escape(a.device),
            escape(a.managed_object),
            a.alarm_type,
            str(a.count),
            a.last_occurrence.strftime("%Y-%m-%d %H:%M:%S"),
            escape(notes.strip()),
        )
    out.print(table)
    err.print(f"{len(items)} of {total}")


@alarm_app.command("ack")
def alarm_ack(alarm_id: int) -> None:
    """Acknowledge an alarm (journaled and audited)."""
    from alarms import service as alarms

    with tx() as (_rt, session):
        alarms.acknowledge(session, alarm_id, actor=CLI_ACTOR)
    out.print(f"alarm {alarm_id} acknowledged")


@alarm_app.command("unack")
def alarm_unack(alarm_id: int) -> None:
    """Take back an acknowledgement (journaled and audited)."""
    from alarms import service as alarms

    with tx() as (_rt, session):
        alarms.unacknowledge(session, alarm_id, actor=CLI_ACTOR)
    out.print(f"alarm {alarm_id} unacknowledged")


@alarm_app.command("severity")
def alarm_severity(alarm_id: int, severity: str) -> None:
    """Change an active alarm's severity (critical, major, minor, warning, indeterminate)."""
    from alarms import service as alarms

    if severity not in ("critical", "major", "minor", "warning", "indeterminate"):
        raise CliError("severity: expected critical, major, minor, warning or indeterminate")
    with tx() as (_rt, session):
        alarms.set_severity(session, alarm_id, actor=CLI_ACTOR, severity=severity)
    out.print(f"alarm {alarm_id} severity set to {severity}")


@alarm_app.command("clear")
def alarm_clear(alarm_id: int, reason: Annotated[str, typer.Option()] = "manual clear") -> None:
    """Clear an alarm by hand (journaled and audited)."""
    from alarms import service as alarms

    with tx() as (_rt, session):
        alarms.clear(session, alarm_id, actor=CLI_ACTOR, reason=reason)
    out.print(f"alarm {alarm_id} cleared")


@alarm_app.command("comment")
def alarm_comment(alarm_id: int, text: str) -> None:
    """Add a comment to an alarm's journal."""
    from alarms import service as alarms

    if not text.strip():
        raise CliError("comment: expected some text")
    with tx() as (_rt, session):
        alarms.comment(session, alarm_id, actor=CLI_ACTOR, text=text)
    out.print(f"comment added to alarm {alarm_id}")


@maintenance_app.command("add")
def maintenance_add(
    name: str,
    start: Annotated[str, typer.Option(help="ISO 8601 with timezone, e.g. 2026-03-01T02:00:00Z")],
    end: Annotated[str | None, typer.Option(help="ISO 8601; required for a one-off window")] = None,
    rrule: Annotated[str | None, typer.Option(help="RRULE, e.g. FREQ=WEEKLY;BYDAY=SU")] = None,
    cron: Annotated[str | None, typer.Option(help="cron expression (UTC)")] = None,
    duration_s: Annotated[int | None, typer.Option(help="length of each recurring occurrence")] = None,
    device: Annotated[list[str] | None, typer.Option(help="hostname (repeatable)")] = None,
    site: Annotated[list[str] | None, typer.Option(help="site name (repeatable)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="device tag (repeatable)")] = None,
    interface: Annotated[list[str] | None, typer.Option(help="hostname:interface (repeatable)")] = None,
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Add a maintenance window."""
    from pydantic import ValidationError

    from alarms import service as alarms
    from alarms.schemas import MaintenanceIn

    try:
        data = MaintenanceIn.model_validate(
            {
                "name": name,
                "starts_at": start,
                "ends_at": end,
                "rrule": rrule,
                "cron": cron,
                "duration_s": duration_s,
                "devices": device or [],
                "sites": site or [],
                "tags": tag or [],
                "interfaces": interface or [],
                "reason": reason,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "window"
        raise CliError(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None
    with tx() as (_rt, session):
        window = alarms.create_window(session, data, actor=CLI_ACTOR)
        window_id = window.id
    out.print(f"maintenance window {window_id} added")


@maintenance_app.command("list")
def maintenance_list(
    include_past: Annotated[bool, typer.Option("--all", help="Include windows that have ended")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Maintenance windows, current and future."""
    from alarms import service as alarms
    from alarms.schemas import MaintenanceOut

    with tx() as (_rt, session):
        items = []
        for w in alarms.list_windows(session, include_past=include_past):
            item = MaintenanceOut.model_validate(w)
            item.active_now = alarms.window_active(w, clock.now())
            items.append(item)
    if as_json:
        print(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        return
    table = Table("id", "name", "starts", "ends / recurrence", "scope", "active")
    for it in items:
        recurrence = it.rrule or it.cron
        when = f"{recurrence} for {it.duration_s}s" if recurrence else (it.ends_at.isoformat() if it.ends_at else "")
        scope = " ".join([*it.devices, *(f"site:{x}" for x in it.sites), *(f"tag:{x}" for x in it.tags)])
        scope = " ".join(filter(None, [scope, *it.interfaces]))
        active = "yes" if it.active_now else ""
        table.add_row(str(it.id), escape(it.name), it.starts_at.isoformat(), escape(when), escape(scope), active)
    out.print(table)
