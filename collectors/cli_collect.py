"""Scheduled SSH/CLI work: show-command collection and config backups, in a bounded thread pool.

netmiko blocks, so every device session runs in a ``ThreadPoolExecutor`` of
``FAULTLOOP_SSH_WORKERS`` threads; every network step of a session is bounded by
``FAULTLOOP_SSH_TIMEOUT_S``, so a hung device holds one worker for at most that long and
never blocks the others. Each device yields a result (ok or an error string), never
an exception that aborts the cycle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ntc_templates.parse import parse_output
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session

from collectors.backup import backup_device
from collectors.backup_models import CliResult
from collectors.cli_commands import command_table
from devices.hostkeys import HostKeyError
from devices.ssh import device_session, netmiko_device_type, write_transaction
from faultloop import clock
from faultloop.db import transaction
from faultloop.errors import DomainError, NotFound
from faultloop.events import ObservationSink
from faultloop.metrics import REGISTRY
from faultloop.runtime import Runtime
from faultloop.worker import stop_task
from inventory import queries

log = logging.getLogger("faultloop.collectors.cli")

STOP_WAIT_S = 30.0  # how long stop() lets running SSH sessions finish

CLI_COMMANDS = Counter(
    "faultloop_cli_commands_total",
    "Show commands collected over SSH, by result (parsed, raw, failed)",
    ["result"],
    registry=REGISTRY,
)
SSH_JOBS = Counter(
    "faultloop_ssh_jobs_total",
    "Per-device SSH jobs by kind (backup, cli) and result (ok, failed)",
    ["kind", "result"],
    registry=REGISTRY,
)


def parse(device_type: str, command: str, output: str) -> list[dict[str, Any]] | None:
    """Rows from the ntc-templates TextFSM template for this command, or None when there is none."""
    try:
        rows = parse_output(platform=device_type, command=command, data=output)
    except Exception:  # no template, or a template that does not match this output
        return None
    return [dict(r) for r in rows] if isinstance(rows, list) else None


# ---- storage ------------------------------------------------------------------------


def store_result(
    session: Session, *, device_id: int, command: str, output: str, parsed: list[dict[str, Any]] | None,
    taken_at: datetime | None = None,
) -> CliResult:
    """Keep the latest result per device and command (``taken_at``: when it was collected; default now)."""
    row = session.scalar(select(CliResult).where(CliResult.device_id == device_id, CliResult.command == command))
    if row is None:
        row = CliResult(device_id=device_id, command=command)
        session.add(row)
    row.taken_at, row.output, row.parsed = taken_at or clock.now(), output, parsed
    session.flush()
    return row


def list_results(session: Session, *, device_id: int) -> list[CliResult]:
    if queries.device(session, device_id) is None:
        raise NotFound(f"device {device_id} not found")
    return list(session.scalars(select(CliResult).where(CliResult.device_id == device_id).order_by(CliResult.command)))


def latest_result(session: Session, *, device_id: int, command: str) -> CliResult:
    device = queries.device(session, device_id)
    if device is None:
        raise NotFound(f"device {device_id} not found")
    row = session.scalar(select(CliResult).where(CliResult.device_id == device_id, CliResult.command == command))
    if row is None:
        raise NotFound(f"no result of {command!r} collected from {device.hostname!r} yet")
    return row


def result_out(row: CliResult) -> dict[str, Any]:
    return {"command": row.command, "taken_at": row.taken_at, "parsed": row.parsed, "output": row.output}


# ---- per-device jobs ----------------------------------------------------------------


@dataclass(frozen=True)
class CollectOutcome:
    device_id: int
    commands: int
    parsed: int


def collect_device(rt: Runtime, device_id: int, *, sink: ObservationSink | None) -> CollectOutcome:
    """Run the device's platform commands in one session and store the latest of each."""
    outputs: list[tuple[str, str, list[dict[str, Any]] | None]] = []
    with device_session(rt, device_id, sink=sink, source="poll") as conn:
        spec = command_table().get(conn.device_type)
        if spec is None:
            return CollectOutcome(device_id, 0, 0)
        for command in spec.commands:
            output = str(conn.send_command(command))
            rows = parse(conn.device_type, command, output)
            CLI_COMMANDS.labels(result="parsed" if rows is not None else "raw").inc()
            outputs.append((command, output, rows))
    with write_transaction(rt) as session:
        for command, output, rows in outputs:
            store_result(session, device_id=device_id, command=command, output=output, parsed=rows)
    return CollectOutcome(device_id, len(outputs), sum(1 for _c, _o, r in outputs if r is not None))


@dataclass(frozen=True)
class DeviceResult:
    """One device's result in a cycle: ``value`` on success, ``error`` (a short reason) otherwise."""

    device_id: int
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DomainError | HostKeyError):
        return str(exc)
    return f"{type(exc).__name__}"  # the type only: driver text can carry connection details


def run_cycle(
    pool: concurrent.futures.Executor,
    device_ids: list[int],
    job: Callable[[int], Any],
    *,
    kind: str,
    deadline_s: float,
) -> list[DeviceResult]:
    """Run ``job`` per device in the pool; a device that fails or overruns is a result, not an exception."""
    futures: dict[concurrent.futures.Future[Any], int] = {}
    for device_id in device_ids:
        try:
            future = pool.submit(job, device_id)
        except RuntimeError:  # the pool shut down while this cycle was still handing out work
            future = concurrent.futures.Future()
            future.cancel()
        futures[future] = device_id
    _wait_all(list(futures), deadline_s)
    results: list[DeviceResult] = []
    for future, device_id in futures.items():
        if not future.done():
            future.cancel()  # queued: never starts; running: its own SSH timeouts end it
            results.append(DeviceResult(device_id, error=f"device {device_id}: not finished within {deadline_s:.0f} s"))
        elif future.cancelled():
            results.append(DeviceResult(device_id, error=f"device {device_id}: not started (the service is stopping)"))
        elif (exc := future.exception()) is not None:
            results.append(DeviceResult(device_id, error=_reason(exc)))
        else:
            results.append(DeviceResult(device_id, value=future.result()))
    for r in results:
        SSH_JOBS.labels(kind=kind, result="ok" if r.ok else "failed").inc()
        if not r.ok:
            log.warning("%s: %s", kind, r.error)
    return results


def _wait_all(futures: list[concurrent.futures.Future[Any]], timeout_s: float) -> None:
    """Until every future is done or the time is up. Not ``concurrent.futures.wait``: it is never
    told of futures that ``shutdown(cancel_futures=True)`` cancels, and so waited out the whole
    deadline while the service stopped (the demo then hung in its exit). Done callbacks do run."""
    left = len(futures)
    lock = threading.Lock()
    all_done = threading.Event()

    def one_done(_future: concurrent.futures.Future[Any]) -> None:
        nonlocal left
        with lock:
            left -= 1
            if left == 0:
                all_done.set()

    if not futures:
        return
    for future in futures:
        future.add_done_callback(one_done)
    all_done.wait(timeout_s)


def ssh_device_ids(session: Session, *, remote_group: Callable[[str], bool] | None = None) -> list[int]:
    """Devices with SSH credentials and a platform in the command table (but those of a group
    ``remote_group`` says its collectors serve)."""
    table = command_table()
    return [
        d.id
        for d in queries.devices(session, with_ssh=True)
        if (d.ssh_password_enc or d.ssh_private_key_enc)
        and netmiko_device_type(d) in table
        and not (remote_group is not None and remote_group(d.collector_group))
    ]


# ---- the service --------------------------------------------------------------------


class CliCollectorService:
    """Backs up configurations every ``backup_interval_s`` and collects show commands every
    ``cli_interval_s``, for every SSH-capable device, in a pool of ``ssh_workers`` threads.

    Due times are decided on ``faultloop.clock`` with a random first offset (jitter) so a
    restart does not hit every device at once.
    """

    name = "cli-collector"

    def __init__(
        self, rt: Runtime, *, sink: ObservationSink | None, tick_s: float = 5.0,
        remote_group: Callable[[str], bool] | None = None,
    ) -> None:  # fmt: skip
        self.rt = rt
        # groups whose collectors do the SSH work (faultloop.cmd.app.served_by_collectors): not here
        self.remote_group = remote_group
        self.sink = sink
        self.tick_s = tick_s
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._next: dict[str, datetime] = {}

    async def start(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.rt.settings.ssh_workers, thread_name_prefix="ssh"
        )
        now = clock.now()
        s = self.rt.settings
        self._next = {
            "backup": now + timedelta(seconds=random.uniform(0, min(60.0, s.backup_interval_s))),
            "cli": now + timedelta(seconds=random.uniform(0, min(60.0, s.cli_interval_s))),
        }
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)  # sessions not yet started never start
            # Sessions already running finish while their devices are still reachable (the demo
            # stops its lab after the service): left alone, their threads outlive the event loop,
            # talk to devices that are gone, and hold up the interpreter's exit by their timeouts.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(pool.shutdown, wait=True), timeout=STOP_WAIT_S)

    def deadline_s(self) -> float:
        # a session has at most connect + banner + auth + a few reads, each bounded by the timeout
        return self.rt.settings.ssh_timeout_s * 10 + 60

    def due(self) -> list[str]:
        """Which kinds of work are due now; moves their next due time by the interval."""
        now = clock.now()
        s = self.rt.settings
        intervals = {"backup": s.backup_interval_s, "cli": s.cli_interval_s}
        kinds = [k for k, at in self._next.items() if at <= now]
        for kind in kinds:
            self._next[kind] = now + timedelta(seconds=intervals[kind])
        return kinds

    def run_backups(self, device_ids: list[int] | None = None) -> list[DeviceResult]:
        assert self.pool is not None, "service not started"
        if device_ids is None:
            with transaction(self.rt.sessions) as session:
                device_ids = ssh_device_ids(session, remote_group=self.remote_group)
        return run_cycle(
            self.pool,
            device_ids,
            lambda device_id: backup_device(self.rt, device_id, sink=self.sink),
            kind="backup",
            deadline_s=self.deadline_s(),
        )

    def run_cli(self, device_ids: list[int] | None = None) -> list[DeviceResult]:
        assert self.pool is not None, "service not started"
        if device_ids is None:
            with transaction(self.rt.sessions) as session:
                device_ids = ssh_device_ids(session, remote_group=self.remote_group)
        return run_cycle(
            self.pool,
            device_ids,
            lambda device_id: collect_device(self.rt, device_id, sink=self.sink),
            kind="cli",
            deadline_s=self.deadline_s(),
        )

    async def tick(self) -> dict[str, list[DeviceResult]]:
        """Run whatever is due now (off the event loop); the results per kind of work."""
        loop = asyncio.get_running_loop()
        ran: dict[str, list[DeviceResult]] = {}
        for kind in self.due():
            work = self.run_backups if kind == "backup" else self.run_cli
            try:
                ran[kind] = await loop.run_in_executor(None, work)
            except Exception as exc:  # the schedule must survive a database hiccup
                log.error("%s cycle failed: %s", kind, type(exc).__name__)
        return ran

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.tick_s)
