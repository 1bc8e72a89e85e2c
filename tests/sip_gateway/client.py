"""A small SIP2 client of the tests' own, written from the spec rather than from the gateway's
codec: it frames with CR (or CRLF), adds `AY<n>AZ<checksum>` itself, checks the checksum of every
answer, and reads answers byte by byte up to their terminator."""

from __future__ import annotations

import socket
from dataclasses import dataclass

ENCODING = "utf-8"


def sip_checksum(data: bytes) -> str:
    """The 16-bit two's complement of the byte sum, four upper-case hex digits."""
    total = 0
    for byte in data:
        total = (total + byte) & 0xFFFF
    return format((0x10000 - total) & 0xFFFF, "04X")


@dataclass
class Answer:
    raw: bytes  # with its terminator

    @property
    def text(self) -> str:
        return self.raw.rstrip(b"\r\n").decode(ENCODING)

    @property
    def code(self) -> str:
        return self.text[:2]

    def field(self, field_id: str) -> str | None:
        """The first variable field `field_id` (searched after `|` or the fixed part), or None."""
        values = self.fields(field_id)
        return values[0] if values else None

    def fields(self, field_id: str) -> list[str]:
        body = self.text
        if "AZ" in body[-6:]:
            body = body[: body.rindex("AZ")]
        pieces = body.split("|")
        found = []
        for index, piece in enumerate(pieces):
            if index == 0:
                # The first variable field follows the fixed part: look for its id anywhere in it.
                position = piece.find(field_id, 2)
                while position > 0 and not _starts_field(piece, position):
                    position = piece.find(field_id, position + 1)
                if position > 0:
                    found.append(piece[position + 2 :])
            elif piece.startswith(field_id):
                found.append(piece[2:])
        return found

    def checksum_ok(self) -> bool:
        text = self.raw.rstrip(b"\r\n")
        if text[-6:-4] != b"AZ":
            return False
        return sip_checksum(text[:-4]) == text[-4:].decode()


def _starts_field(piece: str, position: int) -> bool:
    return piece[position : position + 2].isalpha()


class SipClient:
    def __init__(self, port: int, host: str = "127.0.0.1", *, crlf: bool = False, timeout: float = 15.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.terminator = b"\r\n" if crlf else b"\r"
        self.sequence = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self, message: str, *, sequence: int | None = None, checksum: bool = True) -> bytes:
        """`message` with `AY<n>AZ<checksum>` (the next sequence number unless given) and the terminator."""
        if not checksum:
            return message.encode(ENCODING) + self.terminator
        if sequence is None:
            sequence = self.sequence
            self.sequence = (self.sequence + 1) % 10
        body = f"{message}AY{sequence}AZ".encode(ENCODING)
        return body + sip_checksum(body).encode() + self.terminator

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Answer:
        data = bytearray()
        while not data.endswith(b"\r") and not data.endswith(b"\r\n"):
            byte = self.sock.recv(1)
            if not byte:
                raise ConnectionError(f"closed by the gateway after {bytes(data)!r}")
            data += byte
        if self.terminator == b"\r\n" and not data.endswith(b"\n"):
            data += self.sock.recv(1)
        return Answer(bytes(data))

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def ask(self, message: str, **options) -> Answer:
        self.send_raw(self.frame(message, **options))
        return self.read()

    def login(self, login: str, password: str, location: str = "desk") -> Answer:
        return self.ask(f"9300CN{login}|CO{password}|CP{location}|")
