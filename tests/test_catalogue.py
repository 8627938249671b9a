"""The known-divergence catalogue travels with the package: a maintainer's case file anywhere is
judged by the shipped declarations, a project's own ``divergences.yaml`` (up to the rootdir) and
``--divergences`` add to them or replace them by id, and results.json says which were used.

Each test is a real ``conformance run`` on torch in a fresh directory outside this checkout, as a
maintainer would type it; torch's second bias vector (``torch-double-bias`` in the shipped
catalogue) is the divergence every case shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conformance import catalogue

from helpers import MARKER

CASES = """
cases:
  - id: mine-basic
    input_size: 3
    hidden_size: 4
"""


def conformance_run(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "run", *args, "-p", "no:cacheprovider"],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def declared_id(doc: dict) -> str | None:
    (run,) = doc["runs"]
    d = run["checks"]["param_count"].get("divergence")
    return d and d["id"]


def test_a_case_file_outside_any_checkout_is_judged_by_the_shipped_catalogue(tmp_path):
    (tmp_path / "mine.yaml").write_text(CASES)
    proc = conformance_run(tmp_path, "mine.yaml", "--impl", "torch", "-o", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results(tmp_path / "out")
    assert declared_id(doc) == "torch-double-bias"
    assert doc["catalogues"] == [{"path": "cases/divergences.yaml", "layer": "builtin"}]
    assert doc["environment"]["builtin_divergences"] is True


def test_no_builtin_divergences_turns_the_shipped_catalogue_off_and_the_failure_names_it(tmp_path):
    (tmp_path / "mine.yaml").write_text(CASES)
    proc = conformance_run(tmp_path, "mine.yaml", "--impl", "torch", "--no-builtin-divergences", "-o", "out")
    assert proc.returncode == 1
    assert "check param_count: diverge" in proc.stdout
    assert ("a declaration would explain it were it in scope: torch-double-bias (cases/divergences.yaml:"
            in proc.stdout)
    assert "the shipped catalogue is off (--no-builtin-divergences)" in proc.stdout
    doc = results(tmp_path / "out")
    (near,) = doc["runs"][0]["checks"]["param_count"]["near_misses"]
    assert near["id"] == "torch-double-bias" and doc["catalogues"] == []


def test_a_project_catalogue_replaces_a_shipped_declaration_of_the_same_id(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text(CASES)
    (tmp_path / "divergences.yaml").write_text(MARKER + textwrap.dedent("""
        divergences:
          - id: torch-double-bias
            impl: torch
            check: param_count
            reason: our own words for torch's second bias
    """))
    proc = conformance_run(tmp_path, "sub/mine.yaml", "--impl", "torch", "-o", "out")
    assert proc.returncode == 0, proc.stdout
    doc = results(tmp_path / "out")
    assert doc["runs"][0]["checks"]["param_count"]["divergence"]["reason"] == "our own words for torch's second bias"
    assert {"path": "divergences.yaml", "layer": "project"} in doc["catalogues"]


def test_a_catalogue_above_the_rootdir_does_not_apply(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "mine.yaml").write_text(CASES)
    (tmp_path / "divergences.yaml").write_text(MARKER + textwrap.dedent("""
        divergences:
          - id: from-above-the-rootdir
            impl: torch
            check: param_count
            reason: must not apply
    """))
    proc = conformance_run(project, "mine.yaml", "--impl", "torch", "--no-builtin-divergences", "-o", "out")
    assert proc.returncode == 1
    assert "from-above-the-rootdir" not in json.dumps(results(project / "out")["runs"])


def test_divergences_option_adds_a_catalogue_recorded_as_an_option(tmp_path):
    (tmp_path / "mine.yaml").write_text(CASES)
    (tmp_path / "extra.yaml").write_text(textwrap.dedent("""
        divergences:
          - id: mine-double-bias
            impl: torch
            check: param_count
            reason: torch keeps bias_ih and bias_hh
    """))
    proc = conformance_run(tmp_path, "mine.yaml", "--impl", "torch", "--no-builtin-divergences",
                           "--divergences", "extra.yaml", "-o", "out")
    assert proc.returncode == 0, proc.stdout
    doc = results(tmp_path / "out")
    assert declared_id(doc) == "mine-double-bias"
    assert doc["catalogues"] == [{"path": "extra.yaml", "layer": "option"}]


def test_the_shipped_catalogue_does_not_call_its_own_declarations_unused_for_your_cases(tmp_path):
    (tmp_path / "mine.yaml").write_text(CASES)
    proc = conformance_run(tmp_path, "mine.yaml", "--impl", "torch", "-o", "out")
    assert "explained no run" not in proc.stdout
    assert results(tmp_path / "out")["unused_divergences"] == []


def test_layers_replace_by_id_and_list_the_most_specific_first(tmp_path):
    from conformance.spec import Divergence

    def d(id_, reason):
        return Divergence(id=id_, impl=("torch",), check="param_count", reason=reason)

    chosen = catalogue.in_scope([[d("a", "shipped"), d("b", "shipped")], [d("a", "project")], [d("c", "option")]])
    assert [(x.id, x.reason) for x in chosen] == [("c", "option"), ("a", "project"), ("b", "shipped")]


def test_the_shipped_case_set_and_catalogue_are_package_data(tmp_path):
    assert (catalogue.shipped_cases() / "divergences.yaml").is_file()
    assert catalogue.shipped_label(catalogue.builtin_catalogue()) == "cases/divergences.yaml"
