"""What every TM Forum API router shares: the list query and answer, and the hub routes.

A list answers 200 with the page as a JSON array and the TMF630 headers ``X-Total-Count`` (every
match) and ``X-Result-Count`` (this page). Errors on /tmf-api/ routes take the TMF ``Error`` shape
(``api/problems.py``). The hub routes (``POST /hub``, ``GET /hub/{id}``, ``DELETE /hub/{id}``) are
the same for every API: ``add_hub_routes`` puts them on an API's router.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, UserDep, WriteSessionDep, runtime
from faultloop.runtime import Runtime
from northbound import hub
from northbound.query import ListQuery, Resource, parse_list_query

RuntimeDep = Annotated[Runtime, Depends(runtime)]


def list_query(request: Request, resource: Resource) -> ListQuery:
    """The request's TMF630 list query checked against ``resource`` (400 naming what is wrong)."""
    rt: Runtime = request.app.state.runtime
    return parse_list_query(request.query_params.multi_items(), resource, page_max=rt.settings.page_size_max)


def list_response(items: Sequence[Mapping[str, Any]], *, total: int) -> JSONResponse:
    return JSONResponse(
        [dict(item) for item in items],
        headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))},
    )


class HubIn(BaseModel):
    """TMF ``EventSubscriptionInput``: where to send the API's events, and which ones."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    callback: str = Field(min_length=1, max_length=2000)
    query: str = Field("", max_length=2000)


def add_hub_routes(router: APIRouter, api: hub.HubApi, base: str) -> None:
    """``POST {base}/hub``, ``GET {base}/hub/{id}`` and ``DELETE {base}/hub/{id}`` for ``api``;
    ``base`` is the API's root, e.g. ``/tmf-api/alarmManagement/v4``."""

    @router.post(f"{base}/hub", status_code=201, summary=f"Subscribe to {api.name} events",
                 name=f"{api.name}_hub_subscribe")  # fmt: skip
    def subscribe(body: HubIn, session: WriteSessionDep, user: UserDep, rt: RuntimeDep,
                  response: Response) -> dict[str, Any]:  # fmt: skip
        row = hub.subscribe(session, api, callback=body.callback, query=body.query, actor=user.username,
                            allow_private=rt.settings.tmf_hub_allow_private)  # fmt: skip
        response.headers["Location"] = f"{base}/hub/{row.id}"
        return hub.subscription_out(row)

    @router.get(f"{base}/hub/{{subscription_id}}", summary=f"A subscription to {api.name} events",
                name=f"{api.name}_hub_get")  # fmt: skip
    def get(subscription_id: str, session: SessionDep) -> dict[str, Any]:
        return hub.subscription_out(hub.get_subscription(session, api, subscription_id))

    @router.delete(f"{base}/hub/{{subscription_id}}", status_code=204, summary=f"Unsubscribe from {api.name}",
                   name=f"{api.name}_hub_delete")  # fmt: skip
    def delete(subscription_id: str, session: WriteSessionDep, user: UserDep) -> Response:
        hub.unsubscribe(session, api, subscription_id, actor=user.username)
        return Response(status_code=204)
