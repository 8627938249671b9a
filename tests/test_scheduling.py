"""The ``-n N`` scheduler (conformance/scheduling.py): which unit of work an item belongs to, and
what happens to a parallel session when an xdist worker dies.

End to end, each session is a real ``pytest cases -n 2 --impl torch --device cpu`` in a subprocess
on real torch workers, with ``CONFORMANCE_FAULT=kill-runner:CASE`` (the torch worker SIGKILLs the
xdist worker running CASE). It must end within ``SESSION_BOUND_S`` (else it is killed, its process
group and every process carrying its tag, and fails) and end as ``--dist load`` ends the same
session: exit status 1, the killed run reported once as crashed and not run again, every other
item run and passed, results.json valid and marked partial, no process of the session left alive.

Why these five sessions (each costs 5-15 s, mostly starting torch, twice: once more in the
replacement worker; the module stays near a minute on 2 cores): one case file of three cases,
``first``, ``second``, ``third``, on one implementation and device. With ``-n 2`` that column is
split in two units, ``torch-cpu#0`` = {first} and ``torch-cpu#1`` = {second, third} (checked
below, not assumed). Beside a plain Python test (a unit of one of its own) the first worker takes
both torch units, in the order second, third, first, and the other worker runs the plain test and
ends, so all of the dead worker's leftover work goes to the replacement: killing each case in turn
leaves it two units, one and none. Those three hung or re-ran the killed case under xdist 3.8's
``LoadScopeScheduling``. Without the plain test the two units go one to each worker; only
``second`` is killed there (its leftover, ``third``, is a unit's tail sent alone and then shut
down): killing ``first`` or ``third`` leaves no work, as ``first-beside-plain`` already does. A
case file named ``a::b.yaml`` (its units are #0 = {second, third}, #1 = {first}) checks that such
a name is read as a case file end to end. ``--dist load`` is run once, on the bug report's session,
as the reference for the exit status and outcomes that every session is held to.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.results import load
from conformance.scheduling import ByImplementation, scope_of

REPO = Path(__file__).resolve().parent.parent
SESSION_BOUND_S = 60        # a session takes ~5-15 s; one that has not ended by then hangs
CASES = ("first", "second", "third")
CASE_FILE = """\
lstm-conformance: 1
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: first
  - id: second
  - id: third
"""
TAG = "CONFORMANCE_TEST_SESSION"   # set in each session's environment, so its processes can be found


# ---- which unit of work an item belongs to ----

def test_a_run_belongs_to_its_implementation_and_device():
    assert scope_of("cases/returns.yaml::bidirectional-state[torch-cpu]") == "torch-cpu"
    assert scope_of("cases/x.yaml::c.d+e_1-2[flax-nnx-optimized-gpu]") == "flax-nnx-optimized-gpu"


def test_a_split_column_is_shared_out_by_file_and_case():
    units = {case: scope_of(f"cases/three.yaml::{case}[torch-cpu]", 2) for case in CASES}
    assert units == {"first": "torch-cpu#0", "second": "torch-cpu#1", "third": "torch-cpu#1"}
    assert scope_of("cases/three.yaml::first[torch-gpu]", 2) == "torch-gpu#0"   # same case, same share


def test_a_case_file_name_holding_double_colons_is_read_from_the_right():
    units = {case: scope_of(f"cases/a::b.yaml::{case}[torch-cpu]", 2) for case in CASES}
    assert units == {"first": "torch-cpu#1", "second": "torch-cpu#0", "third": "torch-cpu#0"}
    assert units["first"] == f"torch-cpu#{zlib.crc32(b'cases/a::b.yaml::first') % 2}"   # shared out by the whole path
    assert scope_of("a::b::c.yml::first[torch-cpu]") == "torch-cpu"


def test_brackets_in_a_directory_or_file_name_do_not_change_the_unit():
    for path in ("cases[gpu]/x.yaml", "cases/x[1].yaml", "cases/[torch-cpu].yaml", "c]::[d/x.yaml"):
        assert scope_of(f"{path}::first[torch-cpu]") == "torch-cpu", path
        k = zlib.crc32(f"{path}::first".encode()) % 3
        assert scope_of(f"{path}::first[torch-cpu]", 3) == f"torch-cpu#{k}", path


@pytest.mark.parametrize("nodeid", [
    "tests/test_a.py::test_f",
    "tests/test_a.py::test_f[torch-cpu]",                 # a Python test is not a run, whatever its id
    "tests/test_a.py::test_f[a.yaml::b[torch-cpu]]",      # ... even one whose id looks like a run
    "tests/a.yaml.py::test_f[torch-cpu]",
    "cases/x.yaml::first[no-such-impl-cpu]",              # not an implementation
    "cases/x.yaml::first[torch-tpu]",                     # not a device
    "cases/x.yaml::[torch-cpu]",                          # no case id
    "cases/x.yaml::a:b[torch-cpu]",                       # not a case id
    "cases/x.yaml",
])
def test_an_item_that_is_not_a_run_is_a_unit_of_its_own(nodeid):
    assert scope_of(nodeid) == nodeid
    assert scope_of(nodeid, 2) == nodeid


# ---- the scheduler's contract, with stand-in xdist workers ----

class Worker:
    """Stands in for xdist's WorkerController: records what it is sent."""

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices):
        self.sent += indices

    def shutdown(self):
        self.shutting_down = True


COLLECTION = ["cases/test_plain.py::test_plain", *(f"cases/three.yaml::{c}[torch-cpu]" for c in CASES)]


def scheduled(workers: list[Worker]) -> ByImplementation:
    option = SimpleNamespace(tx=[f"{len(workers)}*popen"], numprocesses=len(workers), loadscopereorder=True)
    config = SimpleNamespace(option=option, getvalue=lambda name: getattr(option, name),
                             getoption=lambda name: getattr(option, name))
    sched = ByImplementation(config, columns=1)
    for w in workers:
        sched.add_node(w)
        sched.add_node_collection(w, COLLECTION)
    sched.schedule()
    return sched


def joins(sched: ByImplementation, worker: Worker, collection=COLLECTION) -> Worker:
    """What xdist does with a replacement worker: add it, then (once collected) its collection, then schedule."""
    sched.add_node(worker)
    sched.add_node_collection(worker, collection)
    sched.schedule()
    return worker


def test_beside_a_plain_test_one_worker_takes_both_torch_units_and_the_other_the_plain_test():
    gw0, gw1 = Worker("gw0"), Worker("gw1")
    scheduled([gw0, gw1])
    assert (gw0.sent, gw1.sent) == ([2, 3, 1], [0])        # second, third, first | test_plain
    assert gw0.shutting_down and gw1.shutting_down          # nothing left to hand out


def test_a_replacement_worker_gets_all_the_dead_workers_leftover_work_then_a_shutdown():
    gw0, gw1 = Worker("gw0"), Worker("gw1")
    sched = scheduled([gw0, gw1])
    assert sched.remove_node(gw0) == COLLECTION[2]          # died running `second`
    gw2 = joins(sched, Worker("gw2"))
    assert gw2.sent == [3, 1] and gw2.shutting_down          # not `third` alone: it would wait for a next item


def test_the_item_a_dead_worker_was_running_is_not_handed_out_again():
    gw0, gw1 = Worker("gw0"), Worker("gw1")
    sched = scheduled([gw0, gw1])
    sched.mark_test_complete(gw0, 2)                         # `second` done; dies running `third`
    assert sched.remove_node(gw0) == COLLECTION[3]
    gw2 = joins(sched, Worker("gw2"))
    assert gw2.sent == [1] and gw2.shutting_down             # `first`, then shut down: it runs it and ends


def test_a_worker_still_collecting_is_left_alone_until_its_collection_arrives():
    gw0, gw1 = Worker("gw0"), Worker("gw1")
    sched = scheduled([gw0, gw1])
    sched.remove_node(gw0)
    gw2, gw3 = Worker("gw2"), Worker("gw3")
    sched.add_node(gw2)                                      # two replacements starting; gw3 collects first
    joins(sched, gw3)
    assert (gw2.sent, gw3.sent) == ([], [3, 1])
    sched.add_node_collection(gw2, COLLECTION)
    sched.schedule()
    assert gw2.sent == [] and gw2.shutting_down


def test_a_replacement_that_collected_other_items_is_shut_down():
    gw0, gw1 = Worker("gw0"), Worker("gw1")
    sched = scheduled([gw0, gw1])
    sched.remove_node(gw0)
    gw2 = joins(sched, Worker("gw2"), COLLECTION[:-1])
    assert gw2.sent == [] and gw2.shutting_down


# ---- real sessions whose xdist worker dies ----

SESSIONS = {                             # id: (case killed, a plain Python test beside?, case file)
    "first-beside-plain": ("first", True, "three.yaml"),
    "second-beside-plain": ("second", True, "three.yaml"),     # the bug report's session
    "third-beside-plain": ("third", True, "three.yaml"),
    "second": ("second", False, "three.yaml"),
    "second-in-a::b.yaml": ("second", True, "a::b.yaml"),
}


@dataclass
class Finished:
    victim: str                         # the node id of the run whose xdist worker was killed
    items: list[str]                    # every item's node id
    returncode: int
    output: str
    outcomes: list[tuple[str, str]]     # ("PASSED" | "FAILED" | ..., nodeid) from pytest -rA, in order
    leftovers: list[int]                # processes of the session still alive after it ended
    out: Path


def session_processes(tag: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``TAG=tag``."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as fh:
                    if needle in fh.read().split(b"\0"):
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_session(root: Path, session: str, *args: str) -> Finished:
    """SESSIONS[session] as ``pytest cases -n 2`` in a new project under ``root``, the xdist worker
    running its case killed. A session still running after SESSION_BOUND_S is killed (its process
    group, and every process of it) and fails the test."""
    victim, plain, case_file = SESSIONS[session]
    (root / "cases").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    shutil.copy(REPO / "cases" / "divergences.yaml", root / "cases" / "divergences.yaml")
    (root / "cases" / case_file).write_text(CASE_FILE)
    items = [f"cases/{case_file}::{c}[torch-cpu]" for c in CASES]
    if plain:
        (root / "cases" / "test_plain.py").write_text("def test_plain():\n    pass\n")
        items.append("cases/test_plain.py::test_plain")
    tag = uuid.uuid4().hex
    env = {**os.environ, "CONFORMANCE_FAULT": f"kill-runner:{victim}", TAG: tag}
    cmd = [sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu", "-n", "2",
           "-p", "no:cacheprovider", "--conformance-out", "out", "-v", "-rA", *args]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=SESSION_BOUND_S)
    except BaseException as exc:            # it hangs, or this test run is interrupted: kill it all
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        kill(session_processes(tag))
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        pytest.fail(f"the session did not end within {SESSION_BOUND_S} s (killed); its output:\n{output[-6000:]}")
    deadline = time.monotonic() + 10        # a torch worker whose runner was killed exits by itself
    while (leftovers := session_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    kill(leftovers)                         # not to leave them to the next test; this one fails
    outcomes = re.findall(r"^(PASSED|FAILED|ERROR|XPASS|XFAIL) (\S+)", output, re.M)
    return Finished(f"cases/{case_file}::{victim}[torch-cpu]", items, proc.returncode, output, outcomes,
                    leftovers, root / "out")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Runs a session of SESSIONS once per module (with extra pytest arguments, once per those); one
    that hung fails every test that reads it, without running again."""
    done: dict[tuple, Finished | BaseException] = {}

    def finished(session: str, *args: str) -> Finished:
        key = (session, *args)
        if key not in done:
            try:
                done[key] = run_session(tmp_path_factory.mktemp("session"), session, *args)
            except pytest.fail.Exception as exc:
                done[key] = exc
        if isinstance(done[key], BaseException):
            raise done[key]
        return done[key]
    return finished


@pytest.fixture(params=list(SESSIONS))
def crashed(request, sessions) -> Finished:
    """Each session of SESSIONS, finished."""
    return sessions(request.param)


def test_a_session_whose_worker_dies_ends_with_the_status_of_a_failed_test(crashed):
    assert crashed.returncode == pytest.ExitCode.TESTS_FAILED, crashed.output[-6000:]


def test_the_run_whose_worker_died_is_reported_once_as_crashed(crashed):
    not_passed = [(outcome, nodeid) for outcome, nodeid in crashed.outcomes if outcome != "PASSED"]
    assert not_passed == [("FAILED", crashed.victim)], crashed.output[-6000:]
    assert re.search(rf"worker 'gw\d+' crashed while running '{re.escape(crashed.victim)}'", crashed.output)


def test_every_other_item_runs_once_and_passes(crashed):
    passed = sorted(n for o, n in crashed.outcomes if o == "PASSED")
    assert passed == sorted(set(crashed.items) - {crashed.victim}), crashed.output[-6000:]


def test_results_json_holds_every_surviving_run_and_is_marked_partial(crashed):
    doc = load(crashed.out / "results.json")
    survivors = [f"{r['file']}::{r['case']}[{r['impl']}-{r['device']}]" for r in doc["runs"]]
    assert sorted(survivors) == sorted(set(crashed.items) - {crashed.victim, "cases/test_plain.py::test_plain"})
    assert doc["partial"] is not None
    assert (doc["partial"]["finished"], doc["partial"]["expected"]) == (len(CASES) - 1, len(CASES))


def test_no_process_of_the_session_is_left_behind(crashed):
    assert crashed.leftovers == []


def test_the_bug_reports_session_ends_as_it_does_with_dist_load(sessions):
    ours, xdists = sessions("second-beside-plain"), sessions("second-beside-plain", "--dist", "load")
    assert "scheduling tests via ByImplementation" in ours.output
    assert "scheduling tests via LoadScheduling" in xdists.output
    outputs = f"{ours.output[-4000:]}\n--- with --dist load ---\n{xdists.output[-4000:]}"
    assert ours.returncode == xdists.returncode == pytest.ExitCode.TESTS_FAILED, outputs
    assert sorted(ours.outcomes) == sorted(xdists.outcomes), outputs
