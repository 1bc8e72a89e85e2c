"""The circulation rules' endpoints' OpenAPI descriptions (drf-spectacular), in the same kind of table
as `lending.api.docs` (which applies it): loan policies, the rules matrix and the explain call
(`lending.api.circulation_rules`), and the fine a return would cost (`lending.api.fines`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from lending.api import circulation_rules as views
from lending.api import fines
from lending.api import schema as api_docs
from lending.api.circulation import RETURNED_AT_PATTERN
from lending.api.circulation_docs import STAFF_WRITE_ERRORS
from lending.api.items import BARCODE_SCHEMA
from lending.api.serializers import MAX_BOOK_ID
from lending.circulation_rules import NAME_MAX_LENGTH, NAME_PATTERN

POLICY_NAME = OpenApiParameter(
    "name",
    {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH},
    OpenApiParameter.PATH,
    description="The policy's name (lower-case letters, digits, - and _).",
)
DVD_WEEK = {
    "loan_days": 7,
    "renewals_max": 1,
    "renewal_days": 7,
    "max_loans": 3,
    "holds_allowed": True,
    "loanable": True,
    "fine_per_day": "0.50",
    "fine_grace_days": 1,
    "fine_max": "10.00",
    "fine_counts_closed_days": False,
    "lost_item_fee": "25.00",
    "lost_processing_fee": "5.00",
    "refund_lost_on_return": True,
}
POLICY_REQUEST_EXAMPLE = OpenApiExample("DVDs for a week", value=DVD_WEEK, request_only=True)
POLICY_EXAMPLE = OpenApiExample(
    "A loan policy",
    value={"name": "dvd-week", **DVD_WEEK, "updated_at": "2026-12-01T09:00:00+00:00", "updated_by": "desk (AbC12xYz)"},
    response_only=True,
)
RULES_EXAMPLE = OpenApiExample(
    "Books 21 days, DVDs 7, students limited, a reference collection",
    value={
        "rules": [
            {"patron_category": None, "item_type": None, "loan_policy": "default"},
            {"patron_category": None, "item_type": "dvd", "loan_policy": "dvd-week"},
            {"patron_category": "student", "item_type": None, "loan_policy": "student"},
            {"patron_category": None, "item_type": "reference", "loan_policy": "reference"},
        ]
    },
)
EXPLAIN_EXAMPLE = OpenApiExample(
    "A student borrowing a DVD",
    value={
        "rule": {"patron_category": None, "item_type": "dvd", "loan_policy": "dvd-week"},
        "loan_policy": {"name": "dvd-week", **DVD_WEEK, "updated_at": "2026-12-01T09:00:00+00:00", "updated_by": ""},
        "patron_category": "student",
        "item_type": "dvd",
    },
)
RULE_SET_ERRORS = ("missing_fallback_rule", "unknown_policy", "duplicate_rule")

QUOTE_EXAMPLE = OpenApiExample(
    "Three days late, 0.50 a day",
    value={
        "loan_id": 7,
        "returned_at": "2026-12-18T10:00:00Z",
        "amount": "1.50",
        "currency": "EUR",
        "days_charged": 3,
    },
)

ENDPOINTS = {
    fines.LoanFineQuoteApi: dict(
        get=extend_schema(
            operation_id="quoteLoanFine",
            tags=["fines"],
            summary="What returning this loan would cost",
            description="The overdue fine a return at `returned_at` (default now; a later moment gives a quote for "
            "that day) would assess, from the loan's policy snapshot and the calendar; changes nothing. "
            '`"0.00"` when in time, within the grace period, or for a lost or claimed-returned loan. '
            "Scope `patron-read` or `reports`, or a `patron-self` key of the loan's patron.",
            parameters=[
                OpenApiParameter("loan_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The loan's id."),
                OpenApiParameter(
                    "returned_at",
                    {"type": "string", "format": "date-time", "pattern": RETURNED_AT_PATTERN},
                    description="The return to price: not before the loan date, at most "
                    f"{fines.MAX_QUOTE_DAYS_AHEAD} days ahead (422 `date_out_of_range` otherwise).",
                ),
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                200: OpenApiResponse(fines.QuoteSerializer, examples=[QUOTE_EXAMPLE]),
                **api_docs.error_responses(
                    "invalid_request",
                    *api_docs.READ_ERRORS,
                    "insufficient_scope",
                    "loan_not_found",
                    "loan_not_open",
                    "date_out_of_range",
                ),
            },
        )
    ),
    views.LoanPoliciesApi: dict(
        get=extend_schema(
            operation_id="listLoanPolicies",
            tags=["circulation rules"],
            summary="The loan policies",
            description="Every named loan policy, by name. Scope `patron-read`, `reports` or `circulation`.",
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(views.LoanPolicyListSerializer),
                **api_docs.error_responses(*api_docs.READ_ERRORS, "insufficient_scope"),
            },
        )
    ),
    views.LoanPolicyApi: dict(
        get=extend_schema(
            operation_id="getLoanPolicy",
            tags=["circulation rules"],
            summary="One loan policy",
            description="Scope `patron-read`, `reports` or `circulation`.",
            parameters=[POLICY_NAME, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(views.LoanPolicySerializer, examples=[POLICY_EXAMPLE]),
                **api_docs.error_responses(
                    "invalid_request", *api_docs.READ_ERRORS, "insufficient_scope", "policy_not_found"
                ),
            },
        ),
        put=extend_schema(
            operation_id="putLoanPolicy",
            tags=["circulation rules"],
            summary="Create or replace a loan policy",
            description="201 when created, 200 when replaced. `renewal_days` defaults to `loan_days`; amounts are "
            "JSON strings in `FINES_CURRENCY`. Open loans keep the values they were lent under (their snapshot); "
            "loans made from now on follow the new ones. Recorded with its caller. Scope `override`.",
            request=views.LoanPolicySerializer,
            parameters=[POLICY_NAME, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(views.LoanPolicySerializer, description="Replaced."),
                201: OpenApiResponse(views.LoanPolicySerializer, description="Created."),
                **api_docs.error_responses(*STAFF_WRITE_ERRORS),
            },
            examples=[POLICY_REQUEST_EXAMPLE, POLICY_EXAMPLE],
        ),
        delete=extend_schema(
            operation_id="deleteLoanPolicy",
            tags=["circulation rules"],
            summary="Delete a loan policy",
            description="Refused with 409 `policy_in_use` while a circulation rule names it. Loans lent under it "
            "keep their snapshot. Scope `override`.",
            parameters=[POLICY_NAME, *api_docs.COMMON_PARAMETERS],
            responses={
                204: OpenApiResponse(description="Deleted."),
                **api_docs.error_responses(
                    "invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope", "policy_not_found", "policy_in_use"
                ),
            },
        ),
    ),
    views.CirculationRulesApi: dict(
        get=extend_schema(
            operation_id="getCirculationRules",
            tags=["circulation rules"],
            summary="The circulation rules",
            description="Patron category x item type -> loan policy (null: any). The rule with more criteria wins; "
            "with as many, the patron category beats the item type; the fallback (both null) always exists. "
            "Scope `patron-read`, `reports` or `circulation`.",
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(views.RulesSerializer, examples=[RULES_EXAMPLE]),
                **api_docs.error_responses(*api_docs.READ_ERRORS, "insufficient_scope"),
            },
        ),
        put=extend_schema(
            operation_id="putCirculationRules",
            tags=["circulation rules"],
            summary="Replace the circulation rules",
            description="Replaces the whole set atomically: a write sees the old rules or the new, never a mix. "
            "Refused (the rules in force unchanged) with 422 `missing_fallback_rule`, `unknown_policy` or "
            "`duplicate_rule` (`details.rules` names each rule at fault by its index). Recorded with its caller. "
            "Scope `override`.",
            request=views.RulesSerializer,
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(views.RulesSerializer, description="The rules now in force."),
                **api_docs.error_responses(*STAFF_WRITE_ERRORS, *RULE_SET_ERRORS),
            },
            examples=[RULES_EXAMPLE],
        ),
    ),
    views.ExplainApi: dict(
        get=extend_schema(
            operation_id="explainCirculationRule",
            tags=["circulation rules"],
            summary="Which rule and policy a write would use",
            description="For the patron (category from the User service) and a copy (`item_barcode`, type from the "
            "Book service) or a title (`book_id`: its copies' type when they share one; neither: no item type): "
            "the matched rule and every value of its policy. Scope `patron-read`, `reports` or `circulation`.",
            parameters=[
                OpenApiParameter("user_email", OpenApiTypes.EMAIL, required=True, description="The patron."),
                OpenApiParameter("item_barcode", BARCODE_SCHEMA, description="A copy (it wins over `book_id`)."),
                OpenApiParameter(
                    "book_id",
                    {"type": "integer", "minimum": 1, "maximum": MAX_BOOK_ID},
                    description="A title (its copies' type when they share one).",
                ),
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                200: OpenApiResponse(views.ExplainSerializer, examples=[EXPLAIN_EXAMPLE]),
                **api_docs.error_responses(
                    "invalid_request",
                    *api_docs.READ_ERRORS,
                    "insufficient_scope",
                    "user_not_found",
                    "user_inactive",
                    "item_not_found",
                    "book_not_found",
                    "peer_unavailable",
                ),
            },
        )
    ),
}
