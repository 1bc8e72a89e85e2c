"""Idempotency keys on writes, after Stripe's contract.

A request with an `Idempotency-Key` first claims the key (a short transaction of its own). The
service then settles the claim inside the same transaction as the loan, storing the response that
retries will replay: nothing acknowledged is lost. The claim renders that response itself, once,
with the function the view named (`lending.representation.Answer`), and the view answers with the
body stored; nothing here calls back into the API.

A retry with another body gets 422; a retry while the first request still runs
gets 409; a claim whose request died (no answer after IDEMPOTENCY_LOCK_SECONDS) can be taken over,
which is safe because an unsettled claim means no loan was committed for it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from lending import errors
from lending.errors import LendingError
from lending.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, body: Any) -> str:
    """What tells a retry from another request under the same key. Keyed (HMAC-SHA256 with the
    SECRET_KEY): the body names a patron, and an unsalted hash of it could be matched by hashing
    guessed bodies, which would outlive the patron's erasure."""
    return salted_hmac(FINGERPRINT_SALT, _canonical(method, path, body), algorithm="sha256").hexdigest()


FINGERPRINT_SALT = "lending.idempotency.fingerprint"


def _canonical(method: str, path: str, body: Any) -> str:
    return json.dumps([method, path.rstrip("/"), body], sort_keys=True, separators=(",", ":"))


def unsalted_fingerprint(method: str, path: str, body: Any) -> str:
    """The fingerprint the release before keyed fingerprints stored: compared, never stored, so that a
    retry across a rolling deploy (records live IDEMPOTENCY_KEY_TTL_HOURS) is still recognised."""
    return hashlib.sha256(_canonical(method, path, body).encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


@dataclass
class Claim:
    key: str
    owner: uuid.UUID
    # The result's (status, body), e.g. a `lending.representation.Answer`.
    render: Callable[[Any], tuple[int, Any]]
    # What `settle` stored: the answer the view sends.
    answer: tuple[int, Any] | None = None

    def settle(self, result: Any) -> tuple[int, Any]:
        """Render the success response and store it. Must run inside the caller's business transaction."""
        self.answer = self.render(result)
        self._store(*self.answer)
        return self.answer

    def settle_refusal(self, error: LendingError, body: Any) -> None:
        """A 4xx refusal is the answer too: retries get the same one."""
        with transaction.atomic():
            self._store(error.status, body)

    def release(self) -> None:
        """The request failed without an answer (peer down, crash): let a retry run it again."""
        IdempotencyRecord.objects.filter(key=self.key, owner=self.owner, response_status__isnull=True).delete()

    def _store(self, status: int, body: Any) -> None:
        stored = IdempotencyRecord.objects.filter(key=self.key, owner=self.owner).update(
            response_status=status, response_body=body, locked_at=None
        )
        if not stored:
            raise errors.IDEMPOTENCY_KEY_IN_USE.error()


def claim(
    key: str,
    request_fingerprint: str,
    render: Callable[[Any], tuple[int, Any]],
    *,
    previous_release_fingerprint: str | None = None,
) -> Claim | Replay:
    now = timezone.now()
    owner = uuid.uuid4()
    expires_at = now + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    with transaction.atomic():
        record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
            key=key,
            defaults={"fingerprint": request_fingerprint, "locked_at": now, "owner": owner, "expires_at": expires_at},
        )
        if created:
            return Claim(key, owner, render)
        if record.expires_at <= now:
            _restart(record, request_fingerprint, now, owner, expires_at)
            return Claim(key, owner, render)
        if record.fingerprint not in (request_fingerprint, previous_release_fingerprint):
            raise errors.IDEMPOTENCY_KEY_REUSED.error()
        if record.response_status is not None:
            return Replay(record.response_status, record.response_body)
        if record.locked_at and record.locked_at > now - timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS):
            raise errors.IDEMPOTENCY_REQUEST_IN_PROGRESS.error(headers={"Retry-After": "1"})
        _restart(record, request_fingerprint, now, owner, expires_at)
        return Claim(key, owner, render)


def _restart(record: IdempotencyRecord, request_fingerprint: str, now, owner: uuid.UUID, expires_at) -> None:
    record.fingerprint = request_fingerprint
    record.locked_at = now
    record.owner = owner
    record.response_status = None
    record.response_body = None
    record.expires_at = expires_at
    record.save()


def purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
