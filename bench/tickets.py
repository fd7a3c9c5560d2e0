"""Technician API latency at a fixed offered load, beside a FastAPI hello-world measured in the same run.

    python -m bench tickets          (or: python -m bench.tickets [--rate 100] [--seconds 10] [--no-pg])

For each backend (SQLite file in WAL mode; PostgreSQL on 127.0.0.1:5432 in a database of
its own, when reachable): migrate, seed 10,000 tickets (40 of them en route with one
technician), start the real faultloop API under uvicorn in a child process on a random
loopback address, then offer ``--rate`` requests per second (open loop: requests are sent
on schedule whether or not earlier ones finished) for ``--seconds``:

    50 % GET  /api/v1/me/tickets                      (the phone app's list)
    20 % GET  /api/v1/tickets/{id}                    (one of the technician's tickets)
    20 % POST /api/v1/me/tickets/{id}/status          (update: location note)
    10 % POST /api/v1/me/tickets/{id}/notes           (with an Idempotency-Key)

The reference is a FastAPI hello-world (GET /hello -> {"ok": true}) served by the same
uvicorn settings in a child process, offered the same rate in the same run. Then the NOC
list of all 10,000 tickets is read page by page (limit 500). Figures: p50/p99/max
latency, errors, and p99 as a multiple of the hello-world p99. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.scratch import scratch_postgres

TICKETS = 10_000
MINE = 40

SERVE = r"""
import asyncio, sys
from cryptography.fernet import Fernet
from faultloop.cmd.app import serve_http
kind, url, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if kind == "hello":
    from fastapi import FastAPI
    app = FastAPI()
    @app.get("/hello")
    def hello():
        return {"ok": True}
else:
    from api.main import create_api
    from faultloop.cmd.app import build_runtime
    from faultloop.settings import Settings
    import tempfile
    settings = Settings(database_url=url, data_dir=tempfile.mkdtemp(), secret_key=Fernet.generate_key().decode())
    app = create_api(build_runtime(settings))
# both through the function `faultloop serve` uses (the same uvicorn settings and heap handling)
asyncio.run(serve_http(app, host=host, port=port, log_level="warning", access_log=False))
"""


def seed(url: str) -> tuple[str, str, list[int]]:
    """Migrate and fill the database; returns (technician token, noc token, the technician's ticket ids)."""
    from sqlalchemy import insert, select

    from faultloop import migrate
    from faultloop.accounts import service as accounts
    from faultloop.db import make_engine, make_sessionmaker, transaction
    from ticketing import dispatch
    from ticketing.models import Ticket

    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    with transaction(make_sessionmaker(engine)) as s:
        tech = accounts.create_user(s, username="bench-tech", role="technician", password=None, actor="bench")
        noc = accounts.create_user(s, username="bench-noc", role="noc", password=None, actor="bench")
        dispatch.upsert_profile(s, username="bench-tech", skills=["fiber"], sites=["*"])
        _r, tech_token = accounts.create_token(s, user=tech, name="b", ttl_days=1, actor="bench")
        _r, noc_token = accounts.create_token(s, user=noc, name="b", ttl_days=1, actor="bench")
        rows = []
        for i in range(TICKETS):
            mine = i < MINE
            rows.append({
                "version": 1, "title": f"ticket {i}", "description": "", "state": "en_route" if mine else "new",
                "priority": "P3", "severity": "major", "source": "manual", "site": f"pop-{i % 50}",
                "device": f"dev-{i % 500}", "alarm_type": "", "fault_category": "", "diagnosis": "",
                "required_skill": "", "tier": 1, "assignee_id": tech.id if mine else None, "team": "",
                "location_note": "", "cause_category": "", "action_taken": "", "parts_used": [],
                "resolution_notes": "", "cancel_reason": "", "reopen_count": 0, "created_by": "bench",
                "created_at": now, "updated_at": now, "response_target_s": 3600.0, "restore_target_s": 86400.0,
                "business_hours": False, "response_elapsed_s": 0.0, "restore_elapsed_s": 0.0, "sla_checked_at": now,
                "response_warned": False, "restore_warned": False, "response_breached": False,
                "restore_breached": False,
            })  # fmt: skip
        s.execute(insert(Ticket), rows)
        mine_ids = list(s.scalars(select(Ticket.id).where(Ticket.assignee_id == tech.id)))
    engine.dispose()
    return tech_token, noc_token, mine_ids


def serve(kind: str, url: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    host = f"127.{random.randint(100, 120)}.{random.randint(0, 250)}.{random.randint(1, 250)}"
    with socket.socket() as probe:  # a free port on that address, handed to the child
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    with log.open("a") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, kind, url, host, str(port)], stderr=errors, text=True,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return proc, f"http://{host}:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"{kind} server did not start within 60 s: {log.read_text()[-2000:]}")


async def offer(rate: float, seconds: float, make_request) -> tuple[list[float], dict[str, int]]:
    """Open loop: one request every 1/rate s; returns latencies (s) of successes and errors by status."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int) -> None:
            method, path, kw = make_request(i)
            started = time.perf_counter()
            try:
                r = await client.request(method, path, **kw)
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status < "400" and status.isdigit():
                latencies.append(time.perf_counter() - started)
            else:
                errors[status] = errors.get(status, 0) + 1

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, errors


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def run_backend(name: str, url: str, rate: float, seconds: float, log: Path) -> None:
    tech_token, noc_token, mine = seed(url)
    procs: list[subprocess.Popen[str]] = []
    tech = {"Authorization": f"Bearer {tech_token}"}
    try:
        hello, hello_url = serve("hello", "", log)
        procs.append(hello)
        app, app_url = serve("faultloop", url, log)
        procs.append(app)

        def hello_req(i: int):
            return "GET", f"{hello_url}/hello", {}

        def tech_req(i: int):
            tid = mine[i % len(mine)]
            roll = i % 10
            if roll < 5:
                return "GET", f"{app_url}/api/v1/me/tickets", {"headers": tech}
            if roll < 7:
                return "GET", f"{app_url}/api/v1/tickets/{tid}", {"headers": tech}
            if roll < 9:
                body = {"status": "update", "location_note": f"km {i}"}
                return "POST", f"{app_url}/api/v1/me/tickets/{tid}/status", {"headers": tech, "json": body}
            headers = {**tech, "Idempotency-Key": uuid.uuid4().hex}
            return "POST", f"{app_url}/api/v1/me/tickets/{tid}/notes", {"headers": headers, "json": {"text": "n"}}

        asyncio.run(offer(50, 2, hello_req))  # warm-up, not counted
        asyncio.run(offer(50, 2, tech_req))
        ref, ref_err = asyncio.run(offer(rate, seconds, hello_req))
        got, got_err = asyncio.run(offer(rate, seconds, tech_req))
        print(f"[{name}] hello-world    {rate:.0f} req/s x {seconds:.0f}s: p50 {pct(ref, .5):6.1f} ms  "
              f"p99 {pct(ref, .99):6.1f} ms  max {max(ref) * 1000:6.1f} ms  errors {ref_err or 0}")  # fmt: skip
        print(f"[{name}] technician API {rate:.0f} req/s x {seconds:.0f}s: p50 {pct(got, .5):6.1f} ms  "
              f"p99 {pct(got, .99):6.1f} ms  max {max(got) * 1000:6.1f} ms  errors {got_err or 0}  "
              f"p99 ratio vs hello-world {pct(got, .99) / pct(ref, .99):.1f}x")  # fmt: skip
        noc = {"Authorization": f"Bearer {noc_token}"}
        with httpx.Client(timeout=60) as c:
            pages, seen, started = 0, 0, time.perf_counter()
            per_page: list[float] = []
            while True:
                t0 = time.perf_counter()
                r = c.get(f"{app_url}/api/v1/tickets", params={"limit": 500, "offset": seen}, headers=noc)
                per_page.append(time.perf_counter() - t0)
                r.raise_for_status()
                items = r.json()["items"]
                if not items:
                    break
                pages, seen = pages + 1, seen + len(items)
            total = time.perf_counter() - started
            t0 = time.perf_counter()
            for _ in range(pages):
                c.get(f"{hello_url}/hello").raise_for_status()
            hello_total = time.perf_counter() - t0
        print(f"[{name}] list {seen} tickets in {pages} pages of 500: {total:.2f}s "
              f"(per page median {statistics.median(per_page) * 1000:.0f} ms, max {max(per_page) * 1000:.0f} ms; "
              f"{pages} hello-world requests {hello_total * 1000:.0f} ms)")  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tickets")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    log = Path(tempfile.mkdtemp()) / "servers.log"
    with tempfile.TemporaryDirectory() as tmp:
        run_backend("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.rate, args.seconds, log)
    if args.no_pg:
        return 0
    with scratch_postgres("bench_tickets") as url:
        if url is not None:
            run_backend("postgresql", url, args.rate, args.seconds, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
