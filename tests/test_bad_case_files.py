"""A case file that does not load is a collection error, in pytest and in the report, and the
rest of the case set still runs; an interrupted session's gaps are filled by a rerun with
``--conformance-fill``. Real pytest sessions on real torch runs."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.results import load

REPO = Path(__file__).resolve().parent.parent
GOOD = """
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: first
  - id: second
    bidirectional: true
  - id: third
    return_state: true
"""
BAD = """
cases:
  - id: typo
    input_size: 3
    hiden_size: 4
"""


def project(root: Path, **files: str) -> Path:
    (root / "cases").mkdir(parents=True, exist_ok=True)
    (root / "cases" / "divergences.yaml").write_text((REPO / "cases" / "divergences.yaml").read_text())
    for name, text in files.items():
        (root / "cases" / f"{name}.yaml").write_text(textwrap.dedent(text) + "\nlstm-conformance: 1\n")
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def pytest_run(root: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu",
                           "-p", "no:cacheprovider", "--conformance-out", "out", *args], cwd=root,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_bad_case_file_is_a_collection_error_and_the_other_files_still_run(tmp_path, xdist):
    root = project(tmp_path, good=GOOD, bad=BAD)
    proc = pytest_run(root, *xdist)
    assert proc.returncode == 1, proc.stdout
    assert "ERROR cases/bad.yaml" in proc.stdout
    assert "bad.yaml:5: case 'typo': field 'hiden_size': unknown field (did you mean 'hidden_size'?)" in proc.stdout
    assert "3 passed, 1 error" in proc.stdout
    assert sorted(r["case"] for r in load(root / "out/results.json")["runs"]) == ["first", "second", "third"]


def test_a_bad_case_file_is_named_in_results_json_and_in_the_report(tmp_path):
    root = project(tmp_path, good=GOOD, bad=BAD)
    pytest_run(root)
    (error,) = load(root / "out/results.json")["collection_errors"]
    assert error["file"] == "cases/bad.yaml" and "field 'hiden_size'" in error["message"]
    html = (root / "out/index.html").read_text()
    assert 'id="collection-errors"' in html and "1 case file did not load" in html and "hiden_size" in html


def test_a_session_whose_only_case_file_is_bad_still_writes_results_saying_so(tmp_path):
    root = project(tmp_path, bad=BAD)
    proc = pytest_run(root)
    assert proc.returncode == 1
    doc = load(root / "out/results.json")
    assert doc["runs"] == [] and doc["collection_errors"][0]["file"] == "cases/bad.yaml"


def test_a_python_test_module_that_fails_to_import_still_stops_the_session(tmp_path):
    """Only case files get to fail alone: pytest's own rule for Python collection errors stays."""
    root = project(tmp_path, good=GOOD)
    (root / "cases" / "test_broken.py").write_text("import no_such_module_here\n")
    proc = pytest_run(root)
    assert proc.returncode == 2 and "Interrupted: 1 error during collection" in proc.stdout


def test_a_rerun_with_conformance_fill_runs_only_what_a_killed_session_left(tmp_path):
    root = project(tmp_path, good=GOOD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu", "-p", "no:cacheprovider",
         "-v", "--conformance-out", "out", "--conformance-flush", "0"], cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "CONFORMANCE_FAULT": "hang:second"},
        start_new_session=True)
    for line in proc.stdout:
        if "first[torch-cpu] PASSED" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = load(root / "out/results.json")
    assert before["partial"] and [r["case"] for r in before["runs"]] == ["first"]
    (root / "kept.json").write_text((root / "out/results.json").read_text())

    rerun = pytest_run(root, "-v", "--conformance-fill", "kept.json")
    assert rerun.returncode == 0, rerun.stdout
    assert "first[torch-cpu]" not in rerun.stdout and "second[torch-cpu] PASSED" in rerun.stdout
    assert "1 runs taken from kept.json, 2 run now" in rerun.stdout
    after = load(root / "out/results.json")
    assert after["partial"] is None
    assert [r["case"] for r in after["runs"]] == ["first", "second", "third"]
    assert after["runs"][0] == before["runs"][0]      # the finished run was kept, not run again


def test_conformance_fill_refuses_a_file_that_is_not_results(tmp_path):
    root = project(tmp_path, good=GOOD)
    (root / "kept.json").write_text('{"schema": 1, "runs": [{}]}')
    proc = pytest_run(root, "--conformance-fill", "kept.json")
    assert proc.returncode == 4
    assert "--conformance-fill: kept.json: runs[0]: must contain" in proc.stderr


def test_a_case_id_defined_in_two_files_fails_the_second_naming_the_first(tmp_path):
    root = project(tmp_path, a_good=GOOD, b_again="cases:\n  - id: second\n    input_size: 2\n    hidden_size: 2\n")
    proc = pytest_run(root)
    assert proc.returncode == 1
    assert ("cases/b_again.yaml:2: case 'second': field 'id': duplicate case id: first defined at "
            "cases/a_good.yaml:5") in proc.stdout.replace(str(root) + "/", "")
    assert sorted(r["case"] for r in load(root / "out/results.json")["runs"]) == ["first", "second", "third"]


def test_conformance_validate_names_a_case_id_defined_in_two_files(tmp_path, capsys):
    from conformance.cli import main
    root = project(tmp_path, a_good=GOOD, b_again="cases:\n  - id: third\n    input_size: 2\n    hidden_size: 2\n")
    assert main(["validate", str(root / "cases")]) == 1
    assert "b_again.yaml:2: case 'third': field 'id': duplicate case id: first defined at" in capsys.readouterr().out
