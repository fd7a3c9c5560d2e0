"""The poller's series rendered as text (collectors/exposition.py): parsed by prometheus_client's
parser and promtool, hostile names escaped, devices re-rendered only when polled again."""

from __future__ import annotations

import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from collectors import exposition
from collectors.snmp_poll import DeviceTracker, InterfaceState, Snapshot
from faultloop.metrics import exposition as whole_exposition

# promtool's lint findings the series names have on purpose: the interface rates are in bits/s, the unit
# operators read (the dashboards divide by the speed in bits/s)
ACCEPTED_LINT = 'use base unit "bytes" instead of "bits"'


def promtool_check_metrics(text: str) -> None:
    """``promtool check metrics`` (Debian's prometheus package) parses the exposition (exit 1 on a
    parse error) and lints it (exit 3: counter suffixes, HELP, ...): no error, no other finding."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/test-deps.sh installs it)"
    done = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    report = (done.stdout + done.stderr).decode()
    findings = [line for line in report.splitlines() if line.strip() and not line.endswith(ACCEPTED_LINT)]
    assert done.returncode in (0, 3) and not findings, report


def tracker(name: str, site: str = "par1", *, interfaces: int = 2, reachable: bool = True) -> DeviceTracker:
    snap = Snapshot(cpu_percent=12.5, memory_percent=40.0)
    for i in range(1, interfaces + 1):
        snap.interfaces[i] = InterfaceState(
            if_index=i, name=f"Gi0/{i}", oper_status="up" if i % 2 else "down", speed_bps=10**9,
            in_octets=2**63 + i, out_octets=i, in_errors=1, out_errors=0, in_discards=2, out_discards=0,
            in_bps=1234.5 * i, out_bps=None,
        )  # fmt: skip
    t = DeviceTracker(name, site=site, reachable=reachable, last=snap)
    t.last_duration_s, t.poll_errors = 0.25, 3
    return t


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_the_exposition_parses_and_carries_every_series_with_the_collector_label():
    trackers = {1: tracker("core1"), 2: tracker("down1", reachable=False), 3: DeviceTracker("never")}
    text = exposition.render([(exposition.SeriesCache("c1"), trackers)], (7.0, 2.0))
    promtool_check_metrics(text)
    fams = families(text)
    assert {s.labels["device"]: s.value for s in fams["faultloop_device_up"]} == {"core1": 1.0, "down1": 0.0}
    assert {s.labels["collector"] for name, samples in fams.items() for s in samples if "device" in s.labels} == {
        "c1"
    }
    octets = {s.labels["interface"]: s.value for s in fams["faultloop_interface_in_octets"]}
    assert octets == {"Gi0/1": float(2**63 + 1), "Gi0/2": float(2**63 + 2)}
    assert fams["faultloop_interface_in_octets"][0].name == "faultloop_interface_in_octets_total"
    assert {s.labels["interface"] for s in fams["faultloop_interface_in_bits_per_second"]} == {"Gi0/1", "Gi0/2"}
    assert fams["faultloop_interface_out_bits_per_second"] == []  # no rate yet: no series
    assert [s.value for s in fams["faultloop_poll_errors"] if s.labels["device"] == "down1"] == [3.0]
    assert "faultloop_device_cpu_percent" in fams and len(fams["faultloop_device_cpu_percent"]) == 1  # not down1
    assert fams["faultloop_snmp_dropped_datagrams"][0].value == 7.0
    assert fams["faultloop_poll_coalesced"][0].value == 2.0


def test_device_supplied_names_are_escaped_and_read_back_unchanged():
    hostile = 'r1"} evil_metric 1\n# x \\'
    t = tracker(hostile, site='s"\\\n')
    t.last.interfaces[1].name = 'eth"0\\\n1'  # type: ignore[union-attr]
    text = exposition.render([(exposition.SeriesCache('col"\\'), {1: t})], None)
    promtool_check_metrics(text)
    fams = families(text)
    assert "evil_metric" not in fams
    (up,) = fams["faultloop_device_up"]
    assert up.labels == {"collector": 'col"\\', "device": hostile, "site": 's"\\\n'}
    assert {s.labels["interface"] for s in fams["faultloop_interface_oper_up"]} == {'eth"0\\\n1', "Gi0/2"}


def test_only_devices_polled_since_the_last_scrape_are_rendered_again():
    trackers = {i: tracker(f"d{i}") for i in range(10)}
    cache = exposition.SeriesCache("c1")
    first = exposition.render([(cache, trackers)], None)
    assert cache.rendered == 10
    assert exposition.render([(cache, trackers)], None) == first and cache.rendered == 10
    trackers[3].observed += 1  # polled
    trackers[3].last.interfaces[1].in_octets = 42  # type: ignore[union-attr]
    trackers[4] = tracker("d4-new")  # taken over: a new memory object
    trackers[5].site = "moved"
    del trackers[9]  # deleted or handed to another collector
    text = exposition.render([(cache, trackers)], None)
    assert cache.rendered == 13 and set(cache.devices) == set(range(9))
    fams = families(text)
    assert {s.labels["device"] for s in fams["faultloop_device_up"]} == {f"d{i}" for i in range(9) if i != 4} | {
        "d4-new"
    }
    assert [s.value for s in fams["faultloop_interface_in_octets"] if s.labels == {
        "collector": "c1", "device": "d3", "interface": "Gi0/1", "site": "par1"}] == [42.0]  # fmt: skip
    assert {s.labels["site"] for s in fams["faultloop_device_up"] if s.labels["device"] == "d5"} == {"moved"}


def test_a_poll_moves_the_tracker_so_its_series_are_rendered_again():
    from datetime import UTC, datetime

    from collectors.snmp_poll import PollResult

    t = DeviceTracker("r1", reachable=True)
    before = t.observed
    t.observe(PollResult("r1", False, datetime.now(UTC), 0.1, error="timeout", timeout=True), 0.0)
    assert t.observed == before + 1


def test_the_whole_exposition_has_no_family_twice():
    names = [f.name for f in text_string_to_metric_families(whole_exposition().decode())]
    assert len(names) == len(set(names)) and "faultloop_device_up" in names


def test_the_collector_s_metrics_want_the_metrics_token_when_one_is_set(tmp_path):
    from cryptography.fernet import Fernet
    from fastapi.testclient import TestClient

    from faultloop.cmd.app import build_collector
    from faultloop.settings import Settings

    settings = Settings(
        data_dir=tmp_path, nats_url="nats://127.0.0.1:4222", collector_key=Fernet.generate_key().decode(),
        collector_name="c9", metrics_token="s3cret-token-for-scrapes", trap_enabled=False, syslog_enabled=False,
    )  # fmt: skip
    process = build_collector(settings)  # not started: the route needs no broker
    client = TestClient(process.app)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token-for-scrapes"})
    assert ok.status_code == 200 and "faultloop_device_up" in ok.text
    promtool_check_metrics(ok.text)
