from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import runtime
from faultloop import migrate
from faultloop.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers; its role and whether it leads")
def healthz(request: Request) -> dict[str, Any]:
    """``role`` (all, central, collector); ``leader``: whether this instance runs the singleton
    loops (alarm engine, ticket timers, notifier, provisioning tick), ``epoch`` its fencing epoch,
    ``election`` postgresql or local (SQLite: one process, always the leader)."""
    return {"status": "ok", **request.app.state.node_status()}


@router.get("/readyz", summary="Readiness: database reachable and migrations current")
def readyz(rt: Annotated[Runtime, Depends(runtime)]) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = migrate.current_revision(rt.engine), migrate.head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, expected {head}"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values()) and "migrations" in checks
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
