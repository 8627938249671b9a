"""``conformance explore``: the space it draws from, signatures, shrinking, the journal, findings.json,
and whole explores on real torch runs (fast: ~10 ms a run), from the command line as a user runs them.

The explores here run without the shipped catalogue, so that torch's documented second bias (a real
difference of its parameter count) is a finding: it must be found, shrunk to the smallest
configuration, confirmed on bare torch, and written as a case that ``conformance run`` fails on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conformance import spec
from conformance.explore import findings, journal, shrink, signature, space
from conformance.results import ResultsError

from helpers import foreground_popen, kill_group

torch_only = pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None,
                                reason="torch is not installed (pip install -c constraints.txt -e '.[torch]')")


def explore(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "explore", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def config_entries(out: Path) -> list[dict]:
    return [e for e in journal.Journal(out).read() if e["kind"] == "config"]


# ---- the space ----
def test_a_seed_draws_the_same_configurations_every_time():
    assert [space.draw(7, i) for i in range(50)] == [space.draw(7, i) for i in range(50)]


def test_two_seeds_draw_different_configurations():
    assert [space.draw(1, i) for i in range(20)] != [space.draw(2, i) for i in range(20)]


def test_every_drawn_configuration_is_a_valid_case():
    for i in range(400):
        spec.config_of(space.draw(11, i))        # raises SpecError otherwise


def test_the_space_covers_every_field_but_native():
    drawn = {k for i in range(3000) for k in space.draw(5, i)}
    assert drawn == set(spec.CONFIG_FIELDS) - set(space.NOT_DRAWN)


def test_the_draws_favour_edge_values():
    draws = [space.draw(3, i) for i in range(2000)]
    assert any(d.get("timesteps") == 0 for d in draws) and any(d.get("hidden_size") == 1 for d in draws)
    assert any(d.get("batch", 2) == d.get("timesteps", 3) for d in draws)
    assert any(0 in d.get("lengths", ()) for d in draws)


def test_a_combination_the_language_refuses_is_repaired_by_leaving_out_the_named_field():
    repaired = space.repair({"input_size": 2, "hidden_size": 3, "zero_output_for_mask": True})
    assert repaired == {"input_size": 2, "hidden_size": 3}


# ---- shrinking (a predicate of the fields: the shrinker itself, no framework) ----
def test_shrinking_keeps_only_the_fields_the_difference_needs_at_their_smallest():
    start = {"input_size": 5, "hidden_size": 8, "bidirectional": True, "batch": 4, "timesteps": 5,
             "dtype": "float64", "lengths": [5, 2, 0, 3], "go_backwards": True}

    def shows(v):         # "differs" whenever bidirectional with at least 2 units
        return v.get("bidirectional", False) and (v["hidden_size"] if isinstance(v["hidden_size"], int) else 0) >= 2

    minimal, tries, finished = shrink.shrink(start, shows)
    assert finished and minimal == {"input_size": 1, "hidden_size": 2, "bidirectional": True}
    assert tries <= 60


def test_shrinking_stops_at_its_budget_and_says_so():
    start = {"input_size": 5, "hidden_size": 8, "bidirectional": True, "batch": 4}
    minimal, tries, finished = shrink.shrink(start, lambda v: True, max_tries=2)
    assert tries == 2 and not finished and spec.config_of(minimal)


def test_sizes_shrink_toward_one_not_to_the_zero_edge():
    minimal, _, _ = shrink.shrink({"input_size": 4, "hidden_size": 6}, lambda v: True)
    assert minimal == {"input_size": 1, "hidden_size": 1}


# ---- signatures ----
def _record(impl, verdict, checks):
    return {"impl": impl, "device": "cpu", "verdict": verdict, "checks": checks}


def test_implementations_that_fail_the_same_check_the_same_way_share_one_signature():
    bad = {"verdict": "diverge", "details": {"tensors": [{"tensor": "output", "ok": True},
                                                         {"tensor": "layer0/forward/c", "ok": False}]}}
    recs = [_record("flax-linen", "diverge", {"values": bad}), _record("flax-nnx", "diverge", {"values": bad}),
            _record("torch", "agree", {"values": {"verdict": "agree", "details": {}}})]
    assert signature.signatures(recs) == {"values values@c: flax-linen+flax-nnx ≠ reference":
                                          {"check": "values", "kind": "values@c", "impls": ["flax-linen", "flax-nnx"]}}


def test_a_declared_or_stale_difference_is_not_a_finding_but_is_counted_under_its_declaration():
    known = {"verdict": "known-divergence", "details": {}, "divergence": {"id": "torch-double-bias"}}
    stale = {"verdict": "stale", "details": {}, "divergence": {"id": "too-broad"}}
    recs = [_record("torch", "known-divergence", {"param_count": known, "values": stale})]
    assert signature.signatures(recs) == {}
    assert signature.known(recs) == {"torch-double-bias": 1} and signature.known(recs, "stale") == {"too-broad": 1}


def test_a_run_that_crashed_has_an_error_signature_with_its_exception_type():
    rec = {"impl": "torch", "device": "gpu", "verdict": "error", "checks": {}, "fault": {"type": "MemoryError"}}
    assert list(signature.signatures([rec])) == ["error error:MemoryError: torch@gpu ≠ reference"]


def test_a_slug_is_a_safe_file_name_and_unique_per_signature():
    a, b = signature.slug("values values@c: a+b ≠ reference"), signature.slug("values values@h: a+b ≠ reference")
    assert a != b and all(c.isalnum() or c == "-" for c in a)


# ---- the journal ----
def entry(index: int) -> dict:
    return {"kind": "config", "index": index, "values": {"input_size": 1, "hidden_size": 1}, "signatures": {}}


def test_a_torn_last_journal_line_is_ignored_and_cut_off_before_the_next_line(tmp_path):
    j = journal.Journal(tmp_path)
    j.append(entry(0))
    j.close()
    with open(tmp_path / journal.JOURNAL, "a") as f:
        f.write('{"kind": "config", "ind')                      # a kill in the middle of a line
    assert [e["index"] for e in journal.Journal(tmp_path).read()] == [0]
    j = journal.Journal(tmp_path)
    j.append(entry(1))
    j.close()
    assert [e["index"] for e in journal.Journal(tmp_path).read()] == [0, 1]


def test_a_damaged_journal_line_is_an_error_naming_the_file_and_line(tmp_path):
    (tmp_path / journal.JOURNAL).write_text(json.dumps(entry(0)) + '\nnot json\n' + json.dumps(entry(1)) + '\n')
    with pytest.raises(journal.JournalError, match=r"journal.jsonl:2: not JSON"):
        journal.Journal(tmp_path).read()


# ---- findings.json from elsewhere ----
def _doc_with(entry_changes: dict) -> dict:
    sig = "param_count count: torch ≠ reference"
    entry = {"signature": sig, "slug": signature.slug(sig), "check": "param_count", "kind": "count",
             "impls": ["torch"], "configs": 1, "first": 0, "examples": [0], "seed": 0,
             "original": {"input_size": 1, "hidden_size": 1}, "minimal": {"input_size": 1, "hidden_size": 1},
             "shrink": {}, "agree": [], "unsupported": [], "facts": {}, "confirm": None, "reference": None,
             "case_file": f"cases/{signature.slug(sig)}.yaml", "report": f"findings/{signature.slug(sig)}/report.md"}
    entry.update(entry_changes)
    return {"schema_version": 1, "tool": "t", "settings": {"seed": 0, "impls": ["torch"], "devices": ["cpu"]},
            "state": {"stopped": "time", "configs": 1, "indices": [[0, 0]]},
            "throughput": {"configs": 1, "explore_s": 1.0, "shrink_s": 0.0, "confirm_s": 0.0},
            "findings": [entry], "known": {}, "stale": {}, "unused_declarations": [], "coverage": {}, "shards": []}


def test_a_valid_findings_document_loads(tmp_path):
    (tmp_path / "findings.json").write_text(json.dumps(_doc_with({})))
    assert findings.load(tmp_path)["findings"][0]["check"] == "param_count"


@pytest.mark.parametrize("change, message", [
    ({"case_file": "../../etc/passwd.yaml"}, "not a findings document"),
    ({"slug": "x"}, "is not its signature's"),
    ({"minimal": {"input_size": 1, "hidden_size": 1, "proj_size": 4}}, "not a valid case"),
    ({"minimal": {"input_size": 1}}, "not a valid case"),
])
def test_a_hostile_findings_document_is_refused_naming_the_file(tmp_path, change, message):
    (tmp_path / "findings.json").write_text(json.dumps(_doc_with(change)))
    with pytest.raises(ResultsError, match=message) as info:
        findings.load(tmp_path)
    assert "findings.json" in str(info.value)


# ---- the command line ----
@pytest.mark.parametrize("args, status, message", [
    ((), 4, "give --max-configs, --time or both"),
    (("--max-configs", "2", "--shard", "3/2"), 4, "--shard '3/2'"),
    (("--max-configs", "0"), 4, "--max-configs 0"),
    (("--time", "nan"), 4, "--time nan"),
    (("--max-configs", "2", "--impl", "nothing-*"), 4, "matches no implementation"),
    (("--resume", "nowhere"), 2, "explore.json: not found"),
])
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, status, message):
    proc = explore(*args, cwd=tmp_path)
    assert proc.returncode == status and message in proc.stderr, proc.stderr
    assert not (tmp_path / "reports").exists()


@pytest.fixture(scope="module")
def torch_explore(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    proc = explore("--impl", "torch", "--max-configs", "6", "--seed", "3", "--no-builtin-divergences",
                   "-o", "out", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, root / "out", proc


@torch_only
def test_an_explore_finds_an_undeclared_difference_and_shrinks_it_to_the_smallest_case(torch_explore):
    _, out, _ = torch_explore
    doc = findings.load(out)
    count = next(e for e in doc["findings"] if e["signature"] == "param_count count: torch ≠ reference")
    assert count["minimal"] == {"input_size": 1, "hidden_size": 1}
    assert count["shrink"]["finished"] and count["configs"] >= 1


@torch_only
def test_a_finding_is_confirmed_by_its_repro_on_bare_torch(torch_explore):
    _, out, _ = torch_explore
    entry = findings.load(out)["findings"][0]
    assert entry["confirm"]["torch"]["confirmed"], entry["confirm"]
    assert (out / "findings" / entry["slug"] / "repro-torch.py").read_text().startswith("import")
    assert "## torch" in (out / entry["report"]).read_text()


@torch_only
def test_a_findings_case_file_reproduces_it_with_conformance_run(torch_explore):
    root, out, _ = torch_explore
    entry = next(e for e in findings.load(out)["findings"] if e["check"] == "param_count")
    case_file = out / entry["case_file"]
    assert yaml.safe_load(case_file.read_text())["cases"][0]["id"] == entry["slug"]
    run = [sys.executable, "-m", "conformance.cli", "run", str(case_file), "--impl", "torch", "-o", "r", "--no-cache"]
    without = subprocess.run([*run, "--no-builtin-divergences"], cwd=root, capture_output=True, text=True, timeout=300)
    assert without.returncode == 1 and "param_count: diverge" in without.stdout, without.stdout
    declared = subprocess.run(run, cwd=root, capture_output=True, text=True, timeout=300)
    assert declared.returncode == 0, declared.stdout


@torch_only
def test_the_page_lists_findings_coverage_and_throughput(torch_explore):
    _, out, _ = torch_explore
    html = (out / "index.html").read_text()
    doc = findings.load(out)
    assert all(e["signature"] in html for e in doc["findings"])
    assert "Coverage of the space" in html and doc["throughput"]["configs"] == 6


@torch_only
def test_resume_goes_on_where_it_stopped_and_redoes_nothing(tmp_path):
    assert explore("--impl", "torch", "--max-configs", "3", "--seed", "4", "-o", "out", cwd=tmp_path).returncode == 0
    again = explore("--resume", "out", "--max-configs", "5", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [e["index"] for e in config_entries(tmp_path / "out")] == [0, 1, 2, 3, 4]
    assert findings.load(tmp_path / "out")["state"]["configs"] == 5


@torch_only
def test_an_explore_directory_is_not_overwritten_without_resume(tmp_path):
    assert explore("--impl", "torch", "--max-configs", "1", "-o", "out", cwd=tmp_path).returncode == 0
    again = explore("--impl", "torch", "--max-configs", "1", "-o", "out", cwd=tmp_path)
    assert again.returncode == 2 and "--resume out" in again.stderr


@torch_only
def test_shards_split_the_indices_and_their_findings_merge(tmp_path):
    for i in (1, 2):
        proc = explore("--impl", "torch", "--max-configs", "3", "--seed", "3", "--shard", f"{i}/2",
                       "--no-builtin-divergences", "-o", f"s{i}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert [e["index"] for e in config_entries(tmp_path / "s1")] == [0, 2, 4]
    assert [e["index"] for e in config_entries(tmp_path / "s2")] == [1, 3, 5]
    merged = explore("--merge", "s1", "s2", "-o", "all", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    doc = findings.load(tmp_path / "all")
    assert doc["state"]["configs"] == 6 and doc["state"]["indices"] == [[0, 5]]
    def shown(d):
        return sum(e["configs"] for e in d["findings"] if e["check"] == "param_count")

    assert shown(doc) >= 1 and shown(doc) == shown(findings.load(tmp_path / "s1")) + shown(findings.load(tmp_path / "s2"))
    assert all((tmp_path / "all" / e["case_file"]).is_file() for e in doc["findings"])


@torch_only
def test_ctrl_c_keeps_everything_found_so_far(tmp_path):
    proc = foreground_popen([sys.executable, "-m", "conformance.cli", "explore", "--impl", "torch", "--time", "600",
                             "-o", "out", "--no-builtin-divergences"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (len(config_entries(tmp_path / "out")) >= 3 if (tmp_path / "out").exists() else False):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    except BaseException:
        kill_group(proc)
        raise
    assert proc.returncode == 130, out
    doc = findings.load(tmp_path / "out")
    assert doc["state"]["stopped"] == "interrupted" and doc["state"]["configs"] >= 3


@pytest.mark.parametrize("settings, message", [
    ({"seed": 1, "impls": ["rm -rf"], "devices": ["cpu"], "shard": None, "divergences": [], "builtin": True},
     "are not implementations"),
    ({"seed": 1, "impls": ["torch"], "devices": ["tpu"], "shard": None, "divergences": [], "builtin": True},
     "are not cpu or gpu"),
    ({"seed": 1, "impls": ["torch"], "devices": ["cpu"], "shard": [3, 2], "divergences": [], "builtin": True},
     "is not [I, N]"),
    ({"seed": 1, "impls": ["torch"], "devices": ["cpu"], "shard": None, "divergences": ["/nowhere.yaml"],
      "builtin": True}, "are not catalogue files here"),
])
def test_resume_refuses_settings_it_cannot_trust(tmp_path, settings, message):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / journal.SETTINGS).write_text(json.dumps(settings))
    proc = explore("--resume", "out", "--max-configs", "1", cwd=tmp_path)
    assert proc.returncode == 4 and message in proc.stderr and "explore.json" in proc.stderr, proc.stderr


def test_a_journal_line_that_is_not_an_entry_is_refused_with_its_line(tmp_path):
    (tmp_path / journal.JOURNAL).write_text('{"kind": "config", "index": 0, "values": {}, "signatures": {}}\n'
                                            '{"kind": "config", "index": "0", "values": [], "signatures": {}}\n')
    with pytest.raises(journal.JournalError, match=r"journal.jsonl:2: not a journal entry"):
        journal.Journal(tmp_path).read()
