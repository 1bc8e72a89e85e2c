"""The desk in the admin: check out (scan the patron's card, then items) and check in (scan items).

A barcode scanner is a keyboard: it types the digits, then Enter. So each page is one autofocused text
input in a POST form; each scan answers the page again with the input focused and every line so far,
newest first. Both pages call the API's services (`check_out`, `check_in`) as the staff user, whom
each loan's history records as it records the admin's loan actions (`staff_caller`).

The server keeps nothing of the patron between scans, not even in the staff user's session (which
holds staff data only: README's Privacy table). The page carries the patron being served — the email
the User service answered for the card; the card itself is never kept — and the lines shown, signed
(the hidden field `desk`), and sends them back with each scan. A reload sends the last scan again:
the services refuse a second check-out of a copy, and a second check-in records nothing.

Staff who may change loans use the desk (the permission the admin's loan actions need).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_http_methods

from lending import calendar
from lending.clients import users
from lending.errors import LendingError
from lending.events import history
from lending.models import Hold, Loan
from lending.services.checkin import check_in
from lending.services.checkout import check_out
from lending.write_context import WriteContext

DESK_PERMISSION = "lending.circulate_at_desk"  # the desk group holds it (migration 0016)
KEPT_LINES = 20  # the lines a page carries back: a scan's form stays far below MAX_REQUEST_BODY_BYTES
ITEM_MAX_LENGTH = 64  # as long as a loan's item_barcode may be
# A page carries its state signed for a desk shift; an older one asks for the card again.
DESK_SIGNING_SALT = "lending.admin.desk"
DESK_MAX_AGE = timedelta(hours=8)

# What a scanner can type: printable ASCII, no space (a card, an item, or a patron's email typed in).
scanned = RegexValidator(r"^[!-~]+$", "A barcode is letters, digits and signs, without spaces.")


def staff_caller(request: HttpRequest) -> history.Caller:
    """The staff user, as the history records who made a change from the admin."""
    return history.Caller(f"staff:{request.user.get_username()}"[:64])


class CardForm(forms.Form):
    card = forms.CharField(
        label="Patron's card",
        max_length=254,
        validators=[scanned],
        error_messages={"required": "Scan the patron's card first."},
    )


class ItemForm(forms.Form):
    item = forms.CharField(label="Item", max_length=ITEM_MAX_LENGTH, validators=[scanned])


# One line of a desk page: the item scanned, what happened ("ok": done or refused), and on the
# check-in page where the item goes.
Line = dict[str, Any]
# What a page carries from scan to scan: its lines, and on the check-out page the patron served
# ("patron": their email, "category").
Desk = dict[str, Any]


def _library_date(moment) -> str:
    """Due dates and pickup deadlines end a day in the library's time zone: that day is what staff say."""
    return calendar.library_day(moment).isoformat()


def _refusal(error: LendingError) -> str:
    return f"{error.message} ({error.code})"


def _carried(request: HttpRequest) -> Desk | None:
    """The state the page sent back with the scan; None when it sent none, or one not signed here
    or older than DESK_MAX_AGE."""
    try:
        return signing.loads(request.POST.get("desk", ""), salt=DESK_SIGNING_SALT, max_age=DESK_MAX_AGE)
    except signing.BadSignature:
        return None


def _page(request: HttpRequest, template: str, title: str, desk: Desk | None, **extra: Any) -> HttpResponse:
    token = signing.dumps(desk, salt=DESK_SIGNING_SALT, compress=True) if desk is not None else ""
    context = {**admin.site.each_context(request), "title": title, "desk": desk, "desk_token": token, **extra}
    return TemplateResponse(request, template, context)


def _with_scan(request: HttpRequest, desk: Desk, scan: Callable[[str], Line]) -> Desk:
    """The page's state with one more item scanned, its line first (a scan that is no barcode is a
    refused line too)."""
    item = ItemForm(request.POST)
    if item.is_valid():
        line = scan(item.cleaned_data["item"])
    else:
        typed = str(item.data.get("item", ""))[:ITEM_MAX_LENGTH]
        errors = " ".join(str(error) for error in item.errors["item"])
        line = {"barcode": typed, "ok": False, "text": errors, "route": ""}
    return {**desk, "lines": [line, *desk.get("lines", [])][:KEPT_LINES]}


# --- Check-out -----------------------------------------------------------------------------------

CHECKOUT_TEMPLATE, CHECKOUT_TITLE = "admin/lending/desk/checkout.html", "Desk: check out"


def _patron_for(card_or_email: str) -> users.Patron:
    """The card's patron (a patron without their card gives their email instead)."""
    if "@" in card_or_email:
        return users.active_patron(card_or_email.lower())  # loans name patrons in lower case
    return users.active_patron_by_card(card_or_email)


def _checkout_line(request: HttpRequest, email: str, barcode: str) -> Line:
    try:
        loan = check_out(item_barcode=barcode, user_email=email, context=WriteContext(caller=staff_caller(request)))
    except LendingError as refusal:
        return {"barcode": barcode, "ok": False, "text": _refusal(refusal)}
    title = loan.book_title or f"book {loan.book_id}"
    return {"barcode": barcode, "ok": True, "text": f"Loan {loan.pk}: {title}, due {_library_date(loan.date_due)}"}


def _serve_card(request: HttpRequest) -> HttpResponse:
    """The card scanned: its patron served from now on, or the refusal shown over the card's input."""
    card_form = CardForm(request.POST)
    if card_form.is_valid():
        try:
            patron = _patron_for(card_form.cleaned_data["card"])
        except LendingError as refusal:
            card_form.add_error("card", _refusal(refusal))
        else:
            desk: Desk = {"patron": patron.email, "category": patron.category, "lines": []}
            return _page(request, CHECKOUT_TEMPLATE, CHECKOUT_TITLE, desk)
    return _page(request, CHECKOUT_TEMPLATE, CHECKOUT_TITLE, None, card_form=card_form)


@require_http_methods(["GET", "POST"])
def checkout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET" or "new_patron" in request.POST:
        return _page(request, CHECKOUT_TEMPLATE, CHECKOUT_TITLE, None, card_form=CardForm())
    if "card" in request.POST:
        return _serve_card(request)
    desk = _carried(request)
    if desk is None:  # an item, but no patron (the page is too old): the card again
        return _page(request, CHECKOUT_TEMPLATE, CHECKOUT_TITLE, None, card_form=CardForm(data={}))
    desk = _with_scan(request, desk, functools.partial(_checkout_line, request, desk["patron"]))
    return _page(request, CHECKOUT_TEMPLATE, CHECKOUT_TITLE, desk)


# --- Check-in ------------------------------------------------------------------------------------

CHECKIN_TEMPLATE, CHECKIN_TITLE = "admin/lending/desk/checkin.html", "Desk: check in"


def _route_text(route: dict) -> str:
    if route.get("to") != "hold_shelf":
        return "shelf"
    hold = Hold.objects.get(pk=route["hold_id"])
    pickup = f", pickup by {_library_date(hold.pickup_deadline)}" if hold.pickup_deadline else ""
    return f"hold shelf for {hold.user_email} (hold {hold.pk}{pickup})"


def _returned_text(loan: Loan | None) -> str:
    if loan is None:
        return "Not on loan"
    return f"Returned loan {loan.pk} of {loan.user_email}"


def _checkin_line(request: HttpRequest, barcode: str) -> Line:
    try:
        done = check_in(item_barcode=barcode, context=WriteContext(caller=staff_caller(request)))
    except LendingError as refusal:
        return {"barcode": barcode, "ok": False, "text": _refusal(refusal), "route": ""}
    return {"barcode": barcode, "ok": True, "text": _returned_text(done.loan), "route": _route_text(done.route)}


@require_http_methods(["GET", "POST"])
def checkin_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET" or "clear" in request.POST:
        return _page(request, CHECKIN_TEMPLATE, CHECKIN_TITLE, None)
    desk = _with_scan(request, _carried(request) or {}, functools.partial(_checkin_line, request))
    return _page(request, CHECKIN_TEMPLATE, CHECKIN_TITLE, desk)


# --- Routes --------------------------------------------------------------------------------------


def _desk_only(view):
    """The admin's login (staff, else its login page), then the desk's permission (else 403)."""

    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm(DESK_PERMISSION):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return admin.site.admin_view(guarded)


def urls() -> list:
    """The desk's pages, under the loans' admin URL (`admin:lending_desk_checkout`, `..._checkin`)."""
    return [
        path("desk/check-out/", _desk_only(checkout_view), name="lending_desk_checkout"),
        path("desk/check-in/", _desk_only(checkin_view), name="lending_desk_checkin"),
    ]
