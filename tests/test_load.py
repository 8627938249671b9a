"""Load: a case set of 5,000 runs with ``-n 2`` keeps every result exactly once, and the framework
workers' memory stops growing. One real pytest session of real torch runs (about a minute here).

Memory: the run records say which worker process ran them (``worker_pid``), its nth run
(``timings.worker_run``) and its resident size after it (``timings.rss_mb``). Each of the 5,000
configurations is a new shape, and torch's oneDNN keeps a primitive cache of 1,024 entries
(``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, about 0.3 MiB per LSTM shape here): resident memory grows
while that cache fills, then stays flat. The test holds the workers to that: from their 1,100th run
on, at most 10% more.
"""

import itertools
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conformance import spec
from conformance.results import load

REPO = Path(__file__).resolve().parent.parent
AXES = {"hidden_size": range(1, 11), "input_size": range(1, 11), "timesteps": range(1, 6), "batch": range(1, 11)}
N_RUNS = 5000
CACHE_FILLED = 1100


@pytest.fixture(scope="module")
def load_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    (root / "cases").mkdir()
    (root / "cases" / "divergences.yaml").write_text((REPO / "cases" / "divergences.yaml").read_text())
    matrix = "\n".join(f"      {k}: [{', '.join(map(str, v))}]" for k, v in AXES.items())
    (root / "cases" / "load.yaml").write_text(f"lstm-conformance: 1\ncases:\n  - id: load\n    max_cases: {N_RUNS}\n    matrix:\n{matrix}\n")
    (root / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu", "-n", "2",
                           "-q", "-p", "no:cacheprovider", "--conformance-out", "out"], cwd=root,
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))
    return root, proc


def test_the_load_case_set_is_five_thousand_runs():
    assert len(list(itertools.product(*AXES.values()))) == N_RUNS


def test_every_run_passes_under_load(load_run):
    _, proc = load_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{N_RUNS} passed" in proc.stdout


def test_results_hold_every_run_exactly_once(load_run):
    root, _ = load_run
    doc = load(root / "out/results.json")           # validation refuses a run recorded twice
    expected = {c.id for c in spec.load_file(root / "cases" / "load.yaml").cases}
    assert len(expected) == N_RUNS
    assert [r["case"] for r in doc["runs"]] == sorted(expected)
    assert doc["partial"] is None
    assert {r["verdict"] for r in doc["runs"]} == {"known-divergence"}     # torch's second bias, nothing else


def test_runs_are_shared_between_the_two_xdist_workers(load_run):
    root, _ = load_run
    per_worker = defaultdict(int)
    for r in load(root / "out/results.json")["runs"]:
        per_worker[r["worker_pid"]] += 1
    assert len(per_worker) == 2 and min(per_worker.values()) > N_RUNS // 4


def test_worker_memory_is_flat_once_the_frameworks_cache_is_full(load_run):
    root, _ = load_run
    rss = defaultdict(dict)
    for r in load(root / "out/results.json")["runs"]:
        rss[r["worker_pid"]][r["timings"]["worker_run"]] = r["timings"]["rss_mb"]
    for pid, by_run in rss.items():
        last = max(by_run)
        assert last > CACHE_FILLED + 1000, f"worker {pid} made too few runs to judge"
        assert by_run[last] <= 1.10 * by_run[CACHE_FILLED], (
            f"worker {pid}: {by_run[CACHE_FILLED]} MiB after run {CACHE_FILLED}, {by_run[last]} MiB after run {last}")
