"""JSON that is not shaped as records: words for what was found and what is expected.

- ``explain``: a decode error as a user reads it (a trailing comma at the comma itself, a raw NUL byte).
- ``object_document``: a ``.json`` file that is one object: a wrapper whose only key holds the records is
  read as that list (and reported); any other object is an error naming its keys.
- ``wrapper_hint``: for a record that is itself a wrapper (``{"data": [...]}`` on one line of a .jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ift_select.core.errors import DataError

_BLANK = " \t\r\n"
_KINDS = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"), (list, "an array"),
          (dict, "an object"))


def json_kind(value: Any) -> str:
    """``null``, ``a string``, ``an array``, ...: the JSON name of a decoded value."""
    if value is None:
        return "null"
    return next((name for tp, name in _KINDS if isinstance(value, tp)), type(value).__name__)


def column(text: str, pos: int) -> int:
    return pos - (text.rfind("\n", 0, pos) + 1) + 1


def _previous_nonblank(text: str, pos: int) -> int:
    pos -= 1
    while pos >= 0 and text[pos] in _BLANK:
        pos -= 1
    return pos


def explain(text: str, exc: json.JSONDecodeError, what: str) -> tuple[int, str]:
    """(position of the cause, message with its column) for a decode error in ``text``. ``what`` names
    the thing decoded in the generic message (``JSON``, ``JSON list``)."""
    pos = exc.pos
    here = text[pos] if pos < len(text) else ""
    if here == "\x00":
        return pos, f"NUL byte at column {column(text, pos)} (a raw \\x00, which JSON cannot hold; remove it)"
    comma = _previous_nonblank(text, pos)
    if here in ("]", "}") and comma >= 0 and text[comma] == ",":
        return comma, (f"trailing comma at column {column(text, comma)} (JSON allows no comma before '{here}'; "
                       "remove it)")
    if exc.msg == "Extra data" and text[pos:].strip() == ",":
        return pos, (f"trailing comma at column {column(text, pos)} (JSON Lines has no commas between "
                     "records; remove it)")
    return pos, f"malformed {what} ({exc.msg.removesuffix(' at')}, column {column(text, pos)})"


def record_lists(value: dict[str, Any]) -> dict[str, int]:
    """{key: number of items} for the keys of ``value`` that hold a list of objects."""
    return {k: len(v) for k, v in value.items() if isinstance(v, list) and v and isinstance(v[0], dict)}


def _cannot_map(key: str, count: int) -> str:
    return (f"key {key!r} holds a list of {count} records (a wrapper object); data.field_map cannot fix this, "
            "it renames fields inside each record")


def wrapper_hint(record: dict[str, Any]) -> str | None:
    """What to do when a one-line record is a wrapper around the records; None when it is not one."""
    lists = record_lists(record)
    if not lists:
        return None
    key, count = next(iter(lists.items()))
    return (f"{_cannot_map(key, count)}; save the file as .json (an object whose only key holds the list is read "
            f"as that list) or extract the list: jq -c '.{key}[]'")


def _list_start(text: str) -> int:
    """Where the '[' of the only value of the one-key object ``text`` (valid JSON) stands."""
    key_at = text.index('"', text.index("{"))
    after_key = json.JSONDecoder().raw_decode(text, key_at)[1]
    return text.index("[", text.index(":", after_key))


def object_document(path: Path, text: str) -> tuple[str, int] | None:
    """For a .json file starting with '{': (key, position of its '[') when the file is one object whose only
    key holds a list (read as that list); None when it is JSON Lines (several lines of objects, or one
    one-line record); otherwise DataError naming the shape found and the one expected."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    only = next(iter(value.values()), None)
    if len(value) == 1 and isinstance(only, list) and (not only or isinstance(only[0], dict)):
        return next(iter(value)), _list_start(text)
    keys = ", ".join(list(value)[:8]) + (", ..." if len(value) > 8 else "")
    lists = record_lists(value)
    if lists:
        key, count = next(iter(lists.items()))
        raise DataError(f"{path}: the file is a JSON object with keys {keys}, expected a list of records; "
                        f"{_cannot_map(key, count)}; keep only that key or extract the list: "
                        f"jq '.{key}' {path.name} > records.json")
    lines = text.strip().count("\n") + 1
    if lines > 1:
        raise DataError(f"{path}: the file is one pretty-printed JSON object ({lines} lines, keys {keys}), "
                        "expected a JSON list of records ([{...}, {...}]) or JSON Lines (one object per "
                        "line); wrap a single record in [ ]")
    return None
