"""`/metrics` and a liveness check for the background processes (the outbox relay, the scheduler).

They serve no HTTP of their own, so each starts this small threaded server on its own port
(RELAY_METRICS_PORT, SCHEDULER_METRICS_PORT; 0 keeps it off):

- `GET /metrics`: the Prometheus exposition of the process (and, for the relay, the outbox gauges
  read from the database at scrape time);
- `GET /health/live`: 200 while the loop makes progress, 503 once no pass has completed for
  `stall_after` seconds, so the kubelet restarts a relay or scheduler stuck in a call that never
  returns. The server runs on its own threads: it keeps answering while the loop is stuck, and
  says so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.db import connections
from prometheus_client import CONTENT_TYPE_LATEST

from lending.observability import metrics

logger = logging.getLogger(__name__)


class Heartbeat:
    """When the loop last completed a pass; the process's start counts as one (its first pass may
    take a while)."""

    def __init__(self, process: str, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = process
        self.stall_after = stall_after
        self.clock = clock
        self._last = clock()

    def beat(self, *, ok: bool = True) -> None:
        """Records a pass: a failed one is counted, but only a successful one proves progress."""
        metrics.record_pass(self.process, ok)
        if ok:
            self.progress()

    def completed_with_failures(self) -> None:
        """A pass that ran to its end although part of its work failed (a scheduler job): counted as
        failed, yet the loop made progress, so liveness holds and the stalled alert stays quiet. A
        restart would not mend the job; its own failure counter (and alert) names it."""
        metrics.record_pass(self.process, False)
        self.progress()

    def progress(self) -> None:
        """Work completed within a pass (a relay batch): the loop is alive even if the pass is long."""
        self._last = self.clock()
        metrics.record_progress(self.process)

    def seconds_since_last(self) -> float:
        return self.clock() - self._last

    def stalled(self) -> bool:
        return self.seconds_since_last() > self.stall_after


def _handler(heartbeat: Heartbeat, domain_state: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                try:
                    self._send(200, metrics.scrape(domain_state=domain_state), CONTENT_TYPE_LATEST)
                finally:
                    connections.close_all()  # this request's thread opened its own connection
            elif path == "/health/live":
                self._send_liveness()
            else:
                self._send(404, b'{"error": {"code": "not_found", "message": "Not found."}}', "application/json")

        def _send_liveness(self) -> None:
            stalled = heartbeat.stalled()
            body = {
                "status": "stalled" if stalled else "ok",
                "process": heartbeat.process,
                "seconds_since_last_pass": round(heartbeat.seconds_since_last(), 3),
                "stall_after_seconds": heartbeat.stall_after,
            }
            self._send(503 if stalled else 200, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
            pass  # a scrape every few seconds is not worth a log line

    return Handler


class OpsServer(ThreadingHTTPServer):
    daemon_threads = True


def start(heartbeat: Heartbeat, port: int, *, address: str, domain_state: bool) -> OpsServer | None:
    """Serves on a daemon thread; None when `port` is 0 (off). A port already taken fails loudly:
    a process that cannot be observed or probed should not pretend to be fine."""
    if not port:
        return None
    server = OpsServer((address, port), _handler(heartbeat, domain_state))
    thread = threading.Thread(target=server.serve_forever, name=f"{heartbeat.process}-metrics", daemon=True)
    thread.start()
    logger.info("%s: /metrics and /health/live on %s:%d", heartbeat.process, address, server.server_address[1])
    return server
