"""`conformance run --shape-only`: a session of the frameworks' shape inference alone, said as such in
results.json and the report, and never mixed up with an eager session's runs."""

from __future__ import annotations

import json

from helpers import THREE, project, run

CASES = """
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: plain
    return_sequences: true
    return_state: true
  - id: with-a-claim
    claims:
      - {source: doc, impl: torch, outputs: [[2, 3, 4], [1, 2, 4], [1, 2, 4]]}
      - {source: doc, impl: torch, values: {output: [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]}}
"""


def session(tmp_path, cases: str, *args: str) -> tuple:
    """A session of ``cases`` with ``args`` into ``out/``, which must pass: its project root and results."""
    root = project(tmp_path, mine=cases)
    proc = run(root, *args, "--conformance-out", "out")
    assert proc.returncode == 0, proc.stdout
    return root, json.loads((root / "out" / "results.json").read_text())


def test_a_shape_only_session_asks_only_the_shape_checks_and_says_so(tmp_path):
    root, doc = session(tmp_path, CASES, "--shape-only")
    assert doc["environment"]["shape_only"] is True
    assert {r["mode"] for r in doc["runs"]} == {"shape-only"}
    asked = {name for r in doc["runs"] for name in r["checks"]}
    assert asked <= {"accepts", "output_shape", "state_shapes", "dtype", "param_count", "claims"}
    assert {"output_shape", "state_shapes", "param_count"} <= asked
    claim = next(r for r in doc["runs"] if r["case"] == "with-a-claim")["checks"]["claims"]["details"]
    assert len(claim["claims"]) == 1 and "not asked in shape-only mode" in claim["not_asked"]
    html = (root / "out" / "index.html").read_text()
    assert 'id="shape-only-banner"' in html


def test_an_eager_session_records_the_symbolic_inference_beside_the_run(tmp_path):
    root, doc = session(tmp_path, THREE)
    assert {r["mode"] for r in doc["runs"]} == {"eager"}
    assert "shape_only" not in doc["environment"]
    assert all("symbolic" in r["native"] and "symbolic" in r["checks"] for r in doc["runs"])
    assert 'id="shape-only-banner"' not in (root / "out" / "index.html").read_text()


def test_filling_an_eager_session_s_results_in_shape_only_mode_runs_everything_again(tmp_path):
    root = project(tmp_path, mine=THREE)
    assert run(root, "--conformance-out", "eager").returncode == 0
    proc = run(root, "--shape-only", "--conformance-fill", "eager/results.json", "--conformance-out", "shapes")
    assert proc.returncode == 0, proc.stdout
    doc = json.loads((root / "shapes" / "results.json").read_text())
    assert sorted(r["mode"] for r in doc["runs"]) == ["shape-only"] * 3


def test_no_symbolic_leaves_the_shape_inference_out_of_an_eager_session(tmp_path):
    _, doc = session(tmp_path, THREE, "--no-symbolic")
    assert doc["environment"]["symbolic"] is False
    assert not any("symbolic" in r["native"] or "symbolic" in r["checks"] for r in doc["runs"])
