"""The lab network runner: every device's SNMP agent (and SSH CLI) in one asyncio loop.

State changes all end in ``_settle``: it recomputes the physical state of the affected
links (a link is up when neither end is shut, neither device has crashed and the cable
is not "cut" by fault injection), credits counters for the period before the change,
stamps ifLastChange and sends linkDown/linkUp from every live device whose interface
changed oper state. The SSH CLI reports its changes through ``notify_change`` (wired
as the ``on_change`` callback of each SSH server), so a ``shutdown`` typed over SSH
produces the same traps, on both ends, as a fault injected through the control API.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from lab.faults import FaultInjector
from lab.inventory_out import write_inventory
from lab.model import Clock, LabDevice, LabInterface
from lab.snmp_agent import SnmpAgent
from lab.topology import Topology
from lab.traps import TrapSender

log = logging.getLogger(__name__)

IfKey = tuple[str, str]  # (device name, interface name)
AUTH_TRAP_MIN_INTERVAL_S = 1.0


def _same(protocol: SnmpAgent) -> SnmpAgent:
    """asyncio's protocol factory, answering the one agent made for that address."""
    return protocol


class LabStartError(RuntimeError):
    """A device endpoint could not be bound (address/port in use, no permission)."""


class LabNetwork:
    def __init__(
        self,
        topology: Topology,
        *,
        trap_receivers: list[tuple[str, int]] | tuple = (),
        control_port: int | None = None,
        ssh: bool = True,
        now: Clock = time.time,
        trap_version: str = "v2c",
        control_host: str = "127.0.0.1",
        fresh_boot: bool = False,
        host_key_path: Path | None = None,
    ) -> None:
        self.topology = topology
        self.devices: dict[str, LabDevice] = {d.name: d for d in topology.devices}
        self.links = list(topology.links)
        self.now = now
        self.ssh_enabled = ssh
        self.control_port = control_port
        self.control_host = control_host
        self.fresh_boot = fresh_boot
        self.host_key_path = host_key_path
        self.agents: dict[str, SnmpAgent] = {}
        self.traps = TrapSender(trap_receivers, now=now, version=trap_version, device_sender=self._send_from)
        self.faults = FaultInjector(self)
        self.control: Any = None  # ControlServer once started
        self._transports: list[asyncio.DatagramTransport] = []
        self._ssh: dict[str, Any] = {}
        self._host_key: Any = None
        self._cut: set[frozenset[IfKey]] = set()
        self._oper_seen: dict[IfKey, bool] = {}
        self._peer: dict[IfKey, IfKey] = {}
        # physical state of ports with no lab link, as the topology configured it
        self._loose_link: dict[IfKey, bool] = {
            (d.name, i.name.lower()): i.link_up for d in topology.devices for i in d.interfaces
        }
        for ad, ai, bd, bi in self.links:
            self._peer[(ad, ai.lower())] = (bd, bi.lower())
            self._peer[(bd, bi.lower())] = (ad, ai.lower())
        self._last_auth_trap: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self.started = False

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        now = self.now()
        for d in self.devices.values():
            self._initial_state(d, now)
        try:
            for d in self.devices.values():
                agent = SnmpAgent(d, now=self.now, resolve=self.devices.get, on_auth_failure=self._auth_failure)
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        functools.partial(_same, agent), local_addr=(d.address, d.snmp_port)
                    )
                except OSError as exc:
                    raise LabStartError(
                        f"device {d.name}: cannot bind SNMP on {d.address}:{d.snmp_port}: {exc.strerror or exc}"
                    ) from exc
                self._transports.append(transport)
                self.agents[d.name] = agent
            if self.ssh_enabled:
                from lab import ssh as lab_ssh  # lazy: asyncssh import is heavy

                self._host_key = lab_ssh.lab_host_key(self.host_key_path)
                for d in self.devices.values():
                    await self._start_ssh(d)
            if self.control_port is not None:
                from lab.control import ControlServer

                self.control = ControlServer(self, host=self.control_host, port=self.control_port)
                await self.control.start()
        except BaseException:
            await self.stop()
            raise
        self.started = True
        log.info("lab network up: %d devices, %d links", len(self.devices), len(self.links))

    async def stop(self) -> None:
        await self.faults.stop_all()
        for task in list(self._tasks):
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: S110 - shutting down
                pass
        if self.control is not None:
            await self.control.stop()
            self.control = None
        for name in list(self._ssh):
            await self._stop_ssh(name)
        for t in self._transports:
            t.close()
        self._transports.clear()
        self.agents.clear()
        self.traps.close()
        self.started = False

    async def __aenter__(self) -> LabNetwork:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _initial_state(self, d: LabDevice, now: float) -> None:
        # Devices look like they have been running for a while (stable per name), with
        # counters consistent with their rates; ``fresh_boot`` starts everything at 0.
        uptime = 0.0 if self.fresh_boot else 3600.0 * (1 + hashlib.sha256(d.name.encode()).digest()[0] % 240)
        d.boot_time = now - uptime
        for itf in d.interfaces:
            itf.base_time = now
            itf.last_change = d.boot_time
            itf.discontinuity_time = d.boot_time
            if itf.oper_up:
                itf.in_octets_base = int(itf.in_rate_bps / 8 * uptime)
                itf.out_octets_base = int(itf.out_rate_bps / 8 * uptime)
        for itf in d.interfaces:
            itf.link_up = self._physical_up(d, itf)
            self._oper_seen[(d.name, itf.name.lower())] = itf.oper_up

    async def _start_ssh(self, d: LabDevice) -> None:
        from lab import ssh as lab_ssh

        try:
            self._ssh[d.name] = await lab_ssh.start_ssh_server(
                d,
                host_keys=self._host_key,
                username=lab_ssh.LAB_SSH_USERNAME,
                password=lab_ssh.LAB_SSH_PASSWORD,
                on_change=self._on_ssh_change,
                clock=self.now,
            )
        except OSError as exc:
            raise LabStartError(
                f"device {d.name}: cannot bind SSH on {d.address}:{d.ssh_port}: {exc.strerror or exc}"
            ) from exc

    async def _stop_ssh(self, name: str) -> None:
        acceptor = self._ssh.pop(name, None)
        if acceptor is not None:
            acceptor.close()
            try:
                await acceptor.wait_closed()
            except Exception:  # noqa: S110 - closing a listener; nothing to recover
                pass

    # ------------------------------------------------------------ output
    def write_inventory(self, path: Path, *, snmp_version: str = "v2c") -> None:
        write_inventory(Path(path), self.topology, snmp_version=snmp_version)

    def stats(self) -> dict[str, Any]:
        totals: dict[str, int] = {}
        for agent in self.agents.values():
            for k, v in agent.stats.as_dict().items():
                if isinstance(v, int):
                    totals[k] = totals.get(k, 0) + v
        return {
            "devices": len(self.devices),
            "agents": totals,
            "traps_sent": self.traps.stats.sent,
            "traps_by_type": dict(self.traps.stats.by_type),
        }

    # ------------------------------------------------------------ state changes
    def _physical_up(self, d: LabDevice, itf: LabInterface) -> bool:
        key = (d.name, itf.name.lower())
        peer = self._peer.get(key)
        if peer is None:
            # unconnected port: only a cut (fault) or a crash takes it down
            return not d.crashed and frozenset((key,)) not in self._cut and self._loose_link.get(key, True)
        pd = self.devices[peer[0]]
        pitf = pd.interface(peer[1])
        return (
            frozenset((key, peer)) not in self._cut
            and not d.crashed
            and not pd.crashed
            and itf.admin_up
            and pitf is not None
            and pitf.admin_up
        )

    def _settle(self, keys: list[IfKey]) -> list[IfKey]:
        """Recompute link state for ``keys`` and their peers; emit traps for changes."""
        now = self.now()
        todo: list[IfKey] = []
        for k in keys:
            todo.append(k)
            if k in self._peer:
                todo.append(self._peer[k])
        changed: list[IfKey] = []
        for dev_name, if_name in dict.fromkeys(todo):
            d = self.devices[dev_name]
            itf = d.interface(if_name)
            if itf is None:
                continue
            key = (dev_name, if_name)
            was = self._oper_seen.get(key, itf.oper_up)
            itf.link_up = self._physical_up(d, itf)
            if itf.oper_up != was:
                itf.rebase(now, was_up=was)
                itf.last_change = now
                self._oper_seen[key] = itf.oper_up
                changed.append((dev_name, itf.name))
                if not d.crashed:
                    self.traps.link_change(d, itf)
        return changed

    def notify_change(self, device: LabDevice, interface: str) -> bool:
        """Observer hook: an interface's admin state / config changed (SSH CLI, API).

        Returns True when some interface changed operational state."""
        itf = device.interface(interface)
        if itf is None:
            return False
        return bool(self._settle([(device.name, itf.name.lower())]))

    def _on_ssh_change(self, device: LabDevice, interface: str) -> None:
        try:
            self.notify_change(device, interface)
        except Exception:  # the SSH session must not die because of a trap problem
            log.exception("lab: handling SSH change on %s %s failed", device.name, interface)

    def cut_link(self, device: LabDevice, itf: LabInterface, cut: bool) -> bool:
        """Fault injection: take the link on ``itf`` down (both ends) or restore it."""
        key = (device.name, itf.name.lower())
        peer = self._peer.get(key)
        link = frozenset((key, peer)) if peer else frozenset((key,))
        if cut:
            self._cut.add(link)
        else:
            self._cut.discard(link)
        return bool(self._settle([key]))

    def crash(self, device: LabDevice) -> None:
        if device.crashed:
            return
        device.crashed = True
        self._settle([(device.name, i.name.lower()) for i in device.interfaces])
        if device.name in self._ssh:
            self._background(self._stop_ssh(device.name))

    def reboot(self, device: LabDevice) -> None:
        """Reload: sysUpTime and counters restart, engineBoots increments, coldStart."""
        now = self.now()
        device.boot_time = now
        device.engine_boots += 1
        device.crashed = False
        for itf in device.interfaces:
            itf.reset_counters(now)
            itf.last_change = now
        self.traps.cold_start(device)
        self._settle([(device.name, i.name.lower()) for i in device.interfaces])
        if self.ssh_enabled and self.started and device.name not in self._ssh:
            self._background(self._restart_ssh(device))

    async def _restart_ssh(self, device: LabDevice) -> None:
        try:
            await self._start_ssh(device)
        except LabStartError as exc:
            log.error("lab: %s", exc)

    # ------------------------------------------------------------ helpers
    def _background(self, coro: Any) -> None:
        # keep a reference: the loop only holds weak references to tasks
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_from(self, device: LabDevice, data: bytes, addr: tuple[str, int]) -> bool:
        agent = self.agents.get(device.name)
        return agent.send(data, addr) if agent is not None else False

    def _auth_failure(self, device: LabDevice, addr: tuple[str, int]) -> None:
        # one authenticationFailure trap per device per second at most: a scanner spraying
        # communities must not turn the lab into a trap cannon
        now = self.now()
        if now - self._last_auth_trap.get(device.name, float("-inf")) >= AUTH_TRAP_MIN_INTERVAL_S:
            self._last_auth_trap[device.name] = now
            self.traps.auth_failure(device)
