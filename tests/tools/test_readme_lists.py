"""The README's lists that the code owns are the code's lists: the history kinds, the domain events'
types, the scopes and the endpoints each covers, the configuration table (every variable the settings
read, and their defaults), and the one version the image, the overlays and the documents carry.
A change to any of them without its README line fails here."""

from __future__ import annotations

import argparse
import math
import re
import tomllib
from decimal import Decimal, InvalidOperation

import yaml
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from lending.events import asyncapi, domain_events
from lending.models import EventKind, LoanStatus, Scope
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    """The README's text under `heading` up to the next heading of any level."""
    start = README.index(f"\n{heading}\n")
    following = re.search(r"^#{1,6} ", README[start + len(heading) + 2 :], re.M)
    return README[start : start + len(heading) + 2 + following.start()] if following else README[start:]


def table(text: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table whose header row starts with `header`."""
    start = text.index(header)
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# --- History kinds and domain events ---------------------------------------------------------------
def test_the_history_lists_every_kind_of_event():
    history = section("#### Loan history")
    listed = re.search(r"records what happened — (.+?) — when", history, re.S)
    assert listed, "the Loan history section lists the kinds as `records what happened — ... — when`"
    assert set(backticked(listed.group(1))) == set(EventKind.values)


def expanded_types(text: str) -> set[str]:
    """`org.library.lending.loan.{lent,renewed}.v1` written out: one type per verb."""
    types = set()
    for prefix, verbs, suffix in re.findall(r"`(org\.library\.lending\.\w+\.)\{([^}]+)\}(\.v\d+)`", text):
        types |= {f"{prefix}{verb.strip()}{suffix}" for verb in verbs.split(",")}
    return types


def test_the_domain_events_section_lists_every_published_type():
    assert expanded_types(section("### Domain events (CloudEvents on RabbitMQ)")) == set(domain_events.all_types())


# --- Scopes ------------------------------------------------------------------------------------------
def scope_rows() -> dict[str, str]:
    rows = table(section("#### Scopes"), "| scope | endpoints |")
    return {cells[0].strip("`"): cells[1] for cells in rows}


def test_the_scopes_table_has_a_row_per_scope():
    assert set(scope_rows()) - {"(none)"} == set(Scope.values)


def api_paths(patterns=None, prefix: str = "") -> set[str]:
    """Every API path that states a scope, `{...}` for each parameter, without its optional slash."""
    found = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found |= api_paths(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and hasattr(getattr(pattern.callback, "cls", None), "required_scope"):
            path = re.sub(r"<(?:\w+:)?\w+>", "{}", "/" + route.lstrip("^").rstrip("$"))
            found.add(re.sub(r"/\??$", "", path.replace("/?", "/")))
    return found


def test_the_scopes_table_names_every_endpoint():
    text = re.sub(r"\{\w+\}", "{}", " ".join(scope_rows().values()))
    assert api_paths(), "no API view found in the URL configuration"
    missing = {path for path in api_paths() if not re.search(re.escape(path) + r"(?![\w{-])", text)}
    assert not missing, f"endpoints no row of README's Scopes table names: {sorted(missing)}"


# --- Configuration -------------------------------------------------------------------------------------
SETTINGS_SOURCE = (ROOT / "config" / "settings.py").read_text()
ENV_READ = re.compile(r'env\.(\w+)\(\s*"([A-Z][A-Z0-9_]+)"(?:,\s*default=([^)\n]+?))?\)')


def configuration_rows() -> dict[str, str]:
    """Each variable of the Configuration table and its default cell (`A` / `B` rows give both)."""
    rows = {}
    for cells in table(section("## Configuration"), "| variable | default | meaning |"):
        names = backticked(cells[0])
        defaults = [part.strip() for part in cells[1].split(" / ")] if len(names) > 1 else [cells[1]]
        for position, name in enumerate(names):
            rows[name] = defaults[position] if position < len(defaults) else cells[1]
    return rows


# The web server's own variables: docker/gunicorn.conf.py and the worker it loads.
SERVER_SOURCES = [(ROOT / path).read_text() for path in ("docker/gunicorn.conf.py", "config/gunicorn_worker.py")]
SERVER_READ = re.compile(r'(?:_int|_env_int|_env_float|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"(?:,\s*([^)\n]+?))?\)')


def settings_reads() -> dict[str, str | None]:
    """Every variable config/settings.py and the web server read, with the default written there (None
    without one; the settings' default when both read one)."""
    server = {name: default or None for source in SERVER_SOURCES for name, default in SERVER_READ.findall(source)}
    return (
        server
        | {name: default for _, name, default in ENV_READ.findall(SETTINGS_SOURCE)}
        | {name: None for name in re.findall(r'os\.environ(?:\.get)?[\[(]"([A-Z][A-Z0-9_]+)"', SETTINGS_SOURCE)}
    )


def test_every_variable_the_settings_and_the_web_server_read_is_in_the_configuration_table():
    missing = set(settings_reads()) - set(configuration_rows())
    assert not missing, f"read by the settings or the web server, missing from README's Configuration table: {missing}"


def test_every_variable_of_the_configuration_table_is_read_somewhere():
    sources = "\n".join(
        path.read_text()
        for pattern in ("config/*.py", "lending/**/*.py", "docker/*", "tools/scripts/*.py")
        for path in ROOT.glob(pattern)
        if path.is_file()
    )
    unread = {name for name in configuration_rows() if not re.search(rf"\b{name}\b", sources)}
    assert not unread, f"README's Configuration table lists variables nothing reads: {unread}"


def literal(value: str) -> str | None:
    """A default as the table or the settings write it, normalised (`16 * 1024` and `16384` agree);
    None when it is an expression the table describes in words."""
    value = value.strip().strip("`").strip('"')
    try:
        return str(math.prod(Decimal(factor) for factor in value.split("*")).normalize())
    except InvalidOperation:
        return value if re.fullmatch(r"[\w./:@-]*", value) else None


def test_the_configuration_table_gives_the_defaults_the_settings_use():
    """Where both write a plain value (not `–`, not words, not an expression of other settings)."""
    documented = configuration_rows()
    compared, differing = [], {}
    for name, written_default in settings_reads().items():
        in_readme = documented.get(name, "")
        if written_default is None or not re.fullmatch(r"`[^`]*`", in_readme) or literal(written_default) is None:
            continue
        compared.append(name)
        if literal(in_readme) != literal(written_default):
            differing[name] = (in_readme, written_default)
    assert not differing, f"README's default / config/settings.py's default: {differing}"
    assert len(compared) > 40, compared


# --- One version ---------------------------------------------------------------------------------------
def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_image_tags_and_documents_carry_the_projects_version():
    version = project_version()
    tags = {
        str(path.relative_to(ROOT)): image.get("newTag")
        for path in (ROOT / "k8s").rglob("kustomization.yaml")
        for image in yaml.safe_load(path.read_text()).get("images", [])
        if image.get("newTag") != "dev"  # the development overlay runs what `kind load` put there
    }
    assert tags and set(tags.values()) == {version}, tags
    assert set(re.findall(r"lending-service:(\d+\.\d+\.\d+)", README)) == {version}
    assert settings.SPECTACULAR_SETTINGS["VERSION"] == version
    assert yaml.safe_load((ROOT / "openapi.yaml").read_text())["info"]["version"] == version
    assert asyncapi.document()["info"]["version"] == version
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert released and released[0] == version, f"CHANGELOG.md's latest release is {released[:1]}, not {version}"


# --- Management commands ---------------------------------------------------------------------------------
def commands_block() -> dict[str, str]:
    """`python manage.py NAME ...` lines of the Commands section: NAME -> its usage (comments dropped)."""
    text = section("### Commands")
    block = text[text.index("```bash") : text.index("```", text.index("```bash") + 3)]
    usages: dict[str, str] = {}
    for name, usage in re.findall(r"^python manage\.py (\w+)(.*)$", block, re.M):
        usages[name] = usages.get(name, "") + " " + usage.partition("#")[0]
    return usages


def option_strings(parser) -> set[str]:
    """Every option of `parser` and of its sub-commands (`api_keys create --scopes`)."""
    found = set()
    for action in parser._actions:
        found |= set(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                found |= option_strings(subparser)
    return found


def test_the_commands_section_lists_every_command_with_its_options():
    from django.core.management import load_command_class

    ours = {path.stem for path in (ROOT / "lending/management/commands").glob("[a-z]*.py")}
    documented = commands_block()
    assert set(documented) == ours, f"README's Commands block, missing: {ours - set(documented)}"
    for name, usage in documented.items():
        parser = load_command_class("lending", name).create_parser("manage.py", name)
        unknown = set(re.findall(r"--[a-z][a-z-]*", usage)) - option_strings(parser)
        assert not unknown, f"README's `manage.py {name}` shows options it does not take: {unknown}"


# --- Layout --------------------------------------------------------------------------------------------
def test_the_layout_names_every_module():
    layout = section("## Layout")
    modules = [
        path
        for pattern in ("lending/*.py", "config/*.py")
        for path in ROOT.glob(pattern)
        if path.name not in ("__init__.py", "apps.py")
    ]
    packages = [path for path in (ROOT / "lending").iterdir() if (path / "__init__.py").exists()]
    missing = [str(path.relative_to(ROOT)) for path in modules if not re.search(rf"\b{path.name}\b", layout)]
    missing += [str(path.relative_to(ROOT)) for path in packages if f"{path.name}/" not in layout]
    assert not missing, f"README's Layout does not say what these are: {missing}"


# --- Notifications and statuses --------------------------------------------------------------------------
def test_the_notification_types_are_the_ones_sent():
    from lending.outbox.messages import MessageType

    sent = {value for name, value in vars(MessageType).items() if name.isupper()}
    listed = re.search(r"Each notification names its `message_type`: (.+?)\.\n", README, re.S)
    assert listed, "the README lists the notifications' types after the peers' table"
    assert set(backticked(listed.group(1))) - {"NOTICE_DIGEST"} == sent


def test_the_loan_statuses_are_the_models():
    api = section("## API")
    described = re.search(r"`status` is (.+?)\. A lost", api, re.S)
    assert described, "the API section describes `status` as `status` is `ACTIVE`, ..."
    statuses = {word for word in backticked(described.group(1)) if word.isupper() and "_DAYS" not in word}
    assert statuses == set(LoanStatus.values)
    circulation = section("### Circulation (beyond the spec)")
    loans_filter = next(row for row in table(circulation, "| method & path |") if row[0] == "`GET /loans/`")
    assert set(re.findall(r"`([A-Z_]+)`", loans_filter[1])) == set(LoanStatus.values)


def test_the_service_names_of_the_traces_are_the_roles():
    from lending.observability.tracing import SERVICE_NAMES

    tracing_section = section("### Tracing")
    documented = configuration_rows()["OTEL_SERVICE_NAME"]
    for name in SERVICE_NAMES.values():
        assert f"`{name}`" in tracing_section and f"`{name}`" in documented, name
    assert "`OTEL_SERVICE_NAME`, when set, wins" in " ".join(tracing_section.split())
