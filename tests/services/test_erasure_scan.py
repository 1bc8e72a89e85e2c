"""An erasure forgets the patron everywhere (issue 28): one of everything is placed for one patron
through the API and the admin, the patron is erased through the API, then every text column of every
table — found by introspecting the database, so a future table is scanned too — is searched for the
email in every form a database may keep it. On PostgreSQL (`make test`'s database) and on SQLite
(`make test`'s second pass, SQLITE_TESTS in the Makefile: after a WAL checkpoint, down to the file's
raw bytes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from lending import notices
from lending.api.permissions import create_key
from lending.blocks import PatronBlock
from lending.observability.logs import mask_email_text
from lending.outbox import relay

# As a patron types them: an ASCII address, and an internationalised one (the service's email
# validation takes a non-ASCII domain; a non-ASCII local part is refused at every door, `400`).
TYPED_EMAILS = ["Erin.Scan@Example.org", "John.Doe@Exämple-Scän.com"]
TEXT_FIELD_TYPES = frozenset(
    {"CharField", "TextField", "JSONField", "EmailField", "SlugField", "GenericIPAddressField"}
)


class Recorder:
    """The API client of the test, keeping every JSON body sent (for the hashes a table must not hold)."""

    def __init__(self) -> None:
        self.api = APIClient()
        self.sent: list[tuple[str, str, object]] = []

    def post(self, path: str, body: object, expected: int, **headers: str):
        self.sent.append(("POST", path, body))
        response = self.api.post(path, body, format="json", headers=headers or None)
        assert response.status_code == expected, (path, response.status_code, response.content)
        return response.json() if response.content else None


def place_one_of_everything(peers, typed: str, recorder: Recorder, settings) -> dict:
    """A loan, a lost item, a hold, a staff override, a due-date change, a digest, idempotent answers
    (a loan and a refusal), a block placed by the API and edited in the admin, a key bound to the
    patron, and their history; everything settled, so that the erasure is allowed."""
    email = typed.lower()
    peers.user.add_user(email)
    lent, lost, held, overridden = (
        peers.book.add_book(f"Scan {n}", "A", copies) for n, copies in enumerate((1, 1, 0, 1))
    )
    patron = {"user_email": typed}

    loan = recorder.post("/lendBook/", {**patron, "book_id": lent["id"]}, 201, **{"Idempotency-Key": "scan-lend"})
    # The patron's own app, its key named after them, renews: its name is the history's caller.
    app_key = create_key(f"opac {email}", ["patron-self"], patron_email=typed)[1]
    settings.REQUIRE_API_KEY = True
    recorder.post("/renewBook/", {**patron, "book_id": lent["id"]}, 200, Authorization=f"Api-Key {app_key}")
    settings.REQUIRE_API_KEY = False
    recorder.post(
        f"/loans/{loan['id']}/change-due-date/",
        {"date_due": (timezone.localdate() + timedelta(days=1)).isoformat(), "reason": f"asked by {typed}"},
        200,
    )
    notices.send_due_soon_reminders()
    notices.send_notice_digests()
    recorder.post("/returnBook/", {**patron, "book_id": lent["id"]}, 200, **{"Idempotency-Key": "scan-return"})
    recorder.post("/returnBook/", {**patron, "book_id": lent["id"]}, 404, **{"Idempotency-Key": "scan-refused"})

    missing = recorder.post("/lendBook/", {**patron, "book_id": lost["id"]}, 201)
    recorder.post(f"/loans/{missing['id']}/declare-lost/", {"note": f"{typed} says it fell in the river"}, 200)
    recorder.post(f"/loans/{missing['id']}/resolve/", {"outcome": "found", "note": f"found at {typed}'s"}, 200)

    recorder.post("/reserveBook/", {**patron, "book_id": held["id"]}, 201)
    recorder.post("/cancelReservation/", {**patron, "book_id": held["id"]}, 200)

    override = {"override": {"reason": f"{typed} is the mayor"}}
    recorder.post("/lendBook/", {**patron, "book_id": overridden["id"], **override}, 201)
    recorder.post("/returnBook/", {**patron, "book_id": overridden["id"]}, 200)

    block = recorder.post(f"/patrons/{typed}/blocks/", {"reason": f"{typed} shouted", "blocks": ["borrow"]}, 201)
    edit_block_in_the_admin(block["id"], typed)
    create_key(f"app of {email}", ["patron-read"])
    while relay.run_once():
        pass
    return {"email": email, "refused": {**patron, "book_id": lent["id"]}}


def edit_block_in_the_admin(block_id: int, typed: str) -> None:
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("scan-clerk", "clerk@library.invalid", "pw"))
    block = PatronBlock.objects.get(pk=block_id)
    answer = staff.post(
        reverse("admin:lending_patronblock_change", args=[block_id]),
        {"user_email": block.user_email, "reason": f"{typed} shouted again", "blocks": ["borrow"], "expires_at_0": ""},
    )
    assert answer.status_code == 302, answer.content[:2000]


# --- The forms an email takes in a database -------------------------------------------------------


def spellings(typed: str) -> set[str]:
    """As typed, lower-cased, JSON-escaped both ways, with its domain in punycode, masked as the logs
    mask it."""
    found = set()
    for email in (typed, typed.lower()):
        local, _, domain = email.rpartition("@")
        found |= {
            email,
            json.dumps(email, ensure_ascii=True)[1:-1],
            json.dumps(email, ensure_ascii=False)[1:-1],
            f"{local}@{domain.encode('idna').decode()}",
            mask_email_text(email),
        }
    return found


def serialisations(body: object) -> Iterable[str]:
    for ensure_ascii in (True, False):
        for sort_keys in (True, False):
            for separators in ((",", ":"), (", ", ": ")):
                yield json.dumps(body, ensure_ascii=ensure_ascii, sort_keys=sort_keys, separators=separators)


def unsalted_hashes(typed: str, sent: list[tuple[str, str, object]]) -> set[str]:
    """SHA-256, SHA-1 and MD5 of the email and of every body that held it, also as an idempotency
    fingerprint would have written it (method, path, body)."""
    texts = {typed, typed.lower()}
    for method, path, body in sent:
        for wrapped in (body, [method, path.rstrip("/"), body], [method, path, body]):
            texts.update(serialisations(wrapped))
    return {
        getattr(hashlib, algorithm)(text.encode()).hexdigest()
        for text in texts
        for algorithm in ("sha256", "sha1", "md5")
    }


def text_columns() -> list[tuple[str, str]]:
    """Every (table, column) whose type holds text, as the database describes itself."""
    introspection = connection.introspection
    columns = []
    with connection.cursor() as cursor:
        for table in introspection.table_names(cursor):
            for column in introspection.get_table_description(cursor, table):
                if introspection.get_field_type(column.type_code, column) in TEXT_FIELD_TYPES:
                    columns.append((table, column.name))
    return columns


def holding(needles: set[str]) -> dict[str, set[str]]:
    """`table.column` -> the needles found there, case-insensitively."""
    wanted = {needle.lower() for needle in needles}
    found: dict[str, set[str]] = {}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table, column in text_columns():
            cursor.execute(f"SELECT CAST({quote(column)} AS TEXT) FROM {quote(table)}")  # noqa: S608 - introspected names
            for (value,) in cursor.fetchall():
                text = (value or "").lower()
                hits = {needle for needle in wanted if needle in text}
                if hits:
                    found.setdefault(f"{table}.{column}", set()).update(hits)
    return found


def sqlite_file_bytes() -> bytes:
    """The SQLite database as it lies on disk, after a checkpoint (with what is left of its WAL)."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    name = Path(connection.settings_dict["NAME"])
    return b"".join(path.read_bytes() for path in (name, Path(f"{name}-wal")) if path.exists())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("typed", TYPED_EMAILS, ids=["ascii", "internationalised"])
def test_after_an_erasure_no_column_of_any_table_holds_the_patron(peers, typed, settings):
    settings.NOTICE_DIGEST = True
    settings.DUE_SOON_REMINDER_DAYS = 3
    recorder = Recorder()
    placed = place_one_of_everything(peers, typed, recorder, settings)
    names = spellings(typed)
    # The check can fail: before the erasure, the patron is in every kind of table.
    before = set(holding(names))
    assert {"lending_loan.user_email", "lending_patronblock.reason", "django_admin_log.object_repr"} <= before
    assert {"lending_idempotencyrecord.response_body", "lending_event.reason", "lending_event.caller"} <= before
    assert {"lending_apikeyscopes.patron_email", "rest_framework_api_key_apikey.name"} <= before
    if connection.vendor == "sqlite":  # as after a while: the patron's rows are in the file itself
        assert any(name.lower().encode() in sqlite_file_bytes().lower() for name in names)

    erased = recorder.api.post(f"/patrons/{typed}/anonymize/")

    assert erased.status_code == 200, erased.content
    forms = names | unsalted_hashes(typed, recorder.sent)
    assert holding(forms) == {}
    if connection.vendor == "sqlite":
        on_disk = sqlite_file_bytes().lower()
        left = {form for form in forms if form.lower().encode() in on_disk}
        assert left == set(), f"the SQLite file still holds {left}"
    # A retried key runs again rather than replaying the patron's answer.
    retried = recorder.api.post(
        "/returnBook/", placed["refused"], format="json", headers={"Idempotency-Key": "scan-refused"}
    )
    assert (retried.status_code, retried.headers.get("Idempotent-Replayed")) == (404, None)


@pytest.mark.django_db(transaction=True)
def test_a_non_ascii_local_part_is_refused_at_every_door_and_kept_nowhere(peers):
    """`jöhn.dœ@…` cannot become a patron: each door answers 400, and no table keeps what was typed."""
    typed = "Jöhn.Dœ@Exämple-Scän.com"
    api = APIClient()
    body = {"user_email": typed, "book_id": peers.book.add_book("Door", "A", 1)["id"]}

    answers = [
        api.post("/lendBook/", body, format="json", headers={"Idempotency-Key": "door-lend"}),
        api.post("/reserveBook/", body, format="json", headers={"Idempotency-Key": "door-reserve"}),
        api.post(f"/patrons/{typed}/blocks/", {"reason": typed, "blocks": ["borrow"]}, format="json"),
        api.post(f"/patrons/{typed}/anonymize/"),
    ]

    assert [answer.status_code for answer in answers] == [400] * 4
    assert holding(spellings(typed)) == {}
