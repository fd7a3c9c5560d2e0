"""The BER layer: round trips, pyasn1 as the oracle for OIDs and integers, and the strict
rules (minimal sub-identifiers, 32-bit arcs, at most 128 arcs, 1 to 9 integer octets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ

from snmpwire import ber

oids = st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=30).flatmap(
    lambda tail: st.tuples(st.integers(0, 2), st.integers(0, 39)).map(lambda head: head + tuple(tail))
)


@given(oids)
def test_oid_roundtrip(oid) -> None:
    enc = ber.enc_oid(oid)
    decoded, end = ber.read_oid(enc, 0, len(enc))
    assert decoded == oid and end == len(enc)
    assert ber.oid_text(decoded) == ".".join(map(str, oid))


@given(oids)
def test_oids_encode_as_pyasn1_encodes_them(oid) -> None:
    assert ber.enc_oid(oid) == encoder.encode(univ.ObjectIdentifier(oid))


@settings(max_examples=1000)
@given(st.binary(min_size=1, max_size=40))
def test_any_oid_content_we_accept_pyasn1_reads_the_same(content: bytes) -> None:
    try:
        ours = ber.decode_oid(content, 0, len(content))
    except ber.BerError:
        return
    theirs = decoder.decode(ber.tlv(ber.OID, content), asn1Spec=univ.ObjectIdentifier())[0]
    assert ours == tuple(theirs)
    assert max(ours[2:], default=0) <= ber.MAX_SUBID


@given(st.integers(-(2**63), 2**63 - 1))
def test_integer_roundtrip(v: int) -> None:
    enc = ber.enc_int(v)
    assert int(decoder.decode(enc, asn1Spec=univ.Integer())[0]) == v  # pyasn1 itself writes -128 in 2 octets
    assert ber.read_int(enc, 0, len(enc)) == (v, len(enc))


@given(st.integers(0, 2**64 - 1))
def test_counter64_roundtrip(v: int) -> None:
    enc = ber.enc_uint(v, ber.COUNTER64)
    assert ber.read_int(enc, 0, len(enc), ber.COUNTER64) == (v, len(enc))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty OID"),
        (b"\x2b\x06\x80\x01", "non-minimal OID sub-identifier"),  # 0x80 0x01 is 1 written in two octets
        (b"\x80\x2b", "non-minimal OID sub-identifier"),  # also in the first sub-identifier
        (b"\x2b\x90\x80\x80\x80\x00", "sub-identifier too large"),  # 2**32: one past an unsigned 32-bit arc
        (b"\x2b\x8f\xff\xff\xff\xff\x7f", "sub-identifier too large"),  # a sixth octet
        (b"\x2b\x06\x81", "truncated OID sub-identifier"),
        (b"\x2b" + b"\x01" * 127, "OID too long"),  # 129 arcs
        (b"\x2b" + b"\x01" * 700, "OID too long"),
    ],
)
def test_oid_decoder_refuses(content: bytes, message: str) -> None:
    with pytest.raises(ber.BerError, match=message):
        ber.decode_oid(content, 0, len(content))


def test_oid_decoder_bounds_are_inclusive() -> None:
    biggest = ber.enc_oid_content((1, 3, 2**32 - 1))
    assert ber.decode_oid(biggest, 0, len(biggest)) == (1, 3, 2**32 - 1)
    longest = b"\x2b" + b"\x01" * 126  # 128 arcs
    assert len(ber.decode_oid(longest, 0, len(longest))) == ber.MAX_OID_ARCS
    with pytest.raises(ValueError, match="not an encodable OID"):
        ber.enc_oid((1, 3, 2**32))
    with pytest.raises(ValueError, match="not an encodable OID"):
        ber.enc_oid((1, 3) + (1,) * 127)


def test_a_cached_oid_is_the_same_tuple_and_its_text_form_too() -> None:
    enc = b"\x2b\x06\x01\x02\x01\x01\x03\x00"
    first = ber.decode_oid(enc, 0, len(enc))
    again = ber.decode_oid(b"xx" + enc, 2, 2 + len(enc))
    assert first is again and first == (1, 3, 6, 1, 2, 1, 1, 3, 0)
    assert ber.oid_text(first) is ber.oid_text(again) == "1.3.6.1.2.1.1.3.0"


@pytest.mark.parametrize("tag", [ber.INTEGER, ber.COUNTER32, ber.COUNTER64, ber.TIMETICKS])
@pytest.mark.parametrize(("content", "message"), [(b"", "bad integer length"), (b"\x01" * 10, "bad integer length")])
def test_the_integer_reader_refuses_empty_and_over_long_integers(tag: int, content: bytes, message: str) -> None:
    enc = ber.tlv(tag, content)
    with pytest.raises(ber.BerError, match=message):
        ber.read_int(enc, 0, len(enc), tag)
    nine = ber.tlv(tag, b"\x00" + b"\xff" * 8)
    assert ber.read_int(nine, 0, len(nine), tag)[0] == 2**64 - 1


def test_pyasn1_errors_on_what_we_refuse_as_non_minimal() -> None:
    # the oracle agrees that a leading 0x80 octet is not BER
    with pytest.raises(PyAsn1Error):
        decoder.decode(ber.tlv(ber.OID, b"\x2b\x06\x80\x01"), asn1Spec=univ.ObjectIdentifier())
