"""Strict JSON: a body means one thing or it is refused (request bodies with 400 `malformed_json`,
through `lending.api.parsers`; the peers' answers too, in `lending.clients.http`).

Python's `json` accepts what RFC 8259 leaves undefined or forbids, and each is a way for two readers
of one body to disagree: duplicate keys (the last wins here, the first in other parsers), `NaN` and
`Infinity`, and nesting deep enough to exhaust the interpreter's recursion limit (about 990 levels,
under 2 KB, raised RecursionError, a 500). The body must also be valid UTF-8: no replacement
characters slipped into an email address.
"""

from __future__ import annotations

import json
import re

# Far more than any body of this API needs (they are flat objects), far less than the recursion limit.
MAX_JSON_DEPTH = 32

# A JSON string (skipped whole, brackets inside it do not nest) or one bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class DuplicateKey(ValueError):
    pass


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects, counted before parsing so a deep body costs one scan."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def loads_strict(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH):
    """Parses UTF-8 JSON strictly; ValueError (with a message fit for the client) otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    # Nesting needs an opening bracket per level: a body with few of them (every answer of the peers, every
    # request body of this API) skips the scan.
    if text.count("{") + text.count("[") > max_depth and nesting_depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant)
    except RecursionError:  # unreachable after the depth check; kept as the last line of defence
        raise ValueError(f"nested deeper than {max_depth} levels") from None
