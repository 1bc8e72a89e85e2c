"""Lend a book: the patron borrows a copy free for them (fulfilling their hold, if they had one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from lending import blocks, calendar, history, overrides, policy
from lending.book_state import read_state
from lending.clients import books, users
from lending.idempotency import Claim
from lending.locks import lock_book_refreshing_stock, lock_patron
from lending.models import Event, EventKind, Hold, HoldStatus, Loan
from lending.outbox.messages import MessageType, availability_message, enqueue, loan_notification
from lending.precompiled import insert
from lending.services.queue import close_hold, promote_waiting


def loan_lend(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    users.ensure_active_user(user_email)
    book = books.get_book(book_id)
    rules = policy.current()
    try:
        with transaction.atomic():
            lock_book_refreshing_stock(book, bump_version=True)  # a refusal rolls the bump back
            lock_patron(user_email)
            now = timezone.now()
            # After the patron lock: a block committed while this lend waited for it is seen. The
            # patron's loans are counted once, with the book's (`read_state`), for the blocks too.
            state = read_state(book.id, book.copies, patron=user_email, now=now)
            standing = blocks.check_not_blocked(user_email, blocks.Action.BORROW, now, loans=state.patron_loans)
            rules = overrides.relax_borrowing(rules, standing.reasons[blocks.Action.BORROW])
            hold = policy.check_lend(user_email=user_email, state=state, policy=rules)
            loan = _insert_loan(user_email, book, now=now, date_due=calendar.due_after(now, rules.loan_period))
            state.open_loans += 1
            events = [_lent_event(loan, hold)]
            if hold is not None:
                events.append(close_hold(state, hold, HoldStatus.FULFILLED, now=now, loan=loan))
            history.record(*events)
            # Only does something when the Book service now reports more copies than before.
            promote_waiting(state, now=now)
            enqueue(availability_message(book_id), loan_notification(loan, MessageType.LENDING_CONFIRMATION))
            if claim:
                claim.settle(loan)
    except IntegrityError:
        # The partial unique constraint caught a second open loan that slipped past the check.
        raise policy.already_borrowed(user_email, book_id) from None
    return loan


def loan_lend_check(*, user_email: str, book_id: int) -> None:
    """A dry run of `loan_lend`: the same peer checks and rules, no lock and no write. Raises the
    refusal the lend would get; returns when it would succeed (at this instant)."""
    users.ensure_active_user(user_email)
    book = books.get_book(book_id)
    now = timezone.now()
    state = read_state(book.id, book.copies, patron=user_email, now=now)
    standing = blocks.check_not_blocked(user_email, blocks.Action.BORROW, now, loans=state.patron_loans)
    rules = overrides.relax_borrowing(policy.current(), standing.reasons[blocks.Action.BORROW])
    policy.check_lend(user_email=user_email, state=state, policy=rules)


def _insert_loan(user_email: str, book: books.BookInfo, *, now: datetime, date_due: datetime) -> Loan:
    """As Loan.objects.create, by an INSERT written once (lending/precompiled.py)."""
    loan = Loan(user_email=user_email, book_id=book.id, book_title=book.title, date_borrowed=now, date_due=date_due)
    [inserted] = insert([loan])
    return inserted


def _lent_event(loan: Loan, hold: Hold | None) -> Event:
    details: dict[str, Any] = {"book_id": loan.book_id, "date_due": loan.date_due}
    if hold is not None:
        details["hold_id"] = hold.pk
    event = history.loan_event(loan, EventKind.LENT, at=loan.date_borrowed, **details)
    overrides.record(event)
    return event
