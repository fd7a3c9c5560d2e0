"""Dashboard: maintenance windows (list, create from a form, delete).

The form is the JSON API's body (alarms.schemas.MaintenanceIn) in form fields: the same
validation, the same service (alarms.service.create_window), the same errors naming the field.
Times in the form are UTC; lists (devices, sites, tags, interfaces) are comma- or
whitespace-separated."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from alarms import service
from alarms.models import MaintenanceWindow
from alarms.schemas import MaintenanceIn
from api.deps import SessionDep, UserDep, WriteSessionDep
from api.params import Id
from api.web.render import page
from faultloop import clock
from faultloop.errors import InvalidInput

router = APIRouter(include_in_schema=False)

Kind = Literal["once", "rrule", "cron"]
SEPARATORS = re.compile(r"[\s,]+")


def _list(text: str) -> list[str]:
    return [item for item in SEPARATORS.split(text) if item]


def _time(text: str) -> datetime | str | None:
    """A form time: '2026-03-01T02:00' (a datetime-local input, taken as UTC) or ISO 8601 with an offset.
    Anything else goes to the schema as it is, which names the field in its error."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _invalid(exc: ValidationError) -> InvalidInput:
    problems = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    first = next((".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["loc"]), None)
    return InvalidInput("; ".join(problems), field=first)


def _windows(session: SessionDep, include_past: bool) -> list[tuple[MaintenanceWindow, bool]]:
    now = clock.now()
    return [(w, service.window_active(w, now)) for w in service.list_windows(session, include_past=include_past)]


def _render(request: Request, session: SessionDep, user: UserDep, include_past: bool, **context: Any) -> HTMLResponse:
    fragment = request.headers.get("hx-request") == "true"
    template = "_maintenance_body.html" if fragment else "maintenance.html"
    return page(request, template, user, windows=_windows(session, include_past), include_past=include_past, **context)


@router.get("/ui/maintenance", response_class=HTMLResponse)
def maintenance_page(
    request: Request, session: SessionDep, user: UserDep, include_past: Annotated[bool, Query()] = False
) -> HTMLResponse:
    return _render(request, session, user, include_past)


@router.post("/ui/maintenance", response_class=HTMLResponse)
def create_window(
    request: Request,
    session: WriteSessionDep,
    user: UserDep,
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[Kind, Form()] = "once",
    starts_at: Annotated[str, Form(max_length=64)] = "",
    ends_at: Annotated[str, Form(max_length=64)] = "",
    rrule: Annotated[str, Form(max_length=500)] = "",
    cron: Annotated[str, Form(max_length=100)] = "",
    duration_s: Annotated[str, Form(max_length=16)] = "",
    devices: Annotated[str, Form(max_length=20_000)] = "",
    sites: Annotated[str, Form(max_length=20_000)] = "",
    tags: Annotated[str, Form(max_length=20_000)] = "",
    interfaces: Annotated[str, Form(max_length=20_000)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    include_past: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    # Only the chosen kind's recurrence fields count: the form shows all of them.
    body: dict[str, Any] = {
        "name": name.strip(),
        "starts_at": _time(starts_at),
        "ends_at": _time(ends_at),
        "rrule": rrule.strip() or None if kind == "rrule" else None,
        "cron": cron.strip() or None if kind == "cron" else None,
        "duration_s": duration_s.strip() or None if kind != "once" else None,
        "devices": _list(devices),
        "sites": _list(sites),
        "tags": _list(tags),
        "interfaces": _list(interfaces),
        "reason": reason.strip(),
    }
    if kind == "rrule" and body["rrule"] is None:
        raise InvalidInput("rrule: required for a recurring (RRULE) window", field="rrule")
    if kind == "cron" and body["cron"] is None:
        raise InvalidInput("cron: required for a recurring (cron) window", field="cron")
    try:
        data = MaintenanceIn.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    window = service.create_window(session, data, actor=user.username)
    response = _render(request, session, user, include_past, created=window.id)
    response.status_code = 201
    return response


@router.delete("/ui/maintenance/{window_id}", response_class=HTMLResponse)
def delete_window(
    request: Request,
    window_id: Id,
    session: WriteSessionDep,
    user: UserDep,
    include_past: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    service.delete_window(session, window_id, actor=user.username)
    return _render(request, session, user, include_past)
