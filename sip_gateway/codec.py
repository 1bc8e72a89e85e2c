"""SIP2 (3M Standard Interchange Protocol 2.00) messages: framing, checksum, fixed and variable
fields. Pure functions, no I/O: the server, the tests' client and the benchmark all use them.

A message is a two-digit code, its fixed-length fields, then variable fields `XXvalue|`, and, with
error detection, `AY<sequence>AZ<checksum>` at the end. The checksum is the 16-bit two's complement
of the byte sum of everything before it up to and including `AZ`, as four upper-case hex digits
(`97AZ` → `FEF5`).

Parsing is lenient on purpose, because kiosks in the field are not exact: an empty or unknown
variable field is kept (or ignored by whoever reads the message), a missing `|` before `AY` is
accepted, text that is not UTF-8 is read as Latin-1, 18 blanks stand for an unused date, and when
the fixed part is longer than the layout says (an extra fixed field) the layout is read
right-aligned against the first variable field. What cannot be read at all raises
`SipParseError`, which the server answers with `96`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

ENCODING = "utf-8"
MAX_MESSAGE_BYTES = 4096
FIELD_DELIMITER = "|"

# `96` and `97` carry no fields; with error detection they still carry a checksum.
REQUEST_RESEND = "96"
SC_RESEND = "97"

_CHECKSUM_TAIL = re.compile(rb"AZ([0-9A-Fa-f]{4})\s*$")
_SEQUENCE_TAIL = re.compile(rb"\|?AY([0-9])$")
_FIELD_ID = re.compile(r"[A-Z][A-Z]")
_DATE = re.compile(r"^(\d{8})(.{4})(\d{6})$")
BLANK_DATE = " " * 18


class SipParseError(ValueError):
    """A message that cannot be understood (answered with `96`, never a closed connection)."""


def checksum(data: bytes | str) -> str:
    """The four upper-case hex digits that go after `AZ`, over `data` (which ends with `AZ`)."""
    raw = data.encode(ENCODING) if isinstance(data, str) else data
    return f"{(-sum(raw)) & 0xFFFF:04X}"


# ---------------------------------------------------------------------------------------------------
# Fixed-field layouts of the requests the gateway reads: (name, length, kind). Kinds: "flag" (Y/N),
# "date" (18 chars or blank), "text" (anything of that length).

Layout = tuple[tuple[str, int, str], ...]

REQUEST_LAYOUTS: dict[str, Layout] = {
    "99": (("status_code", 1, "text"), ("max_print_width", 3, "text"), ("protocol_version", 4, "text")),
    "93": (("uid_algorithm", 1, "text"), ("pwd_algorithm", 1, "text")),
    "23": (("language", 3, "text"), ("transaction_date", 18, "date")),
    "63": (("language", 3, "text"), ("transaction_date", 18, "date"), ("summary", 10, "text")),
    "11": (
        ("sc_renewal_policy", 1, "flag"),
        ("no_block", 1, "flag"),
        ("transaction_date", 18, "date"),
        ("nb_due_date", 18, "date"),
    ),
    "09": (("no_block", 1, "flag"), ("transaction_date", 18, "date"), ("return_date", 18, "date")),
    "17": (("transaction_date", 18, "date"),),
    "29": (
        ("third_party_allowed", 1, "flag"),
        ("no_block", 1, "flag"),
        ("transaction_date", 18, "date"),
        ("nb_due_date", 18, "date"),
    ),
    "35": (("transaction_date", 18, "date"),),
    "96": (),
    "97": (),
    # Understood, not supported: answered with their refusal (sip_gateway.messages).
    "01": (("card_retained", 1, "flag"), ("transaction_date", 18, "date")),
    "15": (("hold_mode", 1, "text"), ("transaction_date", 18, "date")),
    "19": (("transaction_date", 18, "date"),),
    "25": (("transaction_date", 18, "date"),),
    "37": (
        ("transaction_date", 18, "date"),
        ("fee_type", 2, "text"),
        ("payment_type", 2, "text"),
        ("currency", 3, "text"),
    ),
    "65": (("transaction_date", 18, "date"),),
}

# The response codes of the requests above, for readers of the replies (tests, the benchmark).
RESPONSE_LAYOUTS: dict[str, Layout] = {
    "98": (
        ("online_status", 1, "flag"),
        ("checkin_ok", 1, "flag"),
        ("checkout_ok", 1, "flag"),
        ("acs_renewal_policy", 1, "flag"),
        ("status_update_ok", 1, "flag"),
        ("offline_ok", 1, "flag"),
        ("timeout_period", 3, "text"),
        ("retries_allowed", 3, "text"),
        ("date_time_sync", 18, "date"),
        ("protocol_version", 4, "text"),
    ),
    "94": (("ok", 1, "text"),),
    "24": (("patron_status", 14, "text"), ("language", 3, "text"), ("transaction_date", 18, "date")),
    "64": (
        ("patron_status", 14, "text"),
        ("language", 3, "text"),
        ("transaction_date", 18, "date"),
        ("hold_items_count", 4, "text"),
        ("overdue_items_count", 4, "text"),
        ("charged_items_count", 4, "text"),
        ("fine_items_count", 4, "text"),
        ("recall_items_count", 4, "text"),
        ("unavailable_holds_count", 4, "text"),
    ),
    "12": (
        ("ok", 1, "text"),
        ("renewal_ok", 1, "flag"),
        ("magnetic_media", 1, "text"),
        ("desensitize", 1, "text"),
        ("transaction_date", 18, "date"),
    ),
    "10": (
        ("ok", 1, "text"),
        ("resensitize", 1, "flag"),
        ("magnetic_media", 1, "text"),
        ("alert", 1, "flag"),
        ("transaction_date", 18, "date"),
    ),
    "18": (
        ("circulation_status", 2, "text"),
        ("security_marker", 2, "text"),
        ("fee_type", 2, "text"),
        ("transaction_date", 18, "date"),
    ),
    "30": (
        ("ok", 1, "text"),
        ("renewal_ok", 1, "flag"),
        ("magnetic_media", 1, "text"),
        ("desensitize", 1, "text"),
        ("transaction_date", 18, "date"),
    ),
    "36": (("end_session", 1, "flag"), ("transaction_date", 18, "date")),
    "96": (),
    "97": (),
}


@dataclass
class Message:
    """One decoded message. `fields` keeps every variable field in order (a field may repeat, e.g.
    `AS` hold items); `sequence` is AY (None when absent), `checksum_ok` None when there is no AZ."""

    code: str
    fixed: dict[str, str] = field(default_factory=dict)
    fields: list[tuple[str, str]] = field(default_factory=list)
    sequence: str | None = None
    checksum: str | None = None
    checksum_ok: bool | None = None
    raw: bytes = b""

    def get(self, field_id: str, default: str = "") -> str:
        """The first value of a variable field (the default when absent)."""
        for key, value in self.fields:
            if key == field_id:
                return value
        return default

    def get_all(self, field_id: str) -> list[str]:
        return [value for key, value in self.fields if key == field_id]

    def has(self, field_id: str) -> bool:
        return any(key == field_id for key, _ in self.fields)

    @property
    def error_detection(self) -> bool:
        """The sender uses error detection (its answer then carries AY and AZ too)."""
        return self.checksum is not None or self.sequence is not None


def decode(data: bytes | str, layouts: dict[str, Layout] | None = None) -> Message:
    """One message (without or with its CR / CRLF terminator) → `Message`. Raises SipParseError for
    what cannot be read (no code, a fixed part too short for its layout, bytes that are not text)."""
    raw = data.encode(ENCODING) if isinstance(data, str) else bytes(data)
    raw = raw.rstrip(b"\r\n").lstrip(b"\n")
    if len(raw) < 2 or not raw[:2].isdigit():
        raise SipParseError("a message starts with a two-digit code")
    message = Message(code=raw[:2].decode(), raw=raw)
    body = _text(_strip_error_detection(raw, message))
    layout = (layouts if layouts is not None else {**RESPONSE_LAYOUTS, **REQUEST_LAYOUTS}).get(message.code)
    if layout is None:
        # An unknown code: the variable part cannot be told from the fixed one. The server answers
        # the code itself (not supported); nothing else is read.
        return message
    fixed_part, variable_part = _split_fixed(body[2:], layout)
    message.fixed = _read_fixed(fixed_part, layout)
    message.fields = _read_fields(variable_part)
    return message


def decode_response(data: bytes | str) -> Message:
    """A reply from the gateway (`98`, `94`, `24`, ...): read with the response layouts."""
    return decode(data, {**REQUEST_LAYOUTS, **RESPONSE_LAYOUTS})


def decode_request(data: bytes | str) -> Message:
    return decode(data, REQUEST_LAYOUTS)


def _strip_error_detection(raw: bytes, message: Message) -> bytes:
    """The message without its trailing `AY.AZ....`; sets sequence, checksum and checksum_ok (the
    checksum is over the bytes as sent, whatever their encoding)."""
    match = _CHECKSUM_TAIL.search(raw)
    if match is None:
        return raw
    message.checksum = match.group(1).decode().upper()
    message.checksum_ok = checksum(raw[: match.start() + 2]) == message.checksum
    body = raw[: match.start()]
    sequence = _SEQUENCE_TAIL.search(body)
    if sequence is not None:
        message.sequence = sequence.group(1).decode()
        body = body[: sequence.start()]
    return body


def _text(body: bytes) -> str:
    """UTF-8; a kiosk set to a single-byte code page (Latin-1, CP850) is read as Latin-1 rather
    than refused: its barcodes and ids are ASCII either way."""
    try:
        return body.decode(ENCODING)
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _split_fixed(rest: str, layout: Layout) -> tuple[str, str]:
    """The fixed part and the variable part. Normally the fixed part has exactly the layout's length;
    a longer one (an extra fixed field a kiosk adds) is cut at the first variable field, and the
    layout then read from its end, where the dates are."""
    length = sum(size for _, size, _ in layout)
    if len(rest) < length:
        raise SipParseError(f"the fixed part is {len(rest)} characters, the message needs {length}")
    fixed, variable = rest[:length], rest[length:]
    if _fixed_fits(fixed, layout) and (not variable or _FIELD_ID.match(variable)):
        return fixed, variable
    start = _first_field_after(rest, length, layout)
    if start is None:
        # Not readable by either rule: read it as laid out; an unreadable date then reads as none.
        return fixed, variable
    return rest[start - length : start], rest[start:]


def _first_field_after(rest: str, length: int, layout: Layout) -> int | None:
    """Where the variable part begins when the fixed part is longer than its layout: the first field
    id with the layout, read right-aligned before it, fitting (its dates real dates or blank)."""
    for match in _FIELD_ID.finditer(rest, length + 1):
        if _fixed_fits(rest[match.start() - length : match.start()], layout):
            return match.start()
    return None


def _fixed_fits(fixed: str, layout: Layout) -> bool:
    position = 0
    for _, size, kind in layout:
        value = fixed[position : position + size]
        position += size
        if kind == "date" and not (value == BLANK_DATE or _DATE.match(value)):
            return False
    return True


def _read_fixed(fixed: str, layout: Layout) -> dict[str, str]:
    values: dict[str, str] = {}
    position = 0
    for name, size, _ in layout:
        values[name] = fixed[position : position + size]
        position += size
    return values


def _read_fields(variable: str) -> list[tuple[str, str]]:
    """`XXvalue|` pieces; an empty piece or one shorter than a field id is skipped, not an error."""
    fields = []
    for piece in variable.split(FIELD_DELIMITER):
        piece = piece.strip("\r\n")
        if len(piece) < 2:
            continue
        fields.append((piece[:2], piece[2:]))
    return fields


# ---------------------------------------------------------------------------------------------------
# Building messages


def clean_value(value: object) -> str:
    """A field value as SIP can carry it: no field delimiter, no line breaks."""
    text = "" if value is None else str(value)
    return text.replace(FIELD_DELIMITER, "/").replace("\r", " ").replace("\n", " ")


def encode(
    code: str,
    fixed: Sequence[str] | str = (),
    fields: Iterable[tuple[str, object]] = (),
    *,
    sequence: str | int | None = None,
    error_detection: bool | None = None,
    terminator: str = "\r",
) -> bytes:
    """A message as bytes ready to send: `code`, the fixed fields (already at their widths), each
    variable field as `XXvalue|`, then `AY<sequence>AZ<checksum>` when `sequence` is given or
    `error_detection` is true (then AZ alone when there is no sequence), then the terminator.
    `encode("97", error_detection=True, terminator="")` is `b"97AZFEF5"`."""
    text = code + (fixed if isinstance(fixed, str) else "".join(fixed))
    text += "".join(f"{field_id}{clean_value(value)}{FIELD_DELIMITER}" for field_id, value in fields)
    if error_detection is None:
        error_detection = sequence is not None
    if error_detection:
        if sequence is not None:
            text += f"AY{sequence}"
        text += "AZ"
        text += checksum(text)
    return (text + terminator).encode(ENCODING)


def flag(value: bool) -> str:
    return "Y" if value else "N"


def count(value: int, width: int = 4) -> str:
    """A fixed count field (`0003`); clipped to the largest the width holds."""
    return f"{min(max(value, 0), 10**width - 1):0{width}d}"


def sip_date(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    """SIP's 18-character date `YYYYMMDDZZZZHHMMSS` in the library's time zone (the zone field blank,
    meaning local time, as the spec allows); 18 blanks for no date."""
    if moment is None:
        return BLANK_DATE
    if zone is not None and moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return moment.strftime("%Y%m%d") + "    " + moment.strftime("%H%M%S")


def parse_sip_date(value: str, zone: ZoneInfo) -> datetime | None:
    """An 18-character SIP date → an aware datetime (a blank or local zone field is the library's
    zone; `   Z` or `UTC` is UTC). None for 18 blanks or anything that is not a date."""
    match = _DATE.match(value or "")
    if match is None:
        return None
    day, zone_field, clock = match.groups()
    try:
        naive = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    zone_name = zone_field.strip().upper()
    if zone_name in {"Z", "UTC", "GMT"}:
        return naive.replace(tzinfo=ZoneInfo("UTC"))
    return naive.replace(tzinfo=zone)


def frames(buffer: bytearray) -> Iterable[bytes]:
    """Takes whole messages (each with its CR or CRLF) off the front of `buffer`, leaving a partial
    one in it. A stray LF before a message is dropped."""
    while True:
        while buffer[:1] == b"\n":
            del buffer[:1]
        end = buffer.find(b"\r")
        if end < 0:
            return
        stop = end + 2 if buffer[end + 1 : end + 2] == b"\n" else end + 1
        message = bytes(buffer[:stop])
        del buffer[:stop]
        yield message


def terminator_of(message: bytes) -> str:
    """The terminator a request used, for its answer (kiosks sending CRLF wait for CRLF)."""
    return "\r\n" if message.endswith(b"\r\n") else "\r"
