"""Reference Fees service: the ledger of what patrons owe, fed by lending's assessments.

`POST /fees` records one fee, idempotent by its `id` (the assessment's): a repeat with the same body
is answered 200 with the fee as stored and changes nothing; the same id with another body is a
conflict (409), never an overwrite. `GET /patrons/{patron_ref}/balance` sums what the patron owes
(overdue, lost-item and processing fees, less refunds). `GET /fees` lists what was received.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from tools.reference_peers.server import PeerServer, Request, Router

KINDS = ("overdue", "lost_item", "processing", "refund")
CREDIT_KINDS = frozenset({"refund"})
FIELDS = ("id", "patron_ref", "loan_id", "kind", "amount", "currency")
# A non-negative amount with at most two decimals, as lending writes it ("0.75", "12", "3.50").
AMOUNT = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_KEY_LENGTH = 200
CENTS = Decimal("0.01")


class FeesPeer(PeerServer):
    name = "fees"

    def __init__(self, *args: Any, currency: str = "EUR", **kwargs: Any) -> None:
        self.currency = currency
        self.fees: dict[str, dict] = {}  # by id, in the order received
        self.repeats = 0
        super().__init__(*args, **kwargs)

    def register_routes(self, router: Router) -> None:
        router.add("POST", "/fees", self.post_fee)
        router.add("GET", "/fees", self.list_fees)
        router.add("GET", "/patrons/{patron_ref}/balance", self.balance)

    # --- the contract ---------------------------------------------------------------------------
    def post_fee(self, request: Request) -> tuple[int, Any]:
        problem = shape_problem(request.body)
        if problem:
            return 400, {"error": problem}
        fee = {field: request.body[field] for field in FIELDS}
        with self.lock:
            stored = self.fees.get(fee["id"])
            if stored is None:
                self.fees[fee["id"]] = fee
                return 201, fee
            if stored != fee:
                return 409, {"error": f"fee {fee['id']} was already recorded with another body", "fee": stored}
            self.repeats += 1
            return 200, stored

    def list_fees(self, request: Request) -> tuple[int, Any]:
        patron_ref = request.query.get("patron_ref")
        with self.lock:
            found = [fee for fee in self.fees.values() if patron_ref is None or fee["patron_ref"] == patron_ref]
        return 200, found

    def balance(self, request: Request) -> tuple[int, Any]:
        return 200, {"balance": str(self.balance_of(request.params["patron_ref"])), "currency": self.currency}

    # --- in-process helpers (tests, demos) ------------------------------------------------------
    def balance_of(self, patron_ref: str) -> Decimal:
        """Fees less refunds; a patron the service never heard of owes nothing."""
        with self.lock:
            fees = [fee for fee in self.fees.values() if fee["patron_ref"] == patron_ref]
        total = sum((signed_amount(fee) for fee in fees), Decimal("0"))
        return total.quantize(CENTS)

    def add_fee(self, patron_ref: str, amount: str, *, kind: str = "overdue", fee_id: str | None = None) -> dict:
        """Records a fee as if lending had posted it (a patron who already owes money)."""
        fee_id = fee_id or f"manual-{len(self.fees) + 1}-{patron_ref}"
        fee = {
            "id": fee_id,
            "patron_ref": patron_ref,
            "loan_id": 0,
            "kind": kind,
            "amount": amount,
            "currency": self.currency,
        }
        with self.lock:
            self.fees[fee_id] = fee
        return fee


def signed_amount(fee: dict) -> Decimal:
    amount = Decimal(fee["amount"])
    return -amount if fee["kind"] in CREDIT_KINDS else amount


def shape_problem(body: Any) -> str | None:
    """Why `body` is not a fee of the contract, in words; None when it is one."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    missing = [field for field in FIELDS if field not in body]
    if missing:
        return f"fields {', '.join(missing)} are required"
    for key in ("id", "patron_ref"):
        if not isinstance(body[key], str) or not 0 < len(body[key]) <= MAX_KEY_LENGTH:
            return f"{key} must be a string of 1 to {MAX_KEY_LENGTH} characters"
    if isinstance(body["loan_id"], bool) or not isinstance(body["loan_id"], int):
        return "loan_id must be an integer"
    if body["kind"] not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    if not isinstance(body["amount"], str) or not AMOUNT.match(body["amount"]):
        return 'amount must be a decimal string with at most two decimals, such as "0.75"'
    if not isinstance(body["currency"], str) or not CURRENCY.match(body["currency"]):
        return "currency must be an ISO 4217 code, such as EUR"
    return None
