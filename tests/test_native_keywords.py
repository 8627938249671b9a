"""Native constructor keywords (``native:``): passed to the framework as they are, recorded in the
construct and the repro; a keyword the adapter sets from a field makes the run unsupported; a
framework that refuses one is a rejected run. Real torch and tf-keras / Keras 3 runs."""

import pytest

from conformance import impls
from conformance.spec import Config

BASE = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3}


def test_torch_gets_the_case_s_native_keywords_in_its_constructor_and_repro(pool):
    # every keyword of nn.LSTM is set from a field (dropout: layer_dropout), so a native one is one it refuses:
    # RNN's nonlinearity, which LSTM does not take
    cfg = Config(**BASE, native={"torch": {"nonlinearity": "relu"}})
    obs = pool.run("torch", "n", cfg, "cpu")
    assert obs.status == "rejected" and obs.rejection["phase"] == "build"
    assert "unexpected keyword argument 'nonlinearity'" in obs.rejection["message"]
    assert "nonlinearity='relu')" in impls.get("torch").repro(cfg)


def test_only_the_implementations_a_pattern_names_get_its_keywords():
    cfg = Config(**BASE, native={"keras-*": {"unroll": True}})
    assert "unroll" not in impls.get("torch").repro(cfg)
    assert cfg.native_for("keras-jax") == {"unroll": True} and cfg.native_for("tf-keras") == {}


def test_a_native_keyword_the_adapter_sets_from_a_field_is_unsupported_with_the_field_to_use():
    reason = impls.get("torch").unsupported(Config(**BASE, native={"torch": {"batch_first": False}}))
    assert "batch_first" in reason and "set those fields instead" in reason


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx-optimized"])
def test_flax_gets_the_case_s_native_keywords_in_its_rnn_constructor(pool, impl):
    cfg = Config(**BASE, native={"flax-*": {"unroll": 2}})
    obs = pool.run(impl, "n", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    assert "unroll=2)" in obs.construct and "unroll=2)" in impls.get(impl).repro(cfg)


def test_go_backwards_is_a_field_not_a_flax_native_keyword():
    reason = impls.get("flax-linen").unsupported(Config(**BASE, native={"flax-*": {"reverse": True}}))
    assert "reverse" in reason and "set those fields instead" in reason


@pytest.mark.parametrize("impl, status", [("tf-keras", "ok"), ("keras-tensorflow", "rejected")])
def test_batch_input_shape_is_taken_by_keras_2_and_refused_by_keras_3(pool, impl, status):
    cfg = Config(**BASE, native={"*": {"batch_input_shape": [2, 3, 3]}})
    obs = pool.run(impl, "n", cfg, "cpu")
    assert obs.status == status, obs.reason
    if status == "rejected":
        assert obs.rejection["type"] == "ValueError" and "batch_input_shape" in obs.rejection["message"]
    else:
        assert "batch_input_shape=[2, 3, 3]" in obs.construct
