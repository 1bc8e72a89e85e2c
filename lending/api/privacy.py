"""Erasure on request: `POST /patrons/{email}/anonymize/` (scope `privacy`)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.models import AbstractAPIKey

from lending import privacy
from lending.api import permissions
from lending.api.caching import NoStore
from lending.api.serializers import NormalizedEmailField
from lending.patron_ref import patron_ref


class PatronEmailSerializer(serializers.Serializer):
    email = NormalizedEmailField()


class PatronAnonymizeApi(NoStore, APIView):
    """Its answers name the patron (the path, a 409's details): never stored by a cache."""

    required_scope = permissions.ERASURE

    def post(self, request: Request, email: str) -> Response:
        patron = PatronEmailSerializer(data={"email": email})
        patron.is_valid(raise_exception=True)
        email = patron.validated_data["email"]
        done = privacy.erase_patron(email, caller=caller_of(request))
        # The pseudonym the other services keep the patron's records by (the Fees service's fees): the
        # library erases them there with it. Lending keeps no way back from it to the patron.
        return Response({**done.as_dict(), "patron_ref": patron_ref(email)})


def caller_of(request: Request) -> privacy.Caller:
    """The key's name and prefix (never the key); `anonymous` when keys are off."""
    api_key = request.auth
    if not isinstance(api_key, AbstractAPIKey):  # None when keys are off
        return privacy.Caller("anonymous")
    return privacy.Caller(api_key.name[:64], api_key.prefix)
