"""Database engine, ORM base and the transaction edge.

Services take a ``Session`` and only flush; whoever opened the session (an API
dependency, a job wrapper, a CLI command) commits or rolls back through
``transaction()``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, Table, create_engine, event, insert, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use faultloop.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


# Execution option asking SQLite for BEGIN IMMEDIATE (the write lock up front).
IMMEDIATE = "faultloop_sqlite_immediate"


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE) else "BEGIN")


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` and any missing parent 0700 (``Path.mkdir`` gives parents the default mode)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


def private_sqlite_file(path: Path) -> None:
    """The database holds config backups and encrypted secrets: owner-only from its first byte.

    A missing directory is created 0700; the file is created 0600 before SQLite opens it (SQLite
    gives its -wal and -shm files the database file's mode), and an existing file readable by
    others is narrowed to 0600. An existing directory is left as it is (it may be shared).
    """
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    else:
        os.close(fd)


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or (parsed.database and parsed.database != ":memory:"):
        # FastAPI runs sync dependencies (the session's commit included) and endpoints on one 40-thread
        # pool; with fewer pooled connections than threads, threads waiting for a connection can starve
        # the commit that would free one (seen at 100 req/s). Overflow connections are also reopened per
        # request, a backend fork each on PostgreSQL.
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **kwargs)


_GATES: dict[int, threading.RLock] = {}
_GATES_LOCK = threading.Lock()


def _sqlite_gate(session: Session) -> threading.RLock | None:
    engine = session.get_bind().engine
    if engine.dialect.name != "sqlite":
        return None
    with _GATES_LOCK:
        return _GATES.setdefault(id(engine), threading.RLock())


def database_locked(exc: OperationalError) -> bool:
    """SQLite refused a write for another writer's lock (busy_timeout ran out, or this
    transaction's snapshot is older than that writer's commit): nothing was written, retry."""
    return "locked" in str(exc.orig).lower()


# PostgreSQL error classes that mean "the server cannot be used now", not "this statement is wrong":
# 08 connection exceptions, 57P01-57P03 (admin/crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def database_unavailable(exc: DBAPIError) -> bool:
    """The database server is unreachable, restarting or cut the connection (a client-side driver
    error with no SQLSTATE, or one of the classes above): the statement did not run, retry later.
    SQLite errors carry no SQLSTATE and are never this (its busy case is ``database_locked``)."""
    if exc.connection_invalidated:
        return True
    if not hasattr(exc.orig, "sqlstate"):  # not a PostgreSQL (psycopg) error
        return False
    state: str | None = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith(_UNAVAILABLE_SQLSTATES)


def end_read_snapshot(session: Session) -> None:
    """On SQLite, end a read-only transaction so that the next statement sees the newest
    data and may write (see ``writing``); nothing has been written yet, so this commits nothing.
    A no-op on PostgreSQL."""
    if session.get_bind().engine.dialect.name == "sqlite":
        session.commit()


def begin_write(session: Session) -> None:
    """End the read transaction and begin a writing one now: on SQLite ``BEGIN IMMEDIATE``,
    which waits (up to busy_timeout) for the write lock instead of failing at the first
    write because another connection committed after this one read. For a transaction edge
    whose reads and writes run on different threads (an API request: FastAPI runs each
    dependency and the handler on its own pool thread), so it cannot hold the process's
    writer lock (``_write_turn``) across them; the database's lock orders it instead. A
    no-op on PostgreSQL."""
    if session.get_bind().engine.dialect.name != "sqlite":
        return
    session.commit()
    session.connection(execution_options={IMMEDIATE: True})


@contextmanager
def _write_turn(session: Session) -> Iterator[None]:
    """SQLite has one writer at a time. A deferred transaction that read before another
    connection committed is refused at its first write ("database is locked", at once, no
    waiting), so a writer begins IMMEDIATE: it takes the write lock up front, waiting up
    to busy_timeout for another process's writer. Writers of this process take turns on a
    lock first, which wakes the next the moment one finishes (SQLite's busy handler sleeps
    1 to 100 ms between tries). On PostgreSQL this does nothing."""
    gate = _sqlite_gate(session)
    if gate is None:
        yield
        return
    with gate:
        session.connection(execution_options={IMMEDIATE: True})
        yield


@contextmanager
def writing(session: Session) -> Iterator[None]:
    """The write part of a request that has already read (authentication, say): end the
    read transaction, then write in turn (``_write_turn``). The caller commits inside."""
    end_read_snapshot(session)
    with _write_turn(session):
        yield


def _copy_processor(type_: Any, dialect: Any) -> Any:
    """How a value of ``type_`` goes into COPY: the type's own bind processing, and JSON
    wrapped for psycopg (SQLAlchemy leaves that to psycopg's parameter binding)."""
    if isinstance(type_, JSON):
        from psycopg.types.json import Json

        none_as_null = type_.none_as_null
        return lambda v: None if v is None and none_as_null else Json(v)
    return type_.bind_processor(dialect)


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows that need nothing back, in the session's transaction.

    PostgreSQL: one ``COPY ... FROM STDIN`` (several times faster than the executemany
    SQLAlchemy sends, which bounded event storage on PostgreSQL); elsewhere a Core
    executemany. Every row carries the same keys; columns left out get their server-side
    default on PostgreSQL, so give every column that has a Python-side default."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    # the column types' own bind processing (UTC datetimes, JSON serialization), as an INSERT would do
    columns = [(name, _copy_processor(table.c[name].type, dialect)) for name in names]
    quote = dialect.identifier_preparer
    sql = f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) FROM STDIN"
    dbapi: Any = conn.connection.dbapi_connection  # a psycopg 3 connection
    try:
        with dbapi.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[n] if p is None else p(row[n]) for n, p in columns])
    except dialect.loaded_dbapi.Error as exc:  # the same exception classes as an INSERT would raise
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error) from exc


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def like_literal(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def scrub_freed_space(session: Session) -> None:
    """On SQLite, have this session's connection overwrite what it deletes or replaces with
    zeros (``secure_delete``), so that text it moves out of a row (plaintext being encrypted)
    does not linger in the file's free pages. PostgreSQL keeps dead tuples until VACUUM."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA secure_delete=ON"))


def checkpoint_wal(engine: Engine) -> None:
    """On SQLite, copy the write-ahead log into the database file and truncate it: the log keeps
    old page images (plaintext a rewrite just scrubbed) until then."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def transaction(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """The one transaction edge: commit on success, roll back on any error. ``write=True``
    for a job or command that writes: it takes its turn with the process's other writers
    and, on SQLite, holds the write lock from its first statement (see ``_write_turn``)."""
    session = factory()
    try:
        with _write_turn(session) if write else nullcontext():
            yield session
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def write_transaction(factory: sessionmaker[Session]) -> AbstractContextManager[Session]:
    """``transaction(factory, write=True)``."""
    return transaction(factory, write=True)
