"""RFC 9457 problem+json for every error, mapped in one place.

Validation problems name the field and what was expected, and never echo the input
(it may hold a community string or a password)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.web.render import html_error, wants_html
from faultloop.db import database_locked, database_unavailable
from faultloop.errors import DomainError

log = logging.getLogger("faultloop.api")
PROBLEM = "application/problem+json"
# a PostgreSQL restart takes seconds; a client retrying sooner only adds load
DATABASE_UNAVAILABLE_RETRY_AFTER_S = 5


TMF_PREFIX = "/tmf-api/"


def tmf_error(status: int, reason: str, message: str, **extra: Any) -> JSONResponse:
    """The TM Forum ``Error`` resource (TMF630): what every /tmf-api/ route answers on failure."""
    body = {"@type": "Error", "code": str(status), "reason": reason, "message": message, "status": str(status),
            **extra}  # fmt: skip
    return JSONResponse(body, status_code=status)


def problem(status: int, title: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    if request.url.path.startswith(TMF_PREFIX):
        return tmf_error(status, title, detail, **extra)
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    if len(parts) >= 2 and parts[-1] == "[key]":  # a refused mapping key: name where, not the key itself
        parts = [*parts[:-2], "[key]"]
    return ".".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        response: Response
        if wants_html(request):
            response = html_error(request, exc.status, exc.title, exc.detail)
        else:
            extra = {"field": exc.field} if exc.field else {}
            extra.update(getattr(exc, "problem_extra", {}))  # e.g. a 409's allowed_actions
            response = problem(exc.status, exc.title, exc.detail, request, **extra)
        if exc.retry_after is not None:  # 429 / 503: when the client may try again
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field(tuple(e["loc"])), "message": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        if request.url.path.startswith(TMF_PREFIX):  # TMF630: a malformed request is a 400
            return tmf_error(400, "Invalid input", detail, errors=errors)
        if wants_html(request):
            return html_error(request, 422, "Invalid input", detail)
        return problem(422, "Invalid input", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = {
            404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden", 413: "Payload too large"
        }.get(
            exc.status_code, "Error"
        )
        if wants_html(request):
            return html_error(request, exc.status_code, title, str(exc.detail))
        response = problem(exc.status_code, title, str(exc.detail), request)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        if database_unavailable(exc):
            # PostgreSQL down, restarting or unreachable: the transaction did not commit, nothing was
            # stored. The type only in the log: driver text carries host names and ports.
            log.warning("database unavailable on %s %s (%s)", request.method, request.url.path, type(exc.orig).__name__)
            title = "Database unavailable"
            detail = "the database cannot be reached; nothing was stored, retry"
            retry_after = DATABASE_UNAVAILABLE_RETRY_AFTER_S
        elif isinstance(exc, OperationalError) and database_locked(exc):
            # SQLite: another writer held the lock past busy_timeout, or committed after this request
            # read (its snapshot can no longer write). Nothing was written: the client may retry.
            title = "Database busy"
            detail = "the database is busy with another write; this request was rolled back, retry"
            retry_after = 1
        else:
            return await unexpected(request, exc)
        response: Response
        if wants_html(request):
            response = html_error(request, 503, title, detail)
        else:
            response = problem(503, title, detail, request)
        response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type only: exception text can carry driver messages with connection details.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem(500, "Internal error", "internal error; see the server log", request)
