"""Races on PostgreSQL, each request or write on its own thread and connection.

- A block placed while a lend is in flight: the lend checks blocks after taking the patron's lock,
  and placing a block takes that lock too. So a lend waiting while a block commits sees the block
  (403, no loan), and a block placed while a lend is past its check waits for the lend to commit:
  there is no moment where a lend passes on a stale "not blocked".
- Two staff changing one due date: the loan's row is locked for the change, so both changes apply one
  after the other; each event names the due date it replaced (no lost update), numbered 1, 2.
- A declare-lost racing a return: both take the book lock first, so one is applied before the other.
  Declared lost first, the return then resolves the lost loan as found; returned first, the
  declare-lost is refused (409 `loan_not_open`). Either way the loan ends returned and its copy free.
- The scheduler aging a loan to lost while a return waits for the loan's row: the return's conditions
  are re-checked once aging commits, so it resolves the now lost loan as found instead of
  overwriting it blindly.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from lending import blocks, calendar
from lending.models import Event, EventKind, Loan
from lending.services import lend as lend_service
from lending.services import lost as lost_service
from lending.services import return_book as return_service
from tests.factories import LoanFactory, days

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def advisory_lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def in_thread(target, *args) -> threading.Thread:
    def run():
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def post_into(result: dict, path: str, body: dict) -> None:
    response = APIClient().post(path, body, format="json")
    result["status"] = response.status_code
    result["body"] = response.json()


def paused(module, name: str):
    """Patches `module.name` (a function called under the book lock) to wait until released."""
    inside, release = threading.Event(), threading.Event()
    original = getattr(module, name)

    def wait_then_call(*args, **kwargs):
        inside.set()
        release.wait(30)
        return original(*args, **kwargs)

    return mock.patch.object(module, name, wait_then_call), inside, release


def held_then_waiting(pause, first: tuple[str, dict], second: tuple[str, dict]) -> tuple[dict, dict]:
    """`first` is posted and held inside the book lock (`pause`, from `paused`); `second` is posted once
    it is, and waits for the lock; then `first` goes on. Their answers, in that order."""
    patch, inside, release = pause
    held: dict = {}
    waiting: dict = {}
    with patch:
        holding = in_thread(post_into, held, *first)
        assert inside.wait(10)  # the first write holds the book lock
        queued = in_thread(post_into, waiting, *second)
        wait_until(lambda: lock_waiters() >= 1)  # the second waits for it
        release.set()
        holding.join(30)
        queued.join(30)
    return held, waiting


def lend_into(result: dict, email: str, book_id: int) -> None:
    response = APIClient().post("/lendBook/", {"user_email": email, "book_id": book_id}, format="json")
    result["status"] = response.status_code
    result["body"] = response.json()


def test_a_lend_waiting_while_a_block_commits_sees_the_block(peers, patron, book):
    placed, release = threading.Event(), threading.Event()

    def place_and_hold():
        with transaction.atomic():
            blocks.place(patron, reason="Desk", actions=["borrow"], expires_at=None, by="t", now=timezone.now())
            placed.set()
            release.wait(30)

    placing = in_thread(place_and_hold)
    assert placed.wait(10)
    result: dict = {}
    lending = in_thread(lend_into, result, patron, book["id"])
    wait_until(lambda: advisory_lock_waiters() >= 1)  # the lend waits for the patron's lock
    release.set()
    placing.join(30)
    lending.join(30)
    assert result["status"] == 403, result
    assert result["body"]["error"]["code"] == "patron_blocked"
    assert not Loan.objects.filter(user_email=patron).exists()


def test_a_block_placed_while_a_lend_is_past_its_check_waits_for_the_lend(peers, patron, book):
    inside, release = threading.Event(), threading.Event()
    record_with = lend_service.history.record_with

    def wait_then_write(*args, **kwargs):
        inside.set()  # the lend has checked the blocks and holds the patron's lock
        release.wait(30)
        return record_with(*args, **kwargs)

    result: dict = {}
    with mock.patch.object(lend_service.history, "record_with", wait_then_write):
        lending = in_thread(lend_into, result, patron, book["id"])
        assert inside.wait(10)
        placing = in_thread(
            lambda: blocks.place(patron, reason="Desk", actions=["borrow"], expires_at=None, by="t", now=timezone.now())
        )
        wait_until(lambda: advisory_lock_waiters() >= 1)  # the block waits for the lend
        assert not blocks.PatronBlock.objects.exists()
        release.set()
        lending.join(30)
        placing.join(30)
    assert result["status"] == 201, result
    assert blocks.PatronBlock.objects.filter(user_email=patron).count() == 1
    later = APIClient().post("/lendBook/", {"user_email": patron, "book_id": book["id"]}, format="json")
    assert later.status_code == 403


def test_two_staff_changing_one_due_date_apply_one_after_the_other():
    loan = LoanFactory(due_in=days(5))
    original = loan.date_due
    today = calendar.library_day(timezone.now())
    targets = [(today + timedelta(days=n)).isoformat() for n in (20, 30)]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def change(target: str):
        client = APIClient()
        barrier.wait()
        answer = client.post(
            f"/loans/{loan.pk}/change-due-date/", {"date_due": target, "reason": f"to {target}"}, format="json"
        )
        statuses.append(answer.status_code)

    threads = [in_thread(change, target) for target in targets]
    for thread in threads:
        thread.join(60)
    assert statuses == [200, 200]
    changes = list(Event.objects.filter(loan=loan, kind=EventKind.DUE_DATE_CHANGED).order_by("sequence"))
    assert [event.sequence for event in changes] == [1, 2]
    # Each change replaced the one before it: the first the original date, the second the first's.
    assert changes[0].data["previous"] == _iso(original)
    assert changes[1].data["previous"] == changes[0].data["date_due"]
    loan.refresh_from_db()
    assert _iso(loan.date_due) == changes[1].data["date_due"]


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("first", ["declare-lost", "return"])
def test_a_declare_lost_racing_a_return_is_applied_before_or_after_it(peers, patron, book, first):
    lent = APIClient().post("/lendBook/", {"user_email": patron, "book_id": book["id"]}, format="json")
    loan = Loan.objects.get(pk=lent.json()["id"])
    declare = (f"/loans/{loan.pk}/declare-lost/", {})
    give_back = ("/returnBook/", {"user_email": patron, "book_id": book["id"]})
    holder, other = (declare, give_back) if first == "declare-lost" else (give_back, declare)
    pause = paused(lost_service, "enqueue") if first == "declare-lost" else paused(return_service, "messages_insert")
    held, waiting = held_then_waiting(pause, holder, other)
    kinds = list(Event.objects.filter(loan=loan).order_by("sequence").values_list("kind", flat=True))
    if first == "declare-lost":
        assert (held["status"], waiting["status"]) == (200, 200)
        assert kinds == [EventKind.LENT, EventKind.DECLARED_LOST, EventKind.RETURNED, EventKind.RESOLVED]
    else:
        assert (held["status"], waiting["status"]) == (200, 409)
        assert waiting["body"]["error"]["code"] == "loan_not_open"
        assert kinds == [EventKind.LENT, EventKind.RETURNED]
    loan.refresh_from_db()
    assert loan.status == "RETURNED" and loan.date_returned is not None
    other_patron = peers.user.add_user(f"next-{loan.pk}@example.com")["email"]
    again = APIClient().post("/lendBook/", {"user_email": other_patron, "book_id": book["id"]}, format="json")
    assert again.status_code == 201, again.content  # exactly one copy, free again


def test_a_return_waiting_while_aging_to_lost_commits_resolves_it_as_found(settings):
    settings.LOST_AFTER_OVERDUE_DAYS = 30
    loan = LoanFactory(due_in=days(-40))
    result: dict = {}
    with transaction.atomic():
        assert lost_service.age_overdue_to_lost() == 1  # the loan's row stays locked until this block ends
        returning = in_thread(
            post_into, result, "/returnBook/", {"user_email": loan.user_email, "book_id": loan.book_id}
        )
        wait_until(lambda: lock_waiters() >= 1)  # the return waits for the row
    returning.join(30)
    assert result["status"] == 200, result
    kinds = list(Event.objects.filter(loan=loan).order_by("sequence").values_list("kind", flat=True))
    assert kinds == [EventKind.DECLARED_LOST, EventKind.RETURNED, EventKind.RESOLVED]
    assert Event.objects.get(loan=loan, kind=EventKind.RESOLVED).data == {"outcome": "found", "was": "LOST"}
