"""The flax-linen adapter, run for real in its worker: native facts and their normalization."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from conformance import reference
from conformance.impls.flax_linen import FlaxLinen
from conformance.impls import get
from conformance.spec import Config

# find_spec only: jax and flax are imported in the worker, never in the test process.
pytestmark = pytest.mark.skipif(FlaxLinen().missing() is not None, reason=str(FlaxLinen().missing()))

H = 4
BASE = dict(input_size=3, hidden_size=H)
UNI = Config(**BASE, return_state=True)
BI = Config(**BASE, bidirectional=True, return_state=True)
BI2 = Config(**BASE, num_layers=2, bidirectional=True, return_state=True)


def run(pool, cfg: Config, case: str = "flax-test"):
    obs = pool.run("flax-linen", case, cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def top_returns(obs):
    return [r for r in obs.returns if r["top"]]


def check_canonical_shapes(obs, cfg):
    assert tuple(obs.output.shape) == reference.output_shape(cfg)
    expected = reference.state_shapes(dataclasses.replace(cfg, return_state=True))   # carries always come back
    assert [(tuple(h.shape), tuple(c.shape)) for h, c in obs.states] == expected


# ---- static half


def test_importing_the_adapter_does_not_import_jax_or_flax():
    code = ("import sys, conformance.impls.flax_linen as m; m.FlaxLinen().unsupported(m.Config(3, 4)); "
            "assert not {'jax', 'flax'} & set(sys.modules), sorted({'jax', 'flax'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_proj_size_is_unsupported_with_a_reason():
    assert FlaxLinen().unsupported(Config(**BASE, proj_size=2))


def test_bias_false_is_unsupported_with_a_reason():
    reason = FlaxLinen().unsupported(Config(**BASE, bias=False))
    assert reason and "bias" in reason


@pytest.mark.parametrize("cfg", [Config(**BASE), BI2, Config(**BASE, layout="unbatched", batch=1),
                                 Config(**BASE, layout="time_major", dtype="float64"),
                                 Config(**BASE, bidirectional=True, merge_mode="mul")],
                         ids=["plain", "stacked-bidirectional", "unbatched", "time-major-f64", "merge-mul"])
def test_expressible_configs_are_supported(cfg):
    assert FlaxLinen().unsupported(cfg) is None


# ---- native return structure


def test_worker_reports_jax_jaxlib_and_flax_versions(pool):
    assert {"jax", "jaxlib", "flax"} <= set(pool.info("flax-linen")["versions"])


def test_native_carry_puts_c_before_h(pool):
    obs = run(pool, UNI)
    assert [(r["path"], r["role"]) for r in top_returns(obs)] == [("[0][0]", "c"), ("[0][1]", "h"), ("[1]", "output")]


def test_native_output_is_the_whole_sequence_even_without_return_sequences(pool):
    obs = run(pool, UNI)
    assert top_returns(obs)[-1]["shape"] == [UNI.batch, UNI.timesteps, H]


def test_bidirectional_native_carry_is_forward_then_backward_each_c_then_h(pool):
    obs = run(pool, BI)
    assert [(r["path"], r["role"], r["direction"]) for r in top_returns(obs)] == [
        ("[0][0][0]", "c", "forward"), ("[0][0][1]", "h", "forward"),
        ("[0][1][0]", "c", "backward"), ("[0][1][1]", "h", "backward"), ("[1]", "output", None)]
    assert top_returns(obs)[-1]["shape"] == [BI.batch, BI.timesteps, 2 * H]


def test_lower_layer_carries_are_returned_as_not_top_with_their_layer(pool):
    obs = run(pool, BI2)
    lower = [r for r in obs.returns if not r["top"]]
    assert [(r["path"], r["role"], r["layer"]) for r in lower] == [
        ("layers[0][0][0]", "c", 0), ("layers[0][0][1]", "h", 0),
        ("layers[0][1][0]", "c", 0), ("layers[0][1][1]", "h", 0)]
    assert {r["layer"] for r in top_returns(obs)} == {1}


# ---- normalization to canonical


@pytest.mark.parametrize("cfg", [UNI, BI2, Config(**BASE, num_layers=2, return_sequences=True)],
                         ids=["uni", "stacked-bidirectional", "stacked-sequences"])
def test_canonical_shapes_match_the_reference(pool, cfg):
    check_canonical_shapes(run(pool, cfg), cfg)


def test_canonical_states_put_h_first(pool):
    obs = run(pool, BI2)
    assert "carry (c, h) -> canonical (h, c)" in obs.normalization
    for h, c in obs.states:
        # h = o * tanh(c) with 0 < o < 1, so |h| <= |tanh(c)|; swapped, |c| <= |tanh(h)| < |h| fails.
        assert np.all(np.abs(h) <= np.abs(np.tanh(c)) + 1e-6)
        assert not np.any(np.abs(c) <= np.abs(np.tanh(h)))


def test_return_state_false_still_gives_the_carries_as_states(pool):
    obs = run(pool, Config(**BASE))
    assert len(obs.states) == 1 and any("did not ask" in n for n in obs.normalization)
    check_canonical_shapes(obs, Config(**BASE))


def test_final_output_is_the_top_layers_final_h(pool):
    obs = run(pool, Config(**BASE, num_layers=2, return_state=True))
    np.testing.assert_array_equal(obs.output, obs.states[-1][0])


def test_bidirectional_final_output_concatenates_both_directions_final_h(pool):
    obs = run(pool, BI)
    (h_fwd, _), (h_bwd, _) = obs.states
    np.testing.assert_array_equal(obs.output, np.concatenate([h_fwd, h_bwd], axis=-1))


def test_backward_final_h_is_the_output_at_time_zero_not_the_last_step(pool):
    seq = run(pool, Config(**BASE, bidirectional=True, return_state=True, return_sequences=True))
    h_fwd, h_bwd = seq.states[0][0], seq.states[1][0]
    np.testing.assert_allclose(seq.output[:, -1, :H], h_fwd, rtol=1e-6)
    np.testing.assert_allclose(seq.output[:, 0, H:], h_bwd, rtol=1e-6)
    assert not np.allclose(seq.output[:, -1, H:], h_bwd)


@pytest.mark.parametrize("mode,merge", [("sum", np.add), ("ave", lambda a, b: (a + b) / 2)])
def test_non_concat_merge_modes_merge_the_final_h_and_say_so(pool, mode, merge):
    cfg = Config(**BASE, bidirectional=True, merge_mode=mode, return_state=True)
    obs = run(pool, cfg)
    check_canonical_shapes(obs, cfg)
    (h_fwd, _), (h_bwd, _) = obs.states
    np.testing.assert_allclose(obs.output, merge(h_fwd, h_bwd), rtol=1e-6)
    assert any("merge_fn" in n for n in obs.normalization)


def test_time_major_normalizes_to_batch_first(pool):
    cfg = Config(**BASE, bidirectional=True, return_sequences=True, return_state=True)
    tm = Config(**{**cfg.to_dict(), "layout": "time_major"})
    batch, time = run(pool, cfg), run(pool, tm)
    assert top_returns(time)[-1]["shape"] == [tm.timesteps, tm.batch, 2 * H]
    check_canonical_shapes(time, tm)
    np.testing.assert_allclose(time.output, batch.output, rtol=1e-5, atol=1e-6)
    for (h1, c1), (h2, c2) in zip(time.states, batch.states):
        np.testing.assert_allclose(h1, h2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c1, c2, rtol=1e-5, atol=1e-6)


def test_unbatched_native_has_no_batch_axis_and_normalizes_to_batch_of_one(pool):
    cfg = Config(**BASE, batch=1, return_sequences=True, return_state=True)
    ub = Config(**{**cfg.to_dict(), "layout": "unbatched"})
    batched, unbatched = run(pool, cfg), run(pool, ub)
    assert [r["shape"] for r in top_returns(unbatched)] == [[H], [H], [ub.timesteps, H]]
    check_canonical_shapes(unbatched, ub)
    np.testing.assert_allclose(unbatched.output, batched.output, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(unbatched.states[0][0], batched.states[0][0], rtol=1e-5, atol=1e-6)


# ---- parameters and dtypes


@pytest.mark.parametrize("cfg", [Config(**BASE), BI2, Config(**BASE, num_layers=2, bidirectional=True,
                                                                 merge_mode="sum")],
                         ids=["uni", "stacked-bidirectional", "stacked-merge-sum"])
def test_param_count_matches_the_flax_formula_and_the_canonical_count(pool, cfg):
    obs = run(pool, cfg)
    assert obs.param_count == reference.PARAM_FORMULAS["flax"].count(cfg) == reference.param_count(cfg)
    assert obs.param_count == sum(int(np.prod(p["shape"])) for p in obs.params)


def test_params_are_named_by_their_pytree_path(pool):
    names = {p["name"]: p["shape"] for p in run(pool, UNI).params}
    assert names["params/layers_0/cell/ii/kernel"] == [UNI.input_size, H]
    assert names["params/layers_0/cell/hi/bias"] == [H]
    assert not any(n.startswith("params/layers_0/cell/i") and n.endswith("bias") for n in names)


def test_float64_runs_in_float64(pool):
    cfg = Config(**BASE, dtype="float64", return_state=True)
    obs = run(pool, cfg)
    assert {r["dtype"] for r in obs.returns} == {"float64"}
    assert obs.output.dtype == np.float64 and obs.states[0][1].dtype == np.float64


def test_float32_stays_float32_with_x64_enabled(pool):
    run(pool, Config(**BASE, dtype="float64"))   # x64 is on in the worker either way
    obs = run(pool, UNI)
    assert {r["dtype"] for r in obs.returns} == {"float32"}
    assert obs.output.dtype == np.float32


def test_repeated_config_with_another_seed_reuses_the_build_but_not_the_values(pool):
    a = run(pool, UNI)
    b = run(pool, Config(**{**UNI.to_dict(), "seed": 7}))
    assert b.returns == [{**r} for r in a.returns]
    assert not np.allclose(a.output, b.output)
    assert b.timings["run_s"] < 0.5   # the jitted apply is cached per shape: no recompilation


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx"])
def test_reverse_without_keep_order_returns_reading_order_which_the_normalization_flips(pool, impl):
    cfg = Config(3, 4, timesteps=4, go_backwards=True, return_sequences=True, native={impl: {"keep_order": False}})
    obs = pool.run(impl, "c", cfg, "cpu")
    assert "keep_order=False" in obs.construct and any("reading order" in n for n in obs.normalization)
    kept = pool.run(impl, "c", Config(3, 4, timesteps=4, go_backwards=True, return_sequences=True), "cpu")
    np.testing.assert_allclose(obs.output, kept.output, rtol=1e-6, atol=1e-7)


def test_keep_order_is_the_adapter_s_own_unless_the_layer_reads_backwards():
    assert "sets them from the case's fields" in get("flax-linen").unsupported(
        Config(3, 4, native={"flax-linen": {"keep_order": False}}))


def test_flax_bidirectional_fixes_its_directions_so_go_backwards_cannot_swap_them():
    why = get("flax-linen").unsupported(Config(3, 4, bidirectional=True, go_backwards=True))
    assert "reverse=False" in why and "cannot be swapped" in why
