"""The reference peers' copies and cards: the demo data the README lists (and `make run` serves), and
their `POST /books` and `POST /users`, which accept barcodes and generate them when none are given."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tools.reference_peers import BookPeer, UserPeer
from tools.reference_peers.book import BarcodeTaken
from tools.reference_peers.user import _demo_patron_number, demo_patron


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


def barcodes(peer: BookPeer, book_id: int) -> list[str]:
    return [item["barcode"] for item in peer.items_of(book_id)]


def test_the_demo_copies_have_the_readme_barcodes(demo_books):
    assert barcodes(demo_books, 1) == ["3900000101", "3900000102", "3900000103"]
    assert barcodes(demo_books, 2) == ["3900000201"]
    assert barcodes(demo_books, 105) == ["3900010501"]
    assert len(demo_books.books) == 105
    for book_id, book in demo_books.books.items():
        assert barcodes(demo_books, book_id) == [
            f"39{book_id:06d}{copy:02d}" for copy in range(1, book["quantity"] + 1)
        ]
        for item in demo_books.items_of(book_id):
            assert demo_books.item(item["barcode"]) == {**item, "book_id": book_id, "loanable": True}


def test_germinal_and_the_last_five_demo_books_are_dvds(demo_books):
    types = {book_id: {item["type"] for item in demo_books.items_of(book_id)} for book_id in demo_books.books}
    assert {book_id for book_id, kinds in types.items() if kinds == {"dvd"}} == {5, 101, 102, 103, 104, 105}
    assert {book_id for book_id, kinds in types.items() if kinds != {"book"}} == {5, 101, 102, 103, 104, 105}


def test_a_demo_copy_is_found_by_its_barcode_before_its_book_is_read():
    """Demo copies are made when first asked for: a scan may come before any `getBooks`."""
    peer = BookPeer(demo_books=100)
    assert peer.item("3900010301") == {"barcode": "3900010301", "book_id": 103, "type": "dvd", "loanable": True}
    assert peer.item("3900000104") is None  # book 1 has three copies
    assert peer.item("3900010601") is None  # there is no book 106


def test_a_barcode_given_to_a_new_book_cannot_be_a_demo_copys(peers):
    """The classics' copies exist before anyone reads them: their barcodes are taken."""
    fresh = BookPeer()
    with pytest.raises(BarcodeTaken):
        fresh.add_book("Clash", "A", items=[{"barcode": "3900000302"}])
    assert fresh.item("3900000302")["book_id"] == 3


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


def test_a_numbered_patrons_card_finds_them_until_they_get_another():
    peer = UserPeer(demo_users=3).start()
    try:
        assert call("GET", f"{peer.url}/users?barcode=2100001002")[1]["email"] == "patron2@example.com"
        assert call("GET", f"{peer.url}/users?barcode=2100001004")[0] == 404  # there is no patron4
        taken = call("POST", f"{peer.url}/users", {"email": "someone@example.com", "barcode": "2100001003"})
        assert taken[0] == 409
        peer.add_user("patron2@example.com", barcode="2100009999")
        assert call("GET", f"{peer.url}/users?barcode=2100001002")[0] == 404
        assert call("GET", f"{peer.url}/users?barcode=2100009999")[1]["email"] == "patron2@example.com"
    finally:
        peer.stop()


@pytest.mark.parametrize(
    "card, number",
    [("2100001001", 1), ("2100999999", 998_999), ("21001000001", 999_001), ("21001001001", 1_000_001)],
)
def test_a_numbered_patrons_card_holds_their_number_past_a_million_too(card, number):
    assert _demo_patron_number(card) == number
    assert demo_patron(number)[2] == card


@pytest.mark.parametrize("card", ["2100001000", "2100000001", "21000010010", "2100abc001", "210000100１"])
def test_other_cards_hold_no_patron_number(card):
    assert _demo_patron_number(card) is None


def readme_demo_table() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("**Demo data**")
    return readme[start : readme.index("\n\n", readme.index("|", start))]


def test_the_readmes_demo_barcodes_are_the_peers(demo_books, demo_users):
    table = readme_demo_table()
    items = re.findall(r"`(39\d{8})`", table)
    assert len(items) >= 10
    for barcode in items:
        assert demo_books.item(barcode) is not None, barcode
    cards = re.findall(r"`([a-z0-9]+@example\.com)` \(`(21\d{8})`, (\w+)", table)
    assert len(cards) == 4
    for email, card, category in cards:
        user = demo_users.users[email]
        assert (user["barcode"], user["category"]) == (card, category)
    numbered = re.search(r"\(`(21\d{8})` … `(21\d{8})`", table)
    assert numbered and numbered.groups() == (demo_patron(1)[2], demo_patron(100)[2])


def test_the_demo_data_is_what_make_run_serves():
    """`make run` starts the peers with 100 demo books and 100 demo patrons: the tables above."""
    from tools.scripts.run_local import PROCESSES

    command = PROCESSES["peers"]
    assert command[command.index("--demo-books") + 1] == "100"
    assert command[command.index("--demo-users") + 1] == "100"


# --- the Book peer ---------------------------------------------------------------------------------


def test_post_books_with_a_quantity_answers_generated_items(peers):
    status, book = call("POST", f"{peers.book.url}/books", {"title": "Bought", "quantity": 2})
    assert status == 201 and book["quantity"] == 2
    assert book["items"] == [
        {"barcode": f"39{book['id']:06d}01", "book_id": book["id"], "type": "book", "loanable": True},
        {"barcode": f"39{book['id']:06d}02", "book_id": book["id"], "type": "book", "loanable": True},
    ]
    assert call("GET", f"{peers.book.url}/getBooks/{book['id']}") == (200, book)


def test_post_books_with_items_stores_each_copy(peers):
    dvd, reference = unique("D"), unique("R")
    items = [{"barcode": dvd, "type": "dvd"}, {"barcode": reference, "loanable": False}]
    status, book = call("POST", f"{peers.book.url}/books", {"title": "Mixed", "items": items})
    assert status == 201 and book["quantity"] == 2
    assert [(item["barcode"], item["type"], item["loanable"]) for item in book["items"]] == [
        (dvd, "dvd", True),
        (reference, "book", False),
    ]
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
    assert (book["quantity"], book["items"][-1]["type"], book["items"][-1]) == (2, "magazine", added)


def test_a_book_without_items_is_answered_so(peers):
    """A test plays a Book service from before barcodes by dropping a book's items."""
    book = peers.book.add_book("Old", "A", 2)
    book.pop("items")
    status, answer = call("GET", f"{peers.book.url}/getBooks/{book['id']}")
    assert status == 200 and "items" not in answer and answer["quantity"] == 2


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
