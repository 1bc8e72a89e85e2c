"""Who makes a write and on what terms, handed down the write as an argument.

Every write is made by a *caller* (an API key's name and prefix, `anonymous` when keys are off, a staff
user at the desk, the scheduler, `system` for a shell or a test); it may carry a staff *override*
(`lending.overrides`, whose reason and lifted refusals its history event records); and when the client
sent an Idempotency-Key, its *claim* (`lending.idempotency`), which stores the answer in the write's
transaction. The view (or the job) builds the context once; the service passes it to the rules
(`context.lifts(refusal)`) and to the history (`context.loan_event(...)`), so who acted and under which
override is read from the call, never from state set five frames up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lending import overrides
from lending.events.history import SCHEDULER, SYSTEM, Caller, caller_of, hold_event, loan_event
from lending.refusals import Refusal

if TYPE_CHECKING:
    from lending.idempotency import Claim
    from lending.models import Event, Hold, Loan


@dataclass(frozen=True)
class WriteContext:
    caller: Caller = SYSTEM
    override: overrides.Override | None = None
    claim: Claim | None = None

    @classmethod
    def of_request(
        cls, request: Any, *, override: overrides.Override | None = None, claim: Claim | None = None
    ) -> WriteContext:
        """The context of a write an API request asks for: made by the request's caller (its key)."""
        return cls(caller=caller_of(request), override=override, claim=claim)

    def lifts(self, refusal: Refusal) -> bool:
        """True when the write carries an override, which then lifts `refusal` (and notes it)."""
        return overrides.lifts(self.override, refusal)

    def loan_event(self, loan: Loan, kind: str, *, at: datetime, **data: Any) -> Event:
        """The loan's history event, made by this write's caller."""
        return loan_event(loan, kind, at=at, caller=self.caller, **data)

    def hold_event(self, hold: Hold, kind: str, *, at: datetime, **data: Any) -> Event:
        return hold_event(hold, kind, at=at, caller=self.caller, **data)

    def overridden_event(self, event: Event) -> Event:
        """`event` with this write's override noted on it (the reason, what it lifted), if any."""
        if self.override is not None:
            self.override.record_on(event)
        return event

    def settle(self, answer: Any) -> None:
        """The claim's answer, stored in the write's transaction (when the client sent a key)."""
        if self.claim is not None:
            self.claim.settle(answer)


# A write nobody in particular asked for: a shell, a test.
SYSTEM_WRITE = WriteContext(caller=SYSTEM)
# The scheduler's jobs (`manage.py send_notices`).
SCHEDULED = WriteContext(caller=SCHEDULER)
