"""Where reports are written, what survives an interruption, merging, and escaping (no browser here:
tests/test_report_browser.py opens the pages). Runs are real torch runs in real worker processes."""

import copy
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from markupsafe import escape

from conformance import report
from conformance.fields import freeze
from conformance.cli import main
from conformance.impls import get
from conformance.results import load, validate
from helpers import foreground_popen

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = (REPO / "cases" / "divergences.yaml").read_text()

CASES = """
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: first
  - id: second
    bidirectional: true
  - id: third
    return_state: true
"""


def make(root: Path, text: str = CASES, catalogue: str | None = CATALOGUE) -> Path:
    (root / "cases").mkdir(parents=True, exist_ok=True)
    (root / "cases" / "demo.yaml").write_text(textwrap.dedent(text) + "\nlstm-conformance: 1\n")
    if catalogue is not None:
        (root / "cases" / "divergences.yaml").write_text(catalogue)
    # the project's own copy of the catalogue decides (or none does): the shipped one is off
    (root / "pytest.ini").write_text("[pytest]\naddopts = --no-builtin-divergences\n")
    return root


def run_pytest(root: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu",
                           "-p", "no:cacheprovider", *args], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory) -> Path:
    """A plain `pytest cases` session, as a maintainer types it: no output option."""
    root = make(tmp_path_factory.mktemp("plain"))
    proc = run_pytest(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def test_a_pytest_session_writes_its_own_run_directory(torch_run):
    (run_dir,) = [d for d in (torch_run / "reports").iterdir() if d.name != "latest"]
    assert (run_dir / "index.html").is_file()
    assert [r["case"] for r in load(run_dir / "results.json")["runs"]] == ["first", "second", "third"]


def test_a_pytest_session_refreshes_reports_latest(torch_run):
    (run_dir,) = [d for d in (torch_run / "reports").iterdir() if d.name != "latest"]
    for name in ("results.json", "index.html"):
        assert (torch_run / "reports/latest" / name).read_bytes() == (run_dir / name).read_bytes()


def test_a_finished_session_is_not_marked_partial(torch_run):
    assert load(torch_run / "reports/latest/results.json")["partial"] is None
    assert 'id="partial-banner"' not in (torch_run / "reports/latest/index.html").read_text()


def test_results_name_case_files_relative_to_the_rootdir(torch_run):
    doc = load(torch_run / "reports/latest/results.json")
    assert {r["file"] for r in doc["runs"]} == {"cases/demo.yaml"}
    declared = {chk["divergence"]["file"] for r in doc["runs"] for chk in r["checks"].values() if chk["divergence"]}
    assert declared == {"cases/divergences.yaml"}


def test_a_rerun_reports_what_changed_since_the_previous_run(tmp_path):
    root = make(tmp_path)
    assert run_pytest(root).returncode == 0
    (root / "cases" / "divergences.yaml").unlink()       # torch's double bias is no longer declared
    proc = run_pytest(root, "-k", "first or second")
    assert "since the previous run: 2 regressions, 0 fixed, 0 changed, 0 added, 0 removed, 0 unchanged" in proc.stdout
    html = (root / "reports/latest/index.html").read_text()
    assert 'id="diff-section"' in html and "torch-double-bias" in html


def test_no_conformance_report_writes_nothing(tmp_path):
    root = make(tmp_path)
    assert run_pytest(root, "--no-conformance-report").returncode == 0
    assert not (root / "reports").exists()


def test_a_session_stopped_by_x_leaves_a_partial_report_of_the_finished_runs(tmp_path):
    # without the catalogue torch's double bias is an undeclared divergence: the first run fails
    root = make(tmp_path, catalogue=None)
    proc = run_pytest(root, "-x", "--conformance-out", "out")
    assert proc.returncode == 1
    doc = load(root / "out/results.json")
    assert len(doc["runs"]) == 1
    assert doc["partial"]["finished"] == 1 and doc["partial"]["expected"] == 3
    html = (root / "out/index.html").read_text()
    assert 'id="partial-banner"' in html and "1 of 3 runs finished" in html


def test_an_interrupted_session_leaves_valid_results_and_a_partial_report(tmp_path):
    root = make(tmp_path)
    proc = foreground_popen(
        [sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu", "-p", "no:cacheprovider",
         "-v", "--conformance-out", "out"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CONFORMANCE_FAULT": "hang:second"})
    seen = []
    for line in proc.stdout:       # the first run finished; the second hangs in its worker
        seen.append(line)
        if "first[torch-cpu] PASSED" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, "".join(seen) + out
    doc = load(root / "out/results.json")
    assert [r["case"] for r in doc["runs"]] == ["first"]
    assert doc["partial"]["reason"] == "the session was interrupted"
    assert 'id="partial-banner"' in (root / "out/index.html").read_text()


def test_a_crashed_xdist_worker_leaves_a_partial_report_of_the_other_runs(tmp_path):
    root = make(tmp_path)
    proc = run_pytest(root, "-n", "2", "--conformance-out", "out", env={"CONFORMANCE_FAULT": "kill-runner:second"})
    assert proc.returncode == 1, proc.stdout
    doc = load(root / "out/results.json")
    assert sorted(r["case"] for r in doc["runs"]) == ["first", "third"]
    assert doc["partial"]["finished"] == 2 and doc["partial"]["expected"] == 3
    assert 'id="partial-banner"' in (root / "out/index.html").read_text()


def test_a_killed_session_leaves_valid_results_of_the_runs_that_finished(tmp_path):
    root = make(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu", "-p", "no:cacheprovider",
         "-v", "--conformance-out", "out", "--conformance-flush", "0"], cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "CONFORMANCE_FAULT": "hang:second"},
        start_new_session=True)
    for line in proc.stdout:
        if "first[torch-cpu] PASSED" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)          # pytest and its framework worker, no chance to clean up
    proc.wait(timeout=30)
    doc = load(root / "out/results.json")
    assert [r["case"] for r in doc["runs"]] == ["first"]
    assert doc["partial"] == {"reason": "the session is still running (or was killed)", "finished": 1,
                              "expected": 3}
    assert not list((root / "out").glob(".*.tmp"))


# ---- merging ----

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real runs with different settings: with the divergence catalogue, and without it."""
    docs = []
    for name, catalogue in (("with", CATALOGUE), ("without", None)):
        root = make(tmp_path_factory.mktemp(name), catalogue=catalogue)
        run_pytest(root, "--conformance-out", "out")
        docs.append(root / "out/results.json")
    return docs


def test_merged_results_sit_side_by_side_per_source_when_versions_match(two_runs):
    sources = [(str(p), load(p)) for p in two_runs]
    keys = report.columns(sources)
    version = sources[0][1]["runs"][0]["versions"]["torch"]
    machine = sources[0][1]["environment"]["machine"]
    assert keys[(0, "torch", "cpu")] == f"torch@cpu@{version}@{machine}#1"
    assert keys[(1, "torch", "cpu")] == f"torch@cpu@{version}@{machine}#2"


def test_merged_columns_are_named_by_the_versions_that_differ(two_runs):
    a, b = load(two_runs[0]), copy.deepcopy(load(two_runs[1]))
    for r in b["runs"]:
        r["versions"] = {**r["versions"], "torch": "9.9.9"}
    keys = report.columns([("a", a), ("b", b)])
    assert keys[(0, "torch", "cpu")] == f"torch@cpu@{a['runs'][0]['versions']['torch']}"
    assert keys[(1, "torch", "cpu")] == "torch@cpu@9.9.9"


def test_a_single_results_file_has_plain_impl_at_device_columns(two_runs):
    assert report.columns([("a", load(two_runs[0]))]) == {(0, "torch", "cpu"): "torch@cpu"}


def test_conformance_report_merges_files_with_a_baseline_diff(two_runs, tmp_path):
    assert main(["report", *map(str, two_runs), "-o", str(tmp_path), "--baseline", str(two_runs[0])]) == 0
    html = (tmp_path / "index.html").read_text()
    assert "merged from 2 results files" in html
    assert 'id="diff-section"' in html and "regression" in html


def test_conformance_report_refuses_a_file_that_is_not_results(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 1, "runs": [{"case": 1, "file": "f", "impl": "torch", "device": "cpu", '
                   '"verdict": "agree", "checks": {}, "config": {"input_size": 1, "hidden_size": 1}}]}')
    assert main(["report", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "bad.json: runs[0].case: must be string" in capsys.readouterr().err


# ---- escaping ----

HOSTILE = "<script>alert(1)</script>"


def hostile_doc(path: Path) -> dict:
    doc = copy.deepcopy(load(path))
    r = doc["runs"][0]
    r["case"] = HOSTILE
    r["reason"] = '<img src=x onerror="alert(2)">'
    chk = next(c for c in r["checks"].values() if c["divergence"])
    chk["divergence"] = {**chk["divergence"], "id": HOSTILE, "reason": HOSTILE, "link": "javascript:alert(3)"}
    doc["environment"]["machine"] = HOSTILE
    doc["environment"]["versions"] = {HOSTILE: {HOSTILE: HOSTILE}}
    return validate(doc)


def test_strings_from_results_are_escaped_in_the_page(two_runs):
    html = report.render([("x.json", hostile_doc(two_runs[0]))])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in html and 'onerror="' not in html
    assert 'href="javascript:' not in html


def test_a_report_is_one_self_contained_file(two_runs):
    html = report.render([("x.json", load(two_runs[0]))])
    assert "<link" not in html and " src=" not in html and "@import" not in html and "url(" not in html


# ---- parameter counts ----

def two_biases(column: str) -> bool:
    """Whether the implementation of a report column documents two bias vectors (torch's and the ONNX
    operator's count formula: 4H more per layer and direction than the canonical one)."""
    return get(column.rsplit("@", 1)[0]).param_formula in ("torch", "onnx")


def test_the_parameter_chart_shows_the_second_bias_of_torch_and_onnx_growing_with_hidden_size(default_run):
    ctx = report.build([("default", default_run["doc"])])
    chart = next(c for c in ctx["charts"] if "num_layers=1, bidirectional=False" in c["title"])
    lines = {tuple(l["names"]): [(h, d) for _x, _y, h, d in l["points"]] for l in chart["lines"]}
    assert ("torch@cpu",) in lines
    for names, points in lines.items():
        (second,) = {two_biases(n) for n in names}          # a line joins columns of one law
        # bias_hh (torch) or Rb (ONNX): 4H more per layer and direction; every other column the canonical count
        assert points == [(h, 4 * h if second else 0) for h, _ in points], names
    assert {"flax-linen@cpu", "keras-tensorflow@cpu"} <= {name for names in lines for name in names}


def test_each_chart_line_is_labelled_with_how_the_difference_grows_with_hidden_size(default_run):
    ctx = report.build([("default", default_run["doc"])])
    for chart in ctx["charts"]:
        for line in chart["lines"]:
            per_h = {d / h for _x, _y, h, d in line["points"] if h}     # (a layer of no units differs by nothing)
            assert len(per_h) == 1
            k = per_h.pop()
            assert line["law"] == ("0" if k == 0 else f"+{k:g}·H") and line["labels"][0] == line["law"] + ":"
    assert "+4·H" in report.render([("default", default_run["doc"])])


def test_the_parameter_table_has_one_row_per_configuration_with_every_column_s_count(default_run):
    runs = default_run["doc"]["runs"]
    ctx = report.build([("default", default_run["doc"])])
    assert len(ctx["param_rows"]) == len({tuple(freeze(r["config"][f]) for f in report.PARAM_FIELDS) for r in runs})
    for row in ctx["param_rows"]:
        cfg = row["config"]
        sizes = cfg["hidden_size"] if isinstance(cfg["hidden_size"], list) else [cfg["hidden_size"]] * cfg["num_layers"]
        second_bias = 4 * sum(sizes) * (2 if cfg["bidirectional"] else 1) * cfg["bias"]
        for col, (observed, _documented, _verdict) in row["counts"].items():
            impl = ctx["cols"][col]["impl"]
            assert observed - row["canonical"] == (second_bias if two_biases(impl) else 0), (impl, cfg)


def test_the_report_says_what_each_column_puts_at_padded_steps(default_run):
    ctx = report.build([("default", default_run["doc"])])
    seen = {(col, behaviour) for col, counts in ctx["padding"] for behaviour, _ in counts}
    expected = {(f"{r['impl']}@{r['device']}", r["checks"]["padding"]["details"]["behaviour"])
                for r in default_run["doc"]["runs"] if "padding" in r["checks"]}
    assert seen == expected
    assert {col for col, _ in seen} == {f"{r['impl']}@{r['device']}" for r in default_run["doc"]["runs"]
                                        if "output_shape" in r["checks"] and r["config"]["lengths"]
                                        and r["config"]["return_sequences"]}   # (not refused: it returned an output)


# ---- native structure: what each framework returns, in one line ----

def structure_of(doc: dict, case: str, impl: str) -> tuple[str, dict]:
    run = next(r for r in doc["runs"] if r["case"] == case and r["impl"] == impl)
    return report.native_structure(run["native"]["returns"]), run["config"]


CASE_WITH_STATES = "return-flags.return_sequences-true.return_state-true"


def test_torch_s_native_structure_is_the_output_then_the_stacked_states_in_a_tuple(default_run):
    line, cfg = structure_of(default_run["doc"], CASE_WITH_STATES, "torch")
    B, T, H, L = cfg["batch"], cfg["timesteps"], cfg["hidden_size"], cfg["num_layers"]
    assert line == f"out {B}×{T}×{H}, (h {L}×{B}×{H}, c {L}×{B}×{H})"


def test_keras_s_native_structure_is_the_output_then_each_state_flat(default_run):
    line, cfg = structure_of(default_run["doc"], CASE_WITH_STATES, "keras-tensorflow")
    B, T, H = cfg["batch"], cfg["timesteps"], cfg["hidden_size"]
    assert line == f"out {B}×{T}×{H}, h {B}×{H}, c {B}×{H}"


def test_flax_linen_s_native_structure_is_the_carry_c_first_then_the_output(default_run):
    line, cfg = structure_of(default_run["doc"], CASE_WITH_STATES, "flax-linen")
    B, T, H = cfg["batch"], cfg["timesteps"], cfg["hidden_size"]
    assert line == f"(c {B}×{H}, h {B}×{H}), out {B}×{T}×{H}"


def test_the_native_structure_counts_the_states_of_lower_layers_after_the_top_layer_s():
    returns = [{"path": "[0]", "role": "output", "shape": [2, 4]},
               {"path": "layers[0][1]", "role": "h", "shape": [2, 4], "top": False},
               {"path": "layers[0][2]", "role": "c", "shape": [2, 4], "top": False}]
    assert report.native_structure(returns) == "out 2×4 + 2 lower-layer states"


# ---- the first screen: environment once, the command typed, shards ----

def test_a_merged_report_says_each_environment_value_the_sources_share_once(real_results):
    ctx = report.build([("a/results.json", real_results), ("b/results.json", real_results)])
    rows = dict(ctx["environment"])
    assert rows.pop("results file") == ["a/results.json", "b/results.json"]
    assert all(len(values) == 1 for values in rows.values()), rows
    assert {"command", "machine", "Python", "torch"} <= set(rows)


def test_the_environment_shows_the_command_the_user_typed(real_results):
    command = ["conformance", "run", "--impl", "torch", "my cases.yaml"]
    doc = {**real_results, "environment": {**real_results["environment"], "command": command}}
    html = report.render([("x.json", doc)])
    assert f"<code>{escape(shlex.join(command))}</code>" in html


def test_without_a_recorded_command_the_environment_shows_the_session_s_arguments(real_results):
    assert "command" not in real_results["environment"]
    html = report.render([("x.json", real_results)])
    assert f"<code>{' '.join(real_results['argv'])}</code>" in html


def test_the_environment_is_collapsed(real_results):
    html = report.render([("x.json", real_results)])
    assert '<details id="environment">' in html


def test_a_combined_report_with_a_shard_missing_says_which_in_a_banner(real_results):
    doc = {**real_results, "shards": {"count": 4, "arrived": [1, 3, 4], "missing": [2], "complete": False}}
    html = report.render([("combined.json", doc)])
    assert 'id="shards-banner"' in html and "3 of 4 shards arrived; missing: 2/4" in html


def test_a_combined_report_of_every_shard_says_so_in_a_plain_line(real_results):
    doc = {**real_results, "shards": {"count": 4, "arrived": [1, 2, 3, 4], "missing": [], "complete": True}}
    html = report.render([("combined.json", doc)])
    assert 'id="shards-line"' in html and "All 4 shards arrived." in html and 'id="shards-banner"' not in html


def test_a_report_without_shards_says_nothing_of_them(real_results):
    html = report.render([("x.json", real_results)])
    assert 'id="shards-banner"' not in html and 'id="shards-line"' not in html


def test_one_shard_s_results_say_which_shard_in_the_environment(real_results):
    ctx = report.build([("shard.json", {**real_results, "shard": {"index": 2, "count": 4}})])
    assert dict(ctx["environment"])["shard"] == ["2 of 4"]


def test_counts_of_one_are_singular(real_results):
    doc = {**real_results, "runs": real_results["runs"][:1]}
    html = report.render([("x.json", doc)])
    assert '<p id="summary-line">1 run of 1 case on 1 implementation column' in html
