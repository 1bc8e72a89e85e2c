"""The kiosk subset of SIP2 2.00, each message turned into calls of the lending API and an answer:

`99` SC Status → `98`, `93` Login → `94`, `23` Patron Status → `24`, `63` Patron Information → `64`,
`11` Checkout → `12`, `09` Checkin → `10`, `17` Item Information → `18`, `29` Renew → `30`,
`35` End Patron Session → `36`. Any other code is answered `96` (`98`'s `BX` says what is supported).

Nothing but `99` is answered with data before a successful `93`: the others get their refusal
(`ok` 0, `AF` "This kiosk is not logged in."). A refusal always answers `ok` 0 with `AF` in words a
patron understands (sip_gateway.api_client), and never another patron's data.

Check-outs, check-ins and renewals carry an idempotency key derived from the message (the account,
the code, the patron, the item, the kiosk's transaction date: not AY/AZ), so the same transaction
resent after a reconnect is answered from the first one, never applied twice. A no-block (offline)
check-out or check-in, from an account allowed them, is applied as an override with the reason
"SIP no-block" and the kiosk's transaction date; a check-in's return date becomes `returned_at`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from lending.request_context import current_request_id
from sip_gateway import codec
from sip_gateway.accounts import Authenticator
from sip_gateway.api_client import UNAVAILABLE, Answer, LendingApi, Refusal
from sip_gateway.codec import Message, count, flag, sip_date
from sip_gateway.server import Reply, Session

# BX: which of the 16 messages of SIP2 2.00 the gateway supports, in the spec's order: patron status,
# checkout, checkin, block patron, SC/ACS status, resend, login, patron information, end patron
# session, fee paid, item information, item status update, patron enable, hold, renew, renew all.
SUPPORTED = "YYYNYYYYYNYNNNYN"
PROTOCOL_VERSION = "2.00"
NOT_LOGGED_IN = "This kiosk is not logged in."
# Failed `93` logins after which the gateway closes the connection.
MAX_FAILED_LOGINS = 3
UNKNOWN_LANGUAGE = "000"
# `18`'s circulation status for the API's item status: 03 available, 04 charged, 08 on hold shelf,
# 11 claimed returned, 12 lost; 01 (other) for an item the catalogue does not know.
CIRCULATION_STATUS = {
    "available": "03",
    "checked_out": "04",
    "on_hold_shelf": "08",
    "claimed_returned": "11",
    "lost": "12",
}
NO_BLOCK_REASON = "SIP no-block"
# A kiosk's return date this close to the gateway's clock is a return made now.
CLOCK_SKEW = timedelta(minutes=5)
# Tenths of a second a kiosk should wait for an answer before it resends (98's timeout period),
# and how often it may resend.
TIMEOUT_PERIOD = "100"
RETRIES_ALLOWED = "003"


class Kiosk:
    """Answers the messages of every session, with the accounts and the lending API it is given."""

    def __init__(self, api: LendingApi, authenticator: Authenticator, zone: ZoneInfo) -> None:
        self.api = api
        self.authenticator = authenticator
        self.zone = zone
        self.handlers: dict[str, Callable[[Session, Message], Awaitable[Reply]]] = {
            "99": self.sc_status,
            "93": self.login,
            "23": self.patron_status,
            "63": self.patron_information,
            "11": self.checkout,
            "09": self.checkin,
            "17": self.item_information,
            "29": self.renew,
            "35": self.end_session,
            # Understood but not supported (BX says N): a refusal in the message's own answer, so
            # a kiosk does not resend them as it would after a `96`.
            "01": self.not_supported,
            "15": self.not_supported,
            "19": self.not_supported,
            "25": self.not_supported,
            "37": self.not_supported,
            "65": self.not_supported,
        }

    async def __call__(self, session: Session, message: Message) -> Reply:
        handler = self.handlers.get(message.code)
        if handler is None:
            session.note(outcome="not_supported")
            return Reply("96")
        return await handler(session, message)

    def now(self) -> str:
        return sip_date(timezone.now(), self.zone)

    async def _api(self, call: Callable[..., Answer | Refusal], *args: Any) -> Answer | Refusal:
        return await asyncio.to_thread(call, *args)

    # --- 99 / 98 ---------------------------------------------------------------------------------
    async def sc_status(self, session: Session, message: Message) -> Reply:
        account = session.account
        offline_ok = bool(account and account.allow_no_block)
        fixed = [
            "Y",  # online
            "Y",  # checkin ok
            "Y",  # checkout ok
            "Y",  # ACS renewal policy: the kiosk may renew
            "N",  # status update ok
            flag(offline_ok),
            TIMEOUT_PERIOD,
            RETRIES_ALLOWED,
            self.now(),
            PROTOCOL_VERSION,
        ]
        fields: list[tuple[str, object]] = [("AO", account.institution if account else ""), ("BX", SUPPORTED)]
        if account and account.location:
            fields.append(("AN", account.location))
        return Reply("98", fixed, fields)

    # --- 93 / 94 ---------------------------------------------------------------------------------
    async def login(self, session: Session, message: Message) -> Reply:
        login, password = message.get("CN"), message.get("CO")
        account = await self.authenticator.login(login, password) if login and password else None
        session.account = account
        session.note(login=login, outcome="ok" if account else "refused")
        if account is None:
            session.failed_logins += 1
            # Each attempt costs the gateway a password hash: a connection guessing passwords is cut.
            session.closing = session.failed_logins >= MAX_FAILED_LOGINS
        return Reply("94", ["1" if account else "0"])

    # --- 23 / 24 ---------------------------------------------------------------------------------
    async def patron_status(self, session: Session, message: Message) -> Reply:
        language = _language(message)
        card = message.get("AA")
        if session.account is None:
            return self._patron_refusal("24", language, card, NOT_LOGGED_IN, session)
        found = await self._patron(session, card)
        if isinstance(found, Refusal):
            return self._patron_refusal("24", language, card, found.message, session, found)
        fixed = [patron_status_flags(found), language, self.now()]
        return Reply("24", fixed, self._patron_fields(session, card, found))

    def _patron_refusal(
        self, code: str, language: str, card: str, screen: str, session: Session, refusal: Refusal | None = None
    ) -> Reply:
        _refused(session, refusal, "not_logged_in")
        fixed = ["Y" * 4 + " " * 10, language, self.now()]
        if code == "64":
            fixed += [count(0)] * 6
        institution = session.account.institution if session.account else ""
        fields = [("AO", institution), ("AA", card), ("AE", ""), ("BL", "N"), ("AF", screen)]
        return Reply(code, fixed, fields)

    async def _patron(self, session: Session, card: str) -> dict | Refusal:
        if not card:
            return Refusal("user_not_found", 404, "This library card is not recognised.")
        assert session.account is not None
        answer = await self._api(self.api.patron_by_card, session.account.api_key, card, _request_id())
        if isinstance(answer, Refusal):
            return answer
        return answer.data if isinstance(answer.data, dict) else Refusal("unavailable", 0, UNAVAILABLE)

    def _patron_fields(self, session: Session, card: str, found: dict) -> list[tuple[str, object]]:
        assert session.account is not None
        fields: list[tuple[str, object]] = [
            ("AO", session.account.institution),
            ("AA", card),
            # The patron's name, as the User service gives it; never the email (a kiosk's screen is public).
            ("AE", found.get("name") or ""),
            ("BL", "Y"),
            *fee_fields(found),
        ]
        if _reasons(found, "borrow"):
            fields.append(("AF", patron_words(found)))
        return fields

    # --- 63 / 64 ---------------------------------------------------------------------------------
    async def patron_information(self, session: Session, message: Message) -> Reply:
        language = _language(message)
        card = message.get("AA")
        if session.account is None:
            return self._patron_refusal("64", language, card, NOT_LOGGED_IN, session)
        found = await self._patron(session, card)
        if isinstance(found, Refusal):
            return self._patron_refusal("64", language, card, found.message, session, found)
        loans, holds = found.get("loans", []), found.get("holds", [])
        overdue = [loan for loan in loans if loan.get("status") == "OVERDUE"]
        ready = [hold for hold in holds if hold.get("status") == "READY"]
        waiting = [hold for hold in holds if hold.get("status") == "WAITING"]
        fixed = [
            patron_status_flags(found),
            language,
            self.now(),
            count(len(ready)),
            count(len(overdue)),
            count(len(loans)),
            count(0),  # fine items: the Fees service keeps them, lending only its balance
            count(0),  # recall items: no recalls
            count(len(waiting)),
        ]
        fields = self._patron_fields(session, card, found)
        limits = found.get("limits", {})
        if isinstance(limits.get("max_open_loans"), int):
            fields.insert(3, ("CB", count(limits["max_open_loans"])))
        if _is_amount(limits.get("fines_block_limit")):
            fields.append(("CC", limits["fines_block_limit"]))  # fee limit
        fields += _summary_items(message, loans, overdue, ready, waiting)
        return Reply("64", fixed, fields)

    # --- 11 / 12 ---------------------------------------------------------------------------------
    async def checkout(self, session: Session, message: Message) -> Reply:
        card, item = message.get("AA"), message.get("AB")
        account = session.account
        if account is None:
            return self._checkout_refusal(session, card, item, NOT_LOGGED_IN)
        if not card or not item:
            return self._checkout_refusal(session, card, item, "Scan your library card and the item.")
        if message.get("BI") == "Y":
            return await self._cancel_checkout(session, message, card, item)
        body: dict[str, object] = {"item_barcode": item, "patron_barcode": card}
        override = self._no_block_override(session, message)
        if override:
            body["override"] = override
        key = self._idempotency_key(session, message, card, item)
        answer = await self._api(self.api.check_out, account.api_key, body, key, _request_id())
        if isinstance(answer, Refusal):
            if answer.code in {"item_on_loan", "already_borrowed"} and message.fixed.get("sc_renewal_policy") == "Y":
                return await self._renew_at_checkout(session, message, card, item, answer)
            return self._checkout_refusal(session, card, item, answer.message, answer)
        loan = answer.data or {}
        session.note(outcome="ok", no_block=bool(override))
        fields = [
            ("AO", account.institution),
            ("AA", card),
            ("AB", item),
            ("AJ", loan.get("book_title") or ""),
            ("AH", self._due(loan.get("date_due"))),
        ]
        return Reply("12", ["1", "N", "U", "Y", self.now()], fields)

    def _checkout_refusal(
        self, session: Session, card: str, item: str, screen: str, refusal: Refusal | None = None, code: str = "12"
    ) -> Reply:
        _refused(session, refusal)
        institution = session.account.institution if session.account else ""
        fields = [("AO", institution), ("AA", card), ("AB", item), ("AJ", ""), ("AH", ""), ("AF", screen)]
        return Reply(code, ["0", "N", "U", "N", self.now()], fields)

    async def _cancel_checkout(self, session: Session, message: Message, card: str, item: str) -> Reply:
        """`BI` Y: the kiosk takes back a check-out it could not finish (the item could not be
        desensitized): the patron's own loan of the copy is checked in. Anyone else's stays."""
        assert session.account is not None
        found = await self._patron(session, card)
        if isinstance(found, Refusal):
            return self._checkout_refusal(session, card, item, found.message, found)
        if not any(loan.get("item_barcode") == item for loan in found.get("loans", [])):
            refusal = Refusal("loan_not_found", 404, "This item is not on your account.")
            return self._checkout_refusal(session, card, item, refusal.message, refusal)
        key = self._idempotency_key(session, message, card, item, "cancel")
        answer = await self._api(self.api.check_in, session.account.api_key, {"item_barcode": item}, key, _request_id())
        if isinstance(answer, Refusal):
            return self._checkout_refusal(session, card, item, answer.message, answer)
        session.note(outcome="ok", cancelled=True)
        fields = [("AO", session.account.institution), ("AA", card), ("AB", item), ("AJ", ""), ("AH", "")]
        return Reply("12", ["1", "N", "U", "N", self.now()], [*fields, ("AF", "The check-out was cancelled.")])

    async def _renew_at_checkout(
        self, session: Session, message: Message, card: str, item: str, refused: Refusal
    ) -> Reply:
        """A kiosk with renewal policy Y checking out an item the patron already has: a renewal."""
        renewed = await self._renew(session, message, card, item)
        if isinstance(renewed, Refusal):
            # Not the patron's own copy (another patron's, or another copy of the title): the first no.
            shown = refused if renewed.code == "loan_not_found" else renewed
            return self._checkout_refusal(session, card, item, shown.message, shown)
        session.note(outcome="renewed")
        return Reply("12", ["1", "Y", "U", "Y", self.now()], self._renewed_fields(session, card, item, renewed))

    # --- 09 / 10 ---------------------------------------------------------------------------------
    async def checkin(self, session: Session, message: Message) -> Reply:
        item = message.get("AB")
        account = session.account
        if account is None or not item:
            screen = NOT_LOGGED_IN if account is None else "Scan the item."
            return self._checkin_refusal(session, item, screen)
        body: dict[str, object] = {"item_barcode": item}
        returned_at = self._returned_at(message)
        if returned_at is not None:
            body["returned_at"] = returned_at.isoformat()
        override = self._no_block_override(session, message)
        if override:
            body["override"] = override
        key = self._idempotency_key(session, message, item)
        answer = await self._api(self.api.check_in, account.api_key, body, key, _request_id())
        if isinstance(answer, Refusal):
            return self._checkin_refusal(session, item, answer.message, answer)
        data = answer.data or {}
        loan, route = data.get("loan") or {}, data.get("route") or {}
        to_hold_shelf = route.get("to") == "hold_shelf"
        session.note(outcome="ok", route=route.get("to"), no_block=bool(override))
        fields: list[tuple[str, object]] = [
            ("AO", account.institution),
            ("AB", item),
            ("AQ", account.location or account.institution),
            ("AJ", loan.get("book_title") or ""),
        ]
        if to_hold_shelf:
            # The hold's number, not its patron: the hold shelf slip is staff's to print.
            fields += [("CV", "02"), ("CY", f"hold {route.get('hold_id')}"), ("AF", "Put this item on the hold shelf.")]
        elif not loan:
            fields.append(("AF", "This item was not checked out."))
        return Reply("10", ["1", flag(not to_hold_shelf), "U", flag(to_hold_shelf), self.now()], fields)

    def _returned_at(self, message: Message) -> datetime | None:
        """The kiosk's return date, when it is not simply now: a date within CLOCK_SKEW of the
        gateway's clock is a return made now (a kiosk's clock a little behind would otherwise date
        the return before the loan it closes, or a little ahead, in the future)."""
        returned_at = codec.parse_sip_date(message.fixed.get("return_date", ""), self.zone)
        if returned_at is None or abs(timezone.now() - returned_at) <= CLOCK_SKEW:
            return None
        return returned_at

    def _checkin_refusal(self, session: Session, item: str, screen: str, refusal: Refusal | None = None) -> Reply:
        _refused(session, refusal)
        institution = session.account.institution if session.account else ""
        fields = [("AO", institution), ("AB", item), ("AQ", ""), ("CV", "99"), ("AF", screen)]
        return Reply("10", ["0", "N", "U", "Y", self.now()], fields)

    # --- 17 / 18 ---------------------------------------------------------------------------------
    async def item_information(self, session: Session, message: Message) -> Reply:
        item = message.get("AB")
        account = session.account
        if account is None or not item:
            return self._item_unknown(session, item, NOT_LOGGED_IN if account is None else "Scan the item.")
        answer = await self._api(self.api.item, account.api_key, item, _request_id())
        if isinstance(answer, Refusal):
            return self._item_unknown(session, item, answer.message, answer)
        data = answer.data or {}
        status = CIRCULATION_STATUS.get(str(data.get("status")), "01")
        title = await self._title_of_loan(account.api_key, data.get("loan_id"))
        fields: list[tuple[str, object]] = [("AB", data.get("item_barcode") or item), ("AJ", title)]
        if data.get("loan_id") is not None:
            fields.append(("AH", self._due(data.get("date_due"))))
        fields.append(("CF", count(int(data.get("holds_waiting") or 0))))
        session.note(outcome="ok")
        return Reply("18", [status, "00", "01", self.now()], fields)

    async def _title_of_loan(self, api_key: str, loan_id: object) -> str:
        """The title the copy's open loan records (only the title: the loan's patron is not shown);
        empty for a copy not on loan (the API's item status names no title)."""
        if not isinstance(loan_id, int):
            return ""
        answer = await self._api(self.api.loan, api_key, loan_id, _request_id())
        if isinstance(answer, Refusal) or not isinstance(answer.data, dict):
            return ""
        return str(answer.data.get("book_title") or "")

    def _item_unknown(self, session: Session, item: str, screen: str, refusal: Refusal | None = None) -> Reply:
        _refused(session, refusal)
        return Reply("18", ["01", "00", "01", self.now()], [("AB", item), ("AJ", ""), ("AF", screen)])

    # --- 29 / 30 ---------------------------------------------------------------------------------
    async def renew(self, session: Session, message: Message) -> Reply:
        card, item = message.get("AA"), message.get("AB")
        if session.account is None:
            return self._checkout_refusal(session, card, item, NOT_LOGGED_IN, code="30")
        renewed = await self._renew(session, message, card, item)
        if isinstance(renewed, Refusal):
            return self._checkout_refusal(session, card, item, renewed.message, renewed, code="30")
        session.note(outcome="ok")
        return Reply("30", ["1", "Y", "U", "Y", self.now()], self._renewed_fields(session, card, item, renewed))

    def _renewed_fields(self, session: Session, card: str, item: str, renewed: dict) -> list[tuple[str, object]]:
        """A renewal's answer (`12` at check-out, `30`): the copy, its title and its new due date."""
        assert session.account is not None
        return [
            ("AO", session.account.institution),
            ("AA", card),
            ("AB", item),
            ("AJ", renewed.get("book_title") or ""),
            ("AH", self._due(renewed.get("date_due"))),
        ]

    async def _renew(self, session: Session, message: Message, card: str, item: str) -> dict | Refusal:
        """Renews the patron's loan of this copy: found among the patron's own open loans, so
        nobody renews another patron's loan by scanning its copy."""
        assert session.account is not None
        if not card or not item:
            return Refusal("loan_not_found", 404, "Scan your library card and the item.")
        found = await self._patron(session, card)
        if isinstance(found, Refusal):
            return found
        loan = next((loan for loan in found.get("loans", []) if loan.get("item_barcode") == item), None)
        if loan is None:
            return Refusal("loan_not_found", 404, "This item is not on your account.")
        body = {"user_email": found["user_email"], "book_id": loan["book_id"]}
        # "renew": a `11` renewing the patron's own copy must not reuse its check-out's key.
        key = self._idempotency_key(session, message, card, item, "renew")
        answer = await self._api(self.api.renew, session.account.api_key, body, key, _request_id())
        if isinstance(answer, Refusal):
            return answer
        return answer.data if isinstance(answer.data, dict) else {}

    # --- 35 / 36 ---------------------------------------------------------------------------------
    async def end_session(self, session: Session, message: Message) -> Reply:
        institution = session.account.institution if session.account else ""
        session.note(outcome="ok")
        fields = [("AO", institution), ("AA", message.get("AA")), ("AF", "Thank you. Goodbye.")]
        return Reply("36", ["Y", self.now()], fields)

    # --- 01, 15, 19, 25, 37, 65: refused ---------------------------------------------------------
    async def not_supported(self, session: Session, message: Message) -> Reply:
        session.note(outcome="refused", refusal="not_supported")
        institution = session.account.institution if session.account else ""
        card, screen = message.get("AA"), "This cannot be done at this kiosk. Please see the library staff."
        today = self.now()
        refusals = {
            "01": Reply(
                "24", ["Y" * 4 + " " * 10, UNKNOWN_LANGUAGE, today], [("AO", institution), ("AA", card), ("AE", "")]
            ),
            "15": Reply("16", ["0", "N", today], [("AO", institution), ("AA", card)]),
            "19": Reply("20", ["0", today], [("AB", message.get("AB"))]),
            "25": Reply(
                "26", ["Y" * 4 + " " * 10, UNKNOWN_LANGUAGE, today], [("AO", institution), ("AA", card), ("AE", "")]
            ),
            "37": Reply("38", ["N", today], [("AO", institution), ("AA", card)]),
            "65": Reply("66", ["0", count(0), count(0), today], [("AO", institution)]),
        }
        reply = refusals[message.code]
        reply.fields.append(("AF", screen))
        return reply

    # --- Shared ----------------------------------------------------------------------------------
    def _due(self, iso: str | None) -> str:
        if not iso:
            return ""
        try:
            moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        except ValueError:
            return ""
        return sip_date(moment, self.zone)

    def _no_block_override(self, session: Session, message: Message) -> dict | None:
        """The override of a no-block transaction, for an account allowed them (else the transaction
        runs under every rule, as any other)."""
        if message.fixed.get("no_block") != "Y" or not (session.account and session.account.allow_no_block):
            return None
        when = codec.parse_sip_date(message.fixed.get("transaction_date", ""), self.zone)
        reason = NO_BLOCK_REASON if when is None else f"{NO_BLOCK_REASON}, kiosk transaction date {when.isoformat()}"
        return {"reason": reason}

    def _idempotency_key(self, session: Session, message: Message, *parts: str) -> str | None:
        """The same transaction (account, code, patron and item, the kiosk's transaction date) gives
        the same key, whenever and over whichever connection it is resent. Without a transaction date
        two real transactions could not be told apart: no key then."""
        when = message.fixed.get("transaction_date", "")
        if session.account is None or codec.parse_sip_date(when, self.zone) is None:
            return None
        material = "\0".join([session.account.login, message.code, *parts, when, message.fixed.get("no_block", "")])
        return "sip-" + hashlib.sha256(material.encode()).hexdigest()


def patron_status_flags(found: dict) -> str:
    """The 14 flags of `24`/`64`, `Y` meaning denied: charge, renewal, recall, hold privileges denied,
    card reported lost, too many items charged, too many overdue, too many renewals, too many claims
    of items returned, too many lost, excessive fines, excessive fees, recall overdue, too many billed."""

    def denied(action: str) -> bool:
        return not found.get(action, {}).get("allowed", True)

    codes = {reason.get("code") for action in ("borrow", "renew", "reserve") for reason in _reasons(found, action)}
    flags = [
        denied("borrow"),
        denied("renew"),
        False,  # recalls: the service has none
        denied("reserve"),
        False,  # a card reported lost is the User service's to refuse (user_inactive)
        "loan_limit_reached" in codes,
        bool(codes & {"too_many_overdue_loans", "loan_overdue_too_long", "patron_has_overdue_loans"}),
        False,
        False,
        "lost_items" in codes,
        "fines_over_limit" in codes,  # the Fees service keeps fines and fees as one balance
        "fines_over_limit" in codes,
        False,
        False,
    ]
    return "".join("Y" if value else " " for value in flags)


def fee_fields(found: dict) -> list[tuple[str, object]]:
    """BH (currency) and BV (fee amount): the balance the Fees service reported through the status
    (absent when it is `unknown` or not asked: no limit configured)."""
    balance, currency = found.get("balance"), found.get("balance_currency")
    if not _is_amount(balance):
        return []
    fields: list[tuple[str, object]] = []
    if isinstance(currency, str) and len(currency) == 3:
        fields.append(("BH", currency))
    return [*fields, ("BV", balance)]


def _is_amount(value: object) -> bool:
    """A decimal string as the API writes amounts ("12.50"), short enough for a kiosk's field."""
    return isinstance(value, str) and 0 < len(value) <= 16 and value.replace(".", "", 1).isdigit()


def _reasons(found: dict, action: str) -> list[dict]:
    verdict = found.get(action)
    return verdict.get("reasons", []) if isinstance(verdict, dict) else []


def patron_words(found: dict) -> str:
    """Why the patron may not borrow, in words for them (the first reason)."""
    from sip_gateway.api_client import PATRON_MESSAGES

    codes = [reason.get("code") for reason in _reasons(found, "borrow")]
    blocking = {"manual_block", "too_many_overdue_loans", "loan_overdue_too_long", "lost_items", "fines_over_limit"}
    if any(code in blocking for code in codes):
        return PATRON_MESSAGES["patron_blocked"]
    for code in codes:
        if code in PATRON_MESSAGES:
            return PATRON_MESSAGES[code]
    return "You may not borrow now. Please see the library staff."


def _language(message: Message) -> str:
    language = message.fixed.get("language", "")
    return language if len(language) == 3 and language.isdigit() else UNKNOWN_LANGUAGE


def _summary_items(
    message: Message, loans: list[dict], overdue: list[dict], ready: list[dict], waiting: list[dict]
) -> list[tuple[str, object]]:
    """The item list `63`'s summary asks for (the first `Y` of its 10 positions: hold items, overdue,
    charged, fine, recall, unavailable holds), from BP to BQ (1-based, inclusive)."""
    summary = message.fixed.get("summary", "")
    lists = [
        ("AS", [hold.get("item_barcode") or hold.get("book_title") or "" for hold in ready]),
        ("AT", [loan.get("item_barcode") or loan.get("book_title") or "" for loan in overdue]),
        ("AU", [loan.get("item_barcode") or loan.get("book_title") or "" for loan in loans]),
        ("AV", []),
        ("BU", []),
        ("CD", [hold.get("book_title") or "" for hold in waiting]),
    ]
    position = summary.find("Y")
    if not 0 <= position < len(lists):
        return []
    field_id, items = lists[position]
    start = _positive(message.get("BP"), 1)
    end = _positive(message.get("BQ"), len(items))
    return [(field_id, value) for value in items[start - 1 : end]]


def _positive(text: str, default: int) -> int:
    text = text.strip()
    return int(text) if text.isdigit() and int(text) > 0 else default


def _refused(session: Session, refusal: Refusal | None, reason: str = "refused") -> None:
    """Notes a refusal for the log line: `unavailable` (an error) when the API could not answer."""
    if refusal is not None and refusal.unavailable:
        session.note(outcome="unavailable", refusal=refusal.code)
    else:
        session.note(outcome="refused", refusal=refusal.code if refusal else reason)


def _request_id() -> str:
    """The current message's id (sip_gateway.server sets it): the API's log lines carry it too."""
    return current_request_id()
