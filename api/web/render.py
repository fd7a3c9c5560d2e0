"""Rendering for the dashboard: one Jinja2 environment (autoescaping on, so every
device-supplied string is escaped), the page helper and the HTML form of errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import csrf_for
from faultloop import clock
from faultloop.accounts.models import Role, User

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=HERE / "templates")  # autoescape=True for every template
OPERATOR_ROLES = frozenset({Role.admin, Role.noc})

# (label, href, roles that see the link)
STAFF = frozenset(Role) - {Role.servicedesk, Role.oss}
NAV: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("Alarms", "/", STAFF),
    ("Topology", "/ui/topology", STAFF),
    ("Devices", "/ui/devices", STAFF),
    ("Tickets", "/ui/tickets", frozenset({Role.admin, Role.noc, Role.viewer})),
    ("My tickets", "/ui/my/tickets", frozenset({Role.technician})),
    ("Orders", "/ui/orders", frozenset({Role.admin, Role.noc, Role.provisioner, Role.viewer})),
    ("Services", "/ui/services", frozenset(Role) - {Role.technician}),
    ("Maintenance", "/ui/maintenance", STAFF),
    ("Fault reports", "/ui/fault-reports", frozenset({Role.admin, Role.noc, Role.servicedesk})),
    ("Reports", "/ui/reports", frozenset({Role.admin, Role.noc, Role.viewer})),
)


def landing(user: User) -> str:
    if user.role == Role.technician:
        return "/ui/my/tickets"
    return "/ui/fault-reports" if user.role == Role.servicedesk else "/"


def csrf(request: Request) -> str:
    token = getattr(request.state, "session_token", None)
    return csrf_for(token) if token else ""


def page(request: Request, template: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a full page or an htmx fragment with the common context."""
    nav = [(label, href) for label, href, roles in NAV if user is not None and user.role in roles]
    base = {
        "user": user,
        "csrf": csrf(request),
        "nav": nav,
        "path": request.url.path,
        "is_operator": user is not None and user.role in OPERATOR_ROLES,
        "now": clock.now(),
    }
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def wants_html(request: Request) -> bool:
    if request.url.path.startswith(("/api/", "/tmf-api/")):
        return False
    return "text/html" in request.headers.get("accept", "") or request.headers.get("hx-request") == "true"


def html_error(request: Request, status: int, title: str, detail: str) -> Response:
    """The HTML form of a problem: a login redirect for 401, an htmx flash message, or a page."""
    if status == 401:
        target = "/login?next=" + quote(request.url.path, safe="/")
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if request.headers.get("hx-request") == "true":
        response = TEMPLATES.TemplateResponse(
            request, "_flash.html", {"kind": "error", "title": title, "detail": detail}, status_code=status
        )
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"user": None, "nav": [], "csrf": "", "status": status, "title": title, "detail": detail, "path": ""},
        status_code=status,
    )


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff: the template escapes each line, nothing is markup."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


# --- filters shared by the page templates -------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fmt_time(value: datetime | None) -> str:
    return "" if value is None else _aware(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(value: timedelta | float | None) -> str:
    """'3d 4h', '2h 05m', '4m 09s', '12s'; negative durations keep their sign."""
    if value is None:
        return ""
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def fmt_age(value: datetime | None) -> str:
    return "" if value is None else fmt_duration(clock.now() - _aware(value))


def fmt_rate(bits_per_second: float | None) -> str:
    if bits_per_second is None:
        return "–"
    for unit, size in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits_per_second >= size:
            return f"{bits_per_second / size:.1f} {unit}"
    return f"{bits_per_second:.0f} b/s"


TEMPLATES.env.filters.update(time=fmt_time, duration=fmt_duration, age=fmt_age, rate=fmt_rate)
TEMPLATES.env.globals["SEVERITIES"] = ("critical", "major", "minor", "warning", "indeterminate")
