"""A real `faultloop demo` (service + lab network) in a child process, on ports of its own.

`faultloop demo` listens on fixed lab ports (SNMP 16100, SSH 2222, control 8099); a
developer's running demo or another test run would collide with them. The launcher below
runs the same CLI command with the demo topology's ports and the control port moved to
free ones; the service's own ports (HTTP, traps, syslog) are ordinary settings. The
browser tests and `python -m bench console` both start the demo through `start_demo`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[3]


@contextmanager
def scratch_postgres(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``admin_url``, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    url = make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    database_url: str
    base: str
    token: str
    password: str
    control: str
    trap_port: int
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def api(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kw.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.api(method, path, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def fault(self, kind: str, **params: Any) -> dict[str, Any]:
        """One fault through the lab's control API (`faultloop lab fault ...` does the same)."""
        r = httpx.post(f"{self.control}/faults/{kind}", json=params, timeout=15)
        assert r.status_code == 200, f"lab fault {kind} {params}: {r.status_code} {r.text}"
        return dict(r.json())

    def lab_device(self, name: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.control}/devices/{name}", timeout=15).json())

    def device_id(self, hostname: str) -> int:
        items = self.ok("GET", "/api/v1/devices", params={"q": hostname, "limit": 50})["items"]
        return int(next(d["id"] for d in items if d["hostname"] == hostname))

    def user(self, username: str, role: str, password: str) -> None:
        """A user made with the CLI against the same data directory, as an operator would."""
        res = subprocess.run(
            [sys.executable, "-m", "faultloop.cmd", "user", "add", username, "--role", role, "--password-stdin"],
            input=password + "\n",
            env=self.env,
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # every thread's stack into the log: what held it up
                time.sleep(2)
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def start_demo(
    workdir: Path, *, database_url: str = "", ticket_min_active_s: float = 2.0, timeout_s: float = 180
) -> Demo:
    """Start the demo in ``workdir`` (its data directory is ``workdir/var``; the database is
    SQLite there unless ``database_url`` names one) and wait for its first polls."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "var"
    # The packaged policy opens a ticket for an alarm active 60 s; the tests shorten that
    # through the policy file setting, everything else as shipped.
    policy = yaml.safe_load((REPO / "ticketing" / "data" / "policy.yaml").read_text())
    policy["open"]["min_active_s"] = ticket_min_active_s
    policy_file = workdir / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    port = free_port()
    trap_port = free_port(socket.SOCK_DGRAM)
    control_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    env.update(
        FAULTLOOP_DATA_DIR=str(data_dir),
        FAULTLOOP_CONFIG=str(workdir / "none.toml"),
        FAULTLOOP_PORT=str(port),
        FAULTLOOP_TRAP_PORT=str(trap_port),
        FAULTLOOP_SYSLOG_PORT=str(free_port(socket.SOCK_DGRAM)),
        FAULTLOOP_TICKET_POLICY_FILE=str(policy_file),
        COLUMNS="250",
        **({"FAULTLOOP_DATABASE_URL": database_url} if database_url else {}),
        PYTHONPATH=str(REPO),
    )
    # the lab on free ports too, so that the tests run beside a `make demo`
    ports = ["--lab-snmp-port", str(free_port(socket.SOCK_DGRAM)), "--lab-ssh-port", str(free_port())]
    log = (workdir / "demo.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultloop.cmd", "demo", *ports, "--lab-control-port", str(control_port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, ""):
            lines.append(line)
            log.write(line)
            log.flush()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not any("stop:" in line for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("faultloop demo did not start:\n" + "".join(lines)[-4000:])
        time.sleep(0.2)
    text = "".join(lines)
    token = re.search(r"API token:\s+(flt_\S+)", text)
    password = re.search(r"password (\S+) \(shown once\)", text)
    assert token and password, text
    demo = Demo(
        database_url=database_url,
        base=f"http://127.0.0.1:{port}",
        token=token.group(1),
        password=password.group(1),
        control=f"http://127.0.0.1:{control_port}",
        trap_port=trap_port,
        data_dir=data_dir,
        env=env,
        proc=proc,
        lines=lines,
    )
    # The inventory is imported before the announcement; wait for the first poll of every
    # device to be stored so pages have something to show (and the start-up burst of
    # polls, backups and CLI collection has passed its densest part).
    # the announcement comes just before uvicorn binds its socket
    while True:
        try:
            if httpx.get(demo.base + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            demo.stop()
            raise RuntimeError("the demo's HTTP service did not answer:\n" + demo.output[-4000:])
        time.sleep(0.2)
    ids = [d["id"] for d in demo.ok("GET", "/api/v1/devices", params={"limit": 100})["items"]]
    assert len(ids) == 20, ids
    waiting = set(ids)
    while waiting:
        if proc.poll() is not None or time.monotonic() > deadline:
            demo.stop()
            raise RuntimeError(f"devices {sorted(waiting)} not polled:\n" + demo.output[-4000:])
        for device_id in sorted(waiting):
            if demo.ok("GET", f"/api/v1/devices/{device_id}/interfaces/status").get("last_poll_at"):
                waiting.discard(device_id)
        time.sleep(0.5)
    return demo
