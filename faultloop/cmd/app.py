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

from fastapi import FastAPI, Response

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
from collectors.remote import RemotePoller, ResultsIntake, last_result_reader
from collectors.snmp_poll import DeviceTracker, InterfaceState, PollResult
from collectors.syslog import SyslogReceiverService
from collectors.traps import TrapReceiverService
from faultloop.broker import BrokerError, BrokerLink, Publisher, Spool
from faultloop.cmd.collector import (
    DirectoryPublisher,
    GroupShare,
    Membership,
    RemoteDirectory,
    collector_name,
    collector_secrets,
)
from faultloop.events import DurableSink, ObservationSink, Service
from faultloop.runtime import (  # noqa: F401 - re-exported: the app is where callers look for them
    Runtime,
    StartupError,
    build_runtime,
    check_database,
    configure_logging,
)
from faultloop.settings import Settings
from faultloop.signals import INVENTORY_CHANGED
from faultloop.transport import CentralIntake, ObservationPublisher, stream_setup
from provisioning.executor import ExecutionOutcome, execute_order
from provisioning.jobs import ProvisioningService
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
    engine: AlarmEngine | None = None
    if sink is None:
        engine = AlarmEngine(rt, alarm_bus)
        pipeline.services.append(engine)
        sink = engine
    pipeline.services += central_intake(rt, sink)
    # Live stream for the dashboard: GET /api/v1/alarms/stream (server-sent events).
    alarm_bus.subscribe("live stream", ALARM_STREAM.publish)
    # Notifications: webhook / e-mail per the routes file, from an outbox (at-least-once): the engine
    # writes the rows in the transaction of the change; the bus only wakes the delivery.
    if settings.alarm_notify_file is not None:
        notifier = Notifier(rt, load_notify_config(settings.alarm_notify_file))
        if engine is not None:
            engine.add_outbox("notifications", notifier.enqueue)
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
        # (reloaded after each inventory commit in this process, and when another process's commit
        # moves the stored inventory revision)
        directory = DeviceDirectory(
            rt.sessions, refresh_s=settings.receiver_directory_refresh_s, changes=INVENTORY_CHANGED
        )
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
    pipeline.services.append(ProvisioningService(rt, sink=sink))
    # The API's handles: on-demand work reports exactly where the scheduled work does.
    pipeline.handles = service_handles(rt, poller=poller, sink=sink, backup_sink=ssh_sink)
    return pipeline


def central_intake(rt: Runtime, sink: ObservationSink) -> list[Service]:
    """With FAULTLOOP_NATS_URL set: the link to NATS and the consumers that feed what collectors
    publish into ``sink`` (the alarm engine's durable queue; commit, then ack). Empty: no broker."""
    settings = rt.settings
    if not settings.nats_url:
        return []
    if not isinstance(sink, DurableSink):
        raise StartupError("FAULTLOOP_NATS_URL: central needs a durable sink (the alarm engine) for NATS events")
    try:
        link = BrokerLink(settings, client_name=f"faultloop-central-{socket.gethostname()}")
    except BrokerError as exc:
        raise StartupError(str(exc)) from None
    stream_setup(link, settings)
    # events and samples into the alarm engine; poll results into the inventory and poll state
    services: list[Service] = [
        link, CentralIntake(link, rt.sessions, sink, settings), ResultsIntake(link, rt.sessions, sink, settings)
    ]  # fmt: skip
    if settings.collector_key is not None:  # remote collectors learn their group's devices from here
        try:
            services.append(DirectoryPublisher(link, rt.sessions, settings, vault=rt.vault))
        except BrokerError as exc:
            raise StartupError(str(exc)) from None
    return services


@dataclass
class CollectorProcess:
    """What ``faultloop serve --role collector`` runs: the pipeline and a small HTTP app
    (``/healthz``, ``/metrics``)."""

    pipeline: Pipeline
    app: FastAPI
    health: Callable[[], dict[str, object]]


def build_collector(settings: Settings) -> CollectorProcess:
    """The collector role: no database. Its group's device directory, SNMP credentials included,
    comes from central over NATS (encrypted with FAULTLOOP_COLLECTOR_KEY); the SNMP poller polls
    this member's share of the group's devices (rendezvous hashing over the live members), and it
    and the trap and syslog receivers publish through an on-disk spool, so an unreachable NATS or
    central only makes it degraded. A setting that cannot work is a ``StartupError`` naming it."""
    if not settings.nats_url:
        raise StartupError("FAULTLOOP_NATS_URL: empty; the collector role needs the broker")
    name = collector_name(settings)
    try:
        link = BrokerLink(settings, client_name=f"faultloop-collector-{settings.collector_group}-{name}")
        directory = RemoteDirectory(link, settings)
        # the SNMP secrets in the directory are tokens under the collector key, decrypted per request
        collector_vault = collector_secrets(settings)
    except BrokerError as exc:
        raise StartupError(str(exc)) from None
    stream_setup(link, settings)
    spool = Spool(
        settings.data_dir / "spool" / f"{settings.collector_group}-{name}.sqlite",
        max_messages=settings.nats_spool_max_messages,
        name=name,
    )
    publisher = Publisher(link, spool, batch_size=settings.nats_batch_size)
    sink = ObservationPublisher(publisher, settings, group=settings.collector_group, collector=name)
    membership = Membership(link, settings)
    poller = RemotePoller(
        settings, collector_vault, publisher=publisher, sink=sink, share=GroupShare(directory, membership),
        last_result=last_result_reader(link, settings, settings.collector_group), collector=name,
    )  # fmt: skip
    membership.on_change(poller.sync)  # a member joining or expiring re-shares at once
    pipeline = Pipeline([link, publisher, membership, directory, poller])
    if settings.trap_enabled:
        pipeline.services.append(TrapReceiverService(settings=settings, sink=sink, directory=directory))
    if settings.syslog_enabled:
        pipeline.services.append(SyslogReceiverService(settings=settings, sink=sink, directory=directory))

    def health() -> dict[str, object]:
        degraded = (
            publisher.degraded or not membership.claimed or directory.loaded_at is None and not directory.hostnames
        )
        return {
            "status": "degraded" if degraded else "ok",
            "role": "collector",
            "name": name,
            "group": settings.collector_group,
            "nats": "connected" if link.connected else "unreachable",
            "spooled": len(spool),
            "spool_dropped": spool.dropped,
            "devices": len(directory.hostnames),
            "members": sorted(membership.members),
            "polled_devices": len(poller.devices),
        }

    app = FastAPI(title="faultloop collector", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return health()

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from faultloop.metrics import REGISTRY

        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return CollectorProcess(pipeline=pipeline, app=app, health=health)


async def run_collector(settings: Settings, *, announce: Callable[[], None] | None = None) -> None:
    """Start the collector's pipeline, then serve its /healthz and /metrics until stopped."""
    process = build_collector(settings)
    await process.pipeline.start()
    try:
        await serve_http(
            process.app, host=settings.host, port=settings.port, log_level=settings.log_level, announce=announce
        )
    finally:
        await process.pipeline.stop()


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
    await server.serve()


async def run_service(rt: Runtime, *, announce: Callable[[], None] | None = None) -> None:
    """Start the pipeline, then serve HTTP until stopped; stop everything on the way out.

    The services start before the HTTP server so that a taken trap port or a similar
    start-up failure ends the process with one clear message (StartupError)."""
    # `kill -USR1 <pid>`: every thread's stack to stderr (what is it doing, why won't it stop?)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    pipeline = build_pipeline(rt)
    await pipeline.start()
    try:
        settings = rt.settings
        app = create_app(rt, pipeline, own_pipeline=False)
        await serve_http(
            app, host=settings.host, port=settings.port, log_level=settings.log_level, announce=announce,
            closing=ALARM_STREAM.end_all,
        )  # fmt: skip
    finally:
        await pipeline.stop()
