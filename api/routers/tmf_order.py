"""TMF641 Service Ordering and TMF638 Service Inventory (v4), with their hubs.

/tmf-api/serviceOrdering/v4/serviceOrder: list (TMF630 query), get, create (a faultloop order,
planned: ``acknowledged``); /cancelServiceOrder cancels one before it runs.
/tmf-api/serviceInventory/v4/service: list, get. Roles: api/rbac.py (TMF_RESOURCE_READERS, TMF_ORDER_WRITERS,
TMF_READERS for the hubs); the order state table still decides per action (a NOC approver approves, four-eyes).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse

from api.deps import SessionDep, UserDep, WriteSessionDep
from api.tmf import RuntimeDep, add_hub_routes, list_query, list_response
from northbound import order as tmf_order
from northbound import service as tmf_service

router = APIRouter(tags=["TMF641 service ordering, TMF638 service inventory"])
JsonBody = Annotated[Any, Body(description="the TMF document")]


@router.get(tmf_order.PATH, summary="List service orders (TMF641)")
def list_orders(request: Request, session: SessionDep) -> JSONResponse:
    items, total = tmf_order.list_orders(session, list_query(request, tmf_order.RESOURCE))
    return list_response(items, total=total)


@router.get(f"{tmf_order.PATH}/{{order_id}}", summary="A service order (TMF641)")
def get_order(order_id: str, session: SessionDep) -> dict[str, Any]:
    return tmf_order.get(session, order_id)


@router.post(tmf_order.PATH, status_code=201, summary="Create a service order (TMF641), planned")
def create_order(body: JsonBody, session: WriteSessionDep, user: UserDep, rt: RuntimeDep,
                 response: Response) -> dict[str, Any]:  # fmt: skip
    order = tmf_order.create(session, body, actor=user.username, role=str(user.role), vault=rt.vault,
                             four_eyes=rt.settings.provisioning_four_eyes)  # fmt: skip
    response.headers["Location"] = f"{tmf_order.PATH}/{order.id}"
    return tmf_order.snapshot(session, order)


@router.post(tmf_order.CANCEL_PATH, status_code=201, summary="Cancel a service order before it runs (TMF641)")
def cancel_order(body: JsonBody, session: WriteSessionDep, user: UserDep, rt: RuntimeDep) -> dict[str, Any]:
    return tmf_order.cancel(session, body, actor=user.username, role=str(user.role), vault=rt.vault,
                            four_eyes=rt.settings.provisioning_four_eyes)  # fmt: skip


@router.get(tmf_service.PATH, summary="List services (TMF638)")
def list_services(request: Request, session: SessionDep) -> JSONResponse:
    items, total = tmf_service.list_services(session, list_query(request, tmf_service.RESOURCE))
    return list_response(items, total=total)


@router.get(f"{tmf_service.PATH}/{{service_id}}", summary="A service (TMF638)")
def get_service(service_id: str, session: SessionDep) -> dict[str, Any]:
    return tmf_service.get(session, service_id)


add_hub_routes(router, tmf_order.API, tmf_order.BASE)
add_hub_routes(router, tmf_service.API, tmf_service.BASE)
