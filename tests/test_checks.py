"""Checks and verdicts, on real torch observations (the checker itself is what is under test)."""

import copy

import pytest

from conformance import checks
from conformance.impls import get as get_impl
from conformance.spec import Case, Claim, Config, Divergence


def case_of(cfg: Config, claims=()) -> Case:
    return Case(id="c", config=cfg, file="cases/x.yaml", line=1, claims=tuple(claims))


def torch_run(pool, **kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 5, **kw})
    obs = pool.run("torch", "c", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    return case_of(cfg), obs


DOUBLE_BIAS = Divergence(id="torch-double-bias", impl=("torch",), check="param_count", reason="two biases",
                         when=(("bias", (True,)),))


def evaluate(case, obs, divergences=(), impl="torch"):
    return checks.evaluate(case, impl, "cpu", obs, "torch", list(divergences))


def test_torch_shapes_state_order_and_values_agree_with_the_reference(pool):
    case, obs = torch_run(pool, num_layers=2, bidirectional=True, return_state=True)
    result = evaluate(case, obs, [DOUBLE_BIAS])
    assert {k: v["verdict"] for k, v in result.items()} == {
        "output_shape": "agree", "state_shapes": "agree", "state_order": "agree", "dtype": "agree",
        "param_count": "known-divergence", "values": "agree"}


def test_a_returned_tensor_in_another_dtype_than_the_case_s_diverges(pool):
    case, obs = torch_run(pool, return_state=True)
    other = copy.deepcopy(obs)
    other.returns[2]["dtype"] = "float64"                       # c_n, as if computed in float64
    result = evaluate(case, other, [DOUBLE_BIAS])
    assert evaluate(case, obs, [DOUBLE_BIAS])["dtype"]["verdict"] == "agree"
    assert result["dtype"]["verdict"] == "diverge"
    assert result["dtype"]["details"]["wrong"] == ["[1][1] (c): float64"]


def test_the_dtype_check_reads_every_output_and_state_torch_returns_and_nothing_else(pool):
    case, obs = torch_run(pool, lengths=[5, 2], return_sequences=True)
    details = evaluate(case, obs, [DOUBLE_BIAS])["dtype"]["details"]
    assert [t["role"] for t in details["tensors"]] == ["output", "output", "h", "c"]   # packed data, padded, h_n, c_n
    assert details["observed"] == ["float32"]                   # batch_sizes (int64) is not an output


def test_states_torch_returns_unasked_are_compared_with_the_reference(pool):
    case, obs = torch_run(pool, num_layers=2)                    # return_state false: torch returns (h_n, c_n) anyway
    result = evaluate(case, obs, [DOUBLE_BIAS])
    assert result["state_shapes"]["verdict"] == "agree" and result["state_shapes"]["details"]["unrequested"]
    assert [t["tensor"] for t in result["values"]["details"]["tensors"]] == [
        "output", "layer0/forward/h", "layer0/forward/c", "layer1/forward/h", "layer1/forward/c"]
    wrong = copy.copy(obs)
    wrong.states = [(h, c + 0.5) for h, c in obs.states]
    assert evaluate(case, wrong, [DOUBLE_BIAS])["values"]["verdict"] == "diverge"


def test_an_undeclared_parameter_count_difference_diverges(pool):
    case, obs = torch_run(pool)
    result = evaluate(case, obs)
    assert result["param_count"]["verdict"] == "diverge"
    assert result["param_count"]["details"]["observed"] == result["param_count"]["details"]["documented"]


def test_a_declaration_that_no_longer_happens_is_stale(pool):
    case, obs = torch_run(pool, bias=False)
    always = Divergence(id="too-broad", impl=("torch",), check="param_count", reason="two biases")
    result = evaluate(case, obs, [always])
    assert result["param_count"]["verdict"] == "stale"
    assert result["param_count"]["divergence"]["id"] == "too-broad"


def test_the_padding_of_outputs_of_no_units_is_nothing_to_compare(pool):
    cfg = Config(1, 0, return_sequences=True, lengths=(1, 1))       # found by explore on onnx-reference
    if get_impl("onnx-reference").missing():
        pytest.skip(get_impl("onnx-reference").missing())
    obs = pool.run("onnx-reference", "c", cfg, "cpu")
    assert obs.status == "ok" and obs.output.shape == (2, 3, 0)
    result = evaluate(case_of(cfg), obs, impl="onnx-reference")
    assert result["padding"]["details"]["max_abs_at_padding"] == 0.0


def test_an_intermittent_declaration_that_does_not_show_in_a_run_is_not_stale(pool):
    case, obs = torch_run(pool, bias=False)
    sometimes = Divergence(id="sometimes", impl=("torch",), check="param_count", reason="uninitialized memory",
                           intermittent=True)
    result = evaluate(case, obs, [sometimes])
    assert result["param_count"]["verdict"] == "agree" and result["param_count"]["divergence"] is None


def test_an_intermittent_declaration_explains_the_runs_where_it_shows(pool):
    case, obs = torch_run(pool)
    sometimes = Divergence(id="sometimes", impl=("torch",), check="param_count", reason="two biases",
                           intermittent=True)
    assert evaluate(case, obs, [sometimes])["param_count"]["verdict"] == "known-divergence"


def test_a_crash_declaration_does_not_explain_a_run_that_differs_without_crashing(pool):
    case, obs = torch_run(pool)
    crash = Divergence(id="crashes", impl=("torch",), check="param_count", reason="aborts", crash=True)
    assert evaluate(case, obs, [crash])["param_count"]["verdict"] == "diverge"


def test_a_count_that_contradicts_the_documented_formula_cannot_be_declared_away(pool):
    case, obs = torch_run(pool)
    obs.param_count += 1
    result = evaluate(case, obs, [DOUBLE_BIAS])
    assert result["param_count"]["verdict"] == "diverge"
    assert "documented formula" in result["param_count"]["details"]["problem"]


def test_swapped_states_are_caught_by_state_order(pool):
    case, obs = torch_run(pool, return_state=True, num_layers=2)
    swapped = copy.copy(obs)
    swapped.states = [(c, h) for h, c in obs.states]
    result = evaluate(case, swapped, [DOUBLE_BIAS])
    assert result["state_order"]["verdict"] == "diverge"
    assert any("swapped" in p for p in result["state_order"]["details"]["problems"])


def test_top_layer_state_that_is_not_the_outputs_final_step_diverges(pool):
    case, obs = torch_run(pool, return_state=True, num_layers=2, return_sequences=True)
    wrong = copy.copy(obs)
    wrong.states = [obs.states[1], obs.states[0]]   # layers in the wrong order
    result = evaluate(case, wrong, [DOUBLE_BIAS])
    assert result["state_order"]["verdict"] == "diverge"


def test_wrong_canonical_output_shape_diverges(pool):
    case, obs = torch_run(pool, return_sequences=True)
    wrong = copy.copy(obs)
    wrong.output = obs.output.transpose(1, 0, 2)
    assert evaluate(case, wrong)["output_shape"]["verdict"] == "diverge"


@pytest.mark.parametrize("claimed_roles,holds,verdict", [
    (("output", "h", "c"), True, "agree"),            # true, recorded true
    (("output", "c", "h"), True, "diverge"),          # false, recorded true: undeclared
    (("output", "c", "h"), False, "known-divergence"),  # false, recorded false
    (("output", "h", "c"), False, "stale"),           # recorded false but true when run
    (("output", "?", "c"), True, "agree"),            # ? leaves a role unsaid
])
def test_claim_verdicts_follow_truth_and_what_the_case_recorded(pool, claimed_roles, holds, verdict):
    case, obs = torch_run(pool)
    claim = Claim(source="doc", impl=("torch",), roles=claimed_roles, holds=holds)
    result = evaluate(case_of(case.config, [claim]), obs, [DOUBLE_BIAS])
    assert result["claims"]["verdict"] == verdict
    (detail,) = result["claims"]["details"]["claims"]
    assert detail["real"] == {"roles": ["output", "h", "c"]}


def test_claims_for_other_impls_are_not_checked(pool):
    case, obs = torch_run(pool)
    claim = Claim(source="doc", impl=("keras-*",), param_count=1)
    assert "claims" not in evaluate(case_of(case.config, [claim]), obs, [DOUBLE_BIAS])


def test_overall_verdict_is_the_worst_check():
    assert checks.worst(["agree", "known-divergence"]) == "known-divergence"
    assert checks.worst(["agree", "stale", "known-divergence"]) == "stale"
    assert checks.worst(["stale", "diverge"]) == "diverge"
    assert checks.worst(["diverge", "error"]) == "error"


# ---- values and padding: the check logic, on observations made from the reference itself ----

import numpy as np  # noqa: E402

from conformance import reference  # noqa: E402
from conformance.impls.base import Observation  # noqa: E402


def reference_run(tolerance=None, **kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 5, **kw})
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                            reference.initial_states(cfg))
    obs = Observation(output=ref.output.astype(np.float32),
                      states=[(h.astype(np.float32), c.astype(np.float32)) for h, c in ref.states]
                      if cfg.return_state else None)
    case = Case(id="c", config=cfg, file="cases/x.yaml", line=1, tolerance=tolerance or {})
    return case, obs, ref


def test_values_agree_when_an_implementation_returns_the_reference_in_float32():
    case, obs, ref = reference_run(num_layers=2, bidirectional=True, return_sequences=True, return_state=True)
    out = checks.check_values(case, obs, "cpu", ref)
    assert out.ok and out.details["first"] is None
    assert [t["tensor"] for t in out.details["tensors"]][:3] == ["output", "layer0/forward/h", "layer0/forward/c"]
    assert max(t["max_abs"] for t in out.details["tensors"]) < 1e-6


def test_values_name_the_first_step_where_the_forward_output_leaves_the_reference():
    case, obs, ref = reference_run(return_sequences=True)
    obs.output[:, 2:] += 0.01
    out = checks.check_values(case, obs, "cpu", ref)
    assert not out.ok
    assert out.details["first"] == "layer 0, forward direction, time step 2 (reading forwards): h (the output sequence)"


def test_values_read_the_backward_direction_from_its_last_time_step():
    case, obs, ref = reference_run(bidirectional=True, return_sequences=True)
    obs.output[:, 1:4, 4:] += 0.01                       # backward half: it reads t = 4, 3, 2, ...
    out = checks.check_values(case, obs, "cpu", ref)
    assert out.details["first"].startswith("layer 0, backward direction, time step 3")


def test_values_report_a_lower_layer_s_state_before_the_top_layer():
    case, obs, ref = reference_run(num_layers=2, return_sequences=True, return_state=True)
    obs.states[0] = (obs.states[0][0], obs.states[0][1] + 0.01)
    obs.output += 0.01
    assert checks.check_values(case, obs, "cpu", ref).details["first"] == "layer 0, forward direction, final state: c"


def test_values_ignore_padded_steps_and_a_case_may_loosen_the_tolerance():
    case, obs, ref = reference_run(lengths=(5, 2), return_sequences=True)
    obs.output[1, 2:] = 7.0                              # padding: the padding check's business
    assert checks.check_values(case, obs, "cpu", ref).ok
    obs.output[0, 0] += 1e-3
    assert not checks.check_values(case, obs, "cpu", ref).ok
    loose, _, _ = reference_run(lengths=(5, 2), return_sequences=True, tolerance={"atol": 1e-2})
    assert checks.check_values(loose, obs, "cpu", ref).ok


@pytest.mark.parametrize("fill, behaviour", [
    ("zeros", "zeros"), ("repeat", "the last valid output, repeated"),
    ("compute", "computed values (the padding is read as input)")])
def test_padding_says_what_an_implementation_puts_at_padded_steps(fill, behaviour):
    case, obs, ref = reference_run(lengths=(5, 2), return_sequences=True)
    if fill == "repeat":
        obs.output[1, 2:] = obs.output[1, 1]
    elif fill == "compute":
        obs.output[1, 2:] = 0.5
    out = checks.check_padding(case, obs)
    assert out.details["behaviour"] == behaviour and out.ok == (fill == "zeros")
    assert out.details["padded_steps"] == 3


GAPS = ((True, False, True, False, True), (False, True, True, False, False))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_padding_with_a_mask_repeats_the_latest_real_output_in_reading_order(go_backwards):
    case, obs, ref = reference_run(mask=GAPS, return_sequences=True, go_backwards=go_backwards)
    out = obs.output
    if go_backwards:     # read from the end: a masked step repeats the next real step's output (the initial zeros after the last)
        out[0, 1], out[0, 3], out[1, 0], out[1, 3], out[1, 4] = out[0, 2], out[0, 4], out[1, 1], 0.0, 0.0
    else:
        out[0, 1], out[0, 3], out[1, 0], out[1, 3], out[1, 4] = out[0, 0], out[0, 2], 0.0, out[1, 2], out[1, 2]
    padding = checks.check_padding(case, obs)
    assert padding.details == {**padding.details, "behaviour": "the last valid output, repeated", "padded_steps": 5}
    assert not padding.ok and padding.conclusive


def test_a_sequence_with_no_real_step_keeps_its_random_initial_state_without_looking_swapped():
    case, obs, ref = reference_run(mask=(GAPS[0], (False,) * 5), return_sequences=True, return_state=True,
                                   initial_state="random")
    assert checks.check_state_order(case, obs).ok


def test_padding_is_not_checked_without_lengths_or_without_sequences():
    assert checks.check_padding(*reference_run(return_sequences=True)[:2]) is None
    assert checks.check_padding(*reference_run(lengths=(5, 2))[:2]) is None


@pytest.fixture(scope="module")
def wrong_mapping_pool():
    """A torch worker handed weights with the i and f gates swapped (worker fault swap-gates): a wrong
    mapping, while the reference keeps the true weights."""
    import os

    from conformance.runner import WorkerPool
    os.environ["CONFORMANCE_FAULT"] = "swap-gates:*"
    try:
        p = WorkerPool(run_timeout=120)
        p.info("torch")                      # the worker starts with the fault in its environment
    finally:
        del os.environ["CONFORMANCE_FAULT"]
    yield p
    p.close()


def test_a_wrong_gate_order_fails_the_values_check_and_says_where(wrong_mapping_pool):
    cfg = Config(3, 4, batch=2, timesteps=5, num_layers=2, return_sequences=True, return_state=True)
    obs = wrong_mapping_pool.run("torch", "c", cfg, "cpu")
    result = evaluate(case_of(cfg), obs, [DOUBLE_BIAS])
    assert result["values"]["verdict"] == "diverge"
    assert result["values"]["details"]["first"] == "layer 0, forward direction, final state: h"
    assert result["output_shape"]["verdict"] == "agree" and result["state_order"]["verdict"] == "agree"


def test_the_right_mapping_agrees_on_values(pool):
    case, obs = torch_run(pool, num_layers=2, bidirectional=True, return_sequences=True, return_state=True)
    result = evaluate(case, obs, [DOUBLE_BIAS])
    assert result["values"]["verdict"] == "agree"
    assert max(t["max_abs"] for t in result["values"]["details"]["tensors"]) < 1e-5


def claim_result(pool, claim_kw, **cfg_kw):
    case, obs = torch_run(pool, **cfg_kw)
    claim = Claim(source="doc", impl=("torch",), **claim_kw)
    (detail,) = evaluate(case_of(case.config, [claim]), obs, [DOUBLE_BIAS])["claims"]["details"]["claims"]
    return detail, obs


def test_a_values_claim_is_true_within_its_tolerance_of_the_canonical_tensor(pool):
    _, obs = claim_result(pool, {"values": (("output", [[0.0]]),)})
    right, _ = claim_result(pool, {"values": (("output", (obs.output + 5e-7).tolist()),)})
    wrong, _ = claim_result(pool, {"values": (("output", (obs.output + 1e-3).tolist()),)})
    assert right["true"] and not wrong["true"]
    assert wrong["real"]["values"]["output"] == np.asarray(obs.output, np.float64).tolist()


def test_a_values_claim_of_a_state_reads_that_layer_and_direction(pool):
    _, obs = claim_result(pool, {"values": (("output", [[0.0]]),)}, bidirectional=True, return_state=True)
    backward_c = obs.states[1][1].tolist()
    right, _ = claim_result(pool, {"values": (("layer0/backward/c", backward_c),)}, bidirectional=True,
                            return_state=True)
    swapped, _ = claim_result(pool, {"values": (("layer0/forward/c", backward_c),)}, bidirectional=True,
                              return_state=True)
    assert right["true"] and not swapped["true"]


def test_dtype_path_and_parameter_claims_compare_with_the_native_returns_and_parameters(pool):
    detail, _ = claim_result(pool, {"dtypes": ("float32",) * 3, "paths": ("[0]", "[1][0]", "[1][1]"),
                                    "params": (("weight_ih_l0", (16, 3)), ("weight_hh_l0", (16, 4)),
                                               ("bias_ih_l0", (16,)), ("bias_hh_l0", (16,)))})
    assert detail["true"], detail
    wrong, _ = claim_result(pool, {"params": (("weight_ih_l0", (16, 3)), ("weight_hh_l0", (16, 4)),
                                              ("bias_l0", (16,)))})
    assert not wrong["true"] and "bias_hh_l0" in wrong["real"]["params"]
