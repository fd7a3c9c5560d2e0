"""Migrations and the append-only audit log, on every backend."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from faultloop import migrate
from faultloop.audit import service as audit


def test_migrations_are_current_and_match_the_models(db_engine):
    assert migrate.is_current(db_engine)
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from faultloop.db import Base, import_all_models

    import_all_models()
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_downgrade_and_upgrade_again(tmp_path):
    from faultloop.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.is_current(engine)


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"])
def test_audit_log_is_append_only(session, statement):
    audit.record(session, actor="alice", action="x.test", object_type="x", object_id=1, after={"a": 1})
    session.flush()
    nested = session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement))
    nested.rollback()
    assert session.execute(text("SELECT actor FROM audit_log WHERE action = 'x.test'")).scalar() == "alice"


def test_sqlite_runs_wal_with_foreign_keys(tmp_path):
    from faultloop.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
