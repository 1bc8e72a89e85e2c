"""lending/write_context.py: who makes a write and on what terms travels as an argument."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

from lending import refusals, services
from lending.events import history
from lending.models import EventKind, Hold, Loan
from lending.overrides import Override
from lending.write_context import SCHEDULED, SYSTEM_WRITE, WriteContext

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def test_events_are_made_by_the_contexts_caller():
    desk = WriteContext(caller=history.Caller("staff:librarian"))
    assert desk.loan_event(Loan(pk=1), EventKind.LENT, at=NOW).caller == "staff:librarian"
    key = WriteContext(caller=history.Caller("circulation-desk", "abc123"))
    event = key.hold_event(Hold(pk=2), EventKind.RESERVED, at=NOW)
    assert (event.caller, event.caller_key_prefix, event.hold_id) == ("circulation-desk", "abc123", 2)
    assert SYSTEM_WRITE.caller == history.SYSTEM and SCHEDULED.caller == history.SCHEDULER


def test_only_a_context_with_an_override_lifts_and_it_notes_what_it_lifted():
    assert not SYSTEM_WRITE.lifts(refusals.LOAN_LIMIT)
    staff = WriteContext(override=Override(reason="Visiting scholar"))
    assert staff.lifts(refusals.LOAN_LIMIT)
    assert not staff.lifts(refusals.NO_COPY_AVAILABLE)  # never lifted: it protects other patrons
    event = staff.overridden_event(staff.loan_event(Loan(pk=3), EventKind.LENT, at=NOW))
    assert event.reason == "Visiting scholar"
    assert event.data["override"] == {"lifted": ["loan_limit_reached"]}
    plain = SYSTEM_WRITE.overridden_event(SYSTEM_WRITE.loan_event(Loan(pk=3), EventKind.LENT, at=NOW))
    assert "override" not in plain.data and plain.reason == ""


def test_settle_stores_the_answer_only_with_a_claim():
    settled = []

    class Claim:
        def settle(self, answer):
            settled.append(answer)

    SYSTEM_WRITE.settle("ignored")
    WriteContext(claim=Claim()).settle("the loan")  # type: ignore[arg-type]
    assert settled == ["the loan"]


def test_every_write_takes_its_context_as_an_argument():
    """No write reads who acts from state set elsewhere: each story's entry takes `context`."""
    writes = [
        services.loan_lend,
        services.loan_lend_check,
        services.loan_return,
        services.loan_renew,
        services.hold_reserve,
        services.hold_cancel,
        services.declare_lost,
        services.claim_returned,
        services.resolve,
        services.expire_ready_holds,
        services.age_overdue_to_lost,
    ]
    for write in writes:
        assert "context" in inspect.signature(write).parameters, write.__name__
    assert not hasattr(history, "acting_as") and not hasattr(history, "current_caller")
