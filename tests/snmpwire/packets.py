"""Notification datagrams built with the codec's own encoder, for the codec's and the
trap receiver's tests (the cases net-snmp will not produce: empty digest, wrong level),
and the corpus of malformed ones both are fuzzed with."""

from __future__ import annotations

import random

from snmpwire import ber, pdu

UPTIME = pdu.varbind(ber.enc_oid(pdu.SYS_UPTIME_0), ber.enc_uint(5, ber.TIMETICKS))


def v2c_trap(trap_oid: str, marker: str, community: bytes = b"public") -> bytes:
    """An SNMPv2-Trap with one OCTET STRING varbind (1.3.6.1.4.1.99999.9 = ``marker``)."""
    vbs = [
        UPTIME,
        pdu.varbind(ber.enc_oid(pdu.SNMP_TRAP_OID_0), ber.enc_oid(ber.parse_oid_str(trap_oid))),
        pdu.varbind(ber.enc_oid((1, 3, 6, 1, 4, 1, 99999, 9)), ber.enc_octets(marker.encode())),
    ]
    return pdu.encode_community(1, community, pdu.encode_pdu(ber.TRAP_V2, 1, 0, 0, vbs))


def v3_trap(user: bytes, engine: bytes, flags: int, auth_params: bytes, boots: int = 1, etime: int = 10) -> bytes:
    """A plaintext (noPriv) SNMPv3 coldStart trap; ``auth_params`` as given (sign it afterwards)."""
    vbs = [UPTIME, pdu.varbind(ber.enc_oid(pdu.SNMP_TRAP_OID_0), ber.enc_oid((1, 3, 6, 1, 6, 3, 1, 1, 5, 1)))]
    scoped = ber.enc_seq(ber.enc_octets(engine), ber.enc_octets(b""), pdu.encode_pdu(ber.TRAP_V2, 1, 0, 0, vbs))
    usm = ber.enc_seq(
        ber.enc_octets(engine),
        ber.enc_int(boots),
        ber.enc_int(etime),
        ber.enc_octets(user),
        ber.enc_octets(auth_params),
        ber.enc_octets(b""),
    )
    header = ber.enc_seq(ber.enc_int(7), ber.enc_int(65507), ber.enc_octets(bytes((flags,))), ber.enc_int(3))
    return ber.enc_seq(ber.enc_int(3), header, ber.enc_octets(usm), scoped)


VALID = v2c_trap("1.3.6.1.6.3.1.1.5.3", "valid")


def _deep(depth: int) -> bytes:
    inner = b"\x05\x00"
    for _ in range(depth):
        inner = bytes((0x30,)) + ber.enc_len(len(inner)) + inner
    return inner


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
                pdu.decode_notification(p)
                continue
            except (ber.BerError, pdu.Refused):
                pass
        elif kind == "indefinite":
            p = b"\x30\x80" + VALID[2:] + b"\x00\x00"
        else:
            p = VALID.replace(b"\x06\x08\x2b\x06\x01\x02\x01\x01\x03\x00", b"\x06\x08\x2b\x06\x81\x82\x83\x84\x85\x86")
            if p == VALID:
                p = b"\x30\x0b\x02\x01\x01\x04\x00\xa7\x04\x06\x02\x80\x80"
        out.append(p)
    return out
