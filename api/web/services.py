"""Dashboard: the customer services with their operational state (up / degraded / down, from the
alarm engine's state history), worst first. Read-only; the service desk sees it too (customer terms:
the causing alarm is linked for staff only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import SessionDep, UserDep
from api.routers.desk import sla_classes
from api.routers.orders import RuntimeDep, with_oper_state
from api.web.render import page
from faultloop.accounts.models import Role
from provisioning import service

router = APIRouter(include_in_schema=False)
MAX_ROWS = 500
ORDER = {"down": 0, "degraded": 1, "up": 2}


@router.get("/ui/services", response_class=HTMLResponse)
def services_page(
    request: Request,
    session: SessionDep,
    user: UserDep,
    rt: RuntimeDep,
    oper_state: Annotated[Literal["", "up", "degraded", "down"], Query()] = "",
    customer: Annotated[str, Query(max_length=120)] = "",
) -> HTMLResponse:
    found = [service.service_out(session, s)
             for s in service.list_services(session, customer=customer.strip() or None, state=None)]  # fmt: skip
    found = [s for s in with_oper_state(session, found) if s.state != "terminated"]
    counts = {state: sum(1 for s in found if s.oper_state == state) for state in ORDER}
    rows = sorted((s for s in found if not oper_state or s.oper_state == oper_state),
                  key=lambda s: (ORDER[s.oper_state], s.customer, s.id))  # fmt: skip
    return page(request, "services.html", user, rows=rows[:MAX_ROWS], more=len(rows) > MAX_ROWS, counts=counts,
                oper_state=oper_state, customer=customer, classes=sla_classes(rt),
                show_alarms=user.role != Role.servicedesk)  # fmt: skip
