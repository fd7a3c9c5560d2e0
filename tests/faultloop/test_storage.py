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

    from faultloop.cmd.models import all_metadata

    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), all_metadata())
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


def test_sqlite_write_after_a_read_survives_another_writers_commit(tmp_path):
    """A request reads (authentication), another connection commits, then the request writes:
    SQLite refuses that write at once; inside ``writing`` it starts from a fresh snapshot."""
    import threading

    from faultloop.db import make_engine, make_sessionmaker, writing

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    sessions = make_sessionmaker(engine)

    def other_writer(value: str) -> None:
        with sessions() as other:
            other.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
            other.commit()

    with sessions() as s:
        s.execute(text("SELECT count(*) FROM t")).scalar()  # the read snapshot
        other_writer("other-1")
        with pytest.raises(DBAPIError, match="locked"):
            s.execute(text("INSERT INTO t (v) VALUES ('mine')"))
        s.rollback()

        s.execute(text("SELECT count(*) FROM t")).scalar()
        other_writer("other-2")
        with writing(s):
            s.execute(text("INSERT INTO t (v) VALUES ('mine')"))
            s.commit()

    # writers inside ``writing`` take turns: none of them fails
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            with sessions() as w:
                w.execute(text("SELECT count(*) FROM t")).scalar()
                with writing(w):
                    w.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"w{i}"})
                    w.commit()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2 + 1 + 20


def test_sqlite_write_transaction_holds_the_write_lock_from_its_first_read(tmp_path):
    """A job that reads then writes while another process's connection writes: with
    write_transaction the other writer waits its turn and both succeed."""
    import threading

    from faultloop.db import make_engine, make_sessionmaker, write_transaction

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    other_engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")  # another process, as far as locks go
    read_done = threading.Event()
    errors: list[BaseException] = []

    def other_process_writer() -> None:
        read_done.wait(5)
        try:
            with other_engine.begin() as conn:
                conn.execute(text("INSERT INTO t (v) VALUES ('other')"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    thread = threading.Thread(target=other_process_writer)
    thread.start()
    with write_transaction(make_sessionmaker(engine)) as s:
        n = s.execute(text("SELECT count(*) FROM t")).scalar()
        read_done.set()
        thread.join(0.3)  # the other writer is now waiting for the lock
        s.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"after {n}"})
    thread.join(10)
    assert errors == []
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT v FROM t ORDER BY id"))] == ["after 0", "other"]


def test_insert_rows_stores_what_an_insert_would_on_every_backend(session):
    """COPY on PostgreSQL, executemany elsewhere: the same rows back, datetimes in UTC, JSON intact."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import select

    from alarms.models import EventRecord
    from faultloop.db import insert_rows

    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    rows = [
        {
            "received_at": local,
            "time": local + timedelta(seconds=i),
            "source": "trap",
            "device": f"r{i}",
            "managed_object": "",
            "event_type": "linkDown",
            "severity": "major",
            "probable_cause": "",
            "specific_problem": "",
            "description": 'tab\there, newline\nthere, back\\slash, "quote"',
            "raw": {"ifIndex": i, "text": "ü\t\n\\"},
            "processed": True,
            "action": "raise",
            "reduction_key": None,
            "alarm_id": None,
        }  # fmt: skip
        for i in range(3)
    ]
    insert_rows(session, EventRecord.__table__, rows)
    insert_rows(session, EventRecord.__table__, [])  # nothing to do
    stored = session.scalars(select(EventRecord).order_by(EventRecord.id)).all()
    assert [e.device for e in stored] == ["r0", "r1", "r2"]
    assert stored[1].time == datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)
    assert stored[2].raw == {"ifIndex": 2, "text": "ü\t\n\\"}
    assert stored[0].description == rows[0]["description"] and stored[0].reduction_key is None


def test_insert_rows_raises_the_usual_integrity_error_and_writes_nothing(session):
    from datetime import UTC, datetime

    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from alarms.models import Alarm, AlarmJournal
    from faultloop.db import insert_rows

    now = datetime.now(UTC)
    alarm = Alarm(
        reduction_key="k", clear_key="k", alarm_type="linkDown", source="trap", first_occurrence=now,
        last_occurrence=now, original_severity="major", severity="major", state="active",
    )  # fmt: skip
    session.add(alarm)
    session.flush()
    nested = session.begin_nested()
    good = {"alarm_id": alarm.id, "at": now, "actor": "engine", "action": "raised", "detail": {}}
    with pytest.raises(IntegrityError, match="(?i)foreign key"):  # the third row names no alarm
        insert_rows(session, AlarmJournal.__table__, [good, good, {**good, "alarm_id": alarm.id + 1000}])
    nested.rollback()
    # this alarm's rows only: the run's database may hold rows other tests committed for real
    assert session.scalar(select(func.count()).select_from(AlarmJournal).where(AlarmJournal.alarm_id == alarm.id)) == 0
