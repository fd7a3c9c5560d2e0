"""Scheduled execution: approved orders whose change window has opened run by themselves."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from faultloop import clock
from faultloop.db import transaction
from faultloop.errors import DomainError
from faultloop.events import ObservationSink
from faultloop.leader import Leadership, NotLeader
from faultloop.runtime import Runtime
from faultloop.worker import stop_task
from provisioning.executor import ExecutionOutcome, execute_order
from provisioning.models import ServiceOrder

log = logging.getLogger("faultloop.provisioning")


def due_orders(rt: Runtime) -> list[int]:
    now = clock.now()
    with transaction(rt.sessions) as session:
        rows = session.scalars(
            select(ServiceOrder.id)
            .where(
                ServiceOrder.state == "approved",
                ServiceOrder.window_start.is_not(None),
                ServiceOrder.window_start <= now,
            )
            .order_by(ServiceOrder.window_start, ServiceOrder.id)
        )
        return [
            oid
            for oid in rows
            if (o := session.get(ServiceOrder, oid)) is not None and (o.window_end is None or now < o.window_end)
        ]


class ProvisioningService:
    """Runs due orders one at a time (each order pushes to its devices in parallel)."""

    name = "provisioning"

    def __init__(
        self, rt: Runtime, sink: ObservationSink | None = None, *, leadership: Leadership | None = None
    ) -> None:
        self.rt = rt
        self.sink = sink
        # None: the only scheduler (tests); otherwise due orders start only while this instance leads
        self.leadership = leadership
        self._task: asyncio.Task[None] | None = None

    def tick(self) -> list[ExecutionOutcome]:
        outcomes: list[ExecutionOutcome] = []
        if self.leadership is not None and not self.leadership.leading:
            return outcomes
        for order_id in due_orders(self.rt):
            if self.leadership is not None and not self.leadership.leading:
                break  # lost the lead between two orders: the new leader starts the rest
            fence = self.leadership.fence if self.leadership is not None else None
            try:
                outcomes.append(
                    execute_order(self.rt, order_id, actor="scheduler", role="system", sink=self.sink, fence=fence)
                )
            except NotLeader as exc:  # a stale leader claims nothing: the new one starts the order
                log.warning("scheduled order %d not started: %s", order_id, exc)
                break
            except DomainError as exc:  # e.g. a device busy with another order: tried again next tick
                log.warning("scheduled order %d not started: %s", order_id, exc.detail)
        return outcomes

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception as exc:  # a database outage must not end the loop
                log.error("provisioning tick failed: %s", type(exc).__name__)
            await asyncio.sleep(self.rt.settings.provisioning_tick_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="provisioning")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
