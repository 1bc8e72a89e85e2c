"""The desk's pages in the admin (lending/admin/desk.py) through the Django test client: a card then
items checked out (each loan with its due date, each refusal with its message), items checked in with
their route (shelf, or hold shelf for the holder), the staff user in each loan's history, nothing of
the patron kept on the server, the pages for staff who may change loans only, CSRF-protected; loans
found by an item's barcode.

The reference peers' demo data: alice's card 2100000001, bob's 2100000002, inactive's 2100000004;
book 2's only copy 3900000201, book 3's copies 3900000301 and 3900000302."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from lending import calendar
from lending.admin import desk as desk_admin
from lending.events import history
from lending.models import Event, EventKind, Hold, HoldStatus, Loan, LoanStatus
from lending.services.checkout import check_out
from lending.services.reserve import hold_reserve
from lending.write_context import WriteContext
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


class DeskPage:
    """A desk page as the browser holds it: each scan posts its form with what the page carries."""

    def __init__(self, client, page: str) -> None:
        self.client, self.url = client, reverse(page)
        self.answer = client.get(self.url)
        assert self.answer.status_code == 200

    @property
    def html(self) -> str:
        return self.answer.content.decode()

    def scan(self, field: str, barcode: str) -> DeskPage:
        """The barcode typed and Enter: the form's POST, answered with the page again."""
        carried = re.search(r'name="desk" value="([^"]*)"', self.html)
        data = {field: barcode, **({"desk": carried.group(1)} if carried else {})}
        self.answer = self.client.post(self.url, data)
        assert self.answer.status_code == 200, self.answer.content[:500]
        return self

    def lines(self) -> list[tuple[str, ...]]:
        """The result lines, newest first: (done or refused, item, what happened[, route])."""
        rows = re.findall(r"<tr class=\"desk-(done|refused)\">(.*?)</tr>", self.html, re.S)
        found = []
        for outcome, row in rows:
            cells = [re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            found.append((outcome, *cells))
        return found

    def focused(self, field: str) -> bool:
        return re.search(rf'<input[^>]*name="{field}"[^>]*autofocus', self.html) is not None


def test_a_card_then_items_each_loan_with_its_due_date_and_a_refusal_with_its_message(staff):
    check_out(item_barcode=PETIT_PRINCE_2, user_email="bob@example.com")

    desk = DeskPage(staff, CHECKOUT)
    assert desk.focused("card")
    desk.scan("card", ALICE_CARD)
    assert "alice@example.com" in desk.html and desk.focused("item")

    desk.scan("item", BOVARY).scan("item", PETIT_PRINCE_2).scan("item", PETIT_PRINCE_1)

    first, second = (
        Loan.objects.get(item_barcode=barcode, date_returned__isnull=True) for barcode in (BOVARY, PETIT_PRINCE_1)
    )
    assert first.user_email == second.user_email == "alice@example.com"
    shown = desk.lines()
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
    assert desk.focused("item") and "alice@example.com" in desk.html


def test_the_server_keeps_nothing_of_the_patron_between_scans(staff):
    desk = DeskPage(staff, CHECKOUT).scan("card", ALICE_CARD).scan("item", BOVARY)
    checkin = DeskPage(staff, CHECKIN).scan("item", BOVARY)

    assert "alice" in desk.html and "alice" in checkin.html
    # The staff user's session holds staff data only (README, Privacy); the card is kept nowhere.
    assert "alice" not in json.dumps(dict(staff.session.items()))
    assert ALICE_CARD not in json.dumps(dict(staff.session.items())) and ALICE_CARD not in desk.html


def test_a_page_sent_back_altered_asks_for_the_card_again(staff):
    desk = DeskPage(staff, CHECKOUT).scan("card", ALICE_CARD)
    forged = staff.post(reverse(CHECKOUT), {"item": BOVARY, "desk": "eyJwYXRyb24iOiJib2JAZXhhbXBsZS5jb20ifQ:x:y"})
    assert forged.status_code == 200
    assert "Scan the patron&#x27;s card first." in forged.content.decode()
    assert not Loan.objects.exists()
    assert desk.scan("item", BOVARY).lines()[0][0] == "done"


def test_a_reload_sends_the_scan_again_and_nothing_is_done_twice(staff):
    desk = DeskPage(staff, CHECKOUT).scan("card", ALICE_CARD)
    carried = re.search(r'name="desk" value="([^"]*)"', desk.html).group(1)
    for _ in range(2):
        again = staff.post(reverse(CHECKOUT), {"item": BOVARY, "desk": carried})
    assert Loan.objects.filter(item_barcode=BOVARY).count() == 1
    assert "desk-refused" in again.content.decode()


def test_an_unknown_or_inactive_card_is_refused_with_its_message_and_no_patron_is_served(staff):
    for card, code in (("2199999999", "user_not_found"), (INACTIVE_CARD, "user_inactive")):
        desk = DeskPage(staff, CHECKOUT).scan("card", card)
        assert f"({code})" in desk.html
        assert desk.focused("card") and 'name="item"' not in desk.html


def test_new_patron_finishes_and_asks_for_the_next_card(staff):
    DeskPage(staff, CHECKOUT).scan("card", ALICE_CARD).scan("item", BOVARY)
    page = staff.post(reverse(CHECKOUT), {"new_patron": "1"}).content.decode()
    assert 'name="card"' in page and "alice@example.com" not in page and BOVARY not in page


def test_check_in_shows_each_route_the_shelf_or_the_hold_shelf_for_the_holder(staff):
    check_out(item_barcode=BOVARY, user_email="alice@example.com")
    check_out(item_barcode=PETIT_PRINCE_1, user_email="alice@example.com")
    hold_reserve(user_email="bob@example.com", book_id=2)

    desk = DeskPage(staff, CHECKIN).scan("item", PETIT_PRINCE_1).scan("item", BOVARY).scan("item", PETIT_PRINCE_2)

    hold = Hold.objects.get(user_email="bob@example.com", book_id=2)
    assert hold.status == HoldStatus.READY and hold.item_barcode == BOVARY
    bovary = Loan.objects.get(item_barcode=BOVARY)
    petit_prince = Loan.objects.get(item_barcode=PETIT_PRINCE_1)
    pickup = calendar.library_day(hold.pickup_deadline)
    assert desk.lines() == [
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
    assert desk.focused("item")
    # Scanned again, the copy still goes to bob's hold shelf and nothing is returned twice.
    assert desk.scan("item", BOVARY).lines()[0] == ("done", BOVARY, "Not on loan", desk.lines()[2][3])
    assert Event.objects.filter(loan=bovary, kind=EventKind.RETURNED).count() == 1


def test_an_unknown_item_and_a_scan_with_a_space_are_refused_lines(staff):
    (bad_scan, unknown) = DeskPage(staff, CHECKIN).scan("item", "3999999999").scan("item", "39 00").lines()
    assert unknown[:2] == ("refused", "3999999999") and "(item_not_found)" in unknown[2]
    assert bad_scan[:2] == ("refused", "39 00") and "without spaces" in bad_scan[2]


def test_a_page_keeps_its_last_lines_only(staff):
    desk = DeskPage(staff, CHECKIN)
    for n in range(desk_admin.KEPT_LINES + 2):
        desk.scan("item", f"39 {n}")
    shown = desk.lines()
    assert len(shown) == desk_admin.KEPT_LINES and shown[0][1] == f"39 {desk_admin.KEPT_LINES + 1}"


def test_the_staff_user_is_the_caller_in_each_loans_history(staff):
    DeskPage(staff, CHECKOUT).scan("card", ALICE_CARD).scan("item", BOVARY)
    DeskPage(staff, CHECKIN).scan("item", BOVARY)

    loan = Loan.objects.get(item_barcode=BOVARY)
    callers = {event.kind: event.caller for event in Event.objects.filter(loan=loan)}
    assert callers[EventKind.LENT] == callers[EventKind.RETURNED] == "staff:librarian"
    # A write outside the desk (a shell, a job) is nobody's in particular: the desk's caller was the
    # scans' own, handed to each as an argument, and nothing of it stays behind.
    assert WriteContext().caller == history.SYSTEM


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


def test_the_desk_group_uses_the_desk_and_staff_without_it_are_refused(desk_group_client):
    """The desk is what the desk group is for: its members check out and in (lending.circulate_at_desk),
    which gives them no other change to loans; staff outside it get 403 and see no link."""
    client, user = desk_group_client
    assert client.get(reverse(CHECKOUT)).status_code == 200
    assert reverse(CHECKOUT) in client.get(reverse("admin:index")).content.decode()
    assert not user.has_perm("lending.change_loan")

    user.groups.clear()
    client.force_login(get_user_model().objects.get(pk=user.pk))
    for page in (CHECKOUT, CHECKIN):
        assert client.get(reverse(page)).status_code == 403
        assert client.post(reverse(page), {"item": BOVARY}).status_code == 403
    assert reverse(CHECKOUT) not in client.get(reverse("admin:index")).content.decode()
    assert not Loan.objects.exists()

    user.user_permissions.add(Permission.objects.get(codename="circulate_at_desk", content_type__app_label="lending"))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert client.get(reverse(CHECKIN)).status_code == 200


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
