"""Order execution: backup, push, verify, save, or roll back every device (all-or-nothing).

    approved --execute--> executing   per device (bounded parallelism): SSH session (host key
                                      enforced, per-device lock), pre-change backup stored,
                                      send_config_set stopped at the first device-side error,
                                      show-command post-checks until they pass or time out
             --pushed-->  verifying   SNMP post-checks (ifAlias, ifAdminStatus, ifOperStatus)
             --complete-> completed   configuration saved (write memory), post-change backup stored
             --roll_back-> rolled_back one device failed: every touched device is restored from its
                                      backup and compared with it line by line
             --fail-->    failed      a rollback did not restore the backup (needs an engineer)

Each device's outcome is a ``DeviceResult``, never an exception, so one dead device drives
the rollback of the others instead of aborting the order. The order opens its own
maintenance window for the touched interfaces (the expected linkDown/linkUp opens no
ticket) and closes it, with a grace period, after verification.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from netmiko.exceptions import ConfigInvalidException
from prometheus_client import Counter, Histogram
from sqlalchemy.orm import Session

from collectors.backup import fetch_config, store_backup
from devices.conn import DeviceConn
from devices.snmp import SnmpClient, SnmpTarget
from devices.ssh import device_session, write_transaction
from devices.targets import snmp_target
from faultloop import clock
from faultloop.errors import Conflict, DomainError, NotFound
from faultloop.events import ObservationSink
from faultloop.metrics import REGISTRY
from faultloop.runtime import Runtime
from inventory import queries
from provisioning import maintenance, policy, rules
from provisioning import service as orders
from provisioning.render import ShowCheck, SnmpCheck, service_type

log = logging.getLogger("faultloop.provisioning")

ORDERS = Counter(
    "faultloop_provisioning_orders_total", "Executed service orders by outcome", ["outcome"], registry=REGISTRY
)
DEVICE_PUSHES = Counter(
    "faultloop_provisioning_device_pushes_total", "Device pushes by result", ["result"], registry=REGISTRY
)
ROLLBACKS = Counter(
    "faultloop_provisioning_rollbacks_total",
    "Device rollbacks by result (restored, mismatch, failed)",
    ["result"],
    registry=REGISTRY,
)
PUSH_SECONDS = Histogram(
    "faultloop_provisioning_device_push_seconds",
    "Time for one device: session, backup, push, show post-checks",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)

IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_ALIAS = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18)
IF_ADMIN = (1, 3, 6, 1, 2, 1, 2, 2, 1, 7)
IF_OPER = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
STATUS = {1: "up", 2: "down", 3: "testing", 5: "dormant", 7: "lowerLayerDown"}


@dataclass(frozen=True)
class DeviceJob:
    """One device's work, read in a short transaction before any network I/O."""

    item_id: int
    device_id: int
    hostname: str
    platform: str
    commands: tuple[str, ...]
    inverse: tuple[str, ...]
    shows: tuple[ShowCheck, ...]
    snmps: tuple[SnmpCheck, ...]


@dataclass
class DeviceResult:
    device_id: int
    hostname: str
    ok: bool
    stage: str  # connect | backup | push | check | snmp | save | rollback | done
    message: str = ""
    touched: bool = False  # configuration lines were sent
    backup_text: str | None = field(default=None, repr=False)
    backup_id: int | None = None
    seconds: float = 0.0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.detail
    return f"{type(exc).__name__}"  # driver text may repeat connection parameters


def _enable(conn: DeviceConn, platform: str) -> None:
    """Privileged EXEC, out of configuration mode (a push stopped at an error leaves it there)."""
    if conn.check_config_mode():
        conn.exit_config_mode()
    if platform == "cisco_ios" and not conn.check_enable_mode():
        conn.enable()


@dataclass(frozen=True)
class CheckOutcome:
    """One expectation of a catalog check, as read from the device: activation's post-checks and a
    ticket's service verification (``provisioning.verify``) judge the same outcomes."""

    device: str  # hostname
    check: str  # what was expected, in words
    ok: bool
    read: str  # what the device said: the matching line, the value, or an excerpt of the output
    problem: str = ""  # the failure as activation reports it ("" when ok)


READ_EXCERPT = 300  # characters of a command's output kept as what was read


def show_outcomes(hostname: str, check: ShowCheck, output: str) -> list[CheckOutcome]:
    """Each expected regex of a show check against the command's output."""
    outcomes = []
    for pattern in check.expect:
        found = re.search(pattern, output, re.MULTILINE)
        if found:
            line_start = output.rfind("\n", 0, found.start()) + 1
            line_end = output.find("\n", found.end())
            read = output[line_start : line_end if line_end >= 0 else len(output)].strip()
        else:
            read = output.strip()[:READ_EXCERPT]
        outcomes.append(
            CheckOutcome(
                device=hostname, check=f"{check.command!r} has a line matching {pattern!r}", ok=found is not None,
                read=read, problem="" if found else f"{check.command!r}: no line matches {pattern!r}",
            )  # fmt: skip
        )
    return outcomes


def snmp_outcomes(hostname: str, check: SnmpCheck, state: dict[str, str] | None) -> list[CheckOutcome]:
    """An SNMP check against the interface's state as read (None: the interface is not in ifName/ifDescr)."""
    if state is None:
        problem = f"{check.interface}: not in ifName/ifDescr"
        return [CheckOutcome(device=hostname, check=f"{check.interface} exists", ok=False, read="", problem=problem)]
    outcomes = []
    for key in ("if_alias", "admin_status", "oper_status"):
        wanted = getattr(check, key)
        if wanted is None:
            continue
        ok = state[key] == wanted
        outcomes.append(
            CheckOutcome(
                device=hostname, check=f"{check.interface} {key} is {wanted!r}", ok=ok, read=state[key],
                problem="" if ok else f"{check.interface}: {key} is {state[key]!r}, expected {wanted!r}",
            )  # fmt: skip
        )
    return outcomes


def _show_checks(conn: DeviceConn, checks: Sequence[ShowCheck], timeout_s: float) -> str | None:
    """None when every expectation matched; else what did not, after retrying until the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        failures = [
            outcome.problem
            for check in checks
            for outcome in show_outcomes("", check, str(conn.send_command(check.command)))
            if not outcome.ok
        ]
        if not failures or time.monotonic() >= deadline:
            return "; ".join(failures) or None
        time.sleep(1.0)


class Hold:
    """Keeps each device's session open from its push to the order's verdict (save or roll back),
    so a completed order costs one SSH session per device. Used when every device of the order
    fits in the worker pool at once (otherwise the verdict would wait for devices not started)."""

    def __init__(self, timeout_s: float) -> None:
        self.reports: queue.Queue[DeviceResult] = queue.Queue()
        self.decided = threading.Event()
        self.verdict = "rollback"
        self.timeout_s = timeout_s

    def decide(self, verdict: str) -> None:
        self.verdict = verdict
        self.decided.set()

    def wait(self) -> str:
        return self.verdict if self.decided.wait(self.timeout_s) else "rollback"  # no verdict: be safe


def _push_in(conn: DeviceConn, rt: Runtime, job: DeviceJob, order_id: int, result: DeviceResult) -> None:
    _enable(conn, job.platform)
    result.stage = "backup"
    text = fetch_config(conn, conn.device_type)
    with write_transaction(rt) as session:
        device = queries.device(session, job.device_id)
        if device is None:
            raise NotFound(f"device {job.device_id} not found")
        row, _prev, _created = store_backup(
            session, rt.vault, device=device, text=text, trigger="on_demand", actor=f"order {order_id}"
        )
        result.backup_id = row.id
    result.backup_text = text
    result.stage = "push"
    result.touched = True
    junos = job.platform == "juniper_junos"
    try:
        output = str(
            conn.send_config_set(
                list(job.commands),
                exit_config_mode=not junos,
                error_pattern=rules.ERROR_PATTERNS.get(job.platform, ""),
            )
        )
    except ConfigInvalidException as exc:
        errors = rules.device_errors(job.platform, str(exc)) or ["device rejected a line"]
        if junos:  # nothing was committed: discard the candidate
            conn.send_command_timing("rollback 0")
            conn.exit_config_mode()
        result.message = f"device rejected the configuration: {errors[0]}"
        return
    errors = rules.device_errors(job.platform, output)
    if not errors and junos:
        commit = str(conn.send_command_timing("commit"))
        errors = rules.device_errors(job.platform, commit)
        if errors:
            conn.send_command_timing("rollback 0")
        conn.exit_config_mode()
    if errors:
        result.message = f"device rejected the configuration: {errors[0]}"
        return
    result.stage = "check"
    failure = _show_checks(conn, job.shows, rt.settings.provisioning_check_timeout_s)
    if failure:
        result.message = f"post-check failed: {failure}"
        return
    result.ok = True
    result.stage = "pushed"


def push_device(
    rt: Runtime, job: DeviceJob, *, order_id: int, sink: ObservationSink | None, hold: Hold | None = None
) -> tuple[DeviceResult, DeviceResult | None]:
    """(push result, save/rollback result when ``hold`` kept the session open for the verdict)."""
    started = time.monotonic()
    result = DeviceResult(job.device_id, job.hostname, ok=False, stage="connect")
    final: DeviceResult | None = None
    reported = False

    def report() -> None:
        nonlocal reported
        result.seconds = time.monotonic() - started
        PUSH_SECONDS.observe(result.seconds)
        DEVICE_PUSHES.labels(result="ok" if result.ok else result.stage).inc()
        reported = True
        if hold is not None:
            hold.reports.put(result)

    try:
        with device_session(rt, job.device_id, sink=sink, source="provisioning") as conn:
            try:
                _push_in(conn, rt, job, order_id, result)
            except Exception as exc:  # a Result, not an exception: the order decides what to do
                result.ok = False
                result.message = f"{result.stage}: {_reason(exc)}"
            report()
            if hold is not None and result.touched and result.backup_text is not None:
                # read the new configuration while the order decides (it becomes the post-change backup)
                after = _guarded_text(conn, job) if result.ok else None
                if hold.wait() == "save":
                    final = _guarded(job, "save", lambda: _save_in(conn, rt, job, order_id, text=after))
                else:
                    final = _guarded(job, "rollback", lambda: _rollback_in(conn, job, result.backup_text or ""))
    except Exception as exc:
        if not reported:
            result.ok = False
            result.message = f"{result.stage}: {_reason(exc)}"
            report()
        elif hold is not None and final is None and result.touched:
            final = DeviceResult(
                job.device_id,
                job.hostname,
                ok=False,
                stage="rollback",
                touched=True,
                message=f"session lost before the verdict: {_reason(exc)}",
            )
    return result, final


def _guarded(job: DeviceJob, stage: str, fn: Callable[[], DeviceResult]) -> DeviceResult:
    started = time.monotonic()
    try:
        result = fn()
        result.seconds = time.monotonic() - started
        return result
    except Exception as exc:
        if stage == "rollback":
            ROLLBACKS.labels(result="failed").inc()
        return DeviceResult(
            job.device_id, job.hostname, ok=False, stage=stage, touched=True, message=f"{stage}: {_reason(exc)}"
        )


async def interface_state(client: SnmpClient, target: SnmpTarget, ifname: str) -> dict[str, str] | None:
    names = await client.walk(target, [IF_NAME, IF_DESCR])
    index = next(
        (
            oid[-1]
            for oid, value in names.items()
            if isinstance(value, bytes) and value.decode(errors="replace") == ifname
        ),
        None,
    )
    if index is None:
        return None
    values = await client.get(target, [IF_ALIAS + (index,), IF_ADMIN + (index,), IF_OPER + (index,)])
    alias = values.get(IF_ALIAS + (index,))
    admin = values.get(IF_ADMIN + (index,))
    oper = values.get(IF_OPER + (index,))
    return {
        "if_alias": alias.decode(errors="replace") if isinstance(alias, bytes) else "",
        "admin_status": STATUS.get(admin, str(admin)) if isinstance(admin, int) else "",
        "oper_status": STATUS.get(oper, str(oper)) if isinstance(oper, int) else "",
    }


async def _snmp_device(
    client: SnmpClient, target: SnmpTarget, checks: Sequence[SnmpCheck], timeout_s: float
) -> str | None:
    deadline = time.monotonic() + timeout_s
    while True:
        failures = []
        for check in checks:
            try:
                state = await interface_state(client, target, check.interface)
            except Exception as exc:  # timeouts and agent errors are a failed check, retried
                failures.append(f"{check.interface}: SNMP {type(exc).__name__}")
                continue
            failures += [outcome.problem for outcome in snmp_outcomes("", check, state) if not outcome.ok]
        if not failures or time.monotonic() >= deadline:
            return "; ".join(failures) or None
        await asyncio.sleep(1.0)


def snmp_checks(rt: Runtime, jobs: Sequence[DeviceJob]) -> dict[int, str | None]:
    """device_id -> failure text (None: passed or nothing to check). Devices without SNMP are skipped."""
    targets: dict[int, SnmpTarget] = {}
    with write_transaction(rt) as session:
        for job in jobs:
            device = queries.device(session, job.device_id)
            if job.snmps and device is not None and device.snmp_version:
                target = snmp_target(
                    device, rt.vault, timeout_s=rt.settings.poll_timeout_s, retries=rt.settings.poll_retries
                )
                if target is not None:
                    targets[job.device_id] = target
    if not targets:
        return {}

    async def run() -> dict[int, str | None]:
        client = SnmpClient()
        limit = asyncio.Semaphore(rt.settings.provisioning_workers)
        timeout_s = rt.settings.provisioning_check_timeout_s

        async def one(job: DeviceJob) -> tuple[int, str | None]:
            async with limit:
                return job.device_id, await _snmp_device(client, targets[job.device_id], job.snmps, timeout_s)

        try:
            pairs = await asyncio.gather(*(one(j) for j in jobs if j.device_id in targets))
        finally:
            client.close()
        return dict(pairs)

    return asyncio.run(run())


def _guarded_text(conn: DeviceConn, job: DeviceJob) -> str | None:
    try:
        return fetch_config(conn, conn.device_type)
    except Exception as exc:  # read again at save time
        log.info("post-change read of %s failed early: %s", job.hostname, type(exc).__name__)
        return None


def _save_in(conn: DeviceConn, rt: Runtime, job: DeviceJob, order_id: int, *, text: str | None = None) -> DeviceResult:
    """Save the running configuration and store it (``text``: read after the push) as the post-change backup."""
    result = DeviceResult(job.device_id, job.hostname, ok=False, stage="save", touched=True)
    _enable(conn, job.platform)
    if job.platform == "cisco_ios":
        out = str(conn.save_config())
        if rules.device_errors(job.platform, out):
            result.message = "save: the device refused to save its configuration"
            return result
    if text is None:
        text = fetch_config(conn, conn.device_type)
    with write_transaction(rt) as session:
        device = queries.device(session, job.device_id)
        if device is not None:
            store_backup(session, rt.vault, device=device, text=text, trigger="on_demand", actor=f"order {order_id}")
    result.ok, result.stage = True, "done"
    return result


def _rollback_in(conn: DeviceConn, job: DeviceJob, backup_text: str) -> DeviceResult:
    """Bring the device back to its pre-change backup and compare line by line."""
    result = DeviceResult(job.device_id, job.hostname, ok=False, stage="rollback", touched=True)
    _enable(conn, job.platform)
    current = fetch_config(conn, conn.device_type)
    if rules.config_mismatch(backup_text, current):
        if job.platform == "cisco_ios":
            commands = rules.restore_commands(job.platform, backup_text, current)
            out = str(conn.send_config_set(commands)) if commands else ""
        else:  # Junos: the rendered inverse, committed
            out = str(conn.send_config_set(list(job.inverse), exit_config_mode=False))
            out += str(conn.send_command_timing("commit"))
            conn.exit_config_mode()
        errors = rules.device_errors(job.platform, out)
        if errors:
            log.warning("rollback of %s: device said %s", job.hostname, errors[0])
        current = fetch_config(conn, conn.device_type)
    mismatch = rules.config_mismatch(backup_text, current)
    if mismatch:
        changed = [line for line in mismatch if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        result.message = f"rollback left {len(changed)} line(s) different from the backup: {changed[:5]}"
        ROLLBACKS.labels(result="mismatch").inc()
    else:
        result.ok, result.message = True, "restored: running configuration equals the pre-change backup"
        ROLLBACKS.labels(result="restored").inc()
    return result


def save_device(rt: Runtime, job: DeviceJob, *, order_id: int) -> DeviceResult:
    def run() -> DeviceResult:
        with device_session(rt, job.device_id, source="provisioning") as conn:
            return _save_in(conn, rt, job, order_id)

    return _guarded(job, "save", run)


def rollback_device(rt: Runtime, job: DeviceJob, backup_text: str) -> DeviceResult:
    def run() -> DeviceResult:
        with device_session(rt, job.device_id, source="provisioning") as conn:
            return _rollback_in(conn, job, backup_text)

    return _guarded(job, "rollback", run)


def _parallel(rt: Runtime, fn: Callable[[DeviceJob], DeviceResult], jobs: Sequence[DeviceJob]) -> list[DeviceResult]:
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(rt.settings.provisioning_workers, len(jobs))) as pool:
        return list(pool.map(fn, jobs))


def _parallel_pairs(
    rt: Runtime, fn: Callable[[DeviceJob], tuple[DeviceResult, DeviceResult | None]], jobs: Sequence[DeviceJob]
) -> list[tuple[DeviceResult, DeviceResult | None]]:
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(rt.settings.provisioning_workers, len(jobs))) as pool:
        return list(pool.map(fn, jobs))


@dataclass(frozen=True)
class ExecutionOutcome:
    order_id: int
    state: str
    message: str
    results: tuple[DeviceResult, ...]
    phases_s: dict[str, float] = field(default_factory=dict)  # wall time per phase (for the bench)


def _start(
    rt: Runtime, order_id: int, *, actor: str, role: str, fence: Callable[[Session], None] | None = None
) -> list[DeviceJob]:
    with write_transaction(rt) as session:
        if fence is not None:  # the scheduler of a leading central instance: the claim aborts if it no longer leads
            fence(session)
        order = orders.get_order(session, order_id)
        now = clock.now()
        if order.state == "approved":
            if order.window_start is not None and now < order.window_start:
                raise Conflict(
                    f"order {order_id} waits for its change window (starts {order.window_start.isoformat()})"
                )
            if order.window_end is not None and now >= order.window_end:
                raise Conflict(f"order {order_id}: its change window ended at {order.window_end.isoformat()}")
        before = order.state
        order.state = policy.transition(
            order.state,
            "execute",
            role=role,
            actor=actor,
            author=order.created_by,
            four_eyes=rt.settings.provisioning_four_eyes,
        )
        order_items = orders.items(session, order_id)
        busy = orders.busy_devices(session, [i.device_id for i in order_items], except_order=order_id)
        if busy:
            raise Conflict(f"device(s) {busy} are being changed by another order; try again when it finishes")
        order.executed_by = actor
        order.updated_at = now
        st = service_type(order.service_type)
        jobs: list[DeviceJob] = []
        for item in order_items:
            device = queries.device(session, item.device_id)
            assert device is not None
            platform = device.device_type or device.platform
            params = item.params
            shows, snmps = st.checks(platform, params) if order.action != "terminate" else ([], [])
            jobs.append(
                DeviceJob(
                    item_id=item.id,
                    device_id=device.id,
                    hostname=device.hostname,
                    platform=platform,
                    commands=tuple(item.commands),
                    inverse=tuple(item.inverse),
                    shows=tuple(shows),
                    snmps=tuple(snmps),
                )
            )
            item.status = "executing"
        order.maintenance_window_id = maintenance.open_window(
            session,
            order=order,
            targets=[(j.hostname, str(i.params.get("interface", ""))) for j, i in zip(jobs, order_items, strict=True)],
            expected_s=4 * rt.settings.ssh_timeout_s + 2 * rt.settings.provisioning_check_timeout_s + 60,
            actor=actor,
        )
        orders.record(
            session,
            order,
            actor=actor,
            action="execute",
            before=before,
            maintenance_window_id=order.maintenance_window_id,
        )
    return jobs


def execute_order(
    rt: Runtime,
    order_id: int,
    *,
    actor: str,
    role: str,
    sink: ObservationSink | None = None,
    fence: Callable[[Session], None] | None = None,
) -> ExecutionOutcome:
    """Run an approved order now. Raises only before anything is sent (state, window, busy devices;
    ``fence``, run first in the claiming transaction, may raise too: faultloop.leader.NotLeader)."""
    mark = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = now - mark
        mark = now

    jobs = _start(rt, order_id, actor=actor, role=role, fence=fence)
    phase("start")
    settings = rt.settings
    hold: Hold | None = None
    held: list[Future[tuple[DeviceResult, DeviceResult | None]]] = []
    pool: ThreadPoolExecutor | None = None
    if jobs and len(jobs) <= settings.provisioning_workers:
        # every device fits in the pool: keep each session open until the verdict (one session per device)
        hold = Hold(timeout_s=4 * settings.ssh_timeout_s + 2 * settings.provisioning_check_timeout_s + 60)
        pool = ThreadPoolExecutor(max_workers=len(jobs))
        held = [pool.submit(push_device, rt, j, order_id=order_id, sink=sink, hold=hold) for j in jobs]
        reports = [hold.reports.get() for _ in jobs]
        order_of = {j.device_id: i for i, j in enumerate(jobs)}
        pushed = sorted(reports, key=lambda r: order_of[r.device_id])
    else:
        pushed = [p for p, _ in _parallel_pairs(rt, lambda j: push_device(rt, j, order_id=order_id, sink=sink), jobs)]
    phase("push")
    try:
        by_id = {r.device_id: r for r in pushed}
        failed = [r for r in pushed if not r.ok]
        with write_transaction(rt) as session:
            order = orders.get_order(session, order_id)
            for item in orders.items(session, order_id):
                r = by_id[item.device_id]
                item.backup_id = r.backup_id
                item.status = "pushed" if r.ok else "failed"
                item.message = r.message
            if not failed:
                before = order.state
                order.state = policy.transition(
                    order.state, "pushed", role="system", actor=actor, author="", four_eyes=False
                )
                orders.record(session, order, actor=actor, action="pushed", before=before, devices=len(jobs))
        if not failed:
            for device_id, failure in snmp_checks(rt, jobs).items():
                if failure:
                    r = by_id[device_id]
                    r.ok, r.stage, r.message = False, "snmp", f"SNMP post-check failed: {failure}"
            failed = [r for r in pushed if not r.ok]
    except BaseException:
        if hold is not None and pool is not None:  # never leave sessions waiting: roll back what was sent
            hold.decide("rollback")
            pool.shutdown()
        raise
    phase("verify")
    finals: list[DeviceResult]
    if hold is not None and pool is not None:
        hold.decide("save" if not failed else "rollback")
        finals = [final for _push, final in (f.result() for f in held) if final is not None]
        pool.shutdown()
    elif not failed:
        finals = _parallel(rt, lambda j: save_device(rt, j, order_id=order_id), jobs)
    else:
        touched = [j for j in jobs if by_id[j.device_id].touched and by_id[j.device_id].backup_text is not None]
        finals = _parallel(rt, lambda j: rollback_device(rt, j, by_id[j.device_id].backup_text or ""), touched)
    phase("save_or_rollback")
    if not failed:
        failed_saves = [r for r in finals if not r.ok]
        outcome = "completed" if not failed_saves else "failed"
        message = (
            f"{len(jobs)} device(s) configured, verified and saved"
            if not failed_saves
            else f"configured and verified, but saving failed on {', '.join(r.hostname for r in failed_saves)}"
        )
    else:
        first = failed[0]
        bad = [r for r in finals if not r.ok]
        outcome = "rolled_back" if not bad else "failed"
        message = f"{first.hostname}: {first.message}; " + (
            f"rolled back {len(finals)} device(s), each equal to its backup"
            if not bad
            else f"rollback incomplete on {', '.join(r.hostname for r in bad)}"
        )
        if not any(by_id[j.device_id].touched for j in jobs):
            message = f"{first.hostname}: {first.message}; nothing was sent to any device"
    final_by_id = {r.device_id: r for r in finals}
    with write_transaction(rt) as session:
        order = orders.get_order(session, order_id)
        for item in orders.items(session, order_id):
            pushed_result = by_id[item.device_id]
            final = final_by_id.get(item.device_id)
            if outcome == "completed":
                item.status = "completed"
            elif final is not None:
                item.status = "rolled_back" if final.ok else "rollback_failed"
                item.message = "; ".join(m for m in (pushed_result.message, final.message) if m)
            else:
                item.status = "failed" if not pushed_result.ok else "untouched"
        if order.state == "executing" and outcome == "completed":  # pragma: no cover - guarded above
            outcome = "failed"
        orders.finish(session, order, outcome=outcome, actor=actor, message=message)
        if order.maintenance_window_id is not None:
            maintenance.close_window(
                session, order.maintenance_window_id, grace_s=rt.settings.provisioning_window_grace_s, actor=actor
            )
    phase("finish")
    ORDERS.labels(outcome=outcome).inc()
    log.info("order %d %s: %s", order_id, outcome, message)
    return ExecutionOutcome(
        order_id=order_id,
        state=outcome,
        message=message,
        results=tuple(replace(r, backup_text=None) for r in [*pushed, *finals]),
        phases_s=phases,
    )
