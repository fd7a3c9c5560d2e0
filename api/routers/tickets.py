"""Trouble tickets: the NOC's ticket API, the technician (phone app) API, technicians and reports.

Writes answer with the ticket's ``ETag`` (its version); send it back as ``If-Match`` (or a
``version`` field) and a stale one is 409. POSTs honour an ``Idempotency-Key`` header: a
retry returns the first answer with no second effect; the same key with another body is 422.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from pydantic.json_schema import JsonDict
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.deps import PageDep, SessionDep, UserDep, runtime
from api.params import Id
from faultloop import clock
from faultloop.accounts.models import User
from faultloop.db import database_locked, writing
from faultloop.errors import InvalidInput
from faultloop.runtime import Runtime
from ticketing import dispatch, service
from ticketing.errors import DatabaseBusy
from ticketing.models import TechnicianProfile, Ticket
from ticketing.notify import shown_address
from ticketing.policy import STATES, Policy, allowed_actions, load_policy
from ticketing.schemas import (
    AcceptIn,
    LinkedAlarmOut,
    MttrRow,
    NoteIn,
    Priority,
    ResolveIn,
    StatusIn,
    TechnicianIn,
    TechnicianOut,
    TicketDetail,
    TicketIn,
    TicketOut,
    TicketPage,
    TimelineOut,
    TransitionIn,
)

router = APIRouter(prefix="/api/v1", tags=["tickets"])


def _etag_header(schema: JsonDict) -> None:
    """A header is a string or absent (never JSON null), in the form _version accepts."""
    schema.pop("anyOf", None)
    schema.update(type="string", pattern=r'^\s*(W/)?"?[0-9]+"?\s*$')


IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='The ETag you read, e.g. "3"', json_schema_extra=_etag_header),
]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", description="Makes a retried POST safe")]


@functools.lru_cache(maxsize=8)
def _load(path: Path | None) -> Policy:
    return load_policy(path)


async def policy_dep(rt: Annotated[Runtime, Depends(runtime)]) -> Policy:
    # cached after the first request: no I/O, so no thread-pool hop
    return _load(rt.settings.ticket_policy_file)


PolicyDep = Annotated[Policy, Depends(policy_dep)]
StateQ = Literal[
    "new", "acknowledged", "diagnosed", "dispatched", "accepted", "en_route", "on_site", "waiting", "resolved",
    "verified", "closed", "cancelled",
]  # fmt: skip
assert set(StateQ.__args__) == set(STATES)  # type: ignore[attr-defined]


def _version(if_match: str | None, body_version: int | None) -> int | None:
    if if_match is not None:
        raw = if_match.strip().removeprefix("W/").strip('"')
        if not (raw.isascii() and raw.isdigit()):  # str.isdigit alone takes "²", which int() refuses
            raise InvalidInput('If-Match: expected the ticket\'s ETag, e.g. "3"', field="If-Match")
        if body_version is not None and body_version != int(raw):
            raise InvalidInput("version: differs from If-Match; send one of them", field="version")
        return int(raw)
    return body_version


def _out(session: Session, ticket: Ticket) -> TicketOut:
    out = TicketOut.model_validate(ticket)
    out.assignee = service._username(session, ticket.assignee_id)
    return out


def _detail(session: Session, ticket: Ticket, actor: service.Actor) -> TicketDetail:
    return TicketDetail(
        **_out(session, ticket).model_dump(),
        alarms=[LinkedAlarmOut.model_validate(a) for a in service.linked_alarms(session, ticket.id)],
        allowed_actions=allowed_actions(
            ticket.state, role=actor.role, is_assignee=service.is_assignee(session, ticket, actor)
        ),
    )


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _write(
    request: Request,
    session: Session,
    user: User,
    key: str | None,
    body: BaseModel | None,
    effect: Callable[[], tuple[BaseModel, int | None]],
    status_code: int = 200,
) -> JSONResponse:
    """Run a POST's effect once per Idempotency-Key; the stored answer is replayed to retries."""
    return run_write(session, lambda: _write_once(request, session, user, key, body, effect, status_code))


BUSY_RETRIES = 4
T = TypeVar("T")


def run_write(session: Session, attempt: Callable[[], T]) -> T:
    """Run a write that commits itself (``commit_or_busy``), in turn with the process's other
    writers (faultloop.db.writing). SQLite refuses a write whose read snapshot is older than
    another commit (DatabaseBusy): the whole attempt is run again in a fresh transaction, a few
    times, before the client sees a 409. The ticket pages of the dashboard write through it too."""
    with writing(session):
        for n in range(BUSY_RETRIES):
            try:
                return attempt()
            except DatabaseBusy:
                if n == BUSY_RETRIES - 1:
                    raise
                session.rollback()
    raise AssertionError("unreachable")


def commit_or_busy(session: Session) -> None:
    """Commit here, in the thread that wrote: SQLite holds its write lock from the first write to
    the commit, and the request's own teardown may wait for a free worker thread under load. The
    dependency's commit afterwards has nothing left to do. A locked database is DatabaseBusy."""
    try:
        session.commit()
    except OperationalError as exc:
        if database_locked(exc):
            raise DatabaseBusy("the database is busy; retry") from None
        raise


def _write_once(
    request: Request,
    session: Session,
    user: User,
    key: str | None,
    body: BaseModel | None,
    effect: Callable[[], tuple[BaseModel, int | None]],
    status_code: int,
) -> JSONResponse:
    claim = None
    if key is not None:
        digest = service.request_hash(request.method, request.url.path, body.model_dump(mode="json") if body else None)
        claim, replay = service.idempotency_claim(session, user_id=user.id, key=key, digest=digest, now=clock.now())
        if replay:
            headers = {"Idempotent-Replayed": "true"}
            if "version" in claim.response:
                headers.update(_etag(int(claim.response["version"])))
            return JSONResponse(claim.response, status_code=claim.status_code, headers=headers)
    result, version = effect()
    payload: dict[str, Any] = jsonable_encoder(result)
    if claim is not None:
        service.idempotency_complete(session, claim, status_code=status_code, response=payload)
    commit_or_busy(session)
    return JSONResponse(payload, status_code=status_code, headers=_etag(version) if version is not None else None)


# ---- NOC ---------------------------------------------------------------------------------------


@router.get("/tickets", response_model=TicketPage)
def list_tickets(
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    state: Annotated[StateQ | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    site: Annotated[str | None, Query(max_length=100)] = None,
    device: Annotated[str | None, Query(max_length=255)] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
) -> TicketPage:
    actor = service.Actor.of(user)
    rows, total = service.list_ticket_rows(
        session, limit=page.limit, offset=page.offset, state=state, priority=priority, site=site, device=device,
        open_only=open_only, technician=actor if actor.role == "technician" else None,
    )  # fmt: skip
    return TicketPage.model_validate({"items": rows, "total": total, "limit": page.limit, "offset": page.offset})


@router.post("/tickets", status_code=201, response_model=TicketDetail)
def create_ticket(
    request: Request, data: TicketIn, session: SessionDep, user: UserDep, policy: PolicyDep, key: IdemKey = None
) -> JSONResponse:
    actor = service.Actor.of(user)

    def effect() -> tuple[BaseModel, int | None]:
        ticket = service.create_manual(session, policy=policy, actor=actor, now=clock.now(), **data.model_dump())
        return _detail(session, ticket, actor), ticket.version

    return _write(request, session, user, key, data, effect, status_code=201)


@router.get("/tickets/{ticket_id}", response_model=TicketDetail)
def get_ticket(ticket_id: Id, session: SessionDep, user: UserDep, response: Response) -> TicketDetail:
    actor = service.Actor.of(user)
    ticket = service.get_visible(session, ticket_id, actor)
    response.headers.update(_etag(ticket.version))
    return _detail(session, ticket, actor)


@router.post("/tickets/{ticket_id}/transitions", response_model=TicketDetail)
def transition(
    request: Request, ticket_id: Id, data: TransitionIn, session: SessionDep, user: UserDep, policy: PolicyDep,
    if_match: IfMatch = None, key: IdemKey = None,
) -> JSONResponse:  # fmt: skip
    """Apply one action of the state machine (see docs/tickets.md); an illegal one is 409 with allowed_actions."""
    actor = service.Actor.of(user)
    version = _version(if_match, data.version)
    fields = data.model_dump(exclude={"action", "version"}, exclude_none=True)
    window_s = request.app.state.runtime.settings.ticket_reopen_window_s

    def effect() -> tuple[BaseModel, int | None]:
        ticket = service.transition(
            session, policy=policy, ticket_id=ticket_id, action=data.action, actor=actor, data=fields,
            expected_version=version, now=clock.now(), reopen_window_s=window_s,
        )  # fmt: skip
        return _detail(session, ticket, actor), ticket.version

    return _write(request, session, user, key, data, effect)


@router.post("/tickets/{ticket_id}/notes", status_code=201, response_model=TimelineOut)
def add_note(
    request: Request, ticket_id: Id, data: NoteIn, session: SessionDep, user: UserDep,
    if_match: IfMatch = None, key: IdemKey = None,
) -> JSONResponse:  # fmt: skip
    actor = service.Actor.of(user)
    version = _version(if_match, data.version)

    def effect() -> tuple[BaseModel, int | None]:
        entry = service.add_note(session, ticket_id=ticket_id, actor=actor, text=data.text,
                                 expected_version=version, now=clock.now())  # fmt: skip
        return TimelineOut.model_validate(entry), None

    return _write(request, session, user, key, data, effect, status_code=201)


@router.get(
    "/tickets/{ticket_id}/timeline",
    response_model=list[TimelineOut],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_timeline(
    ticket_id: Id, session: SessionDep, user: UserDep,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",  # noqa: A002
) -> Any:  # fmt: skip
    service.get_visible(session, ticket_id, service.Actor.of(user))
    entries = service.timeline(session, ticket_id)
    if format == "csv":
        return PlainTextResponse(
            service.timeline_csv(entries), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="ticket-{ticket_id}-timeline.csv"'},
        )  # fmt: skip
    return [TimelineOut.model_validate(e) for e in entries]


# ---- technician (phone app) -------------------------------------------------------------------


@router.get("/me/tickets", response_model=TicketPage)
def my_tickets(
    session: SessionDep, user: UserDep, page: PageDep,
    open_only: Annotated[bool, Query(alias="open")] = True,
) -> TicketPage:  # fmt: skip
    """The caller's tickets and their team's (open ones by default), newest first."""
    rows, total = service.list_ticket_rows(
        session, limit=page.limit, offset=page.offset, open_only=open_only, technician=service.Actor.of(user)
    )
    return TicketPage.model_validate({"items": rows, "total": total, "limit": page.limit, "offset": page.offset})


def _tech_transition(
    request: Request, session: Session, user: User, policy: Policy, ticket_id: int, action: str,
    body: BaseModel, fields: dict[str, Any], version: int | None, key: str | None,
) -> JSONResponse:  # fmt: skip
    actor = service.Actor.of(user)

    def effect() -> tuple[BaseModel, int | None]:
        ticket = service.transition(session, policy=policy, ticket_id=ticket_id, action=action, actor=actor,
                                    data=fields, expected_version=version, now=clock.now())  # fmt: skip
        return _detail(session, ticket, actor), ticket.version

    return _write(request, session, user, key, body, effect)


@router.post("/me/tickets/{ticket_id}/accept", response_model=TicketDetail)
def accept(
    request: Request, ticket_id: Id, session: SessionDep, user: UserDep, policy: PolicyDep,
    data: AcceptIn | None = None, if_match: IfMatch = None, key: IdemKey = None,
) -> JSONResponse:  # fmt: skip
    data = data or AcceptIn()
    version = _version(if_match, data.version)
    return _tech_transition(request, session, user, policy, ticket_id, "accept", data, {}, version, key)


@router.post("/me/tickets/{ticket_id}/status", response_model=TicketDetail)
def status_update(
    request: Request, ticket_id: Id, data: StatusIn, session: SessionDep, user: UserDep, policy: PolicyDep,
    if_match: IfMatch = None, key: IdemKey = None,
) -> JSONResponse:  # fmt: skip
    """en_route / on_site / update (ETA, location note) / wait (reason; pauses the SLA) / resume."""
    version = _version(if_match, data.version)
    fields = data.model_dump(exclude={"status", "version"}, exclude_none=True)
    return _tech_transition(request, session, user, policy, ticket_id, data.status, data, fields, version, key)


@router.post("/me/tickets/{ticket_id}/notes", status_code=201, response_model=TimelineOut)
def my_note(
    request: Request, ticket_id: Id, data: NoteIn, session: SessionDep, user: UserDep,
    if_match: IfMatch = None, key: IdemKey = None,
) -> JSONResponse:  # fmt: skip
    return add_note(request, ticket_id, data, session, user, if_match, key)


@router.post("/me/tickets/{ticket_id}/resolve", response_model=TicketDetail)
def resolve(
    request: Request, ticket_id: Id, data: ResolveIn, session: SessionDep, user: UserDep, policy: PolicyDep,
    if_match: IfMatch = None, key: IdemKey = None,
) -> JSONResponse:  # fmt: skip
    """Technician feedback: cause category, action taken, parts used, notes."""
    version = _version(if_match, data.version)
    fields = data.model_dump(exclude={"version"})
    return _tech_transition(request, session, user, policy, ticket_id, "resolve", data, fields, version, key)


# ---- technicians and reports ------------------------------------------------------------------


def _tech_out(session: Session, prof: TechnicianProfile, user: User, load: dict[int, int]) -> TechnicianOut:
    return TechnicianOut(username=user.username, skills=prof.skills, sites=prof.sites, team=prof.team,
                         tier=prof.tier, on_shift=prof.on_shift, load=load.get(user.id, 0),
                         notify_to=shown_address(prof.notify_to or ""))  # fmt: skip


@router.get("/technicians", response_model=list[TechnicianOut])
def list_technicians(session: SessionDep, user: UserDep) -> list[TechnicianOut]:
    load = dispatch.loads(session)
    rows = session.execute(
        select(TechnicianProfile, User).join(User, User.id == TechnicianProfile.user_id).order_by(User.username)
    ).all()
    return [_tech_out(session, p, u, load) for p, u in rows]


@router.put("/technicians/{username}", response_model=TechnicianOut)
def put_technician(
    request: Request, username: str, data: TechnicianIn, session: SessionDep, user: UserDep
) -> TechnicianOut:
    """Create or replace the technician profile of an existing user with role technician."""
    allow_private = request.app.state.runtime.settings.technician_notify_allow_private
    prof = dispatch.upsert_profile(session, username=username, allow_private=allow_private, **data.model_dump())
    tech = session.get(User, prof.user_id)
    assert tech is not None
    return _tech_out(session, prof, tech, dispatch.loads(session))


@router.get("/reports/tickets/mttr", response_model=list[MttrRow])
def mttr_report(
    session: SessionDep, user: UserDep,
    by: Annotated[Literal["site", "device", "cause"], Query()] = "site",
) -> list[MttrRow]:  # fmt: skip
    """Per site, device or cause category: tickets, resolved, MTTR (created -> resolved), recurrences."""
    return [MttrRow(**row) for row in service.mttr_report(session, by=by)]
