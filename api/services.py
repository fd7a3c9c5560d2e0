"""What the API may ask of the running services, as typed handles.

The composition root (``faultloop.cmd.app.build_pipeline``) binds them to the services it
starts and hands them to ``api.main.create_api``; a route takes them through
``api.deps.ServicesDep`` and never looks a service up. An API built with no running services
(tests, ``create_api(rt)`` alone) gets ``one_shot(rt)``: the work runs in the request and
reports to no sink, which is what those routes have always done without a pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from collectors.backup import BackupOutcome, backup_device
from collectors.jobs import poll_now
from collectors.snmp_poll import DeviceTracker, InterfaceState, PollResult
from faultloop.events import ObservationSink
from faultloop.runtime import Runtime
from provisioning.executor import ExecutionOutcome, execute_order


class PollNow(Protocol):
    """Poll one device now; the result is stored and its findings go to the poller's sink."""

    async def __call__(self, device_id: int) -> tuple[PollResult, DeviceTracker]: ...


class LiveInterfaces(Protocol):
    """The interfaces (with rates) the running poller saw last; None when it has not polled the device."""

    def __call__(self, device_id: int) -> dict[int, InterfaceState] | None: ...


class BackupNow(Protocol):
    """Back up one device's configuration now, on demand of ``actor``; raises like ``backup_device``."""

    def __call__(self, device_id: int, *, actor: str) -> BackupOutcome: ...


class ExecuteOrder(Protocol):
    """Run an approved order now; the pushes report to the pipeline's sink."""

    def __call__(self, order_id: int, *, actor: str, role: str) -> ExecutionOutcome: ...


@dataclass(frozen=True)
class ServiceHandles:
    poll_now: PollNow
    live_interfaces: LiveInterfaces
    backup_now: BackupNow
    execute_order: ExecuteOrder
    # where events the API itself raises go (an accepted SSH host key clears its alarm); None: nowhere
    sink: ObservationSink | None


def one_shot(rt: Runtime, *, sink: ObservationSink | None = None) -> ServiceHandles:
    """Handles for an API without running services: polls through a fresh engine (no live rates),
    backups and orders run in the request; what they observe goes to ``sink`` (None: nowhere)."""

    async def poll(device_id: int) -> tuple[PollResult, DeviceTracker]:
        return await poll_now(rt, device_id)

    def backup(device_id: int, *, actor: str) -> BackupOutcome:
        return backup_device(rt, device_id, sink=sink, trigger="on_demand", actor=actor)

    def execute(order_id: int, *, actor: str, role: str) -> ExecutionOutcome:
        return execute_order(rt, order_id, actor=actor, role=role, sink=sink)

    return ServiceHandles(
        poll_now=poll, live_interfaces=lambda _device_id: None, backup_now=backup, execute_order=execute, sink=sink
    )
