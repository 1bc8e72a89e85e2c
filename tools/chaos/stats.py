"""What a chaos run saw (counts, HTTP answers, violations) and what its clients were told (the ledger the
database must match at the end)."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def status(self, path: str, status: int) -> None:
        with self.lock:
            self.statuses[f"{path.strip('/')} {status}"] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 200:
                self.violations.append(text)
            self.counts["violations"] += 1


@dataclass
class Ledger:
    """What the clients were told: the truth the database must match."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    lends: dict[int, tuple[str, int]] = field(default_factory=dict)  # acknowledged loan id -> (user, book)
    returns: set[int] = field(default_factory=set)  # acknowledged returned loan ids
    uncertain: set[tuple[str, int]] = field(default_factory=set)  # (user, book) of ops never acknowledged
