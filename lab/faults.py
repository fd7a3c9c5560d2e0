"""Fault injection for the lab network, and scenario timelines.

Every fault is one entry of ``FAULTS`` (name -> parameters), applied through
``FaultInjector.apply(kind, params)``: the control API, the CLI (through the control
API) and scenario files all go through that one function, so they validate the same
way. Unknown devices/interfaces raise ``UnknownTarget``; bad values raise
``FaultError``; both name the field.

Scenario file::

    name: uplink failure on dist1
    steps:
      - {at: 0s, fault: traffic, device: core1, interface: GigabitEthernet0/2, in_bps: 5.0e+8}
      - {at: 10s, fault: link_down, device: dist1, interface: GigabitEthernet0/1}
      - {at: 40s, fault: link_up, device: dist1, interface: GigabitEthernet0/1}
      - {at: 1m, fault: crash, device: acc3}
      - {at: 1m30s, fault: reboot, device: acc3}
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab.model import LabDevice, LabInterface

if TYPE_CHECKING:
    from lab.network import LabNetwork

log = logging.getLogger(__name__)


class FaultError(ValueError):
    """A fault request is invalid (bad value); the message names the field."""


class UnknownTarget(FaultError):
    """The device or interface named in a fault request does not exist."""


# name -> (required params, optional params)
FAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "link_down": (("device", "interface"), ()),
    "link_up": (("device", "interface"), ()),
    "crash": (("device",), ()),
    "reboot": (("device",), ("down_s",)),
    "errors": (("device", "interface", "rate"), ()),
    "cpu": (("device", "load"), ()),
    "snmp_delay": (("device", "seconds"), ()),
    "snmp_drop": (("device", "pct"), ()),
    "flap": (("device", "interface"), ("per_minute", "stop")),
    "traffic": (("device", "interface"), ("in_bps", "out_bps")),
    "admin": (("device", "interface", "up"), ()),
    # what the device says about itself: sysName, sysDescr, sysLocation, an interface's ifAlias
    "describe": (("device",), ("sys_name", "sys_descr", "sys_location", "interface", "alias")),
}

DISPLAY_STRING_MAX = 255  # SNMPv2-TC DisplayString: at most 255 octets

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s)?\s*(?:(\d+)ms)?\s*$"
)


def parse_duration(value: Any, where: str = "duration") -> float:
    """'10s', '1m30s', '2m', '500ms', '1h', or a plain number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise FaultError(f"{where}: expected a duration >= 0, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m and any(m.groups()):
            h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
            return h * 3600 + mi * 60 + s + ms / 1000
    raise FaultError(f"{where}: expected a duration like 10s, 1m30s or 500ms, got {value!r}")


def _number(params: dict, key: str, *, lo: float | None = 0.0, hi: float | None = None) -> float:
    v = params.get(key)
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise FaultError(f"field '{key}': expected a number, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise FaultError(f"field '{key}': expected a number in {rng}, got {v!r}")
    return float(v)


def _bool(params: dict, key: str, default: bool) -> bool:
    v = params.get(key, default)
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
        return v.lower() in ("true", "yes", "1")
    if not isinstance(v, bool):
        raise FaultError(f"field '{key}': expected true or false, got {v!r}")
    return v


def _display_string(params: dict, key: str) -> str:
    v = params.get(key)
    if not isinstance(v, str):
        raise FaultError(f"field '{key}': expected a string, got {v!r}")
    if len(v.encode()) > DISPLAY_STRING_MAX:
        raise FaultError(f"field '{key}': expected at most {DISPLAY_STRING_MAX} bytes (UTF-8), got {len(v.encode())}")
    return v


@dataclass
class Scenario:
    name: str
    steps: list[tuple[float, str, dict[str, Any]]]  # (at_s, fault, params), sorted by time


class FaultInjector:
    def __init__(self, network: LabNetwork) -> None:
        self.net = network
        self.flaps: dict[tuple[str, str], asyncio.Task] = {}
        self.scenarios: dict[int, asyncio.Task] = {}
        self._scenario_ids = 0
        self._reboot_tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ lookup
    def device(self, name: Any) -> LabDevice:
        if not isinstance(name, str) or not name:
            raise FaultError(f"field 'device': expected a device name, got {name!r}")
        d = self.net.devices.get(name)
        if d is None:
            raise UnknownTarget(f"field 'device': unknown device {name!r}")
        return d

    def interface(self, device: LabDevice, name: Any) -> LabInterface:
        if not isinstance(name, str) or not name:
            raise FaultError(f"field 'interface': expected an interface name, got {name!r}")
        itf = device.interface(name)
        if itf is None:
            names = ", ".join(i.name for i in device.interfaces)
            raise UnknownTarget(f"field 'interface': device {device.name!r} has no interface {name!r} (has: {names})")
        return itf

    # ------------------------------------------------------------ dispatch
    def validate(self, kind: str, params: dict[str, Any]) -> tuple[LabDevice, LabInterface | None]:
        if kind not in FAULTS:
            raise FaultError(f"field 'fault': expected one of {', '.join(FAULTS)}, got {kind!r}")
        if not isinstance(params, dict):
            raise FaultError(f"fault {kind}: expected a mapping of parameters, got {type(params).__name__}")
        required, optional = FAULTS[kind]
        for key in required:
            if key not in params:
                raise FaultError(f"fault {kind}: field '{key}': required")
        extra = sorted(set(params) - set(required) - set(optional))
        if extra:
            raise FaultError(f"fault {kind}: field '{extra[0]}': unknown field")
        dev = self.device(params["device"])
        itf = self.interface(dev, params["interface"]) if "interface" in required else None
        return dev, itf

    def apply(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply one fault; returns a JSON-able summary."""
        kind = kind.replace("-", "_")
        dev, itf = self.validate(kind, params)
        handler: Callable[[LabDevice, LabInterface | None, dict[str, Any]], dict[str, Any]]
        handler = getattr(self, f"_do_{kind}")
        result = handler(dev, itf, params)
        log.info("lab fault %s %s -> %s", kind, params, result)
        return {"fault": kind, "device": dev.name, **({"interface": itf.name} if itf else {}), **result}

    # ------------------------------------------------------------ faults
    def _do_link_down(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        assert itf is not None
        changed = self.net.cut_link(dev, itf, True)
        return {"changed": changed}

    def _do_link_up(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        assert itf is not None
        changed = self.net.cut_link(dev, itf, False)
        return {"changed": changed}

    def _do_admin(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        assert itf is not None
        itf.admin_up = _bool(p, "up", True)
        return {"changed": self.net.notify_change(dev, itf.name)}

    def _do_describe(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        """Set device-supplied strings as a real (possibly hostile) device would report them.

        Everything is validated before anything is set, so a bad request changes nothing.
        An empty sys_name means the device name again.
        """
        values = {
            key: _display_string(p, key) for key in ("sys_name", "sys_descr", "sys_location", "alias") if key in p
        }
        if not values:
            raise FaultError("fault describe: expected at least one of sys_name, sys_descr, sys_location, alias")
        if ("alias" in values) != ("interface" in p):
            raise FaultError("fault describe: field 'interface': required with 'alias' (and only with it)")
        target = self.interface(dev, p["interface"]) if "alias" in values else None
        if target is not None:
            target.alias = values.pop("alias")
        for key, value in values.items():
            setattr(dev, key, value)
        return {
            "sys_name": dev.sys_name or dev.name,
            "sys_descr": dev.sys_descr,
            "sys_location": dev.sys_location,
            **({"interface": target.name, "alias": target.alias} if target is not None else {}),
        }

    def _do_crash(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        self.net.crash(dev)
        return {"crashed": True}

    def _do_reboot(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        down_s = _number(p, "down_s", lo=0, hi=3600) if "down_s" in p else 0.0
        if down_s > 0:
            self.net.crash(dev)
            task = asyncio.get_running_loop().create_task(self._reboot_later(dev, down_s))
            self._reboot_tasks.add(task)
            task.add_done_callback(self._reboot_tasks.discard)
            return {"rebooting_in_s": down_s}
        self.net.reboot(dev)
        return {"boot_time": dev.boot_time, "engine_boots": dev.engine_boots}

    async def _reboot_later(self, dev: LabDevice, delay: float) -> None:
        await asyncio.sleep(delay)
        self.net.reboot(dev)

    def _do_errors(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        assert itf is not None
        rate = _number(p, "rate", lo=0, hi=1e7)
        itf.rebase(self.net.now())
        itf.error_rate_pps = rate
        return {"error_rate_pps": rate}

    def _do_cpu(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        load = _number(p, "load", lo=0, hi=100)
        dev.cpu_load = int(load)
        return {"cpu_load": dev.cpu_load}

    def _do_snmp_delay(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        dev.snmp_delay_s = _number(p, "seconds", lo=0, hi=120)
        return {"snmp_delay_s": dev.snmp_delay_s}

    def _do_snmp_drop(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        dev.snmp_drop_pct = _number(p, "pct", lo=0, hi=100)
        return {"snmp_drop_pct": dev.snmp_drop_pct}

    def _do_traffic(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        assert itf is not None
        limit = itf.speed_mbps * 1e6
        in_bps = _number(p, "in_bps", lo=0, hi=limit) if "in_bps" in p else itf.in_rate_bps
        out_bps = _number(p, "out_bps", lo=0, hi=limit) if "out_bps" in p else itf.out_rate_bps
        itf.rebase(self.net.now())
        itf.in_rate_bps, itf.out_rate_bps = in_bps, out_bps
        return {"in_bps": in_bps, "out_bps": out_bps}

    def _do_flap(self, dev: LabDevice, itf: LabInterface | None, p: dict) -> dict:
        assert itf is not None
        key = (dev.name, itf.name)
        stop = _bool(p, "stop", False)
        old = self.flaps.pop(key, None)
        if old is not None:
            old.cancel()
        if stop:
            self.net.cut_link(dev, itf, False)
            return {"flapping": False, "was_flapping": old is not None}
        per_minute = _number(p, "per_minute", lo=0.1, hi=6000) if "per_minute" in p else 6.0
        self.flaps[key] = asyncio.get_running_loop().create_task(self._flap(dev, itf, 60.0 / per_minute))
        return {"flapping": True, "per_minute": per_minute}

    async def _flap(self, dev: LabDevice, itf: LabInterface, interval_s: float) -> None:
        down = True
        try:
            while True:
                self.net.cut_link(dev, itf, down)
                down = not down
                await asyncio.sleep(interval_s)
        except asyncio.CancelledError:
            raise
        except Exception:  # a flap task must never die silently
            log.exception("flap task for %s %s failed", dev.name, itf.name)

    # ------------------------------------------------------------ scenarios
    def parse_scenario(self, data: Any, source: str = "scenario") -> Scenario:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
            raise FaultError(f"{source}: expected a mapping with a non-empty 'steps' list")
        extra = sorted(set(data) - {"name", "description", "steps"})
        if extra:
            raise FaultError(f"{source}: field '{extra[0]}': unknown field")
        steps: list[tuple[float, str, dict[str, Any]]] = []
        for i, raw in enumerate(data["steps"]):
            where = f"{source}: steps[{i}]"
            if not isinstance(raw, dict):
                raise FaultError(f"{where}: expected a mapping with 'at' and 'fault'")
            if "at" not in raw:
                raise FaultError(f"{where}: field 'at': required")
            if "fault" not in raw:
                raise FaultError(f"{where}: field 'fault': required")
            at = parse_duration(raw["at"], f"{where}: field 'at'")
            kind = str(raw["fault"]).replace("-", "_")
            params = {k: v for k, v in raw.items() if k not in ("at", "fault")}
            try:
                self.validate(kind, params)
            except FaultError as exc:
                raise type(exc)(f"{where}: {exc}") from None
            steps.append((at, kind, params))
        steps.sort(key=lambda s: s[0])
        return Scenario(name=str(data.get("name", source)), steps=steps)

    def load_scenario(self, path: Path) -> Scenario:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise FaultError(f"{path}: cannot read scenario: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise FaultError(f"{path}: not valid YAML: {exc}") from exc
        return self.parse_scenario(data, str(path))

    def start_scenario(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> int:
        """Run the timeline as an asyncio task; ``speed`` > 1 compresses time."""
        self._scenario_ids += 1
        sid = self._scenario_ids
        task = asyncio.get_running_loop().create_task(self.run_scenario(scenario, speed=speed, sleep=sleep))
        self.scenarios[sid] = task
        return sid

    async def run_scenario(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> list[dict[str, Any]]:
        sleep = sleep or asyncio.sleep
        results = []
        elapsed = 0.0
        for at, kind, params in scenario.steps:
            if at > elapsed:
                await sleep((at - elapsed) / speed)
                elapsed = at
            try:
                results.append(self.apply(kind, params))
            except FaultError as exc:  # the topology may have changed since validation
                log.error("scenario %s: step at %ss %s failed: %s", scenario.name, at, kind, exc)
                results.append({"fault": kind, "error": str(exc)})
        return results

    async def stop_all(self) -> None:
        tasks = [*self.flaps.values(), *self.scenarios.values(), *self._reboot_tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: S110 - shutting down, outcome irrelevant
                pass
        self.flaps.clear()
        self.scenarios.clear()
