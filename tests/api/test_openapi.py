"""The OpenAPI schema: the committed `openapi.yaml` is the generated one, every endpoint documents its
errors, and the docs pages load only local assets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "openapi.yaml"

SPEC_OPERATIONS = {
    ("post", "/lendBook/"): "lendBook",
    ("post", "/returnBook/"): "returnBook",
    ("get", "/getExpiredBooks/"): "getExpiredBooks",
    ("get", "/health/"): "health",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
    target = tmp_path_factory.mktemp("schema") / "openapi.yaml"
    call_command("spectacular", "--file", str(target), "--validate", "--fail-on-warn")
    return target.read_text()


@pytest.fixture(scope="module")
def schema(generated) -> dict:
    return yaml.safe_load(generated)


def test_committed_schema_is_the_generated_one(generated):
    assert COMMITTED.exists(), "openapi.yaml is missing: run `make openapi`"
    assert COMMITTED.read_text() == generated, "openapi.yaml is stale: run `make openapi` and commit it"


def test_spec_endpoints_are_documented(schema):
    for (method, path), operation_id in SPEC_OPERATIONS.items():
        assert schema["paths"][path][method]["operationId"] == operation_id


def test_only_the_slash_version_of_each_route_is_documented(schema):
    assert schema["paths"], "no paths"
    assert all(path.endswith("/") for path in schema["paths"]), [p for p in schema["paths"] if not p.endswith("/")]


def test_every_api_operation_documents_its_errors_with_examples(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            errors = {code: r for code, r in responses.items() if code.startswith(("4", "5"))}
            assert errors, f"{method} {path} documents no error"
            for code, response in errors.items():
                content = response["content"]["application/json"]
                assert content.get("examples") or content.get("example"), f"{method} {path} {code}: no example"
                if not path.startswith("/health/"):
                    assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
                    for example in content["examples"].values():
                        assert set(example["value"]) == {"error"}
                        assert {"code", "message"} <= set(example["value"]["error"])
            if not path.startswith("/health/"):
                assert "401" in responses and "429" in responses, f"{method} {path}: auth/throttle errors"
                assert "Retry-After" in responses["429"]["headers"]
                assert "X-Request-ID" in responses["401"]["headers"]


def test_lend_book_documents_its_refusals_headers_and_dry_run(schema):
    operation = schema["paths"]["/lendBook/"]["post"]
    codes = {
        name
        for response in operation["responses"].values()
        for example in response["content"]["application/json"].get("examples", {}).values()
        if isinstance(example["value"], dict) and isinstance(example["value"].get("error"), dict)
        for name in [example["value"]["error"]["code"]]
    }
    assert {
        "user_not_found",
        "book_not_found",
        "user_inactive",
        "no_copy_available",
        "already_borrowed",
        "peer_unavailable",
        "invalid_request",
        "idempotency_key_reused",
    } <= codes
    parameters = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert {("header", "Idempotency-Key"), ("header", "X-Request-ID"), ("query", "dry_run")} <= parameters
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Loan"
    }


def test_get_expired_books_is_a_bare_list(schema):
    body = schema["paths"]["/getExpiredBooks/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert body["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Loan"}}


def test_error_component_matches_the_error_shape(schema):
    components = schema["components"]["schemas"]
    assert components["ErrorResponse"]["required"] == ["error"]
    assert set(components["ErrorDetail"]["properties"]) == {"code", "message", "details"}
    assert set(components["ErrorDetail"]["required"]) == {"code", "message"}


def test_api_key_scheme_is_documented(schema):
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
    assert schema["paths"]["/lendBook/"]["post"]["security"] == [{"ApiKeyAuth": []}]
    assert schema["paths"]["/health/"]["get"]["security"] == []


@pytest.mark.django_db
def test_schema_endpoint_serves_openapi_3(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_load_and_use_only_local_assets(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert any(a.startswith("/static/drf_spectacular_sidecar/") for a in assets), assets
    remote = [a for a in assets if re.match(r"^(https?:)?//", a)]
    assert not remote, f"{url} loads remote assets: {remote}"
    for asset in assets:
        if asset.startswith("/static/"):
            assert client.get(asset).status_code == 200, asset


@pytest.mark.django_db
def test_schema_and_docs_stay_open_when_keys_are_required(client, settings):
    settings.REQUIRE_API_KEY = True
    for url in ("/api/schema/", "/api/docs/", "/api/redoc/", "/health/"):
        assert client.get(url).status_code == 200, url
