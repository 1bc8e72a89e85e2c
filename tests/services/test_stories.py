"""The services' stories called directly (no HTTP): lend, return, renew, reserve, cancel, expire — what each
writes and what it returns, against PostgreSQL and the in-process reference peers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from lending import selectors, services
from lending.errors import LendingError
from lending.models import Hold, HoldStatus, Loan, LoanStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def another(peers):
    """A second fresh patron."""
    return peers.user.add_user(f"other-{uuid.uuid4().hex[:10]}@example.com")["email"]


def reader(peers) -> str:
    return peers.user.add_user(f"reader-{uuid.uuid4().hex[:10]}@example.com")["email"]


def test_a_lend_writes_one_open_loan_and_the_copy_is_gone(patron, book):
    loan = services.loan_lend(user_email=patron, book_id=book["id"])
    assert (loan.user_email, loan.book_id, loan.status, loan.date_returned) == (patron, book["id"], "ACTIVE", None)
    assert list(Loan.objects.open_of(patron, book["id"])) == [loan]
    assert selectors.book_is_available(book["id"])[0] is False


def test_a_refused_lend_writes_nothing(patron, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    with pytest.raises(LendingError) as refused:
        services.loan_lend(user_email=patron, book_id=book["id"])
    assert refused.value.code == "already_borrowed"
    assert Loan.objects.count() == 1


def test_a_return_closes_the_loan_and_frees_the_copy(patron, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    returned = services.loan_return(user_email=patron, book_id=book["id"])
    assert returned.status == LoanStatus.RETURNED and returned.date_returned is not None
    assert selectors.book_is_available(book["id"])[0] is True


def test_a_renewal_moves_the_due_date_on_and_counts(patron, book):
    lent = services.loan_lend(user_email=patron, book_id=book["id"])
    renewed = services.loan_renew(user_email=patron, book_id=book["id"])
    assert renewed.renewals == 1 and renewed.date_due > lent.date_due


def test_reservations_queue_in_order_and_say_their_place(peers, patron, another, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    first = services.hold_reserve(user_email=another, book_id=book["id"])
    second = services.hold_reserve(user_email=reader(peers), book_id=book["id"])
    assert (first.queue_position, second.queue_position) == (1, 2)
    assert first.hold.status == HoldStatus.WAITING


def test_a_return_keeps_the_copy_for_the_first_in_the_queue(patron, another, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    placed = services.hold_reserve(user_email=another, book_id=book["id"])
    services.loan_return(user_email=patron, book_id=book["id"])
    hold = Hold.objects.get(pk=placed.hold.pk)
    assert hold.status == HoldStatus.READY and hold.pickup_deadline is not None


def test_a_cancelled_hold_leaves_the_queue_and_the_next_moves_up(peers, patron, another, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    services.hold_reserve(user_email=another, book_id=book["id"])
    behind = services.hold_reserve(user_email=reader(peers), book_id=book["id"])
    cancelled = services.hold_cancel(user_email=another, book_id=book["id"])
    assert cancelled.hold.status == HoldStatus.CANCELLED and cancelled.queue_position is None
    assert [(h.pk, h.queue_position) for h in selectors.holds(book_id=book["id"])] == [(behind.hold.pk, 1)]


def test_a_ready_hold_not_picked_up_in_time_expires(patron, another, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    placed = services.hold_reserve(user_email=another, book_id=book["id"])
    services.loan_return(user_email=patron, book_id=book["id"])
    deadline = Hold.objects.get(pk=placed.hold.pk).pickup_deadline
    assert services.expire_ready_holds(now=deadline - timedelta(seconds=1)) == 0
    assert services.expire_ready_holds(now=max(deadline, timezone.now()) + timedelta(seconds=1)) == 1
    assert Hold.objects.get(pk=placed.hold.pk).status == HoldStatus.EXPIRED
