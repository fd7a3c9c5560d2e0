"""The customer service desk: fault reports (customer-facing status) and service assurance reports.

The seam between provisioning (the service inventory) and ticketing (which opens the tickets)
is here, in the layer above both: the service is read through ``provisioning.queries`` and
handed to ``ticketing.desk`` as a record; neither package imports the other.

A report is written and committed first; then, when the network showed nothing, the first
automatic test polls the service's devices over SNMP (the poll-now handle) and its result
goes on the ticket's timeline in a second transaction: a dead device or a slow agent never
holds the report's transaction open, and a report is never lost to a failed test.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import PlainTextResponse

from api.deps import PageDep, ServicesDep, SessionDep, UserDep, runtime
from api.routers.tickets import PolicyDep
from api.services import ServiceHandles
from faultloop import clock, csvsafe
from faultloop.accounts.models import User
from faultloop.db import transaction
from faultloop.errors import DomainError, InvalidInput
from faultloop.runtime import Runtime
from provisioning import queries as service_inventory
from provisioning.render import catalog
from ticketing import assurance, desk
from ticketing.policy import Policy
from ticketing.schemas import (
    AutoTestOut,
    AvailabilityRow,
    FaultReportCreated,
    FaultReportIn,
    FaultReportStatus,
    ServiceReportRow,
)
from ticketing.service import Actor

router = APIRouter(prefix="/api/v1", tags=["service desk"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
MAX_AUTO_TESTS = 4  # devices polled for one report (an L2 service may span many)
CustomerQ = Annotated[str, Query(min_length=1, max_length=120, description="The customer the report is for")]


@dataclass(frozen=True, slots=True)
class _Target:
    device_id: int
    hostname: str
    interface: str


async def _auto_test(services: ServiceHandles, target: _Target) -> AutoTestOut:
    """Poll the device now over SNMP and read the service's interface from the result."""
    try:
        result, tracker = await services.poll_now(target.device_id)
    except DomainError as exc:  # no SNMP settings, device gone: say why no test ran
        return AutoTestOut(test="snmp_poll", ran=False, device=target.hostname, interface=target.interface,
                           verdict=f"no automatic test ran: {exc.detail}")  # fmt: skip
    if not result.ok or tracker.last is None:
        return AutoTestOut(test="snmp_poll", ran=True, device=target.hostname, interface=target.interface,
                           reachable=False, verdict="device does not answer SNMP")  # fmt: skip
    if not target.interface:
        return AutoTestOut(test="snmp_poll", ran=True, device=target.hostname, reachable=True,
                           verdict="device answers SNMP")  # fmt: skip
    port = next((i for i in tracker.last.interfaces.values() if target.interface in (i.name, i.alias)), None)
    if port is None:
        return AutoTestOut(test="snmp_poll", ran=True, device=target.hostname, interface=target.interface,
                           reachable=True, verdict="device answers SNMP; no such interface")  # fmt: skip
    verdict = f"device answers SNMP; interface admin {port.admin_status}, oper {port.oper_status}"
    return AutoTestOut(test="snmp_poll", ran=True, device=target.hostname, interface=target.interface,
                       reachable=True, admin_status=port.admin_status, oper_status=port.oper_status,
                       verdict=verdict)  # fmt: skip


async def file_report(
    rt: Runtime, services: ServiceHandles, policy: Policy, user: User, body: FaultReportIn
) -> FaultReportCreated:
    """Record the report (correlated or a diagnosis ticket), then run and record the automatic test."""
    actor = Actor.of(user)

    def record() -> tuple[int, str, bool, list[_Target]]:
        with transaction(rt.sessions, write=True) as session:
            report = desk.check_report(body.model_dump())
            svc = service_inventory.customer_service(
                session, customer=body.customer, service_id=body.service_id, customer_ref=body.customer_ref
            )
            outcome = desk.report_fault(session, policy=policy, service=svc, report=report,
                                        customer_ref=body.customer_ref or svc.customer_ref, actor=actor,
                                        now=clock.now())  # fmt: skip
            targets: dict[int, _Target] = {}
            if not outcome.correlated:
                for r in svc.resources:
                    if r.device_id not in targets and len(targets) < MAX_AUTO_TESTS:
                        targets[r.device_id] = _Target(r.device_id, r.hostname, r.interface)
            return outcome.ticket.id, outcome.report.ref, outcome.correlated, list(targets.values())

    ticket_id, ref, correlated, targets = await asyncio.to_thread(record)
    tests = [await _auto_test(services, t) for t in targets]
    if not correlated and not targets:
        tests.append(AutoTestOut(test="none", ran=False, verdict="no automatic test ran: the service has no devices"))

    def finish() -> FaultReportCreated:
        with transaction(rt.sessions, write=True) as session:
            for test in tests:
                desk.record_auto_test(session, ticket_id=ticket_id, ref=ref, now=clock.now(),
                                      **test.model_dump(exclude_none=True))  # fmt: skip
            view = desk.customer_view(session, desk.get_report(session, ref=ref, customer=body.customer))
        message = (
            "The network already shows a fault on this service; the report joined its repair."
            if correlated
            else "The network shows no fault on this service; a ticket was opened for diagnosis."
        )
        return FaultReportCreated(**view, correlated=correlated, message=message, auto_tests=tests)

    return await asyncio.to_thread(finish)


@router.post("/fault-reports", response_model=FaultReportCreated, status_code=201)
async def create_fault_report(
    body: FaultReportIn, services: ServicesDep, user: UserDep, rt: RuntimeDep, policy: PolicyDep
) -> FaultReportCreated:
    """A customer's fault report: joins the open ticket of an alarm on the service's resources,
    or opens a ticket for diagnosis and runs a first automatic test (SNMP poll of its devices)."""
    return await file_report(rt, services, policy, user, body)


@router.get("/fault-reports", response_model=list[FaultReportStatus])
def list_fault_reports(
    customer: CustomerQ, session: SessionDep, user: UserDep, page: PageDep
) -> list[FaultReportStatus]:
    """One customer's reports, newest first, in customer terms."""
    rows = desk.list_reports(session, customer=customer, limit=page.limit, offset=page.offset)
    return [FaultReportStatus(**desk.customer_view(session, row)) for row in rows]


@router.get("/fault-reports/{ref}", response_model=FaultReportStatus)
def get_fault_report(
    ref: Annotated[str, Path(max_length=20)], customer: CustomerQ, session: SessionDep, user: UserDep
) -> FaultReportStatus:
    """The report's status in customer terms; 404 unless it is this customer's."""
    return FaultReportStatus(**desk.customer_view(session, desk.get_report(session, ref=ref, customer=customer)))


# ---- service assurance reports ----------------------------------------------------------------


def period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end): the last 30 days by default; both timezone-aware, start before end, at most a year."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name}: expected a timezone-aware time (e.g. 2026-01-01T00:00:00Z)", field=name)
    end = (end or clock.now()).astimezone(UTC)
    start = (start or end - timedelta(days=30)).astimezone(UTC)
    if start >= end:
        raise InvalidInput("start: expected a time before end", field="start")
    if end - start > timedelta(days=366):
        raise InvalidInput("start: expected a period of at most 366 days", field="start")
    return start, end


def report_csv(rows: list[dict[str, Any]], fields: tuple[str, ...] = assurance.FIELDS) -> str:
    """The rows as CSV, every cell a spreadsheet would run as a formula neutralised (faultloop.csvsafe)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fields)
    for row in rows:
        writer.writerow(["" if row[f] is None else csvsafe.neutralize(row[f]) for f in fields])
    return out.getvalue()


def sla_classes(rt: Runtime) -> dict[str, str | None]:
    """Service type -> the SLA class the catalog gives it."""
    return {name: st.sla_class for name, st in catalog(rt.settings.provisioning_catalog_dir).items()}


MAX_MONTHS = 12


def _month(name: str, text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or not 2000 <= int(match[1]) <= 9998:
        raise InvalidInput(f"{name}: expected a month as YYYY-MM (e.g. 2026-03)", field=name)
    return int(match[1]), int(match[2])


def months(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """[first day of ``start``, first day after ``end``) in UTC: ``end`` defaults to the current month,
    ``start`` to ``end``; start after end, or more than 12 months, is refused naming ``start``."""
    now = clock.now().astimezone(UTC)
    last = _month("end", end) if end else (now.year, now.month)
    first = _month("start", start) if start else last
    if first > last:
        raise InvalidInput("start: expected a month at or before end", field="start")
    count = (last[0] - first[0]) * 12 + last[1] - first[1] + 1
    if count > MAX_MONTHS:
        raise InvalidInput(f"start: expected at most {MAX_MONTHS} months from start to end", field="start")
    following = (last[0] + last[1] // 12, last[1] % 12 + 1)
    return datetime(*first, 1, tzinfo=UTC), datetime(*following, 1, tzinfo=UTC)


@router.get(
    "/reports/services",
    response_model=list[ServiceReportRow],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def service_report(
    session: SessionDep,
    user: UserDep,
    rt: RuntimeDep,
    by: Annotated[Literal["customer", "site", "sla_class"], Query()] = "customer",
    start: Annotated[datetime | None, Query(description="ISO 8601 with timezone; default end - 30 days")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601 with timezone; default now")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",  # noqa: A002 - the query parameter's name
) -> Any:
    """MTTA, MTTR, SLA compliance and availability of customer services, per customer, site or service class."""
    begin, finish = period(start, end)
    rows = assurance.service_report(session, services=service_inventory.services(session), by=by, start=begin,
                                    end=finish, now=clock.now(), sla_classes=sla_classes(rt))  # fmt: skip
    if format == "csv":
        name = f"service-report-{by}-{begin:%Y%m%d}-{finish:%Y%m%d}.csv"
        return PlainTextResponse(report_csv(rows), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip
    return [ServiceReportRow(**row) for row in rows]



@router.get(
    "/reports/availability",
    response_model=list[AvailabilityRow],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def availability_report(
    session: SessionDep,
    user: UserDep,
    rt: RuntimeDep,
    by: Annotated[Literal["service", "customer"], Query()] = "service",
    start: Annotated[str | None, Query(max_length=7, description="First month, YYYY-MM (UTC); default end")] = None,
    end: Annotated[str | None, Query(max_length=7, description="Last month, YYYY-MM (UTC); default this month")] = None,
    customer: Annotated[str | None, Query(min_length=1, max_length=120, description="Only this customer")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",  # noqa: A002 - the query parameter's name
) -> Any:
    """Availability per service or per customer for each month: minutes in service, in maintenance, down and
    degraded (outside maintenance), from the service state history; availability = 1 - down / (service -
    maintenance)."""
    begin, finish = months(start, end)
    rows = assurance.availability_report(session, services=service_inventory.services(session, customer=customer),
                                         sla_classes=sla_classes(rt), by=by, start=begin, end=finish,
                                         now=clock.now())  # fmt: skip
    if format == "csv":
        name = f"availability-{by}-{begin:%Y%m}-{finish - timedelta(days=1):%Y%m}.csv"
        return PlainTextResponse(report_csv(rows, assurance.AVAILABILITY_FIELDS), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip
    return [AvailabilityRow(**row) for row in rows]
