"""A TCP proxy between the relays and RabbitMQ that drops, stalls and refuses, and the thread that
makes it misbehave every few seconds during a chaos run.

- drops: every open connection is reset at once (the relay's next publish or confirm fails);
- stalls: bytes stop flowing both ways, connections stay open (no confirm comes back: the relay
  must notice by its heartbeat and socket timeouts, not hang);
- refuses: new connections are closed as soon as they are accepted (and open ones dropped).
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from tools.harness.processes import HOST

CHUNK = 65536


@dataclass
class BrokerProxy:
    """Listens on a free port of 127.0.0.1 and forwards to `target` (host, port)."""

    target: tuple[str, int]
    listener: socket.socket = field(init=False)
    stalled: threading.Event = field(default_factory=threading.Event)
    refusing: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    pairs: set[tuple[socket.socket, socket.socket]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(64)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def start(self) -> BrokerProxy:
        threading.Thread(target=self._accept, name="broker-proxy", daemon=True).start()
        return self

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.drop()

    def drop(self) -> int:
        """Resets every open connection; returns how many."""
        with self.lock:
            pairs, self.pairs = self.pairs, set()
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
        return len(pairs)

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.add((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copies bytes both ways until either side closes; while stalled, reads nothing."""
        peer = {client: upstream, upstream: client}
        try:
            while not self.closed.is_set():
                if self.stalled.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select(list(peer), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self.lock:
                self.pairs.discard((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()


class BrokerFaults(threading.Thread):
    """Every few seconds, one broker fault for 1-4 s; counts them in `counts` (fault name -> times)."""

    FAULTS = ("drops", "stalls", "refuses")

    def __init__(self, proxy: BrokerProxy, interval: float, stop: threading.Event, rng: random.Random):
        super().__init__(name="broker-faults", daemon=True)
        self.proxy, self.interval, self.stop, self.random = proxy, interval, stop, rng
        self.counts: dict[str, int] = dict.fromkeys(self.FAULTS, 0)

    def run(self) -> None:
        while not self.stop.wait(self.interval * self.random.uniform(0.5, 1.5)):
            fault = self.random.choice(self.FAULTS)
            self.counts[fault] += 1
            seconds = self.random.uniform(1, 4)
            if fault == "drops":
                self.proxy.drop()
                continue
            flag = self.proxy.stalled if fault == "stalls" else self.proxy.refusing
            flag.set()
            if fault == "refuses":
                self.proxy.drop()
            self.stop.wait(seconds)
            flag.clear()
        self.proxy.stalled.clear()
        self.proxy.refusing.clear()

    def summary(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in self.counts.items())
