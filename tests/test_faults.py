"""Faults in a framework's worker, injected for real (``CONFORMANCE_FAULT``, see conformance.worker):
each becomes an ``error`` run with its cause in words and as data, the worker is restarted, and other
runs and implementations go on. Real torch (and once flax-linen) worker processes throughout."""

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conformance import checks, impls
from conformance.results import record
from conformance.runner import POLL_SLICE_S, Worker, WorkerPool
from conformance.spec import Case, Config

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = str(REPO / "cases" / "divergences.yaml")
CFG = Config(3, 4)
RUN_KINDS = ("segfault", "abort", "crash", "exit", "sysexit", "memory", "raise", "hang")
# the case "f-KIND" faults with KIND; every other case runs normally
FAULTS = ";".join(f"{kind}:f-{kind}" for kind in RUN_KINDS)
HANG_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def faulty():
    """One pool for the module whose workers fault on the cases named ``f-KIND``."""
    pool = WorkerPool(run_timeout=120, env={"CONFORMANCE_FAULT": FAULTS})
    yield pool
    pool.close()


def run(pool, case_id, impl_id="torch", **kw):
    return pool.run(impl_id, case_id, CFG, "cpu", **kw)


def fault_run(pool, kind):
    """Run the case that faults with ``kind`` (a hang with the short per-run timeout)."""
    return run(pool, f"f-{kind}", timeout=HANG_TIMEOUT if kind == "hang" else None)


@pytest.fixture(scope="module")
def faulted(faulty):
    """``faulted(kind)``: the outcome of one run that faults with ``kind`` on a worker that was up,
    run once for the module: the observation, the seconds it took, and the pid of the worker it ran in."""
    seen = {}

    def get(kind):
        if kind not in seen:
            assert run(faulty, "plain").status == "ok"
            before = pid(faulty)
            t0 = time.monotonic()
            obs = fault_run(faulty, kind)
            seen[kind] = obs, time.monotonic() - t0, before
        return seen[kind]
    return get


def pid(pool, impl_id="torch"):
    return pool.info(impl_id)["pid"]


def gone(process_id: int) -> bool:
    """No such process, not even a zombie waiting to be reaped."""
    return not os.path.exists(f"/proc/{process_id}")


EXPECTED = {
    "segfault": ("died while running case 'f-segfault' on cpu: it was killed by SIGSEGV (signal 11)",
                 {"kind": "signal", "signal": "SIGSEGV", "code": -11}),
    "abort": ("died while running case 'f-abort' on cpu: it was killed by SIGABRT (signal 6)",
              {"kind": "signal", "signal": "SIGABRT", "code": -6}),
    "crash": ("it was killed by SIGABRT (signal 6)", {"kind": "signal", "signal": "SIGABRT", "code": -6}),
    "exit": ("died while running case 'f-exit' on cpu: it exited with status 3", {"kind": "exit", "code": 3}),
    "sysexit": ("SystemExit: the run called sys.exit(4)", {"kind": "exception", "type": "SystemExit", "code": 4}),
    "memory": ("MemoryError: Unable to allocate", {"kind": "exception", "type": "MemoryError"}),
    "raise": ("RuntimeError: injected framework error in case 'f-raise'",
              {"kind": "exception", "type": "RuntimeError"}),
    "hang": (f"timed out: it did not answer within {HANG_TIMEOUT:g}s while running case 'f-hang' on cpu "
             "(the run timeout, --run-timeout); it was killed", {"kind": "timeout", "seconds": HANG_TIMEOUT}),
}


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_each_fault_is_an_error_run_whose_reason_and_fault_name_the_cause(faulty, faulted, kind):
    obs, _, _ = faulted(kind)
    rec = record(Case(id=f"f-{kind}", config=CFG, file="faults.yaml"), "torch", "cpu", obs, {},
                 faulty.infos.get("torch", {}))
    reason, fault = EXPECTED[kind]
    assert rec["verdict"] == checks.ERROR
    assert reason in rec["reason"], rec["reason"]
    assert rec["fault"] == fault
    json.dumps(rec["fault"])          # plain data, as results.json needs


def test_a_fatal_signal_leaves_the_python_stack_in_the_reason(faulted):
    obs, _, _ = faulted("segfault")
    assert "Fatal Python error: Segmentation fault" in obs.reason and "in _inject_fault" in obs.reason


def test_a_timed_out_run_quotes_where_the_worker_hung(faulted):
    obs, _, _ = faulted("hang")
    assert "in _inject_fault" in obs.reason, obs.reason     # the SIGUSR1 stack dump, taken before the kill


@pytest.mark.parametrize("kind", ["segfault", "exit", "hang", "memory", "sysexit"])
def test_after_the_worker_died_or_was_stopped_the_next_run_gets_a_fresh_one(faulty, faulted, kind):
    obs, _, before = faulted(kind)
    assert obs.status == "error"
    assert gone(before)                                     # reaped: no zombie, no stray
    obs = run(faulty, "plain")
    assert obs.status == "ok", obs.reason
    assert pid(faulty) != before


def test_a_plain_exception_keeps_the_worker(faulty):
    before = pid(faulty)
    assert fault_run(faulty, "raise").status == "error"
    assert run(faulty, "plain").status == "ok"
    assert pid(faulty) == before


def test_a_hang_is_killed_within_its_per_run_timeout(faulted):
    obs, elapsed, _ = faulted("hang")                       # on a worker that was up: only the run is timed
    assert obs.fault == {"kind": "timeout", "seconds": HANG_TIMEOUT}
    assert HANG_TIMEOUT <= elapsed < HANG_TIMEOUT + 5, elapsed


def test_the_pools_run_timeout_applies_when_a_run_gives_none(faulty, monkeypatch):
    monkeypatch.setattr(faulty, "run_timeout", 1.5)
    obs = run(faulty, "f-hang")
    assert obs.fault == {"kind": "timeout", "seconds": 1.5}


def test_a_stop_signal_that_raised_nothing_still_ends_the_wait_for_a_hung_run_within_a_second():
    stop = []                  # the session's stop_signal, set as if its KeyboardInterrupt had been swallowed
    pool = WorkerPool(run_timeout=120, env={"CONFORMANCE_FAULT": "hang:f-hang"}, stop_requested=lambda: stop and stop[0])
    try:
        assert run(pool, "plain").status == "ok"
        threading.Timer(1.0, stop.append, ["SIGINT"]).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            run(pool, "f-hang")
        assert time.monotonic() - t0 < 1.0 + 2 * POLL_SLICE_S
    finally:
        pool.close()
    assert not pool.workers


def test_a_crash_in_one_impl_leaves_another_impls_worker_and_runs_alone(faulty):
    other = "flax-linen"
    if impls.get(other).missing():
        pytest.skip(impls.get(other).missing())
    assert run(faulty, "plain", other).status == "ok"
    other_pid = pid(faulty, other)
    assert fault_run(faulty, "segfault").status == "error"
    obs = run(faulty, "plain", other)
    assert obs.status == "ok", obs.reason
    assert pid(faulty, other) == other_pid and faulty.workers[other].alive()


def test_every_run_reports_the_workers_resident_and_peak_memory(faulty):
    for case_id in ("plain", "f-raise"):                   # a run that raised too
        t = run(faulty, case_id).timings
        assert 20 < t["rss_mb"] <= t["peak_rss_mb"] < 1e5, t


def test_faulted_workers_leave_no_zombies_or_strays(faulty):
    fault_run(faulty, "segfault")
    run(faulty, "plain")                    # every fault above happened in this pool too
    # every worker process of this test process belongs to a live Worker (this pool's, or another
    # fixture's pool): none was left behind by a fault
    live = {o.proc.pid for o in gc.get_objects() if isinstance(o, Worker) and o.proc is not None}
    children = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid():
            children[int(entry)] = (fields[0], b"conformance.worker" in cmdline)
    assert "Z" not in {state for state, _ in children.values()}, children
    assert {pid for pid, (_, worker) in children.items() if worker} <= live, children


# ---- workers that fail to start ----

START_EXPECTED = {
    "start-crash": ("torch worker died while starting: it was killed by SIGABRT (signal 6)",
                    {"kind": "signal", "signal": "SIGABRT", "code": -6, "phase": "start"}),
    "start-hang": ("torch worker timed out: it did not answer within 2s while starting (the start timeout)",
                   {"kind": "timeout", "seconds": 2.0, "phase": "start"}),
    "start-raise": ("torch worker could not start: ImportError: injected import failure",
                    {"kind": "exception", "type": "ImportError", "phase": "start"}),
}


@pytest.mark.parametrize("kind", sorted(START_EXPECTED))
def test_a_worker_that_fails_to_start_is_reported_once_and_not_started_again(kind, monkeypatch):
    starts = []
    real_start = Worker.start
    monkeypatch.setattr(Worker, "start", lambda self: starts.append(self.impl_id) or real_start(self))
    pool = WorkerPool(start_timeout=2, env={"CONFORMANCE_FAULT": f"{kind}:torch"})
    try:
        first = run(pool, "plain")
        reason, fault = START_EXPECTED[kind]
        assert first.status == "error" and reason in first.reason, first.reason
        assert first.fault == fault
        t0 = time.monotonic()
        later = [run(pool, case_id) for case_id in ("plain", "other")]
        assert time.monotonic() - t0 < 0.5
        for obs in later:
            assert obs.status == "error"
            assert obs.reason.startswith("the torch worker failed to start earlier in this session")
            assert first.reason in obs.reason
            assert obs.fault == {**fault, "repeated": True}
        assert starts == ["torch"]
        assert pool.workers["torch"].proc is None
    finally:
        pool.close()


def test_a_worker_whose_runner_is_killed_exits_by_itself(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent("""
        import sys
        from conformance.runner import WorkerPool
        from conformance.spec import Config
        pool = WorkerPool(run_timeout=600, env={"CONFORMANCE_FAULT": "hang:f-hang"})
        print(pool.info("torch")["pid"], flush=True)
        pool.run("torch", "f-hang", Config(3, 4), "cpu")       # hangs; the runner is killed meanwhile
        """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    worker_pid = int(proc.stdout.readline())
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not gone(worker_pid):
        time.sleep(0.1)                 # the orphan is adopted and reaped by init once it exits
    assert gone(worker_pid)


# ---- end to end ----

CASES = """
defaults: {input_size: 3, hidden_size: 4, batch: 2, timesteps: 3}
cases:
  - id: one
  - id: two
    return_state: true
  - id: boom
  - id: three
    num_layers: 2
  - id: four
    bidirectional: true
"""


def test_in_a_parallel_session_a_segfaulting_run_is_an_error_and_every_other_run_is_recorded(pytester, monkeypatch):
    (pytester.path / "cases").mkdir()
    (pytester.path / "cases" / "demo.yaml").write_text(textwrap.dedent(CASES) + "\nlstm-conformance: 1\n")
    monkeypatch.setenv("CONFORMANCE_FAULT", "segfault:boom")
    result = pytester.runpytest_subprocess("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}",
                                           "-p", "no:cacheprovider", "-n", "2", "--conformance-out", "out")
    result.stdout.fnmatch_lines(["*2 workers*"])
    result.assert_outcomes(passed=4, failed=1)
    runs = {r["case"]: r for r in json.loads((pytester.path / "out" / "results.json").read_text())["runs"]}
    assert set(runs) == {"one", "two", "boom", "three", "four"}
    boom = runs.pop("boom")
    assert boom["verdict"] == "error" and "killed by SIGSEGV (signal 11)" in boom["reason"]
    assert boom["fault"] == {"kind": "signal", "signal": "SIGSEGV", "code": -11}
    assert all(r["verdict"] != "error" and r["fault"] is None for r in runs.values()), runs


DECLARED_CRASH = """
lstm-conformance: 1
defaults: {input_size: 3, hidden_size: 4, batch: 2, timesteps: 3, bias: false}
cases:
  - id: one
  - id: boom
divergences:
  - id: boom-aborts
    impl: torch
    check: accepts
    crash: true
    cases: [boom]
    reason: The framework aborts the process on this configuration (fault injection stands in for it).
"""


def declared_crash_session(pytester, monkeypatch, fault: str | None, **outcomes) -> dict:
    """DECLARED_CRASH run on torch with ``fault`` injected (or none): its runs by case, the outcomes checked."""
    (pytester.path / "cases").mkdir()
    (pytester.path / "cases" / "demo.yaml").write_text(DECLARED_CRASH)
    if fault:
        monkeypatch.setenv("CONFORMANCE_FAULT", fault)
    result = pytester.runpytest_subprocess("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}",
                                           "-p", "no:cacheprovider", "--conformance-out", "out")
    result.assert_outcomes(**outcomes)
    return {r["case"]: r for r in json.loads((pytester.path / "out" / "results.json").read_text())["runs"]}


def test_a_crash_a_declaration_says_crashes_is_a_known_divergence_and_keeps_its_fault(pytester, monkeypatch):
    runs = declared_crash_session(pytester, monkeypatch, "abort:boom", passed=2)
    boom = runs["boom"]
    assert boom["verdict"] == "known-divergence" and "SIGABRT" in boom["reason"]
    assert boom["fault"]["kind"] == "signal" and boom["fault"]["signal"] == "SIGABRT"
    assert boom["checks"]["accepts"]["divergence"]["id"] == "boom-aborts"
    assert boom["checks"]["accepts"]["details"]["native"] == "crashed: the worker was killed by SIGABRT"
    assert runs["one"]["verdict"] == "agree"


def test_a_declared_crash_that_no_longer_happens_is_stale(pytester, monkeypatch):
    runs = declared_crash_session(pytester, monkeypatch, None, passed=1, failed=1)
    assert runs["boom"]["verdict"] == "stale"
    assert runs["boom"]["checks"]["accepts"]["details"]["native"] == "accepted (no crash)"


def test_an_undeclared_crash_stays_an_error_beside_a_declaration_of_another_case(pytester, monkeypatch):
    runs = declared_crash_session(pytester, monkeypatch, "abort:one", failed=2)
    assert runs["one"]["verdict"] == "error" and runs["one"]["checks"] == {}
    assert runs["boom"]["verdict"] == "stale"
