"""lending/strict_json.py: one reading of a body, or a refusal."""

from __future__ import annotations

import json

import pytest

from lending.strict_json import MAX_JSON_DEPTH, loads_strict, nesting_depth


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1, 2, MAX_JSON_DEPTH])
def test_nesting_up_to_the_limit_is_read(depth):
    assert loads_strict(nested(depth).encode()) == json.loads(nested(depth))
    assert nesting_depth(nested(depth)) == depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000])
def test_nesting_over_the_limit_is_refused(depth):
    with pytest.raises(ValueError, match="nested deeper"):
        loads_strict(nested(depth).encode())


def test_brackets_inside_strings_do_not_nest_however_many():
    """More opening brackets than the limit, all of them inside strings: the body is one level deep."""
    body = json.dumps({"title": "[" * (MAX_JSON_DEPTH * 3), "other": "{{{"})
    assert nesting_depth(body) == 1
    assert loads_strict(body.encode())["title"] == "[" * (MAX_JSON_DEPTH * 3)


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": NaN}', "not a JSON value"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
    ],
)
def test_what_two_readers_could_read_differently_is_refused(raw, refusal):
    with pytest.raises(ValueError, match=refusal):
        loads_strict(raw)
