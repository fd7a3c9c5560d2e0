"""Every dashboard router, in one list the app includes."""

from __future__ import annotations

from fastapi import APIRouter

from api.web import alarms, auth, desk, devices, maintenance, orders, services, tickets

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    alarms.router,
    devices.router,
    tickets.router,
    orders.router,
    maintenance.router,
    desk.router,
    services.router,
)
