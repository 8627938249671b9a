"""The CI recipe (``.github/workflows/conformance.yml``) works: its own ``run:`` commands, taken from
the file, run here as its jobs would (each shard a process of its own, artifacts laid out as
``actions/download-artifact`` lays them out), and the merge job's report and results equal one
unsharded session's, verdict for verdict.

The unsharded session is the default run the other tests share (all implementations); the shards
here cover two implementations of the recipe's matrix (torch and Keras on jax: two frameworks, two
artifacts per shard), with the recipe's shard count, to keep CI's time bounded (the full matrix is
the README's command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "conformance.yml"
IMPLS = ("torch", "keras-jax")


def recipe() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def step(job: str, name: str) -> str:
    (found,) = [s["run"] for s in recipe()["jobs"][job]["steps"] if s.get("name") == name]
    return found.replace(".venv/bin/", str(Path(sys.executable).parent) + "/")


def bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, **env})


def test_the_recipe_s_matrix_names_real_implementations_and_shards():
    from conformance import impls, shards
    matrix = recipe()["jobs"]["run"]["strategy"]["matrix"]
    import fnmatch
    for pattern in matrix["impl"]:
        assert any(fnmatch.fnmatchcase(i, pattern) for i in impls.ids()), pattern
    counts = {s.split("/")[1] for s in matrix["shard"]}
    assert len(counts) == 1 and len(matrix["shard"]) == int(counts.pop())
    assert all(shards._SHARD_RE.match(s) for s in matrix["shard"])


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """The recipe's jobs for IMPLS × its shards, then its merge job, in a directory of their own."""
    root = tmp_path_factory.mktemp("ci")
    run_step = step("run", "conformance run")
    jobs = [(impl, shard) for impl in IMPLS for shard in recipe()["jobs"]["run"]["strategy"]["matrix"]["shard"]]

    def job(index_and_job):
        index, (impl, shard) = index_and_job
        work = root / f"job-{index}"
        work.mkdir()
        proc = bash(run_step, work, IMPL=impl, DEVICE="cpu", SHARD=shard, RELEASE="pinned")
        artifact = root / "merge" / "results" / f"results-pinned-{index}"     # download-artifact's layout
        artifact.mkdir(parents=True)
        (artifact / "results.json").write_bytes((work / "out" / "results.json").read_bytes())
        return proc

    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(job, enumerate(jobs)))
    merge = bash(step("merge", "merge"), root / "merge")
    return {"root": root, "jobs": procs, "merge": merge}


def test_every_job_of_the_recipe_passes(merged):
    for proc in merged["jobs"]:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_merge_job_says_every_shard_arrived(merged):
    assert merged["merge"].returncode == 0, merged["merge"].stdout + merged["merge"].stderr
    assert merged["merge"].stdout.count("shards: 2 of 2 arrived") == len(IMPLS) * 2   # merged/ and merged/releases/


def test_the_merged_results_equal_the_unsharded_default_run_verdict_for_verdict(merged, default_run):
    doc = json.loads((merged["root"] / "merge" / "merged" / "results.json").read_text())

    def verdicts(runs):
        return {(r["file"], r["case"], r["impl"], r["device"]): (r["verdict"], {k: c["verdict"] for k, c in
                                                                             r["checks"].items()})
                for r in runs if r["impl"] in IMPLS}
    whole = verdicts(default_run["doc"]["runs"])
    assert verdicts(doc["runs"]) == whole and len(whole) > 300


def test_the_what_changed_step_diffs_the_merge_with_main_s_results(merged, default_run):
    work = merged["root"] / "merge"
    (work / "baseline").mkdir(exist_ok=True)
    runs = [r for r in default_run["doc"]["runs"] if r["impl"] in IMPLS]
    from conformance.results import write
    write(work / "baseline", runs)
    proc = bash(step("merge", "what changed since main"), work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (work / "summary.md").read_text()
    assert "0 regressions" in summary and f"{len(runs)} unchanged" in summary, summary
