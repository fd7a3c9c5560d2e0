"""`faultloop inventory ...` and `faultloop device ...`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.orm import Session

from devices import hostkeys
from faultloop.cmd.cli.common import CLI_ACTOR, CliError, err, out, tx
from faultloop.runtime import Runtime
from inventory import files
from inventory import service as inventory
from inventory.schemas import DeviceIn, InventoryDoc

inventory_app = typer.Typer(no_args_is_help=True, help="Bulk inventory import and export.")
device_app = typer.Typer(no_args_is_help=True, help="Devices.")


def register(app: typer.Typer) -> None:
    app.add_typer(inventory_app, name="inventory")
    app.add_typer(device_app, name="device")


def import_doc(rt: Runtime, session: Session, doc: InventoryDoc, *, quiet: bool = False) -> dict[str, int]:
    with Progress(console=err, transient=True, disable=quiet) as progress:
        task = progress.add_task("importing devices", total=len(doc.devices))
        return inventory.import_inventory(
            session,
            rt.vault,
            doc,
            actor=CLI_ACTOR,
            forget_host_key=lambda device_id: hostkeys.forget(
                session, device_id=device_id, actor=CLI_ACTOR, reason="address changed by import"
            ),
            progress=lambda _h: progress.advance(task),
        )


@inventory_app.command("import")
def inventory_import(file: Path) -> None:
    """Import sites, devices, interfaces and links from YAML or CSV, all or nothing."""
    doc = files.parse_file(file)
    with tx() as (rt, session):
        counts = import_doc(rt, session, doc)
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
    with tx() as (rt, session):
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
    with tx() as (_rt, session):
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
    with tx() as (_rt, session):
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
    with tx() as (rt, session):
        device = inventory.create_device(session, rt.vault, data, actor=CLI_ACTOR)
        err.print(f"device {device.hostname} added (id {device.id})")
