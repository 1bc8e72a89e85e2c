"""Lend a book: the patron borrows a copy free for them (fulfilling their hold, if they had one). A
check-out by barcode (`lending.services.checkout`) is the same lend, naming the copy."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from lending import blocks, calendar, circulation_rules, policy, refusals
from lending.book_state import BookState, read_state
from lending.circulation_rules import Decision, PolicyTerms
from lending.clients import books, users
from lending.db import holds, outbox
from lending.db import loans as statements
from lending.events import history
from lending.locks import lock_book_and_patron
from lending.models import Event, EventKind, Hold, HoldStatus, Loan
from lending.outbox.messages import MessageType, availability_message, loan_notification
from lending.services.queue import close_hold, promote_waiting
from lending.write_context import SYSTEM_WRITE, WriteContext


def loan_lend(*, user_email: str, book_id: int, context: WriteContext = SYSTEM_WRITE) -> Loan:
    patron = users.active_patron(user_email)
    book = books.get_book(book_id)
    return lend_copy(patron=patron, book=book, context=context, item_type=book.item_type)


def lend_copy(
    *,
    patron: users.Patron,
    book: books.BookInfo,
    context: WriteContext,
    item_barcode: str | None = None,
    item_type: str | None = None,
) -> Loan:
    """The lend, once the peers said the patron and the book exist: under the book lock, every rule of
    a lend. `item_barcode` names the copy (a check-out, `lending.services.checkout`): it must be
    neither out nor trapped for another patron's hold, and it takes one of the book's copies in the
    count like any other loan; None for a title-level lend. `item_type`: the copy's (or the title's),
    which with the patron's category picks the loan policy (`lending.circulation_rules`). `context`: who
    lends, under which override, with which idempotency claim (`lending.write_context`)."""
    user_email = patron.email
    balance = blocks.fees_standing(user_email)  # a peer call: before the locks (none without FINES_BLOCK_LIMIT)
    try:
        with transaction.atomic():
            # The book lock (a refusal rolls its version bump back), then the patron lock.
            rulebook = circulation_rules.in_force(lock_book_and_patron(book, user_email, bump_version=True))
            if item_barcode is not None:
                check_copy_on_shelf_for(user_email, book.id, item_barcode)
            now = timezone.now()
            # After the patron lock: a block committed while this lend waited for it is seen. The
            # patron's loans are counted once, with the book's (`read_state`), for the blocks too.
            state = read_state(book.id, book.copies, patron=user_email, now=now, for_lend=True)
            decision = rulebook.decide(patron.category, item_type)
            hold = _check_lend(
                user_email, state, decision, item_barcode, context, now=now, rulebook=rulebook, fees=balance
            )
            date_due = calendar.due_after(now, timedelta(days=decision.terms.loan_days))
            loan = _new_loan(
                state.next_loan_id,
                user_email,
                book,
                now=now,
                date_due=date_due,
                item_barcode=item_barcode,
                item_type=item_type,
                terms=decision.terms,
            )
            state.open_loans += 1
            events = [_lent_event(loan, hold, context)]
            if hold is not None:
                events.append(close_hold(state, hold, HoldStatus.FULFILLED, now=now, context=context, loan=loan))
            # Only does something when the Book service now reports more copies than before.
            promote_waiting(state, now=now, context=context)
            # The loan, its outbox rows and its events: one statement (the foreign keys to the loan, and
            # the fulfilled hold's, are checked at commit).
            messages = [availability_message(book.id), loan_notification(loan, MessageType.LENDING_CONFIRMATION)]
            history.record_with([statements.loan_with_id_insert(loan), outbox.messages_insert(messages)], *events)
            context.settle(loan)
    except IntegrityError as exc:
        # A partial unique constraint caught a second open loan that slipped past the checks: of this
        # copy (`one_open_loan_per_item_barcode`) or of this book by this patron.
        if item_barcode is not None and "item_barcode" in str(exc):
            raise refusals.ITEM_ON_LOAN.error(item_barcode=item_barcode) from None
        raise policy.already_borrowed(user_email, book.id) from None
    return loan


def _check_lend(
    user_email: str,
    state: BookState,
    decision: Decision,
    item_barcode: str | None,
    context: WriteContext,
    *,
    now: datetime,
    rulebook: circulation_rules.Rulebook,
    fees: blocks.FeesStanding,
) -> Hold | None:
    """Every refusal of a lend, a real one or a dry run: the patron's blocks (with the loans and blocks
    read with the book's state, and the balance `fees` asked before), then `policy.check_lend` with the
    patron's open loans that the matched rule's limit counts: all of them, or those of the rule's item
    type (one more query, only for a rule that names a type and sets a limit)."""
    blocks.check_patron_in_state(
        state, user_email, blocks.Action.BORROW, now, rulebook=rulebook, fees=fees, context=context
    )
    assert state.patron_loans is not None, "read for this patron"
    of_type = None
    if decision.rule.item_type is not None and decision.terms.max_loans is not None:
        of_type = statements.count_patron_loans_of_type(user_email, decision.rule.item_type)
    covered = policy.covered_loans(decision, all_open=state.patron_loans.open, of_type=of_type)
    return policy.check_lend(
        user_email=user_email,
        state=state,
        decision=decision,
        open_covered=covered,
        item_barcode=item_barcode,
        context=context,
    )


def check_copy_on_shelf_for(user_email: str, book_id: int, item_barcode: str) -> None:
    """Under the book lock: the copy is not out (to this patron: `already_borrowed`; to anyone else:
    `item_on_loan`, which never says to whom) and no READY hold trapped it for another patron
    (`item_on_hold_shelf`). The holder it was trapped for may take it: the lend fulfils their hold."""
    borrower = statements.borrower_of_copy(item_barcode)
    if borrower == user_email:
        raise policy.already_borrowed(user_email, book_id)
    if borrower is not None:
        raise refusals.ITEM_ON_LOAN.error(item_barcode=item_barcode)
    holder = holds.trapped_hold(item_barcode)
    if holder is not None and holder.user_email != user_email:
        raise refusals.ITEM_ON_HOLD_SHELF.error(item_barcode=item_barcode)


def loan_lend_check(*, user_email: str, book_id: int, context: WriteContext = SYSTEM_WRITE) -> None:
    """A dry run of `loan_lend`: the same peer checks and rules, no lock and no write. Raises the
    refusal the lend would get; returns when it would succeed (at this instant)."""
    patron = users.active_patron(user_email)
    book = books.get_book(book_id)
    now = timezone.now()
    rulebook = circulation_rules.in_force()
    state = read_state(book.id, book.copies, patron=user_email, now=now)
    decision = rulebook.decide(patron.category, book.item_type)
    fees = blocks.fees_standing(user_email)
    _check_lend(user_email, state, decision, None, context, now=now, rulebook=rulebook, fees=fees)


def _new_loan(
    loan_id: int | None,
    user_email: str,
    book: books.BookInfo,
    *,
    now: datetime,
    date_due: datetime,
    item_barcode: str | None,
    item_type: str | None,
    terms: PolicyTerms,
) -> Loan:
    """The lend's loan, with the id it took with the book's state (`read_state(for_lend=True)`), not
    written yet."""
    assert loan_id is not None, "read with for_lend=True"
    return Loan(
        pk=loan_id,
        user_email=user_email,
        book_id=book.id,
        book_title=book.title,
        date_borrowed=now,
        date_due=date_due,
        item_barcode=item_barcode,
        item_type=item_type,
        loan_policy=terms.name,
        policy_terms=terms.snapshot(),
    )


def _lent_event(loan: Loan, hold: Hold | None, context: WriteContext) -> Event:
    details: dict[str, Any] = {"book_id": loan.book_id, "date_due": loan.date_due, "loan_policy": loan.loan_policy}
    if loan.item_barcode is not None:  # a check-out: the copy (a title-level lend's history is as before)
        details["item_barcode"] = loan.item_barcode
    if hold is not None:
        details["hold_id"] = hold.pk
    return context.overridden_event(context.loan_event(loan, EventKind.LENT, at=loan.date_borrowed, **details))
