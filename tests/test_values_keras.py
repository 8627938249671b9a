"""Keras 3 (TensorFlow backend) with the canonical weights: the same numbers as the NumPy reference.

Every run goes through the real worker (``pool``): the adapter assigns the canonical weights to the
LSTM cells' ``kernel`` / ``recurrent_kernel`` / ``bias``, feeds lengths as ``mask=``, initial states
as ``initial_state=`` and ``go_backwards`` as the LSTM's own option, and its canonical output and
states must equal ``reference.forward``. Where Keras differs from the canonical semantics (padded
output steps, Bidirectional's float32 policy, bfloat16 and the Orthogonal initializer) a test
records what it really does, so that a change in Keras fails here.
"""

import ast
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conformance import reference
from conformance.impls.keras3 import Keras3
from conformance.spec import Config

IMPL = "keras-tensorflow"
pytestmark = pytest.mark.skipif(Keras3().missing() is not None, reason=str(Keras3().missing()))

# Value tolerances per dtype (the reference is float64): float32 and float64 are rounding only;
# float16 / bfloat16 round every operation to 11 / 8 significant bits.
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-10),
       "float16": dict(rtol=5e-2, atol=2e-2), "bfloat16": dict(rtol=5e-2, atol=2e-2)}
# Machine epsilon: a weight in (-1, 1) cast from float64 to the dtype and back moves by less than this.
EPS = {"float32": 2.0 ** -23, "float64": 0.0, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}

LENGTHS = dict(batch=3, timesteps=5, lengths=(5, 2, 3))     # right padding; sequence 0 is full length
SEQ_STATE = dict(return_sequences=True, return_state=True)


def run(pool, cfg: Config, case: str = "keras-values"):
    obs = pool.run(IMPL, case, cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def expected(cfg: Config) -> reference.Forward:
    return reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                             reference.initial_states(cfg))


def assert_matches_reference(obs, cfg: Config, tol: dict | None = None) -> None:
    """Output (at valid steps only, with lengths and return_sequences) and every state."""
    tol = tol or TOL[cfg.dtype]
    ref = expected(cfg)
    out = np.asarray(obs.output, np.float64)
    assert out.shape == ref.output.shape
    if cfg.return_sequences:
        valid = reference.valid_mask(cfg)
        np.testing.assert_allclose(out[valid], ref.output[valid], **tol, err_msg="output at valid steps")
    else:
        np.testing.assert_allclose(out, ref.output, **tol, err_msg="output")
    if cfg.return_state:
        assert len(obs.states) == len(ref.states)
        for label, (h, c), (rh, rc) in zip(reference.state_labels(cfg), obs.states, ref.states):
            np.testing.assert_allclose(np.asarray(h, np.float64), rh, **tol, err_msg=f"{label} h")
            np.testing.assert_allclose(np.asarray(c, np.float64), rc, **tol, err_msg=f"{label} c")
    else:
        assert obs.states is None


def padded_steps(cfg: Config):
    """(b, t) of every padded output step."""
    return [(b, t) for b, n in enumerate(cfg.lengths) for t in range(n, cfg.timesteps)]


# ---- weights round trip ------------------------------------------------------------------

ROUNDTRIP = {
    "1-layer": Config(3, 4),
    "2-layer": Config(3, 4, num_layers=2),
    "bidirectional-2-layer": Config(3, 4, num_layers=2, bidirectional=True),
    "bidirectional-sum": Config(3, 4, num_layers=2, bidirectional=True, merge_mode="sum"),
    "no-bias": Config(3, 4, num_layers=2, bidirectional=True, bias=False),
    "float64": Config(3, 4, num_layers=2, bidirectional=True, dtype="float64"),
    "float16": Config(3, 4, bidirectional=True, dtype="float16"),
    "bfloat16": Config(3, 4, bidirectional=True, dtype="bfloat16"),
}


@pytest.mark.parametrize("cfg", ROUNDTRIP.values(), ids=ROUNDTRIP)
def test_canonical_weights_come_back_from_the_native_layers(pool, cfg):
    """load_weights then read_weights gives every canonical tensor back: exactly in float64, within the
    dtype's rounding otherwise; nothing missing, nothing extra (no projection, bias only with use_bias)."""
    result = pool.roundtrip(IMPL, cfg)
    assert "error" not in result, result.get("traceback")
    assert result["missing"] == [] and result["extra"] == []
    assert set(result["max_abs"]) == {name for name, _ in reference.canonical_params(cfg)}
    worst = max(result["max_abs"].values())
    assert worst <= EPS[cfg.dtype], result["max_abs"]


# ---- values: the canonical output and states equal the reference --------------------------

VALUES = {
    "plain": Config(3, 4),
    "sequences-state": Config(3, 4, timesteps=5, **SEQ_STATE),
    "2-layer": Config(3, 4, num_layers=2, **SEQ_STATE),
    "3-layer-last": Config(3, 4, num_layers=3, return_state=True),
    "bidirectional-concat": Config(3, 4, num_layers=2, bidirectional=True, **SEQ_STATE),
    "bidirectional-concat-last": Config(3, 4, bidirectional=True, return_state=True),
    "bidirectional-sum": Config(3, 4, num_layers=2, bidirectional=True, merge_mode="sum", **SEQ_STATE),
    "bidirectional-ave-last": Config(3, 4, num_layers=2, bidirectional=True, merge_mode="ave", return_state=True),
    "no-bias": Config(3, 4, bias=False, **SEQ_STATE),
    "no-bias-bidirectional": Config(3, 4, num_layers=2, bidirectional=True, bias=False, **SEQ_STATE),
    "lengths": Config(3, 4, **LENGTHS, **SEQ_STATE),
    "lengths-last": Config(3, 4, **LENGTHS, return_state=True),
    "lengths-2-layer": Config(3, 4, num_layers=2, **LENGTHS, **SEQ_STATE),
    "lengths-bidirectional": Config(3, 4, bidirectional=True, **LENGTHS, **SEQ_STATE),
    "lengths-bidirectional-2-layer-last": Config(3, 4, num_layers=2, bidirectional=True, **LENGTHS,
                                                 return_state=True),
    "initial-zeros": Config(3, 4, initial_state="zeros", **SEQ_STATE),
    "initial-zeros-bidirectional": Config(3, 4, bidirectional=True, initial_state="zeros", **SEQ_STATE),
    "initial-random": Config(3, 4, initial_state="random", **SEQ_STATE),
    "initial-random-2-layer": Config(3, 4, num_layers=2, initial_state="random", **SEQ_STATE),
    "initial-random-bidirectional-2-layer": Config(3, 4, num_layers=2, bidirectional=True, initial_state="random",
                                                   **SEQ_STATE),
    "initial-random-bidirectional-lengths": Config(3, 4, bidirectional=True, initial_state="random", **LENGTHS,
                                                   **SEQ_STATE),
    "go-backwards": Config(3, 4, timesteps=5, go_backwards=True, **SEQ_STATE),
    "go-backwards-last": Config(3, 4, timesteps=5, go_backwards=True, return_state=True),
    "go-backwards-lengths": Config(3, 4, go_backwards=True, **LENGTHS, **SEQ_STATE),
    "go-backwards-lengths-last": Config(3, 4, go_backwards=True, **LENGTHS, return_state=True),
    "go-backwards-2-layer-lengths-initial": Config(3, 4, num_layers=2, go_backwards=True, initial_state="random",
                                                   **LENGTHS, **SEQ_STATE),
    "float64": Config(3, 4, num_layers=2, dtype="float64", **SEQ_STATE),
    "float64-lengths-initial-go-backwards": Config(3, 4, dtype="float64", go_backwards=True, initial_state="random",
                                                   **LENGTHS, **SEQ_STATE),
    "float16": Config(3, 4, num_layers=2, dtype="float16", **LENGTHS, **SEQ_STATE),
    "float16-bidirectional": Config(3, 4, bidirectional=True, dtype="float16", initial_state="random", **LENGTHS,
                                    **SEQ_STATE),
    "bfloat16": Config(3, 4, num_layers=2, dtype="bfloat16", **LENGTHS, **SEQ_STATE),
    "bfloat16-bidirectional": Config(3, 4, bidirectional=True, dtype="bfloat16", initial_state="random", **LENGTHS,
                                     **SEQ_STATE),
}


@pytest.mark.parametrize("cfg", VALUES.values(), ids=VALUES)
def test_canonical_output_and_states_equal_the_reference(pool, cfg):
    assert_matches_reference(run(pool, cfg), cfg)


def test_time_major_unbatched_and_proj_size_are_unsupported_with_a_reason():
    """Keras 3 has no time_major, needs 3-D input and has no projection: no values to compare."""
    for cfg in (Config(3, 4, layout="time_major"), Config(3, 4, layout="unbatched", batch=1),
                Config(3, 4, proj_size=2)):
        assert Keras3().unsupported(cfg)


def test_bidirectional_float64_agrees_only_to_float32_precision(pool):
    """Bidirectional keeps its own dtype policy (float32) when only the wrapped LSTM is float64: it casts
    its input to float32 before the float64 LSTMs read it and casts the merged output to float32. So the
    float64 states differ from the reference by float32 rounding (~1e-8, far above float64's 1e-10), and
    the output is float32. Observed on Keras 3.15.1: output and states off by about 2e-8."""
    cfg = Config(3, 4, bidirectional=True, dtype="float64", **SEQ_STATE)
    obs = run(pool, cfg)
    assert obs.output.dtype == np.float32
    assert [r["dtype"] for r in obs.returns] == ["float32"] + ["float64"] * 4
    assert_matches_reference(obs, cfg, TOL["float32"])
    ref = expected(cfg)
    state_err = max(np.max(np.abs(np.asarray(s) - r)) for pair, rpair in zip(obs.states, ref.states)
                    for s, r in zip(pair, rpair))
    assert 1e-10 < state_err < 1e-6, state_err


# ---- native mechanisms: recorded as Keras uses them ----------------------------------------


def test_lengths_initial_states_and_go_backwards_are_fed_natively_and_recorded(pool):
    cfg = Config(3, 4, num_layers=2, go_backwards=True, initial_state="random", **LENGTHS, **SEQ_STATE)
    obs = run(pool, cfg)
    assert "go_backwards=True" in obs.construct
    assert "mask=" in obs.construct and "initial_state=[h0, c0]" in obs.construct
    assert "keras.ops.flip" in obs.construct
    notes = " ".join(obs.normalization)
    assert "mask=" in notes and "initial_state=[h0, c0]" in notes and "flipped along time" in notes
    # the native return structure does not change with a mask: [output, h, c] of the top layer
    assert [(r["path"], r["role"], r["shape"]) for r in obs.returns if r["top"]] == [
        ("[0]", "output", [3, 5, 4]), ("[1]", "h", [3, 4]), ("[2]", "c", [3, 4])]


def test_bidirectional_takes_initial_state_as_h_fw_c_fw_h_bw_c_bw(pool):
    """The random initial states differ per direction: only that order gives the reference's values."""
    cfg = Config(3, 4, bidirectional=True, initial_state="random", **SEQ_STATE)
    obs = run(pool, cfg)
    assert "initial_state=[h_fw, c_fw, h_bw, c_bw]" in obs.construct
    assert_matches_reference(obs, cfg)


def test_go_backwards_returns_the_sequence_in_processing_order(pool):
    """LSTM(go_backwards=True) returns its output sequence last time step first (its docstring: "process
    the input sequence backwards and return the reversed sequence"): the adapter flips it to time order,
    after which it equals the reference, and its first step is the final state (after reading step 0)."""
    cfg = Config(3, 4, timesteps=5, go_backwards=True, **SEQ_STATE)
    obs = run(pool, cfg)
    assert any("flipped along time" in n and "processing order" in n for n in obs.normalization)
    np.testing.assert_array_equal(obs.output[:, 0], obs.states[0][0])
    assert_matches_reference(obs, cfg)


def test_bfloat16_is_built_with_a_glorot_recurrent_initializer(pool):
    """The default recurrent initializer (Orthogonal, a QR decomposition) fails for bfloat16 on TensorFlow
    (see test_default_lstm_cannot_be_built_in_bfloat16): bfloat16 layers are built with glorot_uniform,
    whose values the canonical weights replace. The returned states are bfloat16 (widened to float32 in
    the canonical form), the Bidirectional merged output float32 (its own policy)."""
    cfg = Config(3, 4, bidirectional=True, dtype="bfloat16", **SEQ_STATE)
    obs = run(pool, cfg)
    assert "recurrent_initializer='glorot_uniform'" in obs.construct
    assert [r["dtype"] for r in obs.returns] == ["float32"] + ["bfloat16"] * 4
    assert obs.states[0][0].dtype == np.float32
    assert any("widened to float32" in n for n in obs.normalization)


# ---- padded output steps: what Keras puts there --------------------------------------------


def test_lstm_repeats_the_last_valid_output_at_padded_steps(pool):
    """A (forward) keras.layers.LSTM with a mask and return_sequences copies the previous output into every
    masked step (RNN(zero_output_for_mask=False), the default): sequence b's output at t >= length equals
    its output at length - 1, which is its final h; it is not zero (the reference puts zeros there)."""
    cfg = Config(3, 4, num_layers=2, **LENGTHS, **SEQ_STATE)
    obs = run(pool, cfg)
    h_top = obs.states[-1][0]
    for b, t in padded_steps(cfg):
        n = cfg.lengths[b]
        np.testing.assert_array_equal(obs.output[b, t], obs.output[b, n - 1])
        np.testing.assert_array_equal(obs.output[b, t], h_top[b])
        assert np.all(obs.output[b, t] != 0)


def test_bidirectional_puts_zeros_at_padded_steps(pool):
    """Bidirectional forces zero_output_for_mask=True on both wrapped layers when they return sequences:
    both directions' halves are exactly zero at every padded step (as in the reference)."""
    cfg = Config(3, 4, num_layers=2, bidirectional=True, **LENGTHS, **SEQ_STATE)
    obs = run(pool, cfg)
    for b, t in padded_steps(cfg):
        np.testing.assert_array_equal(obs.output[b, t], np.zeros(2 * cfg.hidden_size))


def test_go_backwards_puts_zeros_at_padded_steps_even_with_an_initial_state(pool):
    """Reversed over the whole time axis, a right-padded sequence starts with its padding: those steps are
    masked, the state stays h0 and the output is the "previous output", which starts as zeros (not h0).
    So in time order the padded steps are zeros, although the layer has zero_output_for_mask=False."""
    cfg = Config(3, 4, go_backwards=True, initial_state="random", **LENGTHS, **SEQ_STATE)
    obs = run(pool, cfg)
    h0 = reference.initial_states(cfg)[0][0]
    for b, t in padded_steps(cfg):
        np.testing.assert_array_equal(obs.output[b, t], np.zeros(cfg.hidden_size))
        assert np.all(h0[b] != 0)


# ---- repro snippets with the new native arguments -----------------------------------------

SNIPPETS = {
    "bi-2layer-lengths-initial": Config(3, 4, num_layers=2, bidirectional=True, initial_state="random",
                                        **LENGTHS, **SEQ_STATE),
    "2layer-go-backwards-lengths-zeros": Config(3, 4, num_layers=2, go_backwards=True, initial_state="zeros",
                                                **LENGTHS, **SEQ_STATE),
    "bfloat16-go-backwards": Config(3, 4, go_backwards=True, dtype="bfloat16", return_sequences=True),
}
MARKER = "@@@ snippet"
# The construct a Keras user writes by default for bfloat16: fails in build() on TensorFlow.
DEFAULT_BF16 = textwrap.dedent("""
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    try:
        keras.layers.LSTM(4, dtype="bfloat16").build((2, 3, 5))
        print("built")
    except Exception as exc:
        print(type(exc).__name__, str(exc).splitlines()[0])
""")


@pytest.fixture(scope="module")
def snippet_output(tmp_path_factory):
    """Every snippet above, and DEFAULT_BF16, run in one subprocess (TensorFlow is imported once)."""
    tmp = tmp_path_factory.mktemp("keras-snippets")
    paths = []
    for name, cfg in SNIPPETS.items():
        paths.append(tmp / f"{name}.py")
        paths[-1].write_text(Keras3().repro(cfg))
    paths.append(tmp / "default-bf16.py")
    paths[-1].write_text(DEFAULT_BF16)
    driver = tmp / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import runpy, sys, traceback
        for path in sys.argv[1:]:
            print({MARKER!r}, path, flush=True)
            try:
                runpy.run_path(path, run_name="__main__")
            except BaseException:
                traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
    """))
    proc = subprocess.Popen([sys.executable, str(driver), *map(str, paths)], cwd=tmp, text=True,
                            env={**os.environ, **Keras3().env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks, current = {}, None
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith(MARKER):
            current = os.path.basename(line[len(MARKER):].strip())[:-3]
            chunks[current] = []
        elif current is not None:
            chunks[current].append(line)
    return {name: "\n".join(lines) for name, lines in chunks.items()}, err


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippet_with_lengths_initial_states_or_go_backwards_prints_the_native_returns(pool, snippet_output, name):
    cfg = SNIPPETS[name]
    obs = run(pool, cfg)
    printed, err = snippet_output
    assert name in printed, err[-3000:]
    shapes, count = [], None
    for line in printed[name].splitlines():
        label, _, value = line.partition(" ")
        if label == "params":
            count = int(value)
        else:
            shapes.append((label, ast.literal_eval(value)))
    snippet = Keras3().repro(cfg)
    assert shapes == [("out" + r["path"], tuple(r["shape"])) for r in obs.returns if r["top"]], \
        f"{printed[name]}\n\n{snippet}"
    assert count == obs.param_count
    assert ("mask=mask" in snippet) == (cfg.lengths is not None)
    assert ("initial_state=" in snippet) == (cfg.initial_state != "none")
    assert ("keras.ops.flip" in snippet) == (cfg.go_backwards and cfg.num_layers > 1)


def test_default_lstm_cannot_be_built_in_bfloat16(snippet_output):
    """keras.layers.LSTM(dtype="bfloat16") with its default Orthogonal recurrent initializer fails in build()
    on TensorFlow: Orthogonal runs tf.linalg.qr in the variable dtype and TensorFlow's Qr op has no bfloat16
    kernel (keras-team/keras#16970). This is why the adapter builds bfloat16 layers with glorot_uniform."""
    printed, err = snippet_output
    assert "default-bf16" in printed, err[-3000:]
    assert printed["default-bf16"].startswith("InvalidArgumentError"), printed["default-bf16"]
    assert "bfloat16 is not in the list of allowed values" in printed["default-bf16"]
