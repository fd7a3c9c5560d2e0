"""Service verification: a service's catalog checks read again from the live devices.

Ticketing asks, before it verifies a resolved ticket, whether the customer services the ticket
affected work again (``ticketing.verify.ServiceChecker``; the composition root hands it
``ServiceVerifier``). The checks are the ones activation runs after its push (``checks.yaml``
rendered with each device's parameters of the service): the show commands over SSH, then
ifAlias / ifAdminStatus / ifOperStatus over SNMP, judged by the same functions
(``executor.show_outcomes``, ``executor.snmp_outcomes``). Unlike activation they are read
once, not retried until a timeout: nothing was just pushed, there is nothing to converge.

The plan (services, their devices, parameters and SNMP settings) is read in one short
transaction; the devices are read after it, outside any transaction, in parallel up to
``FAULTLOOP_PROVISIONING_WORKERS``. A device that cannot be read (SSH refused or timed out,
SNMP timeout, no credentials) is a problem of the services on it, never an exception: the
service's outcome is then ``unchecked`` unless a check that did run already failed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from devices.snmp import SnmpClient, SnmpTarget
from devices.ssh import device_session
from devices.targets import snmp_target
from faultloop.db import transaction
from faultloop.errors import DomainError
from faultloop.events import ObservationSink
from faultloop.runtime import Runtime
from inventory import queries as inventory
from provisioning.executor import CheckOutcome, _enable, _reason, interface_state, show_outcomes, snmp_outcomes
from provisioning.models import ServiceInstance
from provisioning.render import ShowCheck, SnmpCheck, service_type

log = logging.getLogger("faultloop.provisioning")


@dataclass(frozen=True)
class ServiceCheckReport:
    """The verdict on one service. ``outcome``: ``passed`` (every check held), ``failed`` (one did
    not: ``checks`` say which and what was read), ``unchecked`` (a device could not be read, or the
    service's type is not in the catalog: ``problems`` say why), ``skipped`` (nothing to verify: the
    service is terminated or gone, or records no device parameters)."""

    service_id: int
    customer: str
    service_type: str
    outcome: str
    checks: tuple[CheckOutcome, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass
class _DevicePlan:
    device_id: int
    hostname: str
    platform: str
    snmp: SnmpTarget | None = field(default=None, repr=False)
    shows: list[tuple[int, ShowCheck]] = field(default_factory=list)  # (service id, check)
    snmps: list[tuple[int, SnmpCheck]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why something could not be read


@dataclass
class _Plan:
    reports: dict[int, ServiceCheckReport] = field(default_factory=dict)  # decided without the network
    services: dict[int, tuple[str, str, list[int]]] = field(default_factory=dict)  # id -> customer, type, devices
    devices: dict[int, _DevicePlan] = field(default_factory=dict)


class ServiceVerifier:
    """``ticketing.verify.ServiceChecker`` over the service inventory and the live devices."""

    def __init__(self, rt: Runtime, *, sink: ObservationSink | None = None) -> None:
        self.rt = rt
        self.sink = sink  # host key changes and capped output seen while reading go where the collectors' do

    def __call__(self, service_ids: Sequence[int]) -> list[ServiceCheckReport]:
        plan = self._plan(service_ids)
        devices = list(plan.devices.values())
        if devices:
            with ThreadPoolExecutor(max_workers=min(self.rt.settings.provisioning_workers, len(devices))) as pool:
                readings = dict(zip([d.device_id for d in devices], pool.map(self._read, devices), strict=True))
        else:
            readings = {}
        out = []
        for sid in dict.fromkeys(service_ids):
            if sid in plan.reports:
                out.append(plan.reports[sid])
                continue
            customer, stype, device_ids = plan.services[sid]
            checks = tuple(o for d in device_ids for s, o in readings[d] if s == sid)
            problems = tuple(p for d in device_ids for p in plan.devices[d].problems)
            if any(not o.ok for o in checks):
                outcome = "failed"
            elif problems:
                outcome = "unchecked"
            else:
                outcome = "passed"
            out.append(ServiceCheckReport(sid, customer, stype, outcome, checks, problems))
        return out

    def _plan(self, service_ids: Sequence[int]) -> _Plan:
        plan = _Plan()
        settings = self.rt.settings
        with transaction(self.rt.sessions) as session:
            for sid in dict.fromkeys(service_ids):
                instance = session.get(ServiceInstance, sid)
                if instance is None:
                    plan.reports[sid] = ServiceCheckReport(sid, "", "", "skipped", problems=("no such service",))
                    continue
                if instance.state != "active":
                    plan.reports[sid] = ServiceCheckReport(
                        sid, instance.customer, instance.service_type, "skipped",
                        problems=(f"service is {instance.state}, nothing to verify",),
                    )  # fmt: skip
                    continue
                try:
                    st = service_type(instance.service_type, settings.provisioning_catalog_dir)
                except DomainError as exc:
                    plan.reports[sid] = ServiceCheckReport(
                        sid, instance.customer, instance.service_type, "unchecked", problems=(exc.detail,)
                    )
                    continue
                recorded = dict((instance.params or {}).get("devices", {}))
                if not recorded:  # nothing says what its checks are on which device: not "passed"
                    plan.reports[sid] = ServiceCheckReport(
                        sid, instance.customer, instance.service_type, "skipped",
                        problems=("the service records no device parameters, nothing to check",),
                    )  # fmt: skip
                    continue
                device_ids: list[int] = []
                for key, params in recorded.items():
                    device_id = int(key)
                    dp = plan.devices.get(device_id)
                    if dp is None:
                        dp = self._device(session, device_id)
                        plan.devices[device_id] = dp
                    device_ids.append(device_id)
                    if not dp.platform:
                        continue
                    try:
                        shows, snmps = st.checks(dp.platform, dict(params))
                    except Exception as exc:  # a catalog changed since activation: say so, do not crash the round
                        dp.problems.append(f"{dp.hostname}: checks of {st.name} do not render: {type(exc).__name__}")
                        continue
                    dp.shows += [(sid, c) for c in shows]
                    if snmps and dp.snmp is None:  # as activation: a device without SNMP settings is not asked
                        log.info("service %d: %s has no SNMP settings; its SNMP checks are skipped", sid, dp.hostname)
                    elif snmps:
                        dp.snmps += [(sid, c) for c in snmps]
                plan.services[sid] = (instance.customer, instance.service_type, device_ids)
        return plan

    def _device(self, session: Session, device_id: int) -> _DevicePlan:
        device = inventory.device(session, device_id)
        if device is None:
            missing = f"device {device_id} is not in the inventory"
            return _DevicePlan(device_id, f"device {device_id}", "", problems=[missing])
        settings = self.rt.settings
        target = snmp_target(device, self.rt.vault, timeout_s=settings.poll_timeout_s, retries=settings.poll_retries)
        return _DevicePlan(device_id, device.hostname, device.device_type or device.platform, snmp=target)

    def _read(self, dp: _DevicePlan) -> list[tuple[int, CheckOutcome]]:
        """(service id, outcome) of every check of this device; what could not be read goes to ``dp.problems``."""
        out: list[tuple[int, CheckOutcome]] = []
        if dp.shows:
            try:
                with device_session(self.rt, dp.device_id, sink=self.sink, source="provisioning") as conn:
                    _enable(conn, dp.platform)
                    outputs: dict[str, str] = {}
                    for sid, check in dp.shows:
                        if check.command not in outputs:
                            outputs[check.command] = str(conn.send_command(check.command))
                        out += [(sid, o) for o in show_outcomes(dp.hostname, check, outputs[check.command])]
            except Exception as exc:  # a Result, not an exception: the ticket decides (retry, then reopen)
                out = []
                dp.problems.append(f"{dp.hostname}: SSH: {_reason(exc)}")
        if dp.snmps and dp.snmp is not None:
            try:
                states = asyncio.run(self._interfaces(dp.snmp, sorted({c.interface for _sid, c in dp.snmps})))
            except Exception as exc:
                dp.problems.append(f"{dp.hostname}: SNMP: {str(exc)[:200] or type(exc).__name__}")
            else:
                out += [(sid, o) for sid, c in dp.snmps for o in snmp_outcomes(dp.hostname, c, states[c.interface])]
        return out

    @staticmethod
    async def _interfaces(target: SnmpTarget, names: list[str]) -> dict[str, dict[str, str] | None]:
        client = SnmpClient()
        try:
            return {name: await interface_state(client, target, name) for name in names}
        finally:
            client.close()
