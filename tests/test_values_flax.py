"""flax-linen with the canonical weights: same weights, same numbers as the NumPy reference.

Runs the real framework in its worker (``pool``). Most configurations share one input shape
(batch 3, timesteps 5, input 3, hidden 4) so that the worker's jitted apply is reused and only
retraced where the module or the call's structure changes (flax compiles in 0.3-1 s per new one).
"""

import ast
import subprocess
import sys

import numpy as np
import pytest

from conformance import reference
from conformance.impls.flax_linen import FlaxLinen
from conformance.spec import Config

pytestmark = pytest.mark.skipif(FlaxLinen().missing() is not None, reason=str(FlaxLinen().missing()))

IMPL = "flax-linen"
LENGTHS = (5, 2, 3)
BASE = dict(input_size=3, hidden_size=4, batch=3, timesteps=5)
SEQ = dict(BASE, return_sequences=True, return_state=True)

# (atol, rtol) against the float64 reference, per dtype
TOL = {"float64": (1e-10, 1e-10), "float32": (1e-5, 1e-4), "float16": (2e-2, 2e-2), "bfloat16": (5e-2, 5e-2)}

VALUE_CONFIGS = {
    "plain": Config(**BASE),
    "sequences-state": Config(**SEQ),
    "2layer": Config(**SEQ, num_layers=2),
    "bi-concat": Config(**SEQ, bidirectional=True),
    "bi-sum-2layer": Config(**SEQ, bidirectional=True, merge_mode="sum", num_layers=2),
    "bi-final-output": Config(**BASE, bidirectional=True, return_state=True),
    "time-major-bi": Config(**SEQ, bidirectional=True, layout="time_major"),
    "unbatched": Config(**dict(SEQ, batch=1), layout="unbatched"),
    "lengths": Config(**SEQ, lengths=LENGTHS),
    "lengths-bi": Config(**SEQ, lengths=LENGTHS, bidirectional=True),
    "lengths-bi-final-output": Config(**BASE, lengths=LENGTHS, bidirectional=True, return_state=True),
    "lengths-time-major-2layer": Config(**SEQ, lengths=LENGTHS, num_layers=2, layout="time_major"),
    "init-zeros-2layer": Config(**SEQ, num_layers=2, initial_state="zeros"),
    "init-zeros-bi-2layer": Config(**SEQ, num_layers=2, bidirectional=True, initial_state="zeros"),
    "init-random-2layer": Config(**SEQ, num_layers=2, initial_state="random"),
    "init-random-bi-2layer": Config(**SEQ, num_layers=2, bidirectional=True, initial_state="random"),
    "init-random-unbatched": Config(**dict(SEQ, batch=1), layout="unbatched", initial_state="random"),
    "go-backwards": Config(**SEQ, go_backwards=True),
    "go-backwards-lengths": Config(**SEQ, go_backwards=True, lengths=LENGTHS),
    "go-backwards-final-output-init": Config(**BASE, go_backwards=True, return_state=True, initial_state="random"),
    "float64-bi-2layer-lengths-init": Config(**SEQ, dtype="float64", bidirectional=True, num_layers=2, lengths=LENGTHS,
                                      initial_state="random"),
    "float16": Config(**SEQ, dtype="float16"),
    "bfloat16-bi": Config(**SEQ, dtype="bfloat16", bidirectional=True),
}

_observed: dict = {}


def observe(pool, cfg: Config):
    """The worker's observation of ``cfg`` (each configuration runs once per session)."""
    if cfg not in _observed:
        obs = pool.run(IMPL, "flax-values", cfg, "cpu")
        assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
        _observed[cfg] = obs
    return _observed[cfg]


def expected(cfg: Config) -> reference.Forward:
    return reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                             reference.initial_states(cfg))


# ---- round trip: canonical -> native -> canonical


@pytest.mark.parametrize("cfg", [
    Config(**BASE),
    Config(**BASE, num_layers=2, bidirectional=True),
    Config(**BASE, num_layers=2, bidirectional=True, merge_mode="sum", dtype="float64"),
    Config(**BASE, go_backwards=True, layout="time_major"),
], ids=["uni", "bi-2layer", "bi-sum-2layer-float64", "go-backwards-time-major"])
def test_weights_round_trip_exactly(pool, cfg):
    """Blocks of W, U and b land in per-gate kernels and biases and come back where they were: exactly
    in float64, within float32 rounding (the native dtype) in float32."""
    res = pool.roundtrip(IMPL, cfg)
    assert "error" not in res, res.get("traceback")
    assert res["missing"] == [] and res["extra"] == []
    assert set(res["max_abs"]) == {n for n, _ in reference.canonical_params(cfg)}
    eps = 0.0 if cfg.dtype == "float64" else float(np.finfo(np.float32).eps)
    assert max(res["max_abs"].values()) <= eps


@pytest.mark.parametrize("dtype, eps", [("float16", 2.0 ** -11), ("bfloat16", 2.0 ** -8)])
def test_half_precision_weights_round_trip_within_the_dtypes_rounding(pool, dtype, eps):
    """The weights are |w| < 1/sqrt(H) = 0.5: rounding to the native half type loses at most
    half an ulp there (2**-12 for float16, 2**-9 for bfloat16), below the dtype's epsilon."""
    cfg = Config(**BASE, bidirectional=True, dtype=dtype)
    res = pool.roundtrip(IMPL, cfg)
    assert "error" not in res, res.get("traceback")
    assert res["missing"] == [] and res["extra"] == []
    assert 0 < max(res["max_abs"].values()) <= eps


def test_unsupported_configuration_does_not_load_weights(pool):
    """bias=False has no native form: load_weights refuses with unsupported()'s reason, it does not
    approximate it with zero biases."""
    cfg = Config(**BASE, bias=False)
    res = pool.roundtrip(IMPL, cfg)
    assert res["error"] == f"ValueError: {FlaxLinen().unsupported(cfg)}"


def test_native_parameters_are_flaxs_own_tree(pool):
    """The reported parameters are flax's own declared tree (the mapped weights must match it)."""
    obs = observe(pool, VALUE_CONFIGS["bi-concat"])
    names = {p["name"]: p["shape"] for p in obs.params}
    assert names["params/layers_0/forward_rnn/cell/ii/kernel"] == [3, 4]
    assert names["params/layers_0/backward_rnn/cell/ho/bias"] == [4]
    assert len(names) == 2 * 12 and obs.param_count == reference.param_count(VALUE_CONFIGS["bi-concat"])


# ---- values against the reference


@pytest.mark.parametrize("name", list(VALUE_CONFIGS))
def test_output_and_states_equal_the_reference(pool, name):
    cfg = VALUE_CONFIGS[name]
    obs, ref = observe(pool, cfg), expected(cfg)
    atol, rtol = TOL[cfg.dtype]
    output, want = np.asarray(obs.output, np.float64), ref.output
    if cfg.return_sequences:   # padded steps are the padding test's
        mask = reference.valid_mask(cfg)
        output, want = output[mask], want[mask]
    np.testing.assert_allclose(output, want, atol=atol, rtol=rtol, err_msg="output")
    assert len(obs.states) == len(ref.states)      # the carries come back whether or not the case asks
    for k, ((h, c), (rh, rc)) in enumerate(zip(obs.states, ref.states)):
        np.testing.assert_allclose(np.asarray(h, np.float64), rh, atol=atol, rtol=rtol, err_msg=f"h {k}")
        np.testing.assert_allclose(np.asarray(c, np.float64), rc, atol=atol, rtol=rtol, err_msg=f"c {k}")


@pytest.mark.parametrize("name", ["float16", "bfloat16-bi"])
def test_half_precision_runs_in_the_native_half_type(pool, name):
    cfg = VALUE_CONFIGS[name]
    obs = observe(pool, cfg)
    assert {r["dtype"] for r in obs.returns} == {cfg.dtype}


def test_initial_state_changes_the_result(pool):
    """The random initial states really reach flax (given as (c0, h0)): the result differs from the
    zero-state run, and the zeros run equals the run without initial states."""
    zeros, rand = observe(pool, VALUE_CONFIGS["init-zeros-2layer"]), observe(pool, VALUE_CONFIGS["init-random-2layer"])
    plain = observe(pool, VALUE_CONFIGS["2layer"])
    np.testing.assert_array_equal(zeros.output, plain.output)
    assert not np.allclose(rand.output, zeros.output, atol=1e-3)


def test_go_backwards_outputs_come_back_in_time_order(pool):
    """reverse=True with keep_order=True: the output at time 0 is the final h (the state after
    reading time 0), already in time order; no flip in the normalization."""
    obs = observe(pool, VALUE_CONFIGS["go-backwards"])
    np.testing.assert_array_equal(obs.output[:, 0], obs.states[0][0])
    assert [r["shape"] for r in obs.returns if r["role"] == "output"] == [[3, 5, 4]]
    assert any("keep_order=True" in n and "no flip" in n for n in obs.normalization)


# ---- what flax does with lengths (derived from runs)


def test_carry_stops_at_each_sequences_last_valid_step(pool):
    """With seq_lengths the carry is the state after step length-1 (flax slices the carry history),
    not the state after the last time step: for the padded sequences the two differ."""
    cfg = VALUE_CONFIGS["lengths"]
    obs = observe(pool, cfg)
    (h, _), = obs.states
    last = np.asarray(LENGTHS) - 1
    np.testing.assert_array_equal(h, obs.output[np.arange(3), last])
    padded = np.asarray(LENGTHS) < cfg.timesteps
    assert not np.allclose(h[padded], obs.output[padded, -1], atol=1e-3)


def test_forward_padded_outputs_are_computed_on_the_padding(pool):
    """Observed: at padded steps (t >= length) flax's forward outputs are neither zeros nor the last
    valid output repeated: nn.RNN keeps scanning, reading the padding input, and only the carry is
    cut at the length. The whole output sequence equals the reference run *without* lengths (which
    reads the padding steps' values as input) to float32 precision."""
    cfg = VALUE_CONFIGS["lengths"]
    obs = observe(pool, cfg)
    full = Config(**{**cfg.to_dict(), "lengths": None})
    no_lengths = reference.forward(full, reference.make_input(cfg), reference.canonical_weights(cfg)).output
    np.testing.assert_allclose(obs.output, no_lengths, atol=1e-5, rtol=1e-4)
    pad = ~reference.valid_mask(cfg)
    assert np.all(obs.output[pad] != 0)


def _backward_padding_reference(cfg: Config) -> np.ndarray:
    """What flax's reversed RNN computes per time step, padded steps included: ``flip_sequences``
    reads sequence b as x[len-1], ..., x[0], x[T-1], ..., x[len] (padding kept at the end, itself
    reversed) and keep_order maps the outputs back with the same permutation, so the output at padded
    step t is the state after reading the valid steps backwards and then the padding from T-1 down to t."""
    x, T = reference.make_input(cfg), cfg.timesteps
    w = {n.replace("/backward/", "/forward/"): v for n, v in reference.canonical_weights(cfg).items()
         if "/backward/" in n or not cfg.bidirectional}
    fwd = Config(**{**cfg.to_dict(), "lengths": None, "bidirectional": False, "go_backwards": False,
                    "num_layers": 1, "initial_state": "none", "batch": 1})
    out = np.zeros((cfg.batch, T, cfg.hidden_size))
    for b, n in enumerate(cfg.lengths):
        order = list(range(n - 1, -1, -1)) + list(range(T - 1, n - 1, -1))
        read = reference.forward(fwd, x[b, order][None], w).layer_outputs[0][0][0]
        out[b, order] = read
    return out


def test_go_backwards_padded_outputs_are_the_reversed_scan_continuing_over_the_padding(pool):
    """Observed for nn.RNN(reverse=True, keep_order=True) with seq_lengths: valid steps are right
    (the values test), and the padded steps hold computed values: the state after reading the valid
    steps backwards and then the padding from the last time step down to t (see the helper)."""
    cfg = VALUE_CONFIGS["go-backwards-lengths"]
    obs = observe(pool, cfg)
    np.testing.assert_allclose(obs.output, _backward_padding_reference(cfg), atol=1e-5, rtol=1e-4)
    assert np.all(obs.output[~reference.valid_mask(cfg)] != 0)


def test_bidirectional_backward_padded_outputs_follow_the_same_rule(pool):
    """nn.Bidirectional's backward RNN is the same reverse=True, keep_order=True scan with the same
    seq_lengths: its half of the output has the same computed values at padded steps."""
    cfg = VALUE_CONFIGS["lengths-bi"]
    obs = observe(pool, cfg)
    np.testing.assert_allclose(obs.output[..., 4:], _backward_padding_reference(cfg), atol=1e-5, rtol=1e-4)


# ---- repro snippets with the new call arguments


SNIPPETS = {
    "go-backwards-2layer-lengths-random-init-bfloat16": Config(**SEQ, go_backwards=True, num_layers=2, lengths=LENGTHS,
                                                               initial_state="random", dtype="bfloat16"),
    "bi-lengths-zeros-init": Config(**SEQ, bidirectional=True, lengths=LENGTHS, initial_state="zeros"),
}


def test_repro_snippets_with_lengths_initial_state_go_backwards_print_the_native_returns(pool, tmp_path):
    """The snippet passes seq_lengths / initial_carry / reverse=True, keep_order=True like the adapter
    (and, in bfloat16, inits in float32 and casts) and prints the same native shapes and parameter
    count as the worker's run. Each snippet runs in its own process, meanwhile the worker runs."""
    impl, procs = FlaxLinen(), {}
    for name, cfg in SNIPPETS.items():
        source = impl.repro(cfg)
        assert "seq_lengths=seq_lengths" in source and "initial_carry=carry" in source
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        procs[name] = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, cwd=tmp_path)
    try:
        for name, cfg in SNIPPETS.items():
            obs = observe(pool, cfg)
            out, err = procs[name].communicate(timeout=120)
            assert procs[name].returncode == 0, err[-3000:]
            lines = out.strip().splitlines()
            shapes = [(label, ast.literal_eval(rest)) for label, _, rest in (ln.partition(" ") for ln in lines[:-1])]
            assert shapes == [("out" + r["path"], tuple(r["shape"])) for r in obs.returns if r["top"]], out
            assert lines[-1] == f"params {obs.param_count}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
