"""`make bench`'s SIP2 kiosks (tools/bench/sip.py) against a stand-in gateway speaking SIP2 with the gateway's
own codec: every message framed and checksummed, each kiosk's pairs on patrons of its own, refusals and
bad checksums counted as errors, idle sockets logged in and seen closed; and issue 24's targets in the
report."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest

from sip_gateway import codec
from tools.bench import report, sip


@dataclass
class StandIn:
    """A SIP2 server answering 93/99/11/09 as the gateway would (ok, with AY and AZ), recording every
    request; `refuse_items` are refused at check-out, `corrupt` answers carry a wrong checksum."""

    refuse_items: set[str] = field(default_factory=set)
    corrupt: bool = False
    requests: list[codec.Message] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None

    def drop(self, index: int) -> None:
        """Closes the index-th connection, as the gateway closes a kiosk's (from the test's thread)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.writers[index].close)

    def answer(self, request: codec.Message) -> bytes:
        now = codec.sip_date(None)
        if request.code == "93":
            ok = request.get("CN") == sip.LOGIN and request.get("CO") == sip.PASSWORD
            code, fixed, fields = "94", ["1" if ok else "0"], []
        elif request.code == "99":
            code, fixed, fields = "98", ["Y", "Y", "Y", "N", "N", "N", "010", "003", now, "2.00"], []
        elif request.code == "11":
            ok = request.get("AB") not in self.refuse_items
            fields = [("AO", request.get("AO")), ("AA", request.get("AA")), ("AB", request.get("AB"))]
            code, fixed = "12", ["1" if ok else "0", "N", "U", "Y", now]
            if not ok:
                fields.append(("AF", "This item is not available."))
        else:
            code, fixed, fields = "10", ["1", "Y", "U", "N", now], [("AB", request.get("AB"))]
        data = codec.encode(code, fixed, fields, sequence=request.sequence)
        if self.corrupt:
            data = data[:-5] + (b"0000" if not data.endswith(b"0000\r") else b"1111") + b"\r"
        return data

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        buffer = bytearray()
        while chunk := await reader.read(4096):
            buffer += chunk
            for raw in codec.frames(buffer):
                request = codec.decode_request(raw)
                self.requests.append(request)
                writer.write(self.answer(request))
        writer.close()


@contextmanager
def stand_in(**options) -> Iterator[StandIn]:
    """The stand-in on a free port, served by an event loop of its own thread (tools.bench.sip runs its own)."""
    server = StandIn(**options)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def main() -> None:
        listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        started.set()
        async with listener:
            await listener.serve_forever()

    def serve() -> None:
        with suppress(asyncio.CancelledError):
            loop.run_until_complete(main())

    server.loop = loop
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield server
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)


def _run(server: StandIn, patrons: range, **kw) -> dict:
    options = {"connections": 3, "interval": 0.0, "warmup": 0.0, "duration": 0.3} | kw
    return sip.kiosks("127.0.0.1", server.port, patrons, **options)


def test_kiosks_log_in_then_do_pairs_with_checksummed_messages_on_patrons_of_their_own():
    with stand_in() as server:
        run = _run(server, range(100, 10_000))
    assert run["errors"] == 0, run["error_samples"]
    assert run["pairs"] > 0 and run["checkout"]["count"] >= run["pairs"]
    assert run["checkout"]["p99_ms"] >= run["checkout"]["p50_ms"] > 0
    codes = [m.code for m in server.requests]
    assert codes.count("93") == codes.count("99") == 3
    # Every message with error detection: a good checksum, AY counting 0-9 per connection.
    assert all(m.checksum_ok and m.sequence is not None for m in server.requests)
    checkouts = [m for m in server.requests if m.code == "11"]
    checkins = [m for m in server.requests if m.code == "09"]
    patrons = [int(m.get("AA")[4:]) - 1000 for m in checkouts]
    assert len(set(patrons)) == len(patrons), "a patron is used once"
    # Patron k's card with book k+5's copy, in the reference peers' demo schemes.
    assert all(
        m.get("AB") == sip.item(p) and m.get("AA") == f"2100{1000 + p:06d}"
        for m, p in zip(checkouts, patrons, strict=True)
    )
    assert sip.item(7) == "3900001201"
    # A check-in returns the item just checked out, online (no return date).
    assert {m.get("AB") for m in checkins} <= {m.get("AB") for m in checkouts}
    assert all(m.fixed["return_date"] == codec.BLANK_DATE for m in checkins)


def test_a_refused_check_out_is_an_error_and_the_kiosk_goes_on_with_the_next_patron():
    refused = {sip.item(p) for p in range(100, 130)}
    with stand_in(refuse_items=refused) as server:
        run = _run(server, range(100, 10_000))
    assert run["error_kinds"]["refused_12"] == len(refused)
    assert "This item is not available." in run["error_samples"][0]
    assert run["pairs"] > 0
    # No check-in of a refused item.
    assert not {m.get("AB") for m in server.requests if m.code == "09"} & refused


def test_an_answer_with_a_bad_checksum_is_counted_and_stops_no_run():
    with stand_in(corrupt=True) as server:
        run = _run(server, range(100, 10_000))
    assert run["errors"] == 3, "the three logins"
    assert set(run["error_kinds"]) == {"login_bad_checksum"}
    assert run["pairs"] == 0


def test_a_kiosk_out_of_patrons_says_so():
    with stand_in() as server:
        run = _run(server, range(100, 106), connections=2)
    assert run["pairs"] == 6
    assert run["error_kinds"] == {"kiosk_stopped": 2}


def test_idle_kiosks_stay_logged_in_and_a_socket_the_server_closes_is_seen():
    with stand_in() as server:
        idle = sip.IdleKiosks("127.0.0.1", server.port, 5)
        try:
            assert (len(idle.sockets), idle.failed_logins) == (5, 0)
            assert [m.code for m in server.requests] == ["93"] * 5
            assert idle.still_open() == 5
            server.drop(0)
            deadline = time.monotonic() + 5
            while idle.still_open() != 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert idle.still_open() == 4
        finally:
            idle.close()


def test_percentiles_of_the_latencies():
    figures = sip.percentiles([float(ms) for ms in range(1, 101)])
    assert figures == {"count": 100, "p50_ms": 50.5, "p90_ms": 91.0, "p99_ms": 100.0, "max_ms": 100.0}
    assert sip.percentiles([])["p99_ms"] is None


def _sip_results(p99: float, errors: int, ratio_ready: float, ratio_lend: float) -> dict:
    def side(p50: float) -> dict:
        return {"p50_ms": p50, "p99_ms": 3 * p50}

    paced = {
        "connections": 50,
        "interval_s": 1.0,
        "pairs": 500,
        "messages_per_s": 50.0,
        "checkout": {"p50_ms": 20.0, "p99_ms": p99, "max_ms": 2 * p99},
        "checkin": {"p50_ms": 18.0, "p99_ms": 90.0, "max_ms": 120.0},
        "errors": errors,
        "error_kinds": {"refused_12": errors} if errors else {},
    }
    idle = {
        "idle_sockets": 200,
        "rounds": 3,
        "block_s": 4.0,
        "callers": 4,
        "errors": 0,
        "idle_failed_logins": 0,
        "idle_closed_by_gateway": 0,
        "ready": {"without": side(2.0), "with": side(2.0 * ratio_ready), "ratio_p50": ratio_ready, "ratio_p99": 1.0},
        "lend": {"without": side(15.0), "with": side(15.0 * ratio_lend), "ratio_p50": ratio_lend, "ratio_p99": 1.0},
    }
    return {"scenarios": {}, "sip": {"paced": paced, "idle": idle}}


@pytest.mark.parametrize(
    ("p99", "errors", "ready", "lend", "met"),
    [
        (240.0, 0, 1.05, 0.98, [True, True, True, True]),
        (251.0, 2, 1.12, 1.1, [False, False, False, True]),
    ],
)
def test_issue_24s_targets(p99, errors, ready, lend, met):
    checks = report.sip_targets(_sip_results(p99, errors, ready, lend)["sip"])
    assert [c["met"] for c in checks] == met
    assert [c["target"] for c in checks] == ["p99 <= 250 ms", "zero errors", "p50 within 1.1x of none"] + [
        "p50 within 1.1x of none"
    ]


def test_the_report_has_a_sip_section_and_its_targets():
    results = _sip_results(120.0, 0, 1.01, 1.02)
    text = "\n".join(report.sip_kiosks(results))
    assert "## SIP2 kiosks" in text
    assert "| 50 | a message every 1.0 s | 50.0 | 20.0 / 120.0 / 240.0 |" in text
    assert "| /health/ready/ | 2.0 / 2.02 | 1.01x |" in text
    assert {c["scenario"] for c in report.targets(results)} >= {
        "SIP2 kiosks: check-out (50 connections)",
        "200 idle kiosk sockets: lend",
    }
