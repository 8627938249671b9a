"""Text from case files and foreign results files reaches the terminal escaped: control characters
(but newline and tab), bidirectional controls and lone surrogates as visible escapes, a very long
string shortened to its head and tail with a note of how much was cut. What prints such text: the
explanation of a failing run, `conformance diff` (text and `--markdown -`) and the terminal summary.
The documents are real torch runs (``real_results`` in conftest.py), made hostile."""

import copy
import json
import re
from pathlib import Path

import pytest

from conformance import explain, report
from conformance.cli import main
from conformance.text import terminal_text

# What a terminal must never receive raw from a file: C0 (but newline and tab) and C1 controls, DEL,
# the directional marks, embeddings, overrides and isolates.
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
REASON = "\x1b[2J\x1b[H\x1b]0;TITLE\x07 \u202eRTL \r overwritten"
CASE_ID = "\u001b[2J\u001b]0;PWNED\u0007evil\r"


def save(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc, indent=1))
    return path


def failing(real_results: dict, check: str) -> dict:
    """A deep copy of a run that has ``check``, that check made to fail."""
    run = copy.deepcopy(next(r for r in real_results["runs"] if check in r["checks"]))
    run["checks"][check]["verdict"] = run["verdict"] = "stale" if check != "claims" else "diverge"
    return run


# ---- the function ----

def test_control_and_bidirectional_characters_are_escaped_visibly():
    assert terminal_text(REASON) == "\\x1b[2J\\x1b[H\\x1b]0;TITLE\\x07 \\u202eRTL \\x0d overwritten"
    assert terminal_text("a\u2066b\u2069c\u200fd\x9be\x7f") == "a\\u2066b\\u2069c\\u200fd\\x9be\\x7f"


def test_newlines_and_tabs_are_kept():
    assert terminal_text("line one\n\tline two") == "line one\n\tline two"


def test_a_long_string_keeps_its_head_and_tail_and_says_how_much_was_cut():
    text = "H" * 50 + "m" * 99_900 + "T" * 50
    shown = terminal_text(text, limit=100)
    assert shown == "H" * 50 + "[… 99,900 of 100,000 characters cut …]" + "T" * 50


def test_a_string_within_the_limit_is_shown_whole():
    assert terminal_text("x" * 4096) == "x" * 4096


# ---- explain: what a failing pytest item prints ----

def test_explain_escapes_a_declared_divergence_reason_from_a_case_file(real_results):
    run = failing(real_results, "param_count")
    run["checks"]["param_count"]["divergence"] = {"id": "d\x1b[31m", "file": "cases/x.yaml", "line": 3,
                                                  "reason": REASON, "link": "https://x/\u202e"}
    text = explain.explain(run)
    assert not RAW.search(text), repr(text)
    assert "\\x1b]0;TITLE\\x07 \\u202eRTL \\x0d overwritten" in text and "d\\x1b[31m" in text


def test_explain_escapes_a_claims_says_and_source(real_results):
    run = failing(real_results, "claims")
    claim = run["checks"]["claims"]["details"]["claims"][0]
    claim.update(verdict="diverge", says="output[1] \x1b[2Kis\r the \u2067cell state", source="doc\x07")
    text = explain.explain(run)
    assert not RAW.search(text), repr(text)
    assert "says: output[1] \\x1b[2Kis\\x0d the \\u2067cell state" in text and "from doc\\x07" in text


def test_explain_escapes_and_shortens_an_error_reason(real_results):
    run = copy.deepcopy(real_results["runs"][0])
    run.update(verdict="error", checks={}, reason="boom\x1b[2J" + "x" * 20_000, traceback="Trace\r\x1b[1A")
    text = explain.explain(run)
    assert not RAW.search(text) and "boom\\x1b[2J" in text and "characters cut" in text
    assert len(text) < 6000


# ---- conformance diff: text and --markdown - ----

@pytest.fixture
def hostile_pair(real_results, tmp_path) -> tuple[Path, Path]:
    """The real results, and the same with one run's case id made hostile (a removed and an added run)."""
    new = copy.deepcopy(real_results)
    new["runs"][0]["case"] = CASE_ID
    return save(real_results, tmp_path / "old.json"), save(new, tmp_path / "new.json")


@pytest.mark.parametrize("form", [[], ["--markdown", "-"]], ids=["text", "markdown"])
def test_diff_escapes_a_foreign_case_id(hostile_pair, capsys, form):
    old, new = hostile_pair
    main(["diff", str(old), str(new), *form])
    out = capsys.readouterr().out
    assert not RAW.search(out), repr(out)
    assert ("\\x1b[2J\\x1b]0;PWNED\\x07evil\\x0d" if not form else "\\\\x1b\\[2J\\\\x1b\\]0;PWNED\\\\x07evil\\\\x0d") in out


@pytest.mark.parametrize("form", [[], ["--markdown", "-"]], ids=["text", "markdown"])
def test_diff_shortens_a_case_id_of_100000_characters(real_results, tmp_path, capsys, form):
    new = copy.deepcopy(real_results)
    new["runs"][0]["case"] = "A" + "x" * 99_998 + "Z"
    main(["diff", str(save(real_results, tmp_path / "old.json")), str(save(new, tmp_path / "new.json")), *form])
    out = capsys.readouterr().out
    assert len(out) < 20_000 and "characters cut" in out and "Axxx" in out and "xxxZ" in out


# ---- the terminal summary ----

def test_the_terminal_summary_escapes_a_foreign_divergence_id(real_results):
    runs = copy.deepcopy(real_results["runs"])
    run = next(r for r in runs if r["checks"])
    name = next(iter(run["checks"]))
    run["checks"][name].update(verdict="known-divergence",
                               divergence={"id": "k\x1b]0;T\x07" + "y" * 10_000, "file": "f", "line": 1,
                                           "reason": "r"})
    lines = report.text_summary(runs)
    known = next(line for line in lines if line.startswith("known divergences: "))
    assert not RAW.search("\n".join(lines)) and "k\\x1b]0;T\\x07" in known and "characters cut" in known
    assert len(known) < 1000
