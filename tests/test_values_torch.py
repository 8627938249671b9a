"""torch.nn.LSTM run with the canonical weights gives the reference's numbers (run on real torch).

The adapter maps the canonical weights to torch's layout (``load_weights``), feeds lengths as a
``PackedSequence``, initial states as ``(h_0, c_0)``, and maps the results back; every canonical
output and state must then equal the NumPy float64 reference within the dtype's tolerance.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conformance import reference
from conformance.impls import get
from conformance.spec import Config

IMPL = "torch"
TOL = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-10},
       "float16": {"rtol": 1e-2, "atol": 5e-3}, "bfloat16": {"rtol": 5e-2, "atol": 2e-2}}
# unit roundoff (half the machine epsilon): one rounding of a float64 weight to the dtype moves it by at most this
# much relative to its magnitude
ROUNDOFF = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float64": 0.0}

pytestmark = pytest.mark.skipif(get(IMPL).missing() is not None, reason=str(get(IMPL).missing()))


def cfg_of(**kw) -> Config:
    return Config(**{"input_size": 3, "hidden_size": 4, "batch": 3, "timesteps": 5, **kw})


def run(pool, cfg):
    obs = pool.run(IMPL, "values", cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def ref_of(cfg):
    return reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                             reference.initial_states(cfg))


SEQ = {"return_sequences": True, "return_state": True}
LENGTHS = {"lengths": (5, 2, 3), **SEQ}

VALUE_CASES = {
    "plain": cfg_of(),
    "sequences-state": cfg_of(**SEQ),
    "2layer": cfg_of(num_layers=2, **SEQ),
    "bi": cfg_of(bidirectional=True, **SEQ),
    "bi-last": cfg_of(bidirectional=True, return_state=True),
    "bi-2layer": cfg_of(num_layers=2, bidirectional=True, **SEQ),
    "time-major-bi": cfg_of(layout="time_major", bidirectional=True, **SEQ),
    "unbatched-2layer-bi": cfg_of(layout="unbatched", batch=1, num_layers=2, bidirectional=True, **SEQ),
    "no-bias": cfg_of(bias=False, bidirectional=True, **SEQ),
    "proj-2layer-bi": cfg_of(hidden_size=6, proj_size=2, num_layers=2, bidirectional=True, **SEQ),
    "lengths": cfg_of(**LENGTHS),
    "lengths-last": cfg_of(lengths=(5, 2, 3), return_state=True),
    "lengths-bi": cfg_of(bidirectional=True, **LENGTHS),
    "lengths-bi-last": cfg_of(bidirectional=True, lengths=(5, 2, 3), return_state=True),
    "lengths-bi-2layer-time-major": cfg_of(bidirectional=True, num_layers=2, layout="time_major", **LENGTHS),
    "lengths-proj-bi": cfg_of(hidden_size=6, proj_size=2, bidirectional=True, **LENGTHS),
    "init-zeros": cfg_of(initial_state="zeros", **SEQ),
    "init-zeros-bi-2layer": cfg_of(initial_state="zeros", bidirectional=True, num_layers=2, **SEQ),
    "init-random": cfg_of(initial_state="random", **SEQ),
    "init-random-bi": cfg_of(initial_state="random", bidirectional=True, **SEQ),
    "init-random-2layer": cfg_of(initial_state="random", num_layers=2, **SEQ),
    "init-random-bi-2layer": cfg_of(initial_state="random", bidirectional=True, num_layers=2, **SEQ),
    "init-random-unbatched-bi": cfg_of(initial_state="random", layout="unbatched", batch=1, bidirectional=True,
                                       **SEQ),
    "init-random-proj-bi": cfg_of(initial_state="random", hidden_size=6, proj_size=2, bidirectional=True, **SEQ),
    "init-random-lengths-bi-2layer": cfg_of(initial_state="random", bidirectional=True, num_layers=2, **LENGTHS),
    "float64": cfg_of(dtype="float64", bidirectional=True, num_layers=2, **SEQ),
    "float64-lengths-init": cfg_of(dtype="float64", bidirectional=True, initial_state="random", **LENGTHS),
    "float16": cfg_of(dtype="float16", bidirectional=True, num_layers=2, **SEQ),
    "float16-lengths-init": cfg_of(dtype="float16", bidirectional=True, initial_state="random", **LENGTHS),
    "bfloat16": cfg_of(dtype="bfloat16", bidirectional=True, num_layers=2, **SEQ),
    "bfloat16-lengths-init": cfg_of(dtype="bfloat16", bidirectional=True, initial_state="random", **LENGTHS),
}


@pytest.mark.parametrize("cfg", list(VALUE_CASES.values()), ids=list(VALUE_CASES))
def test_canonical_output_and_states_equal_the_reference(pool, cfg):
    obs = run(pool, cfg)
    ref = ref_of(cfg)
    tol = TOL[cfg.dtype]
    out = np.asarray(obs.output, np.float64)
    assert out.shape == ref.output.shape
    if cfg.return_sequences:       # padded steps are implementation-defined: compared in the padding test
        mask = reference.valid_mask(cfg)
        np.testing.assert_allclose(out[mask], ref.output[mask], **tol, err_msg="output at valid steps")
    else:
        np.testing.assert_allclose(out, ref.output, **tol, err_msg="output")
    assert len(obs.states) == len(ref.states)      # torch returns (h_n, c_n) whether or not the case asks
    for label, (h, c), (rh, rc) in zip(reference.state_labels(cfg), obs.states, ref.states):
        np.testing.assert_allclose(np.asarray(h, np.float64), rh, **tol, err_msg=f"{label} h")
        np.testing.assert_allclose(np.asarray(c, np.float64), rc, **tol, err_msg=f"{label} c")


ROUNDTRIP_CASES = {
    "uni": Config(3, 4),
    "2layer-bi": Config(3, 4, num_layers=2, bidirectional=True),
    "no-bias-2layer": Config(3, 4, num_layers=2, bias=False),
    "proj-2layer-bi": Config(3, 6, num_layers=2, bidirectional=True, proj_size=2),
    "float64-proj-bi": Config(3, 6, bidirectional=True, proj_size=2, dtype="float64"),
    "float16-bi": Config(3, 4, bidirectional=True, dtype="float16"),
    "bfloat16-proj": Config(3, 6, proj_size=2, dtype="bfloat16"),
}


@pytest.mark.parametrize("cfg", list(ROUNDTRIP_CASES.values()), ids=list(ROUNDTRIP_CASES))
def test_weights_round_trip_through_the_native_layout(pool, cfg):
    """load_weights then read_weights gives back every canonical tensor: exactly in float64, within one
    rounding to the native dtype otherwise; nothing is missing and nothing extra appears."""
    res = pool.roundtrip(IMPL, cfg)
    assert "error" not in res, res.get("traceback", res.get("error"))
    weights = reference.canonical_weights(cfg)
    assert res["missing"] == [] and res["extra"] == []
    assert set(res["max_abs"]) == set(weights)
    for name, diff in res["max_abs"].items():
        assert diff <= ROUNDOFF[cfg.dtype] * np.max(np.abs(weights[name])), (name, diff)
    if cfg.dtype == "float64":
        assert all(d == 0.0 for d in res["max_abs"].values())


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padded_output_steps_are_zeros_from_pad_packed_sequence(pool, bidirectional):
    """Observed: with lengths the LSTM returns a PackedSequence that holds only the valid steps; the
    padded tensor comes from pad_packed_sequence, which writes its padding_value (default 0.0) at every
    step t >= length, in both directions' halves of the feature axis. Run: every padded step is
    exactly 0.0 (the reference's choice too), and the padded output is recorded as a non-top return."""
    cfg = cfg_of(bidirectional=bidirectional, **LENGTHS)
    obs = run(pool, cfg)
    padded = np.asarray(obs.output)[~reference.valid_mask(cfg)]
    assert padded.size and np.all(padded == 0.0), padded
    assert any("padding_value=0.0" in n for n in obs.normalization)
    unpacked = [r for r in obs.returns if not r["top"]]
    assert [(r["role"], r["shape"]) for r in unpacked] == [("output", [3, 5, 4 * cfg.directions])]


def test_lengths_make_the_native_output_a_packed_sequence(pool):
    """With lengths (here 4, 2, 3 in 5 steps) forward returns (PackedSequence, (h_n, c_n)): data holds
    sum(lengths) = 9 rows, batch_sizes has one entry per step up to the longest length (4, not T)."""
    cfg = cfg_of(bidirectional=True, lengths=(4, 2, 3), **SEQ)
    obs = run(pool, cfg)
    tops = [(r["path"], r["role"], r["shape"], r["dtype"]) for r in obs.returns if r["top"]]
    assert tops == [("[0].data", "output", [9, 8], "float32"), ("[0].batch_sizes", "batch_sizes", [4], "int64"),
                    ("[0].sorted_indices", "sorted_indices", [3], "int64"),
                    ("[0].unsorted_indices", "unsorted_indices", [3], "int64"),
                    ("[1][0]", "h", [2, 3, 4], "float32"), ("[1][1]", "c", [2, 3, 4], "float32")]
    assert np.asarray(obs.output).shape == (3, 5, 8)     # total_length=T restores every time step


def test_without_lengths_the_native_output_is_a_plain_tensor(pool):
    obs = run(pool, cfg_of(**SEQ))
    assert [(r["path"], r["role"]) for r in obs.returns] == [("[0]", "output"), ("[1][0]", "h"), ("[1][1]", "c")]


def test_bfloat16_results_are_recorded_in_bfloat16_and_widened_to_float32(pool):
    obs = run(pool, cfg_of(dtype="bfloat16", **SEQ))
    assert {r["dtype"] for r in obs.returns} == {"bfloat16"}
    assert np.asarray(obs.output).dtype == np.float32


def test_float16_results_stay_float16(pool):
    obs = run(pool, cfg_of(dtype="float16", **SEQ))
    assert {r["dtype"] for r in obs.returns} == {"float16"}
    assert np.asarray(obs.output).dtype == np.float16


def test_go_backwards_is_unsupported_with_the_reason():
    reason = get(IMPL).unsupported(cfg_of(go_backwards=True))
    assert "no go_backwards" in reason and "TypeError" in reason
    with pytest.raises(ValueError, match="go_backwards"):
        get(IMPL).repro(cfg_of(go_backwards=True))


# ---- checks that need the adapter's worker half or torch in this process's place: one subprocess ----

SNIPPETS = {
    "lengths-bi-init": cfg_of(bidirectional=True, num_layers=2, initial_state="random", **LENGTHS),
    "lengths-time-major": cfg_of(layout="time_major", lengths=(4, 2, 3), **SEQ),
    "unbatched-init-zeros": cfg_of(layout="unbatched", batch=1, initial_state="zeros", num_layers=2, **SEQ),
    "bfloat16-proj": cfg_of(dtype="bfloat16", hidden_size=6, proj_size=2, **SEQ),
}

PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    import numpy as np
    from conformance.impls import get
    from conformance.reference import canonical_weights
    from conformance.spec import Config
    impl = get("torch")
    impl.setup()
    import torch
    res = {"flags": {"matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                     "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}}
    try:
        torch.nn.LSTM(3, 4, go_backwards=True)
        res["go_backwards"] = "accepted"
    except TypeError as exc:
        res["go_backwards"] = str(exc)
    cfg = Config(3, 4, bidirectional=True)
    lstm = impl.load_weights(cfg, "cpu", canonical_weights(cfg))
    res["bias_hh_zero"] = all(bool((p == 0).all()) for n, p in lstm.named_parameters() if n.startswith("bias_hh"))
    with torch.no_grad():
        lstm.bias_hh_l0.fill_(0.25)
    back = impl.read_weights(cfg, lstm)
    expected_b = lstm.bias_ih_l0.detach().double().numpy() + 0.25
    res["b_is_sum"] = bool(np.array_equal(back["layer0/forward/b"], expected_b))
    res["snippets"] = {}
    for name, d in json.loads(sys.argv[1]).items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(impl.repro(Config(**d)), name, "exec"), {"__name__": "__main__"})
        res["snippets"][name] = buf.getvalue()
    print(json.dumps(res))
""")


@pytest.fixture(scope="module")
def probe():
    configs = {name: cfg.to_dict() for name, cfg in SNIPPETS.items()}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(configs)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_setup_disables_tf32_for_gpu_values(probe):
    assert probe["flags"] == {"matmul.allow_tf32": False, "cudnn.allow_tf32": False}


def test_torch_really_rejects_a_go_backwards_argument(probe):
    assert "unexpected keyword argument 'go_backwards'" in probe["go_backwards"]


def test_second_bias_is_loaded_as_zeros_and_read_back_added(probe):
    assert probe["bias_hh_zero"] and probe["b_is_sum"]


@pytest.mark.parametrize("name", list(SNIPPETS))
def test_snippet_feeds_lengths_and_states_and_prints_the_native_returns(pool, probe, name):
    cfg = SNIPPETS[name]
    obs = run(pool, cfg)
    expected = [f"out{r['path']} {tuple(r['shape'])}" for r in obs.returns if r["top"]]
    expected.append(f"params {obs.param_count}")
    assert probe["snippets"][name].splitlines() == expected, get(IMPL).repro(cfg)
