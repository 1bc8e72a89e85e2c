"""A relay that dies between delivering a batch and settling it: what a SIGKILL at the worst moment
leaves behind (the peer has the messages; the outbox still says PENDING, claimed once)."""

from __future__ import annotations

import pytest

from lending.outbox import relay


class RelayKilled(BaseException):
    """Stands for the relay process dying: nothing after it runs, nothing is recorded."""


def run_once_killed_before_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """One relay pass whose deliveries land and whose settling never happens."""

    def die(ids):
        raise RelayKilled

    with monkeypatch.context() as patched:
        patched.setattr(relay, "_mark_delivered", die)
        with pytest.raises(RelayKilled):
            relay.run_once()
