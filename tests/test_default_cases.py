"""The default case set, run as a maintainer runs it: green on CPU, every divergence explained.

One real run of ``pytest cases/ -n 2`` over every implementation (in a subprocess, as a user
would: the ``default_run`` fixture in conftest.py), then questions asked of its results.json.
"""

import json
from pathlib import Path

import pytest

from conformance import impls, spec

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results(default_run):
    return default_run["doc"]


def test_the_default_case_set_is_green(results):
    failing = [f"{r['case']}[{r['impl']}]: {r['verdict']} {r['reason']}" for r in results["runs"]
               if r["verdict"] in ("diverge", "stale", "error")]
    assert not failing, "\n".join(failing) + results["_stdout"]
    assert results["_returncode"] == 0, results["_stdout"]


def test_every_case_ran_on_every_implementation(results):
    cases = {c.id for f in sorted((REPO / "cases").rglob("*.yaml")) for c in spec.load_file(f).cases}
    ran = {(r["case"], r["impl"]) for r in results["runs"]}
    assert ran == {(c, i) for c in cases for i in impls.ids()}
    assert not [r for r in results["runs"] if r["verdict"] == "skipped"], "an implementation is not installed"


def test_each_implementation_agrees_somewhere_and_explains_the_rest(results):
    for impl_id in impls.ids():
        verdicts = {r["verdict"] for r in results["runs"] if r["impl"] == impl_id}
        assert "agree" in verdicts or "known-divergence" in verdicts
        assert verdicts <= {"agree", "known-divergence", "unsupported"}


def test_unsupported_runs_say_why(results):
    for r in results["runs"]:
        if r["verdict"] == "unsupported":
            assert len(r["reason"]) > 20


def test_seed_claims_are_reported_true_and_false_with_real_values(results):
    claims = [c for r in results["runs"] if r["file"].endswith("seeds.yaml")
              for c in r["checks"].get("claims", {}).get("details", {}).get("claims", [])]
    false = [c for c in claims if not c["true"]]
    assert len(claims) >= 15 and len(false) >= 4
    order = next(c for c in false if "scenario 3" in c["source"])
    assert order["claimed"] == {"outputs": [[8, 128], [8, 128]], "roles": ["h", "c"]}
    assert order["real"] == {"outputs": [[8, 128], [8, 128], [8, 128]], "roles": ["output", "h", "c"]}


def test_every_declared_divergence_of_eager_runs_explains_some_run(results):
    used = {chk["divergence"]["id"] for r in results["runs"] for chk in r["checks"].values()
            if chk.get("divergence")}
    declared = {d.id for d in spec.load_file(REPO / "cases" / "divergences.yaml").divergences
                if "eager" in d.modes and not d.intermittent}
    assert declared <= used


def test_every_intermittent_declaration_is_about_some_run_of_the_default_set(results):
    """An intermittent difference (uninitialized memory) need not show in a given session, but its scope must hold
    a run of the default set, or nothing ever tests it."""
    cases = {c.id: c for f in sorted((REPO / "cases").rglob("*.yaml")) for c in spec.load_file(f).cases}
    intermittent = [d for d in spec.load_file(REPO / "cases" / "divergences.yaml").divergences if d.intermittent]
    assert intermittent
    for d in intermittent:
        assert any(d.applies(cases[r["case"]], r["impl"], r["device"], d.check, r["versions"])
                   for r in results["runs"] if r["verdict"] != "unsupported"), d.id


def test_every_declared_divergence_of_shape_only_runs_alone_explains_a_shape_only_run(tmp_path):
    """The default run is eager: a declaration about shape-only runs alone is asked of its cases shape-only."""
    import subprocess
    import sys

    only = [d for d in spec.load_file(REPO / "cases" / "divergences.yaml").divergences if d.modes == ("shape-only",)]
    assert only
    for d in only:
        out = tmp_path / d.id
        subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--shape-only", "--impl", ",".join(d.impl),
                        "--device", "cpu", "-k", "bi-true", str(REPO / "cases" / "upstream" / "torch.yaml"),
                        "-o", str(out), "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        doc = json.loads((out / "results.json").read_text())
        assert any((chk.get("divergence") or {}).get("id") == d.id for r in doc["runs"] for chk in r["checks"].values())
