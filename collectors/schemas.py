"""Poller output shapes (API, CLI --json)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class InterfaceStatusOut(BaseModel):
    name: str
    if_index: int | None
    description: str
    alias: str = ""
    admin_status: str
    oper_status: str
    speed_mbps: int | None
    in_bps: float | None = None
    out_bps: float | None = None
    in_errors_ps: float | None = None
    out_errors_ps: float | None = None


class DeviceStatusOut(BaseModel):
    device_id: int
    hostname: str
    reachable: bool | None
    consecutive_failures: int = 0
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str = ""
    poll_duration_s: float | None = None
    sys_uptime_cs: int | None = None
    sys_descr: str = ""
    sys_name: str = ""
    sys_location: str = ""
    sys_object_id: str = ""
    cpu_percent: float | None = None
    memory_percent: float | None = None
    interfaces: list[InterfaceStatusOut] = []


class PollOut(DeviceStatusOut):
    ok: bool
    events: list[str] = []  # event types this poll produced


class SampleOut(BaseModel):
    time: datetime
    interface: str
    metric: str
    value: float


class PollSettingsIn(BaseModel):
    """Per-device overrides of FAULTLOOP_POLL_*; null means "use the setting"."""

    model_config = ConfigDict(extra="forbid")

    interval_s: float | None = Field(None, ge=1, le=86400)
    timeout_s: float | None = Field(None, gt=0, le=60)
    retries: int | None = Field(None, ge=0, le=10)


class PollSettingsOut(BaseModel):
    device_id: int
    interval_s: float | None
    timeout_s: float | None
    retries: int | None
