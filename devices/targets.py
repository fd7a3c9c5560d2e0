"""SNMP targets built from a device's stored settings, secrets decrypted right before use."""

from __future__ import annotations

from typing import Protocol

from devices.snmp import SnmpTarget
from faultloop.vault import Vault


class SnmpSettings(Protocol):
    """A device's SNMP settings as stored (secrets still Fernet tokens): an
    ``inventory.queries.DeviceRecord``, or the poller's copy kept between inventory syncs."""

    @property
    def address(self) -> str: ...

    @property
    def snmp_version(self) -> str | None: ...

    @property
    def snmp_port(self) -> int: ...

    @property
    def snmp_community_enc(self) -> bytes | None: ...

    @property
    def snmp_user(self) -> str | None: ...

    @property
    def snmp_auth_protocol(self) -> str | None: ...

    @property
    def snmp_auth_key_enc(self) -> bytes | None: ...

    @property
    def snmp_priv_protocol(self) -> str | None: ...

    @property
    def snmp_priv_key_enc(self) -> bytes | None: ...

    @property
    def snmp_allow_weak(self) -> bool: ...


def snmp_target(device: SnmpSettings, vault: Vault, *, timeout_s: float, retries: int) -> SnmpTarget | None:
    """The SNMP target of ``device`` with secrets decrypted (None: the device has no SNMP
    settings); call right before the request and keep it only for that request."""
    if not device.snmp_version:
        return None

    def secret(token: bytes | None) -> str:
        return vault.decrypt(token) if token else ""

    return SnmpTarget(
        host=device.address,
        port=device.snmp_port,
        version=device.snmp_version,
        community=secret(device.snmp_community_enc),
        user=device.snmp_user or "",
        auth_protocol=device.snmp_auth_protocol,
        auth_key=secret(device.snmp_auth_key_enc),
        priv_protocol=device.snmp_priv_protocol,
        priv_key=secret(device.snmp_priv_key_enc),
        allow_weak=device.snmp_allow_weak,
        timeout_s=timeout_s,
        retries=retries,
    )
