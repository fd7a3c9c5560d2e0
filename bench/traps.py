"""Trap ingest: SNMPv2c traps received and turned into ``Event``s per second, against
net-snmp's ``snmptrapd`` on the same flood, in the same run.

    python -m bench traps            (or: python -m bench.traps [--count N] [--rates 5000,10000,0])

A sender process blasts pre-encoded v2c linkDown traps (5 varbinds, like the lab's) from
200 loopback source addresses, paced at each offered rate (0 = as fast as it can).
faultloop's ``TrapReceiverService`` runs with its default queue and per-source rate
limits (each source stays below its token bucket, so every loss is a real loss) and
hands events to a counting sink; every source is in the device directory so each
event names a device and an interface. ``snmptrapd -f -C -c conf -F 'T\\n' -Lf FILE``
with ``disableAuthorization yes`` logs one line per trap it handled. Figures: traps
handled, loss, handled per second, CPU microseconds per trap, and (faultloop only) the
drops its own counters recorded, which should equal the loss. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from collectors.receiver import DeviceDirectory
from collectors.traps import TrapReceiverService
from faultloop.events import Event, Sample
from faultloop.settings import Settings

SOURCES = 200
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)


def source_addresses(base: int) -> list[str]:
    return [f"127.{base}.{i // 200}.{i % 200 + 1}" for i in range(SOURCES)]


def encode_trap(source: str, if_index: int, reqid: int) -> bytes:
    from snmpwire import ber

    def vb(oid: tuple[int, ...], value: bytes) -> bytes:
        return ber.enc_seq(ber.enc_oid(oid), value)

    vbs = ber.enc_seq(
        vb((1, 3, 6, 1, 2, 1, 1, 3, 0), ber.enc_uint(123456, ber.TIMETICKS)),
        vb((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), ber.enc_oid((1, 3, 6, 1, 6, 3, 1, 1, 5, 3))),
        vb(IF_ENTRY + (1, if_index), ber.enc_int(if_index)),
        vb(IF_ENTRY + (7, if_index), ber.enc_int(1)),
        vb(IF_ENTRY + (8, if_index), ber.enc_int(2)),
        vb((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, if_index), ber.enc_octets(f"GigabitEthernet0/{if_index}".encode())),
        vb((1, 3, 6, 1, 6, 3, 18, 1, 3, 0), ber.tlv(ber.IP_ADDRESS, socket.inet_aton(source))),
    )
    pdu = ber.tlv(ber.TRAP_V2, ber.enc_int(reqid) + ber.enc_int(0) + ber.enc_int(0) + vbs)
    return ber.enc_seq(ber.enc_int(1), ber.enc_octets(b"public"), pdu)


def send(host: str, port: int, rate: float, count: int, base: int) -> None:
    """The sender process: ``count`` traps round-robin over the sources, paced at ``rate``/s."""
    sources = source_addresses(base)
    socks = []
    for s in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((s, 0))
        socks.append(sock)
    packets = [encode_trap(s, 1 + i % 48, i + 1) for i, s in enumerate(sources)]
    target = (host, port)
    print("ready", flush=True)
    t0 = time.perf_counter()
    sent = 0
    while sent < count:
        due = count if rate <= 0 else min(count, int((time.perf_counter() - t0) * rate) + 1)
        if due <= sent:
            time.sleep(0.0002)
            continue
        while sent < due:
            i = sent % SOURCES
            try:
                socks[i].sendto(packets[i], target)
            except BlockingIOError:  # pragma: no cover - loopback send buffers rarely fill
                continue
            sent += 1
    print(f"{time.perf_counter() - t0:.4f}", flush=True)


def start_sender(host: str, port: int, rate: float, count: int, base: int) -> subprocess.Popen[str]:
    """Start the sender and return once it is about to send (its start-up is not measured)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.traps", "--send", host, str(port), str(rate), str(count), str(base)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("trap sender failed to start")
    return proc


class CountingSink:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.sample: Event | None = None

    def submit_events(self, events: Sequence[Event]) -> bool:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.count += len(events)
        self.last = now
        self.sample = events[-1]
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return True


async def run_faultloop(rate: float, count: int, base: int) -> dict[str, float]:
    host = f"127.{base - 1}.{random.randint(0, 250)}.{random.randint(2, 250)}"
    directory = DeviceDirectory(None)
    for i, s in enumerate(source_addresses(base)):
        directory.by_address[s] = f"dev{i}"
        for n in range(1, 49):
            directory.interfaces[(f"dev{i}", n)] = f"GigabitEthernet0/{n}"
    sink = CountingSink()
    with tempfile.TemporaryDirectory() as tmp:
        service = TrapReceiverService(
            settings=Settings(data_dir=Path(tmp), trap_host=host, trap_port=0), sink=sink, directory=directory
        )
        await service.start()
        port = service.receiver.address[1]
        sender = await asyncio.to_thread(start_sender, host, port, rate, count, base)
        cpu0 = _own_cpu_s()
        last_count, last_change = -1, time.perf_counter()
        while sink.count < count and time.perf_counter() - last_change < 1.0:
            await asyncio.sleep(0.01)
            if sink.count != last_count:
                last_count, last_change = sink.count, time.perf_counter()
        cpu = _own_cpu_s() - cpu0
        out, _ = await asyncio.to_thread(sender.communicate)
        await service.stop()
    assert sink.sample is not None and sink.sample.device.startswith("dev"), sink.sample
    assert sink.sample.managed_object.startswith("interface:GigabitEthernet0/"), sink.sample
    elapsed = sink.last - sink.first  # first to last event: the sender's start-up is not counted
    stats = service.receiver.stats
    return {
        "handled": sink.count,
        "elapsed": elapsed,
        "send_s": float(out.strip() or 0),
        "cpu_us": cpu / max(1, sink.count) * 1e6,
        # every loss should be accounted for by the receiver's own drop counters
        "counted_drops": sum(v for k, v in stats.items() if k.startswith("dropped:")),
    }


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_snmptrapd(rate: float, count: int, base: int, tmp: Path) -> dict[str, float]:
    host = f"127.{base - 1}.{random.randint(0, 250)}.{random.randint(2, 250)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    conf = tmp / "snmptrapd.conf"
    conf.write_text("disableAuthorization yes\n")
    log = tmp / f"trapd-{rate}.log"
    env = {"MIBS": "", "SNMP_PERSISTENT_DIR": str(tmp / "persist"), "PATH": os.environ.get("PATH", "")}
    cmd = ["snmptrapd", "-f", "-C", "-c", str(conf), "-On", "-F", "T\n", "-Lf", str(log), f"udp:{host}:{port}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.perf_counter() + 10
        while not (log.exists() and "NET-SNMP version" in log.read_text()):
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise RuntimeError("snmptrapd did not start")
            time.sleep(0.05)
        sender = start_sender(host, port, rate, count, base)
        cpu0 = _cpu_s(proc.pid)
        handled, first_time, last_change, last_time = 0, 0.0, time.perf_counter(), 0.0
        while time.perf_counter() - last_change < 1.0:
            time.sleep(0.005)
            n = log.read_bytes().split(b"\n").count(b"T")  # one "T" line per handled trap
            if n != handled:
                now = time.perf_counter()
                if not handled:
                    first_time = now
                handled, last_change, last_time = n, now, now
            if handled >= count:
                break
        cpu = _cpu_s(proc.pid) - cpu0
        out, _ = sender.communicate()
    finally:
        proc.terminate()
        proc.wait()
    return {
        "handled": handled,
        "elapsed": last_time - first_time if handled else 0.0,
        "send_s": float(out.strip() or 0),
        "cpu_us": cpu / max(1, handled) * 1e6,
    }


def _row(name: str, rate: float, count: int, r: dict[str, float]) -> str:
    loss = 100.0 * (count - r["handled"]) / count
    offered = "max" if rate <= 0 else f"{rate:,.0f}"
    per_s = r["handled"] / r["elapsed"] if r["elapsed"] > 0 else 0.0
    return (
        f"{name:<10} {offered:>8} {int(r['handled']):>8} {loss:>6.2f}% {per_s:>10,.0f} "
        f"{r['cpu_us']:>8.1f} {count / r['send_s'] if r['send_s'] else 0:>10,.0f} "
        f"{'' if 'counted_drops' not in r else int(r['counted_drops']):>8}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.traps")
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--rates", default="5000,10000,20000,40000,0", help="offered traps/s; 0 = unpaced")
    parser.add_argument("--send", nargs=5, metavar=("HOST", "PORT", "RATE", "COUNT", "BASE"))
    args = parser.parse_args(argv)
    if args.send:
        h, p, r, c, b = args.send
        send(h, int(p), float(r), int(c), int(b))
        return 0
    if shutil.which("snmptrapd") is None:
        print("snmptrapd not installed (apt-get install snmptrapd)", file=sys.stderr)
        return 1
    rates = [float(x) for x in args.rates.split(",")]
    base = random.randint(60, 250)
    print(f"{args.count:,} v2c linkDown traps per run from {SOURCES} sources; default faultloop rate limits")
    header = ("receiver", "offered", "handled", "loss", "handled/s", "cpu us", "sent/s", "counted")
    print(f"{header[0]:<10} " + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (8, 8, 7, 10, 8, 10, 8), strict=True)))
    results: dict[tuple[str, float], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            fl = asyncio.run(run_faultloop(rate, args.count, base))
            results[("faultloop", rate)] = fl
            print(_row("faultloop", rate, args.count, fl), flush=True)
            td = run_snmptrapd(rate, args.count, base, Path(tmp))
            results[("snmptrapd", rate)] = td
            print(_row("snmptrapd", rate, args.count, td), flush=True)

    def best_lossless(name: str) -> float:
        ok = [r for r in rates if r > 0 and results[(name, r)]["handled"] == args.count]
        return max(ok, default=0.0)

    fl_best, td_best = best_lossless("faultloop"), best_lossless("snmptrapd")
    print(f"highest zero-loss offered rate: faultloop {fl_best:,.0f}/s, snmptrapd {td_best:,.0f}/s", end="")
    print(f"; ratio {fl_best / td_best:.2f}" if td_best else "")
    parts = []
    for r in rates:
        ratio = results[("faultloop", r)]["handled"] / max(1, results[("snmptrapd", r)]["handled"])
        parts.append(f"{'max' if r <= 0 else f'{r:,.0f}'}: {ratio:.2f}")
    handled = ", ".join(parts)
    print(f"ratio of traps handled, faultloop / snmptrapd, per offered rate: {handled}")
    fl_cpu = sum(results[("faultloop", r)]["cpu_us"] for r in rates) / len(rates)
    td_cpu = sum(results[("snmptrapd", r)]["cpu_us"] for r in rates) / len(rates)
    if td_cpu:
        print(f"ratio of CPU per handled trap (mean over runs), faultloop / snmptrapd: {fl_cpu / td_cpu:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
