"""Issue 23's races on PostgreSQL, each request on its own thread and connection.

- 50 patrons check out one copy at once: the book lock serialises them; the first lends it, every
  other one finds the copy out (409 `item_on_loan`); one open loan names the barcode.
- A check-out racing a check-in of the same copy: both take the book lock, so one is applied before
  the other. Checked in first, the copy is back and the check-out lends it; checked out first, the
  copy is still out (`item_on_loan`) and the check-in returns it. Never two open loans of the copy.
- A check-in that makes a hold READY while the holder's block changes: the promotion does not depend
  on blocks (as a title-level return's); the holder's check-out then follows the block as it is.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lending import blocks
from lending.models import Hold, HoldStatus, Loan
from lending.services import lend as lend_service
from lending.services import return_book as return_service
from tests.circulation.test_checkout_checkin import error_code, new_book, new_patron, reserve
from tests.circulation.test_races import held_then_waiting, in_thread, paused, post_into
from tests.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.many_connections, pytest.mark.django_db(transaction=True)]


def test_fifty_patrons_checking_out_one_copy_get_one_loan(peers):
    _, [item] = new_book(peers)
    patrons = [new_patron(peers) for _ in range(50)]
    answers = race([("/checkouts/", {"item_barcode": item, "patron_barcode": p["barcode"]}) for p in patrons])
    assert sorted(answers, key=str).count((201, None)) == 1, answers
    assert sorted(code for status, code in answers if status != 201) == ["item_on_loan"] * 49
    assert Loan.objects.open().filter(item_barcode=item).count() == 1


@pytest.mark.parametrize("first", ["check-in", "check-out"])
def test_a_check_out_racing_a_check_in_of_the_same_copy(peers, first):
    _, [item] = new_book(peers)
    borrower, next_patron = new_patron(peers), new_patron(peers)
    lent = APIClient().post("/checkouts/", {"item_barcode": item, "patron_barcode": borrower["barcode"]}, format="json")
    assert lent.status_code == 201
    check_in = ("/checkins/", {"item_barcode": item})
    check_out = ("/checkouts/", {"item_barcode": item, "patron_barcode": next_patron["barcode"]})
    holder, other = (check_in, check_out) if first == "check-in" else (check_out, check_in)
    # Each write pauses where it holds the book lock: the return queueing its messages; the check-out
    # checking the copy (which it finds out).
    if first == "check-in":
        pause = paused(return_service, "messages_insert")
    else:
        pause = paused(lend_service, "check_copy_on_shelf_for")
    held, waiting = held_then_waiting(pause, holder, other)
    answers = {"check-in": held if first == "check-in" else waiting}
    answers["check-out"] = waiting if first == "check-in" else held
    assert answers["check-in"]["status"] == 200
    assert answers["check-in"]["body"]["loan"]["id"] == lent.json()["id"]  # returned either way
    open_loans = list(Loan.objects.open().filter(item_barcode=item))
    if first == "check-in":
        assert answers["check-out"]["status"] == 201, answers
        assert [loan.user_email for loan in open_loans] == [next_patron["email"]]
    else:
        assert (answers["check-out"]["status"], answers["check-out"]["body"]["error"]["code"]) == (409, "item_on_loan")
        assert open_loans == []


@pytest.mark.parametrize("change", ["placed", "removed"])
def test_a_check_in_fulfilling_a_hold_while_the_holders_block_changes(peers, change):
    book_id, [item] = new_book(peers)
    borrower, holder = new_patron(peers), new_patron(peers)
    api = APIClient()
    lent = api.post("/checkouts/", {"item_barcode": item, "patron_barcode": borrower["barcode"]}, format="json")
    assert lent.status_code == 201
    hold_id = reserve(api, holder, book_id)
    existing = None
    if change == "removed":
        existing = blocks.place(
            holder["email"], reason="Desk", actions=["borrow"], expires_at=None, by="t", now=timezone.now()
        )
    patch, inside, release = paused(return_service, "messages_insert")
    result: dict = {}
    with patch:
        checking_in = in_thread(post_into, result, "/checkins/", {"item_barcode": item})
        assert inside.wait(10)  # the check-in holds the book lock, the hold READY and trapped, not committed
        if change == "placed":
            blocks.place(
                holder["email"], reason="Desk", actions=["borrow"], expires_at=None, by="t", now=timezone.now()
            )
        else:
            blocks.PatronBlock.objects.filter(pk=existing.pk).delete()
        release.set()
        checking_in.join(30)
    assert result["status"] == 200, result
    assert result["body"]["route"] == {"to": "hold_shelf", "hold_id": hold_id}
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.status, hold.item_barcode) == (HoldStatus.READY, item)
    taken = api.post("/checkouts/", {"item_barcode": item, "patron_barcode": holder["barcode"]}, format="json")
    if change == "placed":
        assert (taken.status_code, error_code(taken)) == (403, "patron_blocked")
        assert Hold.objects.get(pk=hold_id).status == HoldStatus.READY  # still kept for them
    else:
        assert taken.status_code == 201, taken.content
        assert Hold.objects.get(pk=hold_id).status == HoldStatus.FULFILLED
