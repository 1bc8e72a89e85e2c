"""The SIP2 server: one asyncio task per kiosk connection, so hundreds of idle kiosks cost a socket
and a coroutine each, and a kiosk that stalls mid-message (or stops reading) holds only its own task.
The API calls run on a bounded thread pool (the HTTP client and the accounts' ORM reads block).

Per connection: messages end at CR (CRLF and a stray leading LF accepted; the answer ends as the
request did); one longer than MAX_MESSAGE_BYTES is answered `96` and its bytes dropped up to its end;
a connection that has not logged in after SIP_LOGIN_TIMEOUT seconds, or is silent for
SIP_IDLE_TIMEOUT once logged in, is closed. Error detection (AY/AZ): a bad checksum is answered `96`
and nothing runs; `97` resends the last answer; a request repeating the previous one's AY and AZ
gets the previous answer again without running twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from lending.request_context import request_id_var
from sip_gateway import codec, metrics
from sip_gateway.codec import Message, SipParseError

logger = structlog.get_logger("sip_gateway")

READ_CHUNK_BYTES = 4096
WRITE_TIMEOUT_SECONDS = 30.0
# Outcomes counted as errors: what the gateway could not understand or could not do. A patron's
# refusal (`refused`: blocked, limit reached) is an answer, not an error.
ERROR_OUTCOMES = frozenset({"unreadable", "bad_checksum", "not_supported", "unavailable", "failed"})


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 6001
    login_timeout: float = 60.0
    idle_timeout: float = 600.0
    max_message_bytes: int = codec.MAX_MESSAGE_BYTES


@dataclass
class Reply:
    """An answer before framing: its code, fixed fields (already at their widths), variable fields."""

    code: str
    fixed: list[str] = field(default_factory=list)
    fields: list[tuple[str, object]] = field(default_factory=list)


@dataclass
class Session:
    """One kiosk connection's state. `account` is set by a successful `93` login."""

    peer: str
    account: Any = None  # sip_gateway.accounts.LoggedIn
    last_answer: bytes | None = None  # without its terminator, for `97`
    last_request_tail: tuple[str | None, str] | None = None  # (AY, AZ) of the previous request
    crlf: bool = False  # the kiosk has ended a message with CRLF
    notes: dict[str, object] = field(default_factory=dict)  # for this message's log line
    failed_logins: int = 0
    closing: bool = False  # close the connection once the current answer is sent

    @property
    def logged_in(self) -> bool:
        return self.account is not None

    def note(self, **fields: object) -> None:
        """Adds to the current message's log line (never a password: callers pass what may be logged)."""
        self.notes.update(fields)


Handler = Callable[[Session, Message], Awaitable[Reply]]


class Gateway:
    """Accepts kiosks and answers their messages with `handler` (sip_gateway.messages)."""

    def __init__(self, handler: Handler, config: GatewayConfig) -> None:
        self.handler = handler
        self.config = config
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> asyncio.Server:
        self.server = await asyncio.start_server(
            self.serve_connection, self.config.host, self.config.port, limit=self.config.max_message_bytes * 2
        )
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stops accepting, then closes every kiosk's connection (they reconnect to another replica)."""
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.close()
        for task in list(self.tasks):
            task.cancel()  # a message waiting on the API is abandoned: the kiosk resends it
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_name(writer)
        session = Session(peer=peer)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.connections.add(writer)
        metrics.OPEN_SESSIONS.inc()
        try:
            await self._converse(session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except TimeoutError:  # an answer the kiosk did not read for WRITE_TIMEOUT_SECONDS
            logger.info("sip_session_closed", peer=peer, reason="write_timeout")
        except Exception:  # a bug must cost this kiosk its connection, never the server
            logger.exception("sip_session_failed", peer=peer)
        finally:
            if task is not None:
                self.tasks.discard(task)
            self.connections.discard(writer)
            metrics.OPEN_SESSIONS.dec()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _converse(self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        discarding = False  # inside an oversize message: dropping bytes up to its end
        login_deadline = time.monotonic() + self.config.login_timeout
        while True:
            timeout = self.config.idle_timeout
            if not session.logged_in:  # 60 s to log in from the connection, whatever is sent meanwhile
                timeout = min(timeout, max(login_deadline - time.monotonic(), 0.0))
            try:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout)
            except TimeoutError:
                reason = "idle_timeout" if session.logged_in else "login_timeout"
                metrics.TIMEOUTS.labels(reason=reason).inc()
                logger.info("sip_session_closed", peer=session.peer, reason=reason)
                return
            if not chunk:
                return
            buffer += chunk
            if buffer[:1] == b"\n" and not discarding:
                session.crlf = True  # the LF of a CRLF split across two reads
            for raw in codec.frames(buffer):
                if discarding:
                    discarding = False  # this was the oversize message's end
                    continue
                await self._answer(session, raw, writer)
                if session.closing:
                    logger.info("sip_session_closed", peer=session.peer, reason="failed_logins")
                    return
            if len(buffer) > self.config.max_message_bytes:
                buffer.clear()
                if not discarding:
                    discarding = True
                    await self._send(session, writer, self._oversize_answer(), _terminator(session, None))

    def _oversize_answer(self) -> bytes:
        metrics.record_message("oversize", 0.0, error=True)
        return codec.encode("96", terminator="")

    async def _answer(self, session: Session, raw: bytes, writer: asyncio.StreamWriter) -> None:
        terminator = _terminator(session, raw)
        if len(raw) > self.config.max_message_bytes:
            await self._send(session, writer, self._oversize_answer(), terminator)
            return
        started = time.perf_counter()
        session.notes = {}
        # One id per message: on its log line and, as X-Request-ID, on every API call it makes.
        request_id_var.set(uuid.uuid4().hex)
        answer, code, outcome = await self._answer_bytes(session, raw)
        elapsed = time.perf_counter() - started
        metrics.record_message(code, elapsed, error=outcome in ERROR_OUTCOMES)
        logger.info(
            "sip_message",
            peer=session.peer,
            account=session.account.login if session.account else None,
            message=code,
            answer=answer[:2].decode(codec.ENCODING, "replace"),
            duration_ms=round(elapsed * 1000, 2),
            **{"outcome": outcome, **session.notes},
        )
        await self._send(session, writer, answer, terminator)

    async def _answer_bytes(self, session: Session, raw: bytes) -> tuple[bytes, str, str]:
        """The answer (without terminator), the request's code for the metrics, and the outcome."""
        try:
            message = codec.decode_request(raw)
        except SipParseError as exc:
            session.note(detail=str(exc))
            return codec.encode("96", terminator=""), "unreadable", "unreadable"
        if message.checksum_ok is False:
            return codec.encode("96", error_detection=True, terminator=""), message.code, "bad_checksum"
        if message.code == codec.SC_RESEND:
            session.note(resent=True)
            resend = session.last_answer or codec.encode("96", error_detection=message.error_detection, terminator="")
            return resend, message.code, "ok"
        tail = (message.sequence, message.checksum) if message.checksum is not None else None
        if tail is not None and tail == session.last_request_tail and session.last_answer is not None:
            session.note(repeated=True)
            return session.last_answer, message.code, "ok"
        try:
            reply = await self.handler(session, message)
        except Exception:  # a bug answers this message `96`: the kiosk keeps its connection
            logger.exception("sip_message_failed", peer=session.peer, message=message.code)
            return codec.encode("96", error_detection=message.error_detection, terminator=""), message.code, "failed"
        answer = codec.encode(
            reply.code,
            reply.fixed,
            reply.fields,
            sequence=message.sequence,
            error_detection=message.error_detection,
            terminator="",
        )
        session.last_answer = answer
        session.last_request_tail = tail
        outcome = "not_supported" if reply.code == "96" else str(session.notes.pop("outcome", "ok"))
        return answer, message.code, outcome

    async def _send(self, session: Session, writer: asyncio.StreamWriter, answer: bytes, terminator: bytes) -> None:
        writer.write(answer + terminator)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_SECONDS)


def _terminator(session: Session, raw: bytes | None) -> bytes:
    """CRLF once the kiosk has used it (also when its LF came in the next read), else CR."""
    if raw is not None and raw.endswith(b"\r\n"):
        session.crlf = True
    return b"\r\n" if session.crlf else b"\r"


def _peer_name(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


def thread_pool(size: int = 64) -> ThreadPoolExecutor:
    """The threads API calls and account reads run on: enough for every busy kiosk of a branch."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="sip-api")
