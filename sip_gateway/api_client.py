"""The gateway's client of the lending API (urllib3: one pool of keep-alive connections, explicit
connect and read timeouts, no automatic retry: a write is retried only with its idempotency key, by the
kiosk resending).

Every answer is either data (2xx) or a `Refusal` with the API's error code and a sentence a patron
understands: a 4xx is the API saying no (blocked, limit reached, on hold for someone else); a 5xx, a
timeout or no connection is `unavailable`. The API's own error messages are never shown to a patron:
they may name another patron.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from urllib3.exceptions import HTTPError

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 1024 * 1024

# What a patron reads on the kiosk's screen for each refusal of the API (its error code).
PATRON_MESSAGES = {
    "patron_blocked": "Your account is blocked. Please see the library staff.",
    "patron_has_overdue_loans": "You have overdue items. Please return them before borrowing.",
    "loan_limit_reached": "You have reached the number of items you may borrow.",
    "item_on_hold_shelf": "This item is on hold for another patron.",
    "book_reserved_by_others": "This item is on hold for another patron.",
    "copies_on_hold": "This item is on hold for another patron.",
    "no_copy_available": "This item is not available.",
    "item_on_loan": "This item is already checked out.",
    "already_borrowed": "You already have this title on loan.",
    "item_not_found": "This item is not recognised. Please see the library staff.",
    "book_not_found": "This item is not recognised. Please see the library staff.",
    "item_not_loanable": "This item cannot be borrowed.",
    "user_not_found": "This library card is not recognised.",
    "user_inactive": "Your account is not active. Please see the library staff.",
    "renewal_limit_reached": "This item cannot be renewed again.",
    "loan_overdue": "An overdue item cannot be renewed. Please see the library staff.",
    "loan_status_conflict": "This item cannot be renewed. Please see the library staff.",
    "loan_not_found": "This item is not on your account.",
    "date_out_of_range": "The transaction date was not accepted. Please see the library staff.",
    "insufficient_scope": "This kiosk may not do that. Please see the library staff.",
    "not_authenticated": "This kiosk is not authorised. Please see the library staff.",
    "authentication_failed": "This kiosk is not authorised. Please see the library staff.",
    "idempotency_request_in_progress": "Please try again in a moment.",
    "rate_limited": "The library system is busy. Please try again in a moment.",
}
UNAVAILABLE = "The library system is unavailable. Please try again or see the library staff."
NOT_COMPLETED = "This could not be done here. Please see the library staff."


@dataclass(frozen=True)
class Refusal:
    """The API said no (`code`, its HTTP `status`), or could not be reached (`unavailable`)."""

    code: str
    status: int
    message: str

    @property
    def unavailable(self) -> bool:
        return self.status == 0 or self.status >= 500


def refusal_of(status: int, data: Any) -> Refusal:
    code = ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = str(data["error"].get("code", ""))
    if status >= 500 or status == 0:
        return Refusal(code or "unavailable", status, UNAVAILABLE)
    return Refusal(code or f"http_{status}", status, PATRON_MESSAGES.get(code, NOT_COMPLETED))


@dataclass(frozen=True)
class Answer:
    status: int
    data: Any


class LendingApi:
    """Calls of the lending API with one kiosk account's key. Blocking: run on a worker thread."""

    def __init__(self, base_url: str, pool: urllib3.PoolManager | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.pool = pool or urllib3.PoolManager(num_pools=2, maxsize=64, block=False, retries=False)
        self.timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)

    def call(
        self,
        method: str,
        path: str,
        *,
        api_key: str,
        body: dict | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Answer | Refusal:
        headers = {"Accept": "application/json", "Authorization": f"Api-Key {api_key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if request_id:
            headers["X-Request-ID"] = request_id
        try:
            response = self.pool.request(
                method,
                self.base_url + path,
                body=None if body is None else json.dumps(body).encode(),
                headers=headers,
                timeout=self.timeout,
                redirect=False,
                preload_content=False,
            )
            raw = response.read(MAX_BODY_BYTES + 1)
            if len(raw) > MAX_BODY_BYTES:
                response.close()  # its unread rest must not reach the next call on this connection
                return Refusal("unavailable", 0, UNAVAILABLE)
            response.release_conn()
        except (HTTPError, OSError):
            return Refusal("unavailable", 0, UNAVAILABLE)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return Refusal("unavailable", 0, UNAVAILABLE)
        if 200 <= response.status < 300:
            return Answer(response.status, data)
        return refusal_of(response.status, data)

    # --- The calls the kiosk messages make -------------------------------------------------------
    def patron_by_card(self, api_key: str, card: str, request_id: str | None = None) -> Answer | Refusal:
        body = {"patron_barcode": card}
        return self.call("POST", "/patrons/by-card/", api_key=api_key, body=body, request_id=request_id)

    def item(self, api_key: str, barcode: str, request_id: str | None = None) -> Answer | Refusal:
        path = f"/items/{quote(barcode, safe='')}/circulation/"
        return self.call("GET", path, api_key=api_key, request_id=request_id)

    def loan(self, api_key: str, loan_id: int, request_id: str | None = None) -> Answer | Refusal:
        return self.call("GET", f"/loans/{int(loan_id)}/", api_key=api_key, request_id=request_id)

    def check_out(self, api_key: str, body: dict, idempotency_key: str | None, request_id: str | None = None):
        return self.call(
            "POST", "/checkouts/", api_key=api_key, body=body, idempotency_key=idempotency_key, request_id=request_id
        )

    def check_in(self, api_key: str, body: dict, idempotency_key: str | None, request_id: str | None = None):
        return self.call(
            "POST", "/checkins/", api_key=api_key, body=body, idempotency_key=idempotency_key, request_id=request_id
        )

    def renew(self, api_key: str, body: dict, idempotency_key: str | None, request_id: str | None = None):
        return self.call(
            "POST", "/renewBook/", api_key=api_key, body=body, idempotency_key=idempotency_key, request_id=request_id
        )
