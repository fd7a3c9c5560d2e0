"""Dashboard pages: the NOC ticket board, the ticket page and the technician's phone view.

Every write goes through ``ticketing.service`` (the one state table decides; this module only
asks it which actions to offer) with the same validation shapes as the JSON API
(``ticketing.schemas``) and the same optimistic concurrency: each form carries the version of
the ticket it was rendered from, and a stale one is a 409 shown in #flash. An htmx write
answers 204 with ``HX-Trigger: ticket-changed``; the board, the ticket page and the technician
list listen for it and reload themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms import queries as alarm_queries
from alarms.models import Alarm
from alarms.queries import ImpactRecord
from api.deps import PageDep, SessionDep, UserDep
from api.params import Id
from api.routers.tickets import PolicyDep, commit_or_busy, run_write
from api.web.render import page
from faultloop import clock
from faultloop.accounts.models import Role, User
from faultloop.errors import InvalidInput
from ticketing import dispatch, service, sla
from ticketing.models import TechnicianProfile, Ticket
from ticketing.policy import OPEN_STATES, PRIORITIES, SLA_PAUSED_STATES, Policy, allowed_actions
from ticketing.schemas import AcceptIn, ResolveIn, StatusIn, TransitionIn

router = APIRouter(include_in_schema=False)

# The board's columns, in the order a ticket moves through them; closed/cancelled are collapsed.
BOARD_STATES: tuple[str, ...] = (
    "new", "acknowledged", "diagnosed", "dispatched", "accepted", "en_route", "on_site", "waiting", "resolved",
    "verified",
)  # fmt: skip
DONE_STATES: tuple[str, ...] = ("closed", "cancelled")
assert set(BOARD_STATES) == set(OPEN_STATES)
CARDS_PER_COLUMN = 50  # a column shows the most urgent; the count says how many there are
DONE_SHOWN = 20
# Actions a board card offers in one click (the ticket page has a form for every action).
QUICK_ACTIONS = ("acknowledge", "dispatch", "reassign", "escalate", "accept", "verify")
ASSIGN_ACTIONS = frozenset({"dispatch", "reassign", "escalate"})
# The form fields each action's form shows; which actions are offered comes from the state table.
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "acknowledge": (),
    "diagnose": ("diagnosis", "fault_category", "required_skill"),
    "dispatch": ("technician", "team"),
    "reassign": ("technician", "team"),
    "escalate": ("technician", "team"),
    "accept": (),
    "en_route": ("eta_minutes", "location_note"),
    "on_site": ("location_note",),
    "update": ("eta_minutes", "location_note"),
    "wait": ("reason",),
    "resume": ("reason",),
    "resolve": ("cause_category", "action_taken", "parts_used", "notes"),
    "verify": ("how",),
    "close": ("rating",),
    "reopen": ("reason",),
    "cancel": ("reason",),
}
REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    "diagnose": frozenset({"diagnosis", "fault_category"}),
    "wait": frozenset({"reason"}),
    "resolve": frozenset({"cause_category", "action_taken"}),
    "close": frozenset({"rating"}),
    "reopen": frozenset({"reason"}),
    "cancel": frozenset({"reason"}),
}
ETA_CHOICES = (15, 30, 45, 60, 90, 120, 180, 240, 480)
CHANGED = {"HX-Trigger": "ticket-changed"}


# ---- forms -> the JSON API's shapes -------------------------------------------------------------

Form = dict[str, list[str]]
M = TypeVar("M", bound=BaseModel)


async def form_fields(request: Request) -> Form:
    """The posted form as name -> values (files are ignored; a non-form body is an empty form)."""
    form = await request.form()
    return {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form.keys()}


FormDep = Annotated[Form, Depends(form_fields)]


def _text(form: Form, name: str) -> str:
    values = form.get(name) or [""]
    return values[-1].strip()


def _parts(form: Form) -> list[str]:
    """Parts used: one per line (or comma-separated), blanks dropped."""
    raw = "\n".join(form.get("parts_used", []))
    return [p.strip() for p in re.split(r"[\n,]", raw) if p.strip()]


def _eta(form: Form) -> str | None:
    """An ETA from the phone's 'in N minutes' choice, or an ISO time with a timezone."""
    minutes = _text(form, "eta_minutes")
    if minutes:
        if not minutes.isdigit() or not 1 <= int(minutes) <= 1440:
            raise InvalidInput("eta_minutes: expected whole minutes from 1 to 1440", field="eta_minutes")
        return (clock.now() + timedelta(minutes=int(minutes))).isoformat()
    return _text(form, "eta") or None


def _parse(model: type[M], form: Form, names: Iterable[str], **extra: Any) -> M:
    """Build the JSON API's input model from the form: blank fields are absent, errors name the field."""
    data: dict[str, Any] = {}
    for name in names:
        if name == "parts_used":
            parts = _parts(form)
            if parts:
                data[name] = parts
        elif name == "eta":
            eta = _eta(form)
            if eta is not None:
                data[name] = eta
        elif _text(form, name):
            data[name] = _text(form, name)
    data.update(extra)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [(".".join(str(p) for p in e["loc"]) or "form", str(e["msg"]).removeprefix("Value error, "))
                  for e in exc.errors()]  # fmt: skip
        raise InvalidInput("; ".join(f"{f}: {m}" for f, m in errors), field=errors[0][0]) from None


def _version(value: int | None) -> int:
    """Forms always carry the version they were rendered from (optimistic concurrency)."""
    if value is None:
        raise InvalidInput("version: required (the ticket version the form was rendered from)", field="version")
    return value


TRANSITION_FIELDS = tuple(n for n in TransitionIn.model_fields if n != "eta") + ("eta",)
STATUS_FIELDS = ("status", "version", "eta", "location_note", "reason")
RESOLVE_FIELDS = ("version", "cause_category", "action_taken", "parts_used", "notes")


def _write(session: Session, effect: Callable[[], object]) -> None:
    """Run a write and commit it in this thread, as the JSON API does (api.routers.tickets.run_write)."""

    def attempt() -> None:
        effect()
        commit_or_busy(session)

    run_write(session, attempt)


def _done(request: Request, fallback: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers=CHANGED)
    return RedirectResponse(fallback, status_code=303)


# ---- view models --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clock:
    name: str  # response, restore
    remaining_s: float  # clock seconds left (business seconds when the target counts business hours)
    deadline: datetime | None  # None while the clock is paused (nothing to count down)
    level: str  # ok, warn, breach
    until_s: float  # wall seconds until the deadline: what app.js counts down from this


@dataclass
class Card:
    ticket: Ticket
    assignee: str | None
    clocks: list[Clock]
    actions: list[str]
    quick: list[str] = field(default_factory=list)
    assign: bool = False
    more: bool = False


def _deadline(policy: Policy, ticket: Ticket, start: datetime, remaining_s: float) -> datetime:
    """When ``remaining_s`` clock seconds run out from ``start``: business seconds when the ticket's
    target counts business hours only (a P3 at 17:30 Friday is due on Monday)."""
    hours = policy.business_hours
    if remaining_s <= 0 or not ticket.business_hours or hours is None:
        return start + timedelta(seconds=remaining_s)
    local = start.astimezone(hours.tz)
    day = local.date()
    for _ in range(3700):  # ten years of days: a target is hours or days, never years
        if day.weekday() in hours.days:
            lo = max(datetime.combine(day, hours.start, hours.tz), local)
            hi = datetime.combine(day, hours.end, hours.tz)
            span = (hi - lo).total_seconds()
            if span >= remaining_s:
                return lo + timedelta(seconds=remaining_s)
            remaining_s -= max(span, 0.0)
        day += timedelta(days=1)
    return start + timedelta(seconds=remaining_s)


def clocks(policy: Policy, ticket: Ticket, now: datetime) -> list[Clock]:
    """The running SLA clocks as of now (the stored accumulators run up to ``sla_checked_at``)."""
    paused = ticket.state in SLA_PAUSED_STATES
    since = 0.0 if paused else sla.running_seconds(policy, ticket, ticket.sla_checked_at, now)
    out = []
    for name, left in sla.remaining(ticket).items():
        if left is None:
            continue
        clock_name = name.removesuffix("_remaining_s")
        target = getattr(ticket, f"{clock_name}_target_s")
        left -= since
        breached = left <= 0 or getattr(ticket, f"{clock_name}_breached")
        level = "breach" if breached else "warn" if target - left >= sla.WARN_AT * target else "ok"
        deadline = None if paused else _deadline(policy, ticket, now, left)
        until = left if deadline is None else (deadline - now).total_seconds()
        out.append(Clock(clock_name, left, deadline, level, until))
    return out


def _usernames(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {uid: name for uid, name in session.execute(select(User.id, User.username).where(User.id.in_(wanted)))}


def _cards(session: Session, policy: Policy, user: User, tickets: list[Ticket], *, assignee: bool) -> list[Card]:
    names = _usernames(session, (t.assignee_id for t in tickets))
    now = clock.now()
    out = []
    for t in tickets:
        actions = allowed_actions(t.state, role=user.role.value, is_assignee=assignee)
        quick = [a for a in QUICK_ACTIONS if a in actions]
        out.append(
            Card(
                ticket=t, assignee=names.get(t.assignee_id) if t.assignee_id is not None else None,
                clocks=clocks(policy, t, now), actions=actions, quick=quick,
                assign=bool(ASSIGN_ACTIONS & set(actions)), more=any(a not in quick for a in actions),
            )
        )  # fmt: skip
    return out


def _technicians(session: Session) -> list[dict[str, Any]]:
    load = dispatch.loads(session)
    rows = session.execute(
        select(TechnicianProfile, User).join(User, User.id == TechnicianProfile.user_id).order_by(User.username)
    ).all()
    return [
        {"username": u.username, "team": p.team, "tier": p.tier, "on_shift": p.on_shift, "load": load.get(u.id, 0),
         "sites": p.sites, "skills": p.skills}
        for p, u in rows
    ]  # fmt: skip


# ---- the board ----------------------------------------------------------------------------------


@dataclass
class BoardFilter:
    priority: str
    site: str
    assignee: str

    def where(self, session: Session) -> list[Any]:
        clauses: list[Any] = []
        if self.priority:
            clauses.append(Ticket.priority == self.priority)
        if self.site:
            clauses.append(Ticket.site == self.site)
        if self.assignee == "-":
            clauses.append(Ticket.assignee_id.is_(None))
        elif self.assignee:
            uid = session.scalar(select(User.id).where(User.username == self.assignee))
            if uid is None:
                raise InvalidInput(f"assignee: no user named {self.assignee!r}", field="assignee")
            clauses.append(Ticket.assignee_id == uid)
        return clauses

    def query(self) -> str:
        params = {k: v for k, v in (("priority", self.priority), ("site", self.site), ("assignee", self.assignee)) if v}
        return urlencode(params)


# What a card needs: reading these columns as plain rows (not 45-column ORM objects) is most of
# the difference on a board of thousands of tickets. A row has the Ticket's attribute names.
CARD_COLUMNS = tuple(
    getattr(Ticket, name)
    for name in (
        "id", "version", "title", "state", "priority", "site", "device", "assignee_id", "team", "tier", "eta",
        "location_note", "diagnosis", "business_hours", "acknowledged_at", "sla_checked_at", "response_target_s",
        "restore_target_s", "response_elapsed_s", "restore_elapsed_s", "response_breached", "restore_breached",
    )
)  # fmt: skip


def board_columns(session: Session, where: list[Any]) -> tuple[dict[str, list[Ticket]], dict[str, int]]:
    """The open tickets per state, most urgent first (priority, then oldest), at most
    CARDS_PER_COLUMN each, and the count per state: one grouped count and one LIMITed query per
    column, each served by the (state, priority) index, whatever the number of tickets."""
    counts = {
        state: int(n)
        for state, n in session.execute(
            select(Ticket.state, func.count())
            .where(Ticket.state.in_(BOARD_STATES + DONE_STATES), *where)
            .group_by(Ticket.state)
        )  # fmt: skip
    }
    columns: dict[str, list[Ticket]] = {}
    for state in BOARD_STATES:
        if not counts.get(state):
            columns[state] = []
            continue
        query = (
            select(*CARD_COLUMNS).where(Ticket.state == state, *where)
            .order_by(Ticket.priority, Ticket.id).limit(CARDS_PER_COLUMN)
        )  # fmt: skip
        columns[state] = [cast(Ticket, row) for row in session.execute(query)]
    return columns, counts


@router.get("/ui/tickets", response_class=HTMLResponse)
def board(
    request: Request,
    session: SessionDep,
    user: UserDep,
    policy: PolicyDep,
    priority: Annotated[Literal["", "P1", "P2", "P3", "P4"], Query()] = "",
    site: Annotated[str, Query(max_length=100)] = "",
    assignee: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    filt = BoardFilter(priority, site.strip(), assignee.strip())
    where = filt.where(session)
    columns, counts = board_columns(session, where)
    done = list(
        session.scalars(
            select(Ticket)
            .where(Ticket.state.in_(DONE_STATES), *where)
            .order_by(Ticket.updated_at.desc())
            .limit(DONE_SHOWN)
        )  # fmt: skip
    )
    everything = [t for col in columns.values() for t in col]
    cards = {c.ticket.id: c for c in _cards(session, policy, user, everything, assignee=False)}
    done_names = _usernames(session, (t.assignee_id for t in done))
    sites = list(
        session.scalars(select(Ticket.site).where(Ticket.state.in_(BOARD_STATES)).distinct().order_by(Ticket.site))
    )
    ctx: dict[str, Any] = {
        "columns": [(s, [cards[t.id] for t in columns[s]], counts.get(s, 0)) for s in BOARD_STATES],
        "done": done,
        "done_names": done_names,
        "done_count": sum(counts.get(s, 0) for s in DONE_STATES),
        "filt": filt,
        "board_url": "/ui/tickets" + (f"?{filt.query()}" if filt.query() else ""),
        "priorities": PRIORITIES,
        "sites": [s for s in sites if s],
        "technicians": _technicians(session),
        "cap": CARDS_PER_COLUMN,
    }
    fragment = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "board"
    response = page(request, "_ticket_board.html" if fragment else "ticket_board.html", user, **ctx)
    if fragment:  # the address bar shows the filter without the form's blank fields
        response.headers["HX-Push-Url"] = ctx["board_url"]
    return response


# ---- one ticket ---------------------------------------------------------------------------------


_HOW_RANK = {"direct": 0, "topology": 1, "child": 2}


def _affected(session: Session, alarm_ids: list[int]) -> list[ImpactRecord]:
    """The customer services the ticket's alarms affect, one row per service (the most direct
    way it is hurt, ``down`` before ``degraded``), by customer."""
    def rank(r: ImpactRecord) -> tuple[bool, int]:
        return (r.level != "down", _HOW_RANK.get(r.how, 3))

    best: dict[int, ImpactRecord] = {}
    for r in alarm_queries.impact(session, alarm_ids) if alarm_ids else []:
        seen = best.get(r.service_id)
        if seen is None or rank(r) < rank(seen):
            best[r.service_id] = r
    return sorted(best.values(), key=lambda r: (r.customer, r.service_id))


def _detail_context(session: Session, policy: Policy, user: User, ticket: Ticket) -> dict[str, Any]:
    actor = service.Actor.of(user)
    is_assignee = service.is_assignee(session, ticket, actor)
    links = service.linked_alarms(session, ticket.id)
    alarms = {a.id: a for a in session.scalars(select(Alarm).where(Alarm.id.in_([lk.alarm_id for lk in links])))}
    actions = allowed_actions(ticket.state, role=actor.role, is_assignee=is_assignee)
    operator = user.role in (Role.admin, Role.noc)
    card = _cards(session, policy, user, [ticket], assignee=is_assignee)[0]
    return {
        "t": ticket,
        "card": card,
        "links": [(lk, alarms.get(lk.alarm_id)) for lk in links],
        "affected": _affected(session, [lk.alarm_id for lk in links]),
        "events": service.timeline(session, ticket.id),
        # technicians act from their phone view (/ui/my/tickets); the NOC acts here
        "actions": actions if operator else [],
        "action_fields": ACTION_FIELDS,
        "required": REQUIRED_FIELDS,
        "technicians": _technicians(session) if operator and ASSIGN_ACTIONS & set(actions) else [],
        "can_note": user.role in (Role.admin, Role.noc) or (is_assignee and ticket.state in OPEN_STATES),
        "is_assignee": is_assignee,
        "cause_categories": service.CAUSE_CATEGORIES,
        "eta_choices": ETA_CHOICES,
    }


@router.get("/ui/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(
    request: Request, ticket_id: Id, session: SessionDep, user: UserDep, policy: PolicyDep
) -> HTMLResponse:
    ticket = service.get_visible(session, ticket_id, service.Actor.of(user))
    ctx = _detail_context(session, policy, user, ticket)
    fragment = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "ticket-detail"
    return page(request, "_ticket_detail.html" if fragment else "ticket.html", user, **ctx)


@router.post("/ui/tickets/{ticket_id}/transitions")
def post_transition(
    request: Request, ticket_id: Id, session: SessionDep, user: UserDep, policy: PolicyDep, form: FormDep
) -> Response:
    """Any action the state table allows the NOC; the fields map onto the JSON API's TransitionIn."""
    data = _parse(TransitionIn, form, TRANSITION_FIELDS)
    version = _version(data.version)
    fields = data.model_dump(exclude={"action", "version"}, exclude_none=True)
    window_s = request.app.state.runtime.settings.ticket_reopen_window_s
    actor = service.Actor.of(user)
    _write(session, lambda: service.transition(
        session, policy=policy, ticket_id=ticket_id, action=data.action, actor=actor, data=fields,
        expected_version=version, now=clock.now(), reopen_window_s=window_s,
    ))  # fmt: skip
    return _done(request, f"/ui/tickets/{ticket_id}")


@router.post("/ui/tickets/{ticket_id}/notes")
def post_note(request: Request, ticket_id: Id, session: SessionDep, user: UserDep, form: FormDep) -> Response:
    """A work note. No version needed: a note never conflicts with a state change (as in the JSON API,
    where the version is optional); technicians only on tickets they see, while the ticket is open."""
    text = _text(form, "text")
    if not text:
        raise InvalidInput("text: required (the note)", field="text")
    if len(text) > 4000:
        raise InvalidInput("text: expected at most 4000 characters", field="text")
    raw_version = _text(form, "version")
    if raw_version and not raw_version.isdigit():
        raise InvalidInput("version: expected an integer", field="version")
    actor = service.Actor.of(user)
    _write(session, lambda: service.add_note(
        session, ticket_id=ticket_id, actor=actor, text=text,
        expected_version=int(raw_version) if raw_version else None, now=clock.now(),
    ))  # fmt: skip
    return _done(request, f"/ui/tickets/{ticket_id}")


# ---- the technician's phone view ----------------------------------------------------------------


@router.get("/ui/my/tickets", response_class=HTMLResponse)
def my_tickets(request: Request, session: SessionDep, user: UserDep, policy: PolicyDep, page_: PageDep) -> HTMLResponse:
    """The technician's and their team's open tickets, most urgent first."""
    rows, total = service.list_tickets(
        session, limit=page_.limit, offset=page_.offset, open_only=True, technician=service.Actor.of(user)
    )
    rows.sort(key=lambda t: (t.state in ("resolved", "verified"), t.priority, t.id))
    ctx: dict[str, Any] = {
        "cards": _cards(session, policy, user, rows, assignee=True),
        "total": total,
        "limit": page_.limit,
        "offset": page_.offset,
        "cause_categories": service.CAUSE_CATEGORIES,
        "eta_choices": ETA_CHOICES,
        "me": user.id,
    }
    fragment = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "my-tickets"
    return page(request, "_ticket_mine.html" if fragment else "my_tickets.html", user, **ctx)


def _tech_write(
    request: Request, session: Session, user: User, policy: Policy, ticket_id: int, action: str,
    fields: dict[str, Any], version: int,
) -> Response:  # fmt: skip
    actor = service.Actor.of(user)
    _write(session, lambda: service.transition(
        session, policy=policy, ticket_id=ticket_id, action=action, actor=actor, data=fields,
        expected_version=version, now=clock.now(),
    ))  # fmt: skip
    return _done(request, "/ui/my/tickets")


@router.post("/ui/my/tickets/{ticket_id}/accept")
def my_accept(
    request: Request, ticket_id: Id, session: SessionDep, user: UserDep, policy: PolicyDep, form: FormDep
) -> Response:
    data = _parse(AcceptIn, form, ("version",))
    return _tech_write(request, session, user, policy, ticket_id, "accept", {}, _version(data.version))


@router.post("/ui/my/tickets/{ticket_id}/status")
def my_status(
    request: Request, ticket_id: Id, session: SessionDep, user: UserDep, policy: PolicyDep, form: FormDep
) -> Response:
    """en_route / on_site (ETA, location note), update, wait (reason; pauses the SLA), resume."""
    data = _parse(StatusIn, form, STATUS_FIELDS)
    fields = data.model_dump(exclude={"status", "version"}, exclude_none=True)
    return _tech_write(request, session, user, policy, ticket_id, data.status, fields, _version(data.version))


@router.post("/ui/my/tickets/{ticket_id}/resolve")
def my_resolve(
    request: Request, ticket_id: Id, session: SessionDep, user: UserDep, policy: PolicyDep, form: FormDep
) -> Response:
    """The technician's feedback: cause category, action taken, parts used, notes."""
    data = _parse(ResolveIn, form, RESOLVE_FIELDS)
    fields = data.model_dump(exclude={"version"})
    return _tech_write(request, session, user, policy, ticket_id, "resolve", fields, _version(data.version))
