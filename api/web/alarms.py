"""Dashboard: the alarm console (the landing page) and an alarm's detail with the operator actions.

Every piece of the console's state (filters, sort, page, expanded root causes) lives in the
URL query: the table fragment carries its own refresh URL, so the live refresh (the alarm
stream's `alarm` event) and the links inside the table never lose it, and the address bar
follows along (HX-Replace-Url)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from alarms import service
from alarms.schemas import ClearIn, CommentIn
from api.deps import SessionDep, UserDep, WriteSessionDep, runtime
from api.params import MAX_OFFSET, MAX_PAGE, Id, IdItem
from api.web.render import page
from faultloop.errors import InvalidInput
from faultloop.runtime import Runtime
from inventory import service as inventory

router = APIRouter(include_in_schema=False)

State = Literal["active", "unacknowledged", "acknowledged", "cleared", "all"]
Severity = Literal["", "critical", "major", "minor", "warning", "indeterminate"]
Sort = Literal["severity", "time", "first_seen", "device", "count"]
# the direction a column starts in when first clicked
FIRST_ORDER: dict[str, str] = {
    "severity": "desc",
    "time": "desc",
    "first_seen": "desc",
    "device": "asc",
    "count": "desc",
}
MAX_EXPANDED = 50


class ConsoleQuery:
    """The console's query parameters, validated (a bad value is a 422 naming the parameter)."""

    def __init__(
        self,
        rt: Annotated[Runtime, Depends(runtime)],
        state: Annotated[State, Query()] = "active",
        severity: Annotated[Severity, Query()] = "",
        site: Annotated[str, Query(max_length=100)] = "",
        device: Annotated[str, Query(max_length=255)] = "",
        q: Annotated[str, Query(max_length=200)] = "",
        customer: Annotated[str, Query(max_length=120)] = "",
        hide_muted: Annotated[bool, Query()] = False,
        sort: Annotated[Sort, Query()] = "severity",
        order: Annotated[Literal["asc", "desc"], Query()] = "desc",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        expand: Annotated[list[IdItem], Query(max_length=MAX_EXPANDED)] = [],  # noqa: B006 - FastAPI copies it
    ) -> None:
        if limit > rt.settings.page_size_max:
            raise InvalidInput(f"limit: expected at most {rt.settings.page_size_max}", field="limit")
        self.state, self.severity, self.site, self.device = state, severity, site.strip(), device.strip()
        self.q, self.hide_muted, self.sort, self.order = q.strip(), hide_muted, sort, order
        self.customer = customer.strip()
        self.limit, self.offset, self.expand = limit, offset, list(dict.fromkeys(expand))

    @property
    def filters(self) -> service.ConsoleFilter:
        return service.ConsoleFilter(
            state=self.state,
            severity=self.severity or None,
            site=self.site or None,
            device=self.device or None,
            q=self.q or None,
            hide_muted=self.hide_muted,
            customer=self.customer or None,
        )

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query as pairs, defaults left out, with ``changes`` applied."""
        values: dict[str, Any] = {
            "state": self.state,
            "severity": self.severity,
            "site": self.site,
            "device": self.device,
            "q": self.q,
            "customer": self.customer,
            "hide_muted": self.hide_muted,
            "sort": self.sort,
            "order": self.order,
            "limit": self.limit,
            "offset": self.offset,
            "expand": self.expand,
            **changes,
        }
        defaults = {"state": "active", "sort": "severity", "order": "desc", "limit": 50, "offset": 0}
        pairs: list[tuple[str, str]] = []
        for key, value in values.items():
            if key == "expand":
                pairs += [("expand", str(v)) for v in value]
            elif key == "hide_muted":
                if value:
                    pairs.append((key, "true"))
            elif value not in ("", None) and defaults.get(key) != value:
                pairs.append((key, str(value)))
        return pairs

    def url(self, base: str = "/", **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"{base}?{query}" if query else base

    def rows_url(self, **changes: Any) -> str:
        return self.url("/ui/alarms/rows", **changes)

    def sort_changes(self, column: str) -> dict[str, Any]:
        """Clicking a column header: its first direction, or the other one when it is already the sort."""
        if column == self.sort:
            return {"sort": column, "order": "asc" if self.order == "desc" else "desc", "offset": 0}
        return {"sort": column, "order": FIRST_ORDER[column], "offset": 0}

    def toggle(self, alarm_id: int) -> dict[str, Any]:
        if alarm_id in self.expand:
            return {"expand": [i for i in self.expand if i != alarm_id]}
        return {"expand": [*self.expand, alarm_id][-MAX_EXPANDED:]}


ConsoleDep = Annotated[ConsoleQuery, Depends()]


def _console(session: SessionDep, query: ConsoleQuery) -> service.ConsolePage:
    return service.console(
        session,
        filters=query.filters,
        sort=query.sort,
        descending=query.order == "desc",
        limit=query.limit,
        offset=query.offset,
        expand=query.expand,
    )


@router.get("/", response_class=HTMLResponse)
def console_page(request: Request, session: SessionDep, user: UserDep, query: ConsoleDep) -> HTMLResponse:
    sites = [s.name for s in inventory.list_sites(session)]
    return page(request, "alarms.html", user, console=_console(session, query), query=query, sites=sites, oob=False)


@router.get("/ui/alarms/rows", response_class=HTMLResponse)
def console_rows(request: Request, session: SessionDep, user: UserDep, query: ConsoleDep) -> HTMLResponse:
    """The table (counts, rows, pager) that htmx swaps in; the address bar follows its query."""
    response = page(request, "_alarm_table.html", user, console=_console(session, query), query=query, oob=True)
    response.headers["HX-Replace-Url"] = query.url("/")
    return response


def _detail(request: Request, session: SessionDep, user: UserDep, alarm_id: int, **headers: str) -> HTMLResponse:
    detail = service.console_detail(session, alarm_id)
    fragment = request.headers.get("hx-request") == "true"
    template = "_alarm_detail.html" if fragment else "alarm_detail.html"
    response = page(request, template, user, detail=detail, alarm=detail.row.alarm)
    response.headers.update(headers)
    return response


@router.get("/ui/alarms/{alarm_id}", response_class=HTMLResponse)
def alarm_detail(request: Request, alarm_id: Id, session: SessionDep, user: UserDep) -> HTMLResponse:
    return _detail(request, session, user, alarm_id)


# After an action the console's table refreshes itself (it listens for this event on the body).
CHANGED = {"HX-Trigger": "alarms-changed"}


@router.post("/ui/alarms/{alarm_id}/ack", response_class=HTMLResponse)
def acknowledge(request: Request, alarm_id: Id, session: WriteSessionDep, user: UserDep) -> HTMLResponse:
    service.acknowledge(session, alarm_id, actor=user.username)
    return _detail(request, session, user, alarm_id, **CHANGED)


@router.post("/ui/alarms/{alarm_id}/comments", response_class=HTMLResponse)
def comment(
    request: Request, alarm_id: Id, body: Annotated[CommentIn, Form()], session: WriteSessionDep, user: UserDep
) -> HTMLResponse:
    service.comment(session, alarm_id, actor=user.username, text=body.text)
    return _detail(request, session, user, alarm_id, **CHANGED)


@router.post("/ui/alarms/{alarm_id}/clear", response_class=HTMLResponse)
def clear(
    request: Request, alarm_id: Id, body: Annotated[ClearIn, Form()], session: WriteSessionDep, user: UserDep
) -> HTMLResponse:
    service.clear(session, alarm_id, actor=user.username, reason=body.reason)
    return _detail(request, session, user, alarm_id, **CHANGED)
