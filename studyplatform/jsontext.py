"""Parsing JSON that people or other systems send, before any of it is stored.

JSON may escape a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it into a ``str`` that
is not Unicode text, and the first attempt to store or encode it (PostgreSQL, a JSON response,
a log line) fails with an error far from its cause. Every JSON body the server parses goes
through ``parse_json``, which refuses such strings, too-deep nesting and malformed JSON with
one ``JSONTextError`` whose message names the problem.
"""

from __future__ import annotations

import json
from typing import Any


class JSONTextError(ValueError):
    """JSON we refuse to parse; the message says why and is safe to show the sender."""


def parse_json(raw: str | bytes, *, what: str) -> Any:
    """The value of ``raw``; ``what`` names it in the error ("the request body", "metadata")."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JSONTextError(f"{what} is nested too deeply") from None
    except UnicodeDecodeError:
        raise JSONTextError(f"{what} is not UTF-8 text") from None
    except ValueError as error:
        raise JSONTextError(f"{what} is not valid JSON ({error})") from None
    try:
        # Strings and keys anywhere in the value; a lone surrogate has no UTF-8 encoding.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        surrogate = f"\\u{ord(error.object[error.start]):04x}"
        raise JSONTextError(
            f"{what} contains a lone surrogate ({surrogate}), which is not a Unicode character"
        ) from None
    except RecursionError:
        raise JSONTextError(f"{what} is nested too deeply") from None
    return value
