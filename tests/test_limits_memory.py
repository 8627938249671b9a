"""What one run costs the test process is bounded: the loader refuses a case whose float64
reference and observation would not fit (``spec.case_cost`` against ``spec.MAX_CASE_COST``), the
estimate bounds what is really held, and a reference or check that fails anyway (out of memory)
makes that run an ``error`` with its reason instead of losing it. Real torch runs where it matters."""

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from conformance import checks, reference, spec
from conformance.impls.base import Observation
from conformance.results import execute
from conformance.spec import Case, Config
from helpers import load_error, write

REPO = Path(__file__).resolve().parent.parent
# just under the limit: its reference needs ~330 MB (a (64, 2000, 256) float64 output sequence)
TIGHT = dict(input_size=64, hidden_size=256, batch=64, timesteps=2000)
TIGHT_YAML = ", ".join(f"{k}: {v}" for k, v in TIGHT.items())



def test_a_case_over_the_cost_limit_is_a_located_error_that_states_the_estimate_and_the_limit(tmp_path):
    err = load_error(tmp_path, """
            cases:
              - id: huge
                input_size: 4096
                hidden_size: 4096
                num_layers: 64
                bidirectional: true
                batch: 64
                timesteps: 2000
            """)
    assert err.line == 3 and err.case == "huge"
    cost = spec.case_cost(Config(4096, 4096, num_layers=64, bidirectional=True, batch=64, timesteps=2000))
    assert f"one run would hold about {cost['total']:,} float64 elements" in str(err)
    assert f"the limit is {spec.MAX_CASE_COST:,} (1 GiB)" in str(err)
    assert f"weights {cost['weights']:,}" in str(err)


def test_each_size_may_be_at_its_maximum_but_not_all_at_once(tmp_path):
    one_at_a_time = [Config(4096, 8), Config(8, 4096), Config(8, 8, batch=4096), Config(8, 8, timesteps=10_000),
                     Config(8, 8, num_layers=64)]
    assert all(spec.case_cost(cfg)["total"] <= spec.MAX_CASE_COST for cfg in one_at_a_time)
    assert spec.case_cost(Config(4096, 4096))["total"] > spec.MAX_CASE_COST     # 1 GiB of weights alone


def test_a_matrix_names_the_case_that_is_over_the_limit(tmp_path):
    err = load_error(tmp_path, """
            cases:
              - id: grid
                input_size: 64
                batch: 64
                timesteps: 2000
                matrix: {hidden_size: [8, 256, 512]}
            """)
    assert err.case == "grid.hidden_size-512" and "the limit is" in str(err)


def test_a_case_just_under_the_limit_loads(tmp_path):
    (case,) = spec.load_file(write(tmp_path, f"cases:\n  - {{id: tight, {TIGHT_YAML}}}\n")).cases
    assert 0.95 * spec.MAX_CASE_COST < spec.case_cost(case.config)["total"] <= spec.MAX_CASE_COST


def test_every_case_of_the_default_set_is_far_under_the_limit():
    costs = [spec.case_cost(c.config)["total"] for f in sorted((REPO / "cases").glob("*.yaml"))
             for c in spec.load_file(f).cases]
    assert costs and max(costs) < spec.MAX_CASE_COST / 10


def held_by_one_run(cfg: Config) -> int:
    """Bytes the test process holds at most for one run of ``cfg``: the observation as it comes back
    from the worker (the case's dtype), plus the peak of checking it (the reference included)."""
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                            reference.initial_states(cfg))
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    obs = Observation(output=ref.output.astype(dtype) + 1e-3,           # diverging: every check has work
                      states=[(h.astype(dtype), c.astype(dtype)) for h, c in ref.states] if cfg.return_state else None)
    del ref
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        checks.evaluate(Case(id="c", config=cfg, file="x.yaml"), "torch", "cpu", obs, "torch", [])
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return peak + obs.output.nbytes + sum(h.nbytes + c.nbytes for h, c in obs.states or [])


@pytest.mark.parametrize("cfg", [
    Config(1024, 8, batch=16, timesteps=200, return_sequences=True),                 # the input is widest
    Config(32, 512, batch=4, timesteps=10, num_layers=3, return_state=True),          # the weights dominate
    Config(16, 32, batch=16, timesteps=1000, bidirectional=True, num_layers=3, return_sequences=True,
           return_state=True),
    Config(16, 32, batch=16, timesteps=1000, bidirectional=True, merge_mode="sum", num_layers=3,
           return_sequences=True, lengths=(1000,) * 15 + (5,)),
    Config(16, 64, proj_size=16, batch=1024, timesteps=10, num_layers=2, dtype="float64", return_sequences=True,
           return_state=True),
    Config(8, 16, batch=8, timesteps=100, num_layers=64, bidirectional=True, return_state=True, initial_state="random"),
    Config(8, 1024, batch=512, timesteps=2, return_state=True),                      # the step buffers dominate
], ids=["wide input", "big weights", "bidirectional sequences", "sum with lengths", "projection float64", "64 layers",
        "big steps"])
def test_the_cost_estimate_bounds_what_one_run_really_holds(cfg):
    held, estimate = held_by_one_run(cfg), 8 * spec.case_cost(cfg)["total"]
    assert held <= estimate, (held, estimate)
    assert held > estimate / 4, (held, estimate)           # and is not so loose as to refuse what would fit


def check_values_extra(timesteps: int) -> tuple[int, int]:
    """Bytes check_values allocates beyond the observation and the reference, and the output's size."""
    cfg = Config(16, 64, batch=32, timesteps=timesteps, return_sequences=True, bidirectional=True)
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg))
    obs = Observation(output=ref.output.astype(np.float32) + 1e-3)    # diverging: where first is looked for too
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert checks.check_values(Case(id="c", config=cfg, file="x.yaml"), obs, "cpu", ref).details["first"]
        extra = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return extra, ref.output.nbytes


def test_the_checks_compare_in_chunks_so_their_memory_does_not_grow_with_the_output():
    (small, small_output), (big, big_output) = check_values_extra(500), check_values_extra(4000)
    assert big_output == 8 * small_output
    assert big < 1.2 * small and big < big_output / 4, (small, big, big_output)


# ---- a reference or a check that fails is an error run, never a lost one ----

def test_a_check_that_raises_makes_the_run_an_error_that_says_so(pool, monkeypatch):
    def broken(case, obs):
        raise ValueError("a check's own bug")
    monkeypatch.setattr(checks, "check_padding", broken)
    rec = execute(Case(id="c", config=Config(3, 4), file="x.yaml"), "torch", "cpu", pool, [])
    assert rec["verdict"] == "error" and rec["checks"] == {}
    assert rec["reason"] == "the checks could not be computed: ValueError: a check's own bug"
    assert rec["fault"] == {"kind": "exception", "type": "ValueError", "phase": "checks"}
    assert "in broken" in rec["traceback"]


def test_a_reference_past_the_run_timeout_is_an_error_of_the_reference_phase(pool):
    """The reference runs in the test process, outside the worker's timeout: it keeps its own
    (``execute`` passes the run timeout), checked at every time step."""
    case = Case(id="c", config=Config(3, 4, timesteps=50), file="x.yaml")
    obs = pool.run("torch", "c", case.config, "cpu")
    with pytest.raises(checks.EvaluationError) as caught:
        checks.evaluate(case, "torch", "cpu", obs, "torch", [], timeout=0.0)
    assert caught.value.phase == "reference" and isinstance(caught.value.cause, TimeoutError)
    assert str(caught.value) == ("the float64 reference could not be computed: TimeoutError: the float64 "
                                 "reference took longer than the run timeout (--run-timeout)")


CONFTEST = '''
import resource

import pytest

MARGIN = 128 << 20      # bytes of address space left to the test process during the run named "tight"


def vm_size() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """The "tight" run gets little memory in this (the test) process; its worker started earlier."""
    if not item.name.startswith("tight["):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + MARGIN, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
'''


def test_a_reference_that_runs_out_of_memory_is_an_error_run_in_results_json(tmp_path):
    (tmp_path / "cases").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "cases" / "divergences.yaml").write_text((REPO / "cases" / "divergences.yaml").read_text())
    (tmp_path / "cases" / "memory.yaml").write_text(
        "lstm-conformance: 1\ncases:\n  - {id: warm, input_size: 3, hidden_size: 4}\n"
        f"  - {{id: tight, {TIGHT_YAML}}}\n"
        "  - {id: after, input_size: 3, hidden_size: 4, bidirectional: true}\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu",
                           "-p", "no:cacheprovider", "--conformance-out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout[-3000:]
    runs = {r["case"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]}
    tight = runs["tight"]
    assert tight["verdict"] == "error" and tight["checks"] == {}
    assert tight["reason"].startswith("the float64 reference could not be computed: MemoryError: Unable to allocate")
    assert tight["fault"] == {"kind": "exception", "type": "MemoryError", "phase": "reference"}
    assert tight["native"]["construct"].startswith("torch.nn.LSTM(64, 256")      # the framework's run itself was fine
    assert runs["warm"]["verdict"] != "error" and runs["after"]["verdict"] != "error"
