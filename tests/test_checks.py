"""Checks and verdicts, on real torch observations (the checker itself is what is under test)."""

import copy

import pytest

from conformance import checks
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


def test_torch_shapes_and_state_order_agree_with_the_reference(pool):
    case, obs = torch_run(pool, num_layers=2, bidirectional=True, return_state=True)
    result = evaluate(case, obs, [DOUBLE_BIAS])
    assert {k: v["verdict"] for k, v in result.items()} == {
        "output_shape": "agree", "state_shapes": "agree", "state_order": "agree", "param_count": "known-divergence"}


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
