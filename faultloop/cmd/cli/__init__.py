"""The `faultloop` command line (typer + rich).

Tables and progress go to stderr-safe rich consoles; commands meant for scripts
(`token create`, `--json`) print only their result on stdout.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from faultloop import clock, migrate
from faultloop.accounts import service as accounts
from faultloop.db import safe_url, transaction, write_transaction
from faultloop.errors import DomainError
from faultloop.events import Event, Sample
from faultloop.runtime import Runtime, StartupError, build_runtime, check_database, configure_logging
from faultloop.settings import Settings, SettingsError, load_settings
from faultloop.vault import VaultError, finish_key_file, key_from_env, prepend_key_file
from inventory import files
from inventory import service as inventory
from inventory.schemas import DeviceIn, InventoryDoc

app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, help="faultloop: network OSS for NOCs."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
user_app = typer.Typer(no_args_is_help=True, help="Users and roles.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
inventory_app = typer.Typer(no_args_is_help=True, help="Bulk inventory import and export.")
device_app = typer.Typer(no_args_is_help=True, help="Devices.")
secrets_app = typer.Typer(no_args_is_help=True, help="Secrets at rest.")
for sub, name in (
    (db_app, "db"),
    (user_app, "user"),
    (token_app, "token"),
    (inventory_app, "inventory"),
    (device_app, "device"),
    (secrets_app, "secrets"),
):
    app.add_typer(sub, name=name)

out = Console()
err = Console(stderr=True)
CLI_ACTOR = "cli"
DEMO_POLL_INTERVAL_S = 15.0


class CliError(Exception):
    pass


def _settings() -> Settings:
    return load_settings()


def _runtime(*, require_current: bool = True) -> Runtime:
    rt = build_runtime(_settings())
    check_database(rt, require_current=require_current)
    return rt


@contextmanager
def _tx() -> Iterator[tuple[Runtime, Session]]:
    rt = _runtime()
    with write_transaction(rt.sessions) as session:  # most commands write; SQLite: lock up front
        yield rt, session


# ---- serve / db -------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides FAULTLOOP_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides FAULTLOOP_PORT")] = None,
) -> None:
    """Run the service: HTTP API, pollers, receivers, alarm engine, ticketing."""
    from faultloop.cmd.app import run_service

    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(**overrides)
    configure_logging(settings)
    rt = build_runtime(settings)
    check_database(rt)
    database = safe_url(settings.effective_database_url)
    err.print(f"faultloop listening on http://{settings.host}:{settings.port}  (database {database})")
    asyncio.run(run_service(rt))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    rt = _runtime(require_current=False)
    migrate.upgrade(rt.engine)
    err.print(f"database at {safe_url(rt.settings.effective_database_url)} is at {migrate.current_revision(rt.engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the applied and the expected migration."""
    rt = _runtime(require_current=False)
    out.print(f"current {migrate.current_revision(rt.engine)}, head {migrate.head_revision()}")


# ---- users and tokens ---------------------------------------------------------------


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
    with _tx() as (_rt, session):
        user = accounts.create_user(session, username=name, role=role, password=password, actor=CLI_ACTOR)
        err.print(f"user {user.username} ({user.role.value}) created")


@user_app.command("list")
def user_list() -> None:
    with _tx() as (_rt, session):
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
    with _tx() as (rt, session):
        user = accounts.get_user(session, username)
        _row, token = accounts.create_token(
            session, user=user, name=name, ttl_days=rt.settings.token_ttl_days, actor=CLI_ACTOR
        )
    print(token)


# ---- inventory ----------------------------------------------------------------------


def _import(rt: Runtime, session: Session, doc: InventoryDoc, *, quiet: bool = False) -> dict[str, int]:
    with Progress(console=err, transient=True, disable=quiet) as progress:
        task = progress.add_task("importing devices", total=len(doc.devices))
        return inventory.import_inventory(
            session, rt.vault, doc, actor=CLI_ACTOR, progress=lambda _h: progress.advance(task)
        )


@inventory_app.command("import")
def inventory_import(file: Path) -> None:
    """Import sites, devices, interfaces and links from YAML or CSV, all or nothing."""
    doc = files.parse_file(file)
    with _tx() as (rt, session):
        counts = _import(rt, session, doc)
    err.print(
        f"imported {file}: {counts['devices_created']} device(s) created, {counts['devices_updated']} updated, "
        f"{counts['sites']} site(s), {counts['links']} new link(s)"
    )


@inventory_app.command("export")
def inventory_export(
    fmt: Annotated[str, typer.Option("--format", help="yaml or csv")] = "yaml",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    with_secrets: Annotated[bool, typer.Option("--with-secrets", help="Include decrypted secrets")] = False,
) -> None:
    """Export the inventory (secrets redacted unless --with-secrets)."""
    if fmt not in ("yaml", "csv"):
        raise CliError(f"--format: expected yaml or csv, got {fmt!r}")
    with _tx() as (rt, session):
        doc = inventory.export_inventory(session, rt.vault, with_secrets=with_secrets)
    text = files.dump_yaml(doc) if fmt == "yaml" else files.dump_csv(doc)
    if output:
        output.write_text(text)
        if with_secrets:
            output.chmod(0o600)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@device_app.command("list")
def device_list(
    site: Annotated[str | None, typer.Option()] = None,
    role: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    with _tx() as (_rt, session):
        rows, _total = inventory.list_devices(session, limit=100_000, offset=0, site=site, role=role)
        devices = [inventory.device_out(d) for d in rows]
    if as_json:
        print(json.dumps([d.model_dump() for d in devices], indent=2))
        return
    table = Table("hostname", "address", "site", "role", "vendor/platform", "device_type", "snmp")
    for d in devices:
        table.add_row(
            d.hostname,
            d.address,
            d.site or "-",
            d.role,
            f"{d.vendor}/{d.platform}",
            d.device_type,
            d.snmp.version if d.snmp else "-",
        )
    out.print(table)


@device_app.command("show")
def device_show(hostname: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    with _tx() as (_rt, session):
        device = inventory.device_by_hostname(session, hostname)
        data = inventory.device_out(device).model_dump()
        data["interfaces"] = [
            {"name": i.name, "if_index": i.if_index, "description": i.description, "speed_mbps": i.speed_mbps}
            for i in device.interfaces
        ]
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table("field", "value", show_header=False)
    for key, value in data.items():
        if key != "interfaces":
            table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    out.print(table)
    itfs = Table("interface", "ifIndex", "speed (Mb/s)", "description")
    for i in data["interfaces"]:
        itfs.add_row(i["name"], str(i["if_index"] or "-"), str(i["speed_mbps"] or "-"), i["description"])
    out.print(itfs)


@device_app.command("add")
def device_add(
    hostname: str,
    address: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option()],
    site: Annotated[str | None, typer.Option()] = None,
    vendor: Annotated[str, typer.Option()] = "",
    platform: Annotated[str, typer.Option()] = "",
    device_type: Annotated[str, typer.Option()] = "",
    snmp_version: Annotated[str | None, typer.Option(help="v1, v2c or v3; the community is read from stdin")] = None,
    snmp_port: Annotated[int, typer.Option()] = 161,
) -> None:
    """Add one device. An SNMP community is read from stdin so it never shows in `ps`."""
    snmp: dict[str, Any] | None = None
    if snmp_version:
        snmp = {"version": snmp_version, "port": snmp_port}
        if snmp_version in ("v1", "v2c"):
            snmp["community"] = sys.stdin.readline().rstrip("\r\n")
    from pydantic import ValidationError

    try:
        data = DeviceIn.model_validate(
            {
                "hostname": hostname,
                "address": address,
                "role": role,
                "site": site,
                "vendor": vendor,
                "platform": platform,
                "device_type": device_type,
                "snmp": snmp,
            }
        )
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(p) for p in e["loc"])
        raise CliError(f"{field}: {str(e['msg']).removeprefix('Value error, ')}") from None
    with _tx() as (rt, session):
        device = inventory.create_device(session, rt.vault, data, actor=CLI_ACTOR)
        err.print(f"device {device.hostname} added (id {device.id})")


# ---- secrets ----------------------------------------------------------------------


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored secret under a new key.

    With a key file, a new key is generated and the old one retired. With
    FAULTLOOP_SECRET_KEY, put the new key first ("NEW,OLD") and run this; then drop OLD."""
    settings = _settings()
    if key_from_env(settings):
        rt = _runtime()
        if len(rt.vault.keys) < 2:
            raise CliError('FAULTLOOP_SECRET_KEY holds one key; set it to "NEW,OLD" to rotate')
        with transaction(rt.sessions) as session:
            count = inventory.rotate_secrets(session, rt.vault)
        err.print(
            f"re-encrypted {count} secret(s) under the first key; now remove the old key from FAULTLOOP_SECRET_KEY"
        )
        return
    keys = prepend_key_file(settings)
    rt = _runtime()
    with transaction(rt.sessions) as session:
        count = inventory.rotate_secrets(session, rt.vault)
    finish_key_file(settings, keys)
    err.print(f"re-encrypted {count} secret(s) under a new key in {settings.secret_key_file}")


# ---- demo ---------------------------------------------------------------------------


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


@app.command()
def demo(
    devices: Annotated[int, typer.Option(help="0: the ~20-device demo topology; N: a generated network")] = 0,
    lab_snmp_port: Annotated[int, typer.Option(min=1, max=65535, help="UDP port of every lab SNMP agent")] = 16100,
    lab_ssh_port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port of every lab SSH CLI")] = 2222,
    lab_control_port: Annotated[int, typer.Option(min=1, max=65535, help="lab fault-injection HTTP API")] = 8099,
) -> None:
    """Migrate, seed an admin, start the lab network, import it, and serve."""
    from faultloop.cmd.demo import run_demo

    settings = _settings()
    if "poll_interval_s" not in settings.model_fields_set:  # the demo shows live rates sooner
        settings = settings.model_copy(update={"poll_interval_s": DEMO_POLL_INTERVAL_S})
    configure_logging(settings)
    rt = build_runtime(settings)
    check_database(rt, require_current=False)
    migrate.upgrade(rt.engine)
    with transaction(rt.sessions) as session:
        password, token = seed_admin(rt, session)
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
        )
    )


def _import_tx(rt: Runtime, doc: InventoryDoc) -> dict[str, int]:
    with transaction(rt.sessions) as session:
        return _import(rt, session, doc, quiet=True)


# ---- SNMP poll ------------------------------------------------------------------------


@app.command()
def poll(hostname: str, as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False) -> None:
    """Poll one device over SNMP now: system, interfaces, CPU/memory; stores the result.

    Exit code 1 when the device did not answer. Rates need two polls, so a one-shot poll
    shows counters' status only (the running service shows rates).
    """
    from collectors import service as poll_service
    from collectors.jobs import poll_now

    with _tx() as (rt, session):
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


# ---- config backup and SSH host keys ------------------------------------------------

hostkey_app = typer.Typer(no_args_is_help=True, help="SSH host keys of devices (view, accept a new key).")
app.add_typer(hostkey_app, name="hostkey")


class _DurableEventSink:
    """A one-shot command has no alarm engine in-process: its events go to the engine's durable
    queue (``alarm_events``, processed=false), which the serving process drains every tick."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def submit_events(self, events: Sequence[Event]) -> bool:
        from alarms import service as alarm_service

        with transaction(self.rt.sessions) as session:
            alarm_service.store_events(session, events, now=clock.now())
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return False


@app.command("backup")
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
    rt = _runtime()
    with transaction(rt.sessions) as session:
        device_id = inventory.device_by_hostname(session, args[0]).id
    try:
        outcome = backups.backup_device(rt, device_id, sink=_DurableEventSink(rt), trigger="on_demand", actor=CLI_ACTOR)
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
        print(backups.diff_backups(session, device_id=device_id, backup_id=outcome.backup_id).text, end="")


def _backup_id(value: str, name: str) -> int:
    if not value.isdigit():
        raise CliError(f"{name}: expected a backup id (a number), got {value!r}")
    return int(value)


def _backup_diff(args: list[str]) -> None:
    from collectors import backup as backups

    if not 1 <= len(args) <= 3:
        raise CliError("usage: faultloop backup diff DEVICE [A [B]]")
    with _tx() as (_rt, session):
        device = inventory.device_by_hostname(session, args[0])
        if len(args) == 1:
            latest = backups.latest_backup(session, device.id)
            if latest is None:
                raise CliError(f"device {device.hostname!r} has no config backup yet")
            diff = backups.diff_backups(session, device_id=device.id, backup_id=latest.id)
        elif len(args) == 2:
            diff = backups.diff_backups(session, device_id=device.id, backup_id=_backup_id(args[1], "A"))
        else:
            older, newer = _backup_id(args[1], "A"), _backup_id(args[2], "B")
            diff = backups.diff_backups(session, device_id=device.id, backup_id=newer, against=older)
    if not diff.text:
        err.print("no differences")
    print(diff.text, end="")


@hostkey_app.command("show")
def hostkey_show(hostname: str) -> None:
    """The trusted and any pending SSH host key fingerprint of a device."""
    from devices import hostkeys

    with _tx() as (_rt, session):
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

    with _tx() as (rt, session):
        device = inventory.device_by_hostname(session, hostname)
        row = hostkeys.accept_pending(session, device=device, actor=CLI_ACTOR, expected_fingerprint=fingerprint)
        cleared = hostkeys.host_key_accepted_event(device, row, actor=CLI_ACTOR)
        message = f"{escape(device.hostname)}: now trusting {row.key_type} {row.fingerprint}"
    _DurableEventSink(rt).submit_events([cleared])  # clears the host_key_changed alarm, after the commit
    err.print(message)


def _mount_lab() -> None:
    try:
        from lab.cli import app as lab_app
    except ImportError:  # the lab package is optional in a trimmed install
        return
    app.add_typer(lab_app, name="lab", help="The built-in lab network: simulated devices and fault injection.")


_mount_lab()


# ---- alarms: rules, alarms, maintenance windows --------------------------------------------

rules_app = typer.Typer(no_args_is_help=True, help="Alarm rules: check files, replay scenarios.")
alarm_app = typer.Typer(no_args_is_help=True, help="Alarms: list, acknowledge, comment, clear.")
maintenance_app = typer.Typer(no_args_is_help=True, help="Maintenance windows (alarms inside are muted).")
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
    with _tx() as (_rt, session):
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

    with _tx() as (_rt, session):
        alarms.acknowledge(session, alarm_id, actor=CLI_ACTOR)
    out.print(f"alarm {alarm_id} acknowledged")


@alarm_app.command("unack")
def alarm_unack(alarm_id: int) -> None:
    """Take back an acknowledgement (journaled and audited)."""
    from alarms import service as alarms

    with _tx() as (_rt, session):
        alarms.unacknowledge(session, alarm_id, actor=CLI_ACTOR)
    out.print(f"alarm {alarm_id} unacknowledged")


@alarm_app.command("severity")
def alarm_severity(alarm_id: int, severity: str) -> None:
    """Change an active alarm's severity (critical, major, minor, warning, indeterminate)."""
    from alarms import service as alarms

    if severity not in ("critical", "major", "minor", "warning", "indeterminate"):
        raise CliError("severity: expected critical, major, minor, warning or indeterminate")
    with _tx() as (_rt, session):
        alarms.set_severity(session, alarm_id, actor=CLI_ACTOR, severity=severity)
    out.print(f"alarm {alarm_id} severity set to {severity}")


@alarm_app.command("clear")
def alarm_clear(alarm_id: int, reason: Annotated[str, typer.Option()] = "manual clear") -> None:
    """Clear an alarm by hand (journaled and audited)."""
    from alarms import service as alarms

    with _tx() as (_rt, session):
        alarms.clear(session, alarm_id, actor=CLI_ACTOR, reason=reason)
    out.print(f"alarm {alarm_id} cleared")


@alarm_app.command("comment")
def alarm_comment(alarm_id: int, text: str) -> None:
    """Add a comment to an alarm's journal."""
    from alarms import service as alarms

    if not text.strip():
        raise CliError("comment: expected some text")
    with _tx() as (_rt, session):
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
    with _tx() as (_rt, session):
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
    from faultloop import clock

    with _tx() as (_rt, session):
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


# ---- collectors: trap and syslog receivers ------------------------------------------------

receivers_app = typer.Typer(no_args_is_help=True, help="Trap and syslog receivers.")
app.add_typer(receivers_app, name="receivers")


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

    settings = _settings()
    users_file = users or settings.trap_v3_users_file
    try:
        traps = load_trap_map(trap_map or settings.trap_map_file)
        user_count = len(load_users(users_file)) if users_file else 0
        rules = load_rules(syslog_rules or settings.syslog_rules_file)
    except (MappingFileError, UsmConfigError) as exc:
        raise CliError(str(exc)) from None
    out.print(f"ok: {len(traps)} trap mappings, {user_count} SNMPv3 users, {len(rules)} syslog rules")


# ---- provisioning: service catalog and orders ------------------------------------------------

order_app = typer.Typer(no_args_is_help=True, help="Service orders: plan (dry run with diff), approve, run, show.")
catalog_app = typer.Typer(no_args_is_help=True, help="The service catalog (service types and their templates).")
app.add_typer(order_app, name="order")
app.add_typer(catalog_app, name="catalog")
ActorOpt = typer.Option(CLI_ACTOR, "--actor", help="Name recorded in the order's timeline (audit log).")


def _print_order(order_id: int) -> None:
    from provisioning import service as orders

    with _tx() as (_rt, session):
        view = orders.order_out(session, orders.get_order(session, order_id))
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
    with _tx() as (_rt, session):
        order = orders.create_order(session, orders.parse_order(body), actor=actor)
        orders.act(session, order.id, "plan", actor=actor, role="provisioner", four_eyes=True)
        for item in orders.items(session, order.id):
            print(item.diff, end="" if item.diff.endswith("\n") else "\n")
        order_id = order.id
    err.print(f"order {order_id} planned; approve with `faultloop order approve {order_id} --actor NAME`")


@order_app.command("approve")
def order_approve(order_id: int, actor: str = ActorOpt) -> None:
    """Approve a planned order (four-eyes: the actor must not be its author)."""
    from provisioning import service as orders

    with _tx() as (rt, session):
        orders.act(
            session, order_id, "approve", actor=actor, role="admin", four_eyes=rt.settings.provisioning_four_eyes
        )
    _print_order(order_id)


@order_app.command("cancel")
def order_cancel(order_id: int, actor: str = ActorOpt) -> None:
    """Cancel an order that has not started."""
    from provisioning import service as orders

    with _tx() as (rt, session):
        orders.act(session, order_id, "cancel", actor=actor, role="admin", four_eyes=rt.settings.provisioning_four_eyes)
    _print_order(order_id)


@order_app.command("run")
def order_run(order_id: int, actor: str = ActorOpt) -> None:
    """Execute an approved order now: backup, push, verify, save - or roll every device back."""
    from provisioning.executor import execute_order

    rt = _runtime()
    outcome = execute_order(rt, order_id, actor=actor, role="admin", sink=_DurableEventSink(rt))
    _print_order(order_id)
    if outcome.state != "completed":
        raise SystemExit(1)


@order_app.command("show")
def order_show(order_id: int) -> None:
    """An order, its devices and its timeline."""
    from provisioning import service as orders

    _print_order(order_id)
    with _tx() as (_rt, session):
        for entry in orders.timeline(session, order_id):
            state = (entry.after or {}).get("state", "")
            out.print(f"  {entry.at.isoformat()} {escape(entry.actor)} {entry.action} -> {state}", highlight=False)


@catalog_app.command("list")
def catalog_list() -> None:
    """Service types, their platforms and fields (the catalog is validated as it loads)."""
    from provisioning.render import CatalogError, catalog

    try:
        types = catalog(_settings().provisioning_catalog_dir)
    except CatalogError as exc:
        raise CliError(str(exc)) from None
    table = Table("service type", "platforms", "fields", "description")
    for st in types.values():
        fields = ", ".join(f"{f.name}{'' if f.required else '?'}:{f.type}" for f in st.fields.values())
        table.add_row(st.name, ", ".join(st.platforms), fields, st.description)
    out.print(table)


# ---- tickets and technicians ----------------------------------------------------------

ticket_app = typer.Typer(no_args_is_help=True, help="Trouble tickets (see docs/tickets.md).")
technician_app = typer.Typer(no_args_is_help=True, help="Technician profiles for dispatch.")
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

    with _tx() as (_rt, session):
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

    with _tx() as (_rt, session):
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
    from ticketing.policy import load_policy

    data: dict[str, Any] = {}
    for item in fields or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set {item!r}: expected field=value")
        data[key] = int(value) if key == "rating" and value.isdigit() else value
    if "parts_used" in data:
        data["parts_used"] = [p for p in str(data["parts_used"]).split(",") if p]
    with _tx() as (rt, session):
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
) -> None:
    """Create or replace the dispatch profile of USER (an existing user with role technician)."""
    from ticketing import dispatch

    split = lambda v: [x.strip() for x in v.split(",") if x.strip()]  # noqa: E731
    with _tx() as (_rt, session):
        prof = dispatch.upsert_profile(session, username=user, skills=split(skills), sites=split(sites), team=team,
                                       tier=tier, on_shift=not off_shift)  # fmt: skip
        summary = (
            f"technician {user}: skills {','.join(prof.skills) or '-'}, sites {','.join(prof.sites) or '-'},"
            f" tier {prof.tier}"
        )
    out.print(summary, highlight=False)


def main() -> None:
    try:
        app()
    except (DomainError, CliError, SettingsError, StartupError, VaultError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        err.print(f"[red]error:[/red] database: {escape(reason)}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None

