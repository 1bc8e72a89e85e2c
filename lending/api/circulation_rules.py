"""The circulation rules' endpoints (`lending.circulation_rules`).

- `GET /loan-policies/`, `GET`/`PUT`/`DELETE /loan-policies/{name}/`: the named loan policies; a `PUT`
  creates or replaces one (open loans keep the values they were lent under); a `DELETE` is refused
  with 409 `policy_in_use` while a rule names the policy.
- `GET`/`PUT /circulation-rules/`: the matrix, replaced whole and atomically by a `PUT` (422
  `missing_fallback_rule`, `unknown_policy`, `duplicate_rule`; the rules in force stay as they were).
- `GET /circulation-rules/explain/?user_email=…&item_barcode=…` (or `&book_id=…`): the rule a write
  for this patron and copy (or title) would match and every value of its policy.
Reads need `patron-read`, `reports` or `circulation`; changes need `override` (staff), and each is
recorded with its caller (`RulesChange`). Only the explain call names a patron (`no-store`). Each
view's OpenAPI description is in `lending.api.circulation_rules_docs`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.validators import RegexValidator
from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import circulation_rules, errors
from lending.api import permissions
from lending.api.caching import NoStore
from lending.api.items import BarcodeField
from lending.api.serializers import NormalizedEmailField, StrictIntegerField
from lending.circulation_rules import CRITERION_MAX_LENGTH, NAME_MAX_LENGTH, NAME_PATTERN, LoanPolicy, Rule
from lending.clients import books, users
from lending.errors import LendingError
from lending.events import history

TERM_FIELDS = [name for name in circulation_rules.PolicyTerms.__dataclass_fields__ if name != "name"]


# --- Loan policies ---------------------------------------------------------------------------------
class StrictBooleanField(serializers.BooleanField):
    """JSON true or false, not "yes", 1 or "on"."""

    default_error_messages = {"invalid": "A JSON boolean is required."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field({"type": "string", "pattern": r"^\d{1,5}(\.\d{1,2})?$", "example": "0.25"})
class AmountField(serializers.DecimalField):
    """An amount of FINES_CURRENCY: a JSON string of a decimal ("0.25"), never a float."""

    default_error_messages = {"invalid": 'An amount is a JSON string of a decimal number, e.g. "0.25".'}

    def validate_empty_values(self, data):
        if data == "":  # DRF reads "" as null for a nullable field: an amount is written, or null
            self.fail("invalid")
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            Decimal(data)
        except InvalidOperation:
            self.fail("invalid")
        return super().to_internal_value(data)


class LoanPolicySerializer(serializers.ModelSerializer):
    """A policy's values, validated by the model's own fields (their bounds; the admin's form checks
    the same), read strictly: integers, booleans and amounts as JSON writes them."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.PositiveIntegerField: StrictIntegerField,
        models.BooleanField: StrictBooleanField,
        models.DecimalField: AmountField,
    }

    class Meta:
        model = LoanPolicy
        fields = ["name", *TERM_FIELDS, "updated_at", "updated_by"]
        read_only_fields = ["name", "updated_at", "updated_by"]
        extra_kwargs = {"renewal_days": {"required": False}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A renewal lasts a loan period unless the policy says otherwise.
        attrs.setdefault("renewal_days", attrs["loan_days"])
        return attrs


class LoanPolicyListSerializer(serializers.Serializer):
    loan_policies = LoanPolicySerializer(many=True)


class PolicyNameSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=NAME_MAX_LENGTH,
        validators=[RegexValidator(NAME_PATTERN, "Lower-case letters, digits, '-' and '_'; a letter or digit first.")],
    )


def policy_name(name: str) -> str:
    checked = PolicyNameSerializer(data={"name": name})
    checked.is_valid(raise_exception=True)
    return checked.validated_data["name"]


def _policy_or_404(name: str) -> LoanPolicy:
    policy = LoanPolicy.objects.filter(name=name).first()
    if policy is None:
        raise errors.POLICY_NOT_FOUND.error(loan_policy=name)
    return policy


class LoanPoliciesApi(APIView):
    required_scope = permissions.STAFF_READ

    def get(self, request: Request) -> Response:
        policies = [circulation_rules.policy_body(policy) for policy in LoanPolicy.objects.order_by("name")]
        return Response({"loan_policies": policies})


class LoanPolicyApi(APIView):
    required_scope = permissions.STAFF_READ_OR_OVERRIDE

    def get(self, request: Request, name: str) -> Response:
        return Response(circulation_rules.policy_body(_policy_or_404(policy_name(name))))

    def put(self, request: Request, name: str) -> Response:
        name = policy_name(name)
        body = LoanPolicySerializer(data=request.data if isinstance(request.data, dict) else {})
        if not body.is_valid():
            raise LendingError("The loan policy is invalid.", code="invalid_request", details=body.errors)
        policy, created = circulation_rules.put_policy(name, dict(body.validated_data), changed_by=_caller(request))
        return Response(circulation_rules.policy_body(policy), status=201 if created else 200)

    def delete(self, request: Request, name: str) -> Response:
        circulation_rules.delete_policy(policy_name(name), changed_by=_caller(request))
        return Response(status=204)


# --- The matrix ------------------------------------------------------------------------------------
@extend_schema_field(
    # DRF refuses NUL characters in any string; the document says so, so a client can know.
    {"type": "string", "minLength": 1, "maxLength": CRITERION_MAX_LENGTH, "pattern": "^[^\\u0000]+$"}
)
class CriterionField(serializers.CharField):
    """A patron category or an item type, as the peers spell it (null in a rule: any), or a policy's
    name (at most as long as a criterion: NAME_MAX_LENGTH is CRITERION_MAX_LENGTH)."""

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=CRITERION_MAX_LENGTH, **kwargs)


class RuleSerializer(serializers.Serializer):
    patron_category = CriterionField(allow_null=True, help_text="null: any category.")
    item_type = CriterionField(allow_null=True, help_text="null: any type.")
    # Any text: a name that is no policy's is the rule set's 422 `unknown_policy`, naming the rule.
    loan_policy = CriterionField(help_text="A policy of `GET /loan-policies/`.")


class RulesSerializer(serializers.Serializer):
    # DRF's ListSerializer takes max_length; its type stubs do not know it yet.
    rules = RuleSerializer(many=True, max_length=circulation_rules.MAX_RULES)  # type: ignore[call-arg]


class CirculationRulesApi(APIView):
    required_scope = permissions.STAFF_READ_OR_OVERRIDE

    def get(self, request: Request) -> Response:
        return Response(circulation_rules.rules_body())

    def put(self, request: Request) -> Response:
        body = RulesSerializer(data=request.data if isinstance(request.data, dict) else {})
        if not body.is_valid():
            raise LendingError("The circulation rules are invalid.", code="invalid_request", details=body.errors)
        rules = [Rule(**row) for row in body.validated_data["rules"]]
        saved = circulation_rules.replace_rules(rules, changed_by=_caller(request))
        return Response(circulation_rules.rules_body(saved))


def _caller(request: Request) -> str:
    return str(history.caller_of(request))


# --- Explain ---------------------------------------------------------------------------------------
class ExplainQuerySerializer(serializers.Serializer):
    user_email = NormalizedEmailField(help_text="The patron (their category comes from the User service).")
    item_barcode = BarcodeField(required=False, help_text="The copy (its type comes from the Book service).")
    book_id = serializers.IntegerField(
        required=False, min_value=1, max_value=books.MAX_BOOK_ID, help_text="A title, for a title-level lend."
    )


class ExplainSerializer(serializers.Serializer):
    rule = RuleSerializer()
    loan_policy = LoanPolicySerializer()
    patron_category = serializers.CharField(allow_null=True)
    item_type = serializers.CharField(allow_null=True)


class ExplainApi(NoStore, APIView):
    required_scope = permissions.STAFF_READ

    def get(self, request: Request) -> Response:
        query = ExplainQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        asked = query.validated_data
        patron = users.active_patron(asked["user_email"])
        item_type: str | None = None  # neither copy nor title: the rule for the patron's category alone
        if "item_barcode" in asked:  # a copy says more than its title: it wins when both are given
            item_type = books.get_item(asked["item_barcode"]).type
        elif "book_id" in asked:
            item_type = books.get_book(asked["book_id"]).item_type
        decision = circulation_rules.in_force().decide(patron.category, item_type)
        policy = LoanPolicy.objects.filter(name=decision.terms.name).first()
        shown = circulation_rules.policy_body(policy) if policy else decision.terms.snapshot()
        return Response(
            {
                "rule": decision.rule.as_dict(),
                "loan_policy": shown,
                "patron_category": patron.category,
                "item_type": item_type,
            }
        )
