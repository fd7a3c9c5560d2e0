"""The lab's SNMP agent: one asyncio UDP endpoint per device, v1/v2c/v3 (USM authPriv).

Each request is decoded with the strict codec in ``snmpwire.pdu``, answered from
the device's ``MibView`` (values computed on read from the model) and encoded by hand.
Nothing a peer sends can raise out of ``datagram_received``: malformed packets are
counted in ``AgentStats.malformed`` and dropped, like a real agent's snmpInASNParseErrs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab import usm
from lab.mib import MibView
from lab.model import Clock, LabDevice
from snmpwire import ber, pdu
from snmpwire import v3 as snmpv3
from snmpwire.ber import BerError, enc_octets, enc_seq
from snmpwire.pdu import encode_pdu, varbind
from snmpwire.usm import TIME_WINDOW_S, UsmUser, aes_decrypt

log = logging.getLogger(__name__)

LAB_COMMUNITY = "public"
MAX_UDP_PAYLOAD = 65507
MAX_BULK_VARBINDS = 2000

# error-status values (RFC 3416)
NO_ERROR = 0
TOO_BIG = 1
NO_SUCH_NAME = 2
NO_ACCESS = 6

Pdu = tuple[int, int, int, int, list[tuple[int, ...]]]  # tag, request-id, f1, f2, OIDs


@dataclass
class AgentStats:
    requests: int = 0
    responses: int = 0
    malformed: int = 0
    bad_community: int = 0
    bad_version: int = 0
    dropped_fault: int = 0
    ignored_crashed: int = 0
    unsupported_pdu: int = 0
    usm: dict[str, int] = field(default_factory=lambda: dict.fromkeys(snmpv3.USM_STATS, 0))

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "usm"}
        out["usm"] = dict(self.usm)
        return out


def parse_pdu(buf: bytes, pos: int, end: int) -> Pdu:
    tag, _s, _e = ber.read_tlv(buf, pos, end)
    if tag == ber.TRAP_V1:  # well-formed, but not a request: ``process`` counts it as unsupported
        return (tag, 0, 0, 0, [])
    tag, reqid, f1, f2, varbinds = pdu.decode_pdu(buf, pos, end)
    # the values are ignored (no SET support) but were checked to be well-formed
    return (tag, reqid, f1, f2, [oid for oid, _value in varbinds])


class SnmpAgent(asyncio.DatagramProtocol):
    """Answers SNMP for one device."""

    def __init__(
        self,
        device: LabDevice,
        *,
        now: Clock,
        resolve: Callable[[str], LabDevice | None] = lambda name: None,
        community: str = LAB_COMMUNITY,
        user: UsmUser | None = None,
        on_auth_failure: Callable[[LabDevice, tuple[str, int]], None] | None = None,
    ) -> None:
        self.device = device
        self.now = now
        self.community = community.encode()
        self.user = user or usm.lab_user()
        self.engine_id = usm.engine_id_for(device.name)
        self.mib = MibView(device, now, resolve, self.engine_id)
        self.stats = AgentStats()
        self.on_auth_failure = on_auth_failure
        self.transport: asyncio.DatagramTransport | None = None

    # ------------------------------------------------------------ transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a gone client
        log.debug("snmp agent %s: %s", self.device.name, exc)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        d = self.device
        if d.crashed:
            self.stats.ignored_crashed += 1
            return
        if d.snmp_drop_pct > 0 and random.random() * 100 < d.snmp_drop_pct:
            self.stats.dropped_fault += 1
            return
        self.stats.requests += 1
        try:
            resp = self.handle(bytes(data), addr)
        except (BerError, ValueError, OverflowError, IndexError):
            self.stats.malformed += 1
            return
        except Exception:  # never let a packet kill the endpoint
            self.stats.malformed += 1
            log.exception("snmp agent %s: unexpected error on packet from %s", d.name, addr)
            return
        if resp is None or self.transport is None:
            return
        self.stats.responses += 1
        if d.snmp_delay_s > 0:
            asyncio.get_running_loop().call_later(d.snmp_delay_s, self._send_late, resp, addr)
        else:
            self.transport.sendto(resp, addr)

    def _send_late(self, resp: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.device.crashed:
            self.transport.sendto(resp, addr)

    def send(self, data: bytes, addr: tuple[str, int]) -> bool:
        """Send from the agent's own address/port (used for traps)."""
        if self.transport is None:
            return False
        self.transport.sendto(data, addr)
        return True

    # ------------------------------------------------------------ messages
    def handle(self, buf: bytes, addr: tuple[str, int]) -> bytes | None:
        version, p, e = pdu.read_message(buf)
        if version in (0, 1):
            return self._community_message(buf, p, e, version, addr)
        if version == 3:
            return self._v3_message(buf, p, e)
        self.stats.bad_version += 1
        return None

    def _community_message(self, buf: bytes, p: int, e: int, version: int, addr: tuple[str, int]) -> bytes | None:
        community, p = ber.read_octets(buf, p, e)
        request = parse_pdu(buf, p, e)
        if not hmac.compare_digest(community, self.community):
            self.stats.bad_community += 1
            if self.on_auth_failure is not None:
                self.on_auth_failure(self.device, addr)
            return None
        if version == 0 and request[0] == ber.GETBULK:
            raise BerError("GetBulk in an SNMPv1 message")
        resp = self.process(request, v1=version == 0, max_size=MAX_UDP_PAYLOAD - 60 - len(community))
        if resp is None:
            return None
        return pdu.encode_community(version, community, resp)

    def _engine_time(self) -> int:
        return max(0, int(self.now() - self.device.boot_time))

    def _v3_message(self, buf: bytes, p: int, e: int) -> bytes | None:
        m = snmpv3.parse(buf, p, e)
        if m.security_model != snmpv3.USM_SECURITY_MODEL:
            raise BerError("bad v3 header")
        scoped: tuple[bytes, Pdu] | None = None
        if not m.private:
            scoped = self._parse_scoped(buf, m.data_at, e)
        reqid = scoped[1][1] if scoped else 0

        def answer(scoped_pdu: bytes, etime: int, authed: bool, private: bool = False) -> bytes:
            auth_key, priv_key = self.user.keys(self.engine_id)
            return snmpv3.encode(
                msg_id=m.msg_id,
                user=m.user,
                scoped=scoped_pdu,
                engine_id=self.engine_id,
                boots=self.device.engine_boots,
                etime=etime,
                auth=(usm.AUTH_PROTOCOL, auth_key) if authed else None,
                priv_key=priv_key if private else None,
            )

        def report(name: str, authed: bool = False) -> bytes | None:
            self.stats.usm[name] += 1
            if not m.reportable:
                return None
            value = ber.enc_uint(self.stats.usm[name], ber.COUNTER32)
            stat = varbind(ber.enc_oid(snmpv3.USM_STATS[name]), value)
            scoped = enc_seq(enc_octets(self.engine_id), enc_octets(b""), encode_pdu(ber.REPORT, reqid, 0, 0, [stat]))
            return answer(scoped, self._engine_time(), authed)

        if m.engine_id != self.engine_id:
            return report("unknown_engine_ids")
        if m.user != self.user.name.encode():
            return report("unknown_user_names")
        if not m.authenticated:
            return report("unsupported_sec_levels")
        auth_key, priv_key = self.user.keys(self.engine_id)
        if not snmpv3.digest_ok(buf, m, usm.AUTH_PROTOCOL, auth_key):
            return report("wrong_digests")
        our_time = self._engine_time()
        if m.boots != self.device.engine_boots or abs(m.time - our_time) > TIME_WINDOW_S:
            return report("not_in_time_windows", authed=True)
        if m.private:
            if len(m.priv_params) != 8:
                return report("decryption_errors")
            plain = aes_decrypt(priv_key, m.boots, m.time, m.priv_params, snmpv3.encrypted(buf, m, e))
            try:
                scoped = self._parse_scoped(plain, 0, len(plain))
            except BerError:
                return report("decryption_errors")
        assert scoped is not None
        ctx_name, request = scoped
        resp = self.process(request, v1=False, max_size=min(m.max_size, MAX_UDP_PAYLOAD) - 200)
        if resp is None:
            return None
        return answer(enc_seq(enc_octets(self.engine_id), enc_octets(ctx_name), resp), our_time, True, m.private)

    @staticmethod
    def _parse_scoped(buf: bytes, pos: int, end: int) -> tuple[bytes, Pdu]:
        _ctx_engine, ctx_name, pdu_at, scoped_end = snmpv3.scoped_pdu(buf, pos, end)
        return ctx_name, parse_pdu(buf, pdu_at, scoped_end)

    # ------------------------------------------------------------ PDUs
    def process(self, request: Pdu, *, v1: bool, max_size: int) -> bytes | None:
        tag, reqid, f1, f2, oids = request
        mib = self.mib
        mib.ensure()  # before anything reads mib.oids / mib.oid_tlvs directly
        if tag == ber.GET:
            vbs = []
            for i, oid in enumerate(oids):
                val = mib.get(oid, v1)
                if val is None:
                    if v1:
                        return self._v1_error(reqid, NO_SUCH_NAME, i + 1, oids)
                    vt = bytes((ber.NO_SUCH_INSTANCE if mib.has_object(oid) else ber.NO_SUCH_OBJECT, 0))
                else:
                    vt = ber.enc_value(*val)
                vbs.append(varbind(ber.enc_oid(oid), vt))
            return self._fit(reqid, vbs, oids, v1, max_size)
        if tag == ber.GETNEXT:
            vbs = []
            for i, oid in enumerate(oids):
                r = mib.next(oid, v1)
                if r is None:
                    if v1:
                        return self._v1_error(reqid, NO_SUCH_NAME, i + 1, oids)
                    vbs.append(varbind(ber.enc_oid(oid), b"\x82\x00"))
                else:
                    vbs.append(varbind(mib.oid_tlvs[r[0]], ber.enc_value(*r[1])))
            return self._fit(reqid, vbs, oids, v1, max_size)
        if tag == ber.GETBULK:
            return self._bulk(reqid, max(0, f1), max(0, f2), oids, max_size)
        if tag == ber.SET:
            return self._v1_error(reqid, NO_SUCH_NAME if v1 else NO_ACCESS, 1, oids)
        self.stats.unsupported_pdu += 1
        return None

    def _v1_error(self, reqid: int, status: int, index: int, oids: list[tuple[int, ...]]) -> bytes:
        return encode_pdu(ber.RESPONSE, reqid, status, index, [varbind(ber.enc_oid(o), b"\x05\x00") for o in oids])

    def _fit(self, reqid: int, vbs: list[bytes], oids: list[tuple[int, ...]], v1: bool, max_size: int) -> bytes:
        if sum(len(v) for v in vbs) > max_size:
            if v1:
                return self._v1_error(reqid, TOO_BIG, 0, oids)
            return encode_pdu(ber.RESPONSE, reqid, TOO_BIG, 0, [])
        return encode_pdu(ber.RESPONSE, reqid, NO_ERROR, 0, vbs)

    def _bulk(self, reqid: int, non_rep: int, max_rep: int, oids: list[tuple[int, ...]], max_size: int) -> bytes:
        mib = self.mib
        non_rep = min(non_rep, len(oids))
        vbs: list[bytes] = []
        size = 0
        for oid in oids[:non_rep]:
            r = mib.next(oid, False)
            if r is None:
                vb = varbind(ber.enc_oid(oid), b"\x82\x00")
            else:
                vb = varbind(mib.oid_tlvs[r[0]], ber.enc_value(*r[1]))
            size += len(vb)
            vbs.append(vb)
        if size > max_size:
            return encode_pdu(ber.RESPONSE, reqid, TOO_BIG, 0, [])
        cursors = list(oids[non_rep:])
        if cursors:
            max_rep = min(max_rep, MAX_BULK_VARBINDS // len(cursors))
        oid_list = mib.oids
        tlvs = mib.oid_tlvs
        for _ in range(max_rep):
            all_end = True
            round_vbs = []
            for j, cur in enumerate(cursors):
                r = mib.next(cur, False)
                if r is None:
                    round_vbs.append(varbind(ber.enc_oid(cur), b"\x82\x00"))
                else:
                    all_end = False
                    cursors[j] = oid_list[r[0]]
                    round_vbs.append(varbind(tlvs[r[0]], ber.enc_value(*r[1])))
            added = sum(len(v) for v in round_vbs)
            if size + added > max_size:
                # RFC 3416 4.2.3: return fewer repetitions rather than tooBig; keep whole
                # varbinds only, and at least what already fits.
                for v in round_vbs:
                    if size + len(v) > max_size:
                        break
                    vbs.append(v)
                    size += len(v)
                break
            vbs.extend(round_vbs)
            size += added
            if all_end:
                break
        return encode_pdu(ber.RESPONSE, reqid, NO_ERROR, 0, vbs)
