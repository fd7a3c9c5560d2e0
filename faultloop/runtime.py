"""What a running faultloop holds (settings, database, vault) and how it is built and
checked. Light on imports on purpose: every CLI command starts here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from faultloop import migrate
from faultloop.db import make_engine, make_sessionmaker, safe_url
from faultloop.settings import Settings
from faultloop.vault import Vault, open_vault


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault


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
    # asyncssh logs every listener and connection at INFO; the lab opens hundreds.
    logging.getLogger("asyncssh").setLevel(max(logging.WARNING, logging.getLogger().level))
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
