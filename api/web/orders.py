"""Dashboard pages: provisioning orders (list with a state filter, one order with its per-device
items, rendered configuration diffs and timeline). Read-only: orders are written through the
JSON API and the CLI, where the order state table decides (provisioning.policy)."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from api.deps import PageDep, SessionDep, UserDep, runtime
from api.params import Id
from api.web.render import diff_lines, page
from faultloop.errors import InvalidInput
from faultloop.runtime import Runtime
from inventory import queries
from provisioning import service
from provisioning.models import OrderItem, ServiceOrder
from provisioning.policy import STATES

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(runtime)]


@router.get("/ui/orders", response_class=HTMLResponse)
def orders(
    request: Request,
    session: SessionDep,
    user: UserDep,
    page_: PageDep,
    state: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    state = state.strip()
    if state and state not in STATES:
        raise InvalidInput(f"state: expected one of {', '.join(STATES)}", field="state")
    # one row more than the page tells whether there is a next page without counting everything
    rows = service.list_orders(session, state=state or None, limit=page_.limit + 1, offset=page_.offset)
    has_next, rows = len(rows) > page_.limit, rows[: page_.limit]
    devices: dict[int, list[str]] = defaultdict(list)
    if rows:
        items = session.execute(
            select(OrderItem.order_id, OrderItem.device_id)
            .where(OrderItem.order_id.in_([o.id for o in rows]))
            .order_by(OrderItem.order_id, OrderItem.seq)
        ).all()
        hostnames = {d.id: d.hostname for d in queries.devices(session, ids={i.device_id for i in items})}
        for order_id, device_id in items:
            if device_id in hostnames:
                devices[order_id].append(hostnames[device_id])
    counts = {
        s: int(n) for s, n in session.execute(select(ServiceOrder.state, func.count()).group_by(ServiceOrder.state))
    }

    def link(offset: int) -> str:
        params: dict[str, Any] = {"state": state} if state else {}
        params.update(limit=page_.limit, offset=max(offset, 0))
        return "/ui/orders?" + urlencode(params)

    ctx: dict[str, Any] = {
        "orders": rows,
        "devices": devices,
        "state": state,
        "states": STATES,
        "counts": counts,
        "offset": page_.offset,
        "limit": page_.limit,
        "prev_url": link(page_.offset - page_.limit) if page_.offset > 0 else None,
        "next_url": link(page_.offset + page_.limit) if has_next else None,
    }
    fragment = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "orders"
    return page(request, "_order_list.html" if fragment else "orders.html", user, **ctx)


@router.get("/ui/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, order_id: Id, session: SessionDep, user: UserDep, rt: RuntimeDep) -> HTMLResponse:
    order = service.get_order(session, order_id)
    # the same view as the JSON API: diffs without context lines for roles that may not read config
    out = service.order_out(session, order, vault=rt.vault, role=str(user.role))
    ctx: dict[str, Any] = {
        "order": out,
        "request_doc": order.request,
        "diffs": {item.device_id: diff_lines(item.diff) for item in out.items},
        "timeline": service.timeline(session, order_id),
    }
    return page(request, "order.html", user, **ctx)
