"""Loans, the per-book row that serialises lending decisions, the outbox and idempotency records.

Invariants live in the database: a partial unique constraint forbids a patron two open loans of one
book (another one, a copy two open loans: `item_barcode`), and every lend or return locks the book's
`BookStock` row first, so "is a copy free?" and the insert happen under one lock on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

from django.db import models, transaction
from django.db.models import Case, Count, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from lending.request_context import current_traceparent


class LoanStatus(models.TextChoices):
    ACTIVE = "ACTIVE"
    OVERDUE = "OVERDUE"
    RETURNED = "RETURNED"
    LOST = "LOST"  # declared lost (by staff, or aged to lost by the scheduler) and not found yet
    CLAIMED_RETURNED = "CLAIMED_RETURNED"  # the patron says it came back; the copy has not been found


# Circulating: the due date runs (ACTIVE turns OVERDUE as it passes).
CIRCULATING_STATUSES = (LoanStatus.ACTIVE, LoanStatus.OVERDUE)
# Unresolved: the copy is missing; the loan stays open (it keeps its copy) until `lending.lost_items`
# resolves it or the copy is returned.
UNRESOLVED_STATUSES = (LoanStatus.LOST, LoanStatus.CLAIMED_RETURNED)
OPEN_STATUSES = (*CIRCULATING_STATUSES, *UNRESOLVED_STATUSES)

# --- What the lending words mean: each defined once, here, and used everywhere ----------------------
# An open loan: not returned yet. It keeps its copy, whatever its status (a lost copy is not on the
# shelf either), and the patron may hold one open loan of a book.
OPEN_LOAN = Q(date_returned__isnull=True)
# A circulating loan: open and neither lost nor claimed returned, so its due date counts.
CIRCULATING_LOAN = OPEN_LOAN & Q(status__in=CIRCULATING_STATUSES)
# A lost item not resolved yet: it blocks its patron (lending.blocks).
UNRESOLVED_LOST_LOAN = OPEN_LOAN & Q(status=LoanStatus.LOST)


def overdue_loan(now: datetime) -> Q:
    """A circulating loan whose due date has passed at `now` (the API's, the admin's and the
    metrics' overdue; `getExpiredBooks`). Lost and claimed-returned loans are not overdue."""
    return CIRCULATING_LOAN & Q(date_due__lt=now)


def active_loan(now: datetime) -> Q:
    """A circulating loan not overdue at `now`."""
    return CIRCULATING_LOAN & Q(date_due__gte=now)


class LoanQuerySet(models.QuerySet):
    def open(self) -> LoanQuerySet:
        return self.filter(OPEN_LOAN)

    def closed(self) -> LoanQuerySet:
        return self.filter(date_returned__isnull=False)

    def circulating(self) -> LoanQuerySet:
        return self.filter(CIRCULATING_LOAN)

    def overdue(self, now: datetime) -> LoanQuerySet:
        return self.filter(overdue_loan(now))

    def due_within(self, start: datetime, end: datetime) -> LoanQuerySet:
        """Circulating loans due after `start`, up to `end` (reminders, auto-renewal)."""
        return self.circulating().filter(date_due__gt=start, date_due__lte=end)

    def active(self, now: datetime) -> LoanQuerySet:
        return self.filter(active_loan(now))

    def with_shown_status(self, status: str | None, now: datetime) -> LoanQuerySet:
        """The loans a client sees with `status` at `now` (ACTIVE turns OVERDUE as the due date
        passes, persisted or not; `Loan.current_status`); all of them for None."""
        if status == LoanStatus.RETURNED:
            return self.closed()
        if status == LoanStatus.ACTIVE:
            return self.active(now)
        if status == LoanStatus.OVERDUE:
            return self.overdue(now)
        if status in UNRESOLVED_STATUSES:
            return self.open().filter(status=status)
        return self.all()

    def open_of(self, user_email: str, book_id: int) -> LoanQuerySet:
        """The patron's open loan of the book (at most one: a constraint)."""
        return self.open().filter(user_email=user_email, book_id=book_id)

    def in_due_order_batches(self, size: int) -> Iterator[list[Loan]]:
        """The loans in (date_due, id) order, `size` at a time, each batch read after the previous one
        (keyset paging: no offset to rescan, and rows changed between batches are neither skipped nor
        read twice). The scheduler's jobs walk their candidates this way."""
        after: tuple[datetime, int] | None = None
        while True:
            page = self.order_by("date_due", "id")
            if after:
                page = page.filter(Q(date_due__gt=after[0]) | Q(date_due=after[0], id__gt=after[1]))
            batch = list(page[:size])
            if not batch:
                return
            after = (batch[-1].date_due, batch[-1].pk)  # before the caller may change the rows
            yield batch

    def locked_batches(self, size: int) -> Iterator[list[Loan]]:
        """The loans in (date_due, id) order, `size` at a time, each batch locked in its own
        transaction, in which the caller changes it (consume to the end: leaving early rolls the
        current batch back). Rows another transaction holds right now (a lend, return or renewal) are
        skipped; the next run gets them. For a job whose change takes the rows out of this queryset, so
        that each batch starts from what is left."""
        while True:
            with transaction.atomic():
                batch = list(self.select_for_update(skip_locked=True).order_by("date_due", "id")[:size])
                if not batch:
                    return
                yield batch


# An anonymised loan or hold's `user_email` ends with this (a random token before it: lending.privacy).
ANONYMISED_SUFFIX = "@anonymised.invalid"
NOT_ANONYMISED = ~Q(user_email__endswith=ANONYMISED_SUFFIX)


class BookStock(models.Model):
    """Our view of one book: copies as last reported by the Book service, and a version bumped on
    every lend or return. Locking this row is the per-book lock."""

    book_id = models.PositiveIntegerField(primary_key=True)
    title = models.CharField(max_length=500, blank=True, default="")
    copies = models.PositiveIntegerField(default=1)
    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"book {self.book_id} ({self.copies} copies)"


# A copy's barcode, as the Book service gives it (`GET /items/{barcode}`).
ITEM_BARCODE_MAX_LENGTH = 64


class Loan(models.Model):
    user_email = models.EmailField(max_length=254)
    book_id = models.PositiveIntegerField()
    book_title = models.CharField(max_length=500, blank=True, default="")
    date_borrowed = models.DateTimeField()
    date_due = models.DateTimeField()
    date_returned = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=LoanStatus.choices, default=LoanStatus.ACTIVE)
    renewals = models.PositiveIntegerField(default=0)
    # The copy lent, by its barcode (`POST /checkouts/`); null for a title-level loan (`/lendBook/`).
    # Either way the loan takes one of the book's copies in the count kept under the book lock.
    item_barcode = models.CharField(max_length=ITEM_BARCODE_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001 (NULL: no copy)
    # The copy's item type (a title-level loan: the title's, when all its copies share one), which the
    # circulation rules matched; null when unknown.
    item_type = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL: unknown)
    # The loan policy the loan was made under (`lending.circulation_rules`), and its values then: the
    # loan's renewals and fines follow this snapshot, whatever the policy becomes. Loans made before
    # the rules existed have neither: they follow the fallback policy in force.
    # db_default: the previous release inserts without the columns during a rolling deploy.
    loan_policy = models.CharField(max_length=64, blank=True, default="", db_default="")
    policy_terms = models.JSONField(null=True, blank=True)
    # The overdue fine assessed on the loan so far (`lending.fines`; each assessment is a FineAssessment
    # row): null while it owes none. Kept here so that the loan's body shows it without a query.
    fine_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    fine_days_charged = models.PositiveIntegerField(null=True, blank=True)

    objects = LoanQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_email", "book_id"],
                condition=OPEN_LOAN,
                name="one_open_loan_per_user_and_book",
            ),
            # A copy is out to one patron at a time (lost or claimed returned included: it is not back).
            models.UniqueConstraint(
                fields=["item_barcode"],
                condition=OPEN_LOAN & Q(item_barcode__isnull=False),
                name="one_open_loan_per_item_barcode",
            ),
            models.CheckConstraint(
                condition=OPEN_LOAN & Q(status__in=OPEN_STATUSES)
                | Q(date_returned__isnull=False, status=LoanStatus.RETURNED),
                name="returned_iff_date_returned",
            ),
        ]
        indexes = [
            # Open loans of a book: counted under the book lock on every lend.
            models.Index(fields=["book_id"], condition=OPEN_LOAN, name="open_loans_by_book"),
            # Overdue listing: open loans ordered by due date.
            models.Index(fields=["date_due", "id"], condition=OPEN_LOAN, name="open_loans_by_due"),
            # A patron's loans, newest first.
            models.Index(fields=["user_email", "-date_borrowed", "-id"], name="loans_by_user"),
            # A book's loans, newest first (`GET /loans/?book_id=`).
            models.Index(fields=["book_id", "-date_borrowed", "-id"], name="loans_by_book"),
            # Every loan, newest first (`GET /loans/` without a patron or book).
            models.Index(fields=["-date_borrowed", "-id"], name="loans_newest"),
            # Returned loans still naming their patron, oldest first: what `anonymize_loans` walks.
            models.Index(
                fields=["date_returned", "id"],
                condition=Q(date_returned__isnull=False) & NOT_ANONYMISED,
                name="loans_to_anonymise",
            ),
        ]
        permissions = [
            # The admin's desk pages (lending.admin.desk): check out and in, and nothing else of
            # `change_loan` (declaring lost, resolving), so the desk group can be given the desk alone.
            ("circulate_at_desk", "Can check items out and in at the desk"),
        ]

    def __str__(self) -> str:
        return f"loan {self.pk}: book {self.book_id} to {self.user_email} ({self.status})"

    @property
    def fine(self) -> dict | None:
        """The overdue fine assessed so far, as the loan's body shows it (FINES_CURRENCY), or None."""
        if self.fine_amount is None:
            return None
        from django.conf import settings

        return {
            "amount": str(self.fine_amount),
            "currency": settings.FINES_CURRENCY,
            "days_charged": self.fine_days_charged,
        }

    def is_overdue(self, now: datetime) -> bool:
        """`overdue_loan(now)` for this one loan, in Python."""
        return self.date_returned is None and self.status in CIRCULATING_STATUSES and self.date_due < now

    @property
    def current_status(self) -> str:
        """OVERDUE as soon as the due date passes, before the scheduled job persists it."""
        if self.is_overdue(timezone.now()):
            return LoanStatus.OVERDUE
        return self.status


class HoldStatus(models.TextChoices):
    WAITING = "WAITING"  # in the queue for the book
    READY = "READY"  # a returned copy is kept for this patron until the pickup deadline
    FULFILLED = "FULFILLED"  # the patron borrowed the book
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"  # not picked up in time


OPEN_HOLD_STATUSES = (HoldStatus.WAITING, HoldStatus.READY)
CLOSED_HOLD_STATUSES = (HoldStatus.FULFILLED, HoldStatus.CANCELLED, HoldStatus.EXPIRED)
# An open hold: in the queue (WAITING) or keeping a copy (READY); closed: any other status.
OPEN_HOLD = Q(status__in=OPEN_HOLD_STATUSES)
CLOSED_HOLD = Q(status__in=CLOSED_HOLD_STATUSES)
# Who waits for a book: its WAITING holds, in queue (id) order.
WAITING_HOLD = Q(status=HoldStatus.WAITING)


def pickup_expired(now: datetime) -> Q:
    """A READY hold whose pickup deadline has passed at `now`."""
    return Q(status=HoldStatus.READY, pickup_deadline__lt=now)


class HoldQuerySet(models.QuerySet):
    def open(self) -> HoldQuerySet:
        return self.filter(OPEN_HOLD)

    def closed(self) -> HoldQuerySet:
        return self.filter(CLOSED_HOLD)

    def waiting(self) -> HoldQuerySet:
        return self.filter(WAITING_HOLD)

    def waiting_for(self, book_id: int) -> HoldQuerySet:
        """Who waits for this book."""
        return self.waiting().filter(book_id=book_id)

    def pickup_expired(self, now: datetime) -> HoldQuerySet:
        return self.filter(pickup_expired(now))

    def with_queue_position(self) -> HoldQuerySet:
        """Each hold annotated with `queue_position` (`queue_position()`)."""
        return self.annotate(queue_position=queue_position())


def queue_position() -> Case:
    """A hold's place in its book's queue: 1 for the next WAITING patron to get a copy, None for a
    hold that is not WAITING. `BookState.position_of` is the same count over holds already read."""
    ahead = (
        Hold.objects.filter(WAITING_HOLD, book_id=OuterRef("book_id"), pk__lt=OuterRef("pk"))
        .order_by()
        .values("book_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    position = Coalesce(Subquery(ahead, output_field=IntegerField()), Value(0)) + 1
    return Case(When(WAITING_HOLD, then=position), default=None, output_field=IntegerField())


class Hold(models.Model):
    """A patron's place in a book's holds queue. Created, promoted and closed only under the book's
    lock (its `BookStock` row), so queue order is id order and a copy is never promised twice."""

    user_email = models.EmailField(max_length=254)
    book_id = models.PositiveIntegerField()
    book_title = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=9, choices=HoldStatus.choices, default=HoldStatus.WAITING)
    date_reserved = models.DateTimeField()
    date_ready = models.DateTimeField(null=True, blank=True)
    pickup_deadline = models.DateTimeField(null=True, blank=True)
    date_closed = models.DateTimeField(null=True, blank=True)
    loan = models.ForeignKey(Loan, null=True, blank=True, on_delete=models.SET_NULL, related_name="holds")
    # The copy a check-in trapped for this READY hold (`POST /checkins/`): only this patron may check it
    # out until the hold is fulfilled or expires. Null for a hold kept a copy by the count alone.
    item_barcode = models.CharField(max_length=ITEM_BARCODE_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001 (NULL: no copy)

    objects = HoldQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_email", "book_id"],
                condition=OPEN_HOLD,
                name="one_open_hold_per_user_and_book",
            ),
            models.CheckConstraint(
                condition=~Q(status=HoldStatus.READY) | Q(pickup_deadline__isnull=False, date_ready__isnull=False),
                name="ready_hold_has_pickup_deadline",
            ),
            # A trapped copy waits on the hold shelf for one patron.
            models.UniqueConstraint(
                fields=["item_barcode"],
                condition=Q(status=HoldStatus.READY, item_barcode__isnull=False),
                name="one_ready_hold_per_item_barcode",
            ),
        ]
        indexes = [
            # A book's queue, in order: read under the book lock on every lend, return and renewal.
            models.Index(fields=["book_id", "id"], condition=OPEN_HOLD, name="open_holds_by_book"),
            # A patron's holds (`GET /reservations/?user_email=`).
            models.Index(fields=["user_email", "id"], name="holds_by_user"),
            # The expiry job: READY holds past their pickup deadline.
            models.Index(
                fields=["pickup_deadline"], condition=Q(status=HoldStatus.READY), name="ready_holds_by_deadline"
            ),
            # Closed holds still naming their patron, oldest first: what `anonymize_loans` walks.
            models.Index(
                fields=["date_closed", "id"],
                condition=Q(date_closed__isnull=False) & NOT_ANONYMISED,
                name="holds_to_anonymise",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk}: book {self.book_id} for {self.user_email} ({self.status})"


class OutboxKind(models.TextChoices):
    AVAILABILITY = "availability"
    NOTIFICATION = "notification"
    EVENT = "event"  # a domain event for the broker (lending/events/domain_events.py)
    FEE = "fee"  # an assessed fine or fee for the Fees service (lending/fines.py)


class OutboxStatus(models.TextChoices):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"


class OutboxMessage(models.Model):
    """A side effect committed with the business change and delivered later by the relay."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=OutboxKind.choices)
    book_id = models.PositiveIntegerField()
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Times a relay claimed it. More claims than recorded attempts means a relay died (or overran its
    # lease) in the middle of a delivery, whose request the peer may still apply late.
    # db_default: the release before 0005 inserts without this column (a rolling deploy runs it
    # against the new schema); the database fills it in.
    claims = models.PositiveIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The W3C traceparent of the request (or job) that wrote it, so its delivery joins that trace;
    # "" when tracing is off. db_default: a previous release's INSERT does not know the column.
    traceparent = models.CharField(max_length=64, blank=True, default=current_traceparent, db_default="")

    class Meta:
        indexes = [
            # The relay's claim query: due pending messages, oldest first.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="PENDING"),
                name="outbox_pending_due",
            ),
            models.Index(fields=["status", "created_at"], name="outbox_by_status"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class IdempotencyRecord(models.Model):
    """The first answer to a request carrying an `Idempotency-Key`, replayed to its retries."""

    # The client's key (up to 255 characters), prefixed with its API key's prefix when keys are on.
    key = models.CharField(max_length=300, unique=True)
    fingerprint = models.CharField(max_length=64)
    # Set while the first request runs; a retry that finds it fresh gets 409.
    locked_at = models.DateTimeField(null=True, blank=True)
    owner = models.UUIDField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"idempotency key {self.key}"


class LoanNotice(models.Model):
    """A scheduled notice sent for a loan. The unique constraint makes "at most once per loan, type
    and period" a database fact, even when two scheduler runs overlap or one dies half way."""

    loan = models.ForeignKey(Loan, on_delete=models.CASCADE, related_name="notices")
    notice_type = models.CharField(max_length=32)
    # Which occurrence, so that each due date and each overdue period gets its own notice (numbering
    # in `lending.notices`).
    period = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # NOTICE_DIGEST: recorded by its batch, not yet queued in its patron's digest (`lending.notices`).
    # db_default: the previous release inserts without the column during a rolling deploy.
    awaiting_digest = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["loan", "notice_type", "period"], name="one_notice_per_loan_type_period"),
        ]
        indexes = [
            # The digest step reads the notices still waiting only: a run's worth, however many were sent.
            models.Index(fields=["loan"], condition=Q(awaiting_digest=True), name="notices_awaiting_digest"),
        ]

    def __str__(self) -> str:
        return f"{self.notice_type} #{self.period} for loan {self.loan_id}"


class Scope(models.TextChoices):
    """What a service API key may do (`lending.api.permissions` maps each endpoint to one)."""

    CIRCULATION = "circulation", "circulation: lend, return, renew, reserve, cancel (and their dry runs)"
    PATRON_READ = "patron-read", "patron-read: one patron's loans and holds, and a loan's history"
    REPORTS = "reports", "reports: unfiltered listings and the overdue list"
    PRIVACY = "privacy", "privacy: erase a patron's closed loans and holds"
    OVERRIDE = "override", "override: lift a named refusal, with a reason"
    PATRON_SELF = "patron-self", "patron-self: the key's own patron's loans and holds (renew, reserve, cancel)"


class ApiKeyScopes(models.Model):
    """The scopes granted to one API key (djangorestframework-api-key's `APIKey`, kept as it is).
    A key without this row has no scope: only calls that need none (the policy) pass."""

    api_key = models.OneToOneField(
        "rest_framework_api_key.APIKey", on_delete=models.CASCADE, primary_key=True, related_name="grant"
    )
    # Space-separated, as OAuth writes scopes: e.g. "circulation patron-read".
    scopes = models.CharField(max_length=200, blank=True, default="")
    # The one patron a `patron-self` key acts for (a patron's app: an OPAC, a mobile app), lower-case.
    # db_default: the previous release inserts without the column during a rolling deploy.
    patron_email = models.EmailField(max_length=254, blank=True, default="", db_default="")

    class Meta:
        verbose_name = "API key scopes"
        verbose_name_plural = "API key scopes"

    def __str__(self) -> str:
        return f"{self.api_key_id}: {self.scopes or '(none)'}"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class EventKind(models.TextChoices):
    """What happened to a loan or a hold."""

    LENT = "lent"
    RENEWED = "renewed"
    RETURNED = "returned"
    MARKED_OVERDUE = "marked_overdue"
    NOTICE_QUEUED = "notice_queued"
    RESERVED = "reserved"
    CANCELLED = "cancelled"
    HOLD_READY = "hold_ready"
    HOLD_FULFILLED = "hold_fulfilled"
    HOLD_EXPIRED = "hold_expired"
    ANONYMISED = "anonymised"
    DUE_DATE_CHANGED = "due_date_changed"  # by staff, with a reason (lending.services.change_due_date)
    DECLARED_LOST = "declared_lost"  # by staff, or aged to lost by the scheduler (lending.lost_items)
    CLAIMED_RETURNED = "claimed_returned"
    RESOLVED = "resolved"  # a lost or claimed-returned loan: found, returned or lost
    FINE_ASSESSED = "fine_assessed"  # an overdue fine, a lost item's fees or their refund (lending.fines)


class Event(models.Model):
    """One change of one loan or hold (its subject): what, when, which caller, which request. Written
    by `lending.events.history` in the transaction of the change; it is the loan's history and, later, the
    domain event the outbox publishes, so each subject numbers its events (`sequence`, from 1).

    It never holds the patron's email: the patron is the subject's, so anonymising the loan or hold
    forgets them here too. The caller is a service (its key's name and prefix, never the key),
    `anonymous` when keys are off, or a system job (`system:scheduler`)."""

    # Indexed by the unique constraints below (a second index per column would only slow writes).
    loan = models.ForeignKey(
        Loan, null=True, blank=True, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    hold = models.ForeignKey(
        Hold, null=True, blank=True, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    occurred_at = models.DateTimeField()
    caller = models.CharField(max_length=64)
    caller_key_prefix = models.CharField(max_length=16, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    # Given by staff for an override; empty otherwise.
    reason = models.TextField(blank=True, default="")
    # What changed, for the reader and the domain event (due dates, the loan a hold became, ...).
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(loan__isnull=False, hold__isnull=True) | Q(loan__isnull=True, hold__isnull=False),
                name="event_has_one_subject",
            ),
            # Also the index that reads a subject's history and its next sequence number.
            models.UniqueConstraint(
                fields=["loan", "sequence"], condition=Q(loan__isnull=False), name="one_sequence_per_loan_event"
            ),
            models.UniqueConstraint(
                fields=["hold", "sequence"], condition=Q(hold__isnull=False), name="one_sequence_per_hold_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} #{self.sequence}: {self.kind} by {self.caller}"

    @property
    def subject(self) -> str:
        return f"loan/{self.loan_id}" if self.loan_id else f"hold/{self.hold_id}"


# --- Patron blocks (the rules that read them: lending.blocks) ---------------------------------------
def in_force(now: datetime) -> Q:
    """A block that has not expired at `now`."""
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


class PatronBlockQuerySet(models.QuerySet):
    def in_force(self, now: datetime) -> PatronBlockQuerySet:
        return self.filter(in_force(now))

    def of(self, user_email: str) -> PatronBlockQuerySet:
        return self.filter(user_email=user_email)


class PatronBlock(models.Model):
    """A block staff placed on a patron: the actions it forbids until it expires or is removed."""

    user_email = models.EmailField(max_length=254)
    reason = models.TextField()
    blocks = models.JSONField(help_text='The actions blocked: any of "borrow", "renew", "reserve".')
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    # The caller who placed it (an API key's name, `anonymous` when keys are off, or a staff user).
    created_by = models.CharField(max_length=150, blank=True, default="")

    objects = PatronBlockQuerySet.as_manager()

    class Meta:
        app_label = "lending"
        indexes = [models.Index(fields=["user_email", "id"], name="blocks_by_user")]

    def __str__(self) -> str:
        return f"block {self.pk} on {self.user_email}: {', '.join(self.blocks)}"
