"""Scrape CPU of the poller's per-device series: prometheus_client vs the text rendered per device.

    python -m bench.metrics [--series 23000 100000] [--interfaces 24] [--scrapes 5]

In one run, for each series count: pollers' memory (``DeviceTracker`` with a last snapshot, 24
interfaces per device: 6 device series + 10 per interface) is exposed

1. the way it was before (the reference): a prometheus_client custom ``Collector`` building
   ``GaugeMetricFamily`` / ``CounterMetricFamily`` objects at every scrape, ``generate_latest``;
2. with ``collectors.exposition`` cold: every device rendered (a first scrape, or every device
   polled since the last scrape);
3. with ``collectors.exposition`` steady: a quarter of the devices polled since the last scrape
   (Prometheus every 15 s, devices every 60 s, the default interval).

Process CPU time per scrape (``time.process_time``), the median of ``--scrapes``, and the
reference's CPU divided by each: the speed-up. Both outputs are parsed with prometheus_client's
text parser and must hold the same samples.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from collectors import exposition
from collectors.snmp_poll import DeviceTracker, InterfaceState, Snapshot

COLLECTOR = "collector-a"


class ReferenceCollector(Collector):
    """The poller's metrics as prometheus_client objects (the code /metrics ran before)."""

    def __init__(self, trackers: dict[int, DeviceTracker]) -> None:
        self.trackers = trackers

    def collect(self) -> Iterator[Any]:
        dl_names = ["collector", "device", "site"]
        il = ["collector", "device", "interface", "site"]
        up = GaugeMetricFamily("faultloop_device_up", "1 when the device answered its last SNMP poll", labels=dl_names)
        cpu = GaugeMetricFamily("faultloop_device_cpu_percent", "Average hrProcessorLoad", labels=dl_names)
        mem = GaugeMetricFamily("faultloop_device_memory_percent", "RAM used (hrStorage)", labels=dl_names)
        dur = GaugeMetricFamily("faultloop_poll_duration_seconds", "Duration of the last poll", labels=dl_names)
        errs = CounterMetricFamily("faultloop_poll_errors", "Failed polls", labels=dl_names)
        invalid = CounterMetricFamily(
            "faultloop_poll_invalid_samples", "Rates dropped as above interface speed", labels=dl_names
        )
        in_bps = GaugeMetricFamily("faultloop_interface_in_bits_per_second", "Inbound rate", labels=il)
        out_bps = GaugeMetricFamily("faultloop_interface_out_bits_per_second", "Outbound rate", labels=il)
        in_oct = CounterMetricFamily("faultloop_interface_in_octets", "ifHCInOctets / ifInOctets", labels=il)
        out_oct = CounterMetricFamily("faultloop_interface_out_octets", "ifHCOutOctets / ifOutOctets", labels=il)
        in_err = CounterMetricFamily("faultloop_interface_in_errors", "ifInErrors", labels=il)
        out_err = CounterMetricFamily("faultloop_interface_out_errors", "ifOutErrors", labels=il)
        in_disc = CounterMetricFamily("faultloop_interface_in_discards", "ifInDiscards", labels=il)
        out_disc = CounterMetricFamily("faultloop_interface_out_discards", "ifOutDiscards", labels=il)
        speed = GaugeMetricFamily(
            "faultloop_interface_speed_bits_per_second", "Interface speed: ifHighSpeed x 10^6, else ifSpeed", labels=il
        )
        oper = GaugeMetricFamily("faultloop_interface_oper_up", "1 when ifOperStatus is up", labels=il)
        for tracker in list(self.trackers.values()):
            dl = [COLLECTOR, tracker.device, tracker.site]
            up.add_metric(dl, 1.0 if tracker.reachable else 0.0)
            dur.add_metric(dl, tracker.last_duration_s)
            errs.add_metric(dl, tracker.poll_errors)
            invalid.add_metric(dl, tracker.invalid_samples)
            snap = tracker.last
            assert snap is not None
            if snap.cpu_percent is not None:
                cpu.add_metric(dl, snap.cpu_percent)
            if snap.memory_percent is not None:
                mem.add_metric(dl, snap.memory_percent)
            for itf in snap.interfaces.values():
                labels = [COLLECTOR, tracker.device, itf.name, tracker.site]
                oper.add_metric(labels, 1.0 if itf.oper_status == "up" else 0.0)
                if itf.speed_bps:
                    speed.add_metric(labels, float(itf.speed_bps))
                for fam, value in (
                    (in_bps, itf.in_bps), (out_bps, itf.out_bps), (in_oct, itf.in_octets),
                    (out_oct, itf.out_octets), (in_err, itf.in_errors), (out_err, itf.out_errors),
                    (in_disc, itf.in_discards), (out_disc, itf.out_discards),
                ):  # fmt: skip
                    if value is not None:
                        fam.add_metric(labels, float(value))
        yield from (up, cpu, mem, dur, errs, invalid, in_bps, out_bps, in_oct, out_oct, in_err, out_err)
        yield from (in_disc, out_disc, speed, oper)

    def describe(self) -> Iterator[Any]:
        return iter(())


def fleet(devices: int, interfaces: int) -> dict[int, DeviceTracker]:
    trackers = {}
    for d in range(devices):
        snap = Snapshot(cpu_percent=float(d % 97), memory_percent=40.0 + d % 50)
        for i in range(1, interfaces + 1):
            snap.interfaces[i] = InterfaceState(
                if_index=i, name=f"GigabitEthernet0/{i}", oper_status="up" if i % 5 else "down",
                speed_bps=1_000_000_000, in_octets=123_456_789_012 + d * i, out_octets=98_765_432_109 + d * i,
                counter_bits=64, in_errors=i, out_errors=0, in_discards=d % 3, out_discards=0,
                in_bps=12_345.678 * i, out_bps=54_321.5 * i,
            )  # fmt: skip
        t = DeviceTracker(f"dev{d:05d}.site{d % 40}", site=f"site{d % 40}", reachable=True, last=snap)
        t.last_duration_s, t.observed = 0.0123, 1
        trackers[d] = t
    return trackers


def cpu_per_call(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def run(target: int, interfaces: int, rounds: int) -> None:
    per_device = 6 + 10 * interfaces
    devices = max(1, round(target / per_device))
    trackers = fleet(devices, interfaces)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReferenceCollector(trackers))

    def reference() -> bytes:
        return generate_latest(registry)

    def cold() -> bytes:  # encoded, as /metrics sends it
        return exposition.render([(exposition.SeriesCache(COLLECTOR), trackers)], None).encode()

    cache = exposition.SeriesCache(COLLECTOR)
    exposition.render([(cache, trackers)], None)
    ids = list(trackers)
    turn = [0]

    def steady() -> bytes:
        quarter = len(ids) // 4 or 1
        start = (turn[0] * quarter) % len(ids)
        for device_id in ids[start : start + quarter]:
            trackers[device_id].observed += 1  # polled since the last scrape: re-rendered
        turn[0] += 1
        return exposition.render([(cache, trackers)], None).encode()

    ref_text, new_text = reference().decode(), cold().decode()
    series = sum(1 for line in new_text.splitlines() if line and not line.startswith("#"))
    if samples(ref_text) != samples(new_text):
        raise SystemExit("bench.metrics: the two expositions differ")
    ref = cpu_per_call(reference, rounds)
    c = cpu_per_call(cold, rounds)
    s = cpu_per_call(steady, rounds)
    print(
        f"{series:>7,} series ({devices} devices x {interfaces} interfaces, {len(new_text) / 1e6:.1f} MB): "
        f"prometheus_client {ref * 1000:7.1f} ms CPU/scrape | text cold {c * 1000:6.1f} ms ({ref / c:5.1f}x less) "
        f"| text steady, 1/4 polled {s * 1000:6.1f} ms ({ref / s:5.1f}x less)",
        flush=True,
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.metrics")
    ap.add_argument("--series", type=int, nargs="+", default=[23_000, 100_000])
    ap.add_argument("--interfaces", type=int, default=24)
    ap.add_argument("--scrapes", type=int, default=5)
    args = ap.parse_args(argv)
    print("scrape CPU per /metrics of the poller's series (median of", args.scrapes, "scrapes, same run)")
    for target in args.series:
        run(target, args.interfaces, args.scrapes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
