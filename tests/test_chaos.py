"""Chaos: many real sessions, each hit at a random moment by one of the things that happen to a
conformance run (a framework worker killed, an xdist worker killed, pytest killed, stopped or
interrupted, the case file edited, moved or deleted, the output disk filled, for good or until it
is freed), and every one must end with valid results on disk (complete, or partial with a true
reason), the documented exit status, nothing left running and no temporary file left behind.

CI runs a bounded sample: every kind of event at least once (``CONFORMANCE_CHAOS_SESSIONS``,
default 13, one per kind; seed ``CONFORMANCE_CHAOS_SEED``, default 12). The full size is the same
test with more sessions, e.g. ``CONFORMANCE_CHAOS_SESSIONS=130 pytest tests/test_chaos.py``; the
counts it prints (``-s``) are in README, "When things go wrong".
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from conformance.results import ResultsError, load
from helpers import fill, leftover_workers, private_mount_prefix, project, seen_from_outside, start, wait_for, \
    with_tmpfs

SESSIONS = int(os.environ.get("CONFORMANCE_CHAOS_SESSIONS", "13"))
SEED = int(os.environ.get("CONFORMANCE_CHAOS_SEED", "12"))
CASES = """
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: c1
  - id: c2
    bidirectional: true
  - id: c3
    return_state: true
  - id: c4
    num_layers: 2
  - id: c5
    return_sequences: true
  - id: c6
    hidden_size: 2
"""
IDS = [f"c{i}" for i in range(1, 7)]
SLOW = "c4"               # hangs until the run timeout, so that events land while runs are still to come
RUN_TIMEOUT = "1.5"
EVENTS = ("none", "kill-framework-worker", "kill-xdist-worker", "sigkill-pytest", "sigterm-pytest",
          "sigint-pytest", "edit-case-file", "move-case-file", "delete-case-file", "disk-full",
          "disk-full-then-freed", "kill-framework-worker", "sigkill-pytest")
DISK_EVENTS = ("disk-full", "disk-full-then-freed")
SIGNALS = {"sigkill-pytest": signal.SIGKILL, "sigterm-pytest": signal.SIGTERM, "sigint-pytest": signal.SIGINT}
TALLY: Counter = Counter()


def plan(i: int, rng: random.Random) -> dict:
    event = EVENTS[i % len(EVENTS)]
    victim = rng.choice([c for c in IDS if c != SLOW])
    xdist = event == "kill-xdist-worker" or rng.random() < 0.4
    faults = [f"hang:{SLOW}"]
    if event == "kill-framework-worker":
        faults.insert(0, f"{rng.choice(['segfault', 'abort', 'exit'])}:{victim}")
    elif event == "kill-xdist-worker":
        faults.insert(0, f"kill-runner:{victim}")
    return {"event": event, "victim": victim, "xdist": xdist, "delay": rng.uniform(0.0, 2.5),
            "flush": rng.choice(["0", "0.5", "5"]), "fault": ";".join(faults)}


def pytest_pid(proc) -> int:
    """The pytest process of a session started under a mount wrapper (sh runs it as its child)."""
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.pid:
                    return int(p.name)
            except (OSError, ValueError, IndexError):
                continue
    return proc.pid


def group_gone(pgid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def allowed_partial(p: dict, signalled: bool) -> tuple[str, ...]:
    """The partial reasons that are true for what was done to the session."""
    if p["event"] == "sigkill-pytest" and signalled:
        return ("the session is still running (or was killed)",)
    if p["event"] == "sigterm-pytest" and signalled:
        return ("the session was stopped by SIGTERM",)
    if p["event"] == "sigint-pytest" and signalled:
        return ("the session was interrupted",)
    if p["event"] == "kill-xdist-worker":
        return ("1 collected runs did not finish: an xdist worker crashed while running",)
    return ()


@pytest.fixture(scope="module")
def mount_prefix():
    return private_mount_prefix()


@pytest.mark.parametrize("i", range(SESSIONS))
def test_a_session_hit_at_a_random_moment_ends_with_valid_results_and_nothing_left_running(tmp_path, i,
                                                                                          mount_prefix):
    p = plan(i, random.Random(SEED * 1000 + i))
    if p["event"] in DISK_EVENTS and mount_prefix is None:
        pytest.skip("no private mount namespace here (unshare -m / -rm refused): cannot fill a disk safely")
    root = project(tmp_path / "proj", three=CASES)
    out, spare = root / "out", tmp_path / "spare-tmp"
    out.mkdir()
    spare.mkdir()
    args = ["-v", "--conformance-out", str(out), "--conformance-flush", p["flush"], "--run-timeout", RUN_TIMEOUT]
    if p["xdist"]:
        args += ["-n", "2"]
    prefix = with_tmpfs(mount_prefix, out, 512) if p["event"] in DISK_EVENTS else ()
    proc = start(root, *args, env={"CONFORMANCE_FAULT": p["fault"], "TMPDIR": str(spare)}, prefix=prefix)
    seen: list[str] = []
    wait_for(proc, "LSTM conformance: results go to", seen, timeout=120)
    time.sleep(p["delay"])
    signalled, filler = False, None
    case_file = root / "cases" / "three.yaml"
    if p["event"] in SIGNALS:
        try:
            os.kill(pytest_pid(proc) if prefix else proc.pid, SIGNALS[p["event"]])
            signalled = proc.poll() is None
        except ProcessLookupError:
            pass
    elif p["event"] == "edit-case-file":
        case_file.write_text("cases: [{id: broken")
    elif p["event"] == "move-case-file":
        case_file.rename(case_file.with_name("moved.yaml"))
    elif p["event"] == "delete-case-file":
        case_file.unlink()
    elif p["event"] in DISK_EVENTS and proc.poll() is None:
        try:
            filler = fill(seen_from_outside(proc, out))
        except OSError:
            filler = None                             # the session ended meanwhile: its namespace is gone
        if filler is not None and p["event"] == "disk-full-then-freed":
            time.sleep(1.0)
            try:
                filler.unlink()
            except OSError:
                pass
    try:
        tail, _ = proc.communicate(timeout=180)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"session {i} ({p}) did not end:\n{''.join(seen)}")
    text = "".join(seen) + tail
    what = f"session {i} ({p}):\n{text[-4000:]}"

    assert group_gone(proc.pid), f"processes left behind: {what}"
    assert not leftover_workers(root), what

    result_dir = root / "out.after" if prefix else out
    fallback = list(spare.glob("lstm-conformance-*"))
    if fallback:                                      # the disk stayed full: the results went elsewhere
        assert p["event"] in DISK_EVENTS and f"they were written to {fallback[0]} instead" in text, what
        result_dir = fallback[0]
    try:
        doc = load(result_dir / "results.json")
    except ResultsError as exc:
        raise AssertionError(f"no valid results: {exc}\n{what}") from None
    recorded = [r["case"] for r in doc["runs"]]
    assert len(recorded) == len(set(recorded)) and set(recorded) <= set(IDS), what
    if doc["partial"] is None:
        assert sorted(recorded) == IDS, what
        outcome = "complete"
    else:
        reasons = allowed_partial(p, signalled)
        assert any(doc["partial"]["reason"].startswith(r) for r in reasons), what
        assert doc["partial"]["finished"] == len(recorded), what
        outcome = "partial"
    if p["event"] not in ("sigkill-pytest",):
        assert not list(result_dir.glob(".*.tmp")), what
        status = {"complete": (0, 1), "partial": (1, 2)}[outcome]
        if p["event"] in ("sigterm-pytest", "sigint-pytest") and signalled:
            status = (0, 1, 2)                        # the signal may land after the results were written
        assert proc.returncode in status or (fallback and proc.returncode == 1), what
    verdicts = {r["case"]: r["verdict"] for r in doc["runs"]}
    if SLOW in verdicts:
        assert verdicts[SLOW] == "error", what
    if p["event"] == "kill-framework-worker" and p["victim"] in verdicts:
        assert verdicts[p["victim"]] == "error", what
    TALLY[(p["event"], outcome + (" (elsewhere)" if fallback else ""))] += 1


def teardown_module(module):
    if TALLY:
        print("\nchaos sessions by event and outcome:", json.dumps({f"{e}: {o}": n for (e, o), n in
                                                                   sorted(TALLY.items())}, indent=1))
