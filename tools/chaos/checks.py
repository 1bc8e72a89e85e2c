"""After the run: drain the outbox, then check every invariant against the database, the ledger and the
reference peers; each broken one is a violation, and the facts found go into the report."""

from __future__ import annotations

import collections
import time

import requests

from tools.chaos.stats import Ledger, Stats
from tools.chaos.system import System


def drain(system: System, timeout: float, stats: Stats) -> dict:
    """Wait until the outbox has nothing pending; returns the final outbox counts."""
    from lending.models import OutboxMessage

    deadline = time.monotonic() + timeout
    while True:
        counts = dict(collections.Counter(OutboxMessage.objects.values_list("status", flat=True)))
        if not counts.get("PENDING"):
            return counts
        if time.monotonic() > deadline:
            stats.violation(f"the outbox did not drain in {timeout:.0f} s: {counts}")
            return counts
        time.sleep(0.5)


def check(system: System, ledger: Ledger, stats: Stats, outbox: dict) -> dict:
    from django.db.models import Count

    from lending.models import Loan, LoanNotice, OutboxKind, OutboxMessage

    facts: dict = {}
    book_peer = requests.get(f"{system.env['BOOK_MANAGEMENT_URL']}/books", timeout=10).json()
    copies = {b["id"]: b.get("quantity", 1) for b in book_peer}
    loans = {loan.pk: loan for loan in Loan.objects.all()}
    facts["loans in the database"] = len(loans)
    facts["open loans at the end"] = sum(1 for loan in loans.values() if loan.date_returned is None)

    # 1. No book ever had more open loans than copies (a sweep over every loan's lifetime).
    events = collections.defaultdict(list)
    for loan in loans.values():
        events[loan.book_id].append((loan.date_borrowed, 1))
        if loan.date_returned:
            events[loan.book_id].append((loan.date_returned, -1))
    peak_ratio = 0.0
    for book_id, book_events in events.items():
        open_now = 0
        for _, delta in sorted(book_events, key=lambda e: (e[0], e[1])):  # returns first at equal times
            open_now += delta
            if open_now > copies.get(book_id, 1):
                stats.violation(f"book {book_id} had {open_now} open loans for {copies.get(book_id, 1)} copies")
                break
        peak_ratio = max(peak_ratio, open_now / max(copies.get(book_id, 1), 1))

    # 2. Every acknowledged lend and return exists exactly once; nothing else was written.
    for loan_id, (user, book) in ledger.lends.items():
        loan = loans.get(loan_id)
        if loan is None or (loan.user_email, loan.book_id) != (user, book):
            stats.violation(f"acknowledged loan {loan_id} ({user}, book {book}) is missing or different")
    for loan_id in ledger.returns:
        if loan_id in loans and loans[loan_id].date_returned is None:
            stats.violation(f"acknowledged return of loan {loan_id} is not in the database")
    unacknowledged = [loan for pk, loan in loans.items() if pk not in ledger.lends]
    for loan in unacknowledged:
        if (loan.user_email, loan.book_id) not in ledger.uncertain:
            stats.violation(f"loan {loan.pk} ({loan.user_email}, book {loan.book_id}) was never acknowledged")
    for pk, loan in loans.items():
        if (
            loan.date_returned
            and pk in ledger.lends
            and pk not in ledger.returns
            and (loan.user_email, loan.book_id) not in ledger.uncertain
        ):
            stats.violation(f"loan {pk} was returned without an acknowledged return")
    facts["loans committed for never-acknowledged lends"] = len(unacknowledged)

    # 3. Each loan event reached the Notification peer exactly once (after its dedupe by key).
    received = requests.get(f"{system.env['NOTIFICATION_SERVICE_URL']}/notifications", timeout=30).json()
    peer_stats = requests.get(f"{system.env['NOTIFICATION_SERVICE_URL']}/stats", timeout=10).json()
    got = collections.Counter((n.get("loan_id"), n.get("message_type")) for n in received)
    expected: collections.Counter[tuple[int, str]] = collections.Counter()
    for pk, loan in loans.items():
        expected[(pk, "lending_confirmation")] += 1
        if loan.date_returned:
            expected[(pk, "return_confirmation")] += 1
    for row in LoanNotice.objects.values("notice_type", "loan_id").annotate(n=Count("id")):
        expected[(row["loan_id"], row["notice_type"])] += row["n"]
    missing = {k: v - got[k] for k, v in expected.items() if got[k] < v}
    extra = {k: got[k] - v for k, v in got.items() if k[0] is not None and got[k] > expected.get(k, 0)}
    for (loan_id, kind), n in list(missing.items())[:20]:
        stats.violation(f"{n} {kind} notification(s) of loan {loan_id} never reached the Notification peer")
    for (loan_id, kind), n in list(extra.items())[:20]:
        stats.violation(f"{n} extra {kind} notification(s) of loan {loan_id} reached the Notification peer")
    if len(missing) > 20 or len(extra) > 20:
        stats.violation(f"... {len(missing)} loan events missing and {len(extra)} duplicated in all")
    keys = collections.Counter(n.get("idempotency_key") for n in received)
    delivered = set(
        OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, status="DELIVERED").values_list("key", flat=True)
    )
    if {str(k) for k in delivered} - set(keys):
        stats.violation("some delivered notification messages are not at the Notification peer")
    facts["notifications at the peer"] = len(received)
    facts["  lending confirmations"] = sum(1 for n in received if n.get("message_type") == "lending_confirmation")
    facts["  return confirmations"] = sum(1 for n in received if n.get("message_type") == "return_confirmation")
    facts["  due-soon reminders"] = sum(1 for n in received if n.get("message_type") == "due_soon_reminder")
    facts["duplicate deliveries dropped by the peer"] = peer_stats.get("duplicates_dropped")

    # 4. Every book's availability at the Book peer equals the truth.
    open_by_book = collections.Counter(loan.book_id for loan in loans.values() if loan.date_returned is None)
    wrong = [
        (b["id"], b["available"]) for b in book_peer if b["available"] != (open_by_book[b["id"]] < b.get("quantity", 1))
    ]
    for book_id, available in wrong[:20]:
        stats.violation(
            f"book {book_id}: the Book peer says available={available}, the truth is "
            f"{open_by_book[book_id]} open loan(s) for {copies[book_id]} copies"
        )
    facts["books checked at the Book peer"] = len(book_peer)
    facts["books lent at least once"] = len(events)
    facts["highest open loans / copies"] = round(peak_ratio, 2)

    # 5. Nothing parked: every side effect was delivered.
    facts["outbox messages by status"] = outbox
    if outbox.get("DEAD"):
        stats.violation(f"{outbox['DEAD']} outbox message(s) are dead letters")
    return facts
