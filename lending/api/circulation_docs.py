"""The desk's endpoints' OpenAPI descriptions (drf-spectacular), in the same kind of table as
`lending.api.docs`: the calendar, patron blocks and status, due-date changes
(`lending.api.circulation`) and lost items (`lending.api.lost`).

`lending.api.docs.document()` applies this table together with its own; the view modules hold only
views and serializers (a serializer field's type stays on the field, with `@extend_schema_field`).
"""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from lending import refusals
from lending.api import circulation, items, lost
from lending.api import schema as api_docs
from lending.api.serializers import LoanSerializer

EMAIL_PARAMETER = OpenApiParameter("email", OpenApiTypes.EMAIL, OpenApiParameter.PATH, description="The patron.")
LOAN_ID = OpenApiParameter("loan_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The loan's id.")

# What a staff write with a JSON body may be refused with, before its own codes.
STAFF_WRITE_ERRORS = (
    "invalid_request",
    "malformed_json",
    "payload_too_large",
    "unsupported_media_type",
    *api_docs.AUTH_ERRORS,
    "insufficient_scope",
)

# --- Examples -------------------------------------------------------------------------------------
CALENDAR_EXAMPLE = OpenApiExample(
    "Closed on Sundays and Christmas Day", value={"closed_weekdays": ["sunday"], "closed_dates": ["2026-12-25"]}
)

BLOCK_REQUEST_EXAMPLE = OpenApiExample(
    "Block borrowing for a week",
    value={
        "reason": "Damaged two books; see the desk.",
        "blocks": ["borrow", "reserve"],
        "expires_at": "2026-12-08T17:00:00Z",
    },
    request_only=True,
)
BLOCK_EXAMPLE = OpenApiExample(
    "A block",
    value={
        "id": 4,
        "user_email": "alice@example.com",
        "reason": "Damaged two books; see the desk.",
        "blocks": ["borrow", "reserve"],
        "created_at": "2026-12-01T09:00:00Z",
        "expires_at": "2026-12-08T17:00:00Z",
        "created_by": "circulation-desk",
    },
    response_only=True,
)


def reason_example(refusal: refusals.Refusal, **values: object) -> dict:
    """A status reason's code and message as the screen shows them, its template filled with `values`."""
    assert refusal.message is not None
    return {"code": refusal.code, "message": refusal.message.format(**values)}


STATUS_EXAMPLE = OpenApiExample(
    "Blocked from borrowing by staff and by an overdue loan",
    value={
        "user_email": "alice@example.com",
        "borrow": {
            "allowed": False,
            "reasons": [
                {
                    **reason_example(refusals.MANUAL_BLOCK, reason="Damaged two books; see the desk."),
                    "actions": ["borrow"],
                    "block_id": 4,
                    "reason": "Damaged two books; see the desk.",
                },
                {**reason_example(refusals.PATRON_HAS_OVERDUE_LOANS, overdue_loans=1), "actions": ["borrow"]},
            ],
        },
        "renew": {"allowed": True, "reasons": []},
        "reserve": {"allowed": True, "reasons": []},
        "counts": {"open_loans": 2, "overdue_loans": 1, "most_days_overdue": 3, "lost_loans": 0, "blocks_in_force": 1},
        "limits": {
            "max_overdue_loans": 3,
            "max_overdue_days": 30,
            "max_open_loans": 10,
            "block_on_overdue": True,
            "fines_block_limit": "10.00",
        },
        "balance": "2.50",
        "balance_currency": "EUR",
    },
    response_only=True,
)

DUE_DATE_CHANGE_EXAMPLES = [
    OpenApiExample(
        "Extend to Christmas Eve",
        value={"date_due": "2026-12-24", "reason": "Patron in hospital."},
        request_only=True,
    ),
    OpenApiExample(
        "The loan, due on Christmas Eve",
        value={
            "id": 7,
            "user_email": "alice@example.com",
            "book_id": 123,
            "date_borrowed": "2026-11-01T10:30:00Z",
            "date_due": "2026-12-24T23:59:59.999999Z",
            "date_returned": None,
            "status": "ACTIVE",
        },
        response_only=True,
    ),
]


def lost_loan_example(status: str, date_returned: str | None = None) -> OpenApiExample:
    """The loan a lost-item change answers with, in `status`."""
    return OpenApiExample(
        f"The loan, {status}",
        value={
            "id": 7,
            "user_email": "alice@example.com",
            "book_id": 123,
            "date_borrowed": "2026-11-01T10:30:00Z",
            "date_due": "2026-11-15T23:59:59.999999Z",
            "date_returned": date_returned,
            "status": status,
        },
        response_only=True,
    )


def lost_item_change(
    operation_id: str,
    summary: str,
    description: str,
    request: type[serializers.Serializer],
    examples: list[OpenApiExample],
) -> Callable:
    """A `lending.api.lost` write: what they share (the loan in the path, the changed loan answered,
    the same refusals, scope `override`) around its own name, words, body and examples."""
    return extend_schema(
        operation_id=operation_id,
        tags=["circulation"],
        summary=summary,
        description=f"{description} Scope `override`.",
        request=request,
        parameters=[LOAN_ID, *api_docs.COMMON_PARAMETERS],
        responses={
            200: OpenApiResponse(LoanSerializer, description="The loan, changed."),
            **api_docs.error_responses(*STAFF_WRITE_ERRORS, "loan_not_found", "loan_not_open", "loan_status_conflict"),
        },
        examples=examples,
    )


# --- Circulation by copy -----------------------------------------------------------------------------
class CheckOutRequestSchema(OpenApiSerializerExtension):
    """The check-out's body as its serializer validates it: the item, and the patron's card or their
    email, exactly one of the two."""

    target_class = items.CheckOutRequestSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["oneOf"] = [{"required": ["patron_barcode"]}, {"required": ["user_email"]}]
        return schema


BARCODE_PARAMETER = OpenApiParameter(
    "barcode", items.BARCODE_SCHEMA, OpenApiParameter.PATH, description="The copy's barcode (e.g. `3900000101`)."
)
_ITEM_LOAN = {
    "id": 7,
    "user_email": "alice@example.com",
    "book_id": 1,
    "date_borrowed": "2026-12-01T10:30:00Z",
    "date_due": "2027-01-30T23:59:59.999999Z",
    "date_returned": None,
    "status": "ACTIVE",
    "book_title": "Les Misérables",
    "renewals": 0,
    "item_barcode": "3900000101",
}
CHECK_OUT_EXAMPLES = [
    OpenApiExample(
        "Scan the card, then the item",
        value={"item_barcode": "3900000101", "patron_barcode": "2100000001"},
        request_only=True,
    ),
    OpenApiExample(
        "The patron by email",
        value={"item_barcode": "3900000101", "user_email": "alice@example.com"},
        request_only=True,
    ),
    OpenApiExample("The loan of the copy", value=_ITEM_LOAN, response_only=True, status_codes=["201"]),
]
CHECK_IN_EXAMPLES = [
    OpenApiExample("Scan the item", value={"item_barcode": "3900000101"}, request_only=True),
    OpenApiExample(
        "Returned; the copy goes to the hold shelf",
        value={
            "loan": {**_ITEM_LOAN, "date_returned": "2026-12-06T09:12:00Z", "status": "RETURNED"},
            "route": {"to": "hold_shelf", "hold_id": 12},
        },
        response_only=True,
        status_codes=["200"],
    ),
    OpenApiExample(
        "Not on loan (a second scan)",
        value={"loan": None, "route": {"to": "shelf"}},
        response_only=True,
        status_codes=["200"],
    ),
]
ITEM_STATUS_EXAMPLE = OpenApiExample(
    "On loan, one patron waiting",
    value={
        "item_barcode": "3900000101",
        "book_id": 1,
        "status": "checked_out",
        "loan_id": 7,
        "date_due": "2027-01-30T23:59:59.999999Z",
        "holds_waiting": 1,
    },
    response_only=True,
)


# --- The table ------------------------------------------------------------------------------------
ENDPOINTS: dict[type[APIView], dict[str, Callable]] = {
    items.CheckOutApi: dict(
        post=extend_schema(
            operation_id="checkOut",
            tags=["circulation"],
            summary="Check out a copy by its barcode",
            description="The desk or a kiosk scans the patron's card (`patron_barcode`, resolved at the User service "
            "on each scan, never stored) or names the patron (`user_email`), then the item: 201 with the loan, "
            "which names the copy (`item_barcode`). A lend like `POST /lendBook/`, with every one of its refusals "
            "and codes (the loan takes one of the title's copies: `no_copy_available` when the count has none "
            "free), plus: 404 `item_not_found` (the Book service knows no such barcode), 409 `item_not_loanable`, "
            "409 `item_on_loan` (out to another patron, never named; to this patron: `already_borrowed`), 409 "
            "`item_on_hold_shelf` (trapped for another patron's READY hold, until it is picked up or expires). The "
            "patron the copy is trapped for checks it out and fulfils their hold. `Idempotency-Key` and "
            "`override: {reason}` (scope `override`) as for `lendBook`. Scope `circulation`.",
            request=items.CheckOutRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                201: OpenApiResponse(items.LoanItemSerializer, description="The new loan of the copy."),
                **api_docs.error_responses(
                    *api_docs.WRITE_ERRORS,
                    "user_inactive",
                    "user_not_found",
                    "item_not_found",
                    "book_not_found",
                    refusals.PATRON_BLOCKED.code,
                    "no_copy_available",
                    "already_borrowed",
                    "item_on_loan",
                    "item_not_loanable",
                    "item_on_hold_shelf",
                    "copies_on_hold",
                    refusals.PATRON_HAS_OVERDUE_LOANS.code,
                    refusals.LOAN_LIMIT.code,
                    "peer_unavailable",
                ),
            },
            examples=CHECK_OUT_EXAMPLES,
        )
    ),
    items.CheckInApi: dict(
        post=extend_schema(
            operation_id="checkIn",
            tags=["circulation"],
            summary="Check in a copy by its barcode",
            description="The desk, a book drop or a sorting machine scans the item alone: the copy's open loan is "
            "returned as `POST /returnBook/` returns it (a lost or claimed-returned loan is resolved as found; "
            "`returned_at` back-dates it with the same rules and scopes), without asking any peer. A copy not on "
            "loan answers 200 with `loan: null` (a second scan records nothing). `route` says where the copy goes: "
            "`shelf`, or `hold_shelf` with the READY hold it is now kept for: the first patron waiting when it "
            "came back, or a READY hold a copy was kept for without naming one; only that patron may check it out. "
            "A copy not on loan is looked up at the Book service (404 `item_not_found`) unless it already waits on "
            "the hold shelf. Scope `circulation`.",
            request=items.CheckInRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                200: OpenApiResponse(
                    items.CheckInSerializer, description="The loan returned (or null), and the route."
                ),
                **api_docs.error_responses(*api_docs.WRITE_ERRORS, "item_not_found", "date_out_of_range"),
            },
            examples=CHECK_IN_EXAMPLES,
        )
    ),
    items.ItemCirculationApi: dict(
        get=extend_schema(
            operation_id="getItemCirculation",
            tags=["circulation"],
            summary="A copy's circulation status",
            description="Derived from the loans and holds, never stored: `checked_out` (or `lost`, "
            "`claimed_returned`) with its open loan's id and due date; `on_hold_shelf` when trapped for a READY "
            "hold; else `available`. `holds_waiting` counts the WAITING holds on its book. Names no patron. "
            "404 `item_not_found` for a barcode no loan or hold names and the Book service does not know. "
            "Scope `circulation` or `patron-read`.",
            parameters=[BARCODE_PARAMETER, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(items.ItemCirculationSerializer, examples=[ITEM_STATUS_EXAMPLE]),
                **api_docs.error_responses(
                    "invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope", "item_not_found", "peer_unavailable"
                ),
            },
        )
    ),
    circulation.CalendarApi: dict(
        get=extend_schema(
            operation_id="getCalendar",
            tags=["calendar"],
            summary="The library's closed days",
            description="Weekly closing days and single closed dates. A due date (and a hold's pickup deadline) "
            "never falls on one: it ends at the end of the next open day in `LIBRARY_TIME_ZONE`. "
            "Scope `patron-read`, `reports` or `circulation`.",
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(circulation.CalendarSerializer, examples=[CALENDAR_EXAMPLE]),
                **api_docs.error_responses(*api_docs.READ_ERRORS, "insufficient_scope"),
            },
        ),
        put=extend_schema(
            operation_id="setCalendar",
            tags=["calendar"],
            summary="Set the library's closed days",
            description="Replaces the calendar. Due dates set from now on follow it; existing due dates do not move. "
            "Refused with 400 `invalid_request` (nothing written) for an unknown weekday, every weekday closed, or "
            "a malformed date. Scope `override`.",
            request=circulation.CalendarSerializer,
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(circulation.CalendarSerializer, description="The calendar now in force."),
                **api_docs.error_responses(*STAFF_WRITE_ERRORS),
            },
            examples=[CALENDAR_EXAMPLE],
        ),
    ),
    circulation.PatronBlocksApi: dict(
        get=extend_schema(
            operation_id="listPatronBlocks",
            tags=["blocks"],
            summary="A patron's blocks in force",
            description="The manual blocks not expired, oldest first. Automated blocks are computed, not stored: "
            "see `GET /patrons/{email}/status/`. Scope `patron-read`, `reports` or `circulation`.",
            parameters=[EMAIL_PARAMETER, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(circulation.BlockSerializer(many=True), examples=[BLOCK_EXAMPLE]),
                **api_docs.error_responses("invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope"),
            },
        ),
        post=extend_schema(
            operation_id="placePatronBlock",
            tags=["blocks"],
            summary="Block a patron",
            description="Forbids the patron the listed actions until `expires_at` (or until removed): a lend, "
            f"renewal or reservation is refused with 403 `{refusals.PATRON_BLOCKED.code}`, checked inside the write's "
            "transaction. Scope `override`.",
            request=circulation.BlockRequestSerializer,
            parameters=[EMAIL_PARAMETER, *api_docs.COMMON_PARAMETERS],
            responses={
                201: OpenApiResponse(circulation.BlockSerializer, description="The block."),
                **api_docs.error_responses(*STAFF_WRITE_ERRORS, "date_out_of_range"),
            },
            examples=[BLOCK_REQUEST_EXAMPLE, BLOCK_EXAMPLE],
        ),
    ),
    circulation.PatronBlockApi: dict(
        delete=extend_schema(
            operation_id="removePatronBlock",
            tags=["blocks"],
            summary="Remove a block",
            description="Deletes the block (expired or not): 204. 404 `block_not_found` when the patron has no "
            "such block. Scope `override`.",
            parameters=[
                EMAIL_PARAMETER,
                OpenApiParameter("block_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The block's id."),
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                204: OpenApiResponse(description="Removed."),
                **api_docs.error_responses(
                    "invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope", "block_not_found"
                ),
            },
        )
    ),
    circulation.PatronStatusApi: dict(
        get=extend_schema(
            operation_id="getPatronStatus",
            tags=["blocks"],
            summary="May the patron borrow, renew, reserve?",
            description="Each action with every reason that refuses it (manual blocks, then the automated rules: "
            "BLOCK_MAX_OVERDUE_LOANS, BLOCK_MAX_OVERDUE_DAYS, unresolved lost items, LOAN_BLOCK_ON_OVERDUE, the "
            "loan limit, and a balance at the Fees service above FINES_BLOCK_LIMIT), and the counts behind them, "
            "computed now from the patron's loans. `balance` is what the Fees service says the patron owes, "
            "`unknown` when it cannot answer (the balance block fails open), null without FINES_BLOCK_LIMIT. What a "
            "kiosk or a staff screen asks before acting; the writes apply the same rules inside their transaction. "
            "Scope `patron-read`, `reports` or `circulation`.",
            parameters=[EMAIL_PARAMETER, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(circulation.StatusSerializer, examples=[STATUS_EXAMPLE]),
                **api_docs.error_responses("invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope"),
            },
        )
    ),
    circulation.ChangeDueDateApi: dict(
        post=extend_schema(
            operation_id="changeDueDate",
            tags=["circulation"],
            summary="Change a loan's due date",
            description="Staff set a new due date: 200 with the loan. The loan is due at the end of `date_due` in "
            "LIBRARY_TIME_ZONE (the next open day when the library is closed then); the patron is notified "
            "(`due_date_changed`) and the change, its reason and caller are in the loan's history. "
            "400 `invalid_request` for a day in the past; 409 `loan_not_open` for a returned loan. "
            "Scope `override`.",
            request=circulation.DueDateChangeSerializer,
            parameters=[LOAN_ID, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(LoanSerializer, description="The loan with its new due date."),
                **api_docs.error_responses(*STAFF_WRITE_ERRORS, "loan_not_found", "loan_not_open", "date_out_of_range"),
            },
            examples=DUE_DATE_CHANGE_EXAMPLES,
        )
    ),
    lost.DeclareLostApi: dict(
        post=lost_item_change(
            "declareLost",
            "Declare a loan lost",
            "The loan becomes LOST: its copy stays out (not available to anyone), the loan is no longer overdue "
            f"nor renewable, and the patron is blocked while it is unresolved (`{refusals.LOST_ITEMS.code}`). The "
            "patron is notified (`loan_declared_lost`). 409 `loan_status_conflict` when it is LOST already, "
            "`loan_not_open` once returned.",
            lost.NoteSerializer,
            [
                OpenApiExample("With a note", value={"note": "Patron left it on a train."}, request_only=True),
                lost_loan_example("LOST"),
            ],
        )
    ),
    lost.ClaimReturnedApi: dict(
        post=lost_item_change(
            "claimReturned",
            "Record a patron's claim that a loan was returned",
            "The loan becomes CLAIMED_RETURNED until staff resolve it: no overdue notices or overdue blocks "
            "meanwhile; the copy stays out until it is found. The patron is notified (`loan_claimed_returned`). 409 "
            "`loan_status_conflict` for a loan already lost or claimed returned.",
            lost.NoteSerializer,
            [
                OpenApiExample(
                    "With a note", value={"note": "Patron says it went in the book drop."}, request_only=True
                ),
                lost_loan_example("CLAIMED_RETURNED"),
            ],
        )
    ),
    lost.ResolveApi: dict(
        post=lost_item_change(
            "resolveLostLoan",
            "Resolve a lost or claimed-returned loan",
            "`found` or `returned`: the loan is returned now, its copy goes to the first patron waiting or back on "
            "the shelf (availability published), and the patron is notified (`loan_resolved`). `lost`: a "
            "claimed-returned loan becomes LOST. A `POST /returnBook/` of a lost or claimed-returned loan resolves "
            "it as `found`. 409 `loan_status_conflict` for a loan that is neither lost nor claimed returned (or "
            "`lost` for a LOST one).",
            lost.ResolutionSerializer,
            [
                OpenApiExample(
                    "Found on the shelf", value={"outcome": "found", "note": "Misshelved in 823."}, request_only=True
                ),
                lost_loan_example("RETURNED", date_returned="2026-12-01T09:12:00Z"),
            ],
        )
    ),
}
