"""Which database errors the API answers with 503 "Database unavailable" (faultloop.db.database_unavailable):
the server unreachable or going away, never a statement that is simply wrong."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from faultloop.db import database_locked, database_unavailable, make_engine
from tests.faultloop.natslab import free_port
from tests.pgdb import needs_postgresql, scratch_database


def test_a_postgresql_server_nobody_listens_for_is_unavailable():
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1)
    try:
        with pytest.raises(OperationalError) as refused:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert database_unavailable(refused.value)
    assert not database_locked(refused.value)


@needs_postgresql
def test_a_wrong_statement_or_a_terminated_session_on_postgresql():
    with scratch_database() as url:
        engine = make_engine(url, pool_size=2, max_overflow=0)
        try:
            with pytest.raises(ProgrammingError) as wrong, engine.connect() as conn:
                conn.execute(text("SELECT * FROM no_such_table"))
            assert not database_unavailable(wrong.value)  # a 500: a bug, not an outage
            # the server ends the session (an admin, a restart): 57P01 admin_shutdown
            with engine.connect() as conn, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                with pytest.raises(OperationalError) as ended:
                    conn.execute(text("SELECT 1"))
            assert database_unavailable(ended.value)
        finally:
            engine.dispose()


def test_sqlite_errors_are_never_unavailable(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as wrong, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()
    assert not database_unavailable(wrong.value) and not database_locked(wrong.value)
