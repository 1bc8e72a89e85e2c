"""Auto-renewal (LOAN_AUTO_RENEW): the scheduler renews loans due soon through the patron's own
renewal (its rules and blocks), and tells the patron once per due date why when a rule refuses."""

from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.core.management import call_command

from lending import auto_renew, blocks
from lending.models import Event, EventKind, Loan, OutboxMessage
from tests.conftest import post_json
from tests.factories import days

pytestmark = pytest.mark.django_db


@pytest.fixture
def due_soon(api, patron, book):
    """The patron's loan of the book, due in a day."""
    assert post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 201
    loan = Loan.objects.get(user_email=patron)
    Loan.objects.filter(pk=loan.pk).update(date_due=loan.date_borrowed + days(1))
    loan.refresh_from_db()
    return loan


def notices_of(loan, message_type):
    return list(OutboxMessage.objects.filter(payload__loan_id=loan.pk, payload__message_type=message_type))


def test_off_by_default(due_soon, settings):
    assert settings.LOAN_AUTO_RENEW is False
    assert auto_renew.auto_renew_loans() == 0
    assert Loan.objects.get(pk=due_soon.pk).renewals == 0


def test_the_scheduler_renews_a_loan_due_soon(due_soon, settings):
    settings.LOAN_AUTO_RENEW = True
    call_command("send_notices", stdout=StringIO())
    loan = Loan.objects.get(pk=due_soon.pk)
    assert loan.renewals == 1 and loan.date_due > due_soon.date_due
    assert notices_of(loan, "renewal_confirmation")
    assert not notices_of(loan, "due_soon_reminder")  # renewed first: no longer due soon
    renewed = Event.objects.get(loan=loan, kind=EventKind.RENEWED)
    assert renewed.caller == "system:scheduler"


def test_a_refused_renewal_is_explained_once(api, peers, due_soon, settings):
    settings.LOAN_AUTO_RENEW = True
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    assert post_json(api, "/reserveBook/", {"user_email": other, "book_id": due_soon.book_id}).status_code == 201
    assert auto_renew.auto_renew_loans() == 0
    assert auto_renew.auto_renew_loans() == 0
    refused = notices_of(due_soon, "auto_renew_refused")
    assert len(refused) == 1
    assert refused[0].payload["reason_code"] == "book_reserved_by_others"
    assert Loan.objects.get(pk=due_soon.pk).renewals == 0


def test_a_blocked_patron_is_not_auto_renewed(due_soon, settings):
    settings.LOAN_AUTO_RENEW = True
    blocks.place(
        due_soon.user_email, reason="Desk", actions=["renew"], expires_at=None, by="t", now=due_soon.date_borrowed
    )
    assert auto_renew.auto_renew_loans() == 0
    assert notices_of(due_soon, "auto_renew_refused")[0].payload["reason_code"] == "patron_blocked"


def test_loans_not_due_soon_are_left_alone(api, patron, book, settings):
    settings.LOAN_AUTO_RENEW = True
    assert post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 201
    assert auto_renew.auto_renew_loans() == 0
