"""Factories of the models (factory-boy): a valid row with one call, only what a test cares about named.

LoanFactory()                                  an open loan, borrowed a day ago, due in the loan period
LoanFactory(due_in=timedelta(days=-3))         open and overdue for three days
LoanFactory(returned=True)                     returned now
LoanFactory(borrowed_ago=timedelta(days=90))   borrowed 90 days ago (due `due_in` from now)
HoldFactory(book_id=7)                         a WAITING hold; HoldFactory(ready=True) a READY one
HoldFactory.build(pk=3)                        an unsaved hold, for database-free tests
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from lending.models import BookStock, Hold, HoldStatus, Loan, LoanStatus

LOAN_PERIOD = timedelta(days=60)


def days(count: float) -> timedelta:
    """`LoanFactory(due_in=days(-3))` reads as what it is."""
    return timedelta(days=count)


class LoanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Loan

    class Params:
        now = factory.LazyFunction(timezone.now)
        due_in = timedelta(days=30)
        borrowed_ago = None  # default: one loan period (60 days) before the due date
        returned = factory.Trait(
            date_returned=factory.SelfAttribute("now"),
            status=LoanStatus.RETURNED,
        )

    user_email = factory.Sequence(lambda n: f"reader-{n}@example.com")
    book_id = factory.Sequence(lambda n: 1000 + n)
    book_title = factory.LazyAttribute(lambda loan: f"Book {loan.book_id}")
    date_due = factory.LazyAttribute(lambda loan: loan.now + loan.due_in)
    date_borrowed = factory.LazyAttribute(
        lambda loan: loan.date_due - LOAN_PERIOD if loan.borrowed_ago is None else loan.now - loan.borrowed_ago
    )
    date_returned = None
    status = LoanStatus.ACTIVE


class HoldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Hold

    class Params:
        now = factory.LazyFunction(timezone.now)
        ready = factory.Trait(
            status=HoldStatus.READY,
            date_ready=factory.SelfAttribute("now"),
            pickup_deadline=factory.LazyAttribute(lambda hold: hold.now + timedelta(days=3)),
        )

    user_email = factory.Sequence(lambda n: f"waiting-{n}@example.com")
    book_id = factory.Sequence(lambda n: 5000 + n)
    book_title = factory.LazyAttribute(lambda hold: f"Book {hold.book_id}")
    status = HoldStatus.WAITING
    date_reserved = factory.LazyAttribute(lambda hold: hold.now - timedelta(hours=1))


class BookStockFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BookStock
        django_get_or_create = ("book_id",)

    book_id = factory.Sequence(lambda n: 9000 + n)
    title = factory.LazyAttribute(lambda stock: f"Book {stock.book_id}")
    copies = 1
