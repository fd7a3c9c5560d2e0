"""`faultloop lab ...`: run the lab network and inject faults into a running lab."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import httpx
import typer

app = typer.Typer(help="The lab network: simulated devices with real SNMP and SSH.", no_args_is_help=True)
fault_app = typer.Typer(help="Inject faults into a running lab (through its control API).", no_args_is_help=True)
app.add_typer(fault_app, name="fault")

DEFAULT_CONTROL = "http://127.0.0.1:8099"
ControlOpt = typer.Option(DEFAULT_CONTROL, "--control", help="URL of the lab's control API.")


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--trap-receiver")
    return host, int(port)


@app.command()
def up(
    topology: Path | None = typer.Option(None, "--topology", help="Topology YAML file (default: the demo)."),
    generate: int | None = typer.Option(None, "--generate", help="Generate a topology of N devices instead."),
    inventory_out: Path = typer.Option(Path("var/lab-inventory.yaml"), "--inventory-out"),
    inventory_snmp: str = typer.Option("v2c", "--inventory-snmp", help="SNMP version written to the inventory."),
    snmp_port: int | None = typer.Option(None, "--snmp-port", help="Override every device's SNMP port."),
    ssh_port: int | None = typer.Option(None, "--ssh-port", help="Override every device's SSH port."),
    base_address: str = typer.Option("127.0.1.1", "--base-address", help="First address for --generate."),
    trap_receiver: list[str] = typer.Option([], "--trap-receiver", help="HOST:PORT, repeatable."),
    trap_version: str = typer.Option("v2c", "--trap-version", help="v2c or v3."),
    control_port: int = typer.Option(8099, "--control-port"),
    scenario: Path | None = typer.Option(None, "--scenario", help="Scenario YAML to run once the lab is up."),
    no_ssh: bool = typer.Option(False, "--no-ssh", help="Do not start the SSH CLIs."),
    host_key: Path = typer.Option(
        Path("var/lab-ssh-host-key"), "--host-key", help="SSH host key file (created once, reused across runs)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Start the lab and run until Ctrl-C."""
    from lab.faults import FaultError
    from lab.network import LabNetwork, LabStartError
    from lab.topology import TopologyError, default_demo_topology, generate_topology, load_topology

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if topology is not None and generate is not None:
        raise typer.BadParameter("use either --topology or --generate, not both", param_hint="--topology")
    if trap_version not in ("v2c", "v3"):
        raise typer.BadParameter(f"expected v2c or v3, got {trap_version!r}", param_hint="--trap-version")
    if inventory_snmp not in ("v2c", "v3"):
        raise typer.BadParameter(f"expected v2c or v3, got {inventory_snmp!r}", param_hint="--inventory-snmp")
    receivers = [_host_port(r) for r in trap_receiver]
    try:
        if generate is not None:
            # the same unprivileged ports as the demo file unless overridden below
            topo = generate_topology(generate, base_address=base_address, snmp_port=16100, ssh_port=2222)
        elif topology is not None:
            topo = load_topology(topology)
        else:
            topo = default_demo_topology()
    except TopologyError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for d in topo.devices:
        if snmp_port is not None:
            d.snmp_port = snmp_port
        if ssh_port is not None:
            d.ssh_port = ssh_port
    net = LabNetwork(
        topo,
        trap_receivers=receivers,
        control_port=control_port,
        ssh=not no_ssh,
        trap_version=trap_version,
        host_key_path=host_key,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await net.start()
        try:
            net.write_inventory(inventory_out, snmp_version=inventory_snmp)
            first = topo.devices[0]
            typer.echo(
                f"lab up: {len(topo.devices)} devices, {len(topo.links)} links; "
                f"SNMP on <address>:{first.snmp_port} (community public, v3 user labv3)"
                + ("" if no_ssh else f", SSH on <address>:{first.ssh_port} (admin / lab-admin)")
            )
            typer.echo(f"inventory written to {inventory_out}; control API on http://127.0.0.1:{control_port}")
            if scenario is not None:
                sc = net.faults.load_scenario(scenario)
                net.faults.start_scenario(sc)
                typer.echo(f"scenario {sc.name!r} started ({len(sc.steps)} steps)")
            await stop.wait()
        finally:
            typer.echo("stopping lab...")
            await net.stop()

    try:
        asyncio.run(run())
    except (LabStartError, FaultError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo("lab stopped")


# ---------------------------------------------------------------- control API client


def _call(control: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = control.rstrip("/") + path
    try:
        resp = httpx.request(method, url, json=body, timeout=15)
    except httpx.HTTPError as exc:
        typer.secho(f"error: cannot reach the lab control API at {control}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        data = resp.json()
    except ValueError:
        data = {"error": resp.text}
    if resp.status_code != 200:
        msg = data.get("error") if isinstance(data, dict) else data
        typer.secho(f"error: {msg}", fg="red", err=True)
        raise typer.Exit(1)
    return data


def _fault(control: str, kind: str, body: dict[str, Any]) -> None:
    data = _call(control, "POST", f"/faults/{kind}", body)
    typer.echo(json.dumps(data))


@fault_app.command("link-down")
def link_down(device: str, interface: str, control: str = ControlOpt) -> None:
    """Take a link down (both ends; traps from both ends)."""
    _fault(control, "link-down", {"device": device, "interface": interface})


@fault_app.command("link-up")
def link_up(device: str, interface: str, control: str = ControlOpt) -> None:
    """Restore a link taken down by link-down."""
    _fault(control, "link-up", {"device": device, "interface": interface})


@fault_app.command()
def crash(device: str, control: str = ControlOpt) -> None:
    """The device stops answering SNMP and SSH; its neighbours see their links go down."""
    _fault(control, "crash", {"device": device})


@fault_app.command()
def reboot(
    device: str,
    down_for: float = typer.Option(0.0, "--down-for", help="Seconds the device stays down first."),
    control: str = ControlOpt,
) -> None:
    """Reload: sysUpTime and counters restart, coldStart trap."""
    body: dict[str, Any] = {"device": device}
    if down_for:
        body["down_s"] = down_for
    _fault(control, "reboot", body)


@fault_app.command()
def errors(
    device: str,
    interface: str,
    rate: float = typer.Option(..., "--rate", help="Input errors per second (0 stops)."),
    control: str = ControlOpt,
) -> None:
    """Error burst: ifInErrors grows at RATE per second."""
    _fault(control, "errors", {"device": device, "interface": interface, "rate": rate})


@fault_app.command()
def cpu(device: str, load: int = typer.Option(..., "--load", help="Percent 0-100."), control: str = ControlOpt) -> None:
    """Set hrProcessorLoad."""
    _fault(control, "cpu", {"device": device, "load": load})


@fault_app.command()
def describe(
    device: str,
    sys_name: str | None = typer.Option(None, "--sys-name", help="sysName.0 ('' = the device name)."),
    sys_descr: str | None = typer.Option(None, "--sys-descr", help="sysDescr.0."),
    sys_location: str | None = typer.Option(None, "--sys-location", help="sysLocation.0."),
    interface: str | None = typer.Option(None, "--interface", help="The interface whose ifAlias --alias sets."),
    alias: str | None = typer.Option(None, "--alias", help="ifAlias of --interface."),
    control: str = ControlOpt,
) -> None:
    """Set what the device reports about itself (sysName, sysDescr, sysLocation, ifAlias)."""
    given = {"sys_name": sys_name, "sys_descr": sys_descr, "sys_location": sys_location}
    given |= {"interface": interface, "alias": alias}
    _fault(control, "describe", {"device": device, **{k: v for k, v in given.items() if v is not None}})


@fault_app.command("snmp-delay")
def snmp_delay(
    device: str,
    seconds: float = typer.Option(..., "--seconds", help="Reply delay."),
    control: str = ControlOpt,
) -> None:
    """Delay every SNMP reply of the device."""
    _fault(control, "snmp-delay", {"device": device, "seconds": seconds})


@fault_app.command("snmp-drop")
def snmp_drop(
    device: str,
    pct: float = typer.Option(..., "--pct", help="Percent of requests dropped."),
    control: str = ControlOpt,
) -> None:
    """Drop a percentage of SNMP requests."""
    _fault(control, "snmp-drop", {"device": device, "pct": pct})


@fault_app.command()
def flap(
    device: str,
    interface: str,
    per_minute: float = typer.Option(6.0, "--per-minute", help="State transitions per minute."),
    stop: bool = typer.Option(False, "--stop", help="Stop flapping (the link is left up)."),
    control: str = ControlOpt,
) -> None:
    """Flap a link N times per minute until stopped."""
    body: dict[str, Any] = {"device": device, "interface": interface, "stop": stop}
    if not stop:
        body["per_minute"] = per_minute
    _fault(control, "flap", body)


@fault_app.command()
def traffic(
    device: str,
    interface: str,
    in_bps: float | None = typer.Option(None, "--in-bps"),
    out_bps: float | None = typer.Option(None, "--out-bps"),
    control: str = ControlOpt,
) -> None:
    """Set an interface's traffic rates (bits per second)."""
    body: dict[str, Any] = {"device": device, "interface": interface}
    if in_bps is not None:
        body["in_bps"] = in_bps
    if out_bps is not None:
        body["out_bps"] = out_bps
    _fault(control, "traffic", body)


@fault_app.command("scenario")
def run_scenario(
    file: Path,
    speed: float = typer.Option(1.0, "--speed", help="Time compression (2 = twice as fast)."),
    control: str = ControlOpt,
) -> None:
    """Start a scenario timeline (YAML) on the running lab."""
    try:
        text = file.read_text()
    except OSError as exc:
        typer.secho(f"error: cannot read {file}: {exc.strerror}", fg="red", err=True)
        raise typer.Exit(2) from None
    data = _call(control, "POST", "/scenarios", {"yaml": text, "source": str(file), "speed": speed})
    typer.echo(json.dumps(data))


@app.command()
def status(control: str = ControlOpt) -> None:
    """Show the running lab's devices."""
    for d in _call(control, "GET", "/devices"):
        state = "CRASHED" if d["crashed"] else "up"
        typer.echo(f"{d['name']:<12} {d['address']:<15} {d['role']:<13} {d['device_type']:<14} {state}")
