"""flax-linen-optimized, flax-nnx and flax-nnx-optimized, run for real in their workers: native facts,
their normalization, the canonical weights and the values they give, and what differs between linen
and nnx and between the plain and the optimized cells.

Most configurations share one input shape (batch 3, timesteps 5, input 3, hidden 4), so each worker's
jitted apply is reused and only retraced where the module or the call's structure changes. The repro
snippets (and a probe of 16-bit random init) run in one subprocess started with the first worker run.
"""

import ast
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conformance import impls, reference
from conformance.impls.flax_linen import FlaxLinen
from conformance.impls.flax_nnx import FlaxNnx
from conformance.spec import Config

# find_spec only: jax and flax are imported in the workers, never in the test process.
pytestmark = pytest.mark.skipif(FlaxNnx().missing() is not None, reason=str(FlaxNnx().missing()))

IMPLS = ["flax-linen-optimized", "flax-nnx", "flax-nnx-optimized"]
NNX = ["flax-nnx", "flax-nnx-optimized"]
H = 4
LENGTHS = (5, 2, 3)
BASE = dict(input_size=3, hidden_size=H, batch=3, timesteps=5)
SEQ = dict(BASE, return_sequences=True, return_state=True)

# (atol, rtol) against the float64 reference, per dtype
TOL = {"float64": (1e-10, 1e-10), "float32": (1e-5, 1e-4), "float16": (2e-2, 2e-2), "bfloat16": (5e-2, 5e-2)}

CONFIGS = {
    "plain": Config(**BASE),
    "sequences-state": Config(**SEQ),
    "2layer-init-random": Config(**SEQ, num_layers=2, initial_state="random"),
    "bi-lengths": Config(**SEQ, bidirectional=True, lengths=LENGTHS),
    "bi-sum-2layer-final-output": Config(**BASE, bidirectional=True, merge_mode="sum", num_layers=2, return_state=True),
    "go-backwards-lengths": Config(**SEQ, go_backwards=True, lengths=LENGTHS),
    "time-major-bi-init-zeros": Config(**SEQ, layout="time_major", bidirectional=True, initial_state="zeros"),
    "unbatched-init-random": Config(**dict(SEQ, batch=1), layout="unbatched", initial_state="random"),
    "float64-bi-2layer-lengths-init": Config(**SEQ, dtype="float64", bidirectional=True, num_layers=2,
                                             lengths=LENGTHS, initial_state="random"),
    "bfloat16-bi": Config(**SEQ, dtype="bfloat16", bidirectional=True),
    "float16": Config(**SEQ, dtype="float16"),
}

# Repro snippets checked by running them: (impl, CONFIGS name); their observations are the value runs'.
SNIPPETS = [
    ("flax-linen-optimized", "bi-sum-2layer-final-output"),
    ("flax-linen-optimized", "bfloat16-bi"),
    ("flax-linen-optimized", "go-backwards-lengths"),
    ("flax-nnx", "unbatched-init-random"),
    ("flax-nnx", "float64-bi-2layer-lengths-init"),
    ("flax-nnx", "time-major-bi-init-zeros"),
    ("flax-nnx-optimized", "bfloat16-bi"),
    ("flax-nnx-optimized", "2layer-init-random"),
    ("flax-nnx-optimized", "go-backwards-lengths"),
]
MARKER = "@@@ script"
DRIVER = textwrap.dedent(f"""
    import runpy, sys, traceback
    for path in sys.argv[1:]:
        print({MARKER!r}, path, flush=True)
        try:
            runpy.run_path(path, run_name="__main__")
        except BaseException:
            traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
""")
# What random init (the frameworks' defaults) does in bfloat16, eagerly: the reason the nnx-optimized
# snippet passes recurrent_kernel_init=modified_orthogonal and the linen snippets init in float32.
INIT_PROBE = textwrap.dedent("""
    import jax, jax.numpy as jnp
    import flax.linen as nn
    from flax import nnx
    x = jnp.ones((1, 2, 3), jnp.bfloat16)
    builds = {
        "nnx.LSTMCell": lambda: nnx.LSTMCell(3, 4, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0)),
        "nnx.OptimizedLSTMCell": lambda: nnx.OptimizedLSTMCell(3, 4, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0)),
        "nn.LSTMCell": lambda: nn.RNN(nn.LSTMCell(4, param_dtype=jnp.bfloat16)).init(jax.random.PRNGKey(0), x),
        "nn.OptimizedLSTMCell": lambda: nn.RNN(nn.OptimizedLSTMCell(4, param_dtype=jnp.bfloat16)).init(
            jax.random.PRNGKey(0), x),
    }
    for name, build in builds.items():
        try:
            build()
            print(name, "ok")
        except Exception as exc:
            print(name, type(exc).__name__, str(exc).replace(chr(10), " ")[:200])
""")

_observed: dict = {}


def observe(pool, impl_id: str, name: str):
    """The worker's observation of CONFIGS[name] on impl_id (each runs once per session)."""
    if (impl_id, name) not in _observed:
        obs = pool.run(impl_id, f"variants-{name}", CONFIGS[name], "cpu")
        assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
        _observed[impl_id, name] = obs
    return _observed[impl_id, name]


def top_returns(obs):
    return [r for r in obs.returns if r["top"]]


def params(obs) -> dict:
    return {p["name"]: p["shape"] for p in obs.params}


# ---- static half: no framework imports


def test_registry_resolves_each_id_to_its_adapter_and_cell():
    got = {i: (type(impls.get(i)).__name__, impls.get(i).cell_cls, impls.get(i).id) for i in IMPLS}
    assert got == {"flax-linen-optimized": ("FlaxLinen", "OptimizedLSTMCell", "flax-linen-optimized"),
                   "flax-nnx": ("FlaxNnx", "LSTMCell", "flax-nnx"),
                   "flax-nnx-optimized": ("FlaxNnx", "OptimizedLSTMCell", "flax-nnx-optimized")}
    assert FlaxLinen().id == "flax-linen" and FlaxLinen().cell_cls == "LSTMCell"


@pytest.mark.parametrize("cls", [FlaxLinen, FlaxNnx])
def test_an_unknown_cell_is_refused(cls):
    with pytest.raises(ValueError, match="unknown"):
        cls(cell="peephole")


def test_importing_the_adapters_does_not_import_jax_or_flax():
    code = ("import sys, conformance.impls.flax_nnx as m; from conformance.impls import get; "
            f"[get(i).unsupported(m.Config(3, 4)) for i in {IMPLS!r}]; "
            f"[get(i).repro(m.Config(3, 4)) for i in {IMPLS!r}]; "
            "assert not {'jax', 'flax'} & set(sys.modules), sorted({'jax', 'flax'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("impl_id", IMPLS)
def test_proj_size_and_bias_false_are_unsupported_naming_the_cell(impl_id):
    impl = impls.get(impl_id)
    proj, nobias = impl.unsupported(Config(**BASE, proj_size=2)), impl.unsupported(Config(**BASE, bias=False))
    assert impl.cell_cls in proj and "projection" in proj
    assert impl.cell_cls in nobias and "use_bias" in nobias
    assert impl.unsupported(CONFIGS["float64-bi-2layer-lengths-init"]) is None


@pytest.mark.parametrize("impl_id", IMPLS)
def test_repro_of_an_unsupported_configuration_raises_with_the_reason(impl_id):
    impl, cfg = impls.get(impl_id), Config(**BASE, bias=False)
    with pytest.raises(ValueError) as info:
        impl.repro(cfg)
    assert str(info.value) == impl.unsupported(cfg)


def test_snippets_are_self_contained_programs():
    for impl_id, name in SNIPPETS:
        snippet = impls.get(impl_id).repro(CONFIGS[name])
        assert "conformance" not in snippet and "def " not in snippet
        compile(snippet, f"<{impl_id} {name}>", "exec")


def test_repro_imports_no_framework():
    configs = [(impl_id, CONFIGS[name].to_dict()) for impl_id, name in SNIPPETS]
    code = textwrap.dedent(f"""
        import json, sys
        for mod in ("jax", "jaxlib", "flax"):
            sys.modules[mod] = None          # any import of it raises ImportError
        from conformance.impls import get
        from conformance.spec import Config
        print(sum(bool(get(i).repro(Config(**c)).strip()) for i, c in json.loads(sys.argv[1])))
    """)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(configs)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(SNIPPETS))]


# ---- round trip: canonical -> native -> canonical


@pytest.mark.parametrize("impl_id", IMPLS)
def test_worker_reports_jax_jaxlib_and_flax_versions(pool, scripts, impl_id):
    """(Requests ``scripts`` so that the snippets run in their subprocess while the workers work.)"""
    assert {"jax", "jaxlib", "flax"} <= set(pool.info(impl_id)["versions"])


@pytest.mark.parametrize("impl_id", IMPLS)
@pytest.mark.parametrize("cfg", [Config(**BASE, num_layers=2, bidirectional=True),
                                 Config(**BASE, num_layers=2, bidirectional=True, merge_mode="sum", dtype="float64")],
                         ids=["bi-2layer-float32", "bi-sum-2layer-float64"])
def test_weights_round_trip_exactly(pool, impl_id, cfg):
    res = pool.roundtrip(impl_id, cfg)
    assert "error" not in res, res.get("traceback")
    assert res["missing"] == [] and res["extra"] == []
    assert set(res["max_abs"]) == {n for n, _ in reference.canonical_params(cfg)}
    eps = 0.0 if cfg.dtype == "float64" else float(np.finfo(np.float32).eps)
    assert max(res["max_abs"].values()) <= eps


@pytest.mark.parametrize("impl_id", IMPLS)
def test_bfloat16_weights_round_trip_within_one_rounding(pool, impl_id):
    """|w| < 1/sqrt(H) = 0.5: rounding to bfloat16 loses at most half an ulp there (2**-9)."""
    res = pool.roundtrip(impl_id, Config(**BASE, bidirectional=True, dtype="bfloat16"))
    assert "error" not in res, res.get("traceback")
    assert 0 < max(res["max_abs"].values()) <= 2.0 ** -8


@pytest.mark.parametrize("impl_id", NNX)
def test_unsupported_configuration_does_not_load_weights(pool, impl_id):
    cfg = Config(**BASE, bias=False)
    assert pool.roundtrip(impl_id, cfg)["error"] == f"ValueError: {impls.get(impl_id).unsupported(cfg)}"


# ---- values against the reference


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("impl_id", IMPLS)
def test_output_and_states_equal_the_reference(pool, impl_id, name):
    cfg = CONFIGS[name]
    obs = observe(pool, impl_id, name)
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                            reference.initial_states(cfg))
    atol, rtol = TOL[cfg.dtype]
    output, want = np.asarray(obs.output, np.float64), ref.output
    if cfg.return_sequences:   # padded steps are the padding tests'
        mask = reference.valid_mask(cfg)
        output, want = output[mask], want[mask]
    np.testing.assert_allclose(output, want, atol=atol, rtol=rtol, err_msg="output")
    assert len(obs.states) == len(ref.states)      # the carries come back whether or not the case asks
    for k, ((h, c), (rh, rc)) in enumerate(zip(obs.states, ref.states)):
        np.testing.assert_allclose(np.asarray(h, np.float64), rh, atol=atol, rtol=rtol, err_msg=f"h {k}")
        np.testing.assert_allclose(np.asarray(c, np.float64), rc, atol=atol, rtol=rtol, err_msg=f"c {k}")


def test_linen_and_nnx_optimized_cells_give_bit_identical_results(pool):
    """Same fused arithmetic (one (in, 4H) and one (H, 4H) matmul per step), same scan: the same bits,
    though linen stores per-gate kernels and nnx fused ones."""
    for name in ("sequences-state", "bi-lengths"):
        a, b = observe(pool, "flax-linen-optimized", name), observe(pool, "flax-nnx-optimized", name)
        np.testing.assert_array_equal(a.output, b.output)
        for (h1, c1), (h2, c2) in zip(a.states, b.states):
            np.testing.assert_array_equal(h1, h2)
            np.testing.assert_array_equal(c1, c2)


def test_plain_and_optimized_nnx_cells_agree_within_float32_rounding(pool):
    plain, fused = observe(pool, "flax-nnx", "sequences-state"), observe(pool, "flax-nnx-optimized", "sequences-state")
    np.testing.assert_allclose(plain.output, fused.output, atol=2e-7, rtol=0)


# ---- native return structure and its normalization


@pytest.mark.parametrize("impl_id", IMPLS)
def test_native_return_is_carry_c_then_h_and_the_whole_sequence_without_return_sequences(pool, impl_id):
    obs = observe(pool, impl_id, "plain")
    assert [(r["path"], r["role"], r["shape"]) for r in top_returns(obs)] == [
        ("[0][0]", "c", [3, H]), ("[0][1]", "h", [3, H]), ("[1]", "output", [3, 5, H])]
    assert "carry (c, h) -> canonical (h, c)" in obs.normalization


@pytest.mark.parametrize("impl_id", IMPLS)
def test_bidirectional_native_carry_is_forward_then_backward_each_c_then_h(pool, impl_id):
    obs = observe(pool, impl_id, "bi-lengths")
    assert [(r["path"], r["role"], r["direction"]) for r in top_returns(obs)] == [
        ("[0][0][0]", "c", "forward"), ("[0][0][1]", "h", "forward"),
        ("[0][1][0]", "c", "backward"), ("[0][1][1]", "h", "backward"), ("[1]", "output", None)]


@pytest.mark.parametrize("impl_id", IMPLS)
def test_lower_layer_carries_are_returned_as_not_top_with_their_layer(pool, impl_id):
    obs = observe(pool, impl_id, "2layer-init-random")
    assert [(r["path"], r["role"], r["layer"]) for r in obs.returns if not r["top"]] == [
        ("layers[0][0]", "c", 0), ("layers[0][1]", "h", 0)]


@pytest.mark.parametrize("impl_id", IMPLS)
def test_canonical_states_put_h_first(pool, impl_id):
    obs = observe(pool, impl_id, "float64-bi-2layer-lengths-init")
    for h, c in obs.states:
        # h = o * tanh(c) with 0 < o < 1, so |h| <= |tanh(c)|; swapped, |c| <= |tanh(h)| < |h| fails.
        assert np.all(np.abs(h) <= np.abs(np.tanh(c)) + 1e-12)
        assert not np.any(np.abs(c) <= np.abs(np.tanh(h)))


@pytest.mark.parametrize("impl_id", IMPLS)
def test_time_major_native_output_is_time_first_and_normalizes_to_batch_first(pool, impl_id):
    obs = observe(pool, impl_id, "time-major-bi-init-zeros")
    assert top_returns(obs)[-1]["shape"] == [5, 3, 2 * H]
    assert tuple(obs.output.shape) == (3, 5, 2 * H)


@pytest.mark.parametrize("impl_id", IMPLS)
def test_unbatched_native_has_no_batch_axis_anywhere(pool, impl_id):
    obs = observe(pool, impl_id, "unbatched-init-random")
    assert [r["shape"] for r in top_returns(obs)] == [[H], [H], [5, H]]
    assert tuple(obs.output.shape) == (1, 5, H) and tuple(obs.states[0][0].shape) == (1, H)


@pytest.mark.parametrize("impl_id", IMPLS)
def test_final_output_merges_each_directions_final_h(pool, impl_id):
    obs = observe(pool, impl_id, "bi-sum-2layer-final-output")
    (h_fwd, _), (h_bwd, _) = obs.states[2:]
    np.testing.assert_allclose(obs.output, h_fwd + h_bwd, rtol=1e-6)


@pytest.mark.parametrize("impl_id", IMPLS)
def test_go_backwards_outputs_come_back_in_time_order(pool, impl_id):
    """reverse=True with keep_order=True: the output at time 0 is the final h (no flip needed)."""
    obs = observe(pool, impl_id, "go-backwards-lengths")
    np.testing.assert_array_equal(obs.output[:, 0], obs.states[0][0])
    assert any("reverse=True, keep_order=True" in n and "no flip" in n for n in obs.normalization)


@pytest.mark.parametrize("impl_id", IMPLS)
def test_carry_stops_at_each_sequences_last_valid_step(pool, impl_id):
    obs = observe(pool, impl_id, "bi-lengths")
    h_fwd = obs.states[0][0]
    np.testing.assert_array_equal(h_fwd, obs.output[np.arange(3), np.asarray(LENGTHS) - 1, :H])


@pytest.mark.parametrize("impl_id", IMPLS)
def test_forward_padded_outputs_are_computed_on_the_padding(pool, impl_id):
    """Like linen's nn.RNN, nnx.RNN scans over the padding: at padded steps the forward outputs are the
    reference run *without* lengths (reading the padding as input), not zeros."""
    cfg = CONFIGS["bi-lengths"]
    obs = observe(pool, impl_id, "bi-lengths")
    fwd = Config(**{**cfg.to_dict(), "lengths": None})
    no_lengths = reference.forward(fwd, reference.make_input(cfg), reference.canonical_weights(cfg)).output
    np.testing.assert_allclose(obs.output[..., :H], no_lengths[..., :H], atol=1e-5, rtol=1e-4)
    assert np.all(obs.output[~reference.valid_mask(cfg)] != 0)


# ---- parameters: names, count, what is not a parameter


@pytest.mark.parametrize("impl_id", IMPLS)
def test_param_count_matches_the_flax_formula_and_the_canonical_count(pool, impl_id):
    cfg = CONFIGS["bi-sum-2layer-final-output"]
    obs = observe(pool, impl_id, "bi-sum-2layer-final-output")
    assert obs.param_count == reference.PARAM_FORMULAS["flax"].count(cfg) == reference.param_count(cfg)
    assert obs.param_count == sum(int(np.prod(p["shape"])) for p in obs.params)


def test_linen_optimized_cell_keeps_linens_per_gate_parameter_tree(pool):
    names = params(observe(pool, "flax-linen-optimized", "plain"))
    cell = "params/layers_0/cell/"
    assert names == {**{f"{cell}i{g}/kernel": [3, H] for g in "ifgo"},
                     **{f"{cell}h{g}/kernel": [H, H] for g in "ifgo"}, **{f"{cell}h{g}/bias": [H] for g in "ifgo"}}


def test_nnx_lstmcell_names_the_forget_gates_input_layer_if_underscore(pool):
    names = params(observe(pool, "flax-nnx", "plain"))
    assert sorted({n.split("/")[3] for n in names}) == ["hf", "hg", "hi", "ho", "if_", "ig", "ii", "io"]
    assert names["layers/0/cell/if_/kernel"] == [3, H] and names["layers/0/cell/hf/bias"] == [H]


def test_nnx_optimized_cell_holds_two_fused_linear_layers(pool):
    names = params(observe(pool, "flax-nnx-optimized", "bi-lengths"))
    assert names == {f"layers/0/{rnn}/cell/{p}": s for rnn in ("forward_rnn", "backward_rnn") for p, s in [
        ("dense_i/kernel", [3, 4 * H]), ("dense_h/kernel", [H, 4 * H]), ("dense_h/bias", [4 * H])]}


@pytest.mark.parametrize("impl_id", NNX)
def test_nnx_carry_rng_state_is_not_counted_as_parameters(pool, impl_id):
    obs = observe(pool, impl_id, "bi-lengths")
    assert not any("rngs" in p["name"] for p in obs.params)
    assert any("RngStream" in n and "not counted" in n for n in obs.normalization)


# ---- dtypes, compilation reuse


@pytest.mark.parametrize("impl_id", IMPLS)
@pytest.mark.parametrize("name", ["float64-bi-2layer-lengths-init", "bfloat16-bi", "float16"])
def test_runs_in_the_native_dtype(pool, impl_id, name):
    obs = observe(pool, impl_id, name)
    assert {r["dtype"] for r in obs.returns} == {CONFIGS[name].dtype}


@pytest.mark.parametrize("impl_id", NNX)
def test_repeated_config_with_another_seed_reuses_the_compiled_function(pool, impl_id):
    first = observe(pool, impl_id, "sequences-state")
    again = pool.run(impl_id, "variants-seed-7", Config(**{**CONFIGS["sequences-state"].to_dict(), "seed": 7}), "cpu")
    assert again.status == "ok" and again.returns[0]["shape"] == first.returns[0]["shape"]
    assert not np.allclose(again.output, first.output)
    assert again.timings["run_s"] < 0.5   # the jitted nnx.merge + call is cached: no recompilation


# ---- repro snippets and 16-bit init, run in one subprocess meanwhile the workers run


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """Starts the driver on every snippet and the init probe; returns what each printed, on demand."""
    tmp = tmp_path_factory.mktemp("variants-repro")
    (tmp / "driver.py").write_text(DRIVER)
    paths = {}
    for impl_id, name in SNIPPETS:
        path = paths[impl_id, name] = tmp / f"{impl_id}-{name}.py"
        path.write_text(impls.get(impl_id).repro(CONFIGS[name]))
    paths["init-probe"] = tmp / "init_probe.py"
    paths["init-probe"].write_text(INIT_PROBE)
    proc = subprocess.Popen([sys.executable, str(tmp / "driver.py"), *map(str, paths.values())], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed: dict = {}

    def output(key) -> str:
        if not printed:
            try:
                out, err = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            chunks, current = {}, None
            for line in out.splitlines():
                if line.startswith(MARKER):
                    current = line[len(MARKER):].strip()
                    chunks[current] = []
                elif current is not None:
                    chunks[current].append(line)
            printed.update({k: "\n".join(chunks.get(str(p), [f"not reached; stderr: {err[-2000:]}"]))
                            for k, p in paths.items()})
        return printed[key]

    yield output
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("impl_id, name", SNIPPETS, ids=[f"{i}-{n}" for i, n in SNIPPETS])
def test_snippet_prints_the_native_return_shapes_and_param_count(pool, scripts, impl_id, name):
    obs = observe(pool, impl_id, name)
    printed = scripts((impl_id, name))
    lines = printed.strip().splitlines()
    shapes = [(label, ast.literal_eval(rest)) for label, _, rest in (ln.partition(" ") for ln in lines[:-1])]
    assert shapes == [("out" + r["path"], tuple(r["shape"])) for r in top_returns(obs)], printed
    assert lines[-1] == f"params {obs.param_count}", printed


def test_16_bit_random_init_fails_for_orthogonal_recurrent_kernels_except_nnx_lstmcell(scripts):
    """Eager random init in bfloat16 (the frameworks' defaults): nnx.LSTMCell builds (its default
    recurrent_kernel_init, modified_orthogonal, runs the QR in float32 and casts); nnx.OptimizedLSTMCell and
    both linen cells run orthogonal() in bfloat16, and JAX's QR has no 16-bit kernel (jax-ml/jax#30176)."""
    result = dict(line.split(" ", 1) for line in scripts("init-probe").splitlines())
    assert result["nnx.LSTMCell"] == "ok"
    for name in ("nnx.OptimizedLSTMCell", "nn.LSTMCell", "nn.OptimizedLSTMCell"):
        assert result[name].startswith("NotImplementedError") and "Unsupported dtype bfloat16" in result[name], result
