"""The error catalogue (lending/errors.py) is the one list of error codes: the README's table is
derived from it, and every code the service or its web server can answer with is in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lending import errors
from lending.api.errors import DRF_CODES
from lending.api.schema import ERRORS

ROOT = Path(__file__).resolve().parents[2]
# Where a code is written at a raise site: `code="..."`, `refusal("...")`, `error_body("...")`, and the
# web server's own table (`403: ("forbidden", ...)`, `INTERNAL_ERROR = ("internal_error", ...)`).
WRITTEN_CODES = re.compile(
    r'code="([a-z_]+)"|refusal\(\s*"([a-z_]+)"|error_body\("([a-z_]+)"|\d{3}: \("([a-z_]+)"|_ERROR = \("([a-z_]+)"'
)


def readme_error_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| status | codes |")
    return readme[start : readme.index("\n\n", start)]


def test_the_readme_error_table_is_the_catalogue():
    assert readme_error_table() == errors.readme_table(), "paste lending.errors.readme_table() into README.md"


def codes_written_in_the_code() -> set[str]:
    sources = [*(ROOT / "lending").rglob("*.py"), *(ROOT / "config").rglob("*.py")]
    found = set()
    for source in sources:
        for match in WRITTEN_CODES.finditer(source.read_text()):
            found.add(next(group for group in match.groups() if group))
    return found


def test_every_code_written_anywhere_is_in_the_catalogue():
    written = codes_written_in_the_code() | set(DRF_CODES.values())
    assert written - set(errors.CATALOGUE) == set()


def test_the_openapi_examples_come_from_the_catalogue():
    assert {e.code: (e.status, e.example, e.example_details) for e in errors.CATALOGUE.values()} == ERRORS


@pytest.mark.parametrize("entry", list(errors.CATALOGUE.values()), ids=lambda entry: entry.code)
def test_each_entry_raises_with_its_status_and_code(entry: errors.ErrorCode):
    raised = entry.error(entry.example)
    assert (raised.status, raised.code, raised.message) == (entry.status, entry.code, entry.example)
    assert isinstance(raised, errors.LendingError)


def test_a_template_is_filled_at_the_raise_site():
    raised = errors.NO_COPY_AVAILABLE.error(book_id=7)
    assert isinstance(raised, errors.Conflict)
    assert (raised.status, raised.code, raised.message) == (409, "no_copy_available", "No copy of book 7 is available.")
