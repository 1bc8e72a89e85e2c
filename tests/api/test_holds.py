"""The holds queue: `POST /reserveBook/`, `POST /cancelReservation/`, `GET /reservations/`, READY
holds kept for their patron, and hold expiry."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from lending import calendar, selectors, services
from lending.models import Hold, HoldStatus, Loan, OutboxKind, OutboxMessage
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

HOLD_FIELDS = {
    "id",
    "user_email",
    "book_id",
    "book_title",
    "status",
    "queue_position",
    "date_reserved",
    "date_ready",
    "pickup_deadline",
    "date_closed",
    "loan_id",
}


def call(api, path, email, book_id, **headers):
    return post_json(api, path, {"user_email": email, "book_id": book_id}, **headers)


def code(response) -> str:
    return response.json()["error"]["code"]


def hold_notices(book_id: int) -> list[str]:
    return [
        m.payload["user_email"]
        for m in OutboxMessage.objects.filter(
            kind=OutboxKind.NOTIFICATION, book_id=book_id, payload__message_type="hold_available"
        ).order_by("id")
    ]


@pytest.fixture
def readers(peers, book):
    """Four patrons: `lender` holds the book's only copy; `first`, `second`, `third` may queue."""
    names = ("lender", "first", "second", "third")
    return {n: peers.user.add_user(f"{n}-{book['id']}@example.com")["email"] for n in names}


@pytest.fixture
def lent(api, book, readers):
    assert call(api, "/lendBook/", readers["lender"], book["id"]).status_code == 201
    return book


@pytest.fixture
def queued(api, lent, readers):
    """The copy is lent; `first` then `second` are queued."""
    for name in ("first", "second"):
        assert call(api, "/reserveBook/", readers[name], lent["id"]).status_code == 201
    return lent


def status_of(email: str, book_id: int) -> str:
    return Hold.objects.filter(user_email=email, book_id=book_id).latest("id").status


# --- Reserving ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/reserveBook/", "/reserveBook"])
def test_a_patron_queues_for_a_book_with_no_free_copy(api, lent, readers, path):
    response = call(api, path, readers["first"], lent["id"])

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == HOLD_FIELDS
    assert body["status"] == "WAITING" and body["queue_position"] == 1 and body["book_title"] == "Test book"
    second = call(api, "/reserveBook/", readers["second"], lent["id"])
    assert second.json()["queue_position"] == 2


def test_reserving_a_free_book_is_refused(api, book, readers):
    refused = call(api, "/reserveBook/", readers["first"], book["id"])
    assert (refused.status_code, code(refused)) == (409, "copy_available")
    assert not Hold.objects.exists()


def test_reserving_twice_is_refused(api, queued, readers):
    refused = call(api, "/reserveBook/", readers["first"], queued["id"])
    assert (refused.status_code, code(refused)) == (409, "already_reserved")
    assert Hold.objects.filter(user_email=readers["first"]).count() == 1


def test_reserving_a_book_already_on_loan_to_you_is_refused(api, lent, readers):
    refused = call(api, "/reserveBook/", readers["lender"], lent["id"])
    assert (refused.status_code, code(refused)) == (409, "already_borrowed")


def test_reserving_needs_a_known_active_patron_and_book(api, lent, readers):
    assert code(call(api, "/reserveBook/", "ghost@example.com", lent["id"])) == "user_not_found"
    assert code(call(api, "/reserveBook/", readers["first"], 999_999)) == "book_not_found"


def test_a_retried_reservation_with_the_same_key_queues_once(api, lent, readers):
    first = call(api, "/reserveBook/", readers["first"], lent["id"], **{"Idempotency-Key": "hold-1"})
    retry = call(api, "/reserveBook/", readers["first"], lent["id"], **{"Idempotency-Key": "hold-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"


# --- A copy comes back ----------------------------------------------------------------------------
def test_a_returned_copy_is_kept_for_the_first_in_the_queue(api, queued, readers, settings):
    before = timezone.now()
    assert call(api, "/returnBook/", readers["lender"], queued["id"]).status_code == 200

    hold = Hold.objects.get(user_email=readers["first"], book_id=queued["id"])
    assert hold.status == HoldStatus.READY
    # The end of the window's last day (lending.calendar: the due-date rule).
    window = timedelta(days=3)
    assert calendar.due_after(before, window) <= hold.pickup_deadline <= calendar.due_after(timezone.now(), window)
    assert status_of(readers["second"], queued["id"]) == HoldStatus.WAITING
    assert hold_notices(queued["id"]) == [readers["first"]]
    notice = OutboxMessage.objects.get(payload__message_type="hold_available")
    assert notice.payload["due_date"] == hold.pickup_deadline.date().isoformat()
    assert notice.payload["book_title"] == "Test book"


def test_the_pickup_window_follows_the_setting(api, queued, readers, settings):
    settings.HOLD_PICKUP_DAYS = 1
    call(api, "/returnBook/", readers["lender"], queued["id"])
    hold = Hold.objects.get(user_email=readers["first"], book_id=queued["id"])
    assert hold.pickup_deadline == calendar.due_after(hold.date_ready, timedelta(days=1))


def test_a_held_copy_cannot_be_borrowed_by_others(api, queued, readers):
    call(api, "/returnBook/", readers["lender"], queued["id"])

    stranger = call(api, "/lendBook/", readers["third"], queued["id"])
    next_in_line = call(api, "/lendBook/", readers["second"], queued["id"])

    assert (stranger.status_code, code(stranger)) == (409, "copies_on_hold")
    assert (next_in_line.status_code, code(next_in_line)) == (409, "copies_on_hold")
    assert not Loan.objects.filter(date_returned__isnull=True).exists()


def test_the_holder_borrows_the_held_copy_and_fulfils_the_hold(api, queued, readers):
    call(api, "/returnBook/", readers["lender"], queued["id"])

    response = call(api, "/lendBook/", readers["first"], queued["id"])

    assert response.status_code == 201
    hold = Hold.objects.get(user_email=readers["first"], book_id=queued["id"])
    assert hold.status == HoldStatus.FULFILLED and hold.loan_id == response.json()["id"]
    assert hold.date_closed is not None


def test_a_free_copy_while_others_wait_is_not_for_walk_ins(api, peers, readers):
    """Two copies, one lent: no one waits, so a walk-in may borrow; once someone waits, the
    copies on the shelf go to the queue first."""
    book = peers.book.add_book("Two copies", "A", 2)
    assert call(api, "/lendBook/", readers["lender"], book["id"]).status_code == 201
    assert call(api, "/lendBook/", readers["third"], book["id"]).status_code == 201
    assert call(api, "/reserveBook/", readers["first"], book["id"]).status_code == 201
    call(api, "/returnBook/", readers["third"], book["id"])
    assert status_of(readers["first"], book["id"]) == HoldStatus.READY
    assert code(call(api, "/lendBook/", readers["third"], book["id"])) == "copies_on_hold"


def test_availability_is_false_while_the_only_free_copy_is_held(api, queued, readers):
    call(api, "/returnBook/", readers["lender"], queued["id"])
    assert selectors.book_is_available(queued["id"])[0] is False

    call(api, "/lendBook/", readers["first"], queued["id"])
    call(api, "/cancelReservation/", readers["second"], queued["id"])
    call(api, "/returnBook/", readers["first"], queued["id"])
    assert selectors.book_is_available(queued["id"])[0] is True


def test_a_book_with_more_copies_at_the_book_service_serves_the_queue(api, peers, queued, readers):
    peers.book.set_quantity(queued["id"], 2)
    # The next lend or reservation learns the new count and keeps the new copy for the queue.
    refused = call(api, "/lendBook/", readers["third"], queued["id"])
    assert code(refused) == "copies_on_hold"
    assert call(api, "/reserveBook/", readers["third"], queued["id"]).status_code == 201
    assert status_of(readers["first"], queued["id"]) == HoldStatus.READY
    assert hold_notices(queued["id"]) == [readers["first"]]


# --- Cancelling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/cancelReservation/", "/cancelReservation"])
def test_cancelling_a_waiting_hold_moves_the_queue_up(api, queued, readers, path):
    response = call(api, path, readers["first"], queued["id"])

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED" and response.json()["queue_position"] is None
    listing = api.get("/reservations/", {"book_id": queued["id"]}).json()["results"]
    assert [(h["user_email"], h["queue_position"]) for h in listing] == [(readers["second"], 1)]


def test_cancelling_a_ready_hold_passes_the_copy_on(api, queued, readers):
    call(api, "/returnBook/", readers["lender"], queued["id"])
    call(api, "/cancelReservation/", readers["first"], queued["id"])

    assert status_of(readers["second"], queued["id"]) == HoldStatus.READY
    assert hold_notices(queued["id"]) == [readers["first"], readers["second"]]
    assert call(api, "/lendBook/", readers["second"], queued["id"]).status_code == 201


def test_cancelling_without_a_hold_is_404(api, lent, readers):
    refused = call(api, "/cancelReservation/", readers["first"], lent["id"])
    assert (refused.status_code, code(refused)) == (404, "hold_not_found")


def test_cancelling_works_while_every_peer_is_down(api, peers, queued, readers):
    for peer in peers.all():
        peer.faults.status = 503
    assert call(api, "/cancelReservation/", readers["first"], queued["id"]).status_code == 200


# --- Listing --------------------------------------------------------------------------------------
def test_reservations_of_a_book_in_queue_order_with_positions(api, queued, readers, django_assert_num_queries):
    call(api, "/reserveBook/", readers["third"], queued["id"])
    call(api, "/returnBook/", readers["lender"], queued["id"])

    with django_assert_num_queries(2):
        response = api.get("/reservations/", {"book_id": queued["id"]})

    body = response.json()
    assert body["count"] == 3
    assert [(h["user_email"], h["status"], h["queue_position"]) for h in body["results"]] == [
        (readers["first"], "READY", None),
        (readers["second"], "WAITING", 1),
        (readers["third"], "WAITING", 2),
    ]
    assert body["results"][0]["pickup_deadline"] is not None


def test_reservations_of_a_patron(api, peers, queued, readers):
    other_book = peers.book.add_book("Other", "A", 1)
    call(api, "/lendBook/", readers["lender"], other_book["id"])
    call(api, "/reserveBook/", readers["second"], other_book["id"])

    body = api.get("/reservations/", {"user_email": readers["second"].upper()}).json()

    assert [(h["book_id"], h["queue_position"]) for h in body["results"]] == [(queued["id"], 2), (other_book["id"], 1)]


def test_reservations_by_status(api, queued, readers):
    call(api, "/cancelReservation/", readers["first"], queued["id"])
    open_holds = api.get("/reservations/", {"book_id": queued["id"]}).json()["results"]
    cancelled = api.get("/reservations/", {"book_id": queued["id"], "status": "CANCELLED"}).json()["results"]
    assert [h["user_email"] for h in open_holds] == [readers["second"]]
    assert [h["user_email"] for h in cancelled] == [readers["first"]]


@pytest.mark.parametrize("params", [{"status": "LOST"}, {"book_id": "x"}, {"user_email": "nope"}, {"limit": 0}])
def test_bad_reservation_filters_are_400(api, params):
    assert api.get("/reservations/", params).status_code == 400


# --- Expiry ---------------------------------------------------------------------------------------
def test_an_expired_hold_passes_the_copy_to_the_next_patron(api, queued, readers):
    call(api, "/returnBook/", readers["lender"], queued["id"])
    deadline = Hold.objects.get(user_email=readers["first"]).pickup_deadline

    assert services.expire_ready_holds(now=deadline - timedelta(seconds=1)) == 0
    assert services.expire_ready_holds(now=deadline + timedelta(seconds=1)) == 1

    assert status_of(readers["first"], queued["id"]) == HoldStatus.EXPIRED
    assert status_of(readers["second"], queued["id"]) == HoldStatus.READY
    assert hold_notices(queued["id"]) == [readers["first"], readers["second"]]
    [expiry] = OutboxMessage.objects.filter(payload__message_type="hold_expired")
    assert expiry.payload["user_email"] == readers["first"]
    assert expiry.payload["due_date"] == deadline.date().isoformat()  # the deadline that passed
    assert services.expire_ready_holds(now=deadline + timedelta(seconds=2)) == 0  # nothing twice
    assert OutboxMessage.objects.filter(payload__message_type="hold_expired").count() == 1
    assert code(call(api, "/lendBook/", readers["first"], queued["id"])) == "copies_on_hold"
    assert call(api, "/lendBook/", readers["second"], queued["id"]).status_code == 201


def test_an_expired_hold_with_no_one_waiting_frees_the_copy(api, lent, readers):
    call(api, "/reserveBook/", readers["first"], lent["id"])
    call(api, "/returnBook/", readers["lender"], lent["id"])

    assert services.expire_ready_holds(now=timezone.now() + timedelta(days=4)) == 1

    assert selectors.book_is_available(lent["id"])[0] is True
    assert call(api, "/lendBook/", readers["third"], lent["id"]).status_code == 201


def test_the_scheduled_command_expires_holds(api, queued, readers):
    call(api, "/returnBook/", readers["lender"], queued["id"])
    deadline = Hold.objects.get(user_email=readers["first"], book_id=queued["id"]).pickup_deadline
    with time_machine.travel(deadline + timedelta(minutes=1)):
        call_command("send_notices", stdout=StringIO())
    assert status_of(readers["first"], queued["id"]) == HoldStatus.EXPIRED
    assert status_of(readers["second"], queued["id"]) == HoldStatus.READY
