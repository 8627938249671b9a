"""The Keras 3 adapter (TensorFlow backend), run for real in its worker process."""

import subprocess
import sys

import numpy as np
import pytest

from conformance import reference
from conformance.impls.keras3 import Keras3
from conformance.spec import Config

IMPL = "keras-tensorflow"
TOL = 1e-6

# missing() asks importlib for the modules without importing them: TensorFlow must stay out of
# the test process (it runs in its worker).
pytestmark = pytest.mark.skipif(Keras3().missing() is not None, reason=str(Keras3().missing()))


def run(pool, cfg: Config, case: str = "keras-test"):
    obs = pool.run(IMPL, case, cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def top_returns(obs):
    return [r for r in obs.returns if r["top"]]


def assert_h_then_c(h, c):
    """Real LSTM states satisfy |h| = |o * tanh(c)| <= |tanh(c)|; with h and c swapped it fails."""
    assert np.all(np.abs(h) <= np.abs(np.tanh(c)) + TOL)
    assert not np.all(np.abs(c) <= np.abs(np.tanh(h)) + TOL)


# ---- static half -----------------------------------------------------------------------


def test_identity_and_environment_name_the_backend():
    impl = Keras3(backend="tensorflow")
    assert impl.id == "keras-tensorflow"
    assert impl.requires == ("keras", "tensorflow")
    assert impl.param_formula == "keras"
    assert impl.env["KERAS_BACKEND"] == "tensorflow"
    assert impl.env["TF_CPP_MIN_LOG_LEVEL"] == "3"


@pytest.mark.parametrize("field, cfg", [
    ("proj_size", Config(3, 4, proj_size=2)),
    ("time_major", Config(3, 4, layout="time_major")),
    ("unbatched", Config(3, 4, layout="unbatched", batch=1)),
])
def test_unsupported_gives_a_reason_for_what_keras_cannot_express(field, cfg):
    reason = Keras3().unsupported(cfg)
    assert reason and reason.strip()


@pytest.mark.parametrize("cfg", [
    Config(3, 4),
    Config(3, 4, num_layers=3, bidirectional=True, merge_mode="ave", bias=False, return_sequences=True,
           return_state=True, dtype="float64"),
])
def test_unsupported_is_none_for_configs_keras_can_express(cfg):
    assert Keras3().unsupported(cfg) is None


def test_static_half_does_not_import_keras_or_tensorflow():
    code = ("import sys; from conformance.impls.keras3 import Keras3; from conformance.spec import Config; "
            "Keras3().unsupported(Config(3, 4, proj_size=2)); Keras3().missing(); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- worker half: normalization -------------------------------------------------------


def test_plain_config_gives_last_output_and_no_states(pool):
    cfg = Config(3, 4)
    obs = run(pool, cfg)
    assert obs.output.shape == reference.output_shape(cfg)
    assert obs.states is None
    assert [(r["path"], r["role"]) for r in obs.returns] == [("", "output")]


def test_return_sequences_and_return_state_give_sequence_and_one_state_pair(pool):
    cfg = Config(3, 4, return_sequences=True, return_state=True)
    obs = run(pool, cfg)
    assert obs.output.shape == reference.output_shape(cfg)
    assert [(h.shape, c.shape) for h, c in obs.states] == reference.state_shapes(cfg)
    h, c = obs.states[0]
    assert_h_then_c(h, c)
    np.testing.assert_array_equal(obs.output[:, -1], h)


def test_return_state_native_roles_are_output_h_c(pool):
    obs = run(pool, Config(3, 4, return_state=True))
    assert [(r["path"], r["role"]) for r in top_returns(obs)] == [("[0]", "output"), ("[1]", "h"), ("[2]", "c")]


def test_bidirectional_native_return_order_is_output_then_h_c_per_direction(pool):
    obs = run(pool, Config(3, 4, bidirectional=True, return_state=True))
    assert [(r["role"], r["direction"]) for r in top_returns(obs)] == [
        ("output", None), ("h", "forward"), ("c", "forward"), ("h", "backward"), ("c", "backward")]


def test_bidirectional_two_layers_return_state_gives_four_states_h_first(pool):
    cfg = Config(3, 4, num_layers=2, bidirectional=True, return_state=True)
    obs = run(pool, cfg)
    assert len(obs.states) == 4
    assert [(h.shape, c.shape) for h, c in obs.states] == reference.state_shapes(cfg)
    for h, c in obs.states:
        assert_h_then_c(h, c)


def test_lower_layer_states_are_returned_but_not_as_top(pool):
    obs = run(pool, Config(3, 4, num_layers=2, bidirectional=True, return_state=True))
    lower = [r for r in obs.returns if not r["top"]]
    assert [(r["path"], r["role"], r["layer"], r["direction"]) for r in lower] == [
        ("layers[0][1]", "h", 0, "forward"), ("layers[0][2]", "c", 0, "forward"),
        ("layers[0][3]", "h", 0, "backward"), ("layers[0][4]", "c", 0, "backward")]


def test_bidirectional_last_output_is_each_directions_final_state(pool):
    cfg = Config(3, 4, num_layers=2, bidirectional=True, return_state=True)
    obs = run(pool, cfg)
    H = cfg.hidden_size
    (h_fw, _), (h_bw, _) = obs.states[-2:]
    assert obs.output.shape == reference.output_shape(cfg)
    np.testing.assert_array_equal(obs.output[:, :H], h_fw)
    np.testing.assert_array_equal(obs.output[:, H:], h_bw)


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
def test_merge_modes_other_than_concat_give_H_features(pool, merge_mode):
    cfg = Config(3, 4, bidirectional=True, merge_mode=merge_mode, return_sequences=True)
    obs = run(pool, cfg)
    assert obs.output.shape == reference.output_shape(cfg) == (cfg.batch, cfg.timesteps, cfg.hidden_size)


def test_bias_off_gives_no_bias_params_and_the_keras_formula_count(pool):
    cfg = Config(3, 4, num_layers=2, bidirectional=True, bias=False)
    obs = run(pool, cfg)
    assert obs.params and not any("bias" in p["name"] for p in obs.params)
    assert obs.param_count == reference.PARAM_FORMULAS["keras"].count(cfg) == reference.param_count(cfg)
    assert obs.param_count == sum(int(np.prod(p["shape"])) for p in obs.params)


def test_params_with_bias_match_the_canonical_count(pool):
    cfg = Config(3, 4, num_layers=2)
    obs = run(pool, cfg)
    assert sum("bias" in p["name"] for p in obs.params) == cfg.num_layers
    assert obs.param_count == reference.param_count(cfg) == reference.PARAM_FORMULAS["keras"].count(cfg)


def test_float64_plain_lstm_returns_float64(pool):
    cfg = Config(3, 4, dtype="float64", return_state=True)
    obs = run(pool, cfg)
    assert obs.output.dtype == np.float64
    assert all(r["dtype"] == "float64" for r in obs.returns)


def test_same_config_twice_gives_identical_results_and_param_names(pool):
    cfg = Config(3, 4, bidirectional=True, return_state=True)
    a, b = run(pool, cfg, "first"), run(pool, cfg, "second")
    np.testing.assert_array_equal(a.output, b.output)
    assert a.params == b.params


def test_observation_records_construct_timings_and_normalization(pool):
    obs = run(pool, Config(3, 4, bidirectional=True, return_state=True))
    assert "keras.layers.Bidirectional(keras.layers.LSTM(4" in obs.construct
    assert set(obs.timings) >= {"build_s", "run_s"}
    assert any("[output, h_fw, c_fw, h_bw, c_bw]" in n for n in obs.normalization)


def test_worker_reports_versions_and_cpu(pool):
    info = pool.info(IMPL)
    assert info["versions"]["backend"] == "tensorflow"
    assert {"keras", "tensorflow"} <= set(info["versions"])
    assert "cpu" in info["devices"]
