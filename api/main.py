"""The FastAPI application: routers, the RBAC dependency on every route, problem+json."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from api import problems
from api.deps import authorize
from api.routers import accounts, alarms, collectors, config, desk, health, inventory, metrics, orders, tickets
from api.services import ServiceHandles, one_shot
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
    )
    app.state.runtime = rt
    app.state.services = services if services is not None else one_shot(rt)
    app.state.login_guard = LoginGuard.from_settings(rt.settings)
    app.state.node_status = node_status if node_status is not None else (lambda: {"role": rt.settings.role})
    problems.install(app)
    for module in (health, metrics, accounts, inventory, config, collectors, alarms, tickets, desk, orders):
        app.include_router(module.router)
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders)
    return app
