"""Pydantic shapes of the ticket API (NOC, technician phone app, reports)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ticketing.policy import ACTIONS

Priority = Literal["P1", "P2", "P3", "P4"]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("expected a timezone-aware time (e.g. 2026-01-01T10:30:00Z)")
    return value


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=300)
    description: str = Field("", max_length=4000)
    severity: Literal["critical", "major", "minor", "warning", "indeterminate"] = "major"
    priority: Priority | None = None
    device: str = Field("", max_length=255)
    site: str = Field("", max_length=100)


class TransitionIn(BaseModel):
    """One action of the state machine; the fields an action needs are checked by the service."""

    model_config = ConfigDict(extra="forbid")
    # documented as the table's actions; checked by the service, whose refusal lists the allowed ones
    action: str = Field(min_length=1, max_length=20, json_schema_extra={"enum": list(ACTIONS)})
    version: int | None = Field(None, description="The version you read; a stale one is 409 (or use If-Match)")
    diagnosis: str | None = Field(None, max_length=4000)
    fault_category: str | None = Field(None, max_length=100)
    required_skill: str | None = Field(None, max_length=50)
    technician: str | None = Field(None, max_length=64)
    team: str | None = Field(None, max_length=100)
    eta: datetime | None = None
    location_note: str | None = Field(None, max_length=500)
    cause_category: str | None = Field(None, max_length=100)
    action_taken: str | None = Field(None, max_length=4000)
    parts_used: list[str] | None = Field(None, max_length=100)
    notes: str | None = Field(None, max_length=4000)
    rating: int | None = None
    reason: str | None = Field(None, max_length=500)
    how: str | None = Field(None, max_length=200)

    _tz = field_validator("eta")(classmethod(lambda cls, v: _aware(v)))

    @field_validator("action")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ACTIONS:
            raise ValueError(f"expected one of {', '.join(ACTIONS)}")
        return value


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["en_route", "on_site", "update", "wait", "resume"]
    version: int | None = None
    eta: datetime | None = None
    location_note: str | None = Field(None, max_length=500)
    reason: str | None = Field(None, max_length=500)

    _tz = field_validator("eta")(classmethod(lambda cls, v: _aware(v)))


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = None


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = None
    cause_category: str = Field(min_length=1, max_length=100)
    action_taken: str = Field(min_length=1, max_length=4000)
    parts_used: list[str] = Field(default_factory=list, max_length=100)
    notes: str = Field("", max_length=4000)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)
    version: int | None = None


class LinkedAlarmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    alarm_id: int
    reduction_key: str
    role: str
    attached_at: datetime
    archived_at: datetime | None


class TicketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    version: int
    title: str
    description: str
    state: str
    priority: str
    severity: str
    source: str
    site: str
    device: str
    alarm_type: str
    root_key: str | None
    root_alarm_id: int | None
    fault_category: str
    diagnosis: str
    required_skill: str
    tier: int
    assignee: str | None = None
    team: str
    eta: datetime | None
    location_note: str
    cause_category: str
    action_taken: str
    parts_used: list[str]
    resolution_notes: str
    rating: int | None
    cancel_reason: str
    reopen_count: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    verified_at: datetime | None
    closed_at: datetime | None
    response_target_s: float
    restore_target_s: float
    response_elapsed_s: float
    restore_elapsed_s: float
    response_breached: bool
    restore_breached: bool
    sla_class: str | None = None  # the highest SLA class among the customer services it affects
    close_reason: str = ""  # e.g. "cleared before dispatch"


class TicketDetail(TicketOut):
    alarms: list[LinkedAlarmOut]
    allowed_actions: list[str]


class TicketPage(BaseModel):
    items: list[TicketOut]
    total: int
    limit: int
    offset: int


class TimelineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ticket_id: int
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    detail: dict[str, object]


class TechnicianIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skills: list[str] = Field(default_factory=list, max_length=50)
    sites: list[str] = Field(default_factory=list, max_length=500)
    team: str = Field("", max_length=100)
    tier: int = Field(1, ge=1, le=5)
    on_shift: bool = True
    # where a dispatch to this technician is announced: an e-mail address or an http(s) webhook URL;
    # "" removes it, absent keeps the stored one
    notify_to: str | None = Field(None, max_length=1000)


class TechnicianOut(BaseModel):
    username: str
    skills: list[str]
    sites: list[str]
    team: str
    tier: int
    on_shift: bool
    load: int
    notify_to: str = Field("", description="the e-mail address, or only the scheme and host of a webhook URL")


class MttrRow(BaseModel):
    key: str
    tickets: int
    resolved: int
    mttr_s: float | None
    recurrences: int
    cleared_before_dispatch: int = 0  # tickets closed because their alarms cleared before anyone acknowledged


# ---- customer fault reports (service desk) ----------------------------------------------------


class FaultReportIn(BaseModel):
    """A customer's fault: the service by id or by the customer's own reference for it."""

    model_config = ConfigDict(extra="forbid")
    customer: str = Field(min_length=1, max_length=120)
    service_id: int | None = Field(None, ge=1, le=2**31 - 1)
    customer_ref: str | None = Field(None, max_length=120)
    symptom: str = Field(max_length=2000)
    contact: str = Field(max_length=200)
    channel: str = Field(max_length=10, description="phone, email, web or chat")


class AutoTestOut(BaseModel):
    test: str  # snmp_poll, or none
    ran: bool
    device: str = ""
    interface: str = ""
    reachable: bool | None = None
    oper_status: str | None = None
    admin_status: str | None = None
    verdict: str


class StatusStep(BaseModel):
    status: str
    label: str
    at: datetime


class FaultReportStatus(BaseModel):
    """What the customer may be told: no ticket, alarm, device or technician details."""

    ref: str
    customer: str
    service_id: int
    customer_ref: str
    symptom: str
    channel: str
    received_at: datetime
    status: Literal["received", "being_repaired", "technician_on_site", "restored", "closed"]
    status_label: str
    updated_at: datetime
    history: list[StatusStep]


class FaultReportCreated(FaultReportStatus):
    correlated: bool = Field(description="true: joined the repair of a fault the network already shows")
    message: str
    auto_tests: list[AutoTestOut]


class ServiceReportRow(BaseModel):
    """One customer or site over the period (ticketing/assurance.py says how each figure is made)."""

    key: str
    services: int
    tickets: int
    acknowledged: int
    mtta_s: float | None
    resolved: int
    mttr_s: float | None
    sla_met: int
    sla_decided: int
    sla_compliance_pct: float | None
    downtime_s: float
    service_s: float
    availability_pct: float | None
    # from the service state history, maintenance excluded (ticketing/assurance.py)
    maintenance_s: float = 0.0
    down_s: float = 0.0
    degraded_s: float = 0.0
    service_availability_pct: float | None = None


class AvailabilityRow(BaseModel):
    """One service (``key``: its id) or customer over one calendar month (UTC), from the service state
    history: minutes it existed, in maintenance, down and degraded outside maintenance."""

    month: str
    key: str
    customer: str
    services: int
    service_type: str | None
    sla_class: str | None
    service_minutes: float
    maintenance_minutes: float
    down_minutes: float
    degraded_minutes: float
    availability_pct: float | None
