"""Dashboard: the service desk's fault-report form and status lookup, and the service reports page.

The form posts the JSON API's body (ticketing.schemas.FaultReportIn) as form fields through
the same code (api.routers.desk.file_report): the same checks, the same errors naming the field.
The reports page draws its bars as server-rendered SVG (no script, no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from api.deps import ServicesDep, SessionDep, UserDep, runtime
from api.routers.desk import file_report, period, sla_classes
from api.routers.tickets import PolicyDep
from api.web.maintenance import _invalid
from api.web.render import page
from faultloop import clock
from faultloop.errors import InvalidInput
from faultloop.runtime import Runtime
from provisioning import queries as service_inventory
from ticketing import assurance, desk
from ticketing.schemas import FaultReportIn

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(runtime)]


@router.get("/ui/fault-reports", response_class=HTMLResponse)
def desk_page(request: Request, user: UserDep) -> HTMLResponse:
    return page(request, "desk.html", user, channels=desk.CHANNELS)


@router.post("/ui/fault-reports", response_class=HTMLResponse)
async def desk_report(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    rt: RuntimeDep,
    policy: PolicyDep,
    customer: Annotated[str, Form(max_length=120)] = "",
    service_id: Annotated[str, Form(max_length=12)] = "",
    customer_ref: Annotated[str, Form(max_length=120)] = "",
    symptom: Annotated[str, Form(max_length=2000)] = "",
    contact: Annotated[str, Form(max_length=200)] = "",
    channel: Annotated[str, Form(max_length=10)] = "phone",
) -> HTMLResponse:
    sid: int | None = None
    if service_id.strip():
        if not service_id.strip().isdigit():
            raise InvalidInput("service_id: expected a service number", field="service_id")
        sid = int(service_id.strip())
    try:
        body = FaultReportIn(customer=customer.strip(), service_id=sid, customer_ref=customer_ref.strip() or None,
                             symptom=symptom, contact=contact, channel=channel)  # fmt: skip
    except ValidationError as exc:
        raise _invalid(exc) from None
    created = await file_report(rt, services, policy, user, body)
    return page(request, "_desk_result.html", user, status_code=201, report=created.model_dump(), created=True)


@router.get("/ui/fault-reports/status", response_class=HTMLResponse)
def desk_status(
    request: Request,
    session: SessionDep,
    user: UserDep,
    customer: Annotated[str, Query(min_length=1, max_length=120)],
    ref: Annotated[str, Query(min_length=1, max_length=20)],
) -> HTMLResponse:
    view = desk.customer_view(session, desk.get_report(session, ref=ref, customer=customer))
    return page(request, "_desk_result.html", user, report=view, created=False)


# ---- service reports -------------------------------------------------------------------------

BAR_W, BAR_H, LABEL_W = 360, 18, 160


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | None
    text: str
    width: float
    y: int


def bars(rows: list[dict[str, Any]], field: str, *, scale: float, fmt: str) -> list[Bar]:
    """One horizontal bar per row: ``field`` over ``scale`` of BAR_W (a missing value: no bar)."""
    out = []
    for i, row in enumerate(rows):
        value = row[field]
        width = 0.0 if value is None or scale <= 0 else max(0.0, min(1.0, value / scale)) * BAR_W
        text = "–" if value is None else fmt.format(value)
        out.append(Bar(label=row["key"] or "(no site)", value=value, text=text, width=round(width, 1),
                       y=i * (BAR_H + 6)))  # fmt: skip
    return out


def _date(text: str, name: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: expected a date (YYYY-MM-DD) or an ISO 8601 time", field=name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _month_span(begin: datetime, finish: datetime) -> dict[str, str]:
    """The availability CSV's query for the months of [begin, finish), at most the last 12."""
    last = finish - timedelta(microseconds=1)
    first = (begin.year, begin.month)
    earliest = (last.year - (1 if last.month < 12 else 0), last.month % 12 + 1)
    first = max(first, earliest)
    return {"by": "customer", "start": f"{first[0]:04d}-{first[1]:02d}", "end": f"{last:%Y-%m}", "format": "csv"}


@router.get("/ui/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    session: SessionDep,
    user: UserDep,
    rt: RuntimeDep,
    by: Annotated[Literal["customer", "site", "sla_class"], Query()] = "customer",
    start: Annotated[str, Query(max_length=40)] = "",
    end: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    begin, finish = period(_date(start, "start"), _date(end, "end"))
    services = service_inventory.services(session)
    classes = sla_classes(rt)
    now = clock.now()
    rows = assurance.service_report(session, services=services, by=by, start=begin, end=finish, now=now,
                                    sla_classes=classes)  # fmt: skip
    monthly = assurance.availability_report(session, services=services, sla_classes=classes, by="customer",
                                            start=begin, end=finish, now=now)  # fmt: skip
    mttr_peak = max([r["mttr_s"] or 0.0 for r in rows] + [1.0])
    charts = [
        ("Availability (tickets)", "availability", bars(rows, "availability_pct", scale=100.0, fmt="{:.3f} %")),
        ("Service availability (state history, maintenance excluded)", "state",
         bars(rows, "service_availability_pct", scale=100.0, fmt="{:.3f} %")),
        ("SLA compliance", "sla", bars(rows, "sla_compliance_pct", scale=100.0, fmt="{:.1f} %")),
        ("MTTR", "mttr", bars(rows, "mttr_s", scale=mttr_peak, fmt="{:.0f} s")),
    ]
    query = {"by": by, "start": begin.isoformat(), "end": finish.isoformat()}
    return page(request, "reports.html", user, rows=rows, by=by, start=begin, end=finish, charts=charts,
                bar_w=BAR_W, bar_h=BAR_H, label_w=LABEL_W, chart_h=max(1, len(rows)) * (BAR_H + 6),
                csv_url="/api/v1/reports/services?" + urlencode({**query, "format": "csv"}), monthly=monthly,
                monthly_csv_url="/api/v1/reports/availability?" + urlencode(_month_span(begin, finish)),
                start_value=start or f"{begin:%Y-%m-%d}", end_value=end)  # fmt: skip
