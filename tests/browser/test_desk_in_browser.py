"""The desk's pages in a real browser (Chromium, as test_staff_in_browser.py drives it): a librarian
checks out two items for a demo card with the keyboard only — the card typed as a barcode scanner
types it, Enter, each item and Enter, Escape to finish — then checks one in with a hold waiting for it
and sees "hold shelf" with the holder. The browser blocks nothing under the admin's policy
(lending/csp.py): the desk's script is a file. Screenshots go to var/screenshots/.

The reference peers' demo data: alice's card 2100000001; book 2's only copy 3900000201 (Madame
Bovary), book 3's first copy 3900000301 (Le Petit Prince)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connections
from django.urls import reverse

from lending.models import Hold, Loan
from lending.services.reserve import hold_reserve
from tests.browser import test_csp_in_browser as csp_test
from tests.browser import test_staff_in_browser as staff_test

chromium_page = staff_test.chromium_page
staff_user = staff_test.staff_user

ALICE_CARD, BOVARY, PETIT_PRINCE = "2100000001", "3900000201", "3900000301"


def _focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def _scan(page, barcode: str) -> None:
    """What a barcode scanner does: types into the focused input, then Enter (the page reloads)."""
    page.keyboard.type(barcode)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _lines(page) -> list[str]:
    return [re.sub(r"\s+", " ", text).strip() for text in page.locator("#desk-lines tbody tr").all_inner_texts()]


@pytest.mark.django_db(transaction=True)
def test_a_librarian_checks_out_two_items_then_checks_one_in_to_the_hold_shelf(
    live_server, peers, staff_user, chromium_page, monkeypatch, capsys
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    page = chromium_page
    violations = csp_test._violations(page)
    staff_test.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []

    def screenshot(name: str) -> None:
        path = staff_test.SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", staff_test.STAFF_USER)
    page.fill("#id_password", staff_test.STAFF_PASSWORD)
    page.press("#id_password", "Enter")
    page.locator("#desk-checkout-link").wait_for()
    screenshot("05-desk-admin-index")

    # 1. From the index to the check-out page, by keyboard; the card's input has the focus.
    page.focus("#desk-checkout-link")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(reverse("admin:lending_desk_checkout"))
    assert _focused_id(page) == "desk-card"

    # 2. The card, then two items: each loan shown with its due date, the item input focused again.
    _scan(page, ALICE_CARD)
    assert page.inner_text("#desk-patron") == "alice@example.com"
    assert _focused_id(page) == "desk-item"
    _scan(page, BOVARY)
    assert _focused_id(page) == "desk-item"
    _scan(page, PETIT_PRINCE)
    assert _focused_id(page) == "desk-item"
    bovary, petit_prince = (Loan.objects.get(item_barcode=barcode) for barcode in (BOVARY, PETIT_PRINCE))
    shown = _lines(page)
    assert len(shown) == 2
    assert shown[0].startswith(f"{PETIT_PRINCE} Loan {petit_prince.pk}: Le Petit Prince, due ")
    assert shown[1].startswith(f"{BOVARY} Loan {bovary.pk}: Madame Bovary, due ")
    assert bovary.user_email == petit_prince.user_email == "alice@example.com"
    screenshot("06-desk-two-items-checked-out")

    # 3. "New patron" is two Tabs away (after the "Check out" button); Escape does the same from
    # anywhere on the page: it finishes with alice, and the page asks for the next card.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "New patron (Esc)"
    with page.expect_navigation():
        page.keyboard.press("Escape")
    page.locator("#desk-card").wait_for()
    assert _focused_id(page) == "desk-card" and page.locator("#desk-lines").count() == 0

    # 4. Bob places a hold on Madame Bovary (its one copy is out), as the patron app would.
    hold = hold_reserve(user_email="bob@example.com", book_id=bovary.book_id).hold
    connections.close_all()  # the ORM's connection of this thread, not to keep the test database

    # 5. The check-in page: the copy scanned goes to the hold shelf for bob.
    page.goto(f"{live_server.url}{reverse('admin:lending_desk_checkin')}")
    assert _focused_id(page) == "desk-item"
    _scan(page, BOVARY)
    hold = Hold.objects.get(pk=hold.pk)
    route = page.inner_text("#desk-lines tbody tr .desk-route")
    assert route.startswith(f"hold shelf for bob@example.com (hold {hold.pk}, pickup by ")
    assert hold.item_barcode == BOVARY
    assert _focused_id(page) == "desk-item"
    screenshot("07-desk-check-in-to-the-hold-shelf")
    connections.close_all()

    assert violations == []
    with capsys.disabled():
        print("\nbrowser screenshots:\n" + "\n".join(f"  {path}" for path in shots))
