"""Several leading batch axes (``batch_shape``): the input is (*batch_shape, T, F); flax takes them,
torch and Keras take one batch axis. Real flax runs."""

import numpy as np
import pytest

from conformance import checks, impls, reference
from conformance.spec import Case, Config

AXES = {"input_size": 3, "hidden_size": 4, "batch": 6, "batch_shape": (2, 3), "timesteps": 3,
        "return_sequences": True, "return_state": True}


def test_the_native_input_splits_the_batch_into_its_axes_in_order():
    cfg = Config(**AXES)
    x = reference.make_input(cfg)
    native = reference.to_native_layout(cfg, x)
    assert native.shape == (2, 3, 3, 3) and np.array_equal(native[1, 2], x[5])
    assert reference.native_input_shape(cfg) == (2, 3, 3, 3)


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx"])
def test_flax_runs_the_lstm_over_every_leading_batch_axis(pool, impl):
    cfg = Config(**AXES, initial_state="random", bidirectional=True)
    obs = pool.run(impl, "c", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    assert [r["shape"] for r in obs.returns if r["role"] == "output"] == [[2, 3, 3, 8]]
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                            reference.initial_states(cfg))
    assert checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), obs, "cpu", ref).ok


def test_flax_mangles_the_carries_of_several_batch_axes_given_lengths(pool):
    cfg = Config(**dict(AXES, batch=4, batch_shape=(2, 2), lengths=(3, 1, 2, 3)))
    obs = pool.run("flax-linen", "c", cfg, "cpu")
    assert [r["shape"] for r in obs.returns if r["role"] == "h"] == [[2, 2, 2, 4]]     # (2, 2, 4) is right


@pytest.mark.parametrize("impl", ["torch", "keras-jax", "tf-keras"])
def test_frameworks_of_one_batch_axis_say_so(impl):
    assert "takes one batch axis" in impls.get(impl).unsupported(Config(**AXES))
