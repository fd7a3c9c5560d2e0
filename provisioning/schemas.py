"""Pydantic in/out shapes for orders, services, VLAN pools and the catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from provisioning.render import reject_unsafe


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("expected a timezone-aware time (e.g. 2026-11-25T22:00:00Z)")
    return value


class OrderTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str = Field(..., min_length=1, max_length=255, description="inventory hostname")
    params: dict[str, Any] = Field(default_factory=dict, description="per-device values (e.g. interface)")


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["activate", "modify", "terminate"] = "activate"
    service_type: str = Field(..., min_length=1, max_length=64)
    customer: str = Field(..., min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.,:/()#@+=-]*$")
    service_id: int | None = Field(None, description="the service to modify or terminate")
    params: dict[str, Any] = Field(default_factory=dict, description="values common to every device")
    targets: list[OrderTarget] = Field(default_factory=list, max_length=1000)
    vlan_pool: str | None = Field(None, max_length=64, description="allocate the VLAN from this pool")
    window_start: datetime | None = Field(None, description="change window: not executed before")
    window_end: datetime | None = Field(None, description="change window: not executed after")

    @model_validator(mode="before")
    @classmethod
    def _gate(cls, data: Any) -> Any:
        # Character gate on every string first: CR/LF, control characters, injection markers.
        reject_unsafe(data, "")
        return data

    _tz = field_validator("window_start", "window_end")(classmethod(lambda cls, v: _aware(v)))

    @model_validator(mode="after")
    def _consistent(self) -> OrderIn:
        if self.action == "activate" and self.service_id is not None:
            raise ValueError("service_id: an activation creates a new service; give it only to modify or terminate")
        if self.action != "activate" and self.service_id is None:
            raise ValueError(f"service_id: required to {self.action} a service")
        if self.action != "terminate" and not self.targets:
            raise ValueError("targets: give at least one device")
        names = [t.device for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("targets: a device may appear once per order")
        if self.window_start and self.window_end and self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class OrderItemOut(BaseModel):
    device_id: int
    hostname: str
    seq: int
    params: dict[str, Any]
    commands: list[str]
    inverse: list[str]
    diff: str
    backup_id: int | None
    status: str
    message: str


class OrderOut(BaseModel):
    id: int
    action: str
    service_type: str
    customer: str
    service_id: int | None
    state: str
    vlan_pool: str | None
    window_start: datetime | None
    window_end: datetime | None
    maintenance_window_id: int | None
    created_by: str
    approved_by: str | None
    executed_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    result: str
    allowed_actions: list[str]
    items: list[OrderItemOut]


class ResourceOut(BaseModel):
    device_id: int
    hostname: str
    interface: str
    vlan: int | None


class ServiceOut(BaseModel):
    id: int
    service_type: str
    customer: str
    state: str
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    resources: list[ResourceOut]
    # operational state from the active alarms' impact (the alarm engine keeps it; the API fills it in)
    oper_state: Literal["up", "degraded", "down"] = "up"
    oper_state_since: datetime | None = None  # when the current degraded/down period began
    oper_state_alarm_id: int | None = None  # the worst active alarm when it began


class StatePeriodOut(BaseModel):
    """A period the service was degraded or down (``to`` None while it lasts)."""

    model_config = ConfigDict(populate_by_name=True)
    state: Literal["degraded", "down"]
    from_: datetime = Field(alias="from")
    to: datetime | None
    alarm_id: int | None


class ServiceDetailOut(ServiceOut):
    state_history: list[StatePeriodOut] = []  # newest first, at most the last 100 periods


class VlanPoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    site: str | None = Field(None, max_length=255)
    vlan_min: int = Field(..., ge=2, le=4094)
    vlan_max: int = Field(..., ge=2, le=4094)

    @model_validator(mode="after")
    def _range(self) -> VlanPoolIn:
        if self.vlan_max < self.vlan_min:
            raise ValueError("vlan_max must be at least vlan_min")
        return self


class VlanPoolOut(BaseModel):
    id: int
    name: str
    site: str | None
    vlan_min: int
    vlan_max: int
    allocated: list[int]


class CatalogFieldOut(BaseModel):
    name: str
    type: str
    required: bool
    pool: bool
    choices: list[Any]


class CatalogTypeOut(BaseModel):
    name: str
    description: str
    platforms: list[str]
    resources: list[str]
    fields: list[CatalogFieldOut]


class TimelineEntryOut(BaseModel):
    at: datetime
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
