"""`manage.py resync_availability`: after the Book service lost its state, every book's availability
is published again through the outbox, computed from our loans."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from lending.models import OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import relay
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


def resync(*args: str) -> str:
    out = StringIO()
    call_command("resync_availability", *args, stdout=out)
    return out.getvalue()


def deliver_everything() -> None:
    relay.run_once()
    assert not OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists()


def test_a_book_peer_that_forgot_a_loan_shows_the_book_lent_again(api, peers, patron):
    lent = peers.book.add_book("Lent", "A", 1)
    free = peers.book.add_book("Free", "B", 1)
    assert post_json(api, "/lendBook/", {"user_email": patron, "book_id": lent["id"]}).status_code == 201
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": free["id"]})
    post_json(api, "/returnBook/", {"user_email": patron, "book_id": free["id"]})
    deliver_everything()
    assert peers.book.books[lent["id"]]["available"] is False
    # The Book service restarts with its catalogue only: it believes every copy is on the shelf.
    peers.book.books[lent["id"]]["available"] = True
    peers.book.books[free["id"]]["available"] = False

    assert "queued availability of 2 book(s)" in resync()
    deliver_everything()

    assert peers.book.books[lent["id"]]["available"] is False
    assert peers.book.books[free["id"]]["available"] is True


def test_only_the_given_books(api, peers, patron):
    book = peers.book.add_book("One", "A", 1)
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    OutboxMessage.objects.all().delete()
    assert "queued availability of 1 book(s)" in resync(str(book["id"]))
    assert list(OutboxMessage.objects.values_list("kind", "book_id")) == [(OutboxKind.AVAILABILITY, book["id"])]


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "2147483648"])
def test_a_bad_book_id_is_refused_and_nothing_queued(bad):
    with pytest.raises(CommandError, match="positive integer"):
        resync(bad)
    assert not OutboxMessage.objects.exists()
