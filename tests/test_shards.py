"""``--shard I/N`` splits a session's runs by each run's own key, and ``conformance report`` puts the
shards back together, saying whether every shard arrived."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conformance import shards

from helpers import THREE, project, run


def keys(n: int) -> list[tuple[str, str, str, str]]:
    return [("cases/a.yaml", f"case-{i}", impl, "cpu") for i in range(n) for impl in ("torch", "flax-linen")]


def test_a_run_s_shard_depends_only_on_its_own_key():
    before = {k: shards.shard_of(k, 4) for k in keys(50)}
    after = {k: shards.shard_of(k, 4) for k in keys(80)}        # 30 more cases added
    assert all(after[k] == s for k, s in before.items())


def test_shards_split_runs_roughly_evenly():
    counts = Counter(shards.shard_of(k, 4) for k in keys(500))
    assert set(counts) == {1, 2, 3, 4} and min(counts.values()) > 0.8 * 1000 / 4


@pytest.mark.parametrize("bad", ["0/2", "3/2", "2", "a/b", "1/0", "1/100001", ""])
def test_a_bad_shard_is_a_usage_error_before_any_run(tmp_path, bad):
    root = project(tmp_path, three=THREE)
    proc = run(root, "--shard", bad)
    assert proc.returncode == 4, proc.stdout
    assert "--shard" in proc.stdout and not (root / "reports").exists()


def shard_runs(root: Path, count: int) -> list[Path]:
    outs = []
    for i in range(1, count + 1):
        out = root / f"shard-{i}"
        proc = run(root, "--shard", f"{i}/{count}", "--conformance-out", str(out))
        assert proc.returncode in (0, 5), proc.stdout         # 5: this shard happened to get no run
        outs.append(out / "results.json")
    return outs


def report(root: Path, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "report", *map(str, files), "-o",
                           str(root / "merged")], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Eight torch cases split three ways, each shard a session of its own, and the same unsharded."""
    root = project(tmp_path_factory.mktemp("sharded"), eight="defaults: {input_size: 3, hidden_size: 4}\n"
                   "cases:\n" + "".join(f"  - id: case-{i}\n    timesteps: {i + 1}\n" for i in range(8)))
    files = [f for f in shard_runs(root, 3) if f.exists()]
    whole = run(root, "--conformance-out", str(root / "whole"))
    assert whole.returncode == 0, whole.stdout
    return root, files, json.loads((root / "whole" / "results.json").read_text())


def test_each_shard_records_which_it_is(sharded):
    _, files, _ = sharded
    docs = [json.loads(f.read_text()) for f in files]
    assert [d["shard"]["index"] for d in docs] == sorted(d["shard"]["index"] for d in docs)
    assert {d["shard"]["count"] for d in docs} == {3} and len({d["shard"]["group"] for d in docs}) == 1
    assert sum(d["shard"]["collected"] for d in docs) == 8 * len(docs)   # each collected all eight


def test_merged_shards_equal_the_unsharded_session_run_for_run(sharded):
    root, files, whole = sharded
    proc = report(root, *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "shards: 3 of 3 arrived" in proc.stdout
    merged = json.loads((root / "merged" / "results.json").read_text())

    def verdicts(doc):
        return {(r["case"], r["impl"]): (r["verdict"], {k: c["verdict"] for k, c in r["checks"].items()})
                for r in doc["runs"]}
    assert verdicts(merged) == verdicts(whole) and len(merged["runs"]) == 8
    assert merged["shards"]["complete"] and merged["partial"] is None


def test_a_missing_shard_is_said_and_fails_the_merge(sharded):
    root, files, _ = sharded
    proc = report(root, *files[:-1])
    assert proc.returncode == 1
    assert f"missing: {json.loads(files[-1].read_text())['shard']['index']}/3" in proc.stdout
    merged = json.loads((root / "merged" / "results.json").read_text())
    assert "did not arrive" in merged["partial"]["reason"]
    assert "did not arrive" in (root / "merged" / "index.html").read_text()


def test_the_same_shard_twice_is_refused_naming_both_files(sharded):
    root, files, _ = sharded
    proc = report(root, files[0], files[0])
    assert proc.returncode == 2 and "given twice" in proc.stderr


def test_a_run_in_the_wrong_shard_is_refused(sharded, tmp_path):
    root, files, _ = sharded
    doc = json.loads(files[0].read_text())
    doc["shard"]["index"] = doc["shard"]["index"] % 3 + 1        # says it is another shard
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    proc = report(root, edited)
    assert proc.returncode == 2 and "belongs to shard" in proc.stderr
