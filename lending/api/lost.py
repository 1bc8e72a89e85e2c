"""Lost and claimed-returned loans at the desk (`lending.services.lost`), staff only (scope `override`):

- `POST /loans/{id}/declare-lost/` `{note?}`: the loan becomes LOST;
- `POST /loans/{id}/claim-returned/` `{note?}`: the patron says it came back: CLAIMED_RETURNED;
- `POST /loans/{id}/resolve/` `{outcome: found | returned | lost, note?}`: the copy is back (the loan
  is returned), or a claimed-returned loan is lost after all.
Each answers 200 with the loan; the change, its note and caller are in the loan's history.
Each view's OpenAPI description is in the table of `lending.api.circulation_docs`.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import representation
from lending.api import permissions
from lending.api.caching import NoStore
from lending.api.circulation import MAX_DATABASE_ID, ReasonField
from lending.errors import NotFound
from lending.models import Loan
from lending.services import lost
from lending.write_context import WriteContext


class NoteSerializer(serializers.Serializer):
    note = ReasonField(required=False, help_text="What staff want to remember (in the loan's history).")


class ResolutionSerializer(NoteSerializer):
    outcome = serializers.ChoiceField(
        choices=lost.Outcome.ALL,
        help_text="`found` (staff found the copy) or `returned` (the patron's claim holds, or they brought it back): "
        "the loan is returned and the copy is on the shelf again; `lost`: a claimed-returned loan is lost after all.",
    )


class _LostItemApi(NoStore, APIView):
    required_scope = permissions.OVERRIDE
    body: type[serializers.Serializer] = NoteSerializer

    def post(self, request: Request, loan_id: int) -> Response:
        parsed = self.body(data=request.data)
        parsed.is_valid(raise_exception=True)
        if loan_id > MAX_DATABASE_ID:
            raise NotFound(f"Loan {loan_id} does not exist.", code="loan_not_found")
        context = WriteContext.of_request(request)
        loan = self.change(loan_id, context, **parsed.validated_data)
        return Response(representation.loan(loan))

    def change(self, loan_id: int, context: WriteContext, **fields: str) -> Loan:
        raise NotImplementedError


class DeclareLostApi(_LostItemApi):
    def change(self, loan_id: int, context: WriteContext, **fields: str) -> Loan:
        return lost.declare_lost(loan_id, **fields, context=context)


class ClaimReturnedApi(_LostItemApi):
    def change(self, loan_id: int, context: WriteContext, **fields: str) -> Loan:
        return lost.claim_returned(loan_id, **fields, context=context)


class ResolveApi(_LostItemApi):
    body = ResolutionSerializer

    def change(self, loan_id: int, context: WriteContext, **fields: str) -> Loan:
        return lost.resolve(loan_id, **fields, context=context)
