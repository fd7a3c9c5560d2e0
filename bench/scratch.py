"""A PostgreSQL database of the benchmark's own, for the length of a ``with`` block."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_ADMIN = os.environ.get("FAULTLOOP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_postgres(label: str = "bench") -> Iterator[str | None]:
    """Yield the URL of a fresh database on the server (``FAULTLOOP_BENCH_PG``, default
    127.0.0.1:5432), dropped afterwards; ``None`` (and a line saying why) when no server answers."""
    from sqlalchemy import create_engine, text

    name = f"faultloop_{label}_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"[postgresql] skipped: {type(exc).__name__}", flush=True)
        yield None
        return
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
