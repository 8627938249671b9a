"""keras-jax and keras-torch: Keras 3 on the JAX and PyTorch backends, through the same adapter as
keras-tensorflow (``Keras3(backend=...)``), each in its own worker process (``pool``).

The same layers, mapping and normalization as on TensorFlow; what differs is the backend, and the
tests below pin where it does: float64 on JAX is float32-accurate (``keras.ops.tanh`` demotes it),
16-bit layers need a non-orthogonal initializer on both (no 16-bit QR), the torch backend breaks under
``keras.device("cpu:0")``, and neither needs TensorFlow. keras-jax runs each configuration structure
as one cached ``jax.jit`` program; a test proves the weights are an argument, not baked in.

Repro snippets and the backend facts run in one subprocess per backend (started once, read on
demand) with the other frameworks made unimportable.
"""

import ast
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conformance import reference
from conformance.impls import get, ids
from conformance.impls.keras3 import Keras3
from conformance.spec import Config

IMPLS = ["keras-jax", "keras-torch"]
BACKEND = {"keras-jax": "jax", "keras-torch": "torch"}
# What each backend's process must run without: never TensorFlow, nor the other backend's framework.
BLOCKED = {"keras-jax": ("tensorflow", "torch"), "keras-torch": ("tensorflow", "jax", "jaxlib", "flax")}


def available(impl_id):
    reason = get(impl_id).missing()
    return pytest.param(impl_id, marks=pytest.mark.skipif(reason is not None, reason=str(reason)), id=impl_id)


EACH = pytest.mark.parametrize("impl_id", [available(i) for i in IMPLS])

LENGTHS = dict(batch=3, timesteps=5, lengths=(5, 2, 3))      # right padding; sequence 0 is full length
SEQ = dict(return_sequences=True, return_state=True)
# (atol, rtol) against the float64 reference
TOL = {"float32": (1e-5, 1e-4), "float64": (1e-10, 1e-10), "float16": (2e-2, 2e-2), "bfloat16": (5e-2, 5e-2)}
EPS = {"float32": 2.0 ** -23, "float64": 0.0, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def run(pool, impl_id, cfg: Config, case: str = "keras-backends"):
    obs = pool.run(impl_id, case, cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def expected(cfg: Config) -> reference.Forward:
    return reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                             reference.initial_states(cfg))


def max_errors(obs, cfg: Config) -> dict[str, float]:
    """Largest absolute error of the output (valid steps) and of every state, against the reference."""
    ref = expected(cfg)
    out = np.asarray(obs.output, np.float64)
    assert out.shape == ref.output.shape
    valid = reference.valid_mask(cfg) if cfg.return_sequences else np.ones(out.shape[:1], bool)
    errors = {"output": float(np.max(np.abs(out[valid] - ref.output[valid])))}
    assert (obs.states is None) == (ref.states is None)
    for label, (h, c), (rh, rc) in zip(reference.state_labels(cfg), obs.states or [], ref.states or []):
        errors[f"{label}/h"] = float(np.max(np.abs(np.asarray(h, np.float64) - rh)))
        errors[f"{label}/c"] = float(np.max(np.abs(np.asarray(c, np.float64) - rc)))
    return errors


def assert_matches_reference(obs, cfg: Config, dtype: str | None = None):
    atol, rtol = TOL[dtype or cfg.dtype]
    ref = expected(cfg)
    valid = reference.valid_mask(cfg) if cfg.return_sequences else np.ones(ref.output.shape[:1], bool)
    np.testing.assert_allclose(np.asarray(obs.output, np.float64)[valid], ref.output[valid], atol=atol, rtol=rtol)
    for label, (h, c), (rh, rc) in zip(reference.state_labels(cfg), obs.states or [], ref.states or []):
        np.testing.assert_allclose(np.asarray(h, np.float64), rh, atol=atol, rtol=rtol, err_msg=f"{label} h")
        np.testing.assert_allclose(np.asarray(c, np.float64), rc, atol=atol, rtol=rtol, err_msg=f"{label} c")


# ---- static half ----------------------------------------------------------------------------


@EACH
def test_registry_builds_the_keras3_adapter_for_the_backend(impl_id):
    impl = get(impl_id)
    assert impl_id in ids()
    assert isinstance(impl, Keras3) and impl.id == impl_id and impl.backend == BACKEND[impl_id]
    assert impl.env["KERAS_BACKEND"] == BACKEND[impl_id]
    assert impl.param_formula == "keras"


def test_requirements_name_each_backend_and_never_tensorflow():
    assert Keras3("jax").requires == ("keras", "jax", "jaxlib")
    assert Keras3("torch").requires == ("keras", "torch")
    assert Keras3("tensorflow").requires == ("keras", "tensorflow")


def test_missing_backend_is_reported_with_an_install_hint(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "jaxlib", None)     # what importlib sees when jaxlib is not installed
    reason = Keras3("jax").missing()
    assert reason == "jaxlib is not installed (pip install 'lstm-conformance[keras-jax]')"


def test_jax_worker_runs_in_x64_mode():
    """float64 exists in JAX only with x64 on (else LSTM(dtype="float64") silently holds float32)."""
    assert Keras3("jax").env["JAX_ENABLE_X64"] == "true"
    assert "JAX_ENABLE_X64" not in Keras3("torch").env


@pytest.mark.parametrize("cfg", [Config(3, 4, proj_size=2), Config(3, 4, layout="time_major"),
                                 Config(3, 4, layout="unbatched", batch=1)], ids=["proj", "time-major", "unbatched"])
@EACH
def test_what_keras_cannot_express_is_unsupported_on_every_backend_with_the_same_reason(impl_id, cfg):
    reason = get(impl_id).unsupported(cfg)
    assert reason and reason == Keras3("tensorflow").unsupported(cfg)
    with pytest.raises(ValueError) as info:
        get(impl_id).repro(cfg)
    assert str(info.value) == reason


@pytest.mark.parametrize("backend, dtypes", [("tensorflow", {"bfloat16"}), ("jax", {"float16", "bfloat16"}),
                                             ("torch", {"float16", "bfloat16"})])
def test_sixteen_bit_layers_avoid_orthogonal_exactly_where_the_backend_has_no_16_bit_qr(backend, dtypes):
    impl = Keras3(backend)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        kwargs = dict(impl._lstm_kwargs(Config(3, 4, dtype=dtype), True))
        assert (kwargs.get("recurrent_initializer") == "glorot_uniform") == (dtype in dtypes), dtype


def test_static_half_imports_no_framework():
    code = textwrap.dedent("""
        import sys
        for mod in ("keras", "tensorflow", "jax", "jaxlib", "torch", "flax"):
            sys.modules[mod] = None
        from conformance.impls import get
        from conformance.spec import Config
        for impl_id in ("keras-jax", "keras-torch"):
            impl = get(impl_id)
            impl.missing(); impl.unsupported(Config(3, 4, proj_size=2))
            assert impl.repro(Config(3, 4, num_layers=2, bidirectional=True, lengths=(3, 1), initial_state="random"))
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# ---- worker half: weights, values, native structure -------------------------------------------

ROUNDTRIP = {
    "bi-2layer": Config(3, 4, num_layers=2, bidirectional=True),
    "no-bias": Config(3, 4, num_layers=2, bidirectional=True, bias=False),
    "float64": Config(3, 4, num_layers=2, dtype="float64"),
    "float16": Config(3, 4, bidirectional=True, dtype="float16"),
    "bfloat16": Config(3, 4, bidirectional=True, dtype="bfloat16"),
}


@pytest.mark.parametrize("cfg", ROUNDTRIP.values(), ids=ROUNDTRIP)
@EACH
def test_canonical_weights_come_back_from_the_native_layers(pool, impl_id, cfg):
    result = pool.roundtrip(impl_id, cfg)
    assert "error" not in result, result.get("traceback")
    assert result["missing"] == [] and result["extra"] == []
    assert max(result["max_abs"].values()) <= EPS[cfg.dtype], result["max_abs"]


VALUES = {
    "plain": Config(3, 4),
    "sequences-state": Config(3, 4, timesteps=5, **SEQ),
    "bi-2layer": Config(3, 4, num_layers=2, bidirectional=True, **SEQ),
    "bi-ave-3layer-last-no-bias": Config(3, 4, num_layers=3, bidirectional=True, merge_mode="ave", bias=False,
                                         return_state=True),
    "lengths-2layer": Config(3, 4, num_layers=2, **LENGTHS, **SEQ),
    "lengths-bi-initial": Config(3, 4, bidirectional=True, initial_state="random", **LENGTHS, **SEQ),
    "go-backwards-2layer-lengths-initial": Config(3, 4, num_layers=2, go_backwards=True, initial_state="random",
                                                  **LENGTHS, **SEQ),
    "float16-lengths": Config(3, 4, num_layers=2, dtype="float16", **LENGTHS, **SEQ),
    "bfloat16-bi": Config(3, 4, bidirectional=True, dtype="bfloat16", **SEQ),
}


@pytest.mark.parametrize("cfg", VALUES.values(), ids=VALUES)
@EACH
def test_canonical_output_and_states_equal_the_reference(pool, impl_id, cfg):
    assert_matches_reference(run(pool, impl_id, cfg), cfg)


@pytest.mark.skipif(Keras3("torch").missing() is not None, reason=str(Keras3("torch").missing()))
def test_torch_backend_float64_without_a_mask_is_float64_accurate(pool):
    """Unmasked, Keras's torch LSTM runs backend.lstm (a plain-torch loop, torch.matmul in float64)."""
    cfg = Config(3, 4, num_layers=2, dtype="float64", go_backwards=True, initial_state="random", **SEQ)
    obs = run(pool, "keras-torch", cfg)
    assert [r["dtype"] for r in obs.returns if r["top"]] == ["float64"] * 3
    assert_matches_reference(obs, cfg)


@pytest.mark.skipif(Keras3("torch").missing() is not None, reason=str(Keras3("torch").missing()))
def test_torch_backend_float64_with_a_mask_is_only_float32_accurate(pool):
    """Masked, it runs the generic RNN loop over LSTMCell.call, whose keras.ops.matmul casts to
    result_type(float64, float64) = float32 on torch (see test_ops_that_keep_float64_differ_per_backend):
    float64 results, float32 rounding (~1e-8). No default case has float64 with lengths unidirectional."""
    cfg = Config(3, 4, dtype="float64", **LENGTHS, **SEQ)
    obs = run(pool, "keras-torch", cfg)
    assert [r["dtype"] for r in obs.returns] == ["float64"] * 3
    assert 1e-9 < max(max_errors(obs, cfg).values()) < 1e-6
    assert_matches_reference(obs, cfg, dtype="float32")


@pytest.mark.skipif(Keras3("jax").missing() is not None, reason=str(Keras3("jax").missing()))
def test_jax_backend_float64_is_only_float32_accurate(pool):
    """Everything is float64 (x64 on), yet keras.ops.tanh computes in float32 on JAX (Keras's result_type
    demotes float64 off TensorFlow, keras-team/keras#23223; see test_ops_that_keep_float64_differ_per_backend): the
    errors are float32 rounding, ~1e-8, far above float64's. Declared: keras-jax-float64-tanh-in-float32."""
    cfg = Config(3, 4, dtype="float64", timesteps=5, **SEQ)
    obs = run(pool, "keras-jax", cfg)
    assert [r["dtype"] for r in obs.returns] == ["float64"] * 3
    worst = max(max_errors(obs, cfg).values())
    assert 1e-9 < worst < 1e-6, worst
    assert_matches_reference(obs, cfg, dtype="float32")


@EACH
def test_bidirectional_two_layers_return_state_is_normalized_to_h_c_per_layer_and_direction(pool, impl_id):
    cfg = Config(3, 4, num_layers=2, bidirectional=True, return_state=True)
    obs = run(pool, impl_id, cfg)
    assert [(r["path"], r["role"], r["direction"], r["top"]) for r in obs.returns] == [
        ("[0]", "output", None, True), ("[1]", "h", "forward", True), ("[2]", "c", "forward", True),
        ("[3]", "h", "backward", True), ("[4]", "c", "backward", True),
        ("layers[0][1]", "h", "forward", False), ("layers[0][2]", "c", "forward", False),
        ("layers[0][3]", "h", "backward", False), ("layers[0][4]", "c", "backward", False)]
    assert [(h.shape, c.shape) for h, c in obs.states] == reference.state_shapes(cfg)
    (h_fw, _), (h_bw, _) = obs.states[-2:]
    np.testing.assert_array_equal(obs.output, np.concatenate([h_fw, h_bw], axis=1))
    assert obs.param_count == reference.param_count(cfg) == sum(int(np.prod(p["shape"])) for p in obs.params)


@EACH
def test_go_backwards_sequence_comes_back_in_reading_order_and_is_flipped(pool, impl_id):
    cfg = Config(3, 4, timesteps=5, go_backwards=True, **SEQ)
    obs = run(pool, impl_id, cfg)
    assert any("processing order" in n for n in obs.normalization)
    np.testing.assert_array_equal(obs.output[:, 0], obs.states[0][0])   # time step 0 is read last


@EACH
def test_masked_lstm_repeats_the_last_valid_output_at_padded_steps(pool, impl_id):
    """As on TensorFlow (keras-mask-repeats-last-output): RNN(zero_output_for_mask=False) carries the
    previous output into masked steps; Bidirectional gives zeros."""
    cfg = Config(3, 4, **LENGTHS, **SEQ)
    obs = run(pool, impl_id, cfg)
    for b, n in enumerate(cfg.lengths):
        for t in range(n, cfg.timesteps):
            np.testing.assert_array_equal(obs.output[b, t], obs.states[0][0][b])
    bi = Config(3, 4, bidirectional=True, **LENGTHS, **SEQ)
    obs = run(pool, impl_id, bi)
    for b, n in enumerate(bi.lengths):
        assert not obs.output[b, n:].any()


@EACH
def test_bidirectional_keeps_its_float32_policy_on_every_backend(pool, impl_id):
    cfg = Config(3, 4, bidirectional=True, dtype="float64", **SEQ)
    obs = run(pool, impl_id, cfg)
    assert [r["dtype"] for r in obs.returns] == ["float32"] + ["float64"] * 4
    assert_matches_reference(obs, cfg, dtype="float32")


@pytest.mark.skipif(Keras3("jax").missing() is not None, reason=str(Keras3("jax").missing()))
def test_jax_reuses_the_compiled_stack_with_the_new_weights_and_inputs(pool):
    """Same structure, other seed (weights, input, initial states) and other lengths: the jitted program is
    reused (no compilation) and the numbers are the new configuration's: the weights are not baked in."""
    first = Config(3, 6, bidirectional=True, initial_state="random", seed=11, **LENGTHS, **SEQ)
    second = Config(3, 6, bidirectional=True, initial_state="random", seed=12,
                    **dict(LENGTHS, lengths=(1, 5, 4)), **SEQ)
    assert run(pool, "keras-jax", first).timings["jit_compiled_before"] == 0.0
    obs = run(pool, "keras-jax", second)
    assert obs.timings["jit_compiled_before"] == 1.0
    assert obs.timings["run_s"] < 0.2, obs.timings
    assert_matches_reference(obs, second)


@EACH
def test_worker_reports_the_backend_and_its_versions(pool, impl_id):
    info = pool.info(impl_id)
    assert info["versions"]["backend"] == BACKEND[impl_id]
    assert set(info["versions"]) == {"keras", "backend", *get(impl_id).requires[1:]}
    assert "cpu" in info["devices"] and info["device_names"]["cpu"] == "cpu"


# ---- in a subprocess per backend, other frameworks unimportable: repro snippets and backend facts ----

SNIPPETS = {
    "plain": Config(5, 4),
    "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
    "2layer-go-backwards-lengths-initial": Config(5, 4, num_layers=2, go_backwards=True, initial_state="random",
                                                  **LENGTHS, **SEQ),
    "bi-sum-float16-sequences": Config(5, 4, bidirectional=True, merge_mode="sum", dtype="float16", **SEQ),
}
# Backend facts, each printing one line.
FACTS = {
    # The default construct in 16 bits: Orthogonal's QR has no float16 kernel on these backends.
    "default-float16": """
        try:
            keras.layers.LSTM(4, dtype="float16").build((2, 3, 5))
            print("built")
        except Exception as exc:
            print(type(exc).__name__, str(exc).splitlines()[0])
    """,
    # keras.ops.tanh / sigmoid / matmul on float64 tensors: the dtype each returns.
    "ops-float64": """
        x = keras.ops.convert_to_tensor(np.linspace(-1, 1, 4).reshape(2, 2), dtype="float64")
        print(*(keras.backend.standardize_dtype(t.dtype)
                for t in (keras.ops.tanh(x), keras.ops.sigmoid(x), keras.ops.matmul(x, x))))
    """,
}
# The adapter's worker half in this process: it runs a case, and only its backend's framework is loaded.
# On JAX it also calls the same layers eagerly: the jitted stack must give the same numbers, bit for bit.
ADAPTER = """
    from conformance.impls import get
    from conformance.reference import canonical_weights, initial_states, make_input, valid_mask
    from conformance.spec import Config
    impl = get(IMPL)
    impl.setup()
    cfg = Config(3, 4, num_layers=2, bidirectional=True, return_sequences=True, return_state=True,
                 initial_state="random", batch=3, timesteps=5, lengths=(5, 2, 3))
    w, x, init = canonical_weights(cfg), make_input(cfg), initial_states(cfg)
    obs = impl.run(cfg, "cpu", x, w, init)
    print(obs.status, sorted(m for m in ("tensorflow", "torch", "jax", "flax") if sys.modules.get(m) is not None))
    if IMPL == "keras-jax":
        keras = impl._keras
        layers = impl.load_weights(cfg, "cpu", w)
        with keras.device("cpu:0"):
            mask = keras.ops.convert_to_tensor(valid_mask(cfg))
            initial = [[keras.ops.convert_to_tensor(s, dtype="float32") for pair in init[2 * l:2 * l + 2] for s in pair]
                       for l in range(2)]
            eager = impl._stack(cfg, layers, keras.ops.convert_to_tensor(x, dtype="float32"), mask, initial)
        jitted = [obs.output] + [t for pair in obs.states[2:] for t in pair]
        print(max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(eager[-1], jitted)))
"""
TORCH_FACTS = {
    # keras.device("cpu:0") on torch: Parameter.to("cpu:0") is a copy, no longer a Parameter
    "device-cpu0": """
        try:
            with keras.device("cpu:0"):
                keras.layers.LSTM(4).build((2, 3, 5))
            print("built")
        except Exception as exc:
            print(type(exc).__name__, str(exc).splitlines()[0])
    """,
}
JAX_FACTS = {
    # x64 off (JAX's default): LSTM(dtype="float64") says float64 but holds float32 (last: it changes the mode)
    "x64-off": """
        import jax
        jax.config.update("jax_enable_x64", False)
        layer = keras.layers.LSTM(4, dtype="float64")
        layer.build((2, 3, 5))
        print(layer.cell.kernel.dtype, keras.backend.standardize_dtype(layer.cell.kernel.value.dtype))
        jax.config.update("jax_enable_x64", True)
    """,
}
MARKER = "@@@ keras-backends"


def _fact(impl_id: str, body: str) -> str:
    return (f"import os, sys\nos.environ['KERAS_BACKEND'] = {BACKEND[impl_id]!r}\nimport keras\nimport numpy as np\n"
            f"IMPL = {impl_id!r}\n" + textwrap.dedent(body))


class BackendProcesses:
    """One subprocess per backend runs its snippets and facts, started together, read on demand."""

    def __init__(self, tmp):
        self.procs, self.out = {}, {}
        for impl_id in IMPLS:
            if get(impl_id).missing():
                continue
            facts = {"adapter": ADAPTER, **FACTS, **(JAX_FACTS if impl_id == "keras-jax" else TORCH_FACTS)}
            scripts = {**{name: get(impl_id).repro(cfg) for name, cfg in SNIPPETS.items()},
                       **{name: _fact(impl_id, body) for name, body in facts.items()}}
            paths = []
            for name, text in scripts.items():
                paths.append(tmp / f"{impl_id}-{name}.py")
                paths[-1].write_text(text)
            driver = textwrap.dedent(f"""
                import runpy, sys, traceback
                for mod in {BLOCKED[impl_id]!r}:
                    sys.modules[mod] = None          # importing it raises ImportError
                for path in sys.argv[1:]:
                    print({MARKER!r}, path, flush=True)
                    try:
                        runpy.run_path(path, run_name="__main__")
                    except BaseException:
                        traceback.print_exc(file=sys.stdout)
                    sys.stdout.flush()
            """)
            self.procs[impl_id] = subprocess.Popen(
                [sys.executable, "-c", driver, *map(str, paths)], cwd=tmp, text=True,
                env={**os.environ, **get(impl_id).env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def output(self, impl_id: str, name: str) -> str:
        if impl_id not in self.out:
            try:
                out, err = self.procs[impl_id].communicate(timeout=150)
            except subprocess.TimeoutExpired:
                self.procs[impl_id].kill()
                out, err = self.procs[impl_id].communicate()
            chunks, current = {}, None
            for line in out.splitlines():
                if line.startswith(MARKER):
                    current = os.path.basename(line[len(MARKER):].strip())[len(impl_id) + 1:-3]
                    chunks[current] = []
                elif current is not None:
                    chunks[current].append(line)
            self.out[impl_id] = ({k: "\n".join(v) for k, v in chunks.items()}, err)
        chunks, err = self.out[impl_id]
        assert name in chunks, f"the driver did not reach {name}; stderr:\n{err[-3000:]}"
        return chunks[name]

    def close(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def backend_runs(tmp_path_factory):
    """Started with the module's first test, so that the subprocesses run beside the worker tests."""
    runs = BackendProcesses(tmp_path_factory.mktemp("keras-backends"))
    yield runs
    runs.close()


@pytest.mark.parametrize("name", SNIPPETS)
@EACH
def test_repro_snippet_prints_the_native_returns_and_count(pool, backend_runs, impl_id, name):
    cfg = SNIPPETS[name]
    obs = run(pool, impl_id, cfg, f"repro-{name}")
    printed = backend_runs.output(impl_id, name)
    shapes, count = [], None
    for line in printed.splitlines():
        label, _, value = line.partition(" ")
        if label == "params":
            count = int(value)
        else:
            shapes.append((label, ast.literal_eval(value)))
    snippet = get(impl_id).repro(cfg)
    assert shapes == [("out" + r["path"], tuple(r["shape"])) for r in obs.returns if r["top"]], \
        f"{printed}\n\n{snippet}"
    assert count == obs.param_count
    assert snippet.splitlines()[1] == f'os.environ["KERAS_BACKEND"] = "{BACKEND[impl_id]}"'


@EACH
def test_adapter_runs_without_tensorflow_or_the_other_backend(backend_runs, impl_id):
    assert backend_runs.output(impl_id, "adapter").splitlines()[0] == f"ok ['{BACKEND[impl_id]}']"


@EACH
def test_default_float16_lstm_cannot_be_built(backend_runs, impl_id):
    """Why 16-bit layers are built with glorot_uniform here: Orthogonal's QR has no float16 kernel
    (jax-ml/jax#30176: "Unsupported dtype float16."; torch: geqrf not implemented for 'Half', pytorch/pytorch#9315).
    On TensorFlow float16 builds; only bfloat16 fails there (keras-team/keras#16970)."""
    printed = backend_runs.output(impl_id, "default-float16")
    assert printed.startswith("NotImplementedError"), printed
    assert {"keras-jax": "Unsupported dtype float16", "keras-torch": "not implemented for 'Half'"}[impl_id] in printed


@EACH
def test_ops_that_keep_float64_differ_per_backend(backend_runs, impl_id):
    """tanh, sigmoid, matmul of float64 tensors. Keras's result_type demotes float64 to float32 on every
    backend but TensorFlow (keras/src/backend/common/dtypes.py, BIT64_TO_BIT32_DTYPE; keras-team/keras#23223),
    and each backend applies it to other ops: JAX's tanh (so float64 LSTMs on JAX are float32-accurate),
    torch's matmul (so masked float64 LSTMs on torch, which run LSTMCell.call, are)."""
    printed = backend_runs.output(impl_id, "ops-float64")
    assert printed == {"keras-jax": "float32 float64 float64", "keras-torch": "float64 float64 float32"}[impl_id]


@pytest.mark.skipif(Keras3("torch").missing() is not None, reason=str(Keras3("torch").missing()))
def test_torch_backend_cannot_build_an_lstm_under_keras_device_cpu0(backend_runs):
    """The int32 seed-generator state becomes a plain tensor (Parameter.to("cpu:0") copies,
    pytorch/pytorch#9303) that TorchLayer wraps in a Parameter requiring grad: why the adapter says "cpu"."""
    printed = backend_runs.output("keras-torch", "device-cpu0")
    assert printed == ("RuntimeError Only Tensors of floating point and complex dtype can require gradients"), printed


@pytest.mark.skipif(Keras3("jax").missing() is not None, reason=str(Keras3("jax").missing()))
def test_jax_jitted_stack_gives_the_numbers_of_the_eager_layers(backend_runs):
    assert float(backend_runs.output("keras-jax", "adapter").splitlines()[1]) == 0.0


@pytest.mark.skipif(Keras3("jax").missing() is not None, reason=str(Keras3("jax").missing()))
def test_jax_without_x64_holds_float32_in_a_float64_layer(backend_runs):
    """JAX's default: the Keras variable says float64, its value is float32 (jax-ml/jax#1333)."""
    assert backend_runs.output("keras-jax", "x64-off") == "float64 float32"

