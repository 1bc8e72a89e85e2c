"""A small threaded JSON HTTP server shared by the three reference peers, with fault injection.

Faults are set at runtime through `PUT /_faults` (or `peer.faults` in-process):
`{"status": 503}` answers every request with that status, `{"latency": 2.5}` delays every answer,
`{"refuse_seconds": 5}` closes the port so connections are refused for that long. `DELETE /_faults`
clears them. The `/_faults` path itself is never faulty.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[["Request"], tuple[int, Any]]


@dataclass
class Faults:
    status: int | None = None
    latency: float = 0.0

    def clear(self) -> None:
        self.status, self.latency = None, 0.0


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Any
    body: Any


class Router:
    """Routes like `/getBooks/{id}`; every route also answers with a trailing slash."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.rstrip("/"))
        self.routes.append((method, re.compile(f"^{pattern}/?$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        path_known = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match:
                path_known = True
                if route_method == method:
                    return handler, match.groupdict(), True
        return None, {}, path_known


class PeerServer:
    """One reference peer: a router, its state, and a port that can be told to misbehave."""

    name = "peer"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.faults = Faults()
        self.router = Router()
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._refusing_until = 0.0
        self.register_routes(self.router)

    # --- to override ------------------------------------------------------------------------------
    def register_routes(self, router: Router) -> None:
        pass

    # --- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PeerServer:
        self._httpd = _make_httpd(self)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name=f"{self.name}-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._drop_connections()

    def refuse_connections(self, seconds: float) -> None:
        """Close the port (and open connections) for `seconds`, then listen again."""
        self._refusing_until = time.monotonic() + seconds
        self.stop()

        def reopen() -> None:
            time.sleep(seconds)
            if time.monotonic() >= self._refusing_until:
                self.start()

        threading.Thread(target=reopen, daemon=True).start()

    def _drop_connections(self) -> None:
        with self.lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # --- fault control ----------------------------------------------------------------------------
    def control_faults(self, request: Request) -> tuple[int, Any]:
        if request.method == "DELETE":
            self.faults.clear()
            return 200, asdict(self.faults)
        if request.method == "PUT":
            body = request.body if isinstance(request.body, dict) else {}
            if "status" in body:
                self.faults.status = body["status"]
            if "latency" in body:
                self.faults.latency = float(body["latency"] or 0)
            if body.get("refuse_seconds"):
                # Answer first, then close the port.
                threading.Timer(0.05, self.refuse_connections, args=(float(body["refuse_seconds"]),)).start()
        return 200, asdict(self.faults)


def _make_httpd(peer: PeerServer) -> ThreadingHTTPServer:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without TCP_NODELAY a small answer can wait for the client's delayed ACK (40 ms on Linux).
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with peer.lock:
                peer._connections.add(self.connection)

        def finish(self) -> None:
            with peer.lock:
                peer._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: they back the benchmark
            pass

        def do_GET(self) -> None:
            self._dispatch()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        def _dispatch(self) -> None:
            split = urlsplit(self.path)
            body = self._read_body()
            if split.path.rstrip("/") == "/_faults":
                status, payload = peer.control_faults(Request(self.command, split.path, {}, {}, self.headers, body))
                return self._reply(status, payload)
            if peer.faults.latency:
                time.sleep(peer.faults.latency)
            if peer.faults.status:
                return self._reply(peer.faults.status, {"error": "injected fault"})
            handler, params, path_known = peer.router.resolve(self.command, split.path)
            if handler is None:
                if path_known:
                    return self._reply(405, {"error": "method not allowed"})
                return self._reply(404, {"error": "not found"})
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            if body is _INVALID:
                return self._reply(400, {"error": "invalid JSON"})
            status, payload = handler(Request(self.command, split.path, params, query, self.headers, body))
            self._reply(status, payload)

        def _read_body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return None
            raw = self.rfile.read(length)
            try:
                return json.loads(raw)
            except ValueError:
                return _INVALID

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = _QuietThreadingHTTPServer((peer.host, peer.port), RequestHandler)
    httpd.daemon_threads = True
    return httpd


class _QuietThreadingHTTPServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections when dozens of clients connect at once
    # (the concurrency tests, the benchmark); a dropped SYN is retried after 1 s: a ConnectTimeout.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout, kill) is normal here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


_INVALID = object()


class KeyedDeduplicator:
    """Remembers `Idempotency-Key`s already applied, so a repeat is acknowledged and dropped."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.duplicates = 0
        self.lock = threading.Lock()

    def first_time(self, key: str | None) -> bool:
        if not key:
            return True
        with self.lock:
            if key in self.seen:
                self.duplicates += 1
                return False
            self.seen.add(key)
            return True
