"""The desk in the admin: check out (scan the patron's card, then items) and check in (scan items).

A barcode scanner is a keyboard: it types the digits, then Enter. So each page is one autofocused text
input in a POST form; after each scan the page redirects to itself (a reload never scans twice), with
the input focused again and every line so far shown, newest first. Both pages call the API's services
(`check_out`, `check_in`) as the staff user, whom each loan's history records as it records the loan
actions of the admin (`staff_caller`).

Between scans the staff user's session keeps the patron being served — the email the User service
answered for the card; the card itself is never kept — and the lines shown (the last `KEPT_LINES`).
Staff who may change loans use the desk (the permission the admin's loan actions need).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_http_methods

from lending import calendar, history
from lending.clients import users
from lending.errors import LendingError
from lending.models import Hold, Loan
from lending.services.checkin import check_in
from lending.services.checkout import check_out

DESK_PERMISSION = "lending.change_loan"
CHECKOUT_SESSION, CHECKIN_SESSION = "desk.checkout", "desk.checkin"
KEPT_LINES = 50
ITEM_MAX_LENGTH = 64  # as long as a loan's item_barcode may be

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


def _library_date(moment) -> str:
    """Due dates and pickup deadlines end a day in the library's time zone: that day is what staff say."""
    return calendar.library_day(moment).isoformat()


def _refusal(error: LendingError) -> str:
    return f"{error.message} ({error.code})"


def _record_scan(request: HttpRequest, session_key: str, desk: dict, scan: Callable[[str], Line]) -> HttpResponse:
    """One item scanned: its line first on the page, kept in the session, then the page again (a
    reload shows it, it does not scan twice). A scan that is no barcode is a refused line too."""
    item = ItemForm(request.POST)
    if item.is_valid():
        line = scan(item.cleaned_data["item"])
    else:
        typed = str(item.data.get("item", ""))[:ITEM_MAX_LENGTH]
        line = {
            "barcode": typed,
            "ok": False,
            "text": " ".join(str(error) for error in item.errors["item"]),
            "route": "",
        }
    desk["lines"] = [line, *desk["lines"]][:KEPT_LINES]
    request.session[session_key] = desk
    return HttpResponseRedirect(request.path)


# --- Check-out -----------------------------------------------------------------------------------


def _patron_for(card_or_email: str) -> users.Patron:
    """The card's patron (a patron without their card gives their email instead)."""
    if "@" in card_or_email:
        return users.active_patron(card_or_email.lower())  # loans name patrons in lower case
    return users.active_patron_by_card(card_or_email)


def _checkout_line(request: HttpRequest, email: str, barcode: str) -> Line:
    try:
        with history.acting_as(staff_caller(request)):
            loan = check_out(item_barcode=barcode, user_email=email)
    except LendingError as refusal:
        return {"barcode": barcode, "ok": False, "text": _refusal(refusal)}
    title = loan.book_title or f"book {loan.book_id}"
    return {"barcode": barcode, "ok": True, "text": f"Loan {loan.pk}: {title}, due {_library_date(loan.date_due)}"}


@require_http_methods(["GET", "POST"])
def checkout_view(request: HttpRequest) -> HttpResponse:
    desk = request.session.get(CHECKOUT_SESSION) or {"patron": None, "lines": []}
    card_form = CardForm()
    if request.method == "POST":
        if "new_patron" in request.POST:
            request.session.pop(CHECKOUT_SESSION, None)
            return HttpResponseRedirect(request.path)
        if desk["patron"] is None:
            card_form = CardForm(request.POST)
            if card_form.is_valid():
                try:
                    patron = _patron_for(card_form.cleaned_data["card"])
                except LendingError as refusal:
                    card_form.add_error("card", _refusal(refusal))
                else:
                    request.session[CHECKOUT_SESSION] = {
                        "patron": patron.email,
                        "category": patron.category,
                        "lines": [],
                    }
                    return HttpResponseRedirect(request.path)
        else:
            return _record_scan(
                request, CHECKOUT_SESSION, desk, functools.partial(_checkout_line, request, desk["patron"])
            )
    context = {**admin.site.each_context(request), "title": "Desk: check out", "desk": desk, "card_form": card_form}
    return TemplateResponse(request, "admin/lending/desk/checkout.html", context)


# --- Check-in ------------------------------------------------------------------------------------


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
        with history.acting_as(staff_caller(request)):
            done = check_in(item_barcode=barcode)
    except LendingError as refusal:
        return {"barcode": barcode, "ok": False, "text": _refusal(refusal), "route": ""}
    return {"barcode": barcode, "ok": True, "text": _returned_text(done.loan), "route": _route_text(done.route)}


@require_http_methods(["GET", "POST"])
def checkin_view(request: HttpRequest) -> HttpResponse:
    desk = request.session.get(CHECKIN_SESSION) or {"lines": []}
    if request.method == "POST":
        if "clear" in request.POST:
            request.session.pop(CHECKIN_SESSION, None)
            return HttpResponseRedirect(request.path)
        return _record_scan(request, CHECKIN_SESSION, desk, functools.partial(_checkin_line, request))
    context = {**admin.site.each_context(request), "title": "Desk: check in", "desk": desk}
    return TemplateResponse(request, "admin/lending/desk/checkin.html", context)


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
