"""A scratch PostgreSQL database of its own (real commits, other processes may share it), on the
server of FAULTLOOP_TEST_DATABASE_URL; dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from faultloop import migrate
from faultloop.db import make_engine

PG_URL = os.environ.get("FAULTLOOP_TEST_DATABASE_URL", "")
needs_postgresql = pytest.mark.skipif(
    not PG_URL, reason="PostgreSQL election: set FAULTLOOP_TEST_DATABASE_URL (.ci/run does)"
)


def _admin_url() -> str:
    url = make_url(PG_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@contextmanager
def scratch_database(prefix: str = "faultloop_s") -> Iterator[str]:
    """A migrated database of its own (parallel runs never collide); yields its URL (password included)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
