"""Stalled clients for `make bench`: sockets holding half-sent requests while the load runs.

Five kinds in turn: mid request line, mid headers, mid body (Content-Length), mid chunked body, and
headers trickling one byte a second. A watcher thread notes when the server closes each one.
"""

from __future__ import annotations

import selectors
import socket
import statistics
import threading
import time
from contextlib import suppress

LEND_HEAD = b"POST /lendBook/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
BODY = b'{"user_email":"stalled@example.com","book_id":1}'
KINDS = (
    (b"GET /health/li", False),
    (b"GET /health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", False),
    (LEND_HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:5], False),
    (LEND_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + BODY[:5], False),
    (b"GET /health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ", True),
)


class Stall:
    def __init__(self, host: str, port: int, count: int) -> None:
        self.opened: dict[socket.socket, float] = {}
        self.closed_after: list[float] = []
        self.trickling: list[socket.socket] = []
        self.refused = 0
        for i in range(count):
            payload, trickles = KINDS[i % len(KINDS)]
            try:
                sock = socket.create_connection((host, port), timeout=5)
                sock.sendall(payload)
            except OSError:
                self.refused += 1
                continue
            sock.setblocking(False)
            self.opened[sock] = time.monotonic()
            if trickles:
                self.trickling.append(sock)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._trickle, self._watch)]
        for thread in self.threads:
            thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(1.0):
            for sock in self.trickling:
                with suppress(OSError):
                    sock.send(b"a")

    def _watch(self) -> None:
        """A socket counts as closed by the server once it reads end-of-file (after any answer)."""
        with selectors.DefaultSelector() as selector:
            for sock in self.opened:
                selector.register(sock, selectors.EVENT_READ, data=sock)
            while not self.stop.is_set() and selector.get_map():
                for key, _ in selector.select(timeout=0.2):
                    sock = key.data
                    try:
                        gone = sock.recv(65536) == b""
                    except BlockingIOError:
                        gone = False
                    except OSError:
                        gone = True
                    if gone:
                        selector.unregister(sock)
                        self.closed_after.append(time.monotonic() - self.opened[sock])

    def finish(self) -> dict:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        for sock in self.opened:
            sock.close()
        after = sorted(self.closed_after)
        return {
            "sockets": len(self.opened),
            "refused": self.refused,
            "closed_by_server": len(after),
            "closed_after_p50_s": round(statistics.median(after), 2) if after else None,
            "closed_after_max_s": round(after[-1], 2) if after else None,
        }
