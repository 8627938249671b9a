"""The tf-keras adapter (Keras 2, the ``tf_keras`` package), run for real in its worker process:
native return structure and its normalization, the canonical weights' round trip, values against the
NumPy reference, Keras 2's own options (``time_major``), what it does differently from Keras 3, and its
repro snippets run on the real framework.
"""

import ast
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conformance import checks, impls, reference
from conformance.impls.tf_keras import TfKeras2
from conformance.spec import Case, Config

IMPL = "tf-keras"
# find_spec only: TensorFlow stays out of the test process (it runs in the worker).
pytestmark = pytest.mark.skipif(TfKeras2().missing() is not None, reason=str(TfKeras2().missing()))

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-10),
       "float16": dict(rtol=5e-2, atol=2e-2), "bfloat16": dict(rtol=5e-2, atol=2e-2)}
# A weight in (-1, 1) cast from float64 to the dtype and back moves by less than this.
EPS = {"float32": 2.0 ** -24, "float64": 0.0, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
LENGTHS = dict(batch=3, timesteps=5, lengths=(5, 2, 3))     # right padding; sequence 0 is full length
SEQ_STATE = dict(return_sequences=True, return_state=True)
TM = dict(layout="time_major")


def run(pool, cfg: Config, case: str = "tf-keras-test"):
    obs = pool.run(IMPL, case, cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def top_returns(obs):
    return [r for r in obs.returns if r["top"]]


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
    return [(b, t) for b, n in enumerate(cfg.lengths) for t in range(n, cfg.timesteps)]


# ---- static half ---------------------------------------------------------------------------


def test_registered_as_tf_keras_with_the_keras_formula_and_legacy_keras_env():
    impl = impls.get(IMPL)
    assert isinstance(impl, TfKeras2) and impl.id == IMPL
    assert impl.requires == ("tf_keras", "tensorflow")
    assert impl.param_formula == "keras"
    assert impl.env["TF_USE_LEGACY_KERAS"] == "1"


def test_missing_names_the_extra_when_tf_keras_is_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf_keras", None)   # what importlib sees when tf_keras is not installed
    assert TfKeras2().missing() == "tf_keras is not installed (pip install 'lstm-conformance[tf-keras]')"


@pytest.mark.parametrize("cfg, words", [
    (Config(3, 4, proj_size=2), "Keyword argument not understood"),
    (Config(3, 4, layout="unbatched", batch=1), "expected ndim=3, found ndim=2"),
], ids=["proj_size", "unbatched"])
def test_unsupported_gives_the_reason_keras_2_raises(cfg, words):
    assert words in TfKeras2().unsupported(cfg)


@pytest.mark.parametrize("cfg", [
    Config(3, 4, layout="time_major"),
    Config(3, 4, num_layers=3, bidirectional=True, merge_mode="ave", bias=False, dtype="float64", layout="time_major",
           **LENGTHS, **SEQ_STATE),
], ids=["time-major", "everything-else"])
def test_time_major_and_the_rest_are_supported(cfg):
    assert TfKeras2().unsupported(cfg) is None


def test_static_half_imports_no_framework():
    code = ("import sys; from conformance.impls.tf_keras import TfKeras2; from conformance.spec import Config; "
            "i = TfKeras2(); i.unsupported(Config(3, 4, proj_size=2)); i.missing(); i.repro(Config(3, 4)); "
            "bad = {'keras', 'tf_keras', 'tensorflow'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_repro_of_an_unsupported_configuration_raises_with_the_reason():
    cfg = Config(5, 4, layout="unbatched", batch=1)
    with pytest.raises(ValueError) as info:
        TfKeras2().repro(cfg)
    assert str(info.value) == TfKeras2().unsupported(cfg)


def test_repro_selects_legacy_keras_before_importing_tensorflow():
    lines = TfKeras2().repro(Config(5, 4)).splitlines()
    assert lines[:2] == ["import os", 'os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras = Keras 2 too; '
                         "Keras 3 is never imported"]
    assert "import tf_keras" in lines and "import keras" not in lines


# ---- worker: versions and native return structure -------------------------------------------


def test_worker_reports_tf_keras_tensorflow_and_the_backend(pool):
    info = pool.info(IMPL)
    assert {"tf_keras", "tensorflow"} <= set(info["versions"])
    assert info["versions"]["backend"] == "tensorflow"
    assert "cpu" in info["devices"]


def test_plain_config_returns_one_tensor_and_no_states(pool):
    obs = run(pool, Config(3, 4))
    assert [(r["path"], r["role"], r["shape"]) for r in obs.returns] == [("", "output", [2, 4])]
    assert obs.states is None


def test_return_state_native_list_is_output_h_c(pool):
    obs = run(pool, Config(3, 4, return_state=True))
    assert [(r["path"], r["role"]) for r in top_returns(obs)] == [("[0]", "output"), ("[1]", "h"), ("[2]", "c")]
    assert any("return_state list [output, h, c]" in n for n in obs.normalization)
    np.testing.assert_array_equal(obs.output, obs.states[0][0])


def test_bidirectional_native_list_is_output_then_h_c_per_direction(pool):
    obs = run(pool, Config(3, 4, bidirectional=True, return_state=True))
    assert [(r["role"], r["direction"]) for r in top_returns(obs)] == [
        ("output", None), ("h", "forward"), ("c", "forward"), ("h", "backward"), ("c", "backward")]
    (h_fw, _), (h_bw, _) = obs.states
    np.testing.assert_array_equal(obs.output, np.concatenate([h_fw, h_bw], axis=-1))


def test_lower_layer_states_are_returned_but_not_as_top(pool):
    obs = run(pool, Config(3, 4, num_layers=2, bidirectional=True, return_state=True))
    assert [(r["path"], r["role"], r["layer"], r["direction"]) for r in obs.returns if not r["top"]] == [
        ("layers[0][1]", "h", 0, "forward"), ("layers[0][2]", "c", 0, "forward"),
        ("layers[0][3]", "h", 0, "backward"), ("layers[0][4]", "c", 0, "backward")]
    assert len(obs.states) == 4


def test_params_are_kernel_recurrent_kernel_bias_per_cell_and_count_by_the_keras_formula(pool):
    cfg = Config(3, 4, num_layers=2, bidirectional=True)
    obs = run(pool, cfg)
    assert [p["name"].rsplit("/", 1)[1] for p in obs.params] == ["kernel:0", "recurrent_kernel:0", "bias:0"] * 4
    assert obs.params[0]["shape"] == [3, 16] and obs.params[6]["shape"] == [8, 16]
    assert obs.param_count == reference.PARAM_FORMULAS["keras"].count(cfg) == reference.param_count(cfg)


def test_time_major_is_keras_2s_own_option_with_a_time_first_output(pool):
    """LSTM(time_major=True) reads (T, B, F) and returns the sequence (T, B, F'); states stay (B, H)."""
    cfg = Config(3, 4, timesteps=5, **TM, **SEQ_STATE)
    obs = run(pool, cfg)
    assert "time_major=True" in obs.construct
    assert [r["shape"] for r in top_returns(obs)] == [[5, 2, 4], [2, 4], [2, 4]]
    assert obs.output.shape == reference.output_shape(cfg) == (2, 5, 4)
    assert any("(T, B, F') transposed to (B, T, F')" in n for n in obs.normalization)


def test_time_major_gives_the_batch_major_numbers(pool):
    cfg = Config(3, 4, num_layers=2, bidirectional=True, **SEQ_STATE)
    batch, time = run(pool, cfg), run(pool, Config(**{**cfg.to_dict(), **TM}))
    np.testing.assert_allclose(time.output, batch.output, rtol=1e-6, atol=1e-7)
    for (h1, c1), (h2, c2) in zip(time.states, batch.states):
        np.testing.assert_allclose(h1, h2, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-7)


def test_time_major_mask_is_fed_time_by_batch(pool):
    cfg = Config(3, 4, **TM, **LENGTHS, **SEQ_STATE)
    obs = run(pool, cfg)
    assert "mask=<(T, B) bool" in obs.construct
    assert_matches_reference(obs, cfg)


# ---- weights round trip ------------------------------------------------------------------

ROUNDTRIP = {
    "1-layer": Config(3, 4),
    "bidirectional-2-layer": Config(3, 4, num_layers=2, bidirectional=True),
    "no-bias": Config(3, 4, num_layers=2, bidirectional=True, bias=False),
    "time-major": Config(3, 4, num_layers=2, **TM),
    "float64": Config(3, 4, num_layers=2, bidirectional=True, dtype="float64"),
    "float16": Config(3, 4, bidirectional=True, dtype="float16"),
    "bfloat16": Config(3, 4, bidirectional=True, dtype="bfloat16"),
}


@pytest.mark.parametrize("cfg", ROUNDTRIP.values(), ids=ROUNDTRIP)
def test_canonical_weights_come_back_from_the_native_cells(pool, cfg):
    """Exact in float64, within one rounding otherwise (one cast float64 -> dtype: half an ulp)."""
    result = pool.roundtrip(IMPL, cfg)
    assert "error" not in result, result.get("traceback")
    assert result["missing"] == [] and result["extra"] == []
    assert set(result["max_abs"]) == {name for name, _ in reference.canonical_params(cfg)}
    assert max(result["max_abs"].values()) <= EPS[cfg.dtype], result["max_abs"]


# ---- values: canonical output and states equal the reference --------------------------------

VALUES = {
    "plain": Config(3, 4),
    "sequences-state": Config(3, 4, timesteps=5, **SEQ_STATE),
    "2-layer": Config(3, 4, num_layers=2, **SEQ_STATE),
    "bidirectional-2-layer": Config(3, 4, num_layers=2, bidirectional=True, **SEQ_STATE),
    "bidirectional-ave-last": Config(3, 4, num_layers=2, bidirectional=True, merge_mode="ave", return_state=True),
    "no-bias-bidirectional": Config(3, 4, bidirectional=True, bias=False, **SEQ_STATE),
    "lengths": Config(3, 4, **LENGTHS, **SEQ_STATE),
    "lengths-bidirectional-2-layer-last": Config(3, 4, num_layers=2, bidirectional=True, **LENGTHS, return_state=True),
    "initial-random-bidirectional-2-layer": Config(3, 4, num_layers=2, bidirectional=True, initial_state="random",
                                                   **SEQ_STATE),
    "initial-zeros-lengths": Config(3, 4, initial_state="zeros", **LENGTHS, **SEQ_STATE),
    "go-backwards": Config(3, 4, timesteps=5, go_backwards=True, **SEQ_STATE),
    "go-backwards-2-layer-lengths-initial": Config(3, 4, num_layers=2, go_backwards=True, initial_state="random",
                                                   **LENGTHS, **SEQ_STATE),
    "time-major-bidirectional-lengths-initial": Config(3, 4, bidirectional=True, initial_state="random", **TM,
                                                       **LENGTHS, **SEQ_STATE),
    "time-major-go-backwards-2-layer-lengths": Config(3, 4, num_layers=2, go_backwards=True, **TM, **LENGTHS,
                                                      **SEQ_STATE),
    "time-major-last": Config(3, 4, num_layers=2, **TM, return_state=True),
    "float64": Config(3, 4, num_layers=2, dtype="float64", go_backwards=True, initial_state="random", **LENGTHS,
                      **SEQ_STATE),
    "float16-bidirectional": Config(3, 4, bidirectional=True, dtype="float16", initial_state="random", **LENGTHS,
                                    **SEQ_STATE),
    "bfloat16-2-layer": Config(3, 4, num_layers=2, dtype="bfloat16", **LENGTHS, **SEQ_STATE),
}


@pytest.mark.parametrize("cfg", VALUES.values(), ids=VALUES)
def test_canonical_output_and_states_equal_the_reference(pool, cfg):
    assert_matches_reference(run(pool, cfg), cfg)


def test_go_backwards_returns_the_sequence_in_processing_order(pool):
    """LSTM(go_backwards=True) returns its sequence last time step first: flipped to time order, its first
    step is the final state (after reading step 0)."""
    cfg = Config(3, 4, timesteps=5, go_backwards=True, **SEQ_STATE)
    obs = run(pool, cfg)
    assert any("flipped along time" in n and "processing order" in n for n in obs.normalization)
    np.testing.assert_array_equal(obs.output[:, 0], obs.states[0][0])


# ---- where Keras 2 differs from the canonical form, and from Keras 3 -----------------------


def test_masked_lstm_repeats_the_last_valid_output_at_padded_steps(pool):
    """zero_output_for_mask=False (the RNN default): as in Keras 3 (tensorflow/tensorflow#49738)."""
    cfg = Config(3, 4, num_layers=2, **LENGTHS, **SEQ_STATE)
    obs = run(pool, cfg)
    for b, t in padded_steps(cfg):
        np.testing.assert_array_equal(obs.output[b, t], obs.output[b, cfg.lengths[b] - 1])
        assert np.all(obs.output[b, t] != 0)


def test_bidirectional_and_go_backwards_put_zeros_at_padded_steps(pool):
    """Bidirectional forces zero_output_for_mask=return_sequences; go_backwards reads the padding first, so the
    "previous output" repeated there is the initial zeros (even with an initial state)."""
    for cfg in (Config(3, 4, bidirectional=True, **LENGTHS, **SEQ_STATE),
                Config(3, 4, go_backwards=True, initial_state="random", **LENGTHS, **SEQ_STATE)):
        obs = run(pool, cfg)
        for b, t in padded_steps(cfg):
            np.testing.assert_array_equal(obs.output[b, t], 0)


def test_bidirectional_float64_returns_float64_computed_from_a_float32_rounded_input(pool):
    """Keras 2's Bidirectional (float32 policy) casts its call's first argument to float32 and nothing else:
    output and states come back float64 (Keras 3: a float32 output), yet float32-accurate, as the declaration
    tf-keras-bidirectional-float64-input-cast says."""
    cfg = Config(3, 4, bidirectional=True, dtype="float64", **SEQ_STATE)
    obs = run(pool, cfg)
    assert {r["dtype"] for r in obs.returns} == {"float64"}
    assert_matches_reference(obs, cfg, TOL["float32"])
    ref = expected(cfg)
    err = max(np.max(np.abs(s - r)) for pair, rpair in zip(obs.states, ref.states) for s, r in zip(pair, rpair))
    assert 1e-10 < err < 1e-6, err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_bidirectional_reduced_precision_output_keeps_the_lstm_dtype(pool, dtype):
    """Keras 3's Bidirectional returns a float32 merged output beside 16-bit states; Keras 2's returns the
    LSTM's dtype throughout (its float32 cast of a 16-bit input is exact and it does not cast the output)."""
    obs = run(pool, Config(3, 4, bidirectional=True, dtype=dtype, **SEQ_STATE))
    assert [r["dtype"] for r in obs.returns] == [dtype] * 5


# ---- repro snippets, and Keras 2 programs that show what the adapter relies on --------------

# input 5, hidden 4, batch 2, timesteps 3: every axis has its own size, so a swapped axis shows.
SNIPPETS = {
    "uni": Config(5, 4),
    "state": Config(5, 4, return_state=True),
    "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
    "time-major-bi-sum-state": Config(5, 4, bidirectional=True, merge_mode="sum", layout="time_major", **SEQ_STATE),
    "time-major-2layer-go-backwards-lengths": Config(5, 4, num_layers=2, go_backwards=True, layout="time_major",
                                                     **LENGTHS, **SEQ_STATE),
    "bi-lengths-initial": Config(5, 4, bidirectional=True, initial_state="random", **LENGTHS, **SEQ_STATE),
    "3layer-float64-nobias": Config(5, 4, num_layers=3, bias=False, dtype="float64", return_sequences=True),
    "bfloat16-go-backwards": Config(5, 4, go_backwards=True, dtype="bfloat16", return_sequences=True),
}
PROGRAMS = {
    # keras-team/keras#16970: the default Orthogonal recurrent initializer cannot build in bfloat16
    "default-bf16": """
        import tf_keras
        try:
            tf_keras.layers.LSTM(4, dtype="bfloat16").build((2, 3, 5))
            print("built")
        except Exception as exc:
            print(type(exc).__name__, str(exc).splitlines()[0])
    """,
    # the seed001 article's Keras 2 construct (Keras 3: "Unrecognized keyword arguments")
    "batch-input-shape": """
        import tf_keras
        model = tf_keras.Sequential([tf_keras.layers.LSTM(3, batch_input_shape=(8, 2, 10))])
        print(model.output_shape, model.count_params())
    """,
    # the call docstring says mask [batch, timesteps]; with time_major=True it must be [timesteps, batch]
    "time-major-batch-first-mask": """
        import numpy as np, tf_keras
        def final_h(B, T, transpose_mask):
            x = np.random.default_rng(0).standard_normal((T, B, 2)).astype("float32")
            mask = np.arange(T)[None, :] < np.minimum(np.arange(B) + 1, T)[:, None]     # (B, T)
            tf_keras.utils.set_random_seed(0)
            layer = tf_keras.layers.LSTM(4, return_state=True, time_major=True)
            return layer(x, mask=mask.T if transpose_mask else mask)[1].numpy()
        try:
            final_h(2, 5, False)
        except Exception as exc:
            print("B!=T", type(exc).__name__)
        print("B==T", float(np.abs(final_h(3, 3, False) - final_h(3, 3, True)).max()))
    """,
    # setup's guard: Keras 3 imported in the same process is refused (runs last: it imports keras)
    "keras3-guard": """
        import keras
        from conformance.impls.tf_keras import TfKeras2
        try:
            TfKeras2().setup()
            print("no error")
        except RuntimeError as exc:
            print("RuntimeError", exc)
    """,
}
MARKER = "@@@ program"


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """Every snippet and program above, run in one subprocess (TensorFlow imported once)."""
    tmp = tmp_path_factory.mktemp("tf-keras-snippets")
    paths = []
    for name, cfg in SNIPPETS.items():
        paths.append(tmp / f"{name}.py")
        paths[-1].write_text(TfKeras2().repro(cfg))
    for name, code in PROGRAMS.items():
        paths.append(tmp / f"{name}.py")
        paths[-1].write_text(textwrap.dedent(code))
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
                            env={**os.environ, **TfKeras2().env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    chunks, current = {}, None
    for line in out.splitlines():
        if line.startswith(MARKER):
            current = os.path.basename(line[len(MARKER):].strip())[:-3]
            chunks[current] = []
        elif current is not None:
            chunks[current].append(line)
    return {name: "\n".join(lines) for name, lines in chunks.items()}, err


def output_of(printed, name: str) -> str:
    chunks, err = printed
    assert name in chunks, err[-3000:]
    return chunks[name]


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippet_prints_the_native_return_shapes_and_param_count(pool, printed, name):
    cfg = SNIPPETS[name]
    obs = run(pool, cfg)
    text = output_of(printed, name)
    shapes, count = [], None
    for line in text.splitlines():
        label, _, value = line.partition(" ")
        if label == "params":
            count = int(value)
        else:
            shapes.append((label, ast.literal_eval(value)))
    snippet = TfKeras2().repro(cfg)
    assert shapes == [("out" + r["path"], tuple(r["shape"])) for r in top_returns(obs)], f"{text}\n\n{snippet}"
    assert count == obs.param_count
    assert "conformance" not in snippet and "def " not in snippet


def test_default_lstm_cannot_be_built_in_bfloat16(printed):
    """Keras 2 shares Keras 3's Orthogonal/Qr failure: why bfloat16 layers are built with glorot_uniform."""
    assert output_of(printed, "default-bf16").startswith("InvalidArgumentError")
    assert "bfloat16 is not in the list of allowed values" in output_of(printed, "default-bf16")


def test_keras_2_takes_the_seed_articles_batch_input_shape(printed):
    """LSTM(3, batch_input_shape=(8, 2, 10)) as the first layer of a Sequential: output (8, 3), 168 params, as
    the seed001 article prints; Keras 3 rejects the argument."""
    assert output_of(printed, "batch-input-shape") == "(8, 3) 168"


def test_a_batch_by_time_mask_is_wrong_for_time_major_input(printed):
    """With time_major=True Keras 2 reads the mask as (T, B) (backend.rnn transposes it only when not
    time_major), though the call docstring says [batch, timesteps]: a (B, T) mask fails when B != T and is
    silently misread (different final states) when B == T. The adapter feeds (T, B)."""
    lines = output_of(printed, "time-major-batch-first-mask").splitlines()
    assert lines[0] == "B!=T InvalidArgumentError"
    assert float(lines[1].split()[1]) > 1e-3


def test_setup_refuses_a_process_where_keras_3_was_imported(printed):
    text = output_of(printed, "keras3-guard")
    assert text.startswith("RuntimeError") and "TF_USE_LEGACY_KERAS=1" in text


def test_tf_keras_swaps_the_directions_of_a_bidirectional_go_backwards_layer(pool):
    cfg = Config(3, 4, timesteps=4, bidirectional=True, go_backwards=True, return_sequences=True, return_state=True)
    obs = pool.run("tf-keras", "c", cfg, "cpu")
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg))
    assert checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), obs, "cpu", ref).ok
    keras3 = pool.run("keras-jax", "c", cfg, "cpu")
    assert keras3.status == "rejected" and "different `go_backwards` value" in keras3.rejection["message"]
