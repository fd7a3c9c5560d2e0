"""Malformed BER against the trap receiver: the listener survives, counts every bad
packet, and a valid trap sent afterwards still becomes an event."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.receiver import DeviceDirectory, Rejected
from collectors.traps import TrapReceiverService
from collectors.traps.ber import BerError
from collectors.traps.message import decode
from collectors.traps.usm import load_users
from faultloop.settings import Settings

from .receivers import CollectingSink, metric, random_loopback, udp_from
from .test_traps import USERS, _v2c_trap, _v3_message

VALID = _v2c_trap("1.3.6.1.6.3.1.1.5.3", "valid")


def _deep(depth: int) -> bytes:
    inner = b"\x05\x00"
    for _ in range(depth):
        inner = bytes((0x30,)) + _len(len(inner)) + inner
    return inner


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def malformed_corpus(rng: random.Random, n: int) -> list[bytes]:
    """Random bytes, truncations and bit flips of a valid trap, huge lengths, deep nesting."""
    out: list[bytes] = []
    kinds = ["random", "truncated", "huge", "deep", "flipped", "indefinite", "bad_oid"]
    while len(out) < n:
        kind = kinds[len(out) % len(kinds)]
        if kind == "random":
            p = rng.randbytes(rng.randint(0, 300))
        elif kind == "truncated":
            p = VALID[: rng.randint(0, len(VALID) - 1)]
        elif kind == "huge":
            p = b"\x30\x84" + rng.randbytes(4) + VALID[2:]
            if p == VALID:
                continue
        elif kind == "deep":
            p = _deep(rng.randint(20, 400))
        elif kind == "flipped":
            b = bytearray(VALID)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(2, len(b))] ^= 1 << rng.randrange(8)
            p = bytes(b)
            try:  # a flip can land in a value (e.g. the marker string) and stay valid
                decode(p)
                continue
            except (BerError, Rejected):
                pass
        elif kind == "indefinite":
            p = b"\x30\x80" + VALID[2:] + b"\x00\x00"
        else:
            p = VALID.replace(b"\x06\x08\x2b\x06\x01\x02\x01\x01\x03\x00", b"\x06\x08\x2b\x06\x81\x82\x83\x84\x85\x86")
            if p == VALID:
                p = b"\x30\x0b\x02\x01\x01\x04\x00\xa7\x04\x06\x02\x80\x80"
        out.append(p)
    return out


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


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "users.yaml"
    path.write_text(USERS)
    return load_users(path)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), cut=st.integers(min_value=0, max_value=200))
def test_decoder_only_raises_its_own_errors(data, cut, users):
    v3 = _v3_message(b"any-engine", bytes.fromhex("80000000aabbccdd01"), 0x01, b"\x00" * 12)
    for packet in (data, VALID[:cut] + data, v3[:cut] + data, v3[: len(v3) - cut % 20]):
        try:
            decode(packet, users=users)
        except (BerError, Rejected):
            pass
