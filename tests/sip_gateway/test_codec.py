"""The codec alone: the published checksum vectors, framing, and the lenient parse of what kiosks in
the field send."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from sip_gateway import codec
from tests.sip_gateway.client import sip_checksum

DATE = "20261206    101500"


@pytest.mark.parametrize(("text", "expected"), [("97AZ", "FEF5"), ("96AZ", "FEF6")])
def test_the_published_checksum_vectors(text, expected):
    assert codec.checksum(text) == expected
    assert sip_checksum(text.encode()) == expected  # the tests' own client agrees


def test_a_checksum_is_always_four_zero_padded_hex_digits():
    assert codec.checksum(bytes([0xFF] * 257)) == "0001"  # the byte sum 0xFFFF
    assert codec.checksum(bytes([0x10] * 0xF00)) == "1000"  # the byte sum 0xF000
    assert codec.checksum(bytes([0x01])) == "FFFF"
    assert codec.checksum(b"") == "0000"


def test_encode_adds_sequence_and_checksum_and_decode_checks_them():
    raw = codec.encode("23", ["000", DATE], [("AO", "lib"), ("AA", "card")], sequence=3)
    assert raw.endswith(b"\r")
    message = codec.decode(raw)
    assert (message.code, message.sequence, message.checksum_ok) == ("23", "3", True)
    assert message.fixed == {"language": "000", "transaction_date": DATE}
    assert message.fields == [("AO", "lib"), ("AA", "card")]
    corrupted = raw.replace(b"card", b"cars")
    assert codec.decode(corrupted).checksum_ok is False


def test_an_unused_date_is_18_blanks_and_reads_as_none():
    message = codec.decode(f"23000{' ' * 18}AOlib|AAcard|")
    assert message.fixed["transaction_date"] == codec.BLANK_DATE
    assert codec.parse_sip_date(message.fixed["transaction_date"], ZoneInfo("UTC")) is None


def test_empty_and_unknown_variable_fields_are_kept_not_fatal():
    message = codec.decode(f"11YN{DATE}{' ' * 18}AOlib|AAcard|ABitem|AC|ZZwhatever||XY|")
    assert message.get("AB") == "item"
    assert message.get("AC") == ""
    assert message.get("ZZ") == "whatever"


def test_an_extra_fixed_field_before_the_date_of_an_item_information_request():
    message = codec.decode(f"17XX{DATE}AOlib|ABitem|")
    assert message.fixed["transaction_date"] == DATE
    assert message.get("AB") == "item"


def test_a_missing_delimiter_before_ay_is_accepted():
    body = f"17{DATE}AOlib|ABitemAY1AZ"
    message = codec.decode(body + codec.checksum(body))
    assert (message.get("AB"), message.sequence, message.checksum_ok) == ("item", "1", True)


def test_text_that_is_not_utf8_is_read_as_latin1_and_its_checksum_is_over_its_bytes():
    body = "9300CNkiosk|COpässword|AY2AZ".encode("latin-1")
    message = codec.decode(body + codec.checksum(body).encode())
    assert (message.get("CO"), message.checksum_ok) == ("pässword", True)


@pytest.mark.parametrize("text", ["", "9", "X1", "11YN"])
def test_what_cannot_be_read_is_a_parse_error(text):
    with pytest.raises(codec.SipParseError):
        codec.decode(text)


def test_frames_split_at_cr_or_crlf_and_keep_a_partial_message():
    buffer = bytearray(b"\n9900302.00\r9300CNa|COb|\r\n2300")
    assert list(codec.frames(buffer)) == [b"9900302.00\r", b"9300CNa|COb|\r\n"]
    assert bytes(buffer) == b"2300"
    assert codec.terminator_of(b"9300CNa|COb|\r\n") == "\r\n"


def test_sip_dates_in_the_library_time_zone():
    zone = ZoneInfo("Europe/Paris")
    moment = codec.parse_sip_date("20260701    120000", zone)
    assert moment is not None and moment.utcoffset().total_seconds() == 7200
    assert codec.sip_date(moment.astimezone(ZoneInfo("UTC")), zone) == "20260701    120000"
    assert codec.parse_sip_date("20260701   Z120000", zone).tzinfo == ZoneInfo("UTC")
    assert codec.parse_sip_date("20261301    120000", zone) is None  # month 13
