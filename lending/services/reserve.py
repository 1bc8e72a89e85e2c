"""Reserve a book: join its holds queue when no copy is free for the patron."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from lending import blocks, circulation_rules, policy
from lending.book_state import read_state
from lending.clients import books, users
from lending.db import holds
from lending.events import history
from lending.locks import lock_book_and_patron
from lending.models import EventKind, Hold
from lending.services.queue import book_changed, promote_waiting
from lending.write_context import SYSTEM_WRITE, WriteContext


@dataclass(frozen=True)
class PlacedHold:
    """A hold as a write left it, with its place in the queue then (None unless WAITING)."""

    hold: Hold
    queue_position: int | None


def hold_reserve(*, user_email: str, book_id: int, context: WriteContext = SYSTEM_WRITE) -> PlacedHold:
    """Queues the patron for a book none of whose copies is free for them, if the loan policy the
    circulation rules pick for them and the title allows holds."""
    patron = users.active_patron(user_email)
    book = books.get_book(book_id)
    try:
        with transaction.atomic():
            rulebook = circulation_rules.in_force(lock_book_and_patron(book, user_email))
            now = timezone.now()
            # The patron's loans are counted once, with the book's, for the blocks and the rules.
            state = read_state(book.id, book.copies, patron=user_email, now=now, for_reserve=True)
            assert state.patron_loans is not None, "read for this patron"
            blocks.check_patron_in_state(
                state, user_email, blocks.Action.RESERVE, now, rulebook=rulebook, context=context
            )
            on_loan = state.patron_loans.of_this_book > 0
            decision = rulebook.decide(patron.category, book.item_type)
            policy.check_reservable(user_email=user_email, state=state, on_loan=on_loan, decision=decision)
            hold = Hold(
                pk=state.next_hold_id, user_email=user_email, book_id=book_id, book_title=book.title, date_reserved=now
            )
            reserved = context.hold_event(hold, EventKind.RESERVED, at=now, book_id=book_id)
            # The hold and its event: one statement.
            history.record_with([holds.waiting_hold_with_id_insert(hold)], context.overridden_event(reserved))
            state.holds.append(hold)
            # Only does something when the Book service now reports more copies than before.
            if promote_waiting(state, now=now, context=context):
                book_changed(book_id)
            placed = PlacedHold(hold, state.position_of(hold))
            context.settle(placed)
    except IntegrityError:
        raise policy.already_reserved(user_email, book_id) from None
    return placed
