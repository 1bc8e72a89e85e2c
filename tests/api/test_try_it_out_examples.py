"""Swagger UI's "Try it out" sends each operation's request example as it is: under `make run` it must
name a patron, a book, an item and a card the reference peers have, or the newcomer's first call is a 404."""

from pathlib import Path

import yaml

from tools.reference_peers.book import DEMO_BOOKS, BookPeer
from tools.reference_peers.user import DEMO_USERS

SCHEMA = Path(__file__).resolve().parents[2] / "openapi.yaml"


def request_examples() -> list[dict]:
    schema = yaml.safe_load(SCHEMA.read_text())
    found = []
    for operations in schema["paths"].values():
        for operation in operations.values():
            content = (operation.get("requestBody") or {}).get("content", {})
            for media in content.values():
                found += [example["value"] for example in media.get("examples", {}).values()]
    return found


def test_request_examples_use_the_demo_catalogue():
    examples = request_examples()
    assert examples, "no request example found"
    active_patrons = {email for email, active, _card, _category in DEMO_USERS if active}
    active_cards = {card for _email, active, card, _category in DEMO_USERS if active}
    classics = BookPeer()  # not started: no port is opened
    classics_items = {item["barcode"] for book_id in classics.books for item in classics.items_of(book_id)}
    for example in examples:
        if "book_id" in example:
            assert 1 <= example["book_id"] <= len(DEMO_BOOKS), example
        if "user_email" in example:
            assert example["user_email"] in active_patrons, example
        if "item_barcode" in example:
            assert example["item_barcode"] in classics_items, example
        if "patron_barcode" in example:
            assert example["patron_barcode"] in active_cards, example
