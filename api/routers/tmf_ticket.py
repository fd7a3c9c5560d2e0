"""TMF621 Trouble Ticket v4 at /tmf-api/troubleTicket/v4: list, get, create, patch, and the hub.

Bodies are read as JSON and checked by ``northbound.ticket`` (every unknown, read-only or malformed
attribute is a 400 in the TMF ``Error`` shape naming it). PATCH takes ``application/merge-patch+json``
(TMF630) or ``application/json``. Answers carry the ticket's ``ETag`` (its version); ``If-Match`` on a
PATCH makes a stale one 409, as in the JSON API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse

from api.deps import SessionDep, UserDep, WriteSessionDep
from api.routers.tickets import PolicyDep
from api.tmf import add_hub_routes, list_query, list_response
from faultloop import clock
from northbound import itsm
from northbound import ticket as tmf
from northbound.query import TmfQueryError
from ticketing import service

router = APIRouter(tags=["TMF621 trouble tickets"])
PATCH_TYPES = ("application/merge-patch+json", "application/json")
_BODY = {"requestBody": {"required": True, "content": {t: {"schema": {"type": "object"}} for t in PATCH_TYPES}}}


def _content_type(request: Request, types: tuple[str, ...]) -> None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in types:
        raise TmfQueryError(f"Content-Type: expected {' or '.join(types)}", field="Content-Type")


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise TmfQueryError('If-Match: expected the ticket\'s ETag, e.g. "3"', field="If-Match")
    return int(raw)


def _answer(doc: dict[str, Any], status_code: int = 200, **headers: str) -> JSONResponse:
    version = next((c["value"] for c in doc.get("troubleTicketCharacteristic", []) if c["name"] == "version"), None)
    if version is not None:
        headers["ETag"] = f'"{version}"'
    return JSONResponse(doc, status_code=status_code, headers=headers)


@router.get(f"{tmf.PATH}", summary="List trouble tickets (TMF630 fields, offset, limit, filters)")
def list_tickets(request: Request, session: SessionDep, user: UserDep) -> JSONResponse:
    docs, total = tmf.list_tickets(session, list_query(request, tmf.RESOURCE))
    return list_response(docs, total=total)


@router.get(f"{tmf.PATH}/{{ticket_id}}", summary="A trouble ticket")
def get_ticket(ticket_id: str, session: SessionDep, user: UserDep) -> JSONResponse:
    return _answer(tmf.get(session, ticket_id))


@router.post(f"{tmf.PATH}", status_code=201, summary="Create a trouble ticket (state new: TMF acknowledged)")
def create_ticket(
    request: Request, body: Annotated[Any, Body()], session: WriteSessionDep, user: UserDep, policy: PolicyDep
) -> JSONResponse:
    _content_type(request, ("application/json",))
    doc = tmf.create(session, body, policy=policy, actor=service.Actor.of(user), now=clock.now())
    return _answer(doc, 201, Location=doc["href"])


@router.patch(f"{tmf.PATH}/{{ticket_id}}", summary="Change a trouble ticket: status (a state machine action), "
              "notes, externalId, ticketType", openapi_extra=_BODY)  # fmt: skip
def patch_ticket(
    request: Request, ticket_id: str, body: Annotated[Any, Body()], session: WriteSessionDep, user: UserDep,
    policy: PolicyDep,
    if_match: Annotated[str | None, Header(alias="If-Match", description='The ETag you read, e.g. "3"')] = None,
) -> JSONResponse:  # fmt: skip
    _content_type(request, PATCH_TYPES)
    window_s = request.app.state.runtime.settings.ticket_reopen_window_s
    return _answer(tmf.patch(
        session, ticket_id, body, policy=policy, actor=service.Actor.of(user), now=clock.now(),
        reopen_window_s=window_s, expected_version=_if_match(if_match),
    ))  # fmt: skip


@router.post(f"{tmf.BASE}/listener/troubleTicketStatusChangeEvent",
             summary="The service desk's hub event: a status change of a ticket it owns, applied here")  # fmt: skip
def status_change_listener(request: Request, body: Annotated[Any, Body()], session: WriteSessionDep, user: UserDep,
                           policy: PolicyDep) -> JSONResponse:  # fmt: skip
    _content_type(request, ("application/json",))
    window_s = request.app.state.runtime.settings.ticket_reopen_window_s
    return _answer(itsm.accept_status_event(session, body, policy=policy, actor=service.Actor.of(user),
                                            now=clock.now(), reopen_window_s=window_s))  # fmt: skip


add_hub_routes(router, tmf.API, tmf.BASE)
