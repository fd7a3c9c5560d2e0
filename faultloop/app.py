"""The wiring module: where the flow of faultloop can be read in one place.

    settings -> database engine + sessions -> vault -> Runtime -> HTTP API

Later packages plug in here, and only here: collectors hand observations to the alarm
engine, alarm changes go to ticketing and notifications after commit.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.main import create_api
from faultloop import migrate
from faultloop.db import make_engine, make_sessionmaker, safe_url
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import open_vault

log = logging.getLogger("faultloop")


class StartupError(Exception):
    """A condition that stops the service from starting; the message says what to fix."""


def build_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.effective_database_url)
    return Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=open_vault(settings))


def check_database(rt: Runtime, *, require_current: bool = True) -> None:
    url = safe_url(rt.settings.effective_database_url)
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StartupError(f"cannot reach the database at {url}: {reason}") from None
    if require_current and not migrate.is_current(rt.engine):
        raise StartupError(
            f"the database at {url} is at migration {migrate.current_revision(rt.engine)}, "
            f"expected {migrate.head_revision()}; run `faultloop db upgrade`"
        )


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def create_app(settings: Settings) -> FastAPI:
    rt = build_runtime(settings)
    check_database(rt)
    return create_api(rt)
