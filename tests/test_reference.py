"""The reference: canonical shapes and parameter counts derived from the configuration alone."""

import numpy as np
import pytest

from conformance import reference
from conformance.spec import Config


def test_last_output_is_batch_by_hidden():
    assert reference.output_shape(Config(3, 4, batch=2, timesteps=5)) == (2, 4)


def test_sequence_output_is_batch_first_even_for_time_major_input():
    cfg = Config(3, 4, batch=2, timesteps=5, return_sequences=True, layout="time_major")
    assert reference.output_shape(cfg) == (2, 5, 4)


def test_bidirectional_concat_doubles_features_and_other_merges_do_not():
    cfg = Config(3, 4, bidirectional=True, return_sequences=True)
    assert reference.output_shape(cfg)[-1] == 8
    for mode in ("sum", "mul", "ave"):
        assert reference.output_shape(Config(3, 4, bidirectional=True, merge_mode=mode))[-1] == 4


def test_projection_shrinks_h_but_not_c():
    cfg = Config(3, 6, proj_size=2, return_state=True, num_layers=2, bidirectional=True)
    assert reference.state_shapes(cfg) == [((2, 2), (2, 6))] * 4
    assert reference.output_shape(cfg) == (2, 4)


def test_states_are_listed_per_layer_then_direction():
    cfg = Config(3, 4, num_layers=2, bidirectional=True, return_state=True)
    assert reference.state_labels(cfg) == ["layer0/forward", "layer0/backward", "layer1/forward", "layer1/backward"]


def test_no_states_without_return_state():
    assert reference.state_shapes(Config(3, 4)) is None


def test_unbatched_is_canonicalised_with_a_batch_of_one():
    cfg = Config(3, 4, batch=1, layout="unbatched", return_sequences=True)
    assert reference.output_shape(cfg) == (1, 3, 4)
    assert reference.native_input_shape(cfg) == (3, 3)


def test_canonical_count_is_the_sum_of_canonical_tensors():
    cfg = Config(5, 8, num_layers=3, bidirectional=True, proj_size=3)
    assert reference.param_count(cfg) == sum(int(np.prod(s)) for _, s in reference.canonical_params(cfg))


def test_upper_layers_read_the_merged_output_of_the_layer_below():
    cfg = Config(5, 8, num_layers=2, bidirectional=True)
    shapes = dict(reference.canonical_params(cfg))
    assert shapes["layer0/forward/W"] == (5, 32) and shapes["layer1/forward/W"] == (16, 32)
    summed = dict(reference.canonical_params(Config(5, 8, num_layers=2, bidirectional=True, merge_mode="sum")))
    assert summed["layer1/backward/W"] == (8, 32)


def test_torch_formula_exceeds_canonical_by_one_bias_per_layer_and_direction():
    cfg = Config(5, 8, num_layers=3, bidirectional=True)
    extra = reference.PARAM_FORMULAS["torch"].count(cfg) - reference.param_count(cfg)
    assert extra == 4 * cfg.hidden_size * cfg.num_layers * cfg.directions
    assert reference.PARAM_FORMULAS["torch"].count(Config(5, 8, bias=False)) == reference.param_count(
        Config(5, 8, bias=False))


def test_keras_and_flax_formulas_are_the_canonical_count():
    for cfg in (Config(10, 3), Config(4, 7, num_layers=2, bidirectional=True), Config(4, 7, bias=False)):
        assert reference.PARAM_FORMULAS["keras"].count(cfg) == reference.param_count(cfg)
        assert reference.PARAM_FORMULAS["flax"].count(cfg) == reference.param_count(cfg)


@pytest.mark.parametrize("cfg", [
    Config(10, 3), Config(3, 4, num_layers=3), Config(3, 4, bidirectional=True, num_layers=2),
    Config(3, 6, proj_size=2, num_layers=2, bidirectional=True), Config(3, 4, bias=False),
    Config(1, 1),
], ids=str)
def test_torch_documented_formula_matches_real_torch_parameters(pool, cfg):
    obs = pool.run("torch", "formula", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    assert obs.param_count == reference.PARAM_FORMULAS["torch"].count(cfg)


def test_input_is_deterministic_in_the_seed_and_laid_out_as_asked():
    cfg = Config(3, 4, batch=2, timesteps=5, layout="time_major", seed=7)
    x = reference.make_input(cfg)
    assert x.shape == (2, 5, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, reference.make_input(cfg))
    assert not np.array_equal(x, reference.make_input(Config(3, 4, batch=2, timesteps=5, seed=8)))
    native = reference.to_native_layout(cfg, x)
    assert native.shape == (5, 2, 3)
    np.testing.assert_array_equal(native[:, 1], x[1])


# ---- the reference LSTM (NumPy, float64): each test derives its expectation from the equations ----

def run_ref(**kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 5, **kw})
    x = reference.make_input(cfg).astype(np.float64)
    return cfg, x, reference.forward(cfg, x, reference.canonical_weights(cfg), reference.initial_states(cfg))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_one_step_follows_the_lstm_equations_with_gate_order_i_f_g_o():
    cfg, x, ref = run_ref(timesteps=1, return_state=True)
    w = reference.canonical_weights(cfg)
    z = x[:, 0] @ w["layer0/forward/W"] + w["layer0/forward/b"]          # h0 = c0 = 0
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(i) * np.tanh(g)                                           # f * c0 vanishes
    np.testing.assert_allclose(ref.states[0][1], c, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref.states[0][0], sigmoid(o) * np.tanh(c), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref.output, ref.states[0][0])


def test_canonical_weights_are_seeded_and_bounded_by_one_over_sqrt_h():
    cfg = Config(3, 16, num_layers=2, bidirectional=True)
    a, b = reference.canonical_weights(cfg), reference.canonical_weights(cfg)
    assert {k: v.shape for k, v in a.items()} == dict(reference.canonical_params(cfg))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert max(np.abs(v).max() for v in a.values()) <= 1 / 4
    other = reference.canonical_weights(Config(3, 16, num_layers=2, bidirectional=True, seed=1))
    assert not np.array_equal(a["layer0/forward/W"], other["layer0/forward/W"])


def test_the_backward_direction_is_the_forward_one_on_reversed_time():
    cfg, x, ref = run_ref(bidirectional=True, return_sequences=True, return_state=True)
    w = reference.canonical_weights(cfg)
    uni = Config(3, 4, batch=2, timesteps=5, return_sequences=True, return_state=True)
    fw_as_uni = {k.replace("backward", "forward"): v for k, v in w.items() if "/backward/" in k}
    rev = reference.forward(uni, x[:, ::-1], fw_as_uni)
    np.testing.assert_allclose(ref.output[:, :, 4:], rev.output[:, ::-1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref.states[1][0], rev.states[0][0], rtol=1e-12, atol=1e-15)


def test_go_backwards_reads_in_reverse_and_keeps_outputs_in_time_order():
    cfg, x, ref = run_ref(go_backwards=True, return_sequences=True)
    plain = reference.forward(Config(3, 4, batch=2, timesteps=5, return_sequences=True), x[:, ::-1],
                              reference.canonical_weights(cfg))
    np.testing.assert_allclose(ref.output, plain.output[:, ::-1], rtol=1e-12, atol=1e-15)


def test_a_sequence_with_a_length_ends_where_the_same_sequence_truncated_ends():
    cfg, x, ref = run_ref(batch=2, lengths=(5, 2), bidirectional=True, return_sequences=True, return_state=True)
    short = Config(3, 4, batch=1, timesteps=2, bidirectional=True, return_sequences=True, return_state=True)
    cut = reference.forward(short, x[1:, :2], reference.canonical_weights(cfg))
    np.testing.assert_allclose(ref.output[1:, :2], cut.output, rtol=1e-12, atol=1e-15)
    for (h, c), (ch, cc) in zip(ref.states, cut.states):
        np.testing.assert_allclose(h[1:], ch, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c[1:], cc, rtol=1e-12, atol=1e-15)
    assert np.all(ref.output[1, 2:] == 0)                                  # padded steps: zeros


def test_a_sequence_with_masked_steps_ends_where_the_sequence_of_its_real_steps_alone_ends():
    mask = ((True, True, True, True, True), (False, True, False, True, True))
    cfg, x, ref = run_ref(batch=2, mask=mask, bidirectional=True, return_sequences=True, return_state=True)
    real = [1, 3, 4]                                                       # sequence 1's real steps
    short = Config(3, 4, batch=1, timesteps=3, bidirectional=True, return_sequences=True, return_state=True)
    cut = reference.forward(short, x[1:, real], reference.canonical_weights(cfg))
    np.testing.assert_allclose(ref.output[1:, real], cut.output, rtol=1e-12, atol=1e-15)
    for (h, c), (ch, cc) in zip(ref.states, cut.states):
        np.testing.assert_allclose(h[1:], ch, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c[1:], cc, rtol=1e-12, atol=1e-15)
    assert np.all(ref.output[1, [0, 2]] == 0)                             # masked steps: zeros


def test_first_and_last_real_steps_of_each_sequence_and_minus_one_for_none():
    cfg = Config(3, 4, batch=3, timesteps=4, mask=((False, True, True, False), (False,) * 4, (True, False, False, True)))
    first, last = reference.first_and_last_valid(cfg)
    assert first.tolist() == [1, -1, 0] and last.tolist() == [2, -1, 3]
    assert [a.tolist() for a in reference.first_and_last_valid(Config(3, 4, batch=2, timesteps=0))] == [[-1, -1]] * 2


def test_padding_values_do_not_change_the_result():
    cfg, x, ref = run_ref(lengths=(5, 3), return_sequences=True, return_state=True)
    x2 = x.copy()
    x2[1, 3:] = 100.0
    ref2 = reference.forward(cfg, x2, reference.canonical_weights(cfg))
    np.testing.assert_array_equal(ref.output, ref2.output)


def test_zero_initial_states_equal_none_and_random_ones_change_the_result():
    _, _, none = run_ref(return_state=True)
    _, _, zeros = run_ref(return_state=True, initial_state="zeros")
    _, _, rand = run_ref(return_state=True, initial_state="random")
    np.testing.assert_array_equal(none.output, zeros.output)
    assert not np.allclose(none.output, rand.output)


def test_a_second_layer_reads_the_first_layer_s_output_sequence():
    cfg, x, ref = run_ref(num_layers=2, return_sequences=True)
    w = reference.canonical_weights(cfg)
    one = Config(3, 4, batch=2, timesteps=5, return_sequences=True)
    first = reference.forward(one, x, {k: v for k, v in w.items() if k.startswith("layer0/")})
    second = reference.forward(Config(4, 4, batch=2, timesteps=5, return_sequences=True), first.output,
                               {k.replace("layer1/", "layer0/"): v for k, v in w.items() if k.startswith("layer1/")})
    np.testing.assert_allclose(ref.output, second.output, rtol=1e-12, atol=1e-15)


def test_projection_multiplies_h_by_r_and_leaves_c_unprojected():
    cfg, x, ref = run_ref(timesteps=1, hidden_size=5, proj_size=2, return_state=True)
    w = reference.canonical_weights(cfg)
    z = x[:, 0] @ w["layer0/forward/W"] + w["layer0/forward/b"]
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(ref.states[0][0], (sigmoid(o) * np.tanh(c)) @ w["layer0/forward/R"], rtol=1e-12, atol=1e-15)
    assert ref.states[0][1].shape == (2, 5)


# ---- the reference's memory: streamed layer by layer ----

def reference_peak(**kw) -> tuple[int, int]:
    """Bytes ``reference.forward`` allocates at most (tracemalloc; input and weights made before),
    and the size of the widest sequence it handles in float64."""
    import tracemalloc

    cfg = Config(**{"input_size": 32, "hidden_size": 32, "batch": 16, "timesteps": 400, **kw})
    x, w, init = reference.make_input(cfg), reference.canonical_weights(cfg), reference.initial_states(cfg)
    tracemalloc.start()
    try:
        reference.forward(cfg, x, w, init)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, 8 * cfg.batch * cfg.timesteps * max(cfg.input_size, cfg.directions * reference.hidden_out(cfg))


@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "return_sequences": True},
                                {"bidirectional": True, "merge_mode": "sum", "return_state": True}],
                         ids=["forward", "bidirectional concat", "bidirectional sum"])
def test_the_reference_s_peak_memory_does_not_grow_with_the_number_of_layers(kw):
    (two, seq), (many, _) = reference_peak(num_layers=2, **kw), reference_peak(num_layers=16, **kw)
    assert many < two + seq / 4, (two, many, seq)      # keeping every layer's outputs would add a sequence per layer
    assert many <= 2.2 * seq, (many, seq)              # a layer's input and output sequences, and little more


def test_only_the_top_layer_s_outputs_are_kept_per_direction():
    cfg, _, ref = run_ref(num_layers=3, bidirectional=True, merge_mode="sum", return_sequences=True)
    assert ref.layer_outputs[:2] == [None, None]
    forward, backward = ref.layer_outputs[2]
    np.testing.assert_array_equal(ref.output, forward + backward)
    assert forward.shape == (2, 5, 4)


def test_arange_input_counts_up_in_batch_time_feature_order_and_a_constant_input_is_constant():
    x = reference.make_input(Config(input_size=4, hidden_size=3, batch=3, timesteps=6, input="arange"))
    assert x.shape == (3, 6, 4) and x[0, 0, 1] == 1 and x[0, 1, 0] == 4 and x[1, 0, 0] == 24 and x[-1, -1, -1] == 71
    assert np.all(reference.make_input(Config(input_size=2, hidden_size=3, input=0.5)) == 0.5)


def test_constant_initializers_replace_only_their_own_weight_and_random_ones_do_not_move():
    base = reference.canonical_weights(Config(input_size=3, hidden_size=4))
    w = reference.canonical_weights(Config(input_size=3, hidden_size=4, kernel_init=0.01, bias_init=0.03))
    assert np.all(w["layer0/forward/W"] == 0.01) and np.all(w["layer0/forward/b"] == 0.03)
    assert np.array_equal(w["layer0/forward/U"], base["layer0/forward/U"])


def test_unit_forget_bias_sets_the_forget_block_of_the_bias_to_one():
    w = reference.canonical_weights(Config(input_size=3, hidden_size=4, bias_init=0.03, unit_forget_bias=True))
    b = w["layer0/forward/b"]                                # gate order i, f, g, o: f is the second block
    assert np.all(b[4:8] == 1.0) and np.all(b[:4] == 0.03) and np.all(b[8:] == 0.03)


def test_initial_states_of_ones_or_a_constant_fill_every_layer_and_direction():
    for given, value in (("ones", 1.0), (-0.25, -0.25)):
        states = reference.initial_states(Config(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                                                 initial_state=given))
        assert len(states) == 4 and all(np.all(h == value) and np.all(c == value) for h, c in states)


def test_keras_s_hard_coded_correctness_values_follow_from_the_lstm_equations():
    # keras/src/layers/rnn/lstm_test.py::LSTMTest::test_correctness: Constant(0.01), Constant(0.02),
    # Constant(0.03) with unit_forget_bias, on np.arange(72).reshape((3, 6, 4)); Keras's float32 numbers.
    cfg = Config(input_size=4, hidden_size=3, batch=3, timesteps=6, input="arange", kernel_init=0.01,
                 recurrent_init=0.02, bias_init=0.03, unit_forget_bias=True)
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg), None)
    np.testing.assert_allclose(ref.output[:, 0], [0.6288687, 0.86899155, 0.9460773], atol=1e-6)


@pytest.mark.parametrize("activation, recurrent_activation, act, gate", [
    ("relu", "sigmoid", lambda z: np.maximum(z, 0), lambda z: 1 / (1 + np.exp(-z))),
    ("linear", "hard_sigmoid", lambda z: z, lambda z: np.clip(z / 6 + 0.5, 0, 1)),
    ("tanh", "tanh", np.tanh, np.tanh),
    ("elu", "sigmoid", lambda z: np.where(z > 0, z, np.exp(z) - 1), lambda z: 1 / (1 + np.exp(-z))),
])
def test_two_steps_follow_the_lstm_equations_with_the_case_s_activations(activation, recurrent_activation, act, gate):
    cfg, x, ref = run_ref(timesteps=2, return_state=True, activation=activation,
                          recurrent_activation=recurrent_activation)
    w = reference.canonical_weights(cfg)
    W, U, b = w["layer0/forward/W"], w["layer0/forward/U"], w["layer0/forward/b"]
    h = c = np.zeros((cfg.batch, cfg.hidden_size))
    for t in range(2):
        i, f, g, o = np.split(x[:, t] @ W + h @ U + b, 4, axis=-1)
        c = gate(f) * c + gate(i) * act(g)
        h = gate(o) * act(c)
    np.testing.assert_allclose(ref.states[0][1], c, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref.states[0][0], h, rtol=1e-12, atol=1e-15)


def test_a_stack_of_layers_of_their_own_sizes_is_each_layer_fed_the_one_below():
    stack = Config(3, (5, 2), num_layers=2, return_sequences=True, return_state=True, initial_state="random")
    x, weights = reference.make_input(stack), reference.canonical_weights(stack)
    assert [s for _, s in reference.canonical_params(stack)] == [(3, 20), (5, 20), (20,), (5, 8), (2, 8), (8,)]
    init = reference.initial_states(stack)
    assert [(h.shape, c.shape) for h, c in init] == [((2, 5), (2, 5)), ((2, 2), (2, 2))]
    full = reference.forward(stack, x, weights, init)

    def layer(l, n_in, H, seq):
        cfg = Config(n_in, H, return_sequences=True)
        w = {k.replace(f"layer{l}/", "layer0/"): v for k, v in weights.items() if k.startswith(f"layer{l}/")}
        return reference.forward(cfg, seq, w, [init[l]])

    low = layer(0, 3, 5, x)
    top = layer(1, 5, 2, low.output)
    assert np.array_equal(full.output, top.output) and full.output.shape == (2, 3, 2)
    assert np.array_equal(full.states[0][1], low.states[0][1]) and full.states[1][0].shape == (2, 2)
    assert reference.param_count(stack) == 4 * 5 * (3 + 5 + 1) + 4 * 2 * (5 + 2 + 1)


def test_go_backwards_on_a_bidirectional_layer_swaps_the_directions_weights():
    both = dict(input_size=3, hidden_size=4, timesteps=4, bidirectional=True, return_sequences=True,
                return_state=True)
    swapped = Config(**both, go_backwards=True)
    plain = Config(**both)
    x, w = reference.make_input(swapped), reference.canonical_weights(swapped)
    exchanged = {k.replace("forward", "@").replace("backward", "forward").replace("@", "backward"): v
                 for k, v in w.items()}
    a, b = reference.forward(swapped, x, w), reference.forward(plain, x, exchanged)
    np.testing.assert_array_equal(a.output, np.concatenate([b.output[..., 4:], b.output[..., :4]], axis=-1))
    np.testing.assert_array_equal(a.states[0][1], b.states[1][1])
