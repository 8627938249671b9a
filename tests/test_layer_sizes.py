"""Layers of their own sizes (``hidden_size: [5, 3, 6]``): each framework that stacks layers one by one
builds each with its size, and the numbers and per-layer states agree with the reference. Real runs."""

import pytest

from conformance import checks, impls, reference
from conformance.spec import Case, Config

SIZES = {"input_size": 3, "hidden_size": (5, 2), "num_layers": 2, "batch": 2, "timesteps": 3,
         "return_sequences": True, "return_state": True, "initial_state": "random"}


def evaluate(pool, impl, cfg):
    obs = pool.run(impl, "c", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    return obs, checks.evaluate(Case(id="c", config=cfg, file="cases/x.yaml", line=1), impl, "cpu", obs,
                                impls.get(impl).param_formula, [])


def test_torch_lstm_has_one_hidden_size_for_every_layer():
    assert "one hidden_size for every layer" in impls.get("torch").unsupported(Config(**SIZES))


@pytest.mark.parametrize("impl, construct", [
    ("torch", "[(3, 5), (5, 2)]"),                                   # nn.LSTMCell(in, h) per layer
    ("tf-keras", "tf_keras.layers.LSTM(5, "),
    ("flax-nnx", "per layer: [5, 2]"),
])
def test_each_layer_is_built_with_its_own_size_and_every_check_agrees(pool, impl, construct):
    cfg = Config(**SIZES, cell_api=impl == "torch")
    obs, result = evaluate(pool, impl, cfg)
    assert construct in obs.construct
    assert [tuple(h.shape) + tuple(c.shape) for h, c in obs.states] == [(2, 5, 2, 5), (2, 2, 2, 2)]
    count = result.pop("param_count")["details"]            # torch: its second bias (declared torch-double-bias)
    assert count["observed"] == count["documented"] == reference.PARAM_FORMULAS[impls.get(impl).param_formula].count(cfg)
    failing = {k: v for k, v in result.items() if v["verdict"] != "agree"}
    assert not failing, failing
