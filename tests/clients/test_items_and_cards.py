"""The copies' and cards' peer calls against the reference peers over real HTTP: `GET /items/{barcode}`
(books.get_item) and `GET /users?barcode=B` (users.active_patron_by_card), with users.active_patron.
Found, unknown, outside the contract (503), a peer down (503, the breaker as for every call), and
barcodes that are opaque strings: whatever they hold, they name one copy or one card."""

from __future__ import annotations

import json
import uuid

import pytest

from lending.clients import books, users
from lending.clients.http import peer_client
from lending.errors import Forbidden, NotFound, PeerUnavailable
from tests.clients.test_peer_failures import own_user_peer, raw_server, recording_headers  # noqa: F401 (a fixture)
from tools.harness.processes import wait_until
from tools.reference_peers import BookPeer

# Each of these must reach the peer as itself: a path or query delimiter, an escape, a dot segment,
# spaces, non-ASCII, a percent sign that looks like an escape.
ODD_BARCODES = [
    "a/b",
    "a?b=c",
    "a#b",
    "with space",
    "a+b",
    "a&barcode=x",
    "%2F",
    "100%",
    ".",
    "..",
    "../getBooks/1",
    "é-ü-☃",
    "tab\tand\nnewline",
    "x" * 64,
]
# No copy we could lend, and no card we could look up, has one of these: refused before any call.
UNUSABLE_BARCODES = ["", "x" * 65, "a\x00b", "lone \ud800 surrogate"]


def unique(prefix: str = "T") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def copy(peers):
    """A fresh one-copy book; its item as the Book peer stores it (a test may spoil its fields)."""
    book = peers.book.add_book("Copy test", "A", items=[{"barcode": unique()}])
    return peers.book.items[book["items"][0]["barcode"]]


# --- books.get_item --------------------------------------------------------------------------------


def test_an_item_is_read_with_its_book_type_and_loanability(peers, copy):
    assert books.get_item(copy["barcode"]) == books.ItemInfo(copy["barcode"], copy["book_id"], "book", True)


def test_a_dvd_kept_for_reference_is_read_as_such(peers):
    barcode = unique("DVD")
    book = peers.book.add_book("Film", "B", items=[{"barcode": barcode, "type": "dvd", "loanable": False}])
    assert books.get_item(barcode) == books.ItemInfo(barcode, book["id"], "dvd", False)
    peers.book.set_loanable(barcode, True)
    assert books.get_item(barcode).loanable is True


@pytest.mark.parametrize("absent", ["missing", None])
def test_type_defaults_to_book_and_loanable_to_true(peers, copy, absent):
    for field in ("type", "loanable"):
        if absent == "missing":
            copy.pop(field)
        else:
            copy[field] = None
    item = books.get_item(copy["barcode"])
    assert (item.type, item.loanable) == ("book", True)


def test_the_peers_spelling_of_the_barcode_is_kept(peers, copy):
    """A scanner may send another case than the catalogue's: the loans name the copy the peer's way."""
    asked = copy["barcode"]
    copy["barcode"] = asked.upper()
    assert books.get_item(asked).barcode == asked.upper()


def test_an_answer_about_another_copy_is_peer_unavailable(peers, copy):
    asked = copy["barcode"]
    copy["barcode"] = f"{asked}-other"
    with pytest.raises(PeerUnavailable):
        books.get_item(asked)


def test_an_unknown_barcode_is_item_not_found(peers):
    with pytest.raises(NotFound) as caught:
        books.get_item(unique("ghost"))
    assert (caught.value.status, caught.value.code) == (404, "item_not_found")


@pytest.mark.parametrize("barcode", ODD_BARCODES)
def test_an_odd_barcode_names_its_own_copy(peers, barcode):
    peers.book.items.pop(barcode, None)  # a previous parametrisation's copy
    book = peers.book.add_book("Odd", "A", items=[{"barcode": barcode}])
    with recording_headers(peers.book) as seen:
        assert books.get_item(barcode) == books.ItemInfo(barcode, book["id"], "book", True)
    assert len(seen) == 1


@pytest.mark.parametrize("barcode", ["../getBooks/1", "..", ".", "?", "a/../../users/alice@example.com"])
def test_an_unknown_odd_barcode_never_reaches_another_path(peers, barcode):
    peers.book.items.pop(barcode, None)
    with pytest.raises(NotFound) as caught:
        books.get_item(barcode)
    assert caught.value.code == "item_not_found"


@pytest.mark.parametrize("barcode", UNUSABLE_BARCODES, ids=repr)
def test_a_barcode_no_copy_can_have_is_not_found_without_a_call(peers, barcode):
    with recording_headers(peers.book) as seen, pytest.raises(NotFound) as caught:
        books.get_item(barcode)
    assert caught.value.code == "item_not_found"
    assert seen == []


@pytest.mark.parametrize(
    "spoiled",
    [
        {"book_id": None},
        {"book_id": "1"},
        {"book_id": True},
        {"book_id": 0},
        {"book_id": 2**31},
        {"book_id": 1.5},
        {"type": 5},
        {"type": ""},
        {"type": "x" * 65},
        {"loanable": "yes"},
        {"loanable": 1},
        {"barcode": 5},
        {"barcode": ""},
        {"barcode": "x" * 65},
        {"barcode": "a\x00b"},
    ],
    ids=repr,
)
def test_an_item_answer_outside_the_contract_is_peer_unavailable(peers, copy, spoiled):
    barcode = copy["barcode"]
    copy.update(spoiled)
    with pytest.raises(PeerUnavailable):
        books.get_item(barcode)


@pytest.mark.parametrize(
    "status, body",
    [
        (200, b"[1, 2]"),
        (200, b'"item"'),
        (200, b""),
        (200, b"{oops"),
        (200, b'{"barcode": "\\ud800", "book_id": 1}'),
        (400, b"{}"),
        (302, b""),
    ],
)
def test_an_items_endpoint_answering_garbage_is_peer_unavailable(peers, settings, status, body):
    with raw_server(status, body, "application/json") as url:
        settings.BOOK_MANAGEMENT_URL = url
        with pytest.raises(PeerUnavailable):
            books.get_item("3900000101")


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_book_peer_is_peer_unavailable(peers, copy, status):
    peers.book.faults.status = status
    with pytest.raises(PeerUnavailable) as caught:
        books.get_item(copy["barcode"])
    assert caught.value.status == 503 and int(caught.value.headers["Retry-After"]) >= 1


@pytest.fixture
def own_book_peer(peers, settings):
    """A Book peer of this test's own (stopped and restarted on its port), with a fresh breaker."""
    peer = BookPeer().start()
    settings.BOOK_MANAGEMENT_URL = peer.url
    peer_client(books.PEER, peer.url).breaker.close()
    yield peer
    peer.stop()


def outage_opens_the_breaker_then_heals(peer, client, scan, settings) -> None:
    """`scan` fails while `peer` is down until the breaker opens; an open breaker calls nothing;
    once `peer` is back on its port, scans work again and the breaker closes."""
    peer.stop()
    for _ in range(settings.PEER_BREAKER_FAIL_MAX):
        with pytest.raises(PeerUnavailable):
            scan()
    assert client.breaker.current_state == "open"
    calls: list = []
    real_request = client.transport.perform
    client.transport.perform = lambda *a, **k: calls.append(a) or real_request(*a, **k)
    try:
        with pytest.raises(PeerUnavailable) as refused:
            scan()
    finally:
        client.transport.perform = real_request
    assert calls == [], "an open breaker does not call the peer"
    assert int(refused.value.headers["Retry-After"]) >= 1

    peer.start()  # the same port again

    def scans() -> bool:
        try:
            scan()
        except PeerUnavailable:
            return False
        return True

    assert wait_until(scans, 30), "scans never resumed after the peer came back"
    assert client.breaker.current_state == "closed"


def test_a_book_peer_down_opens_the_breaker_and_scans_resume_when_it_is_back(own_book_peer, settings):
    barcode = own_book_peer.add_book("Scanned", "A", 1)["items"][0]["barcode"]
    client = peer_client(books.PEER, own_book_peer.url)
    outage_opens_the_breaker_then_heals(own_book_peer, client, lambda: books.get_item(barcode), settings)
    assert books.get_item(barcode).barcode == barcode


def test_a_book_peer_without_items_knows_no_barcode(peers, settings):
    """A Book service from before barcodes (no `/items`: 404) makes every scan an unknown item."""
    with raw_server(404, b'{"error": "not found"}', "application/json") as url:
        settings.BOOK_MANAGEMENT_URL = url
        with pytest.raises(NotFound) as caught:
            books.get_item("3900000101")
    assert caught.value.code == "item_not_found"


# --- users.active_patron ---------------------------------------------------------------------------


def test_active_patron_reads_the_category(peers):
    assert users.active_patron("bob@example.com") == users.Patron("bob@example.com", "student")
    email = f"{unique('p')}@example.com"
    peers.user.add_user(email, category="staff")
    assert users.active_patron(email) == users.Patron(email, "staff")


@pytest.mark.parametrize("absent", ["missing", None])
def test_a_patron_without_a_category_has_none(peers, patron, absent):
    user = peers.user.users[patron]
    if absent == "missing":
        user.pop("category")
    else:
        user["category"] = None
    assert users.active_patron(patron).category is None


@pytest.mark.parametrize("category", [7, "", "x" * 65, ["adult"]], ids=repr)
def test_a_category_outside_the_contract_is_503_where_it_is_read_only(peers, patron, category):
    peers.user.users[patron]["category"] = category
    with pytest.raises(PeerUnavailable):
        users.active_patron(patron)
    users.ensure_active_user(patron)  # title-level lending never reads it: as before


def test_active_patron_refuses_unknown_and_inactive_patrons(peers):
    with pytest.raises(NotFound) as unknown:
        users.active_patron("ghost@example.com")
    with pytest.raises(Forbidden) as inactive:
        users.active_patron("inactive@example.com")
    assert (unknown.value.code, inactive.value.code) == ("user_not_found", "user_inactive")


# --- users.active_patron_by_card -------------------------------------------------------------------


def test_a_card_names_its_holder_and_category(peers):
    assert users.active_patron_by_card("2100000003") == users.Patron("carol@example.com", "staff", "carol")
    email = f"{unique('card')}@example.com"
    barcode = peers.user.add_user(email, category="student")["barcode"]
    assert users.active_patron_by_card(barcode) == users.Patron(email, "student", email.split("@")[0])


def test_a_card_holders_email_is_the_one_loans_store(peers):
    email = f"{unique('Mixed')}@Example.COM"
    barcode = peers.user.add_user(email)["barcode"]
    assert users.active_patron_by_card(barcode).email == email.lower()


def a_user_service_answering(body: dict):
    return raw_server(200, json.dumps(body).encode(), "application/json")


@pytest.mark.parametrize("card", [{}, {"barcode": None}, {"barcode": "2100000abc"}, {"barcode": "2100000ABC"}])
def test_a_card_holders_body_may_spell_the_card_otherwise_or_leave_it_out(peers, settings, card):
    with a_user_service_answering({"email": "holder@example.com", **card}) as url:
        settings.USER_MANAGEMENT_URL = url
        assert users.active_patron_by_card("2100000abc") == users.Patron("holder@example.com", None)


@pytest.mark.parametrize("card", ["2100000001", 2100000002, ["2100000002"]], ids=repr)
def test_a_body_naming_another_card_is_peer_unavailable_never_a_loan_to_its_holder(peers, settings, card):
    """A User service that ignores `?barcode=` and answers some user must not lend to that user."""
    with a_user_service_answering({"email": "someone-else@example.com", "barcode": card}) as url:
        settings.USER_MANAGEMENT_URL = url
        with pytest.raises(PeerUnavailable):
            users.active_patron_by_card("2100000002")


def test_an_unknown_card_is_user_not_found_naming_the_card(peers):
    with pytest.raises(NotFound) as caught:
        users.active_patron_by_card("2199999999")
    assert (caught.value.status, caught.value.code) == (404, "user_not_found")
    assert "2199999999" in caught.value.message


def test_an_inactive_card_holder_is_user_inactive(peers):
    with pytest.raises(Forbidden) as caught:
        users.active_patron_by_card("2100000004")
    assert (caught.value.status, caught.value.code) == (403, "user_inactive")


@pytest.mark.parametrize("barcode", ODD_BARCODES)
def test_an_odd_card_names_its_own_holder(peers, barcode):
    """`a&barcode=x` must not become a second parameter, `a+b` not a space, `#` not a fragment."""
    email = f"{unique('odd')}@example.com"
    peers.user.add_user(email, barcode=barcode)
    assert users.active_patron_by_card(barcode).email == email


@pytest.mark.parametrize("barcode", UNUSABLE_BARCODES, ids=repr)
def test_a_card_no_patron_can_hold_is_not_found_without_a_call(peers, barcode):
    with recording_headers(peers.user) as seen, pytest.raises(NotFound) as caught:
        users.active_patron_by_card(barcode)
    assert caught.value.code == "user_not_found"
    assert seen == []


@pytest.mark.parametrize(
    "spoiled",
    [
        {"email": None},
        {"email": 5},
        {"email": "not-an-email"},
        {"email": f"{'x' * 250}@example.com"},
        {"active": "yes"},
        {"category": 3},
    ],
    ids=repr,
)
def test_a_card_answer_outside_the_contract_is_peer_unavailable(peers, spoiled):
    user = peers.user.add_user(f"{unique('spoilt')}@example.com")
    barcode = user["barcode"]
    user.update(spoiled)
    with pytest.raises(PeerUnavailable):
        users.active_patron_by_card(barcode)


def test_a_card_is_not_logged_with_an_answer_outside_the_contract(peers, caplog):
    user = peers.user.add_user(f"{unique('logged')}@example.com", barcode=unique("secret-card-"))
    user["active"] = "yes"
    with pytest.raises(PeerUnavailable):
        users.active_patron_by_card(user["barcode"])
    assert "outside its contract" in caplog.text
    assert user["barcode"] not in caplog.text


@pytest.mark.parametrize("status, body", [(200, b"[1]"), (200, b""), (405, b"{}"), (400, b"{}")])
def test_a_card_lookup_answering_garbage_is_peer_unavailable(peers, settings, status, body):
    """A User service from before cards answers `GET /users` with 405 (or 400): a 503, never a 404."""
    with raw_server(status, body, "application/json") as url:
        settings.USER_MANAGEMENT_URL = url
        with pytest.raises(PeerUnavailable):
            users.active_patron_by_card("2100000001")


def test_a_user_peer_down_opens_the_breaker_and_card_scans_resume_when_it_is_back(own_user_peer, settings):  # noqa: F811
    card = own_user_peer.users["reader@example.com"]["barcode"]
    client = peer_client(users.PEER, own_user_peer.url)
    outage_opens_the_breaker_then_heals(own_user_peer, client, lambda: users.active_patron_by_card(card), settings)
    assert users.active_patron_by_card(card).email == "reader@example.com"


def test_a_failing_user_peer_is_peer_unavailable_for_a_card(peers):
    peers.user.faults.status = 500
    with pytest.raises(PeerUnavailable) as caught:
        users.active_patron_by_card("2100000001")
    assert caught.value.status == 503
