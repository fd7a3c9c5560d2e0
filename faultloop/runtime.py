"""What a running faultloop holds (settings, database, vault) and how it is built and
checked. Light on imports on purpose: every CLI command starts here."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from faultloop import migrate
from faultloop.db import make_engine, make_private_dir, make_sessionmaker, safe_url
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
    # paramiko (under netmiko) logs every SSH connection at INFO ("Connected (version 2.0, ...)",
    # "Authentication (password) successful!"): config backups and orders open many.
    for noisy in ("alembic", "apscheduler", "paramiko"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


# ---- serving processes ------------------------------------------------------------------------

SERVICE_LOCK_FILE = "service.lock"


class ServiceRunning(StartupError):
    """A serving process holds the data directory's service lock."""


def _lock_fd(settings: Settings) -> int:
    make_private_dir(settings.data_dir)
    return os.open(settings.data_dir / SERVICE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)


@contextmanager
def service_running(settings: Settings) -> Iterator[None]:
    """Held (a shared flock on ``<data_dir>/service.lock``) by a serving process for its lifetime.

    Serving processes load the secret keys once; ``no_service_running`` lets a key rotation
    refuse while one runs. The kernel drops the lock when the process dies, kill -9 included.
    """
    fd = _lock_fd(settings)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextmanager
def no_service_running(settings: Settings, *, doing: str) -> Iterator[None]:
    """Hold the service lock exclusively for ``doing``; ServiceRunning when a service holds it.

    While held, a service starting on the same data directory waits for it.
    """
    fd = _lock_fd(settings)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServiceRunning(
                f"a faultloop service is running on {settings.data_dir} and holds the secret keys it loaded: "
                f"stop it, {doing}, then start it again"
            ) from None
        yield
    finally:
        os.close(fd)
