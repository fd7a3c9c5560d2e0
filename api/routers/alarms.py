"""Alarms, event ingest, the Alertmanager webhook receiver and maintenance windows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse

from alarms import service
from alarms.schemas import (
    AffectedServiceOut,
    AlarmDetail,
    AlarmOut,
    AlarmPage,
    AlertmanagerPayload,
    ClearIn,
    CommentIn,
    EventBatch,
    IngestResult,
    JournalOut,
    MaintenanceIn,
    MaintenanceOut,
    SeverityIn,
)
from alarms.stream import STREAM, STREAM_ENDED, sse
from api.deps import PageDep, SessionDep, UserDep, WriteSessionDep, runtime
from api.params import MAX_ID, Id
from faultloop import clock
from faultloop.accounts import service as accounts
from faultloop.errors import Unauthorized
from faultloop.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["alarms"])


@router.get("/alarms", response_model=AlarmPage)
def list_alarms(
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    state: Annotated[Literal["active", "cleared", "all"], Query()] = "active",
    severity: Annotated[Literal["critical", "major", "minor", "warning", "indeterminate"] | None, Query()] = None,
    device: Annotated[str | None, Query(description="Hostname")] = None,
    root_only: Annotated[bool, Query(description="Only alarms without a parent (root causes and lone alarms)")] = False,
    include_muted: Annotated[bool, Query()] = True,
    customer: Annotated[str | None, Query(max_length=120, description="Alarms affecting this customer")] = None,
    service_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Alarms affecting this service")] = None,
) -> AlarmPage:
    rows, total = service.list_alarms(
        session,
        limit=page.limit,
        offset=page.offset,
        state=None if state == "all" else state,
        severity=severity,
        device=device,
        root_only=root_only,
        include_muted=include_muted,
        customer=customer,
        service_id=service_id,
    )
    return AlarmPage(
        items=[AlarmOut.model_validate(a) for a in rows], total=total, limit=page.limit, offset=page.offset
    )


def _detail(session: SessionDep, alarm_id: int) -> AlarmDetail:
    alarm = service.get_alarm(session, alarm_id)
    return AlarmDetail(
        **AlarmOut.model_validate(alarm).model_dump(),
        journal=[JournalOut.model_validate(j) for j in service.journal(session, alarm_id)],
        children=service.children(session, alarm_id),
        affected_services=[AffectedServiceOut.model_validate(r) for r in service.affected_services(session, alarm_id)],
    )


class _ListenerResponse(StreamingResponse):
    """Frees the stream's listener slot however the response ends, even when the client goes
    away before the body starts (the generator's own ``finally`` would then never run)."""

    def __init__(self, content: AsyncIterator[str], *, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _token_problem(rt: Runtime, token_id: int) -> str | None:
    """Why the stream's token no longer holds (revoked, expired, user disabled), or None."""
    with rt.sessions() as session:
        try:
            accounts.check_token(session, token_id)
        except Unauthorized as exc:
            return exc.detail
        finally:
            session.rollback()
    return None


_HEARTBEAT = object()


@router.get("/alarms/stream", response_class=StreamingResponse)
async def alarm_stream(
    request: Request,
    user: UserDep,
    rt: Annotated[Runtime, Depends(runtime)],
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Close after this many changes (default: never)")
    ] = None,
    heartbeat_s: Annotated[float, Query(ge=1, le=300)] = 15,
) -> StreamingResponse:
    """Server-sent events: every alarm change after its commit (`event: alarm`, JSON data).

    The token is checked again at every heartbeat (and at least every `heartbeat_s` while changes
    flow): once it is revoked or expired, or its user disabled, the stream sends `event: end` with
    the reason and closes. 429 past `FAULTLOOP_ALARM_STREAM_MAX_PER_USER` streams of one user,
    503 past `FAULTLOOP_ALARM_STREAM_MAX_TOTAL`."""
    token_id: int = request.state.token_id
    listener = STREAM.open(
        f"user:{user.id}",
        max_per_owner=rt.settings.alarm_stream_max_per_user,
        max_total=rt.settings.alarm_stream_max_total,
    )

    async def events() -> AsyncIterator[str]:
        sent = 0
        checked = clock.now()
        yield ": connected\n\n"
        while limit is None or sent < limit:
            item: object
            try:
                item = await asyncio.wait_for(listener.queue.get(), heartbeat_s)
            except TimeoutError:
                item = _HEARTBEAT
            if item is _HEARTBEAT or (clock.now() - checked).total_seconds() >= heartbeat_s:
                problem = await anyio.to_thread.run_sync(_token_problem, rt, token_id)
                if problem is not None:
                    STREAM_ENDED.inc()
                    yield f"event: end\ndata: {json.dumps({'reason': problem})}\n\n"
                    return
                checked = clock.now()
            if item is _HEARTBEAT:
                yield ": heartbeat\n\n"
                continue
            if item is None:  # the server is shutting down
                return
            yield sse(item)  # type: ignore[arg-type]
            sent += 1

    return _ListenerResponse(
        events(),
        release=lambda: STREAM.close(listener),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/alarms/{alarm_id}", response_model=AlarmDetail)
def get_alarm(alarm_id: Id, session: SessionDep, user: UserDep) -> AlarmDetail:
    return _detail(session, alarm_id)


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmDetail)
def acknowledge(alarm_id: Id, session: WriteSessionDep, user: UserDep) -> AlarmDetail:
    service.acknowledge(session, alarm_id, actor=user.username)
    return _detail(session, alarm_id)


@router.post("/alarms/{alarm_id}/unack", response_model=AlarmDetail)
def unacknowledge(alarm_id: Id, session: WriteSessionDep, user: UserDep) -> AlarmDetail:
    service.unacknowledge(session, alarm_id, actor=user.username)
    return _detail(session, alarm_id)


@router.post("/alarms/{alarm_id}/comments", response_model=AlarmDetail, status_code=status.HTTP_201_CREATED)
def comment(alarm_id: Id, body: CommentIn, session: WriteSessionDep, user: UserDep) -> AlarmDetail:
    service.comment(session, alarm_id, actor=user.username, text=body.text)
    return _detail(session, alarm_id)


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmDetail)
def clear(alarm_id: Id, body: ClearIn, session: WriteSessionDep, user: UserDep) -> AlarmDetail:
    service.clear(session, alarm_id, actor=user.username, reason=body.reason)
    return _detail(session, alarm_id)


@router.put("/alarms/{alarm_id}/severity", response_model=AlarmDetail)
def set_severity(alarm_id: Id, body: SeverityIn, session: WriteSessionDep, user: UserDep) -> AlarmDetail:
    service.set_severity(session, alarm_id, actor=user.username, severity=body.severity)
    return _detail(session, alarm_id)


@router.post("/events", response_model=IngestResult, status_code=status.HTTP_202_ACCEPTED)
def ingest_events(body: EventBatch, session: WriteSessionDep, user: UserDep) -> IngestResult:
    """Store a batch of events (all or nothing); 202 means committed, the engine processes them next."""
    first, last = service.store_events(session, body.events, now=clock.now())
    return IngestResult(accepted=len(body.events), first_id=first, last_id=last)


@router.post("/alertmanager", response_model=IngestResult, status_code=status.HTTP_202_ACCEPTED)
def alertmanager(body: AlertmanagerPayload, session: WriteSessionDep, user: UserDep) -> IngestResult:
    """Alertmanager webhook receiver (payload version 4): firing alerts raise, resolved alerts clear."""
    events = service.alertmanager_events(body, now=clock.now())
    if not events:
        return IngestResult(accepted=0, first_id=0, last_id=0)
    first, last = service.store_events(session, events, now=clock.now())
    return IngestResult(accepted=len(events), first_id=first, last_id=last)


def _window_out(window: object) -> MaintenanceOut:
    out = MaintenanceOut.model_validate(window)
    out.active_now = service.window_active(window, clock.now())  # type: ignore[arg-type]
    return out


@router.get("/maintenance", response_model=list[MaintenanceOut])
def list_windows(
    session: SessionDep, user: UserDep, include_past: Annotated[bool, Query()] = False
) -> list[MaintenanceOut]:
    return [_window_out(w) for w in service.list_windows(session, include_past=include_past)]


@router.post("/maintenance", response_model=MaintenanceOut, status_code=status.HTTP_201_CREATED)
def create_window(body: MaintenanceIn, session: WriteSessionDep, user: UserDep) -> MaintenanceOut:
    return _window_out(service.create_window(session, body, actor=user.username))


@router.get("/maintenance/{window_id}", response_model=MaintenanceOut)
def get_window(window_id: Id, session: SessionDep, user: UserDep) -> MaintenanceOut:
    return _window_out(service.get_window(session, window_id))


@router.delete("/maintenance/{window_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_window(window_id: Id, session: WriteSessionDep, user: UserDep) -> None:
    service.delete_window(session, window_id, actor=user.username)
