"""SNMP poller routes: poll now, current interface status and rates, samples for graphs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import ServicesDep, SessionDep, UserDep, WriteSessionDep, runtime
from api.params import Id
from collectors import service
from collectors.schemas import DeviceStatusOut, PollOut, PollSettingsIn, PollSettingsOut, SampleOut
from faultloop.db import transaction
from faultloop.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["collectors"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


@router.post("/devices/{device_id}/poll", response_model=PollOut)
async def poll_device(device_id: Id, services: ServicesDep, user: UserDep, rt: RuntimeDep) -> PollOut:
    """Poll the device now (through the running poller when there is one) and return what it saw."""
    result, tracker = await services.poll_now(device_id)
    live = tracker.last.interfaces if tracker.last is not None else {}

    def read() -> DeviceStatusOut:
        with transaction(rt.sessions) as session:
            return service.device_status(session, device_id=device_id, live=live)

    status = await asyncio.to_thread(read)
    return PollOut(**status.model_dump(), ok=result.ok, events=[e.event_type for e in result.events])


@router.get("/devices/{device_id}/interfaces/status", response_model=DeviceStatusOut)
def interface_status(device_id: Id, services: ServicesDep, session: SessionDep, user: UserDep) -> DeviceStatusOut:
    """Device state from the last poll and every interface with its status and current rates."""
    return service.device_status(session, device_id=device_id, live=services.live_interfaces(device_id))


@router.get("/devices/{device_id}/samples", response_model=list[SampleOut])
def list_samples(
    device_id: Id,
    session: SessionDep,
    user: UserDep,
    interface: Annotated[str | None, Query(description="Interface name (or sensor name)")] = None,
    metric: Annotated[str | None, Query(description="e.g. interface_in_bits_per_second")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 with timezone")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[SampleOut]:
    """Short-term samples (kept FAULTLOOP_SAMPLE_RETENTION_H hours), oldest first."""
    return service.list_samples(
        session, device_id=device_id, interface=interface, metric=metric, since=since, limit=limit
    )


@router.put("/devices/{device_id}/poll-settings", response_model=PollSettingsOut)
def set_poll_settings(device_id: Id, body: PollSettingsIn, session: WriteSessionDep, user: UserDep) -> PollSettingsOut:
    """Per-device interval, timeout and retries (null: the FAULTLOOP_POLL_* default); audited."""
    return service.set_poll_settings(session, device_id=device_id, data=body, actor=user.username)
