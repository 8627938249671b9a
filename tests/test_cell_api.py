"""cell_api: the cell-level API (torch nn.LSTMCell stepped by hand, Keras RNN(LSTMCell)) has the layers'
semantics: same weights, same numbers, the same states. Real torch and tf-keras runs."""

import pytest

from conformance import checks, impls, reference
from conformance.spec import Case, Config

BASE = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "cell_api": True, "return_sequences": True,
        "return_state": True}


def agree(pool, impl, cfg):
    obs = pool.run(impl, "c", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                            reference.initial_states(cfg))
    assert checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), obs, "cpu", ref).ok
    return obs


def test_torch_cells_stepped_by_hand_give_the_layer_s_numbers_and_each_layer_s_h_and_c(pool):
    obs = agree(pool, "torch", Config(**BASE, num_layers=2, initial_state="random"))
    assert [(r["path"], r["role"]) for r in obs.returns] == [
        ("[0]", "output"), ("[1][0][0]", "h"), ("[1][0][1]", "c"), ("[1][1][0]", "h"), ("[1][1][1]", "c")]
    assert [p["name"] for p in obs.params][:4] == ["0.weight_ih", "0.weight_hh", "0.bias_ih", "0.bias_hh"]
    assert "torch.nn.LSTMCell" in obs.construct and "stepped by hand" in obs.construct


def test_keras_rnn_of_an_lstm_cell_gives_the_lstm_layer_s_numbers(pool):
    obs = agree(pool, "tf-keras", Config(**BASE, bidirectional=True, lengths=(3, 1)))
    assert "tf_keras.layers.RNN(tf_keras.layers.LSTMCell(4" in obs.construct


def test_torch_cell_weights_come_back_as_they_were_loaded(pool):
    reply = pool.roundtrip("torch", Config(**BASE, num_layers=2))
    assert reply["missing"] == reply["extra"] == [] and len(reply["max_abs"]) == 6     # W, U, b of two layers
    assert max(reply["max_abs"].values()) < 1e-7


@pytest.mark.parametrize("impl, field, words", [
    ("torch", {"bidirectional": True}, "nn.LSTMCell stepped by hand has no bidirectional"),
    ("flax-linen", {"lengths": (3, 1)}, "the cell stepped by hand (cell(carry, x_t) per step) has no lengths")])
def test_what_a_cell_api_cannot_express_is_unsupported_and_says_why(impl, field, words):
    assert words in impls.get(impl).unsupported(Config(**{**BASE, **field}))


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx-optimized"])
def test_a_flax_cell_stepped_by_hand_gives_the_rnn_s_numbers(pool, impl):
    obs = agree(pool, impl, Config(**BASE, num_layers=2, initial_state="random", layout="time_major"))
    assert "stepped by hand" in obs.construct and all("/cell/" in p["name"] for p in obs.params)


# ---- stacked_cells: one Keras RNN over every layer's cell (StackedRNNCells) ----

STACKED = dict(BASE, hidden_size=(5, 3), num_layers=2, stacked_cells=True, initial_state="random")


def test_keras_rnn_over_a_list_of_cells_returns_each_cell_s_h_and_c_nested_and_the_layers_numbers(pool):
    obs = agree(pool, "tf-keras", Config(**STACKED))
    assert [(r["path"], r["role"], r["shape"]) for r in obs.returns] == [
        ("[0]", "output", [2, 3, 3]), ("[1][0]", "h", [2, 5]), ("[1][1]", "c", [2, 5]),
        ("[2][0]", "h", [2, 3]), ("[2][1]", "c", [2, 3])]
    assert "tf_keras.layers.RNN([tf_keras.layers.LSTMCell(5, " in obs.construct


def test_keras_3_cannot_reset_a_stateful_rnn_over_a_list_of_cells(pool):
    obs = pool.run("keras-jax", "c", Config(**dict(STACKED, calls=2, resets=(2,))), "cpu")
    assert obs.status == "rejected" and "has no attribute 'assign'" in obs.rejection["message"]


@pytest.mark.parametrize("impl", ["torch", "flax-linen", "flax-nnx"])
def test_only_keras_has_an_rnn_over_a_list_of_cells(impl):
    assert "StackedRNNCells" in impls.get(impl).unsupported(Config(**STACKED))
