"""Issue 15 item 6: the SQLite database and its directory are owner-only (config text, encrypted secrets)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from faultloop.db import make_engine


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default, under which files come out 0644
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_data_dir_is_0700_and_database_files_0600(tmp_path, umask_022):
    db = tmp_path / "var" / "nested" / "faultloop.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            conn.execute(text("INSERT INTO t VALUES ('running-config')"))
        with engine.connect() as conn:  # WAL: the -wal and -shm files exist while a connection is open
            assert conn.execute(text("SELECT x FROM t")).scalar() == "running-config"
            assert _mode(db.parent) == 0o700 and _mode(tmp_path / "var") == 0o700
            for path in (db, db.with_name("faultloop.db-wal"), db.with_name("faultloop.db-shm")):
                assert _mode(path) == 0o600, (path, oct(_mode(path)))
    finally:
        engine.dispose()


def test_existing_world_readable_database_is_narrowed_and_shared_dir_left_alone(tmp_path, umask_022):
    db = tmp_path / "faultloop.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    tmp_path.chmod(0o755)
    engine = make_engine(f"sqlite:///{db}")
    engine.dispose()
    assert _mode(db) == 0o600
    assert _mode(tmp_path) == 0o755
