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
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from alarms import service as alarm_service
from alarms.bus import AlarmBus
from alarms.fanout import StreamFanout
from alarms.impact import ServiceFootprint, ServiceSource
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
from collectors.remote_ssh import RemoteBackupError, RemoteSshWork, SshIntake, remote_backup_now
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
    directory_cipher,
    served_by_collectors,
)
from faultloop.db import transaction
from faultloop.events import DurableSink, Event, ObservationSink, Service
from faultloop.leader import Leadership, cluster_id, leadership_for
from faultloop.metrics import metrics_token_ok
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
from inventory import queries as inventory_queries
from northbound import alarm as tmf_alarm
from northbound import hub
from northbound import order as tmf_order
from northbound import service as tmf_service
from northbound import ticket as tmf_ticket
from northbound.hub import HubDelivery
from northbound.itsm import ItsmSync
from provisioning import queries as service_inventory
from provisioning import service as provisioning_service
from provisioning.executor import ExecutionOutcome, execute_order
from provisioning.jobs import ProvisioningService
from provisioning.render import CatalogError, catalog, check_sla_classes
from provisioning.unplanned import UnplannedChangeSink, explained_by_order, unplanned_event
from provisioning.verify import ServiceVerifier
from ticketing import service as ticket_service
from ticketing.jobs import TicketingService
from ticketing.notify import TicketNotifier
from ticketing.notify import load_config as load_ticket_notify_config
from ticketing.policy import Policy, load_policy

log = logging.getLogger("faultloop")

GRACEFUL_SHUTDOWN_S = 10  # how long a stopping server lets running requests finish


@dataclass
class Pipeline:
    """Every background service of one faultloop process, in start order, and the handles the
    API is given to them (None: the API does the work in the request, ``api.services.one_shot``)."""

    services: list[Service] = field(default_factory=list)
    handles: ServiceHandles | None = None
    # who runs the singleton loops here (None: a pipeline without them, e.g. a collector)
    leadership: Leadership | None = None

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
    """The flow of one faultloop process, for its role (``FAULTLOOP_ROLE``), wired here and only here.

    collectors --(faultloop.events.ObservationSink)--> alarms --(after commit)--> ticketing,
    notifications, live stream, metrics; provisioning and config backups report to the same sink.
    ``sink`` replaces the alarm engine as the collectors' intake (tests pass a recorder).
    Role ``all`` runs everything; ``central`` everything but the collectors; ``collector`` is
    built by ``build_collector`` (no database) and run by ``run_collector``.
    """
    settings = rt.settings
    if settings.role == "collector":  # no database: faultloop serve runs it through run_collector
        raise StartupError("FAULTLOOP_ROLE: collector runs without a database (run_collector), not in build_pipeline")
    pipeline = Pipeline()
    # Leader election first (started first, stopped last): the singleton loops below (alarm engine
    # rounds, ticket timers, notifier, provisioning tick) run only while this instance leads, their
    # writes fenced. SQLite: one process, always the leader.
    leadership = leadership_for(rt.engine, lease_s=settings.leader_lease_s)
    pipeline.leadership = leadership
    pipeline.services.append(leadership)
    # Alarm engine (started before its producers, stopped after them): the collectors' sink unless
    # one is given. Its bus publishes alarm changes after each commit; ticketing, notifications and
    # the live stream subscribe here with alarm_bus.subscribe(name, callback).
    alarm_bus = AlarmBus()
    # The ticket policy and the service catalog agree on the SLA classes before anything starts.
    policy = load_policy(settings.ticket_policy_file)
    sla_classes = service_sla_classes(settings, policy)
    engine: AlarmEngine | None = None
    if sink is None:
        # customer service impact: the engine reads provisioning's service inventory through this callable
        engine = AlarmEngine(rt, alarm_bus, leadership=leadership, services=service_source(sla_classes))
        pipeline.services.append(engine)
        sink = engine
    # SSH sink: a config_changed that no service order explains is followed by an unplanned_change event.
    ssh_sink = UnplannedChangeSink(sink, rt.sessions, grace_s=settings.provisioning_window_grace_s)
    pipeline.services += central_intake(rt, sink, ssh_sink=ssh_sink, leadership=leadership)
    # Live stream for the dashboard: GET /api/v1/alarms/stream (server-sent events); with a broker,
    # fanned out to the dashboards of every instance (only the leader's engine publishes changes).
    alarm_bus.subscribe("live stream", ALARM_STREAM.publish)
    if settings.nats_url:
        fanout = StreamFanout(settings.nats_url, ALARM_STREAM, cluster=lambda: cluster_id(rt.engine))
        alarm_bus.subscribe("live stream fan-out", fanout.publish)
        pipeline.services.append(fanout)
    # Notifications: webhook / e-mail per the routes file, from an outbox (at-least-once): the engine
    # writes the rows in the transaction of the change; the bus only wakes the delivery.
    if settings.alarm_notify_file is not None:
        notifier = Notifier(rt, load_notify_config(settings.alarm_notify_file), leadership=leadership)
        if engine is not None:
            engine.add_outbox("notifications", notifier.enqueue)
        alarm_bus.subscribe("notifications", notifier.on_alarm_changes)
        pipeline.services.append(notifier)
    # TM Forum hub (TMF642 events): the engine's changes and the operators' alarm actions (REST and
    # TMF routes alike, through alarms.service.OUTBOX) write one outbox row per matching subscription
    # in the transaction of the change; the leader delivers them, woken after such a commit.
    hub_delivery = HubDelivery(rt.sessions, settings, leadership=leadership)
    if engine is not None:
        engine.add_outbox("tmf-hub", tmf_alarm.engine_outbox(hub_delivery.wake))
    pipeline.services.append(Hook(alarm_service.OUTBOX, "tmf-hub", tmf_alarm.operator_outbox(hub_delivery.wake)))
    pipeline.services.append(hub_delivery)
    # Ticketing: alarm changes (after commit) -> tickets opened, children attached, verify/reopen, SLA timers.
    # A resolved ticket that affected customer services is verified only when they pass their catalog
    # checks again: provisioning's verifier reads the devices (SSH, SNMP) as activation does.
    tickets = TicketingService(rt, policy=policy, leadership=leadership, service_checker=ServiceVerifier(rt, sink=sink))
    alarm_bus.subscribe("ticketing", tickets.on_alarm_changes)
    pipeline.services.append(tickets)
    # Ticket notifications: the file's ticket_routes and each technician's own address; the rows are
    # written in the ticket's transaction (ticketing.service.OUTBOX, hooked at start), sent by the leader.
    ticket_notify = load_ticket_notify_config(settings.alarm_notify_file)
    pipeline.services.append(TicketNotifier(rt, ticket_notify, leadership=leadership))
    # TMF621 hub events: every ticket change writes them in its own transaction (northbound/ticket.py)
    pipeline.services.append(Hook(ticket_service.CHANGES, "tmf-hub", tmf_ticket.on_ticket_change,
                                  wake=hub_delivery.wake))  # fmt: skip
    pipeline.services.append(Hook(ticket_service.OUTBOX, "tmf-hub", tmf_ticket.on_ticket_outbox,
                                  wake=hub_delivery.wake))  # fmt: skip
    # Two-way ITSM sync (FAULTLOOP_ITSM_URL): ticket and alarm changes of the tickets the service desk owns
    # go to its TMF621 API from an outbox written in the change's transaction, sent by the leader.
    try:
        itsm = ItsmSync(rt.sessions, settings, leadership=leadership)
    except ValueError as exc:  # names what is wrong with the URL, never the token
        raise StartupError(f"FAULTLOOP_ITSM_URL: {exc}") from None
    if itsm.enabled:
        pipeline.services.append(Hook(ticket_service.CHANGES, "itsm", itsm.on_ticket_change))
        if engine is not None:
            engine.add_outbox("itsm", itsm.on_alarm_changes)
        pipeline.services.append(itsm)
    poller = add_collectors(pipeline, rt, sink=sink, ssh_sink=ssh_sink) if settings.role == "all" else None
    # Provisioning: approved orders run when their change window opens (pushes report to the sink).
    # The catalog is loaded now: a bad catalog folder stops the start (CatalogError), not an order.
    catalog(settings.provisioning_catalog_dir)
    pipeline.services.append(ProvisioningService(rt, sink=sink, leadership=leadership))
    # TMF641/638 hub events: written in the transaction of each order / service change
    pipeline.services.append(Hook(provisioning_service.ORDER_OUTBOX, "tmf-hub", tmf_order.on_order_change,
                                  wake=hub_delivery.wake))  # fmt: skip
    pipeline.services.append(Hook(provisioning_service.SERVICE_OUTBOX, "tmf-hub", tmf_service.on_service_change,
                                  wake=hub_delivery.wake))  # fmt: skip
    # The API's handles: on-demand work reports exactly where the scheduled work does.
    remote_ssh = next((s for s in pipeline.services if isinstance(s, SshIntake)), None)
    pipeline.handles = service_handles(rt, poller=poller, sink=sink, backup_sink=ssh_sink, remote_ssh=remote_ssh)
    return pipeline


class Hook:
    """A hook registered in a domain's registry (``alarms.service.OUTBOX``, ``ticketing.service.CHANGES``,
    ``provisioning.service.ORDER_OUTBOX``, ...) while the pipeline runs, and removed when it stops: a
    domain's change then writes the hook's rows (hub events, sync messages) in its own transaction.
    With ``wake``: run after the commit of a transaction in which the hook wrote hub events."""

    def __init__(self, registry: dict[str, Any], key: str, fn: Callable[..., None], *,
                 wake: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.registry = registry
        self.key = key
        self.name = f"hook {key}"
        if wake is None:
            self.write = fn
        else:
            def write(session: Session, *args: Any) -> None:
                fn(session, *args)
                hub.wake_after_commit(session, wake)

            self.write = write

    async def start(self) -> None:
        self.registry[self.key] = self.write

    async def stop(self) -> None:
        if self.registry.get(self.key) is self.write:
            del self.registry[self.key]


def service_sla_classes(settings: Settings, policy: Policy) -> dict[str, str | None]:
    """Service type -> SLA class of the catalog; a class the ticket policy does not define is a
    StartupError naming the schema file, the service type and the field."""
    try:
        types = catalog(settings.provisioning_catalog_dir)
        check_sla_classes(types, policy.sla_classes)
    except CatalogError as exc:
        raise StartupError(str(exc)) from None
    return {name: st.sla_class for name, st in types.items()}


def service_source(sla_classes: dict[str, str | None]) -> ServiceSource:
    """The alarm engine's view of the customer services: provisioning's footprints, read in its session."""

    def footprints(session: Session) -> list[ServiceFootprint]:
        return list(service_inventory.footprints(session, sla_classes=sla_classes))

    return footprints


def add_collectors(
    pipeline: Pipeline, rt: Runtime, *, sink: ObservationSink, ssh_sink: ObservationSink
) -> PollerService:
    """The collectors of role ``all``: poller, trap and syslog receivers, SSH collection and backups."""
    settings = rt.settings
    # SNMP poller: every inventory device with SNMP settings, on its interval; findings go to the sink.
    # its series carry the collector label like a collector's (FAULTLOOP_COLLECTOR_NAME, else the host)
    poller = PollerService(rt, sink, collector=collector_name(settings))
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
            pipeline.services.append(
                TrapReceiverService(settings=settings, sink=sink, directory=directory, sessions=rt.sessions)
            )
        if settings.syslog_enabled:
            pipeline.services.append(SyslogReceiverService(settings=settings, sink=sink, directory=directory))
    # SSH: scheduled show commands and config backups; config_changed / host_key_changed go to the sink.
    # Not for the devices of groups whose collectors do it (served_by_collectors).
    pipeline.services.append(CliCollectorService(rt, sink=ssh_sink, remote_group=served_by_collectors(settings)))
    return poller


def unplanned_checked(sink: DurableSink, *, grace_s: float) -> Callable[[Session, list[Event]], None]:
    """``sink.store_events`` with what ``UnplannedChangeSink`` adds: an ``unplanned_change`` after
    each ``config_changed`` that no service order explains, read in the same transaction."""

    def store(session: Session, events: list[Event]) -> None:
        extra = [
            unplanned_event(e)
            for e in events
            if e.source == "backup" and e.event_type == "config_changed"
            and not explained_by_order(session, e.device, grace_s=grace_s)
        ]  # fmt: skip
        sink.store_events(session, [*events, *extra])

    return store


def central_intake(
    rt: Runtime, sink: ObservationSink, *, ssh_sink: ObservationSink | None = None,
    leadership: Leadership | None = None,
) -> list[Service]:  # fmt: skip
    """With FAULTLOOP_NATS_URL set: the link to NATS and the consumers that feed what collectors
    publish into ``sink`` (the alarm engine's durable queue; commit, then ack); with a collector
    key, the group directories and the collectors' SSH results (their events into ``ssh_sink``,
    default ``sink``). Empty: no broker."""
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
        link, CentralIntake(link, rt.sessions, sink, settings),
        ResultsIntake(link, rt.sessions, sink, settings, leadership=leadership),
    ]  # fmt: skip
    if settings.collector_key is not None:  # remote collectors learn their group's devices from here
        try:
            services.append(DirectoryPublisher(link, rt.sessions, settings, vault=rt.vault))
            cipher = directory_cipher(settings)
        except BrokerError as exc:
            raise StartupError(str(exc)) from None
        # config backups and show commands read by collectors, sealed with the vault here; their events
        # (config_changed, then unplanned_change when no order explains it; host_key_changed) go into the
        # engine's durable queue in the transaction that stores them
        services.append(SshIntake(
            link, rt.sessions, ssh_sink or sink, settings, vault=rt.vault, cipher=cipher,
            store_events=unplanned_checked(sink, grace_s=settings.provisioning_window_grace_s),
            events_stored=sink.events_stored,
        ))  # fmt: skip
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
    this member's share of the group's devices (rendezvous hashing over the live members), the SSH
    work backs up and collects the same share (``collectors.remote_ssh``), and they and the trap
    and syslog receivers publish through an on-disk spool, so an unreachable NATS or
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
    share = GroupShare(directory, membership)
    poller = RemotePoller(
        settings, collector_vault, publisher=publisher, sink=sink, share=share,
        last_result=last_result_reader(link, settings, settings.collector_group), collector=name,
    )  # fmt: skip
    membership.on_change(poller.sync)  # a member joining or expiring re-shares at once
    membership.on_settle(poller.settle)  # ... and says so once it let go of what it gave away
    # SSH: backups and show commands of the same share, results encrypted into the spool
    ssh_work = RemoteSshWork(
        settings, collector_vault, link=link, publisher=publisher, sink=sink, cipher=directory.cipher,
        devices=lambda: directory.ssh, owns=share.owns, collector=name,
    )  # fmt: skip
    # stopped in reverse: the last results leave the spool before the name is released
    pipeline = Pipeline([link, membership, publisher, directory, poller, ssh_work])
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
            # devices taken from a live member that never said it let go of them (README "Scaling out")
            "unconfirmed_handovers": poller.unconfirmed_handovers,
            "ssh_devices": len(ssh_work.mine()),
        }

    app = FastAPI(title="faultloop collector", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return health()

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        # a plain def: FastAPI runs it in a worker thread, so a scrape never holds the event loop
        from faultloop.metrics import CONTENT_TYPE, exposition

        # the same bearer token as central's /metrics (docker-compose's Prometheus sends it to both)
        if not metrics_token_ok(settings, request.headers.get("authorization", "")):
            detail = "metrics need Authorization: Bearer <FAULTLOOP_METRICS_TOKEN>"
            body = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": detail,
                    "instance": "/metrics"}  # fmt: skip
            return JSONResponse(body, status_code=401, media_type="application/problem+json")
        return Response(exposition(), media_type=CONTENT_TYPE)

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
    rt: Runtime, *, poller: PollerService | None, sink: ObservationSink, backup_sink: ObservationSink,
    remote_ssh: SshIntake | None = None,
) -> ServiceHandles:
    """The running services as the API sees them (``api.services``). Without a poller (role
    ``central``) a poll-now runs through a fresh engine in the request and no live rates exist.
    A backup-now of a device whose group collectors serve (``served_by_collectors``) is asked of
    the group's owning collector over NATS and waits until central stored what it read."""
    remote_group = served_by_collectors(rt.settings) if remote_ssh is not None else None

    async def poll(device_id: int) -> tuple[PollResult, DeviceTracker]:
        return await poll_now(rt, device_id, poller)

    def live_interfaces(device_id: int) -> dict[int, InterfaceState] | None:
        tracker = poller.trackers.get(device_id) if poller is not None else None
        return tracker.last.interfaces if tracker is not None and tracker.last is not None else None

    def backup(device_id: int, *, actor: str) -> BackupOutcome:
        if remote_ssh is not None and remote_group is not None:
            with transaction(rt.sessions) as session:
                device = inventory_queries.device(session, device_id)
            if device is not None and remote_group(device.collector_group):
                if remote_ssh.loop is None:
                    raise RemoteBackupError(f"device {device.hostname!r}: the link to the collectors is not started")
                return remote_backup_now(
                    remote_ssh.link, remote_ssh.loop, rt.sessions, rt.settings, device_id=device.id,
                    hostname=device.hostname, group=device.collector_group, actor=actor,
                    wait_s=rt.settings.ssh_timeout_s * 4 + 10,
                )  # fmt: skip
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

    return create_api(rt, lifespan=lifespan, services=pipeline.handles, node_status=lambda: node_status(rt, pipeline))


def node_status(rt: Runtime, pipeline: Pipeline) -> dict[str, object]:
    """/healthz: this instance's role and, where it runs singleton loops, its leadership."""
    status: dict[str, object] = {"role": rt.settings.role}
    if pipeline.leadership is not None:
        status.update(pipeline.leadership.status())
    return status


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

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn raises the stopping signal again once HTTP is down; asyncio.run's SIGINT
            # handler would then cancel the main task in the middle of the pipeline's orderly stop
            # (queues drained, spools closed). The signal has been acted on: HTTP stopped, the
            # caller stops the rest and the process exits 0.
            with super().capture_signals():
                yield
                self._captured_signals.clear()

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
