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
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models

from lending import calendar
from lending.circulation_rules import PolicyTerms

CENT = Decimal("0.01")


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
    return Fine(FeeKind.REFUND, charged_item_fee, currency())
