"""Personal data has a lifetime: anonymise returned loans and closed holds, purge delivered outbox rows,
erase one patron on request.

Anonymised means not linkable back: the patron's email is replaced by a random token per row
(`anon-<128 random bits>@anonymised.invalid`), never a hash of the email, which could be reversed by
trying emails; the domain events stored for the row lose their `patron_ref` (the patron's keyed
pseudonym), and its `anonymised` event, published, has none. The book, the dates and the status
stay, so statistics still work. With the patron go the copies that name them: staff's free text on
the history (an override's reason, a lost item's note), their blocks (email and reason), the admin's
log entries, stored idempotent answers, settled notifications, and an API key named after them
(revoked). On SQLite the erasure then checkpoints the WAL, so that the database file itself forgets
(`PRAGMA secure_delete` zeroes the freed space).

What is never anonymised: an open or overdue loan, an open hold (WAITING, READY), and a loan or hold
named by a notification still waiting in the outbox (unresolved: the patron must still get it); a
digest names every loan it lists (`NAMED_SUBJECTS_SQL`).

Locks: the retention job works in short transactions of PRIVACY_BATCH_SIZE rows, walking the
`loans_to_anonymise` / `holds_to_anonymise` partial indexes in (date, id) order (keyset), and locks
only the returned loans and closed holds it rewrites, with SKIP LOCKED. Lends, returns and the holds
queue never lock those rows and never wait on it; it never touches the `BookStock` rows they lock.
Erasure on request takes the patron's advisory lock, the one a lend takes, so a lend and an erasure of
the same patron run one after the other: the erasure either sees the new loan (409) or finishes first.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import OperationalError, connection, transaction
from django.db.models import CharField, Max, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from lending import locks
from lending.blocks import PatronBlock
from lending.db import privacy as db_privacy
from lending.errors import PATRON_HAS_OPEN_LOANS
from lending.events import domain_events
from lending.models import (
    # `.invalid` is reserved, never a deliverable address (RFC 2606); NOT_ANONYMISED is the partial
    # indexes' condition, word for word, so the planner uses them.
    ANONYMISED_SUFFIX,
    NOT_ANONYMISED,
    ApiKeyScopes,
    Event,
    EventKind,
    Hold,
    IdempotencyRecord,
    Loan,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
)
from lending.patron_ref import PREFIX as PATRON_REF_PREFIX
from lending.request_context import request_id_var

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who the history names for an anonymisation: an API key (name and prefix), or a system job."""

    name: str
    key_prefix: str = ""


SCHEDULED = Caller("system:anonymize_loans")


def new_token() -> str:
    """A fresh random stand-in for a patron's email: 128 bits from the OS's CSPRNG, nothing derived
    from the email. Still a syntactically valid address, so every serializer keeps working."""
    return f"anon-{secrets.token_hex(16)}{ANONYMISED_SUFFIX}"


def is_anonymised(email: str) -> bool:
    return email.endswith(ANONYMISED_SUFFIX)


@dataclass
class Erased:
    loans: int = 0
    holds: int = 0
    notifications: int = 0
    idempotency_records: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# --- The retention job ------------------------------------------------------------------------------


def anonymize_returned_loans(
    *,
    now: datetime | None = None,
    retention_days: int | None = None,
    batch_size: int | None = None,
    sweep: bool = True,
) -> Erased:
    """Anonymises loans returned, and holds closed, more than `retention_days`
    (LOAN_HISTORY_RETENTION_DAYS) ago, then forgets the notifications and records that named them:
    those of the rows anonymised now, or with `sweep` those of every anonymised row (one pass over the
    outbox and the loans: what a run killed half way left behind)."""
    now = now or timezone.now()
    days = settings.LOAN_HISTORY_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = now - timedelta(days=days)
    batch_size = batch_size or settings.PRIVACY_BATCH_SIZE
    done = Erased()
    # Read once per run, before the first batch: a pending notification keeps its loan or hold.
    loan_ids = _in_batches(
        Loan.objects.closed().filter(date_returned__lt=cutoff).filter(NOT_ANONYMISED),
        "date_returned",
        _with_pending_notifications("loan_id"),
        batch_size,
    )
    hold_ids = _in_batches(
        Hold.objects.closed().filter(date_closed__lt=cutoff).filter(NOT_ANONYMISED),
        "date_closed",
        _with_pending_notifications("hold_id"),
        batch_size,
    )
    done.loans, done.holds = len(loan_ids), len(hold_ids)
    # A block expired as long ago as a loan returned then: it goes the same way, and so do the admin's
    # log entries of blocks deleted before then.
    with transaction.atomic():
        _forget_blocks(PatronBlock.objects.filter(expires_at__lt=cutoff).filter(NOT_ANONYMISED))
        _forget_admin_log_of_deleted_blocks(cutoff)
    by_id = (
        None if sweep or len(loan_ids) > FORGET_BY_ID_LIMIT else loan_ids,
        None if sweep or len(hold_ids) > FORGET_BY_ID_LIMIT else hold_ids,
    )
    done.notifications = forget_notifications_of(*by_id)
    forget_patron_refs_of(*by_id)
    # Idempotency records live IDEMPOTENCY_KEY_TTL_HOURS; only a retention shorter than that can leave
    # one naming a patron whose loans are anonymised (the purge deletes the rest).
    if timedelta(days=days) < timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
        done.idempotency_records = forget_idempotency_records_of_anonymised()
    if done.loans or done.holds or done.notifications:
        checkpoint_sqlite()
    return done


def anonymize_expired_loans() -> int:
    """The scheduler's job (`send_notices --loop`, every minute): how many loans and holds were
    anonymised. Without the sweep, which the daily `anonymize_loans` command does."""
    done = anonymize_returned_loans(sweep=False)
    return done.loans + done.holds


def _in_batches(candidates: QuerySet, date_field: str, unresolved: set[int], batch_size: int) -> list[int]:
    """Walks the candidates in (date, id) order, one short transaction per batch. A row skipped (locked
    by someone else, or with a notification still pending) is left for the next run; the keyset moves
    past it, so a run always ends. Returns the ids anonymised."""
    model = candidates.model
    changed: list[int] = []
    last: tuple[datetime, int] | None = None
    while True:
        with transaction.atomic():
            _without_waiting_for_the_disk()
            page = candidates
            if last is not None:
                page = page.filter(Q(**{f"{date_field}__gt": last[0]}) | Q(**{date_field: last[0], "id__gt": last[1]}))
            rows = list(
                page.select_for_update(skip_locked=True)
                .order_by(date_field, "id")
                .values_list(date_field, "id")[:batch_size]
            )
            if not rows:
                return changed
            last = rows[-1]
            ids = [row_id for _, row_id in rows]
            ids = [row_id for row_id in ids if row_id not in unresolved]
            _replace_emails(model, ids)
            _record_anonymised(model, ids, SCHEDULED)
            _forget_staff_reasons(*((ids, []) if model is Loan else ([], ids)))
            changed += ids


def _with_pending_notifications(key: str) -> set[int]:
    """The loans (or holds) that still have a notification to deliver: every one a pending
    notification names (a digest names each loan it lists). Reads the pending rows only (the relay's
    partial index), never the whole outbox; a backlog is thousands of rows at worst. A return dated
    before the cutoff but committed after this read can slip through: its confirmation is still
    delivered (the outbox row keeps its payload), and the next run forgets the delivered row."""
    return db_privacy.subjects_of_pending_notifications(key)


def _without_waiting_for_the_disk() -> None:
    """The batch's commit does not wait for its WAL flush: a crash may lose the last batches, which
    the next run simply anonymises again. Lends keep their own durable commits."""
    if connection.vendor == "postgresql":
        db_privacy.commit_without_waiting_for_the_disk()


def _replace_emails(model, ids: list[int]) -> int:
    """One statement: each row gets its own random token."""
    if not ids:
        return 0
    tokens = [new_token() for _ in ids]
    if connection.vendor == "postgresql":
        return db_privacy.replace_emails("loan" if model is Loan else "hold", ids, tokens)
    rows = [model(pk=row_id, user_email=token) for row_id, token in zip(ids, tokens, strict=True)]
    return model.objects.bulk_update(rows, ["user_email"])


def _record_anonymised(model, ids: list[int], caller: Caller) -> None:
    """An `anonymised` event on each row's history, numbered after its last one. The events never
    held the patron (only the subject's id and the caller), so nothing else changes there. Published
    as domain events too (with EVENTS_BROKER_URL), so a consumer learns to forget the subject's
    `patron_ref`; theirs is null (`lending.patron_ref`)."""
    if not ids:
        return
    subject: db_privacy.Subject = "loan" if model is Loan else "hold"
    values = {
        "kind": EventKind.ANONYMISED.value,
        "occurred_at": timezone.now(),
        "caller": caller.name[:64],
        "caller_key_prefix": caller.key_prefix,
        "request_id": request_id_var.get(),
    }
    if connection.vendor == "postgresql":
        recorded = _insert_events_in_one_statement(subject, ids, values)
    else:
        recorded = _insert_events_in_bulk(subject, ids, values)
    if domain_events.enabled():
        domain_events.enqueue_for(recorded)


def _insert_events_in_bulk(subject: str, ids: list[int], values: dict) -> list[domain_events.Recorded]:
    """SQLite's: each subject's last number read first, then one bulk INSERT."""
    last = dict(
        Event.objects.filter(**{f"{subject}_id__in": ids})
        .values_list(f"{subject}_id")
        .annotate(last=Max("sequence"))
        .values_list(f"{subject}_id", "last")
    )
    events = Event.objects.bulk_create(
        Event(**{f"{subject}_id": row_id}, sequence=last.get(row_id, 0) + 1, **values) for row_id in ids
    )
    return [
        domain_events.Recorded(event.pk, event.loan_id, event.hold_id, event.sequence, event.kind, event.occurred_at)
        for event in events
    ]


def _insert_events_in_one_statement(
    subject: db_privacy.Subject, ids: list[int], values: dict
) -> list[domain_events.Recorded]:
    """A batch's events in one INSERT ... SELECT. Returns the rows inserted when domain events are on."""
    inserted = db_privacy.insert_anonymised_events(subject, ids, **values, returning=domain_events.enabled())
    return [domain_events.Recorded(*row) for row in inserted]


# --- The loans (or holds) a notification names -----------------------------------------------------

# The (message_id, subject_id) rows a notification names, written once per database
# (`lending.db.privacy`): the one definition the retention job uses both to keep the loans of pending
# notifications and to forget the settled notifications of anonymised loans.
NAMED_SUBJECTS_SQL = db_privacy.NAMED_SUBJECTS_SQL
SUBJECT_KEYS = db_privacy.SUBJECT_KEYS


# --- What else named the patron ---------------------------------------------------------------------


# Above this many rows anonymised in one run, one pass over every anonymised row costs less.
FORGET_BY_ID_LIMIT = 10_000


def _anonymised(model: type[Loan] | type[Hold], ids: list[int] | None) -> QuerySet:
    """These anonymised loans or holds; None: every anonymised one."""
    if ids is None:
        return model.objects.filter(user_email__endswith=ANONYMISED_SUFFIX)
    return model.objects.filter(pk__in=ids)


def forget_notifications_of(loan_ids: list[int] | None, hold_ids: list[int] | None) -> int:
    """Deletes the delivered and dead notifications, and the admin log entries, of these anonymised
    loans and holds (None: of every anonymised one): the only other places their patron's email was.
    A notification goes once any loan or hold it names is anonymised (a digest that lists it ties the
    patron to that book too). Pending ones kept their loans from being anonymised. One statement per
    kind of subject, over the outbox (which the purge keeps to OUTBOX_RETENTION_DAYS)."""
    deleted = 0
    for key, model, ids in (("loan_id", Loan, loan_ids), ("hold_id", Hold, hold_ids)):
        if ids == []:
            continue
        deleted += db_privacy.delete_settled_notifications_naming(key, ids)
        _forget_admin_log(model, ids)
    return deleted


def forget_patron_refs_of(loan_ids: list[int] | None, hold_ids: list[int] | None) -> int:
    """Nulls `patron_ref` in the stored domain events (outbox messages of kind `event`, whatever their
    status) of these anonymised loans and holds (None: of every anonymised one), so that the database
    no longer ties them to the patron's other loans, and an event still waiting for the broker goes
    out without the ref. Those already published stay with their consumers, who forget the ref on the
    subject's `anonymised` event (asyncapi.yaml). Only messages still carrying a ref are read."""
    changed = 0
    for entity, model, ids in (("loan", Loan, loan_ids), ("hold", Hold, hold_ids)):
        if ids == []:
            continue
        anonymised = _anonymised(model, ids)
        stale = (
            OutboxMessage.objects.filter(
                kind=OutboxKind.EVENT,
                payload__type__startswith=f"{domain_events.TYPE_PREFIX}.{entity}.",
                payload__data__patron_ref__startswith=PATRON_REF_PREFIX,
            )
            .annotate(subject_id=KeyTextTransform("subject", "payload"))
            .filter(subject_id__in=anonymised.annotate(text_id=Cast("id", CharField())).values("text_id"))
            .only("pk", "payload")
        )
        # A message nulled no longer matches, so each round reads the next ones.
        while messages := list(stale.order_by("pk")[:500]):
            for message in messages:
                message.payload["data"]["patron_ref"] = None
            changed += OutboxMessage.objects.bulk_update(messages, ["payload"])
    return changed


def _forget_admin_log(model, ids: list[int] | None = None) -> int:
    """The admin's change log names a loan or hold by its `str()`, which carries the email: the
    entries of anonymised rows (of `ids`, or of all of them) go."""
    content_type = ContentType.objects.get_for_model(model)
    if ids is None:
        object_ids = (
            model.objects.filter(user_email__endswith=ANONYMISED_SUFFIX)
            .annotate(text_id=Cast("id", CharField()))
            .values("text_id")
        )
    else:
        object_ids = [str(row_id) for row_id in ids]
    return LogEntry.objects.filter(content_type=content_type, object_id__in=object_ids).delete()[0]


def forget_idempotency_records_of_anonymised() -> int:
    """Idempotency records (a stored answer, a fingerprint of the request) naming a patron of whom no
    loan or hold still carries the email. Only records not yet expired are read (IDEMPOTENCY_KEY_TTL_HOURS
    of writes). A stored refusal naming someone who never borrowed goes too: its retry simply runs again."""
    deleted = 0
    for record in IdempotencyRecord.objects.filter(expires_at__gt=timezone.now()).only("pk", "response_body"):
        emails = _emails_in(record.response_body)
        if emails and not _all_still_named(emails):
            deleted += IdempotencyRecord.objects.filter(pk=record.pk).delete()[0]
    return deleted


# Loose on purpose: anything address-like in a stored answer (a field, or inside a refusal's message).
_ADDRESS = re.compile(r"[^\s\"'<>(),;:@]+@[^\s\"'<>(),;:@]+[^\s\"'<>(),;:@.]")


def _emails_in(body) -> set[str]:
    text = json.dumps(body, ensure_ascii=False)
    return {email.lower() for email in _ADDRESS.findall(text) if not is_anonymised(email)}


def _all_still_named(emails: set[str]) -> bool:
    named = set(Loan.objects.filter(user_email__in=emails).values_list("user_email", flat=True))
    named |= set(Hold.objects.filter(user_email__in=emails).values_list("user_email", flat=True))
    return emails <= named


def json_spellings(email: str) -> set[str]:
    """The email as JSON text may hold it: PostgreSQL's jsonb keeps non-ASCII characters as they are,
    SQLite keeps the text Django wrote (`json.dumps`, which escapes them: `\\u00e4`)."""
    return {json.dumps(email, ensure_ascii=ascii_only)[1:-1] for ascii_only in (True, False)}


def _naming(email: str, *fields: str) -> Q:
    """Any of `fields` mentions the email, as typed or as JSON text holds it."""
    query = Q()
    for spelling in json_spellings(email):
        for field in fields:
            query |= Q(**{f"{field}__icontains": spelling})
    return query


def _idempotency_records_naming(email: str) -> QuerySet:
    """Records whose stored answer mentions the email anywhere (a loan, or a refusal's message), or
    whose key does (a client's choice)."""
    return IdempotencyRecord.objects.filter(_naming(email, "response_body", "key"))


def _forget_staff_reasons(loan_ids: list[int], hold_ids: list[int]) -> int:
    """Staff's free text on the history of these loans and holds (an override's reason, a due-date
    change's, a lost item's note) may name the patron: it goes, the event stays."""
    events = Event.objects.filter(Q(loan_id__in=loan_ids) | Q(hold_id__in=hold_ids)).exclude(reason="")
    return events.update(reason="")


def _forget_blocks(blocks: QuerySet[PatronBlock]) -> int:
    """Blocks keep when and by whom, for the statistics; the patron (a fresh token each) and staff's
    reason go, with the admin's log entries about them."""
    ids = list(blocks.values_list("id", flat=True))
    rows = [PatronBlock(pk=block_id, user_email=new_token(), reason="") for block_id in ids]
    PatronBlock.objects.bulk_update(rows, ["user_email", "reason"])
    _forget_admin_log(PatronBlock, ids)
    return len(ids)


def _forget_admin_log_of_deleted_blocks(cutoff: datetime) -> int:
    """A block deleted in the admin leaves its log entries, whose `object_repr` names the patron."""
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(PatronBlock), action_time__lt=cutoff
    )
    kept = PatronBlock.objects.annotate(text_id=Cast("id", CharField())).values("text_id")
    return entries.exclude(object_id__in=kept).delete()[0]


def _forget_admin_log_naming(email: str) -> int:
    """Any other admin log entry whose text names the patron (an edit of a key named after them, a
    deleted block): the log's `object_repr` is the object's `str()`, its message is JSON."""
    return LogEntry.objects.filter(_naming(email, "object_repr", "change_message")).delete()[0]


def _revoke_keys_naming(email: str) -> int:
    """A key bound to the patron (`patron-self`: their app's), or named after them, is theirs: revoked,
    unbound, and renamed if its name said who."""
    from rest_framework_api_key.models import APIKey

    bound = ApiKeyScopes.objects.filter(patron_email=email)
    revoked = APIKey.objects.filter(grant__in=bound).update(revoked=True)
    bound.update(patron_email="")
    return revoked + APIKey.objects.filter(_naming(email, "name")).update(name=ERASED_KEY_NAME, revoked=True)


ERASED_KEY_NAME = "key of an erased patron"


def _forget_callers_naming(email: str) -> int:
    """The history and the blocks name their caller by its key's name: a key named after the patron
    (their app's) put the patron there too."""
    events = Event.objects.filter(_naming(email, "caller")).update(caller=ERASED_KEY_NAME)
    return events + PatronBlock.objects.filter(_naming(email, "created_by")).update(created_by=ERASED_KEY_NAME)


def checkpoint_sqlite() -> None:
    """On SQLite (`make run`'s database) a committed change reaches the database file only at a WAL
    checkpoint; until then the file keeps the old rows. The checkpoint writes the erasure into the file
    (whose freed space `PRAGMA secure_delete` zeroes) and empties the WAL. Best effort: a reader that
    still holds an older snapshot delays it to the next checkpoint."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return  # inside a caller's transaction SQLite cannot checkpoint: the next checkpoint will
    try:
        busy = db_privacy.checkpoint_wal()
    except OperationalError:
        busy = True
    if busy:
        logger.warning("sqlite checkpoint after an erasure was busy; the next checkpoint completes it")


# --- Purges -----------------------------------------------------------------------------------------


def purge_delivered_outbox(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Deletes outbox rows delivered more than OUTBOX_RETENTION_DAYS ago (their notifications carry
    emails), a batch per short transaction. Dead letters stay for the desk to replay."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    batch_size = batch_size or settings.PRIVACY_BATCH_SIZE
    # created_at first: the (status, created_at) index finds them; a row is delivered after it is created.
    delivered = OutboxMessage.objects.filter(
        status=OutboxStatus.DELIVERED, created_at__lt=cutoff, delivered_at__lt=cutoff
    )
    deleted = 0
    while True:
        ids = list(delivered.order_by("created_at").values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += OutboxMessage.objects.filter(pk__in=ids).delete()[0]


# --- Erasure on request -----------------------------------------------------------------------------


def erase_patron(email: str, *, caller: Caller) -> Erased:
    """Anonymises every closed loan and hold of the patron now, and forgets the notifications and
    idempotency records naming them. Refused (409 `patron_has_open_loans`, nothing written) while the
    patron has an open loan, an open hold or a notification still to deliver. Repeating it finds
    nothing more to do."""
    with transaction.atomic():
        # The lock a lend of this patron takes: a racing lend commits before this reads, or after it.
        locks.lock_patron(email)
        _refuse_if_unresolved(email)
        # Closed ones only, even now: a reservation does not take the patron's lock, and one committed
        # since the check keeps its patron.
        closed_loans = Loan.objects.closed().filter(user_email=email)
        closed_holds = Hold.objects.closed().filter(user_email=email)
        loan_ids = list(closed_loans.select_for_update().values_list("id", flat=True))
        hold_ids = list(closed_holds.select_for_update().values_list("id", flat=True))
        done = Erased(loans=_replace_emails(Loan, loan_ids), holds=_replace_emails(Hold, hold_ids))
        _record_anonymised(Loan, loan_ids, caller)
        _record_anonymised(Hold, hold_ids, caller)
        done.notifications = (
            OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, payload__user_email=email)
            .exclude(status=OutboxStatus.PENDING)
            .delete()[0]
        )
        forget_patron_refs_of(loan_ids, hold_ids)
        _forget_admin_log(Loan, loan_ids)
        _forget_admin_log(Hold, hold_ids)
        _forget_staff_reasons(loan_ids, hold_ids)
        _forget_blocks(PatronBlock.objects.of(email))
        _forget_admin_log_naming(email)
        _forget_callers_naming(email)
        _revoke_keys_naming(email)
        done.idempotency_records = _idempotency_records_naming(email).delete()[0]
    checkpoint_sqlite()
    logger.info("patron erased", extra=done.as_dict())
    return done


def _refuse_if_unresolved(email: str) -> None:
    open_loans = list(
        Loan.objects.open().filter(user_email=email).order_by("id").values("id", "book_id", "status", "date_due")
    )
    open_holds = list(Hold.objects.open().filter(user_email=email).order_by("id").values("id", "book_id", "status"))
    pending = list(
        OutboxMessage.objects.filter(
            kind=OutboxKind.NOTIFICATION, status=OutboxStatus.PENDING, payload__user_email=email
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    if open_loans or open_holds or pending:
        for loan in open_loans:
            loan["date_due"] = loan["date_due"].isoformat()
        raise PATRON_HAS_OPEN_LOANS.error(
            details={"open_loans": open_loans, "open_holds": open_holds, "pending_notifications": pending},
        )
