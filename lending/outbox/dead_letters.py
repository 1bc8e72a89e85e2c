"""Dead letters: outbox messages that exhausted their attempts (or were refused by the peer), kept
with their last error until staff replay them. Used by `manage.py dead_letters` and the admin."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from lending.models import OutboxMessage, OutboxStatus


def dead_letters() -> QuerySet[OutboxMessage]:
    """Every dead message, oldest first."""
    return OutboxMessage.objects.filter(status=OutboxStatus.DEAD).order_by("id")


def count() -> int:
    return dead_letters().count()


def replay(messages: QuerySet[OutboxMessage] | None = None) -> int:
    """Put dead messages (all of them, or the dead ones among `messages`) back in the queue: PENDING,
    attempts reset, due now. The last error is kept until a delivery succeeds. Messages that are not
    dead are left alone, so replaying twice is harmless. Returns how many were requeued."""
    selected = dead_letters() if messages is None else messages.filter(status=OutboxStatus.DEAD)
    # Claims restart with the attempts: none of the old ones is an abandoned delivery.
    return selected.update(status=OutboxStatus.PENDING, attempts=0, claims=0, next_attempt_at=timezone.now())
