"""kill -9 of the leading central during an event flood (issue 14, failure tests), with real
processes: two `faultloop serve --role central` on one scratch PostgreSQL database, one
`faultloop serve --role collector` receiving syslog, the real NATS server with JetStream between.

Every message the collector accepted ends as exactly one stored event, the other central leads
within 15 s, and there is one active alarm per key and one open ticket per root cause."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from alarms.models import EventRecord
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.vault import Vault
from inventory import service as inventory
from inventory.schemas import DeviceIn
from tests.faultloop.natslab import SHARED_URL, delete_streams, unique_prefix
from tests.faultloop.test_failover import FAILOVER_S, cluster_env, free_port, invariants, until
from tests.pgdb import needs_postgresql, scratch_database

pytestmark = [pytest.mark.slow, needs_postgresql]

FLOOD = 1200  # linkDown messages, each on its own interface: as many alarm keys
KILL_AFTER = 400  # the leader dies after this many have been sent
RATE = 400  # messages per second


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link_down(i: int) -> bytes:
    return f"<187>Mar  1 12:00:00 r1 %LINK-3-UPDOWN: Interface Gi{i // 48}/{i % 48}, changed state to down".encode()


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.fixture
def stream_prefix():
    import asyncio

    prefix = unique_prefix()
    yield prefix

    async def clean() -> None:
        import nats

        await delete_streams(SHARED_URL, prefix)
        nc = await nats.connect(SHARED_URL)
        js = nc.jetstream()
        for bucket in ("DIRECTORY", "MEMBERS"):
            try:
                await js.delete_key_value(f"{prefix}_{bucket}".upper())
            except Exception:
                pass  # the bucket was never made
        await nc.close()

    asyncio.run(clean())


def test_kill_9_of_the_leading_central_during_an_event_flood_loses_and_duplicates_nothing(tmp_path, stream_prefix):
    secret, collector_key, group = Fernet.generate_key().decode(), Fernet.generate_key().decode(), "flood"
    hostname = f"flood-{uuid.uuid4().hex[:6]}"
    with scratch_database() as url:
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:  # the sender's address is the device's: events attribute to it
            inventory.create_device(
                session, Vault([secret.encode()]),
                DeviceIn(hostname=hostname, address="127.0.0.1", role="access", collector_group=group), actor="test",
            )  # fmt: skip
        settings = {
            "FAULTLOOP_SECRET_KEY": secret, "FAULTLOOP_NATS_STREAM_PREFIX": stream_prefix,
            "FAULTLOOP_COLLECTOR_KEY": collector_key, "FAULTLOOP_TRAP_ENABLED": "false",
            "FAULTLOOP_SYSLOG_ENABLED": "false", "FAULTLOOP_RECEIVER_DIRECTORY_REFRESH_S": "0.5",
        }  # fmt: skip
        collector = None
        try:
            with cluster_env(url, sessions, tmp_path, **settings) as (start, _token):
                a, b = start("a"), start("b")
                a.wait_up(), b.wait_up()
                until(lambda: a.leading() != b.leading(), "exactly one of two centrals leads")
                leader, follower = (a, b) if a.leading() else (b, a)
                syslog_port, http_port = free_udp_port(), free_port()
                env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
                env.update(
                    FAULTLOOP_NATS_URL=SHARED_URL, FAULTLOOP_NATS_STREAM_PREFIX=stream_prefix,
                    FAULTLOOP_COLLECTOR_KEY=collector_key, FAULTLOOP_COLLECTOR_GROUP=group,
                    FAULTLOOP_COLLECTOR_NAME="site1", FAULTLOOP_COLLECTOR_HEARTBEAT_S="0.5",
                    FAULTLOOP_DATA_DIR=str(tmp_path / "collector"), FAULTLOOP_PORT=str(http_port),
                    FAULTLOOP_TRAP_ENABLED="false", FAULTLOOP_SYSLOG_PORT=str(syslog_port),
                    FAULTLOOP_RECEIVER_RATE_PER_SOURCE="100000", FAULTLOOP_RECEIVER_BURST_PER_SOURCE="100000",
                    FAULTLOOP_RECEIVER_DIRECTORY_REFRESH_S="0.5", FAULTLOOP_CONFIG=str(tmp_path / "none.toml"),
                    FAULTLOOP_LOG_LEVEL="WARNING",
                )  # fmt: skip
                log = (tmp_path / "collector.log").open("w")
                collector = subprocess.Popen(
                    [sys.executable, "-m", "faultloop.cmd", "serve", "--role", "collector"],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                base = f"http://127.0.0.1:{http_port}"

                def collector_knows_the_device() -> bool:
                    assert collector is not None and collector.poll() is None, (tmp_path / "collector.log").read_text()
                    try:
                        health = httpx.get(f"{base}/healthz", timeout=2).json()
                    except httpx.TransportError:
                        return False
                    return health.get("status") == "ok" and health.get("devices") == 1

                until(collector_knows_the_device, "the collector up with its group's device", 90)

                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                    started = time.monotonic()
                    for i in range(FLOOD):
                        if i == KILL_AFTER:  # mid-flood: the leader dies without a goodbye
                            leader.proc.kill()
                            killed = time.monotonic()
                        sender.sendto(link_down(i), ("127.0.0.1", syslog_port))
                        time.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
                leader.proc.wait()
                until(follower.leading, "the follower leads after kill -9 of the leader", FAILOVER_S)
                print(f"\nfailover after kill -9 mid-flood: {time.monotonic() - killed:.1f} s")

                def accepted() -> float:
                    return metric(base, "faultloop_syslog_received_total")

                until(lambda: accepted() >= FLOOD * 0.95, "the collector accepted (nearly) the whole flood", 30)

                def stored() -> int:
                    with sessions() as session:
                        return int(session.scalar(
                            select(func.count()).select_from(EventRecord).where(EventRecord.device == hostname)
                        ) or 0)  # fmt: skip

                until(lambda: stored() >= accepted(), "every accepted message stored at central", 120)
                n = int(accepted())
                time.sleep(2)  # anything redelivered after the failover would be stored by now
                assert stored() == n, (stored(), n)  # exactly once: nothing lost, nothing stored twice
                with sessions() as session:
                    objects = session.scalars(
                        select(EventRecord.managed_object).where(EventRecord.device == hostname)
                    ).all()
                assert len(set(objects)) == n
                # the new leader's engine: one active alarm per key, one open ticket per root cause
                until(lambda: invariants(sessions)[0] == n and invariants(sessions)[2] == 0,
                      "every event processed into one alarm per key", 180)  # fmt: skip
                until(lambda: invariants(sessions)[1] >= 1, "tickets opened by the new leader", 60)
                invariants(sessions)
        finally:
            if collector is not None and collector.poll() is None:
                collector.send_signal(signal.SIGTERM)
                try:
                    collector.wait(30)
                except subprocess.TimeoutExpired:
                    collector.kill()
            engine.dispose()
    out = (tmp_path / "collector.log").read_text()
    assert "Traceback" not in out, out
