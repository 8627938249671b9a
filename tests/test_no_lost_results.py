"""No session loses its results, whatever happens to its inputs, its disk or its process, and bad
options are refused before any run. Each test is a real pytest session on real torch workers in a
temporary project (tests/helpers.py)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conformance.results import load
from helpers import (MARKER, THREE, finish, fill, leftover_workers, private_mount_prefix, project, run,
                     seen_from_outside, start, wait_for, with_tmpfs)

HANG_THIRD = {"CONFORMANCE_FAULT": "hang:third"}


def paused(root: Path, *args: str):
    """A session (``-v``) whose third run hangs, once its second has passed: ``(process, lines seen)``."""
    proc = start(root, "-v", *args, env=HANG_THIRD)
    seen: list[str] = []
    wait_for(proc, "second[torch-cpu] PASSED", seen)
    return proc, seen


def latest(root: Path) -> dict:
    return load(root / "reports" / "latest" / "results.json")


def cases_of(doc: dict) -> dict:
    return {r["case"]: r["verdict"] for r in doc["runs"]}


def no_temporary_files(directory: Path) -> list[str]:
    return [str(p) for p in directory.rglob("*.tmp")]


# ---- inputs that change while the session runs ----

@pytest.mark.parametrize("change", ["moved", "edited", "deleted"])
def test_a_case_file_changed_while_its_session_runs_still_gets_final_results_and_a_report(tmp_path, change):
    root = project(tmp_path, three=THREE)
    proc = start(root, "-v", "--run-timeout", "3", env=HANG_THIRD)
    seen = []
    wait_for(proc, "second[torch-cpu] PASSED", seen)      # third now hangs in its worker for 3 s
    case_file = root / "cases" / "three.yaml"
    if change == "moved":
        case_file.rename(root / "cases" / "renamed.yaml")
    elif change == "edited":
        case_file.write_text("cases: [this is: {not valid")
    else:
        case_file.unlink()
    out = finish(proc, seen)
    assert proc.returncode == 1, out                       # third timed out: an error verdict
    doc = latest(root)
    assert doc["partial"] is None
    assert cases_of(doc) == {"first": "known-divergence", "second": "known-divergence", "third": "error"}
    assert 'id="pending"' not in (root / "reports/latest/index.html").read_text()


def test_fill_keeps_the_runs_of_a_case_file_that_no_longer_exists(tmp_path):
    root = project(tmp_path, three=THREE)
    assert run(root, "--conformance-out", "first").returncode == 0
    (root / "cases" / "three.yaml").unlink()
    (root / "cases" / "other.yaml").write_text(MARKER + "cases:\n  - {id: other, input_size: 2, hidden_size: 2}\n")
    proc = run(root, "--conformance-fill", "first/results.json", "--conformance-out", "second")
    assert proc.returncode == 0, proc.stdout
    assert set(cases_of(load(root / "second/results.json"))) == {"first", "second", "third", "other"}


def test_fill_runs_again_a_recorded_run_whose_configuration_changed_since(tmp_path):
    root = project(tmp_path, three=THREE)
    assert run(root, "--conformance-out", "before").returncode == 0
    text = (root / "cases" / "three.yaml").read_text().replace("- id: second", "- id: second\n    hidden_size: 5")
    (root / "cases" / "three.yaml").write_text(text)
    proc = run(root, "-v", "--conformance-fill", "before/results.json", "--conformance-out", "after")
    assert proc.returncode == 0, proc.stdout
    assert "second[torch-cpu] PASSED" in proc.stdout and "first[torch-cpu] PASSED" not in proc.stdout
    assert "2 runs taken from before/results.json, 1 run now (1 of them again: their configuration changed" in proc.stdout
    runs = {r["case"]: r for r in load(root / "after/results.json")["runs"]}
    assert runs["second"]["config"]["hidden_size"] == 5 and runs["first"]["config"]["hidden_size"] == 4


FOURTEEN = "defaults: {input_size: 3, hidden_size: 4}\ncases:\n" + "".join(
    f"  - id: {c}{i}\n" for c in "ab" for i in range(1, 8))
XDIST_DEATH = {"CONFORMANCE_FAULT": "hang:a2;kill-runner:b5"}     # a2 pauses the session; b5's xdist worker dies


@pytest.mark.parametrize("change", ["case-file-edited", "catalogue-deleted"])
def test_with_n_2_a_worker_that_replaces_a_dead_one_reads_the_inputs_as_the_session_first_did(tmp_path, change):
    """The replacement xdist worker collects again: it reads the case files and catalogues as the
    session read them at its start, so the rest of the session runs the same cases, judged the same."""
    root = project(tmp_path, small=FOURTEEN)
    proc = start(root, "-v", "-n", "2", "--run-timeout", "3", env=XDIST_DEATH)
    seen = []
    wait_for(proc, "a1[torch-cpu]", seen)
    if change == "case-file-edited":
        with open(root / "cases" / "small.yaml", "a") as fh:
            fh.write("  - id: c9\n")
    else:
        (root / "cases" / "divergences.yaml").unlink()
    out = finish(proc, seen)
    assert proc.returncode == 1 and "INTERNALERROR" not in out, out
    doc = latest(root)
    verdicts = cases_of(doc)
    assert set(verdicts) == {f"{c}{i}" for c in "ab" for i in range(1, 8)} - {"b5"}, out
    assert set(verdicts.values()) == {"known-divergence", "error"}          # the same catalogue throughout
    assert doc["partial"]["reason"] == ("1 collected runs did not finish: an xdist worker crashed while running "
                                        "cases/small.yaml::b5[torch-cpu]")


def test_with_n_2_runs_a_replacement_worker_cannot_collect_are_given_up_with_the_reason(tmp_path):
    root = project(tmp_path, small=FOURTEEN)
    proc = start(root, "-v", "-n", "2", "--run-timeout", "3", env=XDIST_DEATH)
    seen = []
    wait_for(proc, "a1[torch-cpu]", seen)
    (root / "cases" / "small.yaml").rename(tmp_path / "moved.yaml")        # gone before the replacement collects
    out = finish(proc, seen)
    assert proc.returncode == 1 and "INTERNALERROR" not in out, out
    partial = latest(root)["partial"]
    assert partial["finished"] + 1 + int(partial["reason"].split(": ")[1].split()[0]) == 14
    assert "could not be run: the replacement for a crashed xdist worker collected other items" in partial["reason"]


def test_with_n_2_fill_from_reports_latest_survives_a_worker_death(tmp_path):
    """xdist workers are given the fill file's runs by the controller: a replacement worker does not
    read reports/latest/results.json, which by then names this session."""
    root = project(tmp_path, small=FOURTEEN)
    killed = start(root, "-v", "--conformance-flush", "0", env={"CONFORMANCE_FAULT": "hang:b2"})
    wait_for(killed, "b1[torch-cpu] PASSED")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    proc = run(root, "-n", "2", "--conformance-fill", "reports/latest/results.json",
               env={"CONFORMANCE_FAULT": "kill-runner:b5"})
    assert proc.returncode == 1 and "INTERNALERROR" not in proc.stdout, proc.stdout
    doc = latest(root)
    assert set(cases_of(doc)) == {f"{c}{i}" for c in "ab" for i in range(1, 8)} - {"b5"}
    assert "an xdist worker crashed while running cases/small.yaml::b5[torch-cpu]" in doc["partial"]["reason"]


def test_fill_from_another_case_files_results_runs_this_files_cases(tmp_path):
    other = project(tmp_path / "other", other=THREE)
    assert run(other, "--conformance-out", "out").returncode == 0
    root = project(tmp_path / "mine", three=THREE)
    proc = run(root, "--conformance-fill", str(other / "out/results.json"), "--conformance-out", "out")
    assert proc.returncode == 0, proc.stdout
    files = {(r["file"], r["case"]) for r in load(root / "out/results.json")["runs"]}
    assert files == {(f, c) for f in ("cases/other.yaml", "cases/three.yaml") for c in ("first", "second", "third")}


def test_fill_from_a_complete_results_file_runs_nothing_and_exits_with_its_verdicts(tmp_path):
    root = project(tmp_path, three=THREE)
    assert run(root, "--conformance-out", "done").returncode == 0
    proc = run(root, "--conformance-fill", "done/results.json", "--conformance-out", "again")
    assert proc.returncode == 0 and "3 runs taken from done/results.json, 0 run now" in proc.stdout


# ---- a full disk, an unwritable output ----

@pytest.fixture
def private_mount():
    prefix = private_mount_prefix()
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare -m / -rm both refused): cannot fill a disk safely")
    return prefix


def test_a_disk_that_fills_mid_session_is_said_once_and_the_final_write_lands_once_there_is_room(tmp_path,
                                                                                                  private_mount):
    root = project(tmp_path, four=THREE + "  - id: fourth\n")
    out = root / "out"
    out.mkdir()
    proc = start(root, "-v", "--conformance-out", str(out), "--conformance-flush", "0", "--run-timeout", "2",
                 env={"CONFORMANCE_FAULT": "hang:second;hang:fourth"},
                 prefix=with_tmpfs(private_mount, out, 256))
    seen = []
    wait_for(proc, "first[torch-cpu] PASSED", seen)
    filler = fill(seen_from_outside(proc, out))              # second's and third's flushes find no room
    wait_for(proc, "third[torch-cpu] PASSED", seen)
    filler.unlink()                                           # fourth's flush and the final write have room
    text = finish(proc, seen)
    assert proc.returncode == 1, text                         # second and fourth timed out
    assert text.count("warning: could not write") == 1, text
    assert "No space left on device" in text and "results.json written again" in text
    after = root / "out.after"                                # what the session left on its full disk
    doc = load(after / "results.json")
    assert doc["partial"] is None and set(cases_of(doc)) == {"first", "second", "third", "fourth"}
    assert 'id="pending"' not in (after / "index.html").read_text()
    assert not no_temporary_files(after)


def test_a_disk_that_stays_full_puts_the_final_results_in_the_temporary_directory_and_fails_the_session(
        tmp_path, private_mount):
    root = project(tmp_path, three=THREE)
    out, spare = root / "out", tmp_path / "spare-tmp"
    out.mkdir()
    spare.mkdir()
    proc = start(root, "--conformance-out", str(out), "--conformance-flush", "0",
                 env={"TMPDIR": str(spare)}, prefix=with_tmpfs(private_mount, out, 256))
    seen = []
    wait_for(proc, "LSTM conformance: results go to", seen)
    fill(seen_from_outside(proc, out))
    text = finish(proc, seen)
    assert proc.returncode == 1, text                          # every run passed; the results are not where asked
    (elsewhere,) = spare.glob("lstm-conformance-*")
    assert f"they were written to {elsewhere} instead" in text
    doc = load(elsewhere / "results.json")
    assert doc["partial"] is None and set(cases_of(doc)) == {"first", "second", "third"}
    assert (elsewhere / "index.html").is_file() and not no_temporary_files(root / "out.after")


def test_a_read_only_reports_directory_is_refused_before_any_run(tmp_path, private_mount):
    root = project(tmp_path, three=THREE)
    (root / "reports").mkdir()
    proc = run(root, prefix=with_tmpfs(private_mount, root / "reports", 64, "ro"))
    assert proc.returncode == 4
    assert f"{root / 'reports'} is not writable" in proc.stdout and "PASSED" not in proc.stdout


# ---- two sessions in one checkout ----

def test_two_sessions_at_once_each_write_a_whole_run_and_latest_names_one_of_them(tmp_path):
    root = project(tmp_path, three=THREE)
    a = start(root, "-k", "first or second")
    b = start(root, "-k", "third")
    for proc in (a, b):
        finish(proc)
        assert proc.returncode == 0
    runs = sorted(d for d in (root / "reports").iterdir() if not d.is_symlink())
    assert sorted(len(load(d / "results.json")["runs"]) for d in runs) == [1, 2]
    assert all('id="pending"' not in (d / "index.html").read_text() for d in runs)
    link = root / "reports" / "latest"
    assert link.is_symlink() and (root / "reports" / os.readlink(link)) in runs
    assert not no_temporary_files(root)


def test_a_second_session_writing_to_the_same_output_directory_is_refused_before_any_run(tmp_path):
    root = project(tmp_path, three=THREE)
    first = start(root, "-v", "--conformance-out", "shared", "--run-timeout", "20", env=HANG_THIRD)
    seen = []
    wait_for(first, "second[torch-cpu] PASSED", seen)
    second = run(root, "--conformance-out", "shared")
    os.killpg(first.pid, signal.SIGTERM)
    finish(first, seen)
    assert second.returncode == 4
    assert "shared: another session is writing there now (pid" in second.stdout


# ---- recovery after a kill ----

def test_after_a_sigkill_reports_latest_is_the_killed_sessions_partial_results_and_fill_completes_them(tmp_path):
    root = project(tmp_path, three=THREE)
    assert run(root, "-k", "first").returncode == 0               # a previous, finished session
    proc = start(root, "-v", "--conformance-flush", "0", env=HANG_THIRD)
    seen = []
    said = wait_for(proc, "LSTM conformance: results go to", seen)
    assert "--conformance-fill reports/latest/results.json" in said
    wait_for(proc, "second[torch-cpu] PASSED", seen)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = latest(root)
    assert killed["partial"] and set(cases_of(killed)) == {"first", "second"}
    assert 'id="pending"' in (root / "reports/latest/index.html").read_text()

    rerun = run(root, "-v", "--conformance-fill", "reports/latest/results.json")
    assert rerun.returncode == 0, rerun.stdout
    assert "did not finish (it was killed)" in rerun.stdout
    assert "third[torch-cpu] PASSED" in rerun.stdout and "first[torch-cpu] PASSED" not in rerun.stdout
    done = latest(root)
    assert done["partial"] is None and set(cases_of(done)) == {"first", "second", "third"}


def test_a_session_killed_in_an_output_directory_keeps_its_results_when_the_next_one_starts_there(tmp_path):
    root = project(tmp_path, three=THREE)
    proc, seen = paused(root, "--conformance-out", "out", "--conformance-flush", "0")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = run(root, "-k", "third", "--conformance-out", "out")
    (kept,) = (root / "out").glob("results-killed-*.json")
    assert f"they are kept as out/{kept.name}" in again.stdout
    assert set(cases_of(load(kept))) == {"first", "second"} and set(cases_of(load(root / "out/results.json"))) == {"third"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_while_the_session_stops_is_not_obeyed_until_its_results_are_written(tmp_path, sig):
    root = project(tmp_path, three=THREE)
    proc, seen = paused(root)
    os.kill(proc.pid, sig)
    time.sleep(0.05)
    os.kill(proc.pid, sig)
    out = finish(proc, seen)
    assert proc.returncode == 2 and "Traceback" not in out, out
    assert latest(root)["partial"]["reason"] == {"SIGINT": "the session was interrupted",
                                                 "SIGTERM": "the session was stopped by SIGTERM"}[sig.name]


def test_reports_latest_that_cannot_be_switched_at_the_end_is_said_and_the_results_stay_in_the_run(tmp_path):
    root = project(tmp_path, three=THREE)
    proc, seen = paused(root, "--run-timeout", "3")
    (root / "reports" / "latest").unlink()
    (root / "reports" / "latest" / "sub").mkdir(parents=True)              # someone's directory in its place
    out = finish(proc, seen)
    assert proc.returncode == 1
    assert "could not be pointed at this run" in out and "written to" not in out
    (run_dir,) = [d for d in (root / "reports").iterdir() if d.name != "latest"]
    assert len(load(run_dir / "results.json")["runs"]) == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_ends_the_session_with_partial_results_saying_so_and_a_report(tmp_path, sig):
    root = project(tmp_path, three=THREE)
    proc, seen = paused(root)
    os.kill(proc.pid, sig)
    finish(proc, seen)
    doc = latest(root)
    assert doc["partial"]["reason"] == f"the session was stopped by {sig.name}"
    assert set(cases_of(doc)) == {"first", "second"}
    assert 'id="partial-banner"' in (root / "reports/latest/index.html").read_text()
    assert not leftover_workers(root)


def test_a_session_stopped_by_x_says_so_as_its_partial_reason(tmp_path):
    root = project(tmp_path, catalogue=False, three=THREE)       # torch's second bias undeclared: first fails
    run(root, "-x", "--conformance-out", "out")
    reason = load(root / "out/results.json")["partial"]["reason"]
    assert reason == "2 collected runs did not finish: pytest stopped: stopping after 1 failures"


# ---- whose files are collected ----

def test_the_plugin_leaves_another_projects_yaml_under_a_cases_directory_alone(tmp_path):
    (tmp_path / "tests" / "cases").mkdir(parents=True)
    (tmp_path / "tests" / "cases" / "login.yaml").write_text("cases: [{name: x}]\n")
    (tmp_path / "tests" / "test_login.py").write_text("def test_login():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pytest.ini", "tests"]


def test_an_unmarked_case_file_runs_when_named_or_under_a_path_given_to_conformance_run(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.yaml").write_text(textwrap.dedent(THREE))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    common = ["--impl", "torch", "--device", "cpu", "-p", "no:cacheprovider", "--collect-only", "-q"]
    in_dir = subprocess.run([sys.executable, "-m", "pytest", "mine", *common], cwd=tmp_path, capture_output=True,
                            text=True)
    named = subprocess.run([sys.executable, "-m", "pytest", "mine/a.yaml", *common], cwd=tmp_path,
                           capture_output=True, text=True)
    given = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "mine", "--", *common], cwd=tmp_path,
                           capture_output=True, text=True)
    assert in_dir.returncode == 5                              # no marker, not named: not ours
    assert "mine/a.yaml::first[torch-cpu]" in named.stdout
    assert "mine/a.yaml: 3" in given.stdout                    # conformance run's own -q, and ours: -qq


# ---- options and environment values, checked before any run ----

@pytest.mark.parametrize("args,env,message", [
    (["--run-timeout", "inf"], {}, "--run-timeout inf: must be a finite number of seconds > 0"),
    (["--run-timeout", "0"], {}, "--run-timeout 0: must be a finite number of seconds > 0"),
    (["--run-timeout", "-5"], {}, "--run-timeout -5: must be a finite number of seconds > 0"),
    (["--run-timeout", "nan"], {}, "--run-timeout nan: must be a finite number of seconds > 0"),
    (["--conformance-flush", "-1"], {}, "--conformance-flush -1: must be a finite number of seconds >= 0"),
    ([], {"CONFORMANCE_RELEASE_EVERY": "0"}, "CONFORMANCE_RELEASE_EVERY='0': must be a whole number of runs >= 1"),
    ([], {"CONFORMANCE_RELEASE_EVERY": "ten"}, "CONFORMANCE_RELEASE_EVERY='ten': must be a whole number"),
    ([], {"CONFORMANCE_FAULT": "segfualt:x"}, "'segfualt' is not a fault kind"),
    (["--conformance-out", "pytest.ini"], {}, "--conformance-out pytest.ini: is a file, not a directory"),
    (["--divergences", "nowhere.yaml"], {}, "nowhere.yaml: cannot read file: [Errno 2] No such file"),
    (["--run-timeout", "1e12"], {}, "--run-timeout 1e+12: must be a finite number of seconds > 0, at most 1e+06"),
    (["--impl", ""], {}, "--impl '': names nothing; leave the option out for all"),
    (["--device", ","], {}, "--device ',': names nothing"),
    (["--conformance-out", ""], {}, "--conformance-out '': names no directory"),
    ([], {"CONFORMANCE_JAX_CACHE": "pytest.ini"}, "CONFORMANCE_JAX_CACHE='pytest.ini': is not a directory"),
], ids=["timeout-inf", "timeout-0", "timeout-negative", "timeout-nan", "flush-negative", "release-0",
        "release-text", "fault-typo", "out-is-a-file", "catalogue-missing", "timeout-huge", "impl-empty",
        "device-empty", "out-empty", "jax-cache-a-file"])
def test_a_bad_option_or_environment_value_is_a_usage_error_before_any_run(tmp_path, args, env, message):
    root = project(tmp_path, three=THREE)
    proc = run(root, *args, env=env)
    assert proc.returncode == 4, proc.stdout
    assert message in proc.stdout
    assert not (root / "reports").exists()


def test_reports_latest_as_a_plain_file_is_refused_before_any_run(tmp_path):
    root = project(tmp_path, three=THREE)
    (root / "reports").mkdir()
    (root / "reports" / "latest").write_text("not ours")
    proc = run(root)
    assert proc.returncode == 4 and "reports/latest is a file" in proc.stdout
    assert (root / "reports" / "latest").read_text() == "not ours"


def test_a_dangling_reports_latest_link_is_replaced_by_this_sessions(tmp_path):
    root = project(tmp_path, three=THREE)
    (root / "reports").mkdir()
    (root / "reports" / "latest").symlink_to("20000101-000000-dead")
    proc = run(root)
    assert proc.returncode == 0, proc.stdout
    assert "which no longer exists; it now points to this session" in proc.stdout
    assert len(latest(root)["runs"]) == 3


def test_a_reports_latest_directory_from_an_older_version_is_kept_as_a_run_of_its_own(tmp_path):
    root = project(tmp_path, three=THREE)
    assert run(root, "--conformance-out", "reports/latest").returncode == 0     # the old layout
    os.chmod(root / "reports" / "latest", 0o555)
    proc = run(root)
    assert proc.returncode == 0, proc.stdout
    (kept,) = (root / "reports").glob("*-latest")
    assert len(load(kept / "results.json")["runs"]) == 3 and (root / "reports" / "latest").is_symlink()
    assert "since the previous run: 0 regressions" in proc.stdout


# ---- catalogues and fault injection ----

def test_a_divergences_file_above_the_rootdir_does_not_apply_unless_asked_for(tmp_path):
    (tmp_path / "divergences.yaml").write_text((Path(__file__).parent.parent / "cases/divergences.yaml").read_text())
    root = project(tmp_path / "proj", catalogue=False, three=THREE)
    alone = run(root, "--conformance-out", "alone")
    asked = run(root, "--conformance-out", "asked", "--divergences", str(tmp_path / "divergences.yaml"))
    assert alone.returncode == 1 and set(cases_of(load(root / "alone/results.json")).values()) == {"diverge"}
    assert asked.returncode == 0 and set(cases_of(load(root / "asked/results.json")).values()) == {"known-divergence"}


def test_fault_injection_left_set_is_recorded_in_results_and_said(tmp_path):
    root = project(tmp_path, three=THREE)
    proc = run(root, "--conformance-out", "out", env={"CONFORMANCE_FAULT": "raise:no-such-case"})
    assert proc.returncode == 0
    assert load(root / "out/results.json")["environment"]["fault_injection"] == "raise:no-such-case"
    assert "warning: fault injection is on: CONFORMANCE_FAULT=raise:no-such-case" in proc.stdout


def test_runs_filled_from_a_session_with_fault_injection_say_so_in_the_new_results(tmp_path):
    root = project(tmp_path, three=THREE)
    assert run(root, "-k", "first", "--conformance-out", "injected",
               env={"CONFORMANCE_FAULT": "raise:no-such-case"}).returncode == 0
    assert run(root, "--conformance-fill", "injected/results.json", "--conformance-out", "out").returncode == 0
    environment = load(root / "out/results.json")["environment"]
    assert environment["filled_runs_fault_injection"] == "raise:no-such-case"
    assert "fault_injection" not in environment
