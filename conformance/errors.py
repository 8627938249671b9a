"""Located errors: :class:`SpecError` names the file, line, case and field of a problem in a
case file, and the small validators here raise it, so that a maintainer can fix a typo without
reading a traceback."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from .limits import MAX_ID_CHARS, MAX_LIST_ITEMS, MAX_TEXT_CHARS


class SpecError(ValueError):
    """A problem in a case file, located as precisely as we can."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None,
                 case: str | None = None, field: str | None = None):
        self.message, self.file, self.line, self.case, self.field = message, file, line, case, field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}" if self.file else "<case>"
        if self.line:
            where += f":{self.line}"
        parts = [where]
        if self.case:     # a case id or field name from the file may be of any length: the message is not
            parts.append(f"case {quoted(self.case, MAX_ID_CHARS + len('divergence '))}")
        if self.field:
            parts.append(f"field {quoted(self.field, 100)}")
        return ": ".join(parts) + f": {self.message}"


def quoted(text: str, limit: int) -> str:
    """A name for a message, quoted: whole up to ``limit`` characters, else its start and its length."""
    text = str(text)
    return f"'{text}'" if len(text) <= limit else f"'{text[:40]}...' ({len(text):,} characters)"


_KINDS = {dict: "mapping", list: "list", type(None): "null", str: "string", bool: "boolean", int: "integer",
          float: "float", bytes: "binary", set: "set", tuple: "list"}


def kind_of(value: Any) -> str:
    """What YAML made of a value, in YAML's words (dates and timestamps by their Python name)."""
    return next((name for t, name in _KINDS.items() if type(value) is t), None) or (
        "mapping" if isinstance(value, dict) else type(value).__name__)


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:   # an int with more digits than Python will print (sys.get_int_max_str_digits)
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else "a value"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def unknown_field(key: str, allowed, **loc) -> SpecError:
    hint = difflib.get_close_matches(str(key), list(allowed), n=1)
    more = f" (did you mean '{hint[0]}'?)" if hint else ""
    return SpecError(f"unknown field{more}; allowed: {', '.join(allowed)}", field=str(key), **loc)


def check_length(text: str, limit: int, what: str = "this text", **loc) -> str:
    """``text``, or a located error when it is longer than ``limit`` characters (see MAX_ID_CHARS,
    MAX_TEXT_CHARS: strings travel into node ids, the environment, results and reports)."""
    if len(text) > limit:
        raise SpecError(f"{what} is {len(text):,} characters long; at most {limit:,} are allowed", **loc)
    return text


def check_count(items, limit: int, what: str, **loc) -> None:
    """A located error when ``items`` (a list or mapping copied into run records) has more than ``limit``
    entries (see MAX_CLAIMS and the limits below it)."""
    if len(items) > limit:
        raise SpecError(f"{len(items):,} {what}; at most {limit:,} are allowed (the list is copied into "
                        "every run's record)", **loc)


def str_or_list(value, name: str, **loc) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError("expected a string or a list of strings", field=name, **loc)
    check_count(value, MAX_LIST_ITEMS, "patterns", field=name, **loc)
    for v in value:
        check_length(v, MAX_TEXT_CHARS, "a pattern", field=name, **loc)
    return tuple(value)


def optional_text(m: dict, key: str, field: str | None = None, **loc) -> str:
    """An optional free-text field: a string of at most MAX_TEXT_CHARS characters ("" when absent)."""
    value = m.get(key, "")
    if not isinstance(value, str):
        raise SpecError(f"expected a string, got {short(value)} ({kind_of(value)})", field=field or key,
                        line=m.line_of(key), **loc)
    return check_length(value, MAX_TEXT_CHARS, field=field or key, line=m.line_of(key), **loc)


def require_str(m: dict, key: str, where: str, limit: int = MAX_TEXT_CHARS, **loc) -> str:
    if key not in m:
        raise SpecError(f"{where} needs '{key}'", field=key, line=m.line, **loc)
    value = m[key]
    if not isinstance(value, str) or not value.strip():
        raise SpecError("expected a non-empty string", field=key, line=m.line_of(key), **loc)
    return check_length(value, limit, field=key, line=m.line_of(key), **loc)
