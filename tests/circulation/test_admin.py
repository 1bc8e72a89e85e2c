"""The calendar's and the blocks' admin: pages load; a block added by staff names them and refuses
lends; the calendar form validates as the API does; staff declare loans lost and resolve them from
the loans' list (the API's services, in each loan's history as the staff user)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from lending import blocks, calendar
from lending.blocks import PatronBlock
from lending.calendar import LibraryCalendar
from lending.models import Event, EventKind, LoanStatus
from tests.factories import LoanFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("librarian", "librarian@example.com", "pw")
    client.force_login(user)
    return client


def test_the_pages_load(staff):
    block = blocks.place("a@example.com", reason="x", actions=["borrow"], expires_at=None, by="t", now=timezone.now())
    calendar.set_calendar(["sunday"], ["2026-12-25"])
    for model, pk in (("patronblock", block.pk), ("librarycalendar", calendar.CALENDAR_ID)):
        assert staff.get(reverse(f"admin:lending_{model}_changelist")).status_code == 200
        assert staff.get(reverse(f"admin:lending_{model}_change", args=[pk])).status_code == 200
    for value in ("yes", "no"):
        assert staff.get(reverse("admin:lending_patronblock_changelist"), {"in_force": value}).status_code == 200


def test_staff_add_a_block_in_the_admin(staff):
    answer = staff.post(
        reverse("admin:lending_patronblock_add"),
        {
            "user_email": "Desk@Example.com",
            "reason": "Unpaid fine",
            "blocks": ["reserve", "borrow"],
            "expires_at_0": "",
        },
    )
    assert answer.status_code == 302, answer.content[:2000]
    block = PatronBlock.objects.get()
    assert (block.user_email, block.blocks, block.created_by) == (
        "desk@example.com",
        ["borrow", "reserve"],
        "staff:librarian",
    )
    assert blocks.standing("desk@example.com", timezone.now()).blocking("borrow")


def test_the_calendar_form_refuses_every_weekday_closed(staff):
    answer = staff.post(
        reverse("admin:lending_librarycalendar_add"),
        {
            "closed_weekdays": '["monday","tuesday","wednesday","thursday","friday","saturday","sunday"]',
            "closed_dates": "[]",
        },
    )
    assert answer.status_code == 200 and b"at least one weekday" in answer.content
    assert not LibraryCalendar.objects.exists()
    saved = staff.post(
        reverse("admin:lending_librarycalendar_add"),
        {"closed_weekdays": '["sunday"]', "closed_dates": '["2026-12-25"]'},
    )
    assert saved.status_code == 302
    assert calendar.closed_days().is_closed(calendar.date(2026, 12, 25))


def test_staff_declare_loans_lost_and_resolve_them_in_the_admin(staff):
    circulating, returned = LoanFactory(), LoanFactory(returned=True)
    changelist = reverse("admin:lending_loan_changelist")
    answer = staff.post(
        changelist, {"action": "declare_lost", "_selected_action": [circulating.pk, returned.pk]}, follow=True
    )
    assert answer.status_code == 200
    shown = [str(message) for message in answer.context["messages"]]
    assert shown[0] == "1 loan(s) declared lost."
    assert shown[1] == f"Not changed: loan {returned.pk}: Loan {returned.pk} is returned: it cannot change."
    circulating.refresh_from_db()
    assert circulating.status == LoanStatus.LOST
    declared = Event.objects.get(loan=circulating, kind=EventKind.DECLARED_LOST)
    assert declared.caller == "staff:librarian"
    assert staff.get(changelist, {"status": "LOST"}).context["cl"].result_count == 1
    staff.post(changelist, {"action": "resolve_found", "_selected_action": [circulating.pk]})
    circulating.refresh_from_db()
    assert circulating.status == LoanStatus.RETURNED
