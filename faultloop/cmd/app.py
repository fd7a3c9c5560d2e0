"""The wiring module: where the flow of faultloop can be read in one place.

    settings -> database engine + sessions -> vault -> Runtime -> HTTP API + Pipeline

Packages plug in here, and only here (``build_pipeline``): collectors hand observations
to the alarm engine, alarm changes go to ticketing, notifications and the live stream
after commit.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI

from alarms.bus import AlarmBus
from alarms.notify import Notifier
from alarms.notify import load_config as load_notify_config
from alarms.runner import AlarmEngine
from alarms.stream import STREAM as ALARM_STREAM
from api.main import create_api
from api.services import ServiceHandles
from collectors.backup import BackupOutcome, backup_device
from collectors.cli_collect import CliCollectorService
from collectors.jobs import PollerService, poll_now
from collectors.receiver import DeviceDirectory
from collectors.snmp_poll import DeviceTracker, InterfaceState, PollResult
from collectors.syslog import SyslogReceiverService
from collectors.traps import TrapReceiverService
from faultloop.events import ObservationSink, Service
from faultloop.runtime import (  # noqa: F401 - re-exported: the app is where callers look for them
    Runtime,
    StartupError,
    build_runtime,
    check_database,
    configure_logging,
)
from provisioning.executor import ExecutionOutcome, execute_order
from provisioning.jobs import ProvisioningService
from provisioning.render import catalog
from provisioning.unplanned import UnplannedChangeSink
from ticketing.jobs import TicketingService

log = logging.getLogger("faultloop")

GRACEFUL_SHUTDOWN_S = 10  # how long a stopping server lets running requests finish


@dataclass
class Pipeline:
    """Every background service of one faultloop process, in start order, and the handles the
    API is given to them (None: the API does the work in the request, ``api.services.one_shot``)."""

    services: list[Service] = field(default_factory=list)
    handles: ServiceHandles | None = None

    async def start(self) -> None:
        started: list[Service] = []
        try:
            for service in self.services:
                try:
                    await service.start()
                except Exception as exc:
                    raise StartupError(f"cannot start {service.name}: {exc}") from exc
                started.append(service)
                log.info("started %s", service.name)
        except BaseException:
            for service in reversed(started):
                with contextlib.suppress(Exception):
                    await service.stop()
            raise

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception as exc:  # one failing stop must not keep the others running
                log.error("stopping %s failed: %s", service.name, type(exc).__name__)


def build_pipeline(rt: Runtime, sink: ObservationSink | None = None) -> Pipeline:
    """The flow of one faultloop process, wired here and only here.

    collectors --(faultloop.events.ObservationSink)--> alarms --(after commit)--> ticketing,
    notifications, live stream, metrics; provisioning and config backups report to the same sink.
    ``sink`` replaces the alarm engine as the collectors' intake (tests pass a recorder).
    """
    pipeline = Pipeline()
    settings = rt.settings
    # Alarm engine first (started first, stopped last): the collectors' sink unless one is given.
    # Its bus publishes alarm changes after each commit; ticketing, notifications and the live
    # stream subscribe here with alarm_bus.subscribe(name, callback).
    alarm_bus = AlarmBus()
    if sink is None:
        engine = AlarmEngine(rt, alarm_bus)
        pipeline.services.append(engine)
        sink = engine
    # Live stream for the dashboard: GET /api/v1/alarms/stream (server-sent events).
    alarm_bus.subscribe("live stream", ALARM_STREAM.publish)
    # Notifications: webhook / e-mail per the routes file, from an outbox (at-least-once).
    if settings.alarm_notify_file is not None:
        notifier = Notifier(rt, load_notify_config(settings.alarm_notify_file))
        alarm_bus.subscribe("notifications", notifier.on_alarm_changes)
        pipeline.services.append(notifier)
    # Ticketing: alarm changes (after commit) -> tickets opened, children attached, verify/reopen, SLA timers.
    tickets = TicketingService(rt)
    alarm_bus.subscribe("ticketing", tickets.on_alarm_changes)
    pipeline.services.append(tickets)
    # SNMP poller: every inventory device with SNMP settings, on its interval; findings go to the sink.
    poller = PollerService(rt, sink)
    pipeline.services.append(poller)
    if settings.trap_enabled or settings.syslog_enabled:
        # one address -> device directory, refreshed from the inventory, shared by both receivers
        directory = DeviceDirectory(rt.sessions, refresh_s=settings.receiver_directory_refresh_s)
        pipeline.services.append(directory)
        if settings.trap_enabled:
            pipeline.services.append(TrapReceiverService(settings=settings, sink=sink, directory=directory))
        if settings.syslog_enabled:
            pipeline.services.append(SyslogReceiverService(settings=settings, sink=sink, directory=directory))
    # SSH: scheduled show commands and config backups; config_changed / host_key_changed go to the sink,
    # and a config_changed that no service order explains is followed by an unplanned_change event.
    ssh_sink = UnplannedChangeSink(sink, rt.sessions, grace_s=settings.provisioning_window_grace_s)
    pipeline.services.append(CliCollectorService(rt, sink=ssh_sink))
    # Provisioning: approved orders run when their change window opens (pushes report to the sink).
    # The catalog is loaded now: a bad catalog folder stops the start (CatalogError), not an order.
    catalog(settings.provisioning_catalog_dir)
    pipeline.services.append(ProvisioningService(rt, sink=sink))
    # The API's handles: on-demand work reports exactly where the scheduled work does.
    pipeline.handles = service_handles(rt, poller=poller, sink=sink, backup_sink=ssh_sink)
    return pipeline


def service_handles(
    rt: Runtime, *, poller: PollerService, sink: ObservationSink, backup_sink: ObservationSink
) -> ServiceHandles:
    """The running services as the API sees them (``api.services``)."""

    async def poll(device_id: int) -> tuple[PollResult, DeviceTracker]:
        return await poll_now(rt, device_id, poller)

    def live_interfaces(device_id: int) -> dict[int, InterfaceState] | None:
        tracker = poller.trackers.get(device_id)
        return tracker.last.interfaces if tracker is not None and tracker.last is not None else None

    def backup(device_id: int, *, actor: str) -> BackupOutcome:
        return backup_device(rt, device_id, sink=backup_sink, trigger="on_demand", actor=actor)

    def execute(order_id: int, *, actor: str, role: str) -> ExecutionOutcome:
        return execute_order(rt, order_id, actor=actor, role=role, sink=sink)

    return ServiceHandles(
        poll_now=poll, live_interfaces=live_interfaces, backup_now=backup, execute_order=execute, sink=sink
    )


def create_app(rt: Runtime, pipeline: Pipeline | None = None, *, own_pipeline: bool = True) -> FastAPI:
    """The HTTP app; with ``own_pipeline`` its lifespan starts and stops the pipeline's services."""
    pipeline = pipeline if pipeline is not None else build_pipeline(rt)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not own_pipeline:
            yield
            return
        await pipeline.start()
        try:
            yield
        finally:
            await pipeline.stop()

    return create_api(rt, lifespan=lifespan, services=pipeline.handles)


def settle_heap() -> None:
    """Freeze what start-up left alive (modules, routes, models, pools) out of the garbage
    collector's reach. Otherwise every full collection walks those hundreds of thousands of
    objects: a 90 ms pause in which no request is answered, which set the API's p99 at load.
    Call once, in the serving process, right before it serves."""
    gc.collect()
    gc.freeze()


async def serve_http(
    app: FastAPI,
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool = True,
    announce: Callable[[], None] | None = None,
    closing: Callable[[], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` with uvicorn until stopped (SIGINT/SIGTERM). ``announce`` runs once the
    socket listens, so whoever reads it can connect at once; ``closing`` when shutdown begins,
    to end long-lived responses (live streams). Requests still running after
    ``GRACEFUL_SHUTDOWN_S`` are cancelled. Benchmarks serve through it too."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and announce is not None:
                announce()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if closing is not None:
                closing()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level.lower(), access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )  # fmt: skip
    server = Server(config)
    settle_heap()
    await server.serve(sockets=[sock] if sock is not None else None)


def bind_http(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound before anything starts: an address or port that cannot
    be had is one clear StartupError (exit 2), not the HTTP server's own exit later."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} (FAULTLOOP_HOST/FAULTLOOP_PORT): {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {host}:{port} (FAULTLOOP_HOST/FAULTLOOP_PORT): {reason}") from None
    sock.set_inheritable(True)
    return sock


async def run_service(rt: Runtime, *, announce: Callable[[], None] | None = None) -> None:
    """Start the pipeline, then serve HTTP until stopped; stop everything on the way out.

    The services start before the HTTP server so that a taken trap port or a similar
    start-up failure ends the process with one clear message (StartupError)."""
    # `kill -USR1 <pid>`: every thread's stack to stderr (what is it doing, why won't it stop?)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    pipeline = build_pipeline(rt)  # the configuration files load here: their errors come first
    await pipeline.start()
    try:
        settings = rt.settings
        # bound here, not by uvicorn: an HTTP address that cannot be had is a StartupError too
        with bind_http(settings.host, settings.port) as sock:
            app = create_app(rt, pipeline, own_pipeline=False)
            await serve_http(
                app, host=settings.host, port=settings.port, log_level=settings.log_level, announce=announce,
                closing=ALARM_STREAM.end_all, sock=sock,
            )  # fmt: skip
    finally:
        await pipeline.stop()
