"""``conformance diff`` on two real torch runs whose results differ for real reasons.

The old run has the known-divergence catalogue beside its cases; the new one does not (torch's
double bias becomes an undeclared divergence), changes a case's hidden_size, drops a stale
declaration, drops one case, adds another, and crashes its worker on one case (the worker's own
fault-injection hook). The two runs live in different directories, as two CI checkouts would.
"""

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import diff
from conformance.cli import main
from conformance.reference import PARAM_FORMULAS
from conformance.results import load, summarize
from conformance.spec import Config

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = (REPO / "cases" / "divergences.yaml").read_text()
DOUBLE_BIAS = """
  - id: torch-double-bias
    impl: torch
    check: param_count
    when: {bias: true}
    cases: [wide, added, flaky, claimed]
    reason: torch.nn.LSTM keeps two bias vectors per layer and direction.
"""

OLD = """
defaults: {input_size: 3, hidden_size: 4, batch: 2, timesteps: 3}
cases:
  - id: plain
  - id: wide
  - id: nobias
    bias: false
  - id: merged
    bidirectional: true
    merge_mode: sum
  - id: gone
    num_layers: 2
  - id: claimed
    claims:
      - {source: A blog post, impl: torch, says: "torch returns (B, T, 4) and two (1, B, 4) states",
         outputs: [[2, 3, 4], [1, 2, 4], [1, 2, 4]]}
  - id: flaky            # last: the new run crashes its worker here
    bidirectional: true
    return_state: true
divergences:
  - id: said-torch-always-has-two-biases
    impl: torch
    check: param_count
    cases: [nobias]
    reason: an article said torch always has two bias vectors
"""

NEW = """
defaults: {input_size: 3, hidden_size: 4, batch: 2, timesteps: 3}
cases:
  - id: plain
  - id: wide
    hidden_size: 8
  - id: nobias
    bias: false
  - id: merged
    bidirectional: true
    merge_mode: sum
  - id: added
    num_layers: 2
  - id: claimed
    hidden_size: 8
    claims:
      - {source: A blog post, impl: torch, says: "torch returns (B, T, 4) and two (1, B, 4) states",
         outputs: [[2, 3, 4], [1, 2, 4], [1, 2, 4]], holds: false}
  - id: flaky            # last: the new run crashes its worker here
    bidirectional: true
    return_state: true
divergences:""" + DOUBLE_BIAS

EXPECTED = {"plain": "regression", "flaky": "regression", "nobias": "fixed", "wide": "changed",
            "claimed": "changed", "added": "added", "gone": "removed"}


def _start(root: Path, cases: str, catalogue: bool, fault: str = "") -> subprocess.Popen:
    (root / "cases").mkdir(parents=True)
    (root / "cases" / "demo.yaml").write_text(textwrap.dedent(cases))
    if catalogue:
        (root / "cases" / "divergences.yaml").write_text(CATALOGUE)
    return subprocess.Popen([sys.executable, "-m", "pytest", "cases/demo.yaml", "--impl", "torch", "--device",
                             "cpu", "-p", "no:cacheprovider", "-q", "--conformance-out", "out"],
                            cwd=root, env={**os.environ, "CONFORMANCE_FAULT": fault},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("diff")
    procs = [_start(base / "old", OLD, True), _start(base / "new", NEW, False, fault="crash:flaky")]
    for p in procs:
        out = p.communicate(timeout=300)[0].decode()
        assert p.returncode == 1, out   # both runs have failing items
    return base / "old" / "out" / "results.json", base / "new" / "out" / "results.json"


@pytest.fixture(scope="module")
def docs(paths) -> tuple[dict, dict]:
    return load(paths[0]), load(paths[1])


@pytest.fixture(scope="module")
def result(docs) -> diff.Diff:
    return diff.compare(*docs)


def by_case(d: diff.Diff) -> dict[str, diff.RunChange]:
    return {c.case: c for c in d.changes}


def test_categories_follow_the_verdicts_of_the_two_runs(result):
    assert {c.case: c.category for c in result.changes} == EXPECTED
    assert result.unchanged == 1    # merged: unsupported in both
    assert result.counts == {"regression": 2, "fixed": 1, "changed": 2, "added": 1, "removed": 1, "unchanged": 1}


def test_results_from_two_checkouts_name_case_files_relative_to_their_rootdir(docs, result):
    assert {r["file"] for r in docs[0]["runs"]} == {r["file"] for r in docs[1]["runs"]} == {"cases/demo.yaml"}
    assert by_case(result)["plain"].file == "cases/demo.yaml"


def test_runs_whose_absolute_file_paths_differ_are_matched_by_the_path_tail(docs):
    old, new = copy.deepcopy(docs[0]), copy.deepcopy(docs[1])
    for doc, root in ((old, "/home/a/checkout"), (new, "/ci/build/7")):
        for r in doc["runs"]:
            r["file"] = f"{root}/{r['file']}"
    moved = diff.compare(old, new)
    assert by_case(moved)["plain"].category == "regression"
    assert moved.counts == diff.compare(docs[0], docs[1]).counts


def test_a_dropped_declaration_is_a_regression_naming_the_check_and_the_declaration(result):
    plain = by_case(result)["plain"]
    assert (plain.old_verdict, plain.new_verdict) == ("known-divergence", "diverge")
    assert plain.checks == [("param_count", "known-divergence", "diverge")]
    assert "param_count: declared divergence torch-double-bias -> none" in plain.details


def test_a_crash_in_the_new_run_is_a_regression_labelled_new_error(result):
    flaky = by_case(result)["flaky"]
    assert flaky.new_error and flaky.label == "regression (new error)"
    assert flaky.details == ["reason: torch worker died while running case 'flaky' on cpu: it was killed by SIGABRT "
                             "(signal 6); its last output:"]
    assert not by_case(result)["plain"].new_error and result.new_errors == 1


def test_a_config_change_is_described_by_its_native_results(result):
    wide = by_case(result)["wide"]
    before, after = PARAM_FORMULAS["torch"].count(Config(3, 4)), PARAM_FORMULAS["torch"].count(Config(3, 8))
    assert wide.details == [
        "config hidden_size 4 -> 8",
        "returns: [output (2, 3, 4), h (1, 2, 4), c (1, 2, 4)] -> [output (2, 3, 8), h (1, 2, 8), c (1, 2, 8)]",
        f"param_count {before} -> {after}",
        "canonical output_shape (2, 4) -> (2, 8)",
        "canonical state_shapes [h (2, 4), c (2, 4)] -> [h (2, 8), c (2, 8)]",   # torch returns them unasked
    ]


def test_a_claim_that_stopped_holding_is_described_with_the_real_value(result):
    claimed = by_case(result)["claimed"]
    assert claimed.checks == [("claims", "agree", "known-divergence")]
    assert ("claim 'A blog post' ('torch returns (B, T, 4) and two (1, B, 4) states'): true -> false "
            "(real {'outputs': [[2, 3, 8], [1, 2, 8], [1, 2, 8]]})") in claimed.details


def test_a_stale_declaration_removed_is_fixed(result):
    nobias = by_case(result)["nobias"]
    assert (nobias.old_verdict, nobias.new_verdict) == ("stale", "agree")
    assert nobias.checks == [("param_count", "stale", "agree")]


def test_the_reverse_diff_turns_fixed_into_regressions_and_added_into_removed(docs):
    back = by_case(diff.compare(docs[1], docs[0]))
    assert {k: c.category for k, c in back.items()} == {
        "plain": "fixed", "flaky": "fixed", "nobias": "regression", "wide": "changed", "claimed": "changed",
        "added": "removed", "gone": "added"}


def test_a_new_run_that_fails_is_a_regression(docs):
    old = copy.deepcopy(docs[0])
    old["runs"] = [r for r in old["runs"] if r["case"] != "plain"]
    plain = by_case(diff.compare(old, docs[1]))["plain"]
    assert plain.category == "regression" and plain.label == "regression (new run)"


def test_a_failing_run_that_fails_in_another_check_is_a_regression(docs):
    old, new = copy.deepcopy(docs[1]), copy.deepcopy(docs[1])
    run = next(r for r in new["runs"] if r["case"] == "plain")
    run["checks"]["output_shape"]["verdict"] = "diverge"   # same overall verdict, one more failing check
    assert by_case(diff.compare(old, new))["plain"].category == "regression"


def test_text_output_names_the_case_and_what_changed(result):
    text = diff.to_text(result)
    assert "2 regressions (1 new error), 1 fixed, 2 changed, 1 added, 1 removed, 1 unchanged" in text
    assert "REGRESSION: plain on torch@cpu: known-divergence -> diverge   (cases/demo.yaml)" in text
    assert "    param_count: known-divergence -> diverge" in text
    assert "merged" not in text


def test_environment_changes_list_framework_versions_and_device_names(docs):
    new = copy.deepcopy(docs[1])
    new["environment"]["versions"]["torch"]["torch"] = "9.9.9"
    for r in new["runs"]:
        r["versions"]["torch"] = "9.9.9"
    new["environment"]["devices"]["torch@cpu"] = "some other cpu"
    old_version = docs[0]["environment"]["versions"]["torch"]["torch"]
    env = diff.compare(docs[1], new).environment
    assert env == [f"torch: torch {old_version} -> 9.9.9", "torch@cpu: device cpu -> some other cpu"]


def test_cli_exits_1_on_regressions(paths, capsys):
    assert main(["diff", str(paths[0]), str(paths[1])]) == 1
    assert "REGRESSION: plain on torch@cpu" in capsys.readouterr().out


def test_cli_exits_0_for_identical_files(paths, capsys):
    assert main(["diff", str(paths[0]), str(paths[0])]) == 0
    out = capsys.readouterr().out
    assert "0 regressions, 0 fixed, 0 changed, 0 added, 0 removed, 7 unchanged" in out and "no run changed" in out


def test_cli_exits_0_for_changes_without_regressions_unless_fail_on_change(paths, tmp_path, capsys):
    fewer = json.loads(paths[0].read_text())
    fewer["runs"] = [r for r in fewer["runs"] if r["case"] != "gone"]
    fewer["summary"] = summarize(fewer["runs"])
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    assert main(["diff", str(paths[0]), str(tmp_path / "fewer.json")]) == 0
    assert main(["diff", str(paths[0]), str(tmp_path / "fewer.json"), "--fail-on", "change"]) == 1


def test_cli_fail_on_never_exits_0_despite_regressions(paths, capsys):
    assert main(["diff", str(paths[0]), str(paths[1]), "--fail-on", "never"]) == 0


def test_cli_exits_2_naming_a_missing_file(paths, tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["diff", str(paths[0]), str(missing)]) == 2
    captured = capsys.readouterr()
    assert f"{missing}: no such results file" in captured.err and captured.out == ""


def test_cli_exits_2_for_a_json_file_that_is_not_results(paths, tmp_path, capsys):
    other = tmp_path / "package.json"
    other.write_text('{"name": "something else"}')
    assert main(["diff", str(other), str(paths[1])]) == 2
    assert f"{other}: schema None is not supported" in capsys.readouterr().err


def test_markdown_file_has_the_counts_table_and_the_changed_runs(paths, tmp_path, capsys):
    md = tmp_path / "summary.md"
    main(["diff", str(paths[0]), str(paths[1]), "--markdown", str(md)])
    text = md.read_text()
    assert "| category | runs |\n|---|---:|\n| 🔴 regression | 2 |\n| 🟢 fixed | 1 |" in text
    assert "| unchanged | 1 |" in text
    assert "| 🔴 regression | plain<br><sub>cases/demo.yaml</sub> | torch@cpu | known-divergence → diverge |" in text
    assert "REGRESSION" in capsys.readouterr().out     # the text still goes to the terminal


def test_markdown_dash_prints_markdown_instead_of_text(paths, capsys):
    main(["diff", str(paths[0]), str(paths[1]), "--markdown", "-"])
    out = capsys.readouterr().out
    assert out.startswith("## LSTM conformance diff") and "REGRESSION:" not in out


def test_html_page_is_self_contained_and_shows_verdicts_as_text(paths, tmp_path):
    page = tmp_path / "diff.html"
    main(["diff", str(paths[0]), str(paths[1]), "--html", str(page)])
    html = page.read_text()
    assert html.startswith("<!doctype html>") and '<section class="conformance-diff">' in html
    assert "<link" not in html and "src=" not in html and "<script" not in html
    assert '<span class="v-known-divergence">known-divergence</span> → <span class="v-diverge">diverge</span>' in html


def test_html_section_renders_alone_for_a_bigger_page(result):
    section = diff.to_html(result, standalone=False)
    assert section.lstrip().startswith('<section class="conformance-diff">') and "<html" not in section


def test_a_hostile_case_id_is_escaped_in_html_and_markdown(docs):
    old, new = copy.deepcopy(docs[0]), copy.deepcopy(docs[1])
    for doc in (old, new):
        for r in doc["runs"]:
            if r["case"] == "plain":   # known-divergence in old, diverge in new
                r["case"] = "<script>alert(1)</script>"
    d = diff.compare(old, new)
    assert by_case(d)["<script>alert(1)</script>"].category == "regression"
    html, md = diff.to_html(d), diff.to_markdown(d)
    assert "&lt;script&gt;alert" in html and "<script>" not in html
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_markdown_cells_escape_pipes_and_newlines_from_the_results(docs):
    old, new = copy.deepcopy(docs[0]), copy.deepcopy(docs[1])
    for doc in (old, new):
        for r in doc["runs"]:
            if r["case"] == "plain":
                r["case"] = "a|b\n| c"
    row = next(line for line in diff.to_markdown(diff.compare(old, new)).splitlines() if "a\\|b" in line)
    assert row.startswith("| 🔴 regression | a\\|b \\| c<br>") and row.count(" | ") == 4


def test_markdown_does_not_mention_people_named_in_the_results(docs):
    old, new = copy.deepcopy(docs[0]), copy.deepcopy(docs[1])
    for doc in (old, new):
        for r in doc["runs"]:
            if r["case"] == "plain":
                r["case"] = "@maintainers"
    md = diff.to_markdown(diff.compare(old, new))
    assert "@maintainers" not in md and "@\u200bmaintainers" in md and "torch@cpu" in md


# ---- where the pages go: a place that cannot take them is exit 2, and nothing is written ----

@pytest.mark.parametrize("option", ["--markdown", "--html"])
def test_cli_exits_2_when_an_output_names_a_directory_and_writes_nothing(paths, tmp_path, capsys, option):
    out = tmp_path / "a-directory"
    out.mkdir()
    assert main(["diff", str(paths[0]), str(paths[1]), option, str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"conformance diff: error: {option} {out}: is a directory (give the file to write)\n"
    assert captured.out == "" and list(out.iterdir()) == [] and list(tmp_path.iterdir()) == [out]


def test_cli_exits_2_when_an_output_cannot_be_written_and_prints_no_diff(paths, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["diff", str(paths[0]), str(paths[1]), "--html", str(blocker / "diff.html")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"conformance diff: error: --html {blocker / 'diff.html'}: cannot write: ")
    assert captured.out == "" and sorted(tmp_path.iterdir()) == [blocker]
