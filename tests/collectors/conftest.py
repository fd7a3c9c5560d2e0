"""Fixtures of the collector tests: Debian's snmpd as a real peer, and the poller's SNMP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devices.snmp import SnmpClient
from tests.collectors.snmpd import Snmpd, start_snmpd


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Snmpd]:
    """One net-snmp snmpd per test module, on a random loopback address and port."""
    d = start_snmpd()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
async def snmp_client() -> AsyncIterator[SnmpClient]:
    c = SnmpClient()
    try:
        yield c
    finally:
        c.close()
