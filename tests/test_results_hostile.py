"""Results files from elsewhere, one class of hostile input at a time: each is read and shown, or
refused with a ResultsError naming the file and the place (a JSON path, or a line and column), and
`conformance report` / `conformance diff` then exit 2 with that message, never a traceback and
never 1 (which `diff` means as "regressions"). And our own writer never writes what it would
refuse: a framework's NaN or infinity is written as a string JSON readers accept.

The documents are real torch runs (``real_results`` in conftest.py); the property tests over the
same classes are in test_results_validation.py.
"""

import copy
import json
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import report_data

from conformance import checks, explain, report, results
from conformance.cli import main
from conformance.results import ResultsError, dumps, load, summarize, validate, write

NAN, INF = float("nan"), float("inf")
REPO = Path(__file__).resolve().parent.parent


def strict(text: str):
    """JSON as every reader other than Python's reads it: NaN and Infinity are not JSON."""
    def refuse(literal):
        raise ValueError(f"{literal} is not JSON")
    return json.loads(text, parse_constant=refuse)


def a_run_with(doc: dict, check: str) -> dict:
    return next(r for r in doc["runs"] if check in r["checks"])


def max_abs(doc: dict) -> tuple:
    """Where the first values check keeps its first tensor's max_abs."""
    i = next(i for i, r in enumerate(doc["runs"]) if "values" in r["checks"])
    return ("runs", i, "checks", "values", "details", "tensors", 0, "max_abs")


SPLICE = "\u0000splice\u0000"


def spliced(doc: dict, path: tuple, literal: str) -> str:
    """The JSON text of ``doc`` (as results.json is written) with ``literal`` as the value at ``path``."""
    doc = copy.deepcopy(doc)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = SPLICE
    return json.dumps(doc, indent=1).replace(json.dumps(SPLICE), literal)


def consistent(doc: dict) -> dict:
    doc["summary"] = summarize(doc["runs"])
    return doc


def save(doc_or_text, path: Path) -> Path:
    path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text, indent=1))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ResultsError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


@pytest.fixture
def measured_nan(real_results) -> list[dict]:
    """The runs of a real session as record() keeps them had the framework returned NaN and
    infinities: the values check measured max_abs = nan, max_rel = inf (and so diverges), the
    padding check -inf."""
    runs = copy.deepcopy(real_results["runs"])
    run = a_run_with({"runs": runs}, "values")
    values = run["checks"]["values"]
    values["details"]["tensors"][0].update(max_abs=NAN, max_rel=INF, ok=False)
    values["verdict"], values["divergence"] = checks.DIVERGE, None
    run["verdict"] = checks.worst(c["verdict"] for c in run["checks"].values())
    a_run_with({"runs": runs}, "padding")["checks"]["padding"]["details"]["max_abs_at_padding"] = -INF
    runs[0]["timings"]["total_s"] = NAN
    return runs


# ---- NaN and infinity: written as strings, read and shown as such ----

def test_a_run_measured_as_nan_or_infinity_is_written_as_strings_json_readers_accept(measured_nan, tmp_path):
    doc = strict(write(tmp_path, measured_nan).read_text())
    tensor = a_run_with(doc, "values")["checks"]["values"]["details"]["tensors"][0]
    assert (tensor["max_abs"], tensor["max_rel"]) == ("NaN", "Infinity")
    assert a_run_with(doc, "padding")["checks"]["padding"]["details"]["max_abs_at_padding"] == "-Infinity"
    assert doc["runs"][0]["timings"]["total_s"] == "NaN"


def test_dumps_writes_numpy_nan_and_infinity_as_strings_too():
    text = dumps({"a": np.float32("nan"), "b": np.array([1.0, np.inf]), "c": [np.float64(-np.inf)], "d": 0.5})
    assert strict(text) == {"a": "NaN", "b": [1.0, "Infinity"], "c": ["-Infinity"], "d": 0.5}


def test_results_with_non_finite_measurements_load_and_show_in_the_report_diff_and_summary(
        real_results, measured_nan, tmp_path, capsys):
    before, after = write(tmp_path / "before", real_results["runs"]), write(tmp_path / "after", measured_nan)
    doc = load(after)
    assert a_run_with(doc, "values")["checks"]["values"]["details"]["tensors"][0]["max_abs"] == "NaN"
    page = report.write_report([after], tmp_path / "index.html", baseline=before).read_text()
    assert 'id="diff-section"' in page and "1 regression" in page
    assert "diverge" in "\n".join(report.text_summary(doc["runs"]))
    case = a_run_with(doc, "values")["case"]
    assert main(["diff", str(before), str(after), "--markdown", str(tmp_path / "d.md"),
                 "--html", str(tmp_path / "d.html")]) == 1
    assert f"REGRESSION: {case} on torch@cpu" in capsys.readouterr().out
    assert case in (tmp_path / "d.md").read_text() and case in (tmp_path / "d.html").read_text()


def test_the_report_embeds_strict_json_for_results_holding_non_finite_numbers(measured_nan, tmp_path):
    path = write(tmp_path, measured_nan)
    data = report_data(report.write_report([path], tmp_path / "index.html").read_text())
    details = [run[4] for run in data["runs"]]
    tensors = [t for d in details if "values" in d["checks"] for t in d["checks"]["values"]["details"]["tensors"]]
    assert ("NaN", "Infinity") in [(t["max_abs"], t["max_rel"]) for t in tensors]


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed: JSON.parse is tried in Python only")
def test_javascript_json_parse_reads_the_report_data_of_non_finite_results(measured_nan, tmp_path):
    path = write(tmp_path, measured_nan)
    data = report_data(report.write_report([path], tmp_path / "index.html").read_text())
    payload = tmp_path / "data.json"
    payload.write_text(dumps({**data, "runs": [[*run[:4], dumps(run[4])] for run in data["runs"]]}))
    script = ("const d = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));"
              "for (const r of d.runs) JSON.parse(r[4]); console.log(d.runs.length);")
    proc = subprocess.run(["node", "-e", script, str(payload)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(measured_nan)


def test_explain_shows_a_non_finite_measurement_as_it_is(measured_nan, tmp_path):
    record = a_run_with({"runs": measured_nan}, "values")
    assert "max abs error nan, max rel error inf" in explain.explain(record)
    loaded = a_run_with(load(write(tmp_path, [record])), "values")
    assert "max abs error NaN, max rel error Infinity" in explain.explain(loaded)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_bare_non_finite_literal_is_refused_naming_the_file_and_its_position(real_results, tmp_path, literal):
    text = spliced(real_results, max_abs(real_results), literal)
    message = refusal(save(text, tmp_path / "nan.json"))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f": {literal}" in ln)
    assert f"not valid JSON: {literal} at line {line} column " in message


# ---- numbers past what readers take ----

def test_a_number_past_the_float_range_is_refused_naming_its_place(real_results, tmp_path):
    message = refusal(save(spliced(real_results, max_abs(real_results), "1e400"), tmp_path / "big.json"))
    assert ".checks.values.details.tensors[0].max_abs: inf is not a finite number" in message


def test_an_integer_of_more_than_4300_digits_is_refused_naming_its_position(real_results, tmp_path):
    text = spliced(real_results, ("runs", 0, "fault"), "9" * 5000)
    line, column = next((i, ln.index("9999") + 1) for i, ln in enumerate(text.splitlines(), 1) if "9" * 5000 in ln)
    assert (f"not readable JSON: an integer of more than 4,300 digits at line {line} column {column} "
            in refusal(save(text, tmp_path / "digits.json")))


@pytest.mark.parametrize("where", [("config", "input_size"), ("native", "param_count"),
                                   ("reference", "input_shape", 0), ("checks", "param_count", "details", "observed"),
                                   ("line",), ("worker_pid",)])
@pytest.mark.parametrize("value", [2**53 + 1, 2**64, -1])
def test_counts_and_sizes_outside_0_to_2_53_are_refused(real_results, where, value):
    doc = copy.deepcopy(real_results)
    node = a_run_with(doc, "param_count")
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    with pytest.raises(ResultsError) as info:
        validate(doc, "big.json")
    place = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where)
    assert f"{place}: must be" in str(info.value)


def test_counts_up_to_2_53_are_read_and_drawn(real_results):
    doc = copy.deepcopy(real_results)
    for r in doc["runs"]:
        if "param_count" in r["checks"]:
            r["checks"]["param_count"]["details"]["observed"] = 2**53
    page = report.render([("big.json", validate(doc))])
    assert "<svg" in page


# ---- nesting ----

def test_nesting_10000_levels_deep_is_refused(real_results, tmp_path):
    text = spliced(real_results, ("runs", 0, "fault"), "[" * 10_000 + "]" * 10_000)
    assert "nested too deeply to read" in refusal(save(text, tmp_path / "deep.json"))


def test_nesting_past_64_levels_is_refused_naming_where(real_results, tmp_path):
    text = spliced(real_results, ("runs", 0, "fault"), "[" * 100 + "]" * 100)
    assert ".fault[0][0][0]" in refusal(save(text, tmp_path / "deep.json"))


# ---- names, nulls, strings ----

@pytest.mark.parametrize("field", ["impl", "device"])
@pytest.mark.parametrize("name", ["tor@ch", "cpu#1", "cases/x", "a b", "", "Torch", "-x", "x" * 101])
def test_an_impl_or_device_name_the_suite_would_not_write_is_refused(real_results, field, name):
    doc = copy.deepcopy(real_results)
    doc["runs"][0][field] = name
    with pytest.raises(ResultsError, match=rf"runs\[0\].*\.{field}: must"):
        validate(consistent(doc), "names.json")


def test_a_device_named_gpu_0_is_read_and_shown(real_results):
    doc = copy.deepcopy(real_results)
    for r in doc["runs"]:
        r["device"] = "gpu:0"
    page = report.render([("gpu.json", validate(consistent(doc)))])
    assert {c["key"] for c in report_data(page)["cols"]} == {"torch@gpu:0"}


def test_a_null_where_the_report_shows_a_measured_number_is_refused(real_results):
    doc = copy.deepcopy(real_results)
    a_run_with(doc, "values")["checks"]["values"]["details"]["tensors"][0]["max_abs"] = None
    with pytest.raises(ResultsError, match=r"\.checks\.values\.details\.tensors\[0\]\.max_abs: must be number"):
        validate(doc, "null.json")


def test_a_null_parameter_count_is_shown_and_left_out_of_the_chart(real_results):
    doc = copy.deepcopy(real_results)
    for r in doc["runs"]:
        if "param_count" in r["checks"]:
            r["checks"]["param_count"]["details"]["observed"] = None
    ctx = report.build([("null.json", validate(doc))])
    assert ctx["charts"] == []
    assert any(None in counts[0:1] for row in ctx["param_rows"] for counts in row["counts"].values())


def test_a_lone_surrogate_in_a_string_is_refused(real_results, tmp_path):
    text = json.dumps(real_results).replace('"machine": "', '"machine": "\\ud800', 1)
    assert "environment.machine: a string holding a lone UTF-16 surrogate" in refusal(save(text, tmp_path / "s.json"))


def test_control_characters_from_the_file_are_escaped_in_the_refusal(real_results):
    doc = copy.deepcopy(real_results)
    doc["runs"][0]["case"] = "x\x1b[2J\u202ey"
    doc["runs"][0]["line"] = "one"
    with pytest.raises(ResultsError) as info:
        validate(doc, "ctl.json")
    assert "(x\\x1b[2J\\u202ey on torch@cpu)" in str(info.value)
    assert "\x1b" not in str(info.value) and "\u202e" not in str(info.value)


# ---- size, before anything is parsed ----

def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:                  # sparse: nothing is on disk, nothing is read
        f.truncate(results.MAX_BYTES + 1)
    tracemalloc.start()
    try:
        message = refusal(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than a results file may be (256 MiB" in message and peak < 2**20


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_that_never_ends_is_refused_as_not_a_regular_file_without_reading_it(device):
    message, peak = refusal_and_peak_memory(Path(device))
    assert "a character device, not a regular file" in message and peak < 2**20


def refusal_and_peak_memory(path: Path) -> tuple[str, int]:
    """Why ``path`` is refused, and the most memory (bytes, tracemalloc) the refusal took."""
    tracemalloc.start()
    try:
        message = refusal(path)
        return message, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_file_of_mostly_brackets_is_refused_before_it_is_parsed(tmp_path):
    path = save('{"schema": 1, "runs": [], "x": [' + "[]," * 3_000_000 + "[]]}", tmp_path / "brackets.json")
    message, peak = refusal_and_peak_memory(path)
    assert "3,000,004 '[' and '{' in 9,000,036 characters: not a results file" in message
    assert peak < 4 * path.stat().st_size          # parsing it would take ~25x (a list is ~64 bytes)


def test_a_file_of_mostly_short_strings_is_refused_before_it_is_parsed(tmp_path):
    path = save('{"schema": 1, "runs": [], "x": [' + '"ab",' * 2_000_000 + '"ab"]}', tmp_path / "strings.json")
    message, peak = refusal_and_peak_memory(path)
    assert "2,000,002 ',' in 10,000,038 characters: not a results file" in message
    assert peak < 4 * path.stat().st_size          # parsing it would take ~10x (a short string is ~50 bytes)


def test_real_results_written_compactly_are_within_the_element_limit(real_results):
    text = json.dumps(real_results, separators=(",", ":"))
    assert len(text) / text.count(",") > 1.5 * results.BYTES_PER_ELEMENT


def test_real_results_written_compactly_are_within_the_container_limit(real_results, tmp_path):
    text = json.dumps(real_results, separators=(",", ":"))
    assert len(text) / (text.count("[") + text.count("{")) > 1.5 * results.BYTES_PER_CONTAINER
    assert load(save(text, tmp_path / "compact.json")) == real_results


# ---- load raises nothing but ResultsError ----

@pytest.mark.parametrize("content", [
    b"\xff\xfe{}", b"\xef\xbb\xbf{}", b"", b"\x00" * 100, b'{"schema": 1, "runs": [' * 2, b"[" * 5000,
    b'{"schema": 1, "runs": "' + b"\\ud800" * 3 + b'"}', b'{"schema": 1e999, "runs": []}',
    b'{"schema": true, "runs": []}',
    b'{"schema": 1, "runs": [], "runs": {}}', b'"just a string"', b"1" * 5000,
])
def test_load_raises_only_results_error_for_any_bytes(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    refusal(path)


@pytest.mark.parametrize("make", ["directory", "no permission to read", "a fifo of garbage", "a dangling link"])
def test_load_raises_only_results_error_for_any_path(tmp_path, make):
    writer = None
    path = tmp_path / "results.json"
    if make == "directory":
        path.mkdir()
    elif make == "no permission to read":
        if os.geteuid() == 0:
            pytest.skip("root reads every file")
        path.write_text("{}")
        path.chmod(0)
    elif make == "a fifo of garbage":
        os.mkfifo(path)
        writer = subprocess.Popen(["sh", "-c", f"printf '{{\"schema\": 1, \"runs\": [NaN' > '{path}'"])
    else:
        path.symlink_to(tmp_path / "nowhere")
    try:
        refusal(path)
    finally:
        if writer is not None:      # refused unread: the writer may still wait for a reader
            writer.kill()
            writer.wait(timeout=30)


# ---- anything that is not a regular file is refused at once, never read ----

def run_with_deadline(argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """A command that must end by itself (a read of a FIFO with no writer would block for ever)."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_a_named_pipe_as_a_results_file_is_refused_at_once_naming_it(tmp_path):
    os.mkfifo(tmp_path / "f.json")
    assert "f.json: cannot be read: a named pipe (FIFO), not a regular file" in refusal(tmp_path / "f.json")


@pytest.mark.parametrize("command", [["report", "f.json", "-o", "out"], ["diff", "f.json", "f.json"],
                                     ["report", "/dev/zero", "-o", "out"]])
def test_report_and_diff_of_a_named_pipe_or_a_device_exit_2_at_once(tmp_path, command):
    os.mkfifo(tmp_path / "f.json")
    done = run_with_deadline([str(REPO / ".venv" / "bin" / "conformance"), *command], tmp_path)
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr


def test_a_session_filling_from_a_named_pipe_is_refused_at_once(tmp_path):
    from helpers import project, run

    root = project(tmp_path, one="defaults: {input_size: 3, hidden_size: 4}\ncases:\n  - id: one\n")
    os.mkfifo(root / "f.json")
    done = run(root, "--collect-only", "-q", "--conformance-fill", "f.json", timeout=120)
    assert done.returncode != 0
    assert "--conformance-fill: f.json: cannot be read: a named pipe (FIFO), not a regular file" in done.stdout


def test_a_symlink_to_a_results_file_is_read(real_results, tmp_path):
    target = save(real_results, tmp_path / "real.json")
    (tmp_path / "link.json").symlink_to(target)
    assert load(tmp_path / "link.json") == real_results


# ---- consistency: partial, and runs with no checks ----

def test_partial_finished_must_equal_the_number_of_runs(real_results, tmp_path):
    doc = copy.deepcopy(real_results)
    doc["partial"] = {"reason": "edited", "finished": 999, "expected": 1}
    message = refusal(save(doc, tmp_path / "partial.json"))
    assert f"partial.finished: says 999 runs finished, but the file holds {len(doc['runs'])}" in message


def test_partial_expected_may_not_be_fewer_than_the_runs_that_finished(real_results, tmp_path):
    doc = copy.deepcopy(real_results)
    doc["partial"] = {"reason": "edited", "finished": len(doc["runs"]), "expected": 1}
    assert "partial.expected: says 1 runs were expected, fewer than the" in refusal(save(doc, tmp_path / "p.json"))


@pytest.mark.parametrize("expected", [None, 0, 3])
def test_a_consistent_partial_document_is_read(real_results, expected):
    doc = copy.deepcopy(real_results)
    n = len(doc["runs"])
    doc["partial"] = {"reason": "the session was interrupted", "finished": n,
                      "expected": None if expected is None else n + expected}
    assert validate(doc) is doc


@pytest.mark.parametrize("verdict", ["agree", "known-divergence", "diverge", "stale"])
def test_a_run_with_no_checks_and_a_checked_verdict_is_refused(real_results, verdict):
    doc = copy.deepcopy(real_results)
    i = next(i for i, r in enumerate(doc["runs"]) if r["checks"])
    doc["runs"][i]["checks"], doc["runs"][i]["verdict"] = {}, verdict
    with pytest.raises(ResultsError) as info:
        validate(consistent(doc))
    assert f"runs[{i}] (" in str(info.value) and f"verdict {verdict!r} but no checks" in str(info.value)


@pytest.mark.parametrize("verdict", ["unsupported", "skipped", "error"])
def test_a_run_with_no_checks_may_be_unsupported_skipped_or_an_error(real_results, verdict):
    doc = copy.deepcopy(real_results)
    doc["runs"][0]["checks"], doc["runs"][0]["verdict"] = {}, verdict
    assert validate(consistent(doc)) is doc


# ---- the commands: exit 2 with the located message ----

HOSTILE_FILES = {
    "NaN": lambda doc: spliced(doc, max_abs(doc), "NaN"),
    "deep": lambda doc: spliced(doc, ("runs", 0, "fault"), "[" * 10_000 + "]" * 10_000),
    "digits": lambda doc: spliced(doc, ("runs", 0, "fault"), "7" * 4400),
    "impl with @": lambda doc: spliced(doc, ("runs", 0, "impl"), '"tor@ch"'),
    "null max_abs": lambda doc: spliced(doc, max_abs(doc), "null"),
}
WHERE = {"NaN": "at line ", "deep": "nested too deeply", "digits": "at line ", "impl with @": ".impl: must match",
         "null max_abs": ".max_abs: must be number"}


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
def test_report_and_diff_exit_2_naming_the_file_and_the_place(real_results, tmp_path, capsys, kind):
    good = save(real_results, tmp_path / "good.json")
    bad = save(HOSTILE_FILES[kind](real_results), tmp_path / "bad.json")
    assert main(["report", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert main(["diff", str(good), str(bad)]) == 2
    assert main(["report", str(good), "-o", str(tmp_path / "out"), "--baseline", str(bad)]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 3 and not (tmp_path / "out").exists()
    for line, command in zip(lines, ["report", "diff", "report"]):
        assert line.startswith(f"conformance {command}: error: {bad}: ") and WHERE[kind] in line

