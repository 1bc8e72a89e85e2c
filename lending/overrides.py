"""Staff overrides: a write that carries `"override": {"reason": "..."}` lifts the named refusals.

What it lifts is declared with each refusal (`lending.refusals`: `liftable`, collected by code in
`LIFTABLE`); the patron's blocks are lifted all together, as `patron_blocked`. Never a rule about the
book's copies and queue, which protect other patrons.

Only callers holding the `override` scope may send one (the view checks, before anything runs). The
view puts it in the write's context (`lending.write_context.WriteContext`); the rules ask
`context.lifts(refusal)` where they apply a liftable rule (`lending.policy`, `lending.blocks`), and the
services record what was lifted, the reason and the caller in the loan's history event (`Event.reason`,
`data.override`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lending import refusals
from lending.refusals import Refusal

LIFTABLE = refusals.LIFTABLE


@dataclass
class Override:
    reason: str
    # The refusals this write would have met, filled in by the service as it lifts them.
    lifted: list[str] = field(default_factory=list)

    def lift(self, refusal: Refusal | str) -> None:
        code = code_of(refusal)
        assert code in LIFTABLE, f"{code} cannot be overridden"
        if code not in self.lifted:
            self.lifted.append(code)

    def record_on(self, event: Any) -> None:
        """The override on the loan's history event: the reason, and what it lifted."""
        event.reason = self.reason
        event.data = {**event.data, "override": {"lifted": list(self.lifted)}}


def lifts(override: Override | None, refusal: Refusal | str) -> bool:
    """True when the write carries an override, which then lifts `refusal` (noting its code)."""
    if override is None or code_of(refusal) not in LIFTABLE:
        return False
    override.lift(refusal)
    return True


def code_of(refusal: Refusal | str) -> str:
    return refusal.code if isinstance(refusal, Refusal) else refusal
