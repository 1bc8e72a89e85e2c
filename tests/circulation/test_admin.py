"""The calendar's and the blocks' admin: pages load; a block added by staff names them and refuses
lends; the calendar form validates as the API does."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from lending import blocks, calendar
from lending.blocks import PatronBlock
from lending.calendar import LibraryCalendar

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
