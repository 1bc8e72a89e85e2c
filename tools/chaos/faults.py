"""The mayhem: a thread that SIGKILLs a random web process, relay or the scheduler and restarts it, and a
thread that makes a random reference peer answer errors, hang or refuse connections for a few seconds."""

from __future__ import annotations

import contextlib
import random
import threading
import time

import requests

from tools.chaos.stats import Stats
from tools.chaos.system import System
from tools.harness.processes import Managed


class Killer(threading.Thread):
    """Every few seconds, SIGKILL a random running web process, relay or the scheduler (with every
    process of its group) and start it again a moment later, in the background."""

    def __init__(self, system: System, interval: float, stop: threading.Event, stats: Stats, rng: random.Random):
        super().__init__(name="killer", daemon=True)
        self.system, self.interval, self.stop, self.stats, self.random = system, interval, stop, stats, rng
        self.restarting: set[str] = set()
        self.restarts: list[threading.Thread] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.wait(self.interval * self.random.uniform(0.6, 1.4)):
            with self.lock:
                candidates = [m for m in self.system.killable if m.name not in self.restarting]
                if not candidates:
                    continue
                victim = self.random.choice(candidates)
                self.restarting.add(victim.name)
            victim.kill()
            victim.kills += 1
            self.stats.add("kills")
            self.stats.add(f"kills: {victim.name.rstrip('0123456789')}")
            restart = threading.Thread(target=self.restart, args=(victim, self.random.uniform(0.0, 0.5)), daemon=True)
            restart.start()
            self.restarts.append(restart)

    def restart(self, victim: Managed, delay: float) -> None:
        time.sleep(delay)
        try:
            victim.start()
            victim.wait_ready(90)
        except RuntimeError as exc:
            self.stats.violation(f"restart failed: {exc}")
        finally:
            with self.lock:
                self.restarting.discard(victim.name)

    def join_restarts(self) -> None:
        for restart in self.restarts:
            restart.join(120)


class FaultInjector(threading.Thread):
    FAULTS = [
        ("errors (503)", {"status": 503}),
        ("errors (500)", {"status": 500}),
        ("hangs", {"latency": 5}),
        ("refuses connections", None),
    ]

    def __init__(
        self, system: System, interval: float, stop: threading.Event, stats: Stats, rng: random.Random, only: str = ""
    ):
        super().__init__(name="faults", daemon=True)
        self.system, self.interval, self.stop, self.stats, self.random = system, interval, stop, stats, rng
        self.peers = {
            "book": system.env["BOOK_MANAGEMENT_URL"],
            "user": system.env["USER_MANAGEMENT_URL"],
            "notification": system.env["NOTIFICATION_SERVICE_URL"],
        }
        self.choices = self._choices(only)

    PEERS = ("book", "user", "notification")

    @classmethod
    def names(cls) -> list[str]:
        return [name for name, _ in cls.FAULTS]

    @classmethod
    def every(cls) -> list[tuple[str, str]]:
        return [(peer, name) for peer in cls.PEERS for name in cls.names()]

    @staticmethod
    def wanted(only: str) -> set[tuple[str, ...]]:
        """`--faults` as (peer, fault name) pairs."""
        return {tuple(item.strip().split(":", 1)) for item in only.split(",")}

    def _choices(self, only: str) -> list[tuple[str, str, dict | None]]:
        """(peer, fault name, fault) to draw from: every pair, or those of `--faults`."""
        faults = dict(self.FAULTS)
        pairs = [pair for pair in self.every() if not only or pair in self.wanted(only)]
        return [(peer, name, faults[name]) for peer, name in pairs]

    def run(self) -> None:
        while not self.stop.wait(self.interval * self.random.uniform(0.5, 1.5)):
            peer, name, fault = self.random.choice(self.choices)
            seconds = self.random.uniform(1, 4)
            url = self.peers[peer]
            try:
                if fault is None:
                    requests.put(f"{url}/_faults", json={"refuse_seconds": seconds}, timeout=2)
                else:
                    requests.put(f"{url}/_faults", json=fault, timeout=2)
                self.stats.add(f"faults: {peer} {name}")
                self.stats.add("faults")
                self.stop.wait(seconds)
            except requests.RequestException:
                pass
            finally:
                self.clear(url)

    def clear(self, url: str, deadline: float = 30) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with contextlib.suppress(requests.RequestException):
                if requests.delete(f"{url}/_faults", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)

    def clear_all(self) -> None:
        for url in self.peers.values():
            self.clear(url, 60)
