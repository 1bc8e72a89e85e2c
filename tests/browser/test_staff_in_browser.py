"""In a real browser (Playwright driving Debian's Chromium at /usr/bin/chromium, headless): a librarian
logs in to the admin, finds a patron's overdue loan by email, replays a dead outbox message and sees
it delivered, then runs `getExpiredBooks` from Swagger UI. Screenshots go to var/screenshots/.

`make test` installs Chromium when it is missing (`make chromium`). Without it the test is skipped
with its reason, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from lending.models import Loan, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import relay
from lending.outbox.messages import MessageType, notification_payload
from tests.factories import LoanFactory

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
STAFF_USER, STAFF_PASSWORD = "librarian", "browser-test-password"


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture
def chromium_page():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found: run `make chromium` (apt-get install chromium) as root")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (requirements/test.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def overdue_loan_with_dead_message(transactional_db, patron, book) -> tuple[Loan, OutboxMessage]:
    now = timezone.now()
    loan = LoanFactory(
        user_email=patron,
        book_id=book["id"],
        book_title=book.get("title", ""),
        borrowed_ago=timedelta(days=70),
        due_in=timedelta(days=-10),
    )
    message = OutboxMessage.objects.create(
        kind=OutboxKind.NOTIFICATION,
        book_id=loan.book_id,
        payload=notification_payload(loan, MessageType.OVERDUE_NOTICE),
        status=OutboxStatus.DEAD,
        attempts=10,
        next_attempt_at=now,
        last_error="Notification service answered HTTP 503",
    )
    return loan, message


@pytest.fixture
def staff_user(transactional_db, monkeypatch):
    monkeypatch.setenv("DJANGO_ADMIN_USER", STAFF_USER)
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", STAFF_PASSWORD)
    monkeypatch.setenv("DJANGO_ADMIN_EMAIL", "librarian@example.com")
    call_command("ensure_staff_user", verbosity=0)


def test_librarian_replays_a_dead_message_and_runs_get_expired_books_from_swagger(
    # The database first: session fixtures are torn down in reverse, so the live server (and its
    # connection) stops before the test database is dropped.
    transactional_db,
    live_server,
    peers,
    patron,
    overdue_loan_with_dead_message,
    staff_user,
    chromium_page,
    monkeypatch,
    capsys,
):
    # Playwright's sync API runs an event loop in this thread; the ORM calls below are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    loan, message = overdue_loan_with_dead_message
    page = chromium_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []

    def screenshot(name: str, element=None) -> None:
        path = SCREENSHOTS / f"{name}.png"
        (element or page).screenshot(path=str(path))
        shots.append(path)

    # 1. Log in to the admin.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", STAFF_USER)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Lending service" in page.inner_text("#site-name")

    # 2. Find the patron's overdue loan by email.
    page.goto(f"{live_server.url}/admin/lending/loan/")
    page.fill("#searchbar", patron)
    page.press("#searchbar", "Enter")
    row = page.locator("#result_list tbody tr", has_text=patron)
    row.wait_for()
    assert row.count() == 1
    assert "OVERDUE" in row.inner_text()
    assert row.locator(".overdue").count() == 1
    screenshot("01-admin-overdue-loan")

    # 3. Replay the dead notification.
    page.goto(f"{live_server.url}/admin/lending/outboxmessage/?status__exact=DEAD")
    page.check(f"input.action-select[value='{message.pk}']")
    page.select_option("select[name=action]", "replay")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert "Replayed 1 dead message(s)" in page.inner_text("ul.messagelist")
    screenshot("02-admin-dead-message-replayed")

    # 4. The relay delivers it; the reloaded page shows DELIVERED.
    relay.run_once()
    # Under Playwright's event loop the ORM may use a connection of its own here: close it, or it
    # would keep the test database from being dropped.
    connections.close_all()
    page.goto(f"{live_server.url}/admin/lending/outboxmessage/?q={patron}")
    row = page.locator("#result_list tbody tr", has_text=MessageType.OVERDUE_NOTICE)
    row.wait_for()
    assert "DELIVERED" in row.inner_text()
    screenshot("03-admin-message-delivered")
    assert any(
        n["user_email"] == patron and n["message_type"] == MessageType.OVERDUE_NOTICE
        for n in peers.notification.notifications
    )

    # 5. Swagger UI: run getExpiredBooks ("Try it out", "Execute") and see the overdue loan.
    page.goto(f"{live_server.url}/api/docs/")
    operation = page.locator("#operations-lending-getExpiredBooks")
    operation.locator(".opblock-summary").first.click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert re.match(r"\s*200", status.inner_text()), status.inner_text()
    body = operation.locator(".live-responses-table tr.response .response-col_description pre").first.inner_text()
    assert patron in body and '"status": "OVERDUE"' in body
    screenshot("04-swagger-get-expired-books", operation)

    with capsys.disabled():
        print("\nbrowser screenshots:\n" + "\n".join(f"  {path}" for path in shots))
