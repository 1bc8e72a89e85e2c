"""Staff overrides: a write that carries `"override": {"reason": "..."}` lifts the named refusals.

Lifted: the patron's blocks (`patron_blocked`), the loan limit (`loan_limit_reached`), the overdue-loan
rule (`patron_has_overdue_loans`), the renewal limit (`renewal_limit_reached`) and the renewal of an
overdue loan (`loan_overdue`). Never lifted: `no_copy_available`, `already_borrowed` — nor any rule about
the book's copies and queue, which protect other patrons.

Only callers holding the `override` scope may send one (the view checks, before anything runs). The
view sets the override for the write (`applying`), as it sets the caller; the rules ask `lifts(code)`
where they apply a liftable rule (`lending.policy`, `lending.blocks`), and the services record what was
lifted, the reason and the caller in the loan's history event (`Event.reason`, `data.override`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lending.models import Event

LIFTABLE = frozenset(
    {"patron_blocked", "loan_limit_reached", "patron_has_overdue_loans", "renewal_limit_reached", "loan_overdue"}
)


@dataclass
class Override:
    reason: str
    # The refusals this write would have met, filled in by the service as it lifts them.
    lifted: list[str] = field(default_factory=list)

    def lift(self, code: str) -> None:
        assert code in LIFTABLE, f"{code} cannot be overridden"
        if code not in self.lifted:
            self.lifted.append(code)

    def record_on(self, event: Any) -> None:
        """The override on the loan's history event: the reason, and what it lifted."""
        event.reason = self.reason
        event.data = {**event.data, "override": {"lifted": list(self.lifted)}}


_current: contextvars.ContextVar[Override | None] = contextvars.ContextVar("override", default=None)


@contextmanager
def applying(override: Override | None) -> Iterator[None]:
    token = _current.set(override)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Override | None:
    return _current.get()


def lifts(code: str) -> bool:
    """True when the write carries an override, which then lifts `code` (noting it)."""
    override = current()
    if override is None or code not in LIFTABLE:
        return False
    override.lift(code)
    return True


def record(event: Event) -> None:
    """Note the write's override (if any) on its history event."""
    override = current()
    if override is not None:
        override.record_on(event)
