"""TMF642 Alarm Management v4 at /tmf-api/alarmManagement/v4: the alarm list and one alarm, the task
resources that acknowledge, unacknowledge, clear and comment the alarms an ``alarmPattern`` selects,
and the hub. Errors take the TMF ``Error`` shape (api/problems.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, UserDep, WriteSessionDep
from api.tmf import add_hub_routes, list_query, list_response
from northbound import alarm
from northbound.query import TmfQueryError, project

BASE = alarm.BASE
router = APIRouter(tags=["TMF642 alarm management"])


class _Task(BaseModel):
    """What every task input shares: the patterns; ``@type`` and friends are accepted and ignored.
    The read-only parts of a task (``id``, ``href``, ``state``, the result lists) are refused by name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    alarmPattern: list[Any] = Field(min_length=1, max_length=alarm.MAX_PATTERNS)  # noqa: N815 - the TMF name
    type_: str | None = Field(None, alias="@type", max_length=100)
    base_type: str | None = Field(None, alias="@baseType", max_length=100)
    schema_location: str | None = Field(None, alias="@schemaLocation", max_length=500)


class AckAlarmsIn(_Task):
    ackUserId: str | None = Field(None, max_length=100)  # noqa: N815
    ackSystemId: str | None = Field(None, max_length=100)  # noqa: N815
    ackTime: str | None = Field(None, max_length=40)  # noqa: N815 - the server's time is recorded


class ClearAlarmsIn(_Task):
    clearUserId: str | None = Field(None, max_length=100)  # noqa: N815
    clearSystemId: str | None = Field(None, max_length=100)  # noqa: N815
    alarmClearedTime: str | None = Field(None, max_length=40)  # noqa: N815 - the server's time is recorded


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    comment: str = Field(min_length=1, max_length=4000)
    userId: str | None = Field(None, max_length=100)  # noqa: N815
    systemId: str | None = Field(None, max_length=100)  # noqa: N815
    time: str | None = Field(None, max_length=40)
    type_: str | None = Field(None, alias="@type", max_length=100)


class CommentAlarmsIn(_Task):
    comment: CommentIn


def _created(doc: dict[str, Any]) -> JSONResponse:
    return JSONResponse(doc, status_code=201)


@router.get(f"{BASE}/alarm", summary="List alarms (TMF630 fields, offset, limit, attribute filters)")
def list_alarms(request: Request, session: SessionDep, user: UserDep) -> JSONResponse:
    query = list_query(request, alarm.RESOURCE)
    docs, total = alarm.list_alarms(session, query)
    return list_response([project(d, query.fields) for d in docs], total=total)


@router.get(f"{BASE}/alarm/{{alarm_id}}", summary="One alarm")
def get_alarm(alarm_id: str, request: Request, session: SessionDep, user: UserDep) -> dict[str, Any]:
    query = list_query(request, alarm.RESOURCE)
    if query.filters:
        path = query.filters[0].path
        raise TmfQueryError(f"{path}: filters apply to the alarm list, not to one alarm", field=path)
    return project(alarm.get_alarm(session, alarm_id), query.fields)


@router.patch(f"{BASE}/alarm/{{alarm_id}}", summary="Change an alarm (ackState, perceivedSeverity, state, comment)")
def patch_alarm(
    alarm_id: str, session: WriteSessionDep, user: UserDep, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    return alarm.patch_alarm(session, alarm_id, body, actor=user.username)


@router.post(f"{BASE}/ackAlarms", status_code=201, summary="Acknowledge the alarms the patterns select")
def ack_alarms(body: AckAlarmsIn, session: WriteSessionDep, user: UserDep) -> JSONResponse:
    return _created(alarm.ack_alarms(session, body.alarmPattern, actor=user.username, ack_user=body.ackUserId,
                                     ack_system=body.ackSystemId))  # fmt: skip


@router.post(f"{BASE}/unAckAlarms", status_code=201, summary="Unacknowledge the alarms the patterns select")
def unack_alarms(body: AckAlarmsIn, session: WriteSessionDep, user: UserDep) -> JSONResponse:
    return _created(alarm.unack_alarms(session, body.alarmPattern, actor=user.username, ack_user=body.ackUserId,
                                       ack_system=body.ackSystemId))  # fmt: skip


@router.post(f"{BASE}/clearAlarms", status_code=201, summary="Clear the alarms the patterns select")
def clear_alarms(body: ClearAlarmsIn, session: WriteSessionDep, user: UserDep) -> JSONResponse:
    who = body.clearUserId or user.username
    return _created(alarm.clear_alarms(
        session, body.alarmPattern, actor=user.username, clear_user=body.clearUserId,
        clear_system=body.clearSystemId, reason=f"cleared through TMF642 clearAlarms by {who}",
    ))  # fmt: skip


@router.post(f"{BASE}/commentAlarms", status_code=201, summary="Comment the alarms the patterns select")
def comment_alarms(body: CommentAlarmsIn, session: WriteSessionDep, user: UserDep) -> JSONResponse:
    return _created(alarm.comment_alarms(session, body.alarmPattern, actor=user.username, text=body.comment.comment,
                                         comment=body.comment.model_dump()))  # fmt: skip


add_hub_routes(router, alarm.API, BASE)
