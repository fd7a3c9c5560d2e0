"""A PostgreSQL server of the test's own (initdb + pg_ctl on a free loopback port), for tests that
stop and restart the database: the shared server on 5432 must never be restarted by a test."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


PG_CTL, INITDB = _bin("pg_ctl"), _bin("initdb")
needs_pg_binaries = pytest.mark.skipif(
    PG_CTL is None or INITDB is None, reason="PostgreSQL server binaries (initdb, pg_ctl) are not installed"
)


class OwnPostgres:
    """``base`` must be reachable by the postgres user when the tests run as root (pytest's own
    temporary folders are not): ``OwnPostgres.scratch()`` makes such a folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def scratch(cls) -> OwnPostgres:
        return cls(Path(tempfile.mkdtemp(prefix="faultloop-pg-")))

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, *args: str) -> None:
        # initdb and the server refuse to run as root: run them as the postgres user then
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{args[0]} failed: {proc.stderr or proc.stdout}"

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        assert INITDB is not None
        self._run(INITDB, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self) -> None:
        assert PG_CTL is not None
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.base} -c fsync=off"
        self._run(PG_CTL, "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"), "-w", "start")

    def stop(self) -> None:
        assert PG_CTL is not None
        self._run(PG_CTL, "-D", str(self.data), "-m", "fast", "-w", "stop")
