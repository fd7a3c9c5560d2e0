"""The SNMP adapter and the poller against Debian's net-snmp snmpd (v1, v2c, v3 authPriv),
compared with what net-snmp's own snmpget / snmpbulkwalk read from the same agent."""

from __future__ import annotations

import shutil

import pytest

from collectors.snmp_poll import DeviceTracker, poll_device
from devices.snmp import SnmpConfigError, SnmpError, SnmpTarget, parse_oid
from faultloop import clock
from tests.collectors.snmpd import COMMUNITY, V3_AUTH, V3_PRIV, V3_USER, Snmpd

pytestmark = pytest.mark.skipif(
    shutil.which("snmpget") is None or shutil.which("/usr/sbin/snmpd") is None, reason="net-snmp not installed"
)

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_IN_OCTETS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)


def v2c(d: Snmpd, **kw) -> SnmpTarget:
    return SnmpTarget(d.host, d.port, "v2c", community=COMMUNITY, **kw)


def v3(d: Snmpd, **kw) -> SnmpTarget:
    return SnmpTarget(
        d.host,
        d.port,
        "v3",
        user=V3_USER,
        auth_protocol="SHA-256",
        auth_key=V3_AUTH,
        priv_protocol="AES-128",
        priv_key=V3_PRIV,
        **kw,
    )


def netsnmp_walk(d: Snmpd, root: str) -> dict[tuple[int, ...], str]:
    keys = d.tool("snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-Oq", "-On", f"{d.host}:{d.port}", root)
    result = {}
    for line in keys.splitlines():
        oid, _, value = line.partition(" ")
        result[parse_oid(oid)] = value.strip().strip('"')
    assert result, f"net-snmp saw nothing under {root}"
    return result


async def test_v2c_get_matches_snmpget(snmpd, snmp_client):
    got = await snmp_client.get(v2c(snmpd), [SYS_NAME, SYS_DESCR])
    expected_name = snmpd.tool(
        "snmpget", "-v2c", "-c", COMMUNITY, "-Oqv", f"{snmpd.host}:{snmpd.port}", ".1.3.6.1.2.1.1.5.0"
    )
    assert got[SYS_NAME] == b"fl-snmpd" == expected_name.strip().strip('"').encode()
    assert isinstance(got[SYS_DESCR], bytes) and got[SYS_DESCR]


async def test_v3_authpriv_sha256_aes_matches_v2c_and_netsnmp(snmpd, snmp_client):
    got3 = await snmp_client.get(v3(snmpd), [SYS_NAME])
    assert got3[SYS_NAME] == b"fl-snmpd"
    ours = await snmp_client.walk(v3(snmpd), [IF_DESCR])
    theirs = netsnmp_walk(snmpd, ".1.3.6.1.2.1.2.2.1.2")
    assert {oid: v.decode() for oid, v in ours.items()} == theirs


async def test_multi_column_walk_matches_snmpbulkwalk_per_column(snmpd, snmp_client):
    ours = await snmp_client.walk(v2c(snmpd), [IF_DESCR, (1, 3, 6, 1, 2, 1, 2, 2, 1, 3)], max_repetitions=7)
    descr = netsnmp_walk(snmpd, ".1.3.6.1.2.1.2.2.1.2")
    types = netsnmp_walk(snmpd, ".1.3.6.1.2.1.2.2.1.3")
    assert {o: v.decode() for o, v in ours.items() if o[:10] == IF_DESCR} == descr
    assert {o: str(v) for o, v in ours.items() if o[:10] != IF_DESCR} == types


async def test_v1_walk_ends_cleanly_on_nosuchname(snmpd, snmp_client):
    t = SnmpTarget(snmpd.host, snmpd.port, "v1", community=COMMUNITY)
    system = await snmp_client.walk(t, [(1, 3, 6, 1, 2, 1, 1)])
    assert system[SYS_NAME] == b"fl-snmpd"
    assert all(oid[:7] == (1, 3, 6, 1, 2, 1, 1) for oid in system)


async def test_whole_tree_walk_counts_the_same_varbinds_as_snmpbulkwalk(snmpd, snmp_client):
    ours = await snmp_client.walk(v2c(snmpd), [(1, 3, 6, 1)], max_repetitions=25)
    out = snmpd.tool("snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-Cr25", "-Oq", f"{snmpd.host}:{snmpd.port}", ".1.3.6.1")
    theirs = [line.split(" ", 1)[0] for line in out.splitlines() if line.startswith(".")]
    # counters move between the two walks; the set of OIDs must agree (a few dynamic rows may differ)
    missing = {parse_oid(o) for o in theirs} - set(ours)
    assert len(ours) > 1000
    assert len(missing) <= len(theirs) * 0.01, sorted(missing)[:5]


async def test_wrong_community_and_wrong_v3_key_time_out_as_errors(snmpd, snmp_client):
    with pytest.raises(SnmpError) as bad_community:
        await snmp_client.get(
            SnmpTarget(snmpd.host, snmpd.port, "v2c", community="wrong", timeout_s=0.3, retries=0), [SYS_NAME]
        )
    assert bad_community.value.timeout
    bad = SnmpTarget(
        snmpd.host,
        snmpd.port,
        "v3",
        user="nosuchuser",
        auth_protocol="SHA-256",
        auth_key="x" * 12,
        priv_protocol="AES-128",
        priv_key="y" * 12,
        timeout_s=0.5,
        retries=0,
    )
    with pytest.raises(SnmpError, match="(?i)unknown|timeout|auth"):
        await snmp_client.get(bad, [SYS_NAME])


async def test_weak_protocols_need_allow_weak(snmpd, snmp_client):
    weak = SnmpTarget(snmpd.host, snmpd.port, "v3", user=V3_USER, auth_protocol="MD5", auth_key=V3_AUTH)
    with pytest.raises(SnmpConfigError, match="MD5 is refused unless the device has snmp_allow_weak"):
        await snmp_client.get(weak, [SYS_NAME])
    des = SnmpTarget(
        snmpd.host,
        snmpd.port,
        "v3",
        user=V3_USER,
        auth_protocol="SHA",
        auth_key=V3_AUTH,
        priv_protocol="DES",
        priv_key=V3_PRIV,
    )
    with pytest.raises(SnmpConfigError, match="DES is refused"):
        await snmp_client.get(des, [SYS_NAME])


async def test_poll_device_reads_system_and_interfaces_like_snmpget(snmpd, snmp_client):
    result = await poll_device(snmp_client, "fl-snmpd", v3(snmpd), now=clock.now())
    assert result.ok, result.error
    snap = result.snapshot
    assert snap is not None and snap.sys_name == "fl-snmpd" and snap.sys_location == "loopback"
    descr = netsnmp_walk(snmpd, ".1.3.6.1.2.1.2.2.1.2")
    assert {(*IF_DESCR, i) for i in snap.interfaces} == set(descr)
    uptime = int(
        snmpd.tool(
            "snmpget", "-v2c", "-c", COMMUNITY, "-Ot", "-Oqv", f"{snmpd.host}:{snmpd.port}", ".1.3.6.1.2.1.1.3.0"
        )
    )
    assert snap.uptime_cs is not None and 0 <= uptime - snap.uptime_cs < 1000
    # net-snmp on Linux fills HOST-RESOURCES: memory and CPU come back as percentages
    assert snap.memory_percent is not None and 0 < snap.memory_percent <= 100
    tracker = DeviceTracker("fl-snmpd")
    tracker.observe(result, 0.0)
    assert tracker.reachable is True and result.events == []


# ---------------------------------------------------------------- hostile agents: walk caps


async def test_walk_stops_at_the_row_cap_and_says_so(snmpd, snmp_client):
    whole = await snmp_client.walk(v2c(snmpd), [(1, 3, 6, 1)], max_repetitions=25)
    assert len(whole) > 500 and whole.truncated == ""
    capped = await snmp_client.walk(v2c(snmpd), [(1, 3, 6, 1)], max_repetitions=25, max_rows=500)
    assert (len(capped), capped.truncated) == (500, "rows")
    assert set(capped) <= set(whole)  # what was read is kept
    t = SnmpTarget(snmpd.host, snmpd.port, "v1", community=COMMUNITY)
    v1 = await snmp_client.walk(t, [(1, 3, 6, 1, 2, 1, 1), (1, 3, 6, 1, 2, 1, 2)], max_rows=5)
    assert (len(v1), v1.truncated) == (5, "rows")


async def test_walk_stops_at_the_time_cap_however_fast_the_agent_answers(snmpd, snmp_client):
    """Each look at the clock moves it one second on (an agent that answers slowly, or forever,
    without the test waiting): a 5-second cap ends the walk after a few requests."""
    frozen = clock.FrozenClock()

    def ticking():
        frozen.advance(1.0)
        return frozen()

    with clock.use(ticking):
        capped = await snmp_client.walk(v2c(snmpd), [(1, 3, 6, 1)], max_repetitions=10, max_s=5)
    assert capped.truncated == "time"
    assert 0 < len(capped) <= 50  # at most 5 requests of 10 varbinds


async def test_truncated_poll_raises_one_warning_on_the_device_and_clears_on_a_whole_walk(snmpd, snmp_client):
    from faultloop.metrics import REGISTRY

    before = REGISTRY.get_sample_value("faultloop_poll_truncated_total", {"reason": "rows"}) or 0.0
    tracker = DeviceTracker("fl-snmpd")
    events = []
    for max_rows in (100, 100, None):
        now = clock.now()
        result = await poll_device(snmp_client, "fl-snmpd", v2c(snmpd), now=now, max_rows=max_rows)
        assert result.ok and result.truncated == ("rows" if max_rows else "")
        tracker.observe(result, now.timestamp())
        events += [(e.event_type, e.severity) for e in result.events if e.event_type == "poll_truncated"]
    assert events == [("poll_truncated", "warning"), ("poll_truncated", "warning"), ("poll_truncated", "cleared")]
    assert tracker.truncated_polls == 2
    assert REGISTRY.get_sample_value("faultloop_poll_truncated_total", {"reason": "rows"}) == before + 2


def test_walk_cap_settings_are_bounded_and_named():
    from faultloop.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=r"FAULTLOOP_POLL_MAX_ROWS \(poll_max_rows\)"):
        load_settings(poll_max_rows=10)
    with pytest.raises(SettingsError, match=r"FAULTLOOP_POLL_MAX_WALK_S \(poll_max_walk_s\)"):
        load_settings(poll_max_walk_s=0)
