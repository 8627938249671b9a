"""What keeps a conformance run fast, checked for what it promises (not for how fast it is: that is
benchmarks/suite_speed.py's job): under ``-n 2`` each implementation starts once, and the JAX
implementations reuse compiled programs across sessions through JAX's persistent cache."""

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conformance import impls
from conformance.results import load
from conformance.scheduling import scope_of, ways

REPO = Path(__file__).resolve().parent.parent
CASES = """
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: grid
    matrix: {hidden_size: [1, 2, 3], bidirectional: [false, true]}
"""


def session(root: Path, impl: str, *args: str, env=None) -> dict:
    (root / "cases").mkdir(parents=True, exist_ok=True)
    (root / "cases" / "divergences.yaml").write_text((REPO / "cases" / "divergences.yaml").read_text())
    (root / "cases" / "grid.yaml").write_text("lstm-conformance: 1\n" + CASES)
    (root / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", impl, "--device", "cpu", "-p",
                           "no:cacheprovider", "--conformance-out", "out", *args], cwd=root, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:]
    doc = load(root / "out" / "results.json")
    doc["stdout"] = proc.stdout
    return doc


def framework_workers(doc: dict) -> dict[str, set]:
    pids = defaultdict(set)
    for r in doc["runs"]:
        pids[r["impl"]].add(r["worker_pid"])
    return pids


@pytest.mark.parametrize("nodeid,scope", [
    ("cases/a.yaml::grid.hidden_size-1[torch-cpu]", "torch-cpu"),
    ("cases/b.yml::x[flax-linen-optimized-gpu]", "flax-linen-optimized-gpu"),
    ("tests/test_spec.py::test_x[a-b]", "tests/test_spec.py::test_x[a-b]"),
])
def test_a_conformance_runs_unit_of_work_is_its_implementation_and_device(nodeid, scope):
    assert scope_of(nodeid) == scope


def test_one_implementation_on_two_xdist_workers_is_split_by_case_stably():
    assert ways(workers=2, columns=1) == 2 and ways(workers=2, columns=9) == 1
    scopes = {scope_of(f"cases/a.yaml::c{i}[torch-cpu]", 2) for i in range(20)}
    assert scopes == {"torch-cpu#0", "torch-cpu#1"}
    assert scope_of("cases/a.yaml::c3[torch-cpu]", 2) == scope_of("cases/a.yaml::c3[torch-cpu]", 2)


def test_with_n_2_each_implementation_is_started_once(tmp_path):
    doc = session(tmp_path, "torch,keras-torch", "-n", "2")
    assert {impl: len(p) for impl, p in framework_workers(doc).items()} == {"torch": 1, "keras-torch": 1}


def test_with_n_2_and_one_implementation_both_xdist_workers_run(tmp_path):
    doc = session(tmp_path, "torch", "-n", "2")
    assert len(framework_workers(doc)["torch"]) == 2


def test_an_explicit_dist_mode_is_left_to_xdist_and_a_run_made_twice_is_recorded_once(tmp_path):
    doc = session(tmp_path, "torch", "-n", "2", "--dist", "each")     # every xdist worker runs every item
    assert "12 passed" in doc["stdout"] and len(doc["runs"]) == 6


@pytest.mark.skipif(impls.get("flax-linen").missing() is not None, reason="flax is not installed")
def test_jax_implementations_keep_compiled_programs_in_the_persistent_cache(tmp_path):
    cache = tmp_path / "jax-cache"
    session(tmp_path / "first", "flax-linen", env={"CONFORMANCE_JAX_CACHE": str(cache)})
    entries = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert entries, "nothing was written to the JAX cache"
    session(tmp_path / "second", "flax-linen", env={"CONFORMANCE_JAX_CACHE": str(cache)})
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == entries   # the second run compiled nothing new


@pytest.mark.skipif(impls.get("flax-linen").missing() is not None, reason="flax is not installed")
def test_the_jax_cache_can_be_turned_off(tmp_path):
    home = tmp_path / "home"
    session(tmp_path / "off", "flax-linen", env={"CONFORMANCE_JAX_CACHE": "off", "XDG_CACHE_HOME": str(home)})
    assert not home.exists()


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx", "keras-jax"])
def test_runs_after_the_worker_frees_the_frameworks_caches_still_agree(tmp_path, impl):
    """The worker frees compiled programs every CONFORMANCE_RELEASE_EVERY runs (100 by default) so
    that memory stays bounded; here after every second run, and the later runs are still right."""
    if impls.get(impl).missing():
        pytest.skip(impls.get(impl).missing())
    doc = session(tmp_path, impl, env={"CONFORMANCE_RELEASE_EVERY": "2"})
    assert len(doc["runs"]) == 6
    assert {r["verdict"] for r in doc["runs"]} <= {"agree", "known-divergence"}
    assert {r["checks"]["values"]["verdict"] for r in doc["runs"]} == {"agree"}
