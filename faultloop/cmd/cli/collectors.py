"""`faultloop poll`, `backup`, `hostkey ...` and `receivers check`: the collectors and device access."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

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
from faultloop.db import transaction
from inventory import service as inventory

hostkey_app = typer.Typer(no_args_is_help=True, help="SSH host keys of devices (view, accept a new key).")
receivers_app = typer.Typer(no_args_is_help=True, help="Trap and syslog receivers.")


def register(app: typer.Typer) -> None:
    app.command()(poll)
    app.add_typer(hostkey_app, name="hostkey")
    app.command("backup")(backup_cmd)
    app.add_typer(receivers_app, name="receivers")


def poll(hostname: str, as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False) -> None:
    """Poll one device over SNMP now: system, interfaces, CPU/memory; stores the result.

    Exit code 1 when the device did not answer. Rates need two polls, so a one-shot poll
    shows counters' status only (the running service shows rates).
    """
    from collectors import service as poll_service
    from collectors.jobs import poll_now

    with tx() as (rt, session):
        device_id = inventory.device_by_hostname(session, hostname).id
    result, _tracker = asyncio.run(poll_now(rt, device_id))
    with transaction(rt.sessions) as session:
        status = poll_service.device_status(session, device_id=device_id)
    data = {**status.model_dump(mode="json"), "ok": result.ok, "events": [e.event_type for e in result.events]}
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        table = Table("field", "value", show_header=False)
        keys = "hostname ok last_error sys_name sys_descr sys_uptime_cs cpu_percent memory_percent poll_duration_s"
        for key in keys.split():
            table.add_row(key, escape(str(data[key])))
        out.print(table)
        itfs = Table("interface", "ifIndex", "admin", "oper", "speed (Mb/s)", "description")
        for i in status.interfaces:
            itfs.add_row(
                escape(i.name),
                str(i.if_index or "-"),
                i.admin_status,
                i.oper_status,
                str(i.speed_mbps or "-"),
                escape(i.description),
            )
        out.print(itfs)
    if not result.ok:
        raise typer.Exit(1)







def backup_cmd(
    args: Annotated[list[str], typer.Argument(metavar="DEVICE | diff DEVICE [A [B]]", show_default=False)],
) -> None:
    """Back up DEVICE's configuration over SSH now and print what changed.

    `backup diff DEVICE` diffs the latest version against the one before, `backup diff
    DEVICE A` diffs version A against the one before it, `backup diff DEVICE A B` from A to B."""
    from collectors import backup as backups
    from devices.hostkeys import HostKeyError

    if args[0] == "diff":
        _backup_diff(args[1:])
        return
    if len(args) != 1:
        raise CliError("usage: faultloop backup DEVICE | faultloop backup diff DEVICE [A [B]]")
    from faultloop.cmd.collector import served_by_collectors

    rt = open_runtime()
    with transaction(rt.sessions) as session:
        device = inventory.device_by_hostname(session, args[0])
        device_id, group = device.id, device.collector_group
    remote = served_by_collectors(rt.settings)
    if remote is not None and remote(group):  # never an SSH session from here to a collector group's device
        raise CliError(
            f"{args[0]}: in collector group {group!r}, whose collectors take its backups; ask for one through "
            f"the API (POST /api/v1/devices/{device_id}/config-backups), which goes to the group's collector"
        )
    try:
        outcome = backups.backup_device(rt, device_id, sink=DurableEventSink(rt), trigger="on_demand", actor=CLI_ACTOR)
    except HostKeyError as exc:
        raise CliError(str(exc)) from None
    if outcome.status == "unchanged":
        err.print(f"{escape(outcome.hostname)}: configuration unchanged since backup {outcome.backup_id}")
        return
    if outcome.status == "first_version":
        err.print(f"{escape(outcome.hostname)}: first backup stored as version {outcome.backup_id}")
        return
    err.print(
        f"{escape(outcome.hostname)}: configuration changed, +{outcome.lines_added} -{outcome.lines_removed} lines; "
        f"stored as version {outcome.backup_id} (previous {outcome.previous_id})"
    )
    with transaction(rt.sessions) as session:
        print(backups.diff_backups(session, rt.vault, device_id=device_id, backup_id=outcome.backup_id).text, end="")


def _backup_id(value: str, name: str) -> int:
    if not value.isdigit():
        raise CliError(f"{name}: expected a backup id (a number), got {value!r}")
    return int(value)


def _backup_diff(args: list[str]) -> None:
    from collectors import backup as backups

    if not 1 <= len(args) <= 3:
        raise CliError("usage: faultloop backup diff DEVICE [A [B]]")
    with tx() as (rt, session):
        device = inventory.device_by_hostname(session, args[0])
        if len(args) == 1:
            latest = backups.latest_backup(session, device.id)
            if latest is None:
                raise CliError(f"device {device.hostname!r} has no config backup yet")
            diff = backups.diff_backups(session, rt.vault, device_id=device.id, backup_id=latest.id)
        elif len(args) == 2:
            diff = backups.diff_backups(session, rt.vault, device_id=device.id, backup_id=_backup_id(args[1], "A"))
        else:
            older, newer = _backup_id(args[1], "A"), _backup_id(args[2], "B")
            diff = backups.diff_backups(session, rt.vault, device_id=device.id, backup_id=newer, against=older)
    if not diff.text:
        err.print("no differences")
    print(diff.text, end="")


@hostkey_app.command("show")
def hostkey_show(hostname: str) -> None:
    """The trusted and any pending SSH host key fingerprint of a device."""
    from devices import hostkeys

    with tx() as (_rt, session):
        device = inventory.device_by_hostname(session, hostname)
        data = hostkeys.host_key_out(device, hostkeys.get_host_key(session, device.id))
    table = Table("field", "value", show_header=False)
    for key, value in data.items():
        table.add_row(key, escape(str(value) if value is not None else "-"))
    out.print(table)


@hostkey_app.command("accept")
def hostkey_accept(
    hostname: str,
    fingerprint: Annotated[
        str | None, typer.Option(help="The pending key's SHA256 fingerprint, as checked on the device's console")
    ] = None,
) -> None:
    """Trust the pending (changed or first) SSH host key of a device; audited."""
    from devices import hostkeys

    with tx() as (rt, session):
        device = inventory.device_by_hostname(session, hostname)
        row = hostkeys.accept_pending(session, device=device, actor=CLI_ACTOR, expected_fingerprint=fingerprint)
        cleared = hostkeys.host_key_accepted_event(device, row, actor=CLI_ACTOR)
        message = f"{escape(device.hostname)}: now trusting {row.key_type} {row.fingerprint}"
    DurableEventSink(rt).submit_events([cleared])  # clears the host_key_changed alarm, after the commit
    err.print(message)



@receivers_app.command("check")
def receivers_check(
    trap_map: Annotated[Path | None, typer.Option(help="Trap map YAML; default FAULTLOOP_TRAP_MAP_FILE")] = None,
    users: Annotated[Path | None, typer.Option(help="SNMPv3 users YAML; default FAULTLOOP_TRAP_V3_USERS_FILE")] = None,
    syslog_rules: Annotated[
        Path | None, typer.Option(help="Syslog rules YAML; default FAULTLOOP_SYSLOG_RULES_FILE")
    ] = None,
) -> None:
    """Validate the trap map, SNMPv3 users and syslog rules the receivers would load (no secret is printed)."""
    from collectors.syslog import load_rules
    from collectors.trapmap import MappingFileError, load_trap_map
    from collectors.traps.usm import UsmConfigError, load_users

    settings = cli_settings()
    users_file = users or settings.trap_v3_users_file
    try:
        traps = load_trap_map(trap_map or settings.trap_map_file)
        user_count = len(load_users(users_file)) if users_file else 0
        rules = load_rules(syslog_rules or settings.syslog_rules_file)
    except (MappingFileError, UsmConfigError) as exc:
        raise CliError(str(exc)) from None
    out.print(f"ok: {len(traps)} trap mappings, {user_count} SNMPv3 users, {len(rules)} syslog rules")
