"""The outbox relay: claims due messages, delivers them, settles them.

Claiming is a short transaction with `SELECT … FOR UPDATE SKIP LOCKED` that pushes the claimed rows'
`next_attempt_at` one lease ahead, so several relays share the work and no transaction stays open
across a peer call. A relay that dies mid-delivery leaves its claim to expire; another relay then
redelivers with the same `Idempotency-Key`, and the peer drops the duplicate.

Availability is computed when delivered and confirmed afterwards: if the book changed while the
update travelled, the message is sent again with the newer state. Two deliveries of one book can
reach the Book service out of order, and a request we gave up on (a timeout) may still be applied
late, and a relay may die between its write and its check. So a delivery settles only its own
message and those waiting to be claimed, never one in flight; a delivery that finds the book changed
reopens its message; and one that timed out, or that takes over a message whose earlier delivery was
abandoned (more claims than recorded attempts), leaves a re-check behind, due once such a late write
can no longer land (OUTBOX_RECHECK_SECONDS).

A claimed batch costs the database three statements besides the claim: the state of every book it
publishes, the settling of its notifications and fees, and the version-guarded settling of its books
(one more, to reopen, when a book changed while its update travelled). Its messages of one book share
one availability update, and its notifications one call to the Notification service
(`POST /send-notifications`, each keeping its own key and outcome) when the peer takes batches; a peer
that answers 404 there gets one call per notification.
`run_forever` makes the peer calls side by side on a pool of OUTBOX_DELIVERY_THREADS threads (each
with its own database connection): a call mostly waits on a peer, so one relay keeps up with the
lends only when calls overlap. `run_once` without a pool makes them one after the other.

The statements (claim, lease, settling, re-check insert) are literal SQL in `lending.db.outbox`.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from lending import selectors
from lending.clients import books, fees, notifications
from lending.db import outbox as db_outbox
from lending.db.outbox import RECHECK
from lending.errors import PeerUnavailable
from lending.models import OutboxKind, OutboxMessage, OutboxStatus
from lending.observability import metrics, tracing
from lending.outbox import broker
from lending.request_context import request_id_var

logger = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """The peer refused the message (4xx): retrying cannot help, park it at once."""


def claim_batch(batch_size: int | None = None, *, due_by: datetime | None = None) -> list[OutboxMessage]:
    """Claims pending messages due by `due_by` (default: now) for one lease."""
    now = timezone.now()
    with transaction.atomic():
        batch = db_outbox.claimable(due_by or now, batch_size or settings.OUTBOX_BATCH_SIZE)
        if batch:
            lease_end = now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
            db_outbox.take_lease([m.pk for m in batch], lease_end)
    return batch


def _abandoned_before(message: OutboxMessage) -> bool:
    """An earlier claim of the message ended with no outcome recorded: its relay died, or overran
    its lease, maybe with a request on the wire. (`claims` as read before this claim counted.)"""
    return message.claims > message.attempts


Delivery = Callable[[], list[OutboxMessage]]  # a peer call; returns the messages the batch settles


def deliver(message: OutboxMessage) -> None:
    """Deliver one claimed message and record the outcome."""
    deliver_batch([message])


def deliver_batch(messages: list[OutboxMessage], pool: ThreadPoolExecutor | None = None) -> None:
    """Deliver claimed messages and record the outcomes, with the database work done per batch:
    one query reads the state of every book to publish, one UPDATE settles the notifications and
    fees delivered, one the books published (each only if still at the version published). The
    peer calls (the notifications', one per fee, one per book) run side by side on `pool`."""
    books_to_publish = defaultdict(list)
    fee_messages, notices = [], []
    # Domain events go to the broker first, from this thread (lending/outbox/broker.py).
    published = broker.publish([m for m in messages if m.kind == OutboxKind.EVENT], on_failure=_record_failure)
    for message in messages:
        if message.kind == OutboxKind.AVAILABILITY:
            books_to_publish[message.book_id].append(message)
        elif message.kind == OutboxKind.FEE:
            fee_messages.append(message)
        elif message.kind != OutboxKind.EVENT:
            notices.append(message)
    states = selectors.books_availability(books_to_publish) if books_to_publish else {}
    # Each call returns the messages it leaves to the batch to settle: delivered ones, or (for a book)
    # the ones whose availability it published.
    deliveries: list[Delivery] = [
        *(partial(_one, _deliver_fee, message) for message in fee_messages),
        *_notification_calls(notices),
    ]
    publications: list[Delivery] = [
        partial(_deliver_availability, book_messages, *states[book_id])
        for book_id, book_messages in books_to_publish.items()
    ]
    calls = deliveries + publications
    outcomes = list(pool.map(_call_on_pool_thread, calls)) if pool else [call() for call in calls]
    delivered = [message for settled in outcomes[: len(deliveries)] for message in settled] + published
    if delivered:
        _mark_delivered([message.pk for message in delivered])
        metrics.record_delivery(delivered, "delivered")
    _settle_availability([book for book in outcomes[len(deliveries) :] if book], states)


def _one(deliver: Callable[[OutboxMessage], bool], message: OutboxMessage) -> list[OutboxMessage]:
    """A call for one message (a fee, a notification), as a Delivery."""
    return [message] if deliver(message) else []


def _notification_calls(notices: list[OutboxMessage]) -> list[Delivery]:
    """One call per MAX_BATCH notifications when the peer takes batches, else one per notification
    (side by side on the pool). A lone notification goes by the single call: the same on the wire
    whether or not the peer has the batch endpoint."""
    if len(notices) == 1 or not notifications.batches_accepted():
        return [partial(_one, _deliver_notification, message) for message in notices]
    size = notifications.MAX_BATCH
    return [partial(_deliver_notification_batch, notices[i : i + size]) for i in range(0, len(notices), size)]


def _call_on_pool_thread(call: Delivery) -> list[OutboxMessage]:
    try:
        return call()
    except Exception:
        close_old_connections()  # this thread's connection may be broken: reopen it next time
        raise


@contextmanager
def _recording_failures(messages: list[OutboxMessage]):
    """Runs a delivery under the first message's correlation id; a peer failure is recorded on
    every message the delivery stood for."""
    token = request_id_var.set(f"outbox-{messages[0].key}")
    try:
        # The delivery's spans (its peer call) join the trace of the change that wrote the message.
        with tracing.continuing(messages[0].traceparent, f"deliver {messages[0].kind}"):
            yield
    except PeerUnavailable as failure:
        for message in messages:
            _record_failure(message, failure.message, permanent=False)
    except PermanentFailure as failure:
        for message in messages:
            _record_failure(message, str(failure), permanent=True)
    finally:
        request_id_var.reset(token)


def _deliver_fee(message: OutboxMessage) -> bool:
    """POSTs the fee; True when the Fees service holds it (201, or 200 for a repeat of the same id
    and body after a retry or a relay that died before settling). A 409 (the id already holds
    another fee) or a 400 is permanent: the message is parked as dead for a person to look at."""
    with _recording_failures([message]):
        status = fees.post_fee(message.payload)
        _raise_if_refused("Fees", status)
        return True
    return False


def _deliver_notification(message: OutboxMessage) -> bool:
    """True when the peer took it; the batch then settles it."""
    with _recording_failures([message]):
        status = notifications.send_notification(message.payload, idempotency_key=str(message.key))
        _raise_if_refused("Notification", status)
        return True
    return False


def _deliver_notification_batch(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """One call for them all; each message's outcome recorded as its own call's would be. When the
    peer turns out to have no batch endpoint (its 404 is remembered for a while, so this happens
    seldom), they go one call each, from this thread."""
    with _recording_failures(messages):
        statuses = notifications.send_notifications([(str(message.key), message.payload) for message in messages])
        if statuses is None:
            return [message for message in messages if _deliver_notification(message)]
        return [message for message, status in zip(messages, statuses, strict=True) if _taken(message, status)]
    return []  # the call failed (a 5xx, a timeout): recorded on every message, each retried after its backoff


def _taken(message: OutboxMessage, status: int) -> bool:
    """One item of a batch call: taken (2xx, a repeat included), refused (4xx: dead at once, as the
    single call's refusal) or failed (5xx: retried after its backoff)."""
    if status < 400:
        return True
    _record_failure(message, f"Notification answered HTTP {status} for the message", permanent=status < 500)
    return False


def _deliver_availability(messages: list[OutboxMessage], available: bool, version: int) -> list[OutboxMessage]:
    """Publishes one book's state (read by the batch, with its version) for its claimed messages;
    returns them when the Book service took it, for the batch's version-guarded settle."""
    book_id = messages[0].book_id
    if any(_abandoned_before(message) for message in messages):
        _enqueue_recheck(book_id)  # the abandoned update may still land after this one
    with _recording_failures(messages):
        # Unique per message and state: a retry of this very delivery is dropped by the peer, but a
        # later message re-publishing the same version (after a stale write overtook it) is applied.
        idempotency_key = f"book-{book_id}-availability-v{version}-{messages[0].key}"
        try:
            status = books.publish_availability(book_id, available, idempotency_key=idempotency_key)
        except PeerUnavailable as failure:
            if failure.outcome_unknown:
                _enqueue_recheck(book_id)
            raise
        _raise_if_refused("Book Management", status)
        return messages
    return []


def _settle_availability(published: list[list[OutboxMessage]], states: dict[int, tuple[bool, int]]) -> None:
    """Settles the books published (each list: one book's claimed messages), in one UPDATE: a book
    still at the version we published settles; one that changed meanwhile reopens its messages."""
    # Only if the book is still at the version we published. The peer then holds the current state,
    # so the availability messages of this book waiting to be claimed are satisfied too. Not these,
    # which settle themselves: the ones in flight (another delivery's stale write may still land
    # after ours), those not yet due (a backoff, a re-check waiting for a late write), the re-checks
    # (they exist to publish after a late write), and those whose earlier delivery was abandoned
    # (their taking over must leave a re-check). A change committing meanwhile commits its own
    # message with its version: the UPDATE sees both (and settles nothing of that book) or neither
    # (and leaves that message to deliver the newer state).
    if not published:
        return
    now = timezone.now()
    settled = db_outbox.settle_availability(
        [
            db_outbox.Published(messages[0].book_id, states[messages[0].book_id][1], [m.pk for m in messages])
            for messages in published
        ],
        now,
    )
    changed = [m.pk for messages in published if messages[0].book_id not in settled for m in messages]
    if changed:
        # The book changed while our update travelled, and another delivery may already have
        # settled these messages with a state our late write has just overwritten: reopen them.
        # The claim is handed back: it ended with a known outcome, so it does not count as abandoned.
        db_outbox.reopen(changed, now)
    for messages in published:
        metrics.record_delivery(messages, "delivered" if messages[0].book_id in settled else "reopened")


_RECHECK_KEYS = uuid.UUID("6f0f4d1e-3c1a-4a57-9a51-2f8b1f7c9e10")  # namespace of the re-checks' keys


def _enqueue_recheck(book_id: int) -> None:
    """The peer may still apply the update we gave up on: publish the state again once it cannot.

    One re-check per book and window of OUTBOX_RECHECK_SECONDS, due at the window's end (between one
    and two delays from now): a Book service that keeps timing out gets a re-check per book every
    window, not one per failed attempt. The key names the window, and a second insert is ignored."""
    delay = settings.OUTBOX_RECHECK_SECONDS
    if delay <= 0:
        return
    window = int((timezone.now().timestamp() + delay) // delay) + 1
    due = datetime.fromtimestamp(window * delay, tz=UTC)
    recheck = OutboxMessage(
        key=uuid.uuid5(_RECHECK_KEYS, f"{book_id}/{window}"),
        kind=OutboxKind.AVAILABILITY,
        book_id=book_id,
        payload={RECHECK: True},
        next_attempt_at=due,
    )
    db_outbox.insert_messages([recheck], ignore_conflicts=True)


def _raise_if_refused(peer: str, status: int) -> None:
    if status >= 400:
        raise PermanentFailure(f"{peer} refused the message with HTTP {status}")


def _mark_delivered(ids: list[int]) -> int:
    return db_outbox.mark_delivered(ids, timezone.now())


def _record_failure(message: OutboxMessage, error: str, *, permanent: bool) -> None:
    attempts = message.attempts + 1
    update = {"attempts": attempts, "last_error": error[:2000]}
    dead = permanent or attempts >= settings.OUTBOX_MAX_ATTEMPTS
    metrics.record_delivery([message], "dead" if dead else "retry")
    if dead:
        update["status"] = OutboxStatus.DEAD
        logger.error("outbox message %s is dead after %d attempts: %s", message.key, attempts, error)
    else:
        update["next_attempt_at"] = timezone.now() + timedelta(seconds=backoff_seconds(attempts))
        logger.warning("outbox message %s failed (attempt %d): %s", message.key, attempts, error)
    OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(**update)


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter between half and all of the step."""
    step = min(settings.OUTBOX_BACKOFF_MAX_SECONDS, settings.OUTBOX_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    return step * random.uniform(0.5, 1.0)


def run_once(pool: ThreadPoolExecutor | None = None, on_batch: Callable[[], None] | None = None) -> int:
    """Deliver everything due now; returns how many messages were attempted. With a pool, the
    messages of each batch are delivered side by side on its threads. `on_batch` is called after
    each batch: a long backlog is progress too, for the liveness check."""
    attempted = 0
    # Only what was due when the pass began: a message that fails now and is due again a moment
    # later (a short backoff) waits for the next pass instead of being retried in this one.
    pass_started = timezone.now()
    while batch := claim_batch(due_by=pass_started):
        deliver_batch(batch, pool)
        attempted += len(batch)
        if on_batch is not None:
            on_batch()
    return attempted


def run_forever(stop: threading.Event, heartbeat=None) -> None:
    """Passes until `stop` is set; each pass (and batch) reports to `heartbeat` (an ops_server.Heartbeat)."""
    logger.info("outbox relay started")
    threads = max(1, getattr(settings, "OUTBOX_DELIVERY_THREADS", 1))
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="relay") if threads > 1 else None
    try:
        while not stop.is_set():
            try:
                run_once(pool, on_batch=heartbeat.progress if heartbeat else None)
                if heartbeat is not None:
                    heartbeat.beat()
            except Exception:  # a database blip must not kill the relay; it retries after a pause
                logger.exception("outbox relay pass failed")
                if heartbeat is not None:
                    heartbeat.beat(ok=False)
                close_old_connections()
                stop.wait(1.0)
            stop.wait(settings.OUTBOX_POLL_INTERVAL_SECONDS)
    finally:
        if pool is not None:
            pool.shutdown()
    logger.info("outbox relay stopped")
