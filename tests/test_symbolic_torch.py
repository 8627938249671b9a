"""torch's shape inference without computing (``TorchLSTM.infer``: torch.export with Dims, the meta device) and
shape-only runs (``TorchLSTM.run_shapes``), against the eager run, through real torch in its worker."""

import re

import numpy as np
import pytest

from conformance.impls import get
from conformance.spec import config_of

pytestmark = pytest.mark.skipif(get("torch").missing() is not None, reason="torch is not installed")

PLAIN = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "return_sequences": True,
         "return_state": True}


@pytest.fixture(scope="module")
def pool():
    """torch's workers for this file, asked to run torch.export (CONFORMANCE_TORCH_EXPORT=1, off by default: seconds
    a construct kind); the other tests' pool leaves it off."""
    from conformance.runner import WorkerPool

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONFORMANCE_TORCH_EXPORT", "1")
        p = WorkerPool(run_timeout=300)
        p.info("torch")                 # started with the setting
    yield p
    p.close()


def _run(pool, raw, case_id, **kw):
    return pool.run("torch", case_id, config_of(raw), "cpu", **kw)


def _shape(a):
    return None if a is None else list(np.shape(a))


def _facts(obs):
    """What a shape-only run must give as the eager run does: returns, parameters and canonical shapes."""
    return {"returns": obs.returns, "params": obs.params, "param_count": obs.param_count, "construct": obs.construct,
            "output": _shape(obs.output), "states": [[_shape(h), _shape(c)] for h, c in obs.states or []],
            "call_outputs": [_shape(o) for o in obs.call_outputs or []]}


@pytest.fixture(scope="module")
def plain_symbolic(pool):
    return _run(pool, PLAIN, "symbolic-plain", symbolic=True)


def test_symbolic_returns_have_the_eager_paths_and_roles(plain_symbolic):
    sym = plain_symbolic.symbolic
    assert [(r["path"], r["role"], r["top"]) for r in sym["returns"]] == \
        [(r["path"], r["role"], r["top"]) for r in plain_symbolic.returns]


def test_torch_export_refuses_an_unknown_time_dimension(plain_symbolic):
    attempts = plain_symbolic.symbolic["attempts"]
    assert [a["unknown"] for a in attempts] == [["batch", "time"], ["time"]]
    for a in attempts:
        assert a["refused"]["type"] == "UserError"
        assert re.search(r"You marked time as dynamic but your code specialized it to be a constant \(\d+\)",
                         a["refused"]["message"])


def test_the_batch_stays_unknown_in_torch_exports_shapes(plain_symbolic):
    sym = plain_symbolic.symbolic
    assert sym["unknown"] == ["batch"]
    assert [r["shape"] for r in sym["returns"]] == [[None, 3, 4], [1, None, 4], [1, None, 4]]


def test_symbolic_param_count_equals_the_eager_one(plain_symbolic):
    assert plain_symbolic.symbolic["param_count"] == plain_symbolic.param_count == 4 * (4 * 3 + 4 * 4 + 2 * 4)


def test_packed_input_without_states_is_refused_by_torch_export_and_inferred_on_meta(pool):
    obs = _run(pool, {**PLAIN, "lengths": [3, 1]}, "symbolic-packed", symbolic=True)
    sym = obs.symbolic
    assert sym["unknown"] == []
    assert [(r["path"], r["shape"]) for r in sym["returns"]] == [(r["path"], r["shape"]) for r in obs.returns]
    assert {a["refused"]["type"] for a in sym["attempts"]} == {"TypeError"}
    assert all("zeros()" in a["refused"]["message"] for a in sym["attempts"])


SHAPE_CONFIGS = {
    "plain": PLAIN,
    "bidirectional-proj": {**PLAIN, "num_layers": 2, "bidirectional": True, "proj_size": 2,
                           "initial_state": "random"},
    "packed-lengths": {**PLAIN, "batch": 3, "timesteps": 4, "lengths": [4, 1, 2]},
    "unbatched": {**PLAIN, "layout": "unbatched", "batch": 1},
    "time-major": {**PLAIN, "layout": "time_major", "return_sequences": False},
    "cell-api-calls": {**PLAIN, "cell_api": True, "num_layers": 2, "calls": 2},
}


@pytest.mark.parametrize("name", sorted(SHAPE_CONFIGS))
def test_shape_only_observation_gives_the_eager_shapes_returns_and_param_count(pool, name):
    eager = _run(pool, SHAPE_CONFIGS[name], f"shapes-{name}")
    shapes = _run(pool, SHAPE_CONFIGS[name], f"shapes-{name}", mode="shapes")
    assert eager.status == shapes.status == "ok", (eager.reason, shapes.reason)
    assert _facts(shapes) == _facts(eager)
    assert shapes.normalization[0].startswith("shape-only")


def test_shape_only_refuses_a_wrong_input_size_as_eager_does(pool):
    raw = {**PLAIN, "feed_input_size": 5}
    eager = _run(pool, raw, "shapes-wrong-input")
    shapes = _run(pool, raw, "shapes-wrong-input", mode="shapes")
    assert eager.status == shapes.status == "rejected"
    assert shapes.rejection["type"] == eager.rejection["type"]
    assert shapes.rejection["message"] == eager.rejection["message"]


def test_shape_only_refuses_states_of_another_batch_for_packed_input_as_eager_does(pool):
    raw = {**PLAIN, "lengths": [3, 1], "initial_state": "random", "feed_state_batch": 1}
    eager = _run(pool, raw, "shapes-packed-state-batch")
    shapes = _run(pool, raw, "shapes-packed-state-batch", mode="shapes")
    assert eager.status == shapes.status == "rejected"
    assert shapes.rejection["message"] == eager.rejection["message"]


def test_a_later_config_of_the_same_construct_kind_reuses_the_kinds_export(pool, plain_symbolic):
    """Sizes of the same classes (0, 1, 2+) as PLAIN: torch.export is not run again; its refusal of an unknown time
    is re-raised with a note, and the batch it kept symbolic is left unknown in this config's own shapes."""
    obs = _run(pool, {**PLAIN, "input_size": 5, "hidden_size": 6, "batch": 4, "timesteps": 7}, "symbolic-plain-2",
               symbolic=True)
    sym = obs.symbolic
    assert sym["unknown"] == ["batch"]
    assert [r["shape"] for r in sym["returns"]] == [[None, 7, 6], [1, None, 6], [1, None, 6]]
    assert [a["unknown"] for a in sym["attempts"]] == [["batch", "time"], ["time"]]
    for a in sym["attempts"]:
        assert a["refused"]["type"] == "UserError"
        # (the T of the kind's first config in this worker: whichever test ran one first)
        assert re.search(r"specialized it to be a constant \(\d+\)", a["refused"]["message"])
        assert "not exported again" in a["refused"]["message"]
    assert "FakeTensorMode" in sym["api"] and "once per construct kind" in sym["api"]
    assert any("was not exported" in n for n in sym["notes"])
