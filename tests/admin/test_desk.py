"""The desk's pages in the admin (lending/desk_admin.py) through the Django test client: a card then
items checked out (each loan with its due date, each refusal with its message), items checked in with
their route (shelf, or hold shelf for the holder), the staff user in each loan's history, the pages
for staff who may change loans only, CSRF-protected; loans found by an item's barcode.

The reference peers' demo data: alice's card 2100000001, bob's 2100000002, inactive's 2100000004;
book 2's only copy 3900000201, book 3's copies 3900000301 and 3900000302."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from lending import calendar, history
from lending.models import Event, EventKind, Hold, HoldStatus, Loan, LoanStatus
from lending.services.checkout import check_out
from lending.services.reserve import hold_reserve
from tests.factories import LoanFactory

pytestmark = pytest.mark.django_db

ALICE_CARD, BOB_CARD, INACTIVE_CARD = "2100000001", "2100000002", "2100000004"
BOVARY, PETIT_PRINCE_1, PETIT_PRINCE_2 = "3900000201", "3900000301", "3900000302"
CHECKOUT, CHECKIN = "admin:lending_desk_checkout", "admin:lending_desk_checkin"


@pytest.fixture
def staff(client, peers):
    user = get_user_model().objects.create_superuser("librarian", "librarian@example.com", "pw")
    client.force_login(user)
    return client


def lines(page) -> list[tuple[str, str, str]]:
    """The page's result lines, newest first: (item, what happened, route or "")."""
    html = page.content.decode()
    rows = re.findall(r"<tr class=\"desk-(done|refused)\">(.*?)</tr>", html, re.S)
    found = []
    for outcome, row in rows:
        cells = [re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        found.append((outcome, *cells))
    return found


def scan(client, page: str, field: str, barcode: str):
    """One scan: the barcode typed and Enter (a POST), then the page it redirects to."""
    answer = client.post(reverse(page), {field: barcode})
    assert answer.status_code == 302 and answer["Location"] == reverse(page), answer.content[:500]
    return client.get(reverse(page))


def test_a_card_then_items_each_loan_with_its_due_date_and_a_refusal_with_its_message(staff):
    check_out(item_barcode=PETIT_PRINCE_2, user_email="bob@example.com")

    page = staff.get(reverse(CHECKOUT))
    assert page.status_code == 200 and 'name="card"' in page.content.decode()
    page = scan(staff, CHECKOUT, "card", ALICE_CARD)
    assert "alice@example.com" in page.content.decode() and 'name="item"' in page.content.decode()

    scan(staff, CHECKOUT, "item", BOVARY)
    scan(staff, CHECKOUT, "item", PETIT_PRINCE_2)
    page = scan(staff, CHECKOUT, "item", PETIT_PRINCE_1)

    first, second = (
        Loan.objects.get(item_barcode=barcode, date_returned__isnull=True) for barcode in (BOVARY, PETIT_PRINCE_1)
    )
    assert first.user_email == second.user_email == "alice@example.com"
    shown = lines(page)
    assert shown[0] == (
        "done",
        PETIT_PRINCE_1,
        f"Loan {second.pk}: Le Petit Prince, due {calendar.library_day(second.date_due)}",
    )
    assert shown[2] == ("done", BOVARY, f"Loan {first.pk}: Madame Bovary, due {calendar.library_day(first.date_due)}")
    outcome, item, refusal = shown[1]
    assert (outcome, item) == ("refused", PETIT_PRINCE_2)
    assert "(item_on_loan)" in refusal and "bob" not in refusal
    # The item input is focused again for the next scan, the patron still served.
    assert re.search(r'<input[^>]*name="item"[^>]*autofocus', page.content.decode())
    assert "alice@example.com" in page.content.decode()


def test_an_unknown_or_inactive_card_is_refused_with_its_message_and_no_patron_is_served(staff):
    for card, code in (("2199999999", "user_not_found"), (INACTIVE_CARD, "user_inactive")):
        page = staff.post(reverse(CHECKOUT), {"card": card})
        assert page.status_code == 200
        assert f"({code})" in page.content.decode()
        assert re.search(r'<input[^>]*name="card"[^>]*autofocus', page.content.decode())
    assert 'name="item"' not in staff.get(reverse(CHECKOUT)).content.decode()


def test_new_patron_finishes_and_asks_for_the_next_card(staff):
    scan(staff, CHECKOUT, "card", ALICE_CARD)
    scan(staff, CHECKOUT, "item", BOVARY)
    answer = staff.post(reverse(CHECKOUT), {"new_patron": "1"})
    assert answer.status_code == 302
    page = staff.get(reverse(CHECKOUT)).content.decode()
    assert 'name="card"' in page and "alice@example.com" not in page and BOVARY not in page


def test_check_in_shows_each_route_the_shelf_or_the_hold_shelf_for_the_holder(staff):
    check_out(item_barcode=BOVARY, user_email="alice@example.com")
    check_out(item_barcode=PETIT_PRINCE_1, user_email="alice@example.com")
    hold_reserve(user_email="bob@example.com", book_id=2)

    scan(staff, CHECKIN, "item", PETIT_PRINCE_1)
    scan(staff, CHECKIN, "item", BOVARY)
    page = scan(staff, CHECKIN, "item", PETIT_PRINCE_2)

    hold = Hold.objects.get(user_email="bob@example.com", book_id=2)
    assert hold.status == HoldStatus.READY and hold.item_barcode == BOVARY
    bovary = Loan.objects.get(item_barcode=BOVARY)
    petit_prince = Loan.objects.get(item_barcode=PETIT_PRINCE_1)
    pickup = calendar.library_day(hold.pickup_deadline)
    assert lines(page) == [
        ("done", PETIT_PRINCE_2, "Not on loan", "shelf"),
        (
            "done",
            BOVARY,
            f"Returned loan {bovary.pk} of alice@example.com",
            f"hold shelf for bob@example.com (hold {hold.pk}, pickup by {pickup})",
        ),
        ("done", PETIT_PRINCE_1, f"Returned loan {petit_prince.pk} of alice@example.com", "shelf"),
    ]
    assert bovary.status == petit_prince.status == LoanStatus.RETURNED
    assert re.search(r'<input[^>]*name="item"[^>]*autofocus', page.content.decode())


def test_an_unknown_item_and_a_scan_with_a_space_are_refused_lines(staff):
    scan(staff, CHECKIN, "item", "3999999999")
    page = scan(staff, CHECKIN, "item", "39 00")
    (bad_scan, unknown) = lines(page)
    assert unknown[:2] == ("refused", "3999999999") and "(item_not_found)" in unknown[2]
    assert bad_scan[:2] == ("refused", "39 00") and "without spaces" in bad_scan[2]


def test_the_staff_user_is_the_caller_in_each_loans_history(staff):
    scan(staff, CHECKOUT, "card", ALICE_CARD)
    scan(staff, CHECKOUT, "item", BOVARY)
    scan(staff, CHECKIN, "item", BOVARY)

    loan = Loan.objects.get(item_barcode=BOVARY)
    callers = {event.kind: event.caller for event in Event.objects.filter(loan=loan)}
    assert callers[EventKind.LENT] == callers[EventKind.RETURNED] == "staff:librarian"
    # Outside the desk's request nobody is acting: the caller was set for the scan only.
    assert history.current_caller() == history.SYSTEM


def test_loans_are_found_by_an_items_barcode_in_the_loans_list(staff):
    copy = check_out(item_barcode=BOVARY, user_email="alice@example.com")
    title_level = LoanFactory(user_email="carol@example.com", book_id=4)
    changelist = reverse("admin:lending_loan_changelist")

    def found(**params) -> set[int]:
        answer = staff.get(changelist, params)
        assert answer.status_code == 200
        return {loan.pk for loan in answer.context["cl"].result_list}

    assert found(q=BOVARY) == {copy.pk}
    assert found(q=f" {BOVARY} ") == {copy.pk}
    assert found(q="3900000299") == set()
    assert found(q="4") == {title_level.pk}
    assert found(lent_as="copy") == {copy.pk}
    assert found(lent_as="title") == {title_level.pk}
    assert BOVARY in staff.get(reverse("admin:lending_loan_change", args=[copy.pk])).content.decode()


def test_the_admin_index_links_the_desk_pages(staff):
    index = staff.get(reverse("admin:index")).content.decode()
    assert reverse(CHECKOUT) in index and reverse(CHECKIN) in index


# --- Who may use the desk ------------------------------------------------------------------------


@pytest.mark.parametrize("page", [CHECKOUT, CHECKIN])
def test_anonymous_and_non_staff_users_are_sent_to_the_login(client, peers, page):
    field = "card" if page == CHECKOUT else "item"
    for who in (None, get_user_model().objects.create_user("reader", password="pw-not-staff-9")):
        if who is not None:
            client.force_login(who)
        for answer in (client.get(reverse(page)), client.post(reverse(page), {field: BOVARY})):
            assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    assert not Loan.objects.exists()


@pytest.fixture
def desk_group_client(peers):
    user = get_user_model().objects.create_user("desk-1", password="a-long-enough-passphrase-7", is_staff=True)
    user.groups.add(Group.objects.get(name="desk"))
    client = Client()
    client.force_login(user)
    return client, user


def test_staff_who_may_not_change_loans_are_refused_and_see_no_link(desk_group_client):
    client, user = desk_group_client
    for page in (CHECKOUT, CHECKIN):
        assert client.get(reverse(page)).status_code == 403
        assert client.post(reverse(page), {"item": BOVARY}).status_code == 403
    assert reverse(CHECKOUT) not in client.get(reverse("admin:index")).content.decode()
    assert not Loan.objects.exists()

    user.user_permissions.add(Permission.objects.get(codename="change_loan", content_type__app_label="lending"))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert client.get(reverse(CHECKOUT)).status_code == 200
    assert reverse(CHECKOUT) in client.get(reverse("admin:index")).content.decode()


def test_a_scan_without_the_csrf_token_is_refused(peers):
    loan = check_out(item_barcode=BOVARY, user_email="alice@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_superuser("librarian", "librarian@example.com", "pw"))
    assert client.post(reverse(CHECKIN), {"item": BOVARY}).status_code == 403
    loan.refresh_from_db()
    assert loan.date_returned is None
    page = client.get(reverse(CHECKIN)).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    # The page's script is a file: the admin's policy (lending/csp.py) runs no inline script.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
