"""The poller's community socket under garbage and spoofed datagrams from a third party."""

from __future__ import annotations

import shutil
import socket

import pytest

from devices.snmp import SnmpClient, SnmpTarget, _CommunityProtocol
from snmpwire import ber, pdu
from tests.collectors.snmpd import COMMUNITY, start_snmpd

VALID = pdu.encode_community(
    1,
    b"pub",
    pdu.encode_pdu(
        ber.RESPONSE, 7, 0, 0, [pdu.varbind(ber.enc_oid((1, 3, 6, 1, 2, 1, 1, 5, 0)), ber.enc_octets(b"x" * 40))]
    ),
)


@pytest.mark.skipif(shutil.which("/usr/sbin/snmpd") is None, reason="net-snmp snmpd not installed")
async def test_garbage_and_spoofed_datagrams_are_dropped_and_counted_and_polling_goes_on():
    d = start_snmpd()
    client = SnmpClient()
    try:
        t = SnmpTarget(d.host, d.port, "v2c", community=COMMUNITY)
        assert (await client.get(t, [(1, 3, 6, 1, 2, 1, 1, 5, 0)]))[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"fl-snmpd"
        udp, _proto = client._sockets[_CommunityProtocol]
        port = udp.get_extra_info("socket").getsockname()[1]
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # garbage, a truncated packet, a response nobody asked for (unknown request id), a huge length
            for junk in (b"\x00" * 10, VALID[:-3], VALID, b"\x30\x84\xff\xff\xff\xff"):
                attacker.sendto(junk, ("127.0.0.1", port))
        finally:
            attacker.close()
        # loopback delivers in order: by the time this walk's answers are read, the junk was too
        walked = await client.walk(t, [(1, 3, 6, 1, 2, 1, 1)])
        assert walked[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"fl-snmpd"
        assert client.dropped_datagrams == 4
    finally:
        client.close()
        d.stop()
