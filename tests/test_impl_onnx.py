"""The ONNX LSTM operator, built from the canonical weights and run by onnx.reference and by ONNX Runtime,
gives the reference's numbers; what each runtime refuses is its own (run on real onnx / onnxruntime).

The adapter maps the canonical weights to the operator's W, R, B (gates i, o, f, c; the bias as [Wb, Rb]),
feeds lengths as ``sequence_lens``, initial states as ``initial_h`` / ``initial_c`` and maps Y, Y_h, Y_c back.
"""

import numpy as np
import pytest

from conformance import reference
from conformance.impls import get
from conformance.spec import Config

RUNTIMES = ["onnx-reference", "onnxruntime"]
TOL = {"rtol": 1e-4, "atol": 1e-5}


def installed(impl_id):
    return pytest.param(impl_id, marks=pytest.mark.skipif(get(impl_id).missing() is not None,
                                                          reason=str(get(impl_id).missing())))


def cfg_of(**kw) -> Config:
    return Config(**{"input_size": 3, "hidden_size": 4, "batch": 3, "timesteps": 5, "return_sequences": True,
                     "return_state": True, **kw})


def ok(pool, impl_id, cfg):
    obs = pool.run(impl_id, "onnx", cfg, "cpu")
    assert obs.status == "ok", f"{obs.reason}\n{obs.traceback}"
    return obs


def assert_matches_reference(obs, cfg):
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                            reference.initial_states(cfg))
    np.testing.assert_allclose(obs.output, ref.output, **TOL)
    for (h, c), (rh, rc) in zip(obs.states, ref.states, strict=True):
        np.testing.assert_allclose(h, rh, **TOL)
        np.testing.assert_allclose(c, rc, **TOL)


VALUE_CASES = {
    "plain": cfg_of(),
    "stacked-bidirectional": cfg_of(num_layers=2, bidirectional=True),
    "time-major-bidirectional": cfg_of(layout="time_major", bidirectional=True),
    "no-bias-reverse": cfg_of(bias=False, go_backwards=True),
    "sizes-of-their-own": cfg_of(num_layers=2, hidden_size=(4, 2)),
    "initial-states-two-calls": cfg_of(initial_state="random", num_layers=2, calls=2),
    "last-step-only": cfg_of(return_sequences=False, bidirectional=True),
}


@pytest.mark.parametrize("impl_id", [installed(i) for i in RUNTIMES])
@pytest.mark.parametrize("name", list(VALUE_CASES))
def test_the_operator_gives_the_reference_numbers(pool, impl_id, name):
    cfg = VALUE_CASES[name]
    assert_matches_reference(ok(pool, impl_id, cfg), cfg)


@pytest.mark.parametrize("impl_id", [installed("onnxruntime")])
def test_onnxruntime_steps_lengths_with_sequence_lens_and_writes_zeros_past_them(pool, impl_id):
    cfg = cfg_of(lengths=(5, 2, 3), bidirectional=True)
    obs = ok(pool, impl_id, cfg)
    assert_matches_reference(obs, cfg)
    assert not obs.output[1, 2:].any() and not obs.output[2, 3:].any()


@pytest.mark.parametrize("impl_id", [installed(i) for i in RUNTIMES])
def test_load_then_read_weights_gives_the_canonical_weights_back(impl_id):
    impl = get(impl_id)
    cfg = cfg_of(num_layers=2, bidirectional=True, dtype="float64")
    weights = reference.canonical_weights(cfg)
    back = impl.read_weights(cfg, impl.load_weights(cfg, "cpu", weights))
    assert back.keys() == weights.keys()
    for name, value in weights.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)


@pytest.mark.parametrize("impl_id", [installed("onnxruntime")])
def test_onnxruntime_feeds_a_batch_major_case_to_layout_0_through_a_transpose(pool, impl_id):
    obs = ok(pool, impl_id, cfg_of())
    assert "layout=0" in obs.construct
    assert any("Transpose" in note for note in obs.normalization)


@pytest.mark.parametrize("impl_id", [installed("onnxruntime")])
def test_onnxruntime_refuses_layout_1_when_the_session_is_created(pool, impl_id):
    cfg = cfg_of(native={"onnxruntime": {"layout": 1}})
    obs = pool.run(impl_id, "onnx", cfg, "cpu")
    assert obs.status == "rejected", obs.reason
    assert obs.rejection["phase"] == "build" and "layout" in obs.rejection["message"]


@pytest.mark.parametrize("impl_id", [installed("onnx-reference")])
def test_onnx_reference_runs_a_batch_major_case_with_layout_1(pool, impl_id):
    cfg = cfg_of(bidirectional=True)
    obs = ok(pool, impl_id, cfg)
    assert "layout=1" in obs.construct
    assert_matches_reference(obs, cfg)


@pytest.mark.parametrize("impl_id", RUNTIMES)
@pytest.mark.parametrize("fields, words", [
    ({"proj_size": 2, "hidden_size": 4}, "projection"),
    ({"layout": "unbatched", "batch": 1}, "3-D"),
    ({"bidirectional": True, "merge_mode": "sum"}, "each direction's Y apart"),
    ({"cell_api": True}, "cell-level"),
    ({"training": True}, "inference graph"),
])
def test_what_the_operator_cannot_express_is_unsupported_with_the_reason(impl_id, fields, words):
    assert words in get(impl_id).unsupported(cfg_of(**fields))


@pytest.mark.parametrize("impl_id", [installed(i) for i in RUNTIMES])
def test_the_parameter_count_is_the_operator_s_two_bias_formula(pool, impl_id):
    cfg = cfg_of(num_layers=2, bidirectional=True)
    obs = ok(pool, impl_id, cfg)
    formula = reference.PARAM_FORMULAS["onnx"]
    assert obs.param_count == formula.count(cfg) == reference.param_count(cfg) + 2 * 2 * 4 * 4


@pytest.mark.parametrize("impl_id", [installed(i) for i in RUNTIMES])
def test_onnx_shape_inference_leaves_the_batch_and_time_unknown(pool, impl_id):
    obs = pool.run(impl_id, "onnx", cfg_of(bidirectional=True), "cpu", symbolic=True)
    assert obs.symbolic["unknown"] == ["batch", "time"]
    shapes = {r["path"]: r["shape"] for r in obs.symbolic["returns"]}
    y = shapes["[0]"]
    assert y.count(None) == 2 and y[-2:] == [2, 4] if impl_id == "onnx-reference" else y[1:] == [2, None, 4]


@pytest.mark.parametrize("impl_id", [installed("onnxruntime")])
def test_onnx_shape_inference_accepts_an_initial_state_the_run_refuses(pool, impl_id):
    cfg = cfg_of(initial_state="random", feed_state_hidden=7)
    obs = pool.run(impl_id, "onnx", cfg, "cpu", symbolic=True)
    assert obs.status == "rejected" and "initial_h must have shape" in obs.rejection["message"]
    assert obs.symbolic.get("returns") and not obs.symbolic.get("attempts")


@pytest.mark.parametrize("impl_id", [installed(i) for i in RUNTIMES])
def test_shape_only_gives_the_eager_shapes_and_dtypes(pool, impl_id):
    cfg = cfg_of(num_layers=2, bidirectional=True, dtype="float16")
    eager = ok(pool, impl_id, cfg)
    shapes = pool.run(impl_id, "onnx", cfg, "cpu", mode="shapes")
    assert shapes.status == "ok", shapes.reason
    assert [(r["shape"], r["dtype"]) for r in shapes.returns] == [(r["shape"], r["dtype"]) for r in eager.returns]
    assert shapes.output.shape == eager.output.shape and shapes.param_count == eager.param_count


# ---- torch.nn.LSTM exported by torch.onnx (the current exporter and the TorchScript one), run by ONNX Runtime ----
EXPORTERS = ["onnx-export-torch", "onnx-export-torchscript"]
EXPORT_CASES = {
    "plain": cfg_of(),
    "stacked-bidirectional": cfg_of(num_layers=2, bidirectional=True),
    "time-major-initial-states-two-calls": cfg_of(layout="time_major", initial_state="random", calls=2),
    "last-step-only-no-bias": cfg_of(return_sequences=False, bias=False, bidirectional=True),
}


@pytest.mark.parametrize("impl_id", [installed(i) for i in EXPORTERS])
@pytest.mark.parametrize("name", list(EXPORT_CASES))
def test_an_exported_lstm_gives_the_reference_numbers(pool, impl_id, name):
    cfg = EXPORT_CASES[name]
    obs = ok(pool, impl_id, cfg)
    assert_matches_reference(obs, cfg)
    assert "LSTM" in obs.construct and "run by onnxruntime" in obs.construct


@pytest.mark.parametrize("impl_id", [installed(i) for i in EXPORTERS])
def test_an_exported_lstm_holds_the_module_s_weights_in_its_lstm_nodes(pool, impl_id):
    # in the worker: exporting imports torch, which the test process never does
    res = pool.roundtrip(impl_id, cfg_of(num_layers=2, bidirectional=True, dtype="float64"))
    assert "error" not in res, res.get("traceback")
    assert res["missing"] == [] and res["extra"] == [] and res["max_abs"]
    assert max(res["max_abs"].values()) == 0.0


@pytest.mark.parametrize("impl_id", [installed(i) for i in EXPORTERS])
@pytest.mark.parametrize("sizes", [{}, {"input_size": 128, "hidden_size": 64}])   # the second: reordered in the graph
def test_the_exported_parameter_count_is_the_lstm_nodes_two_bias_weights(pool, impl_id, sizes):
    cfg = cfg_of(num_layers=2, bidirectional=True, **sizes)
    obs = ok(pool, impl_id, cfg)
    H = cfg.hidden_size
    assert obs.param_count == reference.PARAM_FORMULAS["onnx"].count(cfg) == reference.param_count(cfg) + 2 * 2 * 4 * H
    assert obs.param_count == sum(int(np.prod(p["shape"])) for p in obs.params)


@pytest.mark.parametrize("impl_id", [installed("onnx-export-torchscript")])
def test_the_torchscript_exporter_exports_packed_sequences_as_lengths(pool, impl_id):
    cfg = cfg_of(lengths=(5, 2, 3), bidirectional=True)
    obs = ok(pool, impl_id, cfg)
    assert_matches_reference(obs, cfg)
    assert not obs.output[1, 2:].any() and not obs.output[2, 3:].any()


@pytest.mark.parametrize("impl_id", [installed("onnx-export-torch")])
def test_the_current_exporter_refuses_packed_sequences_when_exporting(pool, impl_id):
    obs = pool.run(impl_id, "onnx", cfg_of(lengths=(5, 2, 3)), "cpu")
    assert obs.status == "rejected", obs.reason
    assert obs.rejection["phase"] == "build" and obs.rejection["type"] == "TorchExportError"


@pytest.mark.parametrize("impl_id", [installed("onnx-export-torchscript")])
def test_the_torchscript_exporter_refuses_a_projection(pool, impl_id):
    obs = pool.run(impl_id, "onnx", cfg_of(proj_size=2), "cpu")
    assert obs.status == "rejected", obs.reason
    assert "LSTMs with projections" in obs.rejection["message"]


@pytest.mark.parametrize("impl_id", [installed("onnx-export-torch")])
def test_the_current_exporter_exports_a_projection_onnx_runtime_then_refuses(pool, impl_id):
    obs = pool.run(impl_id, "onnx", cfg_of(proj_size=2), "cpu")
    assert obs.status == "rejected", obs.reason
    assert "ONNXRuntimeError" in obs.rejection["message"] and "initial_c" in obs.rejection["message"]


@pytest.mark.parametrize("impl_id", EXPORTERS)
@pytest.mark.parametrize("fields, words", [
    ({"cell_api": True}, "exports torch.nn.LSTM"),
    ({"training": True}, "inference graph"),
    ({"go_backwards": True}, "no go_backwards"),
])
def test_what_an_exporter_adapter_does_not_export_is_unsupported_with_the_reason(impl_id, fields, words):
    assert words in get(impl_id).unsupported(cfg_of(**fields))


@pytest.mark.parametrize("impl_id", EXPORTERS)
def test_an_exporter_has_no_shape_only_path_and_says_so(pool, impl_id):
    if get(impl_id).missing():
        pytest.skip(get(impl_id).missing())
    obs = pool.run(impl_id, "onnx", cfg_of(), "cpu", mode="shapes")
    assert obs.status == "unsupported" and "export" in obs.reason


# ---- Keras 3 models exported by model.export(format="onnx") (tf2onnx on TensorFlow, torch.onnx on torch) ----
KERAS_EXPORTS = ["onnx-export-keras-tensorflow", "onnx-export-keras-torch"]
KERAS_EXPORT_CASES = {
    "plain": cfg_of(),
    "stacked-bidirectional-states": cfg_of(num_layers=2, bidirectional=True),
    "backwards-initial-states": cfg_of(go_backwards=True, initial_state="random"),
    "merge-none": cfg_of(bidirectional=True, merge_mode="none"),
}


@pytest.mark.parametrize("impl_id", [installed(i) for i in KERAS_EXPORTS])
@pytest.mark.parametrize("name", list(KERAS_EXPORT_CASES))
def test_an_exported_keras_model_gives_the_reference_numbers(pool, impl_id, name):
    cfg = KERAS_EXPORT_CASES[name]
    obs = ok(pool, impl_id, cfg)
    assert_matches_reference(obs, cfg)
    assert "exported by model.export(format='onnx')" in obs.construct


@pytest.mark.parametrize("impl_id", [installed(i) for i in KERAS_EXPORTS])
def test_an_exported_masked_keras_model_gives_the_reference_numbers_at_the_real_steps(pool, impl_id):
    cfg = cfg_of(lengths=(5, 2, 3), return_state=False)
    obs = ok(pool, impl_id, cfg)
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg), None)
    real = np.arange(5)[None, :] < np.array(cfg.lengths)[:, None]
    np.testing.assert_allclose(obs.output[real], ref.output[real], **TOL)


@pytest.mark.parametrize("impl_id", [installed("onnx-export-keras-tensorflow")])
def test_tf2onnx_makes_keras_lstm_one_onnx_lstm_node_with_two_biases(pool, impl_id):
    cfg = cfg_of(bidirectional=True)
    obs = ok(pool, impl_id, cfg)
    assert "LSTM," in obs.construct or "LSTM)" in obs.construct
    held = sum(int(np.prod(p["shape"])) for p in obs.params)      # the constants the LSTM node reads
    assert held == reference.PARAM_FORMULAS["onnx"].count(cfg) == reference.param_count(cfg) + 2 * 4 * 4
    assert obs.param_count is None        # no count checked: it depends on how the layer was lowered


@pytest.mark.parametrize("impl_id", [installed("onnx-export-keras-torch")])
def test_keras_on_torch_exports_the_recurrence_unrolled(pool, impl_id):
    obs = ok(pool, impl_id, cfg_of())
    assert "LSTM" not in obs.construct.split("exported by", 1)[1] and "MatMul" in obs.construct
    assert any("unrolled" in note for note in obs.normalization) and obs.param_count is None


@pytest.mark.parametrize("impl_id", KERAS_EXPORTS)
@pytest.mark.parametrize("fields, words", [
    ({"calls": 2}, "keeps no state between runs"),
    ({"training": True}, "inference call"),
    ({"layout": "time_major"}, "time_major"),
])
def test_what_a_keras_export_adapter_does_not_export_is_unsupported_with_the_reason(impl_id, fields, words):
    assert words in get(impl_id).unsupported(cfg_of(**fields))
