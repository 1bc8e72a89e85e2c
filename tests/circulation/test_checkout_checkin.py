"""Issue 23: circulation by copy. `POST /checkouts/` (the patron's card or email, then the item),
`POST /checkins/` (the item alone: a desk, a book drop), holds trapping the copy that fulfils them,
and `GET /items/{barcode}/circulation/`. A barcoded loan is a lend like any other: title-level and
barcoded loans of one title share its copies (the count under the book lock)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from lending.models import Event, EventKind, Hold, HoldStatus, Loan, LoanStatus
from lending.services import expire_ready_holds
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


def new_patron(peers, active: bool = True) -> dict:
    """A patron with a library card (the User peer generates it)."""
    return peers.user.add_user(f"desk-{uuid.uuid4().hex[:10]}@example.com", active)


def new_book(peers, copies: int = 1) -> tuple[int, list[str]]:
    book = peers.book.add_book("Desk book", "Author", copies)
    return book["id"], [item["barcode"] for item in book["items"]]


def check_out(api, item: str, patron: dict, **headers):
    return post_json(api, "/checkouts/", {"item_barcode": item, "patron_barcode": patron["barcode"]}, **headers)


def check_in(api, item: str, **fields):
    return post_json(api, "/checkins/", {"item_barcode": item, **fields})


def error_code(response) -> str:
    return response.json()["error"]["code"]


def reserve(api, patron: dict, book_id: int) -> int:
    reserved = post_json(api, "/reserveBook/", {"user_email": patron["email"], "book_id": book_id})
    assert reserved.status_code == 201, reserved.content
    return reserved.json()["id"]


# --- 1. Loans name the copy --------------------------------------------------------------------------
def test_the_database_allows_one_open_loan_per_barcode(api, peers):
    book_id, [item] = new_book(peers)
    first, second = new_patron(peers), new_patron(peers)
    assert check_out(api, item, first).status_code == 201
    loan = Loan.objects.get(item_barcode=item)
    with pytest.raises(IntegrityError), transaction.atomic():
        Loan.objects.create(
            user_email=second["email"],
            book_id=book_id,
            date_borrowed=loan.date_borrowed,
            date_due=loan.date_due,
            item_barcode=item,
        )
    assert check_in(api, item).status_code == 200
    again = check_out(api, item, second)  # returned: the copy may go out again
    assert again.status_code == 201, again.content


def test_title_level_and_barcoded_loans_share_the_titles_copies(api, peers):
    book_id, [first_copy, second_copy] = new_book(peers, copies=2)
    lent = post_json(api, "/lendBook/", {"user_email": new_patron(peers)["email"], "book_id": book_id})
    assert lent.status_code == 201
    assert lent.json().keys() == {"id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status"}
    assert check_out(api, first_copy, new_patron(peers)).status_code == 201
    # The title-level loan took a copy (which one is not known): the count says none is free.
    refused = check_out(api, second_copy, new_patron(peers))
    assert (refused.status_code, error_code(refused)) == (409, "no_copy_available")
    assert Loan.objects.open().filter(book_id=book_id).count() == 2


# --- 2. Check-out -------------------------------------------------------------------------------------
def test_a_check_out_by_card_answers_the_loan_with_its_copy(api, peers):
    book_id, [item] = new_book(peers)
    patron = new_patron(peers)
    response = check_out(api, item, patron)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["item_barcode"] == item
    assert (body["user_email"], body["book_id"], body["status"]) == (patron["email"], book_id, "ACTIVE")
    assert body.keys() == api.get(f"/loans/{body['id']}/").json().keys() | {"item_barcode"}
    assert Loan.objects.get(pk=body["id"]).item_barcode == item


def test_a_check_out_by_email_instead_of_the_card(api, peers):
    _, [item] = new_book(peers)
    patron = new_patron(peers)
    response = post_json(api, "/checkouts/", {"item_barcode": item, "user_email": patron["email"].upper()})
    assert response.status_code == 201, response.content
    assert response.json()["user_email"] == patron["email"]


@pytest.mark.parametrize(
    "body",
    [
        {"item_barcode": "3900000101"},
        {"item_barcode": "3900000101", "patron_barcode": "2100000001", "user_email": "alice@example.com"},
        {"item_barcode": "", "patron_barcode": "2100000001"},
        {"item_barcode": "39 00", "patron_barcode": "2100000001"},
        {"item_barcode": 3900000101, "patron_barcode": "2100000001"},
        {"item_barcode": "3" * 65, "patron_barcode": "2100000001"},
    ],
)
def test_a_malformed_check_out_is_400(api, peers, body):
    response = post_json(api, "/checkouts/", body)
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    assert not Loan.objects.exists()


def test_check_out_refusals_of_the_item_and_the_card(api, peers):
    book_id, [item] = new_book(peers)
    patron = new_patron(peers)
    unknown_item = check_out(api, "no-such-item", patron)
    assert (unknown_item.status_code, error_code(unknown_item)) == (404, "item_not_found")
    unknown_card = post_json(api, "/checkouts/", {"item_barcode": item, "patron_barcode": "0000-no-card"})
    assert (unknown_card.status_code, error_code(unknown_card)) == (404, "user_not_found")
    inactive = check_out(api, item, new_patron(peers, active=False))
    assert (inactive.status_code, error_code(inactive)) == (403, "user_inactive")
    peers.book.set_loanable(item, False)
    reference = check_out(api, item, patron)
    assert (reference.status_code, error_code(reference)) == (409, "item_not_loanable")
    assert not Loan.objects.filter(book_id=book_id).exists()


def test_an_item_on_loan_to_someone_else_never_names_them(api, peers):
    _, [item, _other_copy] = new_book(peers, copies=2)
    holder, other = new_patron(peers), new_patron(peers)
    assert check_out(api, item, holder).status_code == 201
    refused = check_out(api, item, other)
    assert (refused.status_code, error_code(refused)) == (409, "item_on_loan")
    assert holder["email"] not in refused.content.decode()
    mine_again = check_out(api, item, holder)
    assert (mine_again.status_code, error_code(mine_again)) == (409, "already_borrowed")


def test_a_lend_refusal_applies_to_a_check_out_and_an_override_lifts_it(api, peers, settings):
    _, [item] = new_book(peers)
    patron = new_patron(peers)
    blocked = post_json(api, f"/patrons/{patron['email']}/blocks/", {"reason": "Desk", "blocks": ["borrow"]})
    assert blocked.status_code == 201
    refused = check_out(api, item, patron)
    assert (refused.status_code, error_code(refused)) == (403, "patron_blocked")
    lifted = post_json(
        api,
        "/checkouts/",
        {"item_barcode": item, "patron_barcode": patron["barcode"], "override": {"reason": "Paid at the desk"}},
    )
    assert lifted.status_code == 201, lifted.content
    lent = Event.objects.get(loan_id=lifted.json()["id"], kind=EventKind.LENT)
    assert lent.reason == "Paid at the desk"


def test_a_check_out_with_an_idempotency_key_is_replayed(api, peers):
    _, [item] = new_book(peers)
    patron = new_patron(peers)
    first = check_out(api, item, patron, **{"Idempotency-Key": "desk-1"})
    again = check_out(api, item, patron, **{"Idempotency-Key": "desk-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Loan.objects.filter(item_barcode=item).count() == 1


def test_the_lent_events_history_names_the_copy_a_title_level_lends_does_not(api, peers):
    book_id, [item, _] = new_book(peers, copies=2)
    barcoded = check_out(api, item, new_patron(peers)).json()
    title = post_json(api, "/lendBook/", {"user_email": new_patron(peers)["email"], "book_id": book_id}).json()
    assert Event.objects.get(loan_id=barcoded["id"], kind=EventKind.LENT).data["item_barcode"] == item
    assert "item_barcode" not in Event.objects.get(loan_id=title["id"], kind=EventKind.LENT).data
    history = api.get(f"/loans/{barcoded['id']}/history/").json()["results"]
    assert history[0]["data"]["item_barcode"] == item


# --- 3. Check-in ----------------------------------------------------------------------------------
def test_a_check_in_returns_the_copys_loan_and_a_second_scan_records_nothing(api, peers):
    _, [item] = new_book(peers)
    loan_id = check_out(api, item, new_patron(peers)).json()["id"]
    first = check_in(api, item)
    assert first.status_code == 200, first.content
    assert first.json()["route"] == {"to": "shelf"}
    returned = first.json()["loan"]
    assert (returned["id"], returned["status"], returned["item_barcode"]) == (loan_id, "RETURNED", item)
    events = list(Event.objects.order_by("pk").values_list("pk", flat=True))
    second = check_in(api, item)
    assert second.json() == {"loan": None, "route": {"to": "shelf"}}
    assert list(Event.objects.order_by("pk").values_list("pk", flat=True)) == events
    returned_event = Event.objects.get(loan_id=loan_id, kind=EventKind.RETURNED)
    assert returned_event.data["item_barcode"] == item


def test_a_check_in_of_an_item_never_lent_or_unknown(api, peers):
    _, [item] = new_book(peers)
    assert check_in(api, item).json() == {"loan": None, "route": {"to": "shelf"}}
    unknown = check_in(api, "no-such-item")
    assert (unknown.status_code, error_code(unknown)) == (404, "item_not_found")


def test_a_catalogue_that_answers_each_spelling_with_the_other_cannot_loop_a_check_in(api, peers):
    """The check-in follows the catalogue's spelling of a barcode once, not round and round."""
    _, [item] = new_book(peers)
    lower, upper = item.lower() + "x", item.upper() + "X"
    with peers.book.lock:
        copy = peers.book.items.pop(item)
        peers.book.items[lower] = {**copy, "barcode": upper}
        peers.book.items[upper] = {**copy, "barcode": lower}
    answer = check_in(api, lower)
    assert answer.status_code == 200, answer.content
    assert answer.json()["loan"] is None


def test_a_check_in_resolves_a_lost_loan_as_found(api, peers):
    _, [item] = new_book(peers)
    loan_id = check_out(api, item, new_patron(peers)).json()["id"]
    assert post_json(api, f"/loans/{loan_id}/declare-lost/", {}).status_code == 200
    response = check_in(api, item)
    assert response.json()["loan"]["status"] == "RETURNED"
    resolved = Event.objects.get(loan_id=loan_id, kind=EventKind.RESOLVED)
    assert resolved.data == {"outcome": "found", "was": "LOST"}


def test_a_check_in_back_dated_by_the_book_drop(api, peers):
    _, [item] = new_book(peers)
    loan_id = check_out(api, item, new_patron(peers)).json()["id"]
    Loan.objects.filter(pk=loan_id).update(date_borrowed=timezone.now() - timedelta(hours=1))
    future = check_in(api, item, returned_at=(timezone.now() + timedelta(days=1)).isoformat())
    assert (future.status_code, error_code(future)) == (422, "date_out_of_range")
    before_the_loan = check_in(api, item, returned_at=(timezone.now() - timedelta(hours=2)).isoformat())
    assert (before_the_loan.status_code, error_code(before_the_loan)) == (400, "invalid_request")
    moment = timezone.now() - timedelta(minutes=5)
    response = check_in(api, item, returned_at=moment.isoformat())
    assert response.status_code == 200, response.content
    assert Loan.objects.get(pk=loan_id).date_returned == moment


def test_a_title_level_loan_is_not_checked_in_by_a_barcode(api, peers):
    book_id, [item] = new_book(peers)
    patron = new_patron(peers)
    assert post_json(api, "/lendBook/", {"user_email": patron["email"], "book_id": book_id}).status_code == 201
    # The loan names no copy: the scan returns nothing; returnBook does.
    assert check_in(api, item).json() == {"loan": None, "route": {"to": "shelf"}}
    assert Loan.objects.open().filter(book_id=book_id).count() == 1
    returned = post_json(api, "/returnBook/", {"user_email": patron["email"], "book_id": book_id})
    assert returned.status_code == 200


# --- 4. Holds trap a copy ------------------------------------------------------------------------
def test_a_check_in_traps_the_copy_for_the_first_patron_waiting(api, peers):
    book_id, [item] = new_book(peers)
    borrower, first, second = new_patron(peers), new_patron(peers), new_patron(peers)
    check_out(api, item, borrower)
    hold_id = reserve(api, first, book_id)
    reserve(api, second, book_id)
    response = check_in(api, item)
    assert response.json()["route"] == {"to": "hold_shelf", "hold_id": hold_id}
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.status, hold.item_barcode) == (HoldStatus.READY, item)
    ready = Event.objects.get(hold_id=hold_id, kind=EventKind.HOLD_READY)
    assert ready.data["item_barcode"] == item
    # Scanned again: the same route, nothing recorded.
    events = Event.objects.count()
    assert check_in(api, item).json() == {"loan": None, "route": {"to": "hold_shelf", "hold_id": hold_id}}
    assert Event.objects.count() == events
    # Only the holder may take it.
    refused = check_out(api, item, second)
    assert (refused.status_code, error_code(refused)) == (409, "item_on_hold_shelf")
    assert first["email"] not in refused.content.decode()
    taken = check_out(api, item, first)
    assert taken.status_code == 201, taken.content
    hold.refresh_from_db()
    assert (hold.status, hold.loan_id) == (HoldStatus.FULFILLED, taken.json()["id"])


def trapped_for_first_of(api, peers, waiting: int) -> tuple[int, str, list[dict], list[int]]:
    """A one-copy book, checked out and back in while `waiting` patrons queue: the copy is trapped for
    the first. Returns the book, the copy, the patrons waiting and their holds."""
    book_id, [item] = new_book(peers)
    check_out(api, item, new_patron(peers))
    patrons = [new_patron(peers) for _ in range(waiting)]
    holds = [reserve(api, patron, book_id) for patron in patrons]
    assert check_in(api, item).json()["route"] == {"to": "hold_shelf", "hold_id": holds[0]}
    return book_id, item, patrons, holds


def test_a_trapped_copy_passes_to_the_next_patron_when_the_hold_expires(api, peers):
    _, item, [first, second], [first_hold, second_hold] = trapped_for_first_of(api, peers, waiting=2)
    assert expire_ready_holds(now=timezone.now() + timedelta(days=30)) == 1
    assert Hold.objects.get(pk=first_hold).status == HoldStatus.EXPIRED
    passed = Hold.objects.get(pk=second_hold)
    assert (passed.status, passed.item_barcode) == (HoldStatus.READY, item)
    assert check_in(api, item).json()["route"] == {"to": "hold_shelf", "hold_id": second_hold}
    too_late = check_out(api, item, first)
    assert (too_late.status_code, error_code(too_late)) == (409, "item_on_hold_shelf")
    assert check_out(api, item, second).status_code == 201


def test_a_trapped_copy_is_free_again_when_its_hold_expires_and_nobody_waits(api, peers):
    _, item, [holder], _ = trapped_for_first_of(api, peers, waiting=1)
    expire_ready_holds(now=timezone.now() + timedelta(days=30))
    assert api.get(f"/items/{item}/circulation/").json()["status"] == "available"
    assert check_out(api, item, new_patron(peers)).status_code == 201


def test_a_cancelled_trapped_hold_passes_the_copy_to_the_next_patron(api, peers):
    book_id, item, [first, _second], [_, second_hold] = trapped_for_first_of(api, peers, waiting=2)
    cancelled = post_json(api, "/cancelReservation/", {"user_email": first["email"], "book_id": book_id})
    assert cancelled.status_code == 200
    assert Hold.objects.get(pk=second_hold).item_barcode == item


def test_a_check_in_with_an_idempotency_key_is_replayed(api, peers):
    _, item, _, [hold_id] = trapped_for_first_of(api, peers, waiting=1)
    body = {"item_barcode": item}
    first = post_json(api, "/checkins/", body, **{"Idempotency-Key": "drop-1"})
    again = post_json(api, "/checkins/", body, **{"Idempotency-Key": "drop-1"})
    assert first.json() == again.json() == {"loan": None, "route": {"to": "hold_shelf", "hold_id": hold_id}}
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_return_by_title_of_a_barcoded_loan_traps_its_copy_too(api, peers):
    book_id, [item] = new_book(peers)
    borrower, waiting = new_patron(peers), new_patron(peers)
    check_out(api, item, borrower)
    hold_id = reserve(api, waiting, book_id)
    returned = post_json(api, "/returnBook/", {"user_email": borrower["email"], "book_id": book_id})
    assert returned.status_code == 200
    assert Hold.objects.get(pk=hold_id).item_barcode == item


def test_a_copy_not_on_loan_is_trapped_for_a_ready_hold_kept_by_the_count(api, peers):
    book_id, [item] = new_book(peers)
    borrower, waiting = new_patron(peers), new_patron(peers)
    post_json(api, "/lendBook/", {"user_email": borrower["email"], "book_id": book_id})
    hold_id = reserve(api, waiting, book_id)
    post_json(api, "/returnBook/", {"user_email": borrower["email"], "book_id": book_id})
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.status, hold.item_barcode) == (HoldStatus.READY, None)  # a copy kept, none named
    response = check_in(api, item)
    assert response.json() == {"loan": None, "route": {"to": "hold_shelf", "hold_id": hold_id}}
    assert Hold.objects.get(pk=hold_id).item_barcode == item


def test_a_copy_not_on_loan_goes_to_a_patron_waiting_when_the_count_has_one_free(api, peers):
    book_id, [item] = new_book(peers)
    post_json(api, "/lendBook/", {"user_email": new_patron(peers)["email"], "book_id": book_id})
    hold_id = reserve(api, new_patron(peers), book_id)
    peers.book.add_item(book_id)  # the library bought a copy: the count has one free for the queue
    response = check_in(api, item)
    assert response.json() == {"loan": None, "route": {"to": "hold_shelf", "hold_id": hold_id}}


# --- 5. A copy's status ------------------------------------------------------------------------------
def test_the_item_status_walk(api, peers):
    book_id, [item] = new_book(peers)
    borrower, waiting = new_patron(peers), new_patron(peers)

    def status() -> dict:
        response = api.get(f"/items/{item}/circulation/")
        assert response.status_code == 200, response.content
        return response.json()

    assert status() == {
        "item_barcode": item,
        "book_id": book_id,
        "status": "available",
        "loan_id": None,
        "date_due": None,
        "holds_waiting": 0,
    }
    loan = check_out(api, item, borrower).json()
    reserve(api, waiting, book_id)
    out = status()
    assert (out["status"], out["loan_id"], out["date_due"], out["holds_waiting"]) == (
        "checked_out",
        loan["id"],
        loan["date_due"],
        1,
    )
    assert borrower["email"] not in str(out) and waiting["email"] not in str(out)
    post_json(api, f"/loans/{loan['id']}/claim-returned/", {})
    assert status()["status"] == "claimed_returned"
    post_json(api, f"/loans/{loan['id']}/resolve/", {"outcome": "lost"})
    assert status()["status"] == "lost"
    check_in(api, item)
    assert (status()["status"], status()["holds_waiting"]) == ("on_hold_shelf", 0)
    check_out(api, item, waiting)
    assert status()["status"] == "checked_out"
    check_in(api, item)
    assert status()["status"] == "available"
    unknown = api.get("/items/no-such-item/circulation/")
    assert (unknown.status_code, error_code(unknown)) == (404, "item_not_found")


# --- 8. The title-level endpoints are as before ----------------------------------------------------------
def test_a_title_level_loan_names_no_copy(api, peers):
    book_id, _ = new_book(peers)
    patron = new_patron(peers)
    lent = post_json(api, "/lendBook/", {"user_email": patron["email"], "book_id": book_id})
    assert "item_barcode" not in lent.json()
    assert Loan.objects.get(pk=lent.json()["id"]).item_barcode is None
    assert Loan.objects.get(pk=lent.json()["id"]).status == LoanStatus.ACTIVE
