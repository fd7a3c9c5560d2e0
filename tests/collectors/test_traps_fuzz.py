"""Malformed BER against the trap receiver: the listener survives, counts every bad
packet, and a valid trap sent afterwards still becomes an event."""

from __future__ import annotations

import asyncio
import random

from collectors.receiver import DeviceDirectory
from collectors.traps import TrapReceiverService
from faultloop.settings import Settings

from ..snmpwire.packets import VALID, malformed_corpus
from .receivers import CollectingSink, metric, random_loopback, udp_from


async def test_ten_thousand_malformed_packets_then_a_valid_trap(tmp_path):
    rng = random.Random(4242)
    corpus = malformed_corpus(rng, 10_000)
    settings = Settings(
        data_dir=tmp_path,
        trap_host=random_loopback(40),
        trap_port=0,
        receiver_rate_per_source=1e9,
        receiver_burst_per_source=10**9,
        receiver_queue_size=100_000,
    )
    sink = CollectingSink()
    service = TrapReceiverService(settings=settings, sink=sink, directory=DeviceDirectory(None))
    await service.start()
    rx = service.receiver
    before = metric("faultloop_traps_malformed_total")
    try:
        host, port = rx.address
        sent = 0
        with udp_from(random_loopback(41)) as s:
            for i in range(0, len(corpus), 500):
                for p in corpus[i : i + 500]:
                    s.sendto(p, (host, port))
                sent += len(corpus[i : i + 500])
                while rx.stats["datagrams"] < sent or rx._queue:  # pace: never overrun the socket buffer
                    await asyncio.sleep(0.005)
            s.sendto(VALID, (host, port))
            [event] = await sink.wait_for(lambda ev: len(ev) >= 1)
    finally:
        await service.stop()
    assert event.event_type == "linkDown"
    rejected = sum(v for k, v in rx.stats.items() if k.startswith("dropped:") and k != "dropped:malformed")
    assert rx.stats["datagrams"] == 10_001
    assert rx.stats["malformed"] + rejected == 10_000  # e.g. an unknown PDU tag is rejected, not malformed
    assert rx.stats["malformed"] >= 9_000
    assert metric("faultloop_traps_malformed_total") == before + rx.stats["malformed"]
    assert len(sink.events) == 1
