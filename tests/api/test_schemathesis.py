"""The contract (the OpenAPI schema the code generates; `openapi.yaml` is a copy, kept equal by
test_openapi) against the running code, with schemathesis: every check
(`--checks all`), positive and negative data, through the WSGI application gunicorn serves, API keys
on. A bounded run here; `make fuzz` runs the same with many more examples (FUZZ_EXAMPLES)."""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework_api_key.models import APIKey
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, PositiveDataAcceptanceConfig

from lending.api.middleware import RequestGuard
from lending.models import ApiKeyScopes, Scope

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))

schema = schemathesis.openapi.from_dict(
    json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
)
schema.config.update(base_url="http://localhost")
schema.config.generation.update(modes=["positive", "negative"], deterministic=True)
# Valid requests may still be refused for the state they meet: 409 (no copy left, already borrowed...)
# and 422, an Idempotency-Key the run already used with another body. Never a 400.
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=[*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
)


class InTransaction:
    """Django's WSGI application without the connection closing at each request's start and end,
    as Django's test client does, so the requests run inside the test's transaction."""

    application = None

    def __call__(self, environ, start_response):
        if self.application is None:
            self.application = RequestGuard(WSGIHandler())  # once Django is set up
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            return self.application(environ, start_response)
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)


schema.app = InTransaction()
load_all_checks()
ALL_CHECKS = CHECKS.get_all()  # `--checks all`


@pytest.fixture
def api_key(db, settings):
    """A key with every scope: the run is about the contract, not about who may call what."""
    settings.REQUIRE_API_KEY = True
    api_key, key = APIKey.objects.create_key(name="schemathesis")
    ApiKeyScopes.objects.create(api_key=api_key, scopes=" ".join(Scope.values))
    return key


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case, peers, api_key):
    case.call_and_validate(headers={"Authorization": f"Api-Key {api_key}"}, checks=ALL_CHECKS)
