"""The API's JSON parser: strict JSON (`lending.strict_json`), refused with 400 `malformed_json`."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from lending.strict_json import loads_strict


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads_strict(stream.read())
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
