"""The peer clients against the reference peers over real HTTP: the contracts the README's peer table describes."""

import pytest

from lending.clients import books, notifications, users
from lending.errors import Forbidden, NotFound, PeerUnavailable


def test_get_book_reads_title_and_quantity(peers):
    created = peers.book.add_book("Candide", "Voltaire", 4)
    book = books.get_book(created["id"])
    assert (book.id, book.title, book.copies) == (created["id"], "Candide", 4)


@pytest.mark.parametrize(("extra", "copies"), [({"copies": 2}, 2), ({}, 1), ({"quantity": None}, 1)])
def test_copies_default_to_one_and_accept_copies_field(peers, extra, copies):
    created = peers.book.add_book("Zadig", "Voltaire", 1)
    created.pop("quantity")
    created.update(extra)
    assert books.get_book(created["id"]).copies == copies


def test_unknown_book_is_not_found(peers):
    with pytest.raises(NotFound) as caught:
        books.get_book(987_654)
    assert caught.value.code == "book_not_found"


@pytest.mark.parametrize("garbage", [{"quantity": "many"}, {"quantity": -1}, {"quantity": True}])
def test_a_book_answer_outside_the_contract_is_peer_unavailable(peers, garbage):
    created = peers.book.add_book("Odd", "X", 1)
    created.update(garbage)
    with pytest.raises(PeerUnavailable):
        books.get_book(created["id"])


def test_publish_availability_updates_the_peer_once_per_key(peers):
    created = peers.book.add_book("Micromégas", "Voltaire", 1)
    assert books.publish_availability(created["id"], False, idempotency_key="k-1") == 200
    assert books.publish_availability(created["id"], True, idempotency_key="k-1") == 200
    assert peers.book.books[created["id"]]["available"] is False


def test_users_active_inactive_unknown(peers):
    users.ensure_active_user("alice@example.com")
    with pytest.raises(Forbidden):
        users.ensure_active_user("inactive@example.com")
    with pytest.raises(NotFound):
        users.ensure_active_user("ghost@example.com")


def test_user_without_active_field_counts_as_active(peers):
    peers.user.add_user("noflag@example.com").pop("active")
    users.ensure_active_user("noflag@example.com")


def test_notification_is_stored_and_a_repeat_key_dropped(peers):
    payload = {
        "user_email": "n@example.com",
        "message_type": "lending_confirmation",
        "book_title": "T",
        "due_date": "2030-01-01",
    }
    assert notifications.send_notification(payload, idempotency_key="note-1") == 202
    assert notifications.send_notification(payload, idempotency_key="note-1") == 200
    assert len([n for n in peers.notification.notifications if n["user_email"] == "n@example.com"]) == 1
