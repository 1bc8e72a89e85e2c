"""lending/db/locks.py and lending/db/holds.py, lending/db/blocks.py, lending/db/rules.py: each
statement against the ORM (or a hand-built expectation), on PostgreSQL and on SQLite; the patron
lock's waiting on PostgreSQL only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from lending import circulation_rules
from lending.blocks import PatronBlock
from lending.db import blocks, holds, locks, rules
from lending.models import BookStock, Hold, HoldStatus

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_upsert_book_stock_creates_then_refreshes_bumping_only_when_asked():
    locks.upsert_book_stock(7, "Dune", 2, bump_version=True, now=NOW)
    assert BookStock.objects.values_list("title", "copies", "version").get(book_id=7) == ("Dune", 2, 1)
    locks.upsert_book_stock(7, "Dune II", 3, bump_version=False, now=NOW + timedelta(hours=1))
    stock = BookStock.objects.get(book_id=7)
    assert (stock.title, stock.copies, stock.version) == ("Dune II", 3, 1)
    locks.upsert_book_stock(7, "Dune II", 3, bump_version=True, now=NOW)
    assert BookStock.objects.get(book_id=7).version == 2


@pytest.mark.django_db
def test_upsert_locking_patron_writes_as_the_upsert_and_answers_the_rules_version():
    with transaction.atomic():
        version = locks.upsert_book_stock_locking_patron(
            17, "Dune", 2, bump_version=True, now=NOW, user_email="p@x.org"
        )
    assert version == rules.read_version()
    assert BookStock.objects.values_list("title", "copies", "version").get(book_id=17) == ("Dune", 2, 1)
    with transaction.atomic():
        locks.upsert_book_stock_locking_patron(17, "Dune II", 3, bump_version=False, now=NOW, user_email="p@x.org")
    assert BookStock.objects.values_list("title", "copies", "version").get(book_id=17) == ("Dune II", 3, 1)


@pytest.mark.postgres
@pytest.mark.django_db
def test_upsert_locking_patron_holds_the_book_row_and_the_patron_lock_in_one_statement():
    with transaction.atomic():
        locks.upsert_book_stock_locking_patron(18, "Emma", 1, bump_version=True, now=NOW, user_email="p@x.org")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT locktype, classid, mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted"
                " AND (locktype = 'advisory' OR (locktype = 'transactionid'))"
            )
            held = cursor.fetchall()
    assert ("advisory", locks.PATRON_LOCK_SPACE, "ExclusiveLock") in held  # the patron lock
    assert any(locktype == "transactionid" for locktype, _, _ in held)  # the row written: the book lock


@pytest.mark.django_db
def test_bump_book_version_answers_the_copies_or_none():
    BookStock.objects.create(book_id=8, copies=4, version=9)
    assert locks.bump_book_version(8) == 4
    assert BookStock.objects.get(book_id=8).version == 10
    assert locks.bump_book_version(404) is None


@pytest.mark.django_db
def test_lock_book_reads_the_row_as_the_orm_does():
    BookStock.objects.create(book_id=9, title="Emma", copies=2, version=3)
    with transaction.atomic():
        stock = locks.lock_book(9)
    expected = BookStock.objects.get(book_id=9)
    assert (stock.book_id, stock.title, stock.copies, stock.version, stock.updated_at) == (
        9,
        "Emma",
        2,
        3,
        expected.updated_at,
    )
    assert locks.lock_book(404) is None


@pytest.mark.django_db
def test_open_holds_of_book_are_the_orms_in_queue_order():
    for email, status in [
        ("a@x.org", HoldStatus.READY),
        ("b@x.org", HoldStatus.CANCELLED),
        ("c@x.org", HoldStatus.WAITING),
        ("d@x.org", HoldStatus.FULFILLED),
    ]:
        ready = {"date_ready": NOW, "pickup_deadline": NOW} if status == HoldStatus.READY else {}
        closed = {"date_closed": NOW} if status in (HoldStatus.CANCELLED, HoldStatus.FULFILLED) else {}
        Hold.objects.create(user_email=email, book_id=3, status=status, date_reserved=NOW, **ready, **closed)
    Hold.objects.create(user_email="e@x.org", book_id=4, status=HoldStatus.WAITING, date_reserved=NOW)
    read = holds.open_holds_of_book(3)
    expected = list(Hold.objects.open().filter(book_id=3).order_by("id"))
    assert [(h.pk, h.status, h.date_reserved) for h in read] == [(h.pk, h.status, h.date_reserved) for h in expected]
    assert [h.user_email for h in read] == ["a@x.org", "c@x.org"]


def _orm_hold_for_copy(item_barcode: str, book_id: int) -> Hold | None:
    """What the check-in read with the ORM: the READY hold trapping the copy, else the book's first
    READY hold without a copy."""
    trapped = Hold.objects.filter(status=HoldStatus.READY, item_barcode=item_barcode).first()
    untrapped = Hold.objects.filter(book_id=book_id, status=HoldStatus.READY, item_barcode=None).order_by("id")
    return trapped or untrapped.first()


@pytest.mark.django_db
def test_hold_for_copy_is_the_trapping_hold_else_the_books_first_untrapped_ready_one():
    ready = {"status": HoldStatus.READY, "date_ready": NOW, "pickup_deadline": NOW}
    Hold.objects.create(user_email="w@x.org", book_id=5, status=HoldStatus.WAITING, date_reserved=NOW)
    first_untrapped = Hold.objects.create(user_email="a@x.org", book_id=5, date_reserved=NOW, **ready)
    Hold.objects.create(user_email="b@x.org", book_id=5, date_reserved=NOW, **ready)
    trapping = Hold.objects.create(user_email="c@x.org", book_id=6, date_reserved=NOW, item_barcode="B-1", **ready)
    Hold.objects.create(user_email="d@x.org", book_id=5, date_reserved=NOW, item_barcode="B-2", **ready)
    cases = [("B-1", 5), ("B-1", 6), ("B-9", 5), ("B-9", 6), ("B-2", 7), ("B-9", 404)]
    for item_barcode, book_id in cases:
        read = holds.hold_for_copy(item_barcode, book_id)
        expected = _orm_hold_for_copy(item_barcode, book_id)
        assert (read and read.pk) == (expected and expected.pk), (item_barcode, book_id)
    assert holds.hold_for_copy("B-1", 5).pk == trapping.pk  # the copy's own hold first, whatever the book
    assert holds.hold_for_copy("B-9", 5).pk == first_untrapped.pk
    assert holds.hold_for_copy("B-9", 6) is None
    for item_barcode in ("B-1", "B-2", "B-9"):
        read = holds.trapped_hold(item_barcode)
        expected = Hold.objects.filter(status=HoldStatus.READY, item_barcode=item_barcode).first()
        assert (read and read.pk) == (expected and expected.pk), item_barcode


@pytest.mark.django_db
def test_blocks_in_force_are_the_orms():
    for expires in (None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(microseconds=1), NOW + timedelta(days=3)):
        PatronBlock.objects.create(
            user_email="p@x.org", reason="r", blocks=["borrow"], created_at=NOW, expires_at=expires
        )
    PatronBlock.objects.create(user_email="q@x.org", reason="r", blocks=["renew"], created_at=NOW)
    read = blocks.blocks_in_force("p@x.org", NOW)
    expected = list(PatronBlock.objects.of("p@x.org").in_force(NOW).order_by("id"))
    assert [(b.pk, b.blocks, b.expires_at) for b in read] == [(b.pk, b.blocks, b.expires_at) for b in expected]
    assert len(read) == 3


@pytest.mark.django_db
def test_the_rules_version_is_replaced_and_read_back():
    before = rules.read_version()
    with transaction.atomic():
        rules.lock_version()
        rules.replace_version("a-new-token")
    assert rules.read_version() == "a-new-token" != before
    assert circulation_rules.RulebookVersion.objects.get(id=rules.ROW_ID).version == "a-new-token"


@pytest.mark.django_db
def test_read_matrix_answers_every_rule_with_its_policys_values():
    rows = rules.read_matrix()
    by_rule = {
        (category, kind): dict(zip(rules.POLICY_COLUMNS, values, strict=True)) for _, category, kind, *values in rows
    }
    for rule in circulation_rules.CirculationRule.objects.select_related("loan_policy"):
        policy = rule.loan_policy
        read = by_rule[(rule.patron_category, rule.item_type)]
        assert read["name"] == policy.name
        assert read["loan_days"] == policy.loan_days
        assert read["max_loans"] == policy.max_loans
    assert set(rules.POLICY_COLUMNS) == {
        field.name for field in circulation_rules.fields(circulation_rules.PolicyTerms)
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_patron_lock_holds_a_second_writer_until_the_first_commits():
    """Two connections: the second lock on one patron waits for the first transaction's end; another
    patron's does not."""
    order: list[str] = []
    first_holds = threading.Event()
    release = threading.Event()

    def first() -> None:
        with transaction.atomic():
            locks.lock_patron_reading_rules_version("same@x.org")
            first_holds.set()
            release.wait(5)
            order.append("first commits")
        connection.close()

    def second(patron: str) -> None:
        with transaction.atomic():
            locks.lock_patron_reading_rules_version(patron)
            order.append(f"second locks {patron}")
        connection.close()

    holder = threading.Thread(target=first)
    holder.start()
    assert first_holds.wait(5)
    other = threading.Thread(target=second, args=("other@x.org",))
    other.start()
    other.join(5)
    waiter = threading.Thread(target=second, args=("same@x.org",))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the second lock of the same patron waits"
    release.set()
    holder.join(5)
    waiter.join(5)
    assert order == ["second locks other@x.org", "first commits", "second locks same@x.org"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_lend_of_the_book_waits_for_the_book_lock_before_asking_for_its_patron():
    """The merged statement keeps the writers' order: a second lend of a locked book waits on the book's
    row, without holding its own patron's lock meanwhile (another write of that patron goes on)."""
    first_holds, release, done = threading.Event(), threading.Event(), []

    def first() -> None:
        with transaction.atomic():
            locks.upsert_book_stock_locking_patron(19, "T", 1, bump_version=True, now=NOW, user_email="a@x.org")
            first_holds.set()
            release.wait(5)
        connection.close()

    def second() -> None:
        with transaction.atomic():
            locks.upsert_book_stock_locking_patron(19, "T", 1, bump_version=True, now=NOW, user_email="b@x.org")
            done.append("second lend locked")
        connection.close()

    def patron_b_elsewhere() -> None:
        with transaction.atomic():
            locks.lock_patron_reading_rules_version("b@x.org")
            done.append("b's other write locked")
        connection.close()

    holder = threading.Thread(target=first)
    holder.start()
    assert first_holds.wait(5)
    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the second lend waits for the book"
    other = threading.Thread(target=patron_b_elsewhere)
    other.start()
    other.join(5)
    assert done == ["b's other write locked"], "the waiting lend does not hold its patron's lock"
    release.set()
    holder.join(5)
    waiter.join(5)
    assert done == ["b's other write locked", "second lend locked"]
    assert locks.lock_patron_reading_rules_version("x@x.org") == rules.read_version()
