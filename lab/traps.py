"""Notifications from lab devices: linkDown/linkUp, coldStart, authenticationFailure.

Sent as SNMPv2c traps (community ``public``) or, optionally, SNMPv3 authPriv traps
(user ``labv3``, the device's engine ID authoritative, as RFC 3414 requires for
unacknowledged notifications). A trap leaves from the device's own address and SNMP
port (through its agent's socket), so a receiver attributes it to the right device.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab import usm
from lab.mib import IF_ENTRY, IFX_ENTRY
from lab.model import Clock, LabDevice, LabInterface
from lab.snmp_agent import LAB_COMMUNITY
from snmpwire import ber
from snmpwire import v3 as snmpv3
from snmpwire.ber import enc_octets, enc_oid, enc_seq
from snmpwire.pdu import encode_community, encode_pdu, varbind
from snmpwire.usm import UsmUser

log = logging.getLogger(__name__)

SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS_0 = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
COLD_START = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
AUTHENTICATION_FAILURE = (1, 3, 6, 1, 6, 3, 1, 1, 5, 5)

Varbinds = list[tuple[tuple[int, ...], tuple[int, Any]]]
# sends bytes from the device's own agent socket; False when the agent is not bound
DeviceSender = Callable[[LabDevice, bytes, tuple[str, int]], bool]


@dataclass
class TrapStats:
    sent: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    send_errors: int = 0


class TrapSender:
    def __init__(
        self,
        receivers: list[tuple[str, int]] | tuple = (),
        *,
        now: Clock,
        community: str = LAB_COMMUNITY,
        version: str = "v2c",
        user: UsmUser | None = None,
        device_sender: DeviceSender | None = None,
    ) -> None:
        if version not in ("v2c", "v3"):
            raise ValueError(f"trap version: expected v2c or v3, got {version!r}")
        self.receivers = list(receivers)
        self.now = now
        self.community = community.encode()
        self.version = version
        self.user = user or usm.lab_user()
        self.device_sender = device_sender
        self.stats = TrapStats()
        self._ids = itertools.count(1)
        self._fallback: socket.socket | None = None

    # ------------------------------------------------------------ high level
    def link_change(self, device: LabDevice, itf: LabInterface) -> None:
        n = itf.if_index
        self.send(
            device,
            LINK_UP if itf.oper_up else LINK_DOWN,
            [
                (IF_ENTRY + (1, n), (ber.INTEGER, n)),
                (IF_ENTRY + (7, n), (ber.INTEGER, 1 if itf.admin_up else 2)),
                (IF_ENTRY + (8, n), (ber.INTEGER, 1 if itf.oper_up else 2)),
                (IFX_ENTRY + (1, n), (ber.OCTET_STRING, itf.name)),
            ],
        )

    def cold_start(self, device: LabDevice) -> None:
        self.send(device, COLD_START, [])

    def auth_failure(self, device: LabDevice) -> None:
        self.send(device, AUTHENTICATION_FAILURE, [])

    # ------------------------------------------------------------ encoding
    def encode(self, device: LabDevice, trap_oid: tuple[int, ...], varbinds: Varbinds) -> bytes:
        uptime = max(0, int((self.now() - device.boot_time) * 100))
        vbs = [
            varbind(enc_oid(SYS_UPTIME_0), ber.enc_value(ber.TIMETICKS, uptime)),
            varbind(enc_oid(SNMP_TRAP_OID_0), enc_oid(trap_oid)),
        ]
        vbs += [varbind(enc_oid(oid), ber.enc_value(*val)) for oid, val in varbinds]
        vbs.append(varbind(enc_oid(SNMP_TRAP_ADDRESS_0), ber.enc_value(ber.IP_ADDRESS, _ip(device.address))))
        reqid = next(self._ids) & 0x7FFFFFFF
        pdu = encode_pdu(ber.TRAP_V2, reqid, 0, 0, vbs)
        if self.version == "v2c":
            return encode_community(1, self.community, pdu)
        engine_id = usm.engine_id_for(device.name)
        auth_key, priv_key = self.user.keys(engine_id)
        scoped = enc_seq(enc_octets(engine_id), enc_octets(b""), pdu)
        return snmpv3.encode(
            msg_id=reqid,
            user=self.user.name.encode(),
            scoped=scoped,
            engine_id=engine_id,
            boots=device.engine_boots,
            etime=max(0, int(self.now() - device.boot_time)),
            auth=(usm.AUTH_PROTOCOL, auth_key),
            priv_key=priv_key,
        )

    def send(self, device: LabDevice, trap_oid: tuple[int, ...], varbinds: Varbinds) -> int:
        """Send one notification to every receiver; returns how many were sent."""
        if not self.receivers or device.crashed:
            return 0
        data = self.encode(device, trap_oid, varbinds)
        sent = 0
        for addr in self.receivers:
            try:
                if self.device_sender is None or not self.device_sender(device, data, addr):
                    self._fallback_socket().sendto(data, addr)
                sent += 1
            except OSError as exc:
                self.stats.send_errors += 1
                log.warning("trap from %s to %s:%s failed: %s", device.name, addr[0], addr[1], exc)
        names: dict[tuple[int, ...], str] = {LINK_DOWN: "linkDown", LINK_UP: "linkUp", COLD_START: "coldStart"}
        name = names.get(
            trap_oid,
            "authenticationFailure" if trap_oid == AUTHENTICATION_FAILURE else ".".join(map(str, trap_oid)),
        )
        self.stats.sent += sent
        self.stats.by_type[name] = self.stats.by_type.get(name, 0) + sent
        return sent

    def _fallback_socket(self) -> socket.socket:
        if self._fallback is None:
            self._fallback = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._fallback.setblocking(False)
        return self._fallback

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None


def _ip(address: str) -> bytes:
    return socket.inet_aton(address)
