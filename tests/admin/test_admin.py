"""The staff admin: every page loads, loans are found by email and book id and overdue ones marked,
dead outbox messages are replayed and then delivered by the relay."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from lending.models import Hold, IdempotencyRecord, Loan, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import relay
from lending.outbox.messages import MessageType, notification_payload
from tests.factories import HoldFactory, LoanFactory, days

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("librarian", "librarian@example.com", "pw")
    client.force_login(user)
    return client


def dead_message(loan: Loan) -> OutboxMessage:
    return OutboxMessage.objects.create(
        kind=OutboxKind.NOTIFICATION,
        book_id=loan.book_id,
        payload=notification_payload(loan, MessageType.OVERDUE_NOTICE),
        status=OutboxStatus.DEAD,
        attempts=10,
        next_attempt_at=timezone.now(),
        last_error="Notification service answered HTTP 503",
    )


def test_every_admin_page_loads(staff):
    loan = LoanFactory(
        user_email="a@example.com",
        book_id=1,
        due_in=days(-3),
    )
    HoldFactory(user_email="b@example.com", book_id=1)
    dead_message(loan)
    IdempotencyRecord.objects.create(key="k1", fingerprint="f", expires_at=timezone.now() + days(1))
    APIKey.objects.create_key(name="patron-app")
    for model in ("loan", "hold", "outboxmessage", "idempotencyrecord"):
        url = reverse(f"admin:lending_{model}_changelist")
        assert staff.get(url).status_code == 200, url
        obj = {"loan": Loan, "hold": Hold, "outboxmessage": OutboxMessage, "idempotencyrecord": IdempotencyRecord}[
            model
        ].objects.first()
        assert staff.get(reverse(f"admin:lending_{model}_change", args=[obj.pk])).status_code == 200
    assert staff.get(reverse("admin:rest_framework_api_key_apikey_changelist")).status_code == 200
    assert staff.get(reverse("admin:index")).status_code == 200


def test_loans_searched_by_email_and_book_id_and_overdue_marked(staff):
    overdue = LoanFactory(
        user_email="late.reader@example.com",
        book_id=41,
        due_in=days(-5),
    )
    LoanFactory(
        user_email="early.reader@example.com",
        book_id=42,
        due_in=days(10),
    )
    url = reverse("admin:lending_loan_changelist")
    page = staff.get(url, {"q": "late.reader"}).content.decode()
    assert "late.reader@example.com" in page and "early.reader" not in page and "OVERDUE" in page
    page = staff.get(url, {"q": "42"}).content.decode()
    assert "early.reader@example.com" in page and "late.reader" not in page
    page = staff.get(url, {"status": "OVERDUE"}).content.decode()
    assert "late.reader@example.com" in page and "early.reader" not in page
    page = staff.get(url, {"status": "ACTIVE"}).content.decode()
    assert "early.reader@example.com" in page and "late.reader" not in page
    assert overdue.current_status == "OVERDUE"


def test_replay_action_requeues_dead_messages_and_the_relay_delivers_them(staff, peers, patron):
    loan = LoanFactory(user_email=patron, book_id=43, due_in=days(-2))
    dead = dead_message(loan)
    delivered = OutboxMessage.objects.create(
        kind=OutboxKind.NOTIFICATION,
        book_id=43,
        payload={},
        status=OutboxStatus.DELIVERED,
        next_attempt_at=timezone.now(),
    )
    response = staff.post(
        reverse("admin:lending_outboxmessage_changelist"),
        {"action": "replay", "_selected_action": [dead.pk, delivered.pk]},
        follow=True,
    )
    assert "Replayed 1 dead message(s)" in response.content.decode()
    dead.refresh_from_db()
    assert dead.status == OutboxStatus.PENDING and dead.attempts == 0
    relay.run_once()
    dead.refresh_from_db()
    assert dead.status == OutboxStatus.DELIVERED
    received = [n for n in peers.notification.notifications if n["user_email"] == patron]
    assert [n["message_type"] for n in received] == [MessageType.OVERDUE_NOTICE]


def test_admin_needs_a_staff_login(client):
    response = client.get(reverse("admin:lending_loan_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def dead_availability_message(book_id: int) -> OutboxMessage:
    """Availability messages carry no payload (the relay computes the state at delivery time)."""
    return OutboxMessage.objects.create(
        kind=OutboxKind.AVAILABILITY,
        book_id=book_id,
        status=OutboxStatus.DEAD,
        attempts=10,
        next_attempt_at=timezone.now(),
        last_error="Book service answered HTTP 503",
    )


def changelist_ids(staff, **params) -> set[int]:
    response = staff.get(reverse("admin:lending_outboxmessage_changelist"), params)
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def test_outbox_list_and_filters_show_availability_messages(staff):
    dead_availability = dead_availability_message(57)
    pending_availability = OutboxMessage.objects.create(
        kind=OutboxKind.AVAILABILITY, book_id=58, next_attempt_at=timezone.now()
    )
    dead_notification = dead_message(
        LoanFactory(
            user_email="reader@example.com",
            book_id=59,
            due_in=days(-1),
        )
    )
    everything = {dead_availability.pk, pending_availability.pk, dead_notification.pk}
    assert changelist_ids(staff) == everything
    assert changelist_ids(staff, q="") == everything
    assert changelist_ids(staff, kind=OutboxKind.AVAILABILITY) == {dead_availability.pk, pending_availability.pk}
    assert changelist_ids(staff, status=OutboxStatus.DEAD) == {dead_availability.pk, dead_notification.pk}
    assert changelist_ids(staff, status=OutboxStatus.DEAD, kind=OutboxKind.AVAILABILITY) == {dead_availability.pk}
    assert changelist_ids(staff, q="57") == {dead_availability.pk}
    assert changelist_ids(staff, q=str(dead_availability.key)) == {dead_availability.pk}
    assert changelist_ids(staff, q="reader@") == {dead_notification.pk}


def test_a_dead_availability_message_is_replayed_from_the_admin_and_delivered(staff, peers):
    book = peers.book.add_book("Replayed", "Author", 2)
    dead = dead_availability_message(book["id"])
    assert changelist_ids(staff, status=OutboxStatus.DEAD, kind=OutboxKind.AVAILABILITY) == {dead.pk}
    response = staff.post(
        reverse("admin:lending_outboxmessage_changelist")
        + f"?status={OutboxStatus.DEAD}&kind={OutboxKind.AVAILABILITY}",
        {"action": "replay", "_selected_action": [dead.pk]},
        follow=True,
    )
    assert "Replayed 1 dead message(s)" in response.content.decode()
    relay.run_once()
    dead.refresh_from_db()
    assert dead.status == OutboxStatus.DELIVERED
