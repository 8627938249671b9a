"""The Keras adapters' symbolic half: shapes inferred on ``keras.Input`` tensors (``Impl.infer``), shape-only
runs (``Impl.run_shapes``) and ``model.summary()`` (``Impl.summary``). Real frameworks, in their workers."""

import pytest

from conformance.spec import config_of

KERAS = ["keras-tensorflow", "keras-jax", "keras-torch", "tf-keras"]

STACK = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "num_layers": 2, "bidirectional": True,
         "return_sequences": True, "return_state": True, "lengths": [3, 1], "initial_state": "random"}
SEED_ARTICLE = {"input_size": 10, "hidden_size": 3, "batch": 2, "timesteps": 2}   # LSTM(3) on (2, 10): 168


def _shape_facts(obs):
    return ([(r["path"], r["role"], r["top"], r["layer"], r["direction"]) for r in obs.returns],
            obs.output.shape, None if obs.states is None else [(h.shape, c.shape) for h, c in obs.states])


@pytest.mark.parametrize("impl", KERAS)
def test_symbolic_returns_have_the_eager_paths_and_roles_with_the_batch_and_time_unknown(pool, impl):
    obs = pool.run(impl, "sym", config_of(STACK), "cpu", symbolic=True)
    assert obs.status == "ok", obs.reason
    sym = obs.symbolic
    assert sym["unknown"] == ["batch", "time"] and sym["attempts"] == []
    assert [(r["path"], r["role"], r["layer"], r["direction"]) for r in sym["returns"]] == \
        [(r["path"], r["role"], r["layer"], r["direction"]) for r in obs.returns]
    for eager, inferred in zip(obs.returns, sym["returns"]):
        assert inferred["shape"][0] is None                                  # the batch, always first here
        if inferred["role"] == "output":
            assert inferred["shape"] == [None, None, eager["shape"][-1]]    # (B, T, 2H)
        else:
            assert inferred["shape"] == [None, eager["shape"][-1]]          # (B, H)


@pytest.mark.parametrize("impl", ["keras-tensorflow", "tf-keras"])
def test_symbolic_param_count_is_the_eager_one(pool, impl):
    obs = pool.run(impl, "sym", config_of(STACK), "cpu", symbolic=True)
    assert obs.symbolic["param_count"] == obs.param_count == 672


def test_tf_keras_time_major_leaves_the_time_axis_first_unknown(pool):
    cfg = config_of({"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "layout": "time_major",
                     "return_sequences": True})
    obs = pool.run("tf-keras", "sym", cfg, "cpu", symbolic=True)
    assert obs.symbolic["returns"][0]["shape"] == [None, None, 4] and obs.returns[0]["shape"] == [3, 2, 4]


@pytest.mark.parametrize("impl", ["keras-tensorflow", "tf-keras"])
def test_a_stateful_config_is_inferred_only_with_the_batch_known(pool, impl):
    cfg = config_of({"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "return_sequences": True,
                     "calls": 2})
    sym = pool.run(impl, "sym", cfg, "cpu", symbolic=True).symbolic
    assert sym["unknown"] == ["time"]
    assert [a["unknown"] for a in sym["attempts"]] == [["batch", "time"]]
    assert "batch size" in sym["attempts"][0]["refused"]["message"]
    assert sym["returns"][0]["shape"] == [2, None, 4]


@pytest.mark.parametrize("impl", KERAS)
def test_shape_only_observation_has_the_eager_canonical_shapes_and_returns(pool, impl):
    cfg = config_of(STACK)
    eager = pool.run(impl, "eager", cfg, "cpu")
    shapes = pool.run(impl, "shapes", cfg, "cpu", mode="shapes")
    assert eager.status == shapes.status == "ok", shapes.reason
    assert _shape_facts(shapes) == _shape_facts(eager)
    assert shapes.returns == eager.returns
    assert shapes.params == eager.params and shapes.param_count == eager.param_count
    assert not shapes.output.any()                      # no numbers: a placeholder (zeros)
    assert shapes.normalization[0].startswith("shape-only")


@pytest.mark.parametrize("impl", ["keras-tensorflow", "tf-keras"])
def test_shape_only_normalizes_go_backwards_stacks_and_stateful_calls_as_run_does(pool, impl):
    cfg = config_of({"input_size": 3, "hidden_size": [4, 5], "batch": 2, "timesteps": 3, "num_layers": 2,
                     "go_backwards": True, "return_sequences": True, "return_state": True, "calls": 2,
                     "initial_state": "random"})
    eager = pool.run(impl, "eager", cfg, "cpu")
    shapes = pool.run(impl, "shapes", cfg, "cpu", mode="shapes")
    assert _shape_facts(shapes) == _shape_facts(eager)
    assert [a.shape for a in shapes.call_outputs] == [a.shape for a in eager.call_outputs] == [(2, 3, 5)] * 2


WRONG_INPUT = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "feed_input_size": 5}


def test_a_wrong_input_size_is_refused_in_tf_keras_shape_only_mode_too(pool):
    eager = pool.run("tf-keras", "eager", config_of(WRONG_INPUT), "cpu")
    shapes = pool.run("tf-keras", "shapes", config_of(WRONG_INPUT), "cpu", mode="shapes")
    assert eager.status == shapes.status == "rejected"
    assert shapes.rejection["phase"] == "call"


@pytest.mark.parametrize("impl", ["keras-tensorflow", "keras-torch"])
def test_keras_3_shape_inference_does_not_check_the_input_s_features(pool, impl):
    """A native fact: Keras 3's RNN infers its output from compute_output_shape, which reads the batch and the
    time steps only; the eager call refuses the 5 features a layer built for 3 cannot multiply."""
    eager = pool.run(impl, "eager", config_of(WRONG_INPUT), "cpu")
    shapes = pool.run(impl, "shapes", config_of(WRONG_INPUT), "cpu", mode="shapes")
    assert eager.status == "rejected" and eager.rejection["phase"] == "call"
    assert shapes.status == "ok" and shapes.output.shape == (2, 4)


@pytest.mark.parametrize("impl", KERAS)
def test_summary_shows_the_lstm_row_of_the_seed_article(pool, impl):
    obs = pool.run(impl, "sum", config_of(SEED_ARTICLE), "cpu", summary=True)
    summary = obs.summary
    assert summary["how"] == "Sequential([Input(shape=(2, 10)), LSTM(3)])"
    row = next(line for line in summary["text"].splitlines() if "(LSTM)" in line)
    assert "(None, 3)" in row and "168" in row
    assert "\x1b[" not in summary["text"]


@pytest.mark.parametrize("impl", ["keras-tensorflow", "tf-keras"])
def test_summary_of_a_construct_with_states_is_a_functional_model(pool, impl):
    obs = pool.run(impl, "sum", config_of({**SEED_ARTICLE, "return_state": True}), "cpu", summary=True)
    assert obs.summary["how"].startswith("Model(inputs, outputs)")
    row = next(line for line in obs.summary["text"].splitlines() if "(LSTM)" in line)
    assert "168" in row


def test_tf_keras_summary_of_a_layer_carrying_its_batch_input_shape_is_the_layers_alone(pool):
    cfg = config_of({**SEED_ARTICLE, "native": {"tf-keras": {"batch_input_shape": [None, 2, 10]}}})
    summary = pool.run("tf-keras", "sum", cfg, "cpu", summary=True).summary
    assert summary["how"].startswith("Sequential([LSTM(3)])")
    assert "(None, 3)" in summary["text"] and "168" in summary["text"]


@pytest.mark.parametrize("impl", KERAS)
def test_infer_after_a_run_reuses_the_layers_the_run_built(pool, impl):
    obs = pool.run(impl, "sym", config_of(STACK), "cpu", symbolic=True)
    assert obs.symbolic["notes"][0].startswith("the layers the eager run just built and ran, reused")
    assert obs.symbolic["param_count"] == obs.param_count


def test_tf_keras_infers_without_tracing_where_the_signature_is_honest(pool):
    plain = pool.run("tf-keras", "sym", config_of(STACK), "cpu", symbolic=True).symbolic
    assert plain["api"].startswith("layer.compute_output_signature(")
    stacked = pool.run("tf-keras", "sym", config_of({**SEED_ARTICLE, "num_layers": 2, "cell_api": True,
                                                     "stacked_cells": True, "return_state": True}), "cpu", symbolic=True).symbolic
    assert stacked["api"].startswith("tf_keras.Input(") and "stacked_cells" in stacked["api"]
    assert [r["path"] for r in stacked["returns"]] == ["[0]", "[1][0]", "[1][1]", "[2][0]", "[2][1]"]


def test_tf_keras_symbolic_float64_bidirectional_returns_float64_as_the_call_does(pool):
    """Keras 2's Bidirectional has its own (float32) policy but does not cast: its compute_output_signature would say
    float32, so that construct is traced."""
    cfg = config_of({**SEED_ARTICLE, "bidirectional": True, "dtype": "float64", "return_sequences": True})
    obs = pool.run("tf-keras", "sym", cfg, "cpu", symbolic=True)
    assert obs.returns[0]["dtype"] == obs.symbolic["returns"][0]["dtype"] == "float64"
    assert obs.symbolic["api"].startswith("tf_keras.Input(")


@pytest.mark.parametrize("impl", ["keras-tensorflow", "tf-keras"])
def test_a_wrong_input_size_in_infer_after_run(pool, impl):
    """tf-keras refuses it in its own input check (input_spec) symbolically too; Keras 3's compute_output_shape
    does not read the features (the eager call refuses them)."""
    obs = pool.run(impl, "sym", config_of(WRONG_INPUT), "cpu", symbolic=True)
    assert obs.status == "rejected"
    if impl == "tf-keras":
        assert "refused" in obs.symbolic and "incompatible with the layer" in obs.symbolic["refused"]["message"]
    else:
        assert obs.symbolic["returns"][0]["shape"] == [None, 4]


@pytest.mark.parametrize("impl", KERAS)
def test_shape_only_layers_are_shared_by_cases_that_build_the_same_layers(pool, impl):
    """The layers depend on the constructor calls and the feature sizes only: another batch, time, mask, or initial
    states reuse them."""
    base = {"input_size": 3, "hidden_size": 5, "batch": 2, "timesteps": 3, "return_sequences": True,
            "return_state": True, "seed": 11}
    first = pool.run(impl, "shapes", config_of(base), "cpu", mode="shapes")
    other = pool.run(impl, "shapes", config_of({**base, "batch": 4, "timesteps": 6, "lengths": [6, 2, 1, 3],
                                                "initial_state": "random"}), "cpu", mode="shapes")
    assert first.status == other.status == "ok", other.reason
    assert other.timings["layers_built_before"] == 1.0
    assert other.params == first.params and other.output.shape == (4, 6, 5)
