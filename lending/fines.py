"""Fines and fees: what a late or lost item costs. Lending *assesses* (from the loan's policy snapshot and
the calendar) and publishes; the Fees service keeps the money (accounts, payments, waivers).

- An overdue fine, at a late return or check-in (judged at `returned_at`: a back-dated return owes what
  it owed that day) and at the renewal of a late loan (for the lateness up to the renewal; the next
  assessment counts from the new due date). Late by `fine_grace_days` days or fewer: nothing; beyond,
  the whole late period counts, `fine_per_day` a day (closed days counted unless
  `fine_counts_closed_days` is false), capped at `fine_max`.
- A lost item: `lost_item_fee` and `lost_processing_fee`, when the loan is declared lost or aged to lost;
  a refund of the item fee when it is found and returned later (`refund_lost_on_return`).

Each assessment is a row (`FineAssessment`, its id the Fees service's idempotency key) written in the
transaction of the change that caused it, with its outbox message to the Fees service (`POST /fees`) and
its history event (`fine_assessed`, published as `loan.fine_assessed.v1`): exactly one fee per
assessment, whatever retries or relay restarts happen. Amounts are decimals, never floats.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Sum

from lending import calendar, circulation_rules
from lending.circulation_rules import PolicyTerms
from lending.models import CIRCULATING_STATUSES, EventKind, Loan, LoanStatus
from lending.outbox.messages import fee_message, fee_payload

CENT = Decimal("0.01")

if TYPE_CHECKING:
    from lending.write_context import WriteContext


class FeeKind(models.TextChoices):
    OVERDUE = "overdue"
    LOST_ITEM = "lost_item"
    PROCESSING = "processing"
    REFUND = "refund"  # the lost item fee given back (a positive amount: the kind says which way)


class FineAssessment(models.Model):
    """One amount assessed on one loan. `id` is what the Fees service keys the fee by (`POST /fees`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    loan = models.ForeignKey("lending.Loan", on_delete=models.CASCADE, related_name="fines")
    kind = models.CharField(max_length=16, choices=FeeKind.choices)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    days_charged = models.PositiveIntegerField(default=0)
    assessed_at = models.DateTimeField()
    # The moment the amount was judged at: the return (back-dated or not), the renewal, the loss.
    judged_at = models.DateTimeField()

    class Meta:
        app_label = "lending"
        ordering = ["assessed_at", "id"]
        indexes = [models.Index(fields=["loan", "kind"], name="fines_by_loan")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} on loan {self.loan_id}"


@dataclass(frozen=True)
class Fine:
    """An amount a loan owes (or, for a refund, is given back)."""

    kind: str
    amount: Decimal
    currency: str
    days_charged: int = 0

    def as_dict(self) -> dict:
        return {"amount": str(self.amount), "currency": self.currency, "days_charged": self.days_charged}


def currency() -> str:
    return settings.FINES_CURRENCY


# --- The arithmetic: pure functions ----------------------------------------------------------------
def overdue_fine(
    terms: PolicyTerms, *, date_due: datetime, returned_at: datetime, closed: calendar.ClosedDays
) -> Fine | None:
    """The fine of a loan due at `date_due` and returned (or renewed) at `returned_at`; None when it
    owes nothing (in time, within the grace, or a policy without fines)."""
    days = late_days(date_due, returned_at, closed, count_closed_days=terms.fine_counts_closed_days)
    if days <= terms.fine_grace_days or terms.fine_per_day <= 0:
        return None
    amount = terms.fine_per_day * days
    if terms.fine_max is not None:
        amount = min(amount, terms.fine_max)
    return Fine(FeeKind.OVERDUE, amount.quantize(CENT), currency(), days) if amount > 0 else None


def late_days(
    date_due: datetime, returned_at: datetime, closed: calendar.ClosedDays, *, count_closed_days: bool
) -> int:
    """Library days after the due day up to the day of the return, that one included; without the days
    the library is closed unless `count_closed_days`."""
    days = calendar.days_overdue(date_due, returned_at)
    if count_closed_days or days == 0:
        return days
    first = calendar.library_day(date_due) + timedelta(days=1)
    return sum(1 for offset in range(days) if not closed.is_closed(first + timedelta(days=offset)))


def lost_fees(terms: PolicyTerms) -> list[Fine]:
    """What a lost item costs: the item and the processing, each when the policy charges it."""
    fees = [
        Fine(FeeKind.LOST_ITEM, terms.lost_item_fee, currency()),
        Fine(FeeKind.PROCESSING, terms.lost_processing_fee, currency()),
    ]
    return [fee for fee in fees if fee.amount > 0]


def lost_refund(terms: PolicyTerms, charged_item_fee: Decimal | None) -> Fine | None:
    """The item fee given back when a lost item is returned, if the policy says so and one was charged."""
    if not terms.refund_lost_on_return or not charged_item_fee:
        return None
    return Fine(FeeKind.REFUND, charged_item_fee.quantize(CENT), currency())  # SQLite's SUM drops the cents


# --- Assessing: the rows, events and messages of one change ---------------------------------------
@dataclass(frozen=True)
class Assessed:
    """What an assessment adds to the change that caused it: its history events (`fine_assessed`) and
    its messages to the Fees service, for the change to write with its own."""

    events: list = field(default_factory=list)
    messages: list = field(default_factory=list)


def terms_of(loan: Loan) -> PolicyTerms:
    """The policy the loan was lent under (its snapshot); a loan older than the rules: the fallback."""
    if loan.policy_terms:
        return PolicyTerms.from_snapshot(loan.policy_terms)
    return circulation_rules.in_force().fallback.terms


def overdue_at(loan: Loan, judged_at: datetime) -> list[Fine]:
    """The overdue fine of `loan` if it came back (or renewed) at `judged_at`: nothing when in time,
    within the grace, or under a policy without fines; capped at `fine_max` less what the loan was
    already charged (a late renewal's fine counts towards the cap). Reads the calendar only when
    closed days do not count."""
    if judged_at <= loan.date_due:
        return []
    terms = terms_of(loan)
    closed = calendar.ClosedDays() if terms.fine_counts_closed_days else calendar.closed_days()
    if terms.fine_max is not None and loan.fine_amount:
        terms = replace(terms, fine_max=max(terms.fine_max - loan.fine_amount, Decimal("0.00")))
    fine = overdue_fine(terms, date_due=loan.date_due, returned_at=judged_at, closed=closed)
    return [fine] if fine else []


def at_return(loan: Loan, was: str | None) -> list[Fine]:
    """What a return costs: the overdue fine at `date_returned` for a circulating loan; the item fee's
    refund for a lost one found (`was` LOST); nothing for a claimed-returned one whose claim held."""
    assert loan.date_returned is not None, "a returned loan"
    if was == LoanStatus.LOST:
        charged = FineAssessment.objects.filter(loan=loan, kind=FeeKind.LOST_ITEM).aggregate(total=Sum("amount"))
        refund = lost_refund(terms_of(loan), charged["total"])
        return [refund] if refund else []
    if was == LoanStatus.CLAIMED_RETURNED:
        return []
    return overdue_at(loan, loan.date_returned)


def record(loan: Loan, fines: list[Fine], *, at: datetime, judged_at: datetime, context: WriteContext) -> Assessed:
    """Writes the assessments (one INSERT) and the loan's overdue total (one UPDATE, when one is
    overdue); returns the events (made by the write's caller) and Fees messages for the caller to write
    with its change."""
    if not fines:
        return Assessed()
    rows = FineAssessment.objects.bulk_create(
        FineAssessment(
            loan=loan,
            kind=fine.kind,
            amount=fine.amount,
            currency=fine.currency,
            days_charged=fine.days_charged,
            assessed_at=at,
            judged_at=judged_at,
        )
        for fine in fines
    )
    overdue = [fine for fine in fines if fine.kind == FeeKind.OVERDUE]
    if overdue:
        loan.fine_amount = (loan.fine_amount or Decimal("0.00")) + sum(fine.amount for fine in overdue)
        loan.fine_days_charged = (loan.fine_days_charged or 0) + sum(fine.days_charged for fine in overdue)
        Loan.objects.filter(pk=loan.pk).update(fine_amount=loan.fine_amount, fine_days_charged=loan.fine_days_charged)
    events = [
        context.loan_event(
            loan,
            EventKind.FINE_ASSESSED,
            at=at,
            assessment_id=str(row.id),
            fee_kind=row.kind,
            amount=str(row.amount),
            currency=row.currency,
            days_charged=row.days_charged,
            judged_at=judged_at,
        )
        for row in rows
    ]
    messages = [
        fee_message(
            fee_payload(
                assessment_id=str(row.id), loan=loan, kind=row.kind, amount=str(row.amount), currency=row.currency
            ),
            book_id=loan.book_id,
        )
        for row in rows
    ]
    return Assessed(events, messages)


def quote(loan: Loan, returned_at: datetime) -> Fine:
    """What returning `loan` at `returned_at` would cost, changing nothing (the desk's "what do I owe?"):
    its overdue fine then, or nothing. A lost or claimed-returned loan found owes no fine."""
    owed = overdue_at(loan, returned_at) if loan.status in CIRCULATING_STATUSES else []
    return owed[0] if owed else Fine(FeeKind.OVERDUE, Decimal("0.00"), currency(), 0)
