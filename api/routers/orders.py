"""Service activation: catalog, orders (create, validate, plan, approve, execute, cancel, timeline),
service inventory and VLAN pools.

Route roles are coarse (api/rbac.py); the order state table (provisioning/policy.py) decides
per action and state, including four-eyes approval. Execution runs in a worker thread and
answers when the order has finished (completed, rolled_back or failed).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from api.deps import PageDep, ServicesDep, SessionDep, UserDep, WriteSessionDep, runtime
from api.params import Id
from faultloop.db import transaction
from faultloop.runtime import Runtime
from provisioning import service
from provisioning.render import catalog, service_type
from provisioning.schemas import (
    CatalogTypeOut,
    OrderOut,
    ServiceDetailOut,
    ServiceOut,
    StatePeriodOut,
    TimelineEntryOut,
    VlanPoolIn,
    VlanPoolOut,
)  # fmt: skip

router = APIRouter(prefix="/api/v1", tags=["provisioning"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


@router.get("/catalog", response_model=list[CatalogTypeOut])
def list_catalog(user: UserDep, rt: RuntimeDep) -> list[CatalogTypeOut]:
    return [service.catalog_out(st) for st in catalog(rt.settings.provisioning_catalog_dir).values()]


@router.get("/catalog/{name}", response_model=CatalogTypeOut)
def get_catalog_type(name: str, user: UserDep, rt: RuntimeDep) -> CatalogTypeOut:
    return service.catalog_out(service_type(name, rt.settings.provisioning_catalog_dir))


@router.post("/orders", response_model=OrderOut, status_code=201)
def create_order(
    session: WriteSessionDep, user: UserDep, body: Annotated[dict[str, Any], Body(description="the order (OrderIn)")]
) -> OrderOut:
    """A draft order. Inputs pass the character gate (CR/LF, control characters, injection markers) first."""
    order = service.create_order(session, service.parse_order(body), actor=user.username)
    return service.order_out(session, order, role=str(user.role))


@router.get("/orders", response_model=list[OrderOut])
def list_orders(
    session: SessionDep, user: UserDep, page: PageDep, state: Annotated[str | None, Query(max_length=20)] = None
) -> list[OrderOut]:
    rows = service.list_orders(session, state=state, limit=page.limit, offset=page.offset)
    return [service.order_out(session, o, role=str(user.role)) for o in rows]


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: Id, session: SessionDep, user: UserDep) -> OrderOut:
    return service.order_out(session, service.get_order(session, order_id), role=str(user.role))


def _act(session: Session, order_id: int, action: str, user: Any, rt: Runtime) -> OrderOut:
    order = service.act(
        session,
        order_id,
        action,
        actor=user.username,
        role=str(user.role),
        four_eyes=rt.settings.provisioning_four_eyes,
        vault=rt.vault,
    )
    return service.order_out(session, order, role=str(user.role))


@router.post("/orders/{order_id}/validate", response_model=OrderOut)
def validate_order(order_id: Id, session: WriteSessionDep, user: UserDep, rt: RuntimeDep) -> OrderOut:
    return _act(session, order_id, "validate", user, rt)


@router.post("/orders/{order_id}/plan", response_model=OrderOut)
def plan_order(order_id: Id, session: WriteSessionDep, user: UserDep, rt: RuntimeDep) -> OrderOut:
    """Dry run: render per device and diff against the latest config backup. Never touches a device."""
    return _act(session, order_id, "plan", user, rt)


@router.post("/orders/{order_id}/approve", response_model=OrderOut)
def approve_order(order_id: Id, session: WriteSessionDep, user: UserDep, rt: RuntimeDep) -> OrderOut:
    return _act(session, order_id, "approve", user, rt)


@router.post("/orders/{order_id}/cancel", response_model=OrderOut)
def cancel_order(order_id: Id, session: WriteSessionDep, user: UserDep, rt: RuntimeDep) -> OrderOut:
    return _act(session, order_id, "cancel", user, rt)


@router.post("/orders/{order_id}/execute", response_model=OrderOut)
async def execute(order_id: Id, services: ServicesDep, user: UserDep, rt: RuntimeDep) -> OrderOut:
    """Push now (within the order's change window); answers with the finished order."""
    await asyncio.to_thread(services.execute_order, order_id, actor=user.username, role=str(user.role))

    def read() -> OrderOut:
        with transaction(rt.sessions) as session:
            return service.order_out(session, service.get_order(session, order_id), role=str(user.role))

    return await asyncio.to_thread(read)


@router.get("/orders/{order_id}/timeline", response_model=list[TimelineEntryOut])
def order_timeline(order_id: Id, session: SessionDep, user: UserDep) -> list[TimelineEntryOut]:
    return service.timeline(session, order_id)


def with_oper_state(session: Session, services: list[ServiceOut]) -> list[ServiceOut]:
    """The services with their operational state (the alarm engine's open state periods)."""
    current = alarm_queries.current_states(session, (s.id for s in services))
    out = []
    for s in services:
        period = current.get(s.id)
        if period is not None:
            s = s.model_copy(update={"oper_state": period.state, "oper_state_since": period.started_at,
                                     "oper_state_alarm_id": period.alarm_id})  # fmt: skip
        out.append(s)
    return out


@router.get("/services", response_model=list[ServiceOut])
def list_services(
    session: SessionDep,
    user: UserDep,
    customer: Annotated[str | None, Query(max_length=120)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
    oper_state: Annotated[
        Literal["up", "degraded", "down"] | None, Query(description="Only services in this operational state")
    ] = None,
) -> list[ServiceOut]:
    found = [service.service_out(session, s) for s in service.list_services(session, customer=customer, state=state)]
    found = with_oper_state(session, found)
    return [s for s in found if oper_state is None or s.oper_state == oper_state]


@router.get("/services/{service_id}", response_model=ServiceDetailOut)
def get_service(service_id: Id, session: SessionDep, user: UserDep) -> ServiceDetailOut:
    """The service, its operational state and its last 100 degraded/down periods (newest first)."""
    (found,) = with_oper_state(session, [service.service_out(session, service.get_service(session, service_id))])
    history = alarm_queries.state_history(session, service_ids=[service_id], limit=100)
    return ServiceDetailOut(
        **found.model_dump(),
        state_history=[StatePeriodOut.model_validate({"state": p.state, "from": p.started_at, "to": p.ended_at,
                                                      "alarm_id": p.alarm_id}) for p in history],
    )  # fmt: skip


@router.get("/vlan-pools", response_model=list[VlanPoolOut])
def list_vlan_pools(session: SessionDep, user: UserDep) -> list[VlanPoolOut]:
    return [service.pool_out(session, p) for p in service.list_pools(session)]


@router.post("/vlan-pools", response_model=VlanPoolOut, status_code=201)
def create_vlan_pool(body: VlanPoolIn, session: WriteSessionDep, user: UserDep) -> VlanPoolOut:
    return service.pool_out(session, service.create_pool(session, body, actor=user.username))
