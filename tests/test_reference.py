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
