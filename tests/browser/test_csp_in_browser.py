"""The Content-Security-Policy (lending/csp.py) in a real browser: the admin, Swagger UI and ReDoc work
under it and the browser blocks nothing of theirs (Chromium at /usr/bin/chromium, as the staff test)."""

from __future__ import annotations

import pytest

from tests.browser import test_staff_in_browser as staff_test

chromium_page = staff_test.chromium_page
staff_user = staff_test.staff_user


def _violations(page) -> list[str]:
    """Every policy violation the page reports, from its console and from its DOM events."""
    found: list[str] = []
    page.on(
        "console", lambda message: found.append(message.text) if "Content Security Policy" in message.text else None
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    return found


@pytest.mark.django_db(transaction=True)
def test_the_admin_and_the_docs_work_under_their_policy(live_server, staff_user, chromium_page, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    page = chromium_page
    violations = _violations(page)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/lending/loan/")
    page.fill("#id_username", staff_test.STAFF_USER)
    page.fill("#id_password", staff_test.STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#changelist")
    # The admin's own scripts run: the date hierarchy, the filters' and actions' widgets.
    assert page.evaluate("typeof window.django") == "object"
    # A form's widgets too: the calendar and clock shortcuts of a block's expiry are drawn by script.
    page.goto(f"{live_server.url}/admin/lending/patronblock/add/")
    page.locator(".datetimeshortcuts").first.wait_for()

    page.goto(f"{live_server.url}/api/docs/")
    page.locator("#operations-lending-getExpiredBooks").wait_for()

    page.goto(f"{live_server.url}/api/redoc/")
    page.get_by_text("Lending Management service").first.wait_for()
    page.locator("[data-section-id]").first.wait_for()

    # The one load blocked is the policy's point: ReDoc's "by Redocly" logo from its CDN (nothing leaves
    # the service). No script, style, font or worker of the admin or the docs is blocked.
    outside = [text for text in violations if "https://cdn.redoc.ly/" in text and "img-src" in text]
    assert outside and violations == outside, violations
