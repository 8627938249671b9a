"""Text from a case file or a results file made safe to print on a terminal.

A case file's divergence ``reason`` or a foreign results file's case id can hold anything: ESC
sequences that clear the screen or set the window title, a carriage return that overwrites what
was printed, Unicode bidirectional controls that reorder a line, a string of 100,000 characters.
:func:`terminal_text` is what every terminal output of the suite passes such text through (the
explanation of a failing run, ``conformance diff``'s text and Markdown, the terminal summary, and
the refusals of :mod:`conformance.results`). The HTML outputs escape on their own (autoescaping,
``textContent``) and do not use it.
"""

from __future__ import annotations

import re

# C0 and C1 controls (newline and tab are kept where lines are wanted), DEL, the zero-width and
# directional marks, the line and paragraph separators, the bidirectional embeddings, overrides and
# isolates, the Arabic letter mark, and lone surrogates (which no terminal can show).
_ESCAPED = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_ESCAPED_IN_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069"
                               r"\ud800-\udfff]")

TEXT_LIMIT = 4096        # characters of one string shown whole (the longest text a case file may hold)


def _escape(match: re.Match) -> str:
    c = match.group()
    return f"\\x{ord(c):02x}" if c < "\u0100" else f"\\u{ord(c):04x}"


def terminal_text(text, limit: int = TEXT_LIMIT, lines: bool = True) -> str:
    """``text`` (``str()`` of anything else) as a terminal may show it: control characters (all of C0
    and C1, newline and tab excepted when ``lines``), bidirectional controls and lone surrogates
    written as visible escapes (``\\x1b``, ``\\u202e``), and a string longer than ``limit``
    characters shortened to its head and tail with a note saying how many characters were cut."""
    text = text if isinstance(text, str) else str(text)
    pattern = _ESCAPED_IN_LINES if lines else _ESCAPED
    if len(text) > limit:
        keep = max(limit, 2)
        cut = len(text) - keep
        head, tail = text[:keep - keep // 2], text[len(text) - keep // 2:]
        return f"{pattern.sub(_escape, head)}[… {cut:,} of {len(text):,} characters cut …]{pattern.sub(_escape, tail)}"
    return pattern.sub(_escape, text)
