"""Who runs the singleton loops: leader election with fencing for redundant central instances.

Several central instances may share one PostgreSQL database; all serve the API, but exactly
one runs the loops that must not run twice (alarm engine rounds, ticket timers, the
provisioning tick, the notifier). That one is the leader:

- **Election**: a PostgreSQL session advisory lock, held on a dedicated connection. The
  connection's ``idle_session_timeout`` is the lease: the leader touches it every
  ``lease/5`` seconds; a leader that stops doing so (SIGSTOP, a hung host, a cut cable) is
  disconnected by the server after ``lease`` seconds, which releases the lock. A process
  that dies (kill -9) releases it at once: the kernel closes its socket.
- **Fencing**: a newly elected leader increments the ``leader_epochs`` row and remembers the
  value. Every singleton write transaction starts with ``fence``: it reads the row ``FOR
  SHARE`` and aborts (``NotLeader``) unless the epoch is still its own. The share lock
  makes the next leader's increment wait for a running fenced transaction, so two leaders'
  writes never interleave; ``idle_in_transaction_session_timeout`` (set for that
  transaction) bounds that wait when the old leader is paused inside one. A paused leader
  that wakes up therefore finds a newer epoch and writes nothing.

On SQLite there is one process: ``LocalLeadership`` always leads and fences nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from sqlalchemy import BigInteger, String, create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from faultloop import clock
from faultloop.db import Base, UTCDateTime, write_transaction
from faultloop.metrics import REGISTRY

log = logging.getLogger("faultloop.leader")

# pg_try_advisory_lock key: "flt" "lead" as one bigint. Advisory locks are per database.
LOCK_KEY = 0x666C74_6C656164
SINGLETONS = "central"  # the leader_epochs row of the singleton loops

LEADING = Gauge("faultloop_leader", "1 while this instance runs the singleton loops", registry=REGISTRY)
ELECTED = Counter("faultloop_leader_elections_total", "Times this instance became the leader", registry=REGISTRY)
FENCED = Counter(
    "faultloop_leader_fenced_total",
    "Singleton write transactions refused because this instance no longer leads",
    registry=REGISTRY,
)


class NotLeader(Exception):
    """This instance does not (or no longer) lead: the singleton write was not made."""


class LeaderEpoch(Base):
    __tablename__ = "leader_epochs"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Leadership(Protocol):
    """What a singleton loop asks: do I lead, and (in each write transaction) do I still?"""

    name: str

    @property
    def leading(self) -> bool: ...

    @property
    def epoch(self) -> int | None: ...

    def fence(self, session: Session) -> None:
        """First statement of a singleton write transaction; raises NotLeader when not leading."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LocalLeadership:
    """One process on SQLite (or a test): always the leader, nothing to fence."""

    name = "leadership"

    @property
    def leading(self) -> bool:
        return True

    @property
    def epoch(self) -> int | None:
        return 0

    def fence(self, session: Session) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"election": "local", "leader": True, "epoch": 0}

    async def start(self) -> None:
        LEADING.set(1)

    async def stop(self) -> None:
        LEADING.set(0)


class PgLeadership:
    """The advisory-lock election and the epoch fence on PostgreSQL (see the module docstring)."""

    name = "leadership"

    def __init__(self, engine: Engine, *, lease_s: float, holder: str | None = None, group: str = SINGLETONS) -> None:
        self.lease_s = lease_s
        self.holder = holder or instance_id()
        self.group = group
        self._sessions = sessionmaker(bind=engine)
        # The lock lives on a connection of its own, outside the pool: its session settings are the
        # lease, and the pool must never hand it to a request or recycle it.
        url = engine.url.render_as_string(hide_password=False)
        keepalive_s = max(1, int(lease_s / 2))
        self._lock_engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": max(2, int(lease_s)),
                "application_name": f"faultloop leader {self.holder}"[:63],
                "options": f"-c idle_session_timeout={int(lease_s * 1000)}",
                "keepalives": 1,
                "keepalives_idle": keepalive_s,
                "keepalives_interval": 1,
                "keepalives_count": 3,
                "tcp_user_timeout": int(lease_s * 1000),
            },
        )
        self._conn: Connection | None = None
        self._epoch: int | None = None
        self._last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- what the loops ask ------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self._epoch is not None

    @property
    def epoch(self) -> int | None:
        return self._epoch

    def fence(self, session: Session) -> None:
        mine = self._epoch
        if mine is None:
            FENCED.inc()
            raise NotLeader("this instance does not lead")
        # bounds how long a paused leader's open transaction can hold up the next leader's election
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {int(self.lease_s * 2000)}"))
        current = session.execute(
            text("SELECT epoch FROM leader_epochs WHERE name = :name FOR SHARE"), {"name": self.group}
        ).scalar()
        if current != mine:
            self._lost(f"epoch {current} is newer than ours ({mine})")
            FENCED.inc()
            raise NotLeader(f"leadership lost: epoch {current}, this instance had {mine}")

    def status(self) -> dict[str, Any]:
        # public (/healthz): no error text, which may name hosts; the log has it
        return {"election": "postgresql", "leader": self.leading, "epoch": self._epoch}

    # ---- the election -------------------------------------------------------------------------

    def step(self) -> None:
        """One election turn: hold the lock (touching the lease) or try to take it. The thread's
        loop body; tests call it directly."""
        try:
            if self._conn is None:
                self._conn = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if self._lock_held():
                if self._epoch is None:
                    self._take_epoch()
                self._last_error = ""
                return
            if self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
                self._take_epoch()
            self._last_error = ""
        except SQLAlchemyError as exc:
            error = (str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__])[0][:200]
            if error != self._last_error:
                log.warning("leader election: %s", error)
            self._last_error = error
            self._lost(f"database: {type(exc).__name__}")
            self._close()

    def _lock_held(self) -> bool:
        assert self._conn is not None
        held = self._conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND objid = (:k & 4294967295) AND classid = (:k >> 32)"
            ),
            {"k": LOCK_KEY},
        ).scalar()
        return bool(held)

    def _take_epoch(self) -> None:
        with self._sessions.begin() as session:
            # a stale leader's fenced transaction holds the row FOR SHARE: wait for it, boundedly
            session.execute(text(f"SET LOCAL lock_timeout = {int(self.lease_s * 1000)}"))
            session.execute(
                text(
                    "INSERT INTO leader_epochs (name, epoch, holder, acquired_at) VALUES (:n, 0, '', :t) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                {"n": self.group, "t": clock.now()},
            )
            epoch = session.execute(
                text(
                    "UPDATE leader_epochs SET epoch = epoch + 1, holder = :h, acquired_at = :t "
                    "WHERE name = :n RETURNING epoch"
                ),
                {"n": self.group, "h": self.holder, "t": clock.now()},
            ).scalar_one()
        self._epoch = int(epoch)
        ELECTED.inc()
        LEADING.set(1)
        log.warning("this instance (%s) leads the singleton loops, epoch %d", self.holder, epoch)

    def _lost(self, why: str) -> None:
        if self._epoch is not None:
            log.warning("this instance (%s) no longer leads (%s)", self.holder, why)
        self._epoch = None
        LEADING.set(0)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # already broken; closing it is all that was left to do
                log.debug("closing the lock connection: %s", type(exc).__name__)

    def release(self) -> None:
        """Give the lock up now (clean stop): another instance leads within one turn."""
        self._lost("stopping")
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except SQLAlchemyError:
                pass
        self._close()

    def _run(self) -> None:
        turn = self.lease_s / 5
        while not self._stop.wait(turn):
            started = time.monotonic()
            self.step()
            if time.monotonic() - started > self.lease_s:  # the turn itself outlived the lease
                self._lost("election turn too slow")
                self._close()

    async def start(self) -> None:
        # one turn before the loops start: a lone instance leads from its first round
        await asyncio.to_thread(self.step)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.lease_s * 2)
            self._thread = None
        await asyncio.to_thread(self.release)
        self._lock_engine.dispose()


def cluster_id(engine: Engine) -> str:
    """What the instances sharing this database have in common, whatever host name each uses for it:
    PostgreSQL's system identifier and the database name (SQLite: the file). Keeps two deployments
    on one NATS broker apart."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            ident = conn.execute(
                text("SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()")
            ).scalar()
    else:
        ident = os.path.abspath(engine.url.database or ":memory:")
    return hashlib.sha256(str(ident).encode()).hexdigest()[:16]


def leadership_for(engine: Engine, *, lease_s: float) -> Leadership:
    """PostgreSQL: elect among the instances sharing the database; SQLite: one process leads."""
    if engine.dialect.name == "postgresql":
        return PgLeadership(engine, lease_s=lease_s)
    return LocalLeadership()


@contextmanager
def fenced_transaction(sessions: sessionmaker[Session], leadership: Leadership | None) -> Iterator[Session]:
    """``write_transaction`` for a singleton loop: aborts with NotLeader unless this instance
    still leads (``None``: not fenced, a loop run on its own by a test or a command)."""
    with write_transaction(sessions) as session:
        if leadership is not None:
            leadership.fence(session)
        yield session
