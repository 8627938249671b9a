"""The Flax adapters' symbolic shape inference (``Impl.infer``: ``jax.eval_shape`` on ``jax.export.symbolic_shape``
dims) and shape-only runs (``Impl.run_shapes``: ``jax.eval_shape`` with every dim known, run's normalization on
placeholders), run for real in the workers of the session ``pool`` and compared with the eager runs.

Most configurations share one shape (batch 3, timesteps 5, input 3, hidden 4: three sizes apart from the hidden
one, so a None is told from the dim it stands for), so each worker's jitted apply is mostly reused.
"""

import pytest

from conformance.impls.flax_nnx import FlaxNnx
from conformance.spec import config_of

# find_spec only: jax and flax are imported in the workers, never in the test process.
pytestmark = pytest.mark.skipif(FlaxNnx().missing() is not None, reason=str(FlaxNnx().missing()))

FLAX = ["flax-linen", "flax-linen-optimized", "flax-nnx", "flax-nnx-optimized"]
H = 4
BASE = {"input_size": 3, "hidden_size": H, "batch": 2, "timesteps": 5, "return_sequences": True, "return_state": True}

SHAPE_CONFIGS = {
    "plain": {},
    "bidirectional-2layer": {"bidirectional": True, "num_layers": 2},
    "lengths": {"lengths": [5, 2]},
    "initial-state": {"initial_state": "random", "num_layers": 2},
    "batch-shape": {"batch": 6, "batch_shape": [2, 3], "initial_state": "random"},
    "bidirectional-merge-none-final": {"bidirectional": True, "merge_mode": "none", "return_sequences": False},
}


def cfg_of(**fields):
    return config_of({**BASE, **fields})


def run(pool, impl, cfg, **kw):
    obs = pool.run(impl, "symbolic-flax", cfg, "cpu", **kw)
    assert obs.status in ("ok", "rejected"), (obs.status, obs.reason, obs.traceback)
    return obs


def where(returns):
    return [(r["path"], r["role"], r["top"], r["layer"], r["direction"]) for r in returns]


@pytest.mark.parametrize("impl", FLAX)
def test_symbolic_returns_have_the_eager_paths_and_roles_with_batch_and_time_unknown(pool, impl):
    cfg = cfg_of(bidirectional=True, num_layers=2)
    obs = run(pool, impl, cfg, symbolic=True)
    sym = obs.symbolic
    assert sym["unknown"] == ["batch", "time"] and sym["attempts"] == [], sym
    assert where(sym["returns"]) == where(obs.returns)
    for r in sym["returns"]:
        want = [None, None, 2 * H] if r["role"] == "output" else [None, H]
        assert r["shape"] == want, r
        assert r["dtype"] == "float32"


@pytest.mark.parametrize("impl", FLAX)
def test_symbolic_param_count_equals_the_eager_one(pool, impl):
    obs = run(pool, impl, cfg_of(num_layers=2, hidden_size=[4, 5]), symbolic=True)
    assert obs.symbolic["param_count"] == obs.param_count


def test_symbolic_lengths_and_initial_state_share_the_unknown_batch(pool):
    obs = run(pool, "flax-linen", cfg_of(lengths=[5, 2], initial_state="random"), symbolic=True)
    sym = obs.symbolic
    assert sym["unknown"] == ["batch", "time"] and sym["attempts"] == []
    assert [r["shape"] for r in sym["returns"]] == [[None, H], [None, H], [None, None, H]]


def test_symbolic_unbatched_input_has_no_batch_to_leave_unknown(pool):
    obs = run(pool, "flax-nnx", cfg_of(batch=1, layout="unbatched", initial_state="random"), symbolic=True)
    assert [r["shape"] for r in obs.symbolic["returns"]] == [[H], [H], [None, H]]


def test_symbolic_time_major_leaves_time_first_unknown(pool):
    obs = run(pool, "flax-linen", cfg_of(layout="time_major"), symbolic=True)
    assert [r["shape"] for r in obs.symbolic["returns"]] == [[None, H], [None, H], [None, None, H]]


def test_symbolic_batch_shape_leaves_every_batch_axis_unknown(pool):
    obs = run(pool, "flax-linen", cfg_of(batch=6, batch_shape=[2, 3]), symbolic=True)
    assert [r["shape"] for r in obs.symbolic["returns"]] == [[None, None, H], [None, None, H], [None, None, None, H]]


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx"])
def test_symbolic_cell_stepped_by_hand_needs_a_known_number_of_steps(pool, impl):
    """jax refuses to make a symbolic time dim the Python int a loop over the steps needs: with the time known,
    the batch stays unknown."""
    obs = run(pool, impl, cfg_of(cell_api=True), symbolic=True)
    sym = obs.symbolic
    assert [a["unknown"] for a in sym["attempts"]] == [["batch", "time"], ["time"]]
    for a in sym["attempts"]:
        assert a["refused"]["type"] == "InconclusiveDimensionOperation"
        assert "Symbolic dimension 't' used in a context that requires a constant" in a["refused"]["message"]
    assert sym["unknown"] == ["batch"]
    assert [r["shape"] for r in sym["returns"]] == [[None, H], [None, H], [None, 5, H]]


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx"])
def test_symbolic_wrong_input_size_is_refused_with_every_dim_known_too(pool, impl):
    obs = run(pool, impl, cfg_of(feed_input_size=5), symbolic=True)
    assert obs.status == "rejected"
    sym = obs.symbolic
    assert [a["unknown"] for a in sym["attempts"]] == [["batch", "time"], ["time"], ["batch"], []]
    assert sym["refused"]["type"] == obs.rejection["type"]


@pytest.mark.parametrize("name", SHAPE_CONFIGS)
@pytest.mark.parametrize("impl", FLAX)
def test_shape_only_gives_the_eager_canonical_shapes_returns_and_params(pool, impl, name):
    cfg = cfg_of(**SHAPE_CONFIGS[name])
    eager = run(pool, impl, cfg)
    shapes = run(pool, impl, cfg, mode="shapes")
    assert shapes.status == eager.status == "ok"
    assert shapes.returns == eager.returns
    assert shapes.params == eager.params and shapes.param_count == eager.param_count
    assert shapes.output.shape == eager.output.shape and shapes.output.dtype == eager.output.dtype
    assert [(h.shape, c.shape) for h, c in shapes.states] == [(h.shape, c.shape) for h, c in eager.states]
    assert shapes.construct == eager.construct
    assert shapes.normalization[0].startswith("shape-only")
    assert shapes.normalization[1:] == eager.normalization


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx-optimized"])
def test_shape_only_gives_every_call_output_shape(pool, impl):
    cfg = cfg_of(calls=3, resets=[3], initial_state="random", go_backwards=True)
    eager, shapes = run(pool, impl, cfg), run(pool, impl, cfg, mode="shapes")
    assert [o.shape for o in shapes.call_outputs] == [o.shape for o in eager.call_outputs]
    assert shapes.returns == eager.returns


@pytest.mark.parametrize("impl", ["flax-linen-optimized", "flax-nnx"])
def test_shape_only_records_bfloat16_returns_as_native_and_widens_the_canonical_output(pool, impl):
    cfg = cfg_of(dtype="bfloat16", bidirectional=True)
    eager, shapes = run(pool, impl, cfg), run(pool, impl, cfg, mode="shapes")
    assert {r["dtype"] for r in shapes.returns} == {"bfloat16"}
    assert shapes.returns == eager.returns
    assert shapes.output.dtype == eager.output.dtype == "float32"


@pytest.mark.parametrize("impl", FLAX)
def test_shape_only_refuses_a_wrong_input_size_as_eager_does(pool, impl):
    cfg = cfg_of(feed_input_size=5)
    eager, shapes = run(pool, impl, cfg), run(pool, impl, cfg, mode="shapes")
    assert eager.status == shapes.status == "rejected"
    assert shapes.rejection["type"] == eager.rejection["type"]
    assert shapes.rejection["phase"] == eager.rejection["phase"] == "call"
