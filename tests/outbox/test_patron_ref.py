"""The domain events name the patron by `patron_ref`, a keyed pseudonym, never by the email, and the copy
by `item_barcode`; anonymisation breaks the link between a loan's events and the patron's other loans.

Events are written to the outbox here (EVENTS_BROKER_URL set) and read as the relay publishes them
(`broker.body`); nothing is sent to a broker."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.utils import timezone

from lending import notices, privacy, services
from lending.events import domain_events, history
from lending.models import EventKind, Hold, Loan, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import broker
from lending.patron_ref import patron_ref
from lending.services.lost import Outcome
from tests.factories import LoanFactory
from tests.rules import set_policy

pytestmark = pytest.mark.django_db

REF = re.compile(r"^p_[a-z2-7]{26}$")


@pytest.fixture
def events_on(settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # written only, never published
    return settings


def published() -> list[dict]:
    """Every event written so far, as the relay would publish it."""
    return [json.loads(broker.body(m)) for m in OutboxMessage.objects.filter(kind=OutboxKind.EVENT).order_by("id")]


def spellings(email: str) -> set[str]:
    """The address in every form a careless serialiser or a naive pseudonym could carry it."""
    forms = {email, email.lower(), email.upper(), email.split("@")[0], quote(email), quote(email, safe="")}
    forms |= {json.dumps(email)[1:-1], json.dumps(email, ensure_ascii=False)[1:-1]}
    raw = email.lower().encode()
    forms |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()}
    forms |= {base64.b32encode(raw).decode().rstrip("=").lower()}
    forms |= {hashlib.sha256(raw).hexdigest(), hashlib.md5(raw).hexdigest()}  # noqa: S324 - looked for, not used
    return {form for form in forms if form}


def assert_never_named(events: list[dict], email: str) -> None:
    for event in events:
        text = json.dumps(event, ensure_ascii=False).lower()
        for form in spellings(email):
            assert form.lower() not in text, f"{event['type']} carries the patron as {form!r}"


def every_kind_of_change(peers, patron: str, other: str) -> None:
    """Each loan and hold event type but `anonymised` once at least, for `patron` (and `other`)."""
    set_policy(lost_item_fee=Decimal("10.00"))  # declaring a loan lost assesses a fee: fine_assessed
    first = peers.book.add_book("First", "Author", 1)["id"]
    second = peers.book.add_book("Second", "Author", 1)["id"]
    third = peers.book.add_book("Third", "Author", 1)["id"]

    loan = services.loan_lend(user_email=patron, book_id=first)  # lent
    services.loan_renew(user_email=patron, book_id=first)  # renewed
    loan = services.change_due_date(loan.pk, day=(loan.date_due + timedelta(days=7)).date(), reason="desk")
    late = loan.date_due + timedelta(hours=1)
    notices.mark_overdue_loans(now=late)  # overdue
    notices.send_overdue_notices(now=late)  # notice_queued
    services.declare_lost(loan.pk)  # declared_lost, fine_assessed
    services.resolve(loan.pk, outcome=Outcome.FOUND)  # resolved

    claimed = services.loan_lend(user_email=patron, book_id=second)
    services.claim_returned(claimed.pk)  # claimed_returned
    services.resolve(claimed.pk, outcome=Outcome.RETURNED)

    services.loan_lend(user_email=other, book_id=third)
    services.hold_reserve(user_email=patron, book_id=third)  # placed
    services.loan_return(user_email=other, book_id=third)  # ready
    services.loan_lend(user_email=patron, book_id=third)  # fulfilled
    services.loan_return(user_email=patron, book_id=third)  # returned

    services.loan_lend(user_email=other, book_id=first)
    services.hold_reserve(user_email=patron, book_id=first)
    services.hold_cancel(user_email=patron, book_id=first)  # cancelled
    services.hold_reserve(user_email=patron, book_id=first)
    services.loan_return(user_email=other, book_id=first)
    ready = Hold.objects.get(user_email=patron, book_id=first, status="READY")
    services.expire_ready_holds(now=ready.pickup_deadline + timedelta(minutes=1))  # expired


def notifications_delivered() -> None:
    """The relay's part: a pending notification keeps its loan from anonymisation and erasure."""
    OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION).update(status=OutboxStatus.DELIVERED)


def erase(patron: str) -> None:
    notifications_delivered()
    privacy.erase_patron(patron, caller=privacy.Caller("desk"))  # anonymised, its loans and holds


def subject_of(event: dict) -> Loan | Hold:
    return (Loan if ".loan." in event["type"] else Hold).objects.get(pk=event["subject"])


def test_no_event_of_any_type_names_the_patron(peers, events_on):
    patron = peers.user.add_user(f"Zoë.Reader-{uuid.uuid4().hex[:8]}@Example.com".lower())["email"]
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    every_kind_of_change(peers, patron, other)
    erase(patron)

    events = published()
    assert {event["type"] for event in events} == set(domain_events.all_types())
    assert_never_named(events, patron)
    for event in events:
        assert set(event) <= {*domain_events.cloud_event(_any_recorded(), {}), "traceparent"}, "no extension names them"
        assert "user_email" not in event["data"]


def _any_recorded() -> domain_events.Recorded:
    return domain_events.Recorded(1, 1, None, 1, EventKind.LENT, timezone.now())


def test_the_ref_is_the_patrons_on_every_event_until_an_erasure_nulls_it(peers, events_on):
    patron = peers.user.add_user(f"ref-{uuid.uuid4().hex[:8]}@example.com")["email"]
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    every_kind_of_change(peers, patron, other)
    refs = {(subject_of(event).user_email, event["data"]["patron_ref"]) for event in published()}
    assert refs == {(patron, patron_ref(patron)), (other, patron_ref(other))}

    erase(patron)
    after = published()
    anonymised = [event for event in after if event["type"].endswith(".anonymised.v1")]
    assert {event["type"] for event in anonymised} == {
        "org.library.lending.loan.anonymised.v1",
        "org.library.lending.hold.anonymised.v1",
    }
    # The patron's subjects, anonymised: every stored event of theirs, earlier ones too, lost the ref.
    erased = {(event["type"].split(".")[3], event["subject"]) for event in anonymised}
    for event in after:
        mine = (event["type"].split(".")[3], event["subject"]) in erased
        assert event["data"]["patron_ref"] == (None if mine else patron_ref(other)), event


def test_the_ref_is_stable_for_one_patron_and_differs_between_two(peers, patron, events_on):
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    first = peers.book.add_book("One", "Author", 1)["id"]
    second = peers.book.add_book("Two", "Author", 1)["id"]
    services.loan_lend(user_email=patron, book_id=first)
    services.loan_lend(user_email=patron, book_id=second)
    services.hold_reserve(user_email=other, book_id=first)
    services.loan_return(user_email=patron, book_id=first)
    services.loan_lend(user_email=other, book_id=first)

    refs: dict[str, set[str]] = {patron: set(), other: set()}
    for event in published():
        subject = (Loan if ".loan." in event["type"] else Hold).objects.get(pk=event["subject"])
        refs[subject.user_email].add(event["data"]["patron_ref"])
    [mine], [theirs] = refs[patron], refs[other]
    assert REF.match(mine) and REF.match(theirs)
    assert mine != theirs
    assert mine == patron_ref(patron) == patron_ref(patron.upper()) == patron_ref(f" {patron} ")


def test_the_ref_depends_on_the_key_and_is_no_plain_hash(settings):
    email = "reader@example.com"
    derived = patron_ref(email)
    settings.PATRON_REF_KEY = "another key"
    assert patron_ref(email) != derived
    assert patron_ref(email) == patron_ref(email), "stable for one key"
    settings.SECRET_KEY = "a rotated secret"
    assert patron_ref(email) == patron_ref(email) != derived, "an explicit key survives a new secret key"
    plain = base64.b32encode(hashlib.sha256(email.encode()).digest()[:16]).decode().rstrip("=").lower()
    assert derived != f"p_{plain}"


def test_the_retention_job_breaks_the_link_for_the_loans_it_anonymises(peers, patron, events_on):
    old_book = peers.book.add_book("Old", "Author", 1)["id"]
    current_book = peers.book.add_book("Current", "Author", 1)["id"]
    services.loan_lend(user_email=patron, book_id=old_book)
    returned = services.loan_return(user_email=patron, book_id=old_book)
    OutboxMessage.objects.filter(kind=OutboxKind.EVENT).update(status=OutboxStatus.DELIVERED)  # one published
    ref = patron_ref(patron)
    assert [event["data"]["patron_ref"] for event in published()] == [ref, ref]
    current = services.loan_lend(user_email=patron, book_id=current_book)
    notifications_delivered()

    privacy.anonymize_returned_loans(now=timezone.now() + timedelta(days=1), retention_days=0, sweep=False)

    by_subject: dict[str, list[dict]] = {}
    for event in published():
        by_subject.setdefault(event["subject"], []).append(event)
    anonymised = by_subject[str(returned.pk)]
    assert [event["type"].split(".")[4] for event in anonymised] == ["lent", "returned", "anonymised"]
    assert [event["sequence"] for event in anonymised] == [1, 2, 3]
    assert [event["data"]["patron_ref"] for event in anonymised] == [None, None, None]
    assert_never_named(anonymised, patron)
    assert [event["data"]["patron_ref"] for event in by_subject[str(current.pk)]] == [ref], "the open loan keeps it"


def test_a_sweep_nulls_the_ref_of_every_anonymised_loans_stored_events(peers, patron, events_on):
    """A run killed after anonymising, before nulling, leaves refs behind: the daily sweep finds them."""
    book = peers.book.add_book("Swept", "Author", 1)["id"]
    services.loan_lend(user_email=patron, book_id=book)
    loan = services.loan_return(user_email=patron, book_id=book)
    Loan.objects.filter(pk=loan.pk).update(user_email=privacy.new_token())
    assert all(event["data"]["patron_ref"] for event in published())

    assert privacy.forget_patron_refs_of(None, None) == 2
    assert [event["data"]["patron_ref"] for event in published()] == [None, None]
    assert privacy.forget_patron_refs_of(None, None) == 0


def test_an_anonymised_loan_has_no_ref_and_its_later_events_none():
    loan = LoanFactory(returned=True)
    before = domain_events.representation(loan)["patron_ref"]
    loan.user_email = privacy.new_token()
    assert REF.match(before)
    assert domain_events.representation(loan)["patron_ref"] is None


def test_a_barcoded_loans_events_name_the_copy_and_a_title_level_loans_null(events_on):
    barcoded = LoanFactory(item_barcode="3900000101")
    title_level = LoanFactory()
    now = timezone.now()
    history.record(
        history.loan_event(barcoded, EventKind.LENT, at=now, caller=history.SYSTEM),
        history.loan_event(title_level, EventKind.LENT, at=now, caller=history.SYSTEM),
    )
    item_barcodes = {event["subject"]: event["data"]["item_barcode"] for event in published()}
    assert item_barcodes == {str(barcoded.pk): "3900000101", str(title_level.pk): None}


def test_a_copy_checked_out_and_in_names_its_barcode_on_the_loans_and_the_trapped_holds_events(peers, events_on):
    from lending.services.checkin import check_in
    from lending.services.checkout import check_out

    reader, holder = (peers.user.add_user(f"{name}-{uuid.uuid4().hex[:8]}@example.com")["email"] for name in "ab")
    book = peers.book.add_book("Copies", "Author", 1)
    [barcode] = [item["barcode"] for item in book["items"]]
    loan = check_out(item_barcode=barcode, user_email=reader)
    hold = services.hold_reserve(user_email=holder, book_id=book["id"]).hold
    check_in(item_barcode=barcode)

    seen = [
        (event["type"].split(".", 3)[3], event["subject"], event["data"]["item_barcode"], event["data"]["patron_ref"])
        for event in published()
    ]
    assert seen == [
        ("loan.lent.v1", str(loan.pk), barcode, patron_ref(reader)),
        ("hold.placed.v1", str(hold.pk), None, patron_ref(holder)),
        ("loan.returned.v1", str(loan.pk), barcode, patron_ref(reader)),
        ("hold.ready.v1", str(hold.pk), barcode, patron_ref(holder)),
    ]
