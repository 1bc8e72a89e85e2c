"""The reference peers' copies and cards: the demo data the README lists (and `make run` serves), and
their `POST /books` and `POST /users`, which accept barcodes and generate them when none are given."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from reference_peers import BookPeer, UserPeer


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def unique(prefix: str = "R") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# --- the demo data, as `make run` starts the peers (--demo-books 100 --demo-users 100) -----------------


@pytest.fixture(scope="module")
def demo_books() -> BookPeer:
    return BookPeer(demo_books=100)  # not started: its state is what it would serve


@pytest.fixture(scope="module")
def demo_users() -> UserPeer:
    return UserPeer(demo_users=100)


def test_the_demo_copies_have_the_readme_barcodes(demo_books):
    barcodes = [item["barcode"] for item in demo_books.books[1]["items"]]
    assert barcodes == ["3900000101", "3900000102", "3900000103"]
    assert [item["barcode"] for item in demo_books.books[2]["items"]] == ["3900000201"]
    assert [item["barcode"] for item in demo_books.books[105]["items"]] == ["3900010501"]
    for book_id, book in demo_books.books.items():
        assert len(book["items"]) == book["quantity"]
        for copy, item in enumerate(book["items"], start=1):
            assert item["barcode"] == f"39{book_id:06d}{copy:02d}"
            assert demo_books.items[item["barcode"]] == {**item, "book_id": book_id, "loanable": True}


def test_germinal_and_the_last_five_demo_books_are_dvds(demo_books):
    dvds = {item["book_id"] for item in demo_books.items.values() if item["type"] == "dvd"}
    assert dvds == {5, 101, 102, 103, 104, 105}
    assert {item["type"] for item in demo_books.items.values()} == {"book", "dvd"}


def test_the_demo_patrons_have_the_readme_cards_and_categories(demo_users):
    def card(email: str) -> tuple[str, str, bool]:
        user = demo_users.users[email]
        return user["barcode"], user["category"], user["active"]

    assert card("alice@example.com") == ("2100000001", "adult", True)
    assert card("bob@example.com") == ("2100000002", "student", True)
    assert card("carol@example.com") == ("2100000003", "staff", True)
    assert card("inactive@example.com") == ("2100000004", "adult", False)
    assert card("patron1@example.com") == ("2100001001", "adult", True)
    assert card("patron2@example.com") == ("2100001002", "student", True)
    assert card("patron100@example.com") == ("2100001100", "student", True)
    assert len({user["barcode"] for user in demo_users.users.values()}) == len(demo_users.users) == 104


def test_the_demo_data_is_what_make_run_serves():
    """`make run` starts the peers with 100 demo books and 100 demo patrons: the tables above."""
    from scripts.run_local import PROCESSES

    command = PROCESSES["peers"]
    assert command[command.index("--demo-books") + 1] == "100"
    assert command[command.index("--demo-users") + 1] == "100"


# --- the Book peer ---------------------------------------------------------------------------------


def test_post_books_with_a_quantity_answers_generated_items(peers):
    status, book = call("POST", f"{peers.book.url}/books", {"title": "Bought", "quantity": 2})
    assert status == 201 and book["quantity"] == 2
    assert book["items"] == [
        {"barcode": f"39{book['id']:06d}01", "type": "book"},
        {"barcode": f"39{book['id']:06d}02", "type": "book"},
    ]
    assert call("GET", f"{peers.book.url}/getBooks/{book['id']}") == (200, book)


def test_post_books_with_items_stores_each_copy(peers):
    dvd, reference = unique("D"), unique("R")
    items = [{"barcode": dvd, "type": "dvd"}, {"barcode": reference, "loanable": False}]
    status, book = call("POST", f"{peers.book.url}/books", {"title": "Mixed", "items": items})
    assert status == 201 and book["quantity"] == 2
    assert book["items"] == [{"barcode": dvd, "type": "dvd"}, {"barcode": reference, "type": "book"}]
    assert call("GET", f"{peers.book.url}/items/{dvd}") == (
        200,
        {"barcode": dvd, "book_id": book["id"], "type": "dvd", "loanable": True},
    )
    assert call("GET", f"{peers.book.url}/items/{reference}")[1]["loanable"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"title": "T", "items": "3900000101"},
        {"title": "T", "items": [{"type": "dvd"}]},
        {"title": "T", "items": [{"barcode": ""}]},
        {"title": "T", "items": [{"barcode": "x" * 65}]},
        {"title": "T", "items": [{"barcode": "a", "loanable": "no"}]},
        {"title": "T", "items": [{"barcode": "a"}, {"barcode": "a"}]},
        {"title": "T", "quantity": 2, "items": [{"barcode": "a"}]},
    ],
    ids=repr,
)
def test_post_books_refuses_items_it_cannot_store(peers, body):
    assert call("POST", f"{peers.book.url}/books", body)[0] == 400


def test_post_books_refuses_a_barcode_another_copy_has(peers):
    first = peers.book.add_book("First", "A", 1)
    taken, books_before = first["items"][0]["barcode"], len(peers.book.books)
    status, _ = call("POST", f"{peers.book.url}/books", {"title": "Second", "items": [{"barcode": taken}]})
    assert status == 409
    assert (len(peers.book.books), peers.book.items[taken]["book_id"]) == (books_before, first["id"])


def test_items_follow_the_quantity(peers):
    book = peers.book.add_book("Growing", "A", 1)
    first = book["items"][0]["barcode"]
    peers.book.set_quantity(book["id"], 3)
    assert [item["barcode"] for item in book["items"]] == [f"39{book['id']:06d}{n:02d}" for n in (1, 2, 3)]
    peers.book.set_quantity(book["id"], 1)
    assert [item["barcode"] for item in book["items"]] == [first]
    assert f"39{book['id']:06d}02" not in peers.book.items
    added = peers.book.add_item(book["id"], item_type="magazine")
    assert (book["quantity"], book["items"][-1]) == (2, {"barcode": added["barcode"], "type": "magazine"})


def test_an_unknown_item_is_404(peers):
    assert call("GET", f"{peers.book.url}/items/{unique('none')}")[0] == 404


# --- the User peer ---------------------------------------------------------------------------------


def test_post_users_generates_a_card_and_the_card_finds_the_user(peers):
    email = f"{unique('new')}@example.com"
    status, user = call("POST", f"{peers.user.url}/users", {"email": email})
    assert status == 201
    assert user["category"] == "adult" and user["barcode"]
    assert call("GET", f"{peers.user.url}/users?barcode={user['barcode']}") == (200, user)
    assert call("GET", f"{peers.user.url}/users/{email}") == (200, user)


def test_post_users_accepts_a_card_and_a_category(peers):
    email, card = f"{unique('given')}@example.com", unique("C")
    status, user = call("POST", f"{peers.user.url}/users", {"email": email, "barcode": card, "category": "student"})
    assert status == 201 and (user["barcode"], user["category"]) == (card, "student")
    assert call("GET", f"{peers.user.url}/users?barcode={card}")[1]["email"] == email


def test_post_users_refuses_a_card_another_patron_holds(peers):
    status, _ = call("POST", f"{peers.user.url}/users", {"email": f"{unique()}@example.com", "barcode": "2100000001"})
    assert status == 409
    assert call("GET", f"{peers.user.url}/users?barcode=2100000001")[1]["email"] == "alice@example.com"


@pytest.mark.parametrize("extra", [{"barcode": 5}, {"barcode": ""}, {"barcode": "x" * 65}, {"category": 3}], ids=repr)
def test_post_users_refuses_a_card_or_category_it_cannot_store(peers, extra):
    assert call("POST", f"{peers.user.url}/users", {"email": f"{unique()}@example.com", **extra})[0] == 400


def test_adding_a_patron_again_frees_their_former_card(peers):
    email = f"{unique('again')}@example.com"
    former = peers.user.add_user(email)["barcode"]
    peers.user.add_user(email, barcode=unique("C2"))
    assert call("GET", f"{peers.user.url}/users?barcode={former}")[0] == 404


@pytest.mark.parametrize("query", ["", "?barcode=", "?other=1"])
def test_a_card_lookup_without_a_card_is_400(peers, query):
    assert call("GET", f"{peers.user.url}/users{query}")[0] == 400


def test_an_unknown_card_is_404(peers):
    assert call("GET", f"{peers.user.url}/users?barcode={unique('nobody')}")[0] == 404
