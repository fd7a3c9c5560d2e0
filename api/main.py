"""The FastAPI application: routers, the RBAC dependency on every route, problem+json."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from api import openapi as api_openapi
from api import problems
from api.bodylimit import BodyLimit
from api.deps import authorize
from api.routers import (
    accounts,
    alarms,
    collectors,
    config,
    desk,
    health,
    inventory,
    metrics,
    orders,
    tickets,
    tmf_alarm,
    tmf_order,
    tmf_ticket,
)  # fmt: skip
from api.services import ServiceHandles, one_shot
from api.web import docs as api_docs
from api.web.docs import SWAGGER_DIR, SWAGGER_PREFIX
from api.web.pages import ROUTERS as PAGE_ROUTERS
from api.web.render import STATIC_DIR
from api.web.security import SecurityHeaders
from faultloop.accounts.guard import LoginGuard
from faultloop.runtime import Runtime


def create_api(
    rt: Runtime,
    lifespan: Any = None,
    *,
    services: ServiceHandles | None = None,
    node_status: Callable[[], Mapping[str, Any]] | None = None,
) -> FastAPI:
    """``services``: the running services' handles (the composition root passes them); without
    them every route that needs one does its work in the request (``api.services.one_shot``).
    ``node_status``: this instance's role and leadership for /healthz (default: the role alone)."""
    app = FastAPI(
        lifespan=lifespan,
        title="faultloop",
        version="0.1.0",
        description="Network OSS for NOCs. Authenticate with `Authorization: Bearer <token>`; "
        "get a token from POST /api/v1/auth/token or `faultloop token create USER`.",
        dependencies=[Depends(authorize)],
        # /docs is served by api/web/docs.py (local Swagger UI, no inline script); no ReDoc page
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.services = services if services is not None else one_shot(rt)
    app.state.login_guard = LoginGuard.from_settings(rt.settings)
    app.state.node_status = node_status if node_status is not None else (lambda: {"role": rt.settings.role})
    problems.install(app)
    api_openapi.install(app)
    for module in (health, metrics, accounts, inventory, config, collectors, alarms, tickets, desk, orders,
                   tmf_alarm, tmf_ticket, tmf_order):  # fmt: skip
        app.include_router(module.router)
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.include_router(api_docs.router)
    app.mount(SWAGGER_PREFIX, StaticFiles(directory=SWAGGER_DIR), name="swagger")  # before /static: first match
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # the last added is the outermost: security headers go on every answer, the 413 included
    app.add_middleware(BodyLimit, max_bytes=rt.settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
