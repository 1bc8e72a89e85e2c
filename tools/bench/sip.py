"""SIP2 kiosks for `make bench` (issue 24 point 8), beside the service, its peers and its relay:

1. `kiosks`: KIOSKS connections to the gateway (`python -m sip_gateway`), each logged in (`93`) with
   the bench's kiosk account, doing check-out (`11`) + check-in (`09`) pairs of item barcodes, each
   pair a fresh copy and patron (patron<k>'s card `2100{1000+k:06d}`, book k+5's only copy
   `39{k+5:06d}01`: the reference peers' demo scheme). A kiosk sends a message every `interval`
   seconds, as a patron scanning one book after another would (0: as fast as the answers come). Each
   message's latency is from its first byte sent to its answer's last byte read; an error is any
   answer other than ok (`12`/`10` with ok 1), a bad checksum, a timeout or a closed connection.
2. `idle_vs_api`: IDLE kiosk sockets held open and logged in, against none, while the HTTP API is
   measured (`/health/ready/`, and lends of fresh books): blocks with and without the sockets in the
   order ABBA, repeated, so that the neighbours' load on a shared machine falls on both alike; the
   samples of each side pooled. The gateway is a process of its own: its sockets must not change the
   API's latency.

Every message carries AY/AZ (error detection on, as most kiosks run), ends at CR, and is built and
read with sip_gateway.codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sip_gateway import codec
from tools.harness.processes import HOST, PYTHON, ProcessGroup, free_port, run_manage, wait_http

KIOSKS = 50
IDLE = 200
ANSWER_TIMEOUT_S = 10.0
INSTITUTION = "bench"
LOCATION = "bench-kiosks"
# The bench's kiosk account, created by tools.bench.run through the gateway's own account functions.
LOGIN, PASSWORD = "bench-kiosk", "bench-kiosk-password"


def card(patron: int) -> str:
    """patron<N>'s library card in the reference User peer's demo scheme."""
    return f"2100{1000 + patron:06d}"


def item(patron: int) -> str:
    """The barcode of the only copy of book patron+5 (the bench's 'patron k borrows book k+5')."""
    return f"39{patron + 5:06d}01"


def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 2),
    }


# --- one kiosk ---------------------------------------------------------------------------------------


class KioskError(RuntimeError):
    """An answer the kiosk cannot accept: not ok, the wrong code, a bad checksum, or none in time."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass
class Kiosk:
    """One kiosk's connection: messages with AY (0-9, in turn) and AZ, each answer awaited."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sequence: int = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> Kiosk:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), ANSWER_TIMEOUT_S)
        return cls(reader, writer)

    async def call(
        self, code: str, fixed: list[str], fields: Sequence[tuple[str, object]]
    ) -> tuple[codec.Message, float]:
        """Sends one message; its answer and the milliseconds it took."""
        data = codec.encode(code, fixed, fields, sequence=self.sequence % 10)
        self.sequence += 1
        started = time.perf_counter()
        self.writer.write(data)
        try:
            await self.writer.drain()
            raw = await asyncio.wait_for(self.reader.readuntil(b"\r"), ANSWER_TIMEOUT_S)
        except TimeoutError as exc:
            raise KioskError("timeout", f"no answer to {code} within {ANSWER_TIMEOUT_S:.0f} s") from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise KioskError("closed", f"the gateway closed the connection during {code}") from exc
        elapsed_ms = 1000 * (time.perf_counter() - started)
        try:
            answer = codec.decode_response(raw)
        except codec.SipParseError as exc:
            raise KioskError("unreadable", str(exc)) from exc
        if answer.checksum_ok is False:
            raise KioskError("bad_checksum", raw.decode(codec.ENCODING, "replace"))
        return answer, elapsed_ms

    async def expect(
        self, code: str, fixed: list[str], fields: Sequence[tuple[str, object]], answer_code: str
    ) -> float:
        """call(), and a KioskError unless the answer is `answer_code` with ok = 1."""
        answer, elapsed_ms = await self.call(code, fixed, fields)
        if answer.code != answer_code:
            raise KioskError(f"answer_{answer.code}", answer.raw.decode(codec.ENCODING, "replace")[:120])
        if answer.fixed.get("ok") != "1":
            raise KioskError(f"refused_{answer_code}", answer.get("AF"))
        return elapsed_ms

    async def login(self, login: str, password: str) -> float:
        return await self.expect("93", ["0", "0"], [("CN", login), ("CO", password), ("CP", LOCATION)], "94")

    async def status(self) -> None:
        """`99` SC Status, as a kiosk sends after its login (its answer, `98`, has no ok flag)."""
        answer, _ = await self.call("99", ["0", "080", "2.00"], [])
        if answer.code != "98":
            raise KioskError(f"answer_{answer.code}", "to 99")

    async def checkout(self, patron: int) -> float:
        now = codec.sip_date(datetime.now())
        fields = [("AO", INSTITUTION), ("AA", card(patron)), ("AB", item(patron)), ("AC", "")]
        return await self.expect("11", ["N", "N", now, codec.BLANK_DATE], fields, "12")

    async def checkin(self, patron: int) -> float:
        """An online check-in: the return date blank (it is for a kiosk replaying offline returns).
        Set to now, a whole-second date would precede a loan made earlier in the same second, which
        the API refuses ("not before the loan date"): the bench's pairs are that quick, patrons are not."""
        now = codec.sip_date(datetime.now())
        fields = [("AP", LOCATION), ("AO", INSTITUTION), ("AB", item(patron)), ("AC", "")]
        return await self.expect("09", ["N", now, codec.BLANK_DATE], fields, "10")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


# --- 1. kiosks doing check-out + check-in pairs ------------------------------------------------------


@dataclass
class PairLoad:
    """What every kiosk of one run records; latencies and errors only of messages sent from
    `measure_from` (the warm-up's are left out)."""

    measure_from: float
    checkout_ms: list[float] = field(default_factory=list)
    checkin_ms: list[float] = field(default_factory=list)
    pairs: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def error(self, exc: BaseException, kind: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(str(exc)[:200])


class KioskStopped(Exception):
    """The kiosk's connection is gone (closed, silent) or its patrons ran out: it stops."""


@dataclass
class Pacer:
    """A kiosk's next send: every `interval` seconds (or at once when behind), until `stop_at`."""

    interval: float
    stop_at: float
    next_send: float = 0.0

    async def wait(self) -> float | None:
        """Sleeps until the next send; its time, or None once the run is over."""
        await asyncio.sleep(max(0.0, self.next_send - time.monotonic()))
        now = time.monotonic()
        if now >= self.stop_at:
            return None
        self.next_send = now + self.interval
        return now


async def _timed(
    step: Callable[[int], Awaitable[float]], patron: int, sent_at: float, samples: list[float], load: PairLoad
) -> bool:
    """One check-out or check-in: its latency recorded, or its error; False when refused."""
    measured = sent_at >= load.measure_from
    try:
        elapsed_ms = await step(patron)
    except KioskError as exc:
        if measured:
            load.error(exc, exc.kind)
        if exc.kind in ("closed", "timeout", "unreadable"):
            raise KioskStopped(str(exc)) from exc
        return False
    if measured:
        samples.append(elapsed_ms)
    return True


async def _logged_in(host: str, port: int) -> Kiosk:
    kiosk = await Kiosk.connect(host, port)
    try:
        await kiosk.login(LOGIN, PASSWORD)
        await kiosk.status()
    except BaseException:
        await kiosk.close()
        raise
    return kiosk


async def _kiosk_pairs(kiosk: Kiosk, patrons: Iterator[int], pacer: Pacer, load: PairLoad) -> None:
    try:
        # Kiosks do not scan in step: each starts somewhere within its first interval.
        pacer.next_send = time.monotonic() + random.uniform(0, pacer.interval)
        while True:
            patron = next(patrons, None)
            if patron is None:
                raise KioskStopped("the kiosk used every patron of its block")
            if (sent_at := await pacer.wait()) is None:
                return
            if not await _timed(kiosk.checkout, patron, sent_at, load.checkout_ms, load):
                continue  # refused: the next pair, with the next patron
            if (sent_at := await pacer.wait()) is None:
                return
            if await _timed(kiosk.checkin, patron, sent_at, load.checkin_ms, load) and sent_at >= load.measure_from:
                load.pairs += 1
    finally:
        await kiosk.close()


def kiosks(
    host: str,
    port: int,
    patrons: range,
    *,
    connections: int,
    interval: float,
    warmup: float,
    duration: float,
) -> dict:
    """`connections` kiosks, all logged in first, then doing pairs for warmup + duration seconds; the
    measured part's figures. Kiosk i takes every connections-th patron of `patrons` from its i-th:
    never another's."""

    async def run() -> PairLoad:
        logins = await asyncio.gather(*(_logged_in(host, port) for _ in range(connections)), return_exceptions=True)
        started = time.monotonic()
        load = PairLoad(measure_from=started + warmup)
        stop_at = started + warmup + duration
        tasks = []
        for i, kiosk in enumerate(logins):
            if isinstance(kiosk, Kiosk):
                tasks.append(_kiosk_pairs(kiosk, iter(patrons[i::connections]), Pacer(interval, stop_at), load))
            else:
                kind = f"login_{kiosk.kind}" if isinstance(kiosk, KioskError) else type(kiosk).__name__
                load.error(kiosk, kind)
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, KioskStopped):
                load.error(outcome, "kiosk_stopped")
            elif isinstance(outcome, BaseException):
                load.error(outcome, type(outcome).__name__)
        return load

    load = asyncio.run(run())
    return {
        "connections": connections,
        "interval_s": interval,
        "seconds": duration,
        "pairs": load.pairs,
        "pairs_per_s": round(load.pairs / duration, 1),
        "messages_per_s": round((len(load.checkout_ms) + len(load.checkin_ms)) / duration, 1),
        "checkout": percentiles(load.checkout_ms),
        "checkin": percentiles(load.checkin_ms),
        "errors": sum(load.errors.values()),
        "error_kinds": dict(load.errors),
        "error_samples": load.error_samples,
    }


# --- 2. idle kiosk sockets against the HTTP API -------------------------------------------------------


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r"):
        chunk = sock.recv(4096)
        if not chunk:
            raise KioskError("closed", "during the login")
        data += chunk
    return data


class IdleKiosks:
    """`count` kiosk sockets, each logged in (`93` answered `941`), then silent until close()."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.failed_logins = 0
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=ANSWER_TIMEOUT_S)
            message = codec.encode("93", ["0", "0"], [("CN", LOGIN), ("CO", PASSWORD), ("CP", LOCATION)], sequence=0)
            sock.sendall(message)
            answer = codec.decode_response(_read_answer(sock))
            if answer.code != "94" or answer.fixed.get("ok") != "1":
                self.failed_logins += 1
            sock.setblocking(False)
            self.sockets.append(sock)

    def still_open(self) -> int:
        """How many the gateway has not closed (a closed one reads end-of-file)."""
        open_count = 0
        for sock in self.sockets:
            try:
                open_count += sock.recv(1) != b""
            except BlockingIOError:
                open_count += 1
            except OSError:
                pass
        return open_count

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


class ApiCaller:
    """One keep-alive HTTP connection to the service; each call's latency in milliseconds."""

    def __init__(self, host: str, port: int, auth: str) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=ANSWER_TIMEOUT_S)
        self.headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}

    def call(self, method: str, path: str, body: dict | None, expected: int) -> float:
        started = time.perf_counter()
        self.conn.request(method, path, json.dumps(body) if body is not None else None, self.headers)
        answer = self.conn.getresponse()
        content = answer.read()
        elapsed_ms = 1000 * (time.perf_counter() - started)
        if answer.status != expected:
            raise RuntimeError(f"{method} {path} answered {answer.status}: {content[:200]!r}")
        return elapsed_ms


def _api_block(host: str, port: int, auth: str, patrons: Iterator[int], seconds: float, callers: int) -> dict:
    """`callers` threads, each on its own connection, alternating `/health/ready/` and a lend for
    `seconds`; every latency, by kind."""
    samples: dict[str, list[float]] = {"ready": [], "lend": []}
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def work() -> None:
        caller = ApiCaller(host, port, auth)
        while time.monotonic() < stop_at:
            with lock:
                patron = next(patrons, None)
            if patron is None:
                with lock:
                    errors.append("the block of patrons ran out")
                return
            try:
                ready = caller.call("GET", "/health/ready/", None, 200)
                body = {"user_email": f"patron{patron}@example.com", "book_id": patron + 5}
                lend = caller.call("POST", "/lendBook/", body, 201)
            except (RuntimeError, OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(str(exc)[:200])
                caller = ApiCaller(host, port, auth)
                continue
            with lock:
                samples["ready"].append(ready)
                samples["lend"].append(lend)

    threads = [threading.Thread(target=work) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"samples": samples, "errors": errors}


def idle_vs_api(
    host: str,
    sip_port: int,
    web_port: int,
    auth: str,
    patrons: range,
    *,
    idle: int,
    rounds: int,
    block_seconds: float,
    callers: int,
) -> dict:
    """`rounds` of ABBA blocks (A: no idle kiosk, B: `idle` idle kiosks held); pooled percentiles of
    each side and the ratios with/without."""
    numbers = iter(patrons)
    pooled: dict[str, dict[str, list[float]]] = {side: {"ready": [], "lend": []} for side in ("without", "with")}
    errors: list[str] = []
    held: list[dict] = []
    for _ in range(rounds):
        for side in ("without", "with", "with", "without"):
            kiosks_held = IdleKiosks(host, sip_port, idle) if side == "with" else None
            try:
                block = _api_block(host, web_port, auth, numbers, block_seconds, callers)
            finally:
                if kiosks_held is not None:
                    held.append(
                        {
                            "opened": len(kiosks_held.sockets),
                            "failed_logins": kiosks_held.failed_logins,
                            "still_open": kiosks_held.still_open(),
                        }
                    )
                    kiosks_held.close()
            for kind, values in block["samples"].items():
                pooled[side][kind] += values
            errors += block["errors"]
    summary: dict = {
        "idle_sockets": idle,
        "rounds": rounds,
        "block_s": block_seconds,
        "callers": callers,
        "errors": len(errors),
        "error_samples": errors[:5],
        "idle_opened_min": min((h["opened"] for h in held), default=0),
        "idle_failed_logins": sum(h["failed_logins"] for h in held),
        "idle_closed_by_gateway": sum(h["opened"] - h["still_open"] for h in held),
    }
    for kind in ("ready", "lend"):
        without, with_idle = percentiles(pooled["without"][kind]), percentiles(pooled["with"][kind])
        summary[kind] = {
            "without": without,
            "with": with_idle,
            "ratio_p50": _ratio(with_idle["p50_ms"], without["p50_ms"]),
            "ratio_p99": _ratio(with_idle["p99_ms"], without["p99_ms"]),
        }
    return summary


def _ratio(value: float | int | None, base: float | int | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


# --- the phase, as tools.bench.run runs it -------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What `make bench` asks of the SIP phase (its --kiosk* and --idle* options)."""

    kiosks: int = KIOSKS
    # A message a second per kiosk: a book drop's or sorter's pace, and a brisk patron's (3-5 s a book).
    interval: float = 1.0
    flat_seconds: float = 10.0
    idle: int = IDLE
    idle_rounds: int = 3
    idle_block_seconds: float = 4.0
    api_callers: int = 4
    warmup: float = 3.0
    duration: float = 20.0

    def per_kiosk(self) -> int:
        """Patrons a kiosk may use in one run: above any pace it can reach (a pair takes over 25 ms)."""
        return int((self.warmup + max(self.duration, self.flat_seconds)) * 40) + 10

    def api_patrons(self) -> int:
        """Lends of the idle comparison: above any rate the API reaches (300 lends/s)."""
        return int(self.idle_rounds * 4 * self.idle_block_seconds * 300) + 100

    def numbers(self) -> int:
        """Patron (and book) numbers the phase uses: two kiosk runs and the idle comparison."""
        return 2 * self.kiosks * self.per_kiosk() + self.api_patrons()


def create_account(env: dict[str, str]) -> None:
    """The bench's kiosk account, through the gateway's own command (its API key and scopes)."""
    run_manage(
        "sip_accounts",
        "create",
        LOGIN,
        "--institution",
        INSTITUTION,
        "--location",
        LOCATION,
        "--password",
        PASSWORD,
        env=env,
    )


def phase(
    procs: ProcessGroup,
    env: dict[str, str],
    web_port: int,
    auth: str,
    first_patron: int,
    plan: Plan,
    drained: Callable[[], object],
) -> dict:
    """Starts the gateway beside the running service, then: the kiosks at their pace (the targets),
    the idle sockets against the API, and the kiosks flat out (capacity, no target)."""
    sip_port, metrics_port = free_port(), free_port()
    create_account(env)
    gateway = [
        PYTHON,
        "-m",
        "sip_gateway",
        "--host",
        HOST,
        "--port",
        str(sip_port),
        "--api-url",
        f"http://{HOST}:{web_port}",
        "--metrics-port",
        str(metrics_port),
    ]
    procs.start("sip", gateway, {**env, "METRICS_ADDRESS": HOST})
    wait_http(f"http://{HOST}:{metrics_port}/health/live")
    per_kiosk = plan.per_kiosk()
    paced_patrons = range(first_patron, first_patron + plan.kiosks * per_kiosk)
    flat_patrons = range(paced_patrons.stop, paced_patrons.stop + plan.kiosks * per_kiosk)
    api_patrons = range(flat_patrons.stop, flat_patrons.stop + plan.api_patrons())
    result: dict = {"plan": asdict(plan)}
    try:
        result["paced"] = kiosks(
            HOST,
            sip_port,
            paced_patrons,
            connections=plan.kiosks,
            interval=plan.interval,
            warmup=plan.warmup,
            duration=plan.duration,
        )
        _print_kiosks("paced", result["paced"])
        drained()
        result["idle"] = idle_vs_api(
            HOST,
            sip_port,
            web_port,
            auth,
            api_patrons,
            idle=plan.idle,
            rounds=plan.idle_rounds,
            block_seconds=plan.idle_block_seconds,
            callers=plan.api_callers,
        )
        _print_idle(result["idle"])
        drained()
        if plan.flat_seconds > 0:
            result["flat"] = kiosks(
                HOST,
                sip_port,
                flat_patrons,
                connections=plan.kiosks,
                interval=0.0,
                warmup=plan.warmup,
                duration=plan.flat_seconds,
            )
            _print_kiosks("flat out", result["flat"])
            drained()
    finally:
        procs.stop("sip")
    return result


def _print_kiosks(name: str, run: dict) -> None:
    out, back = run["checkout"], run["checkin"]
    print(
        f"  sip kiosks {name:<9} {run['connections']} connections, {run['messages_per_s']:>6.1f} messages/s  "
        f"check-out p50 {out['p50_ms']} ms p99 {out['p99_ms']} ms  check-in p50 {back['p50_ms']} ms "
        f"p99 {back['p99_ms']} ms  errors {run['errors']} {run['error_kinds'] or ''}",
        flush=True,
    )


def _print_idle(idle: dict) -> None:
    for kind in ("ready", "lend"):
        figures = idle[kind]
        print(
            f"  {idle['idle_sockets']} idle kiosk sockets: {kind:<5} p50 {figures['without']['p50_ms']} -> "
            f"{figures['with']['p50_ms']} ms ({figures['ratio_p50']}x), p99 {figures['without']['p99_ms']} -> "
            f"{figures['with']['p99_ms']} ms ({figures['ratio_p99']}x)",
            flush=True,
        )
    print(
        f"  idle sockets: {idle['idle_failed_logins']} failed logins, {idle['idle_closed_by_gateway']} closed by "
        f"the gateway; API errors {idle['errors']}",
        flush=True,
    )
