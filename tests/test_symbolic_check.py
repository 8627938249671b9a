"""The symbolic check and shape-only evaluation, on real torch observations (the checker is what is under test:
an inference is altered where a test needs it to disagree)."""

import copy

import pytest

from conformance import checks
from conformance.fields import SHAPE_CHECKS
from conformance.spec import Case, Claim, Config


@pytest.fixture(scope="module")
def pool():
    """torch's worker asked for its shape inference (CONFORMANCE_TORCH_EXPORT=1; off by default: see
    test_torch_is_not_asked_for_its_shape_inference_unless_the_setting_says_so)."""
    from conformance.runner import WorkerPool

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONFORMANCE_TORCH_EXPORT", "1")
        p = WorkerPool(run_timeout=300)
        p.info("torch")
    yield p
    p.close()


def case_of(cfg: Config, claims=()) -> Case:
    return Case(id="c", config=cfg, file="cases/x.yaml", line=1, claims=tuple(claims))


def torch_run(pool, mode="eager", **kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 5, **kw})
    obs = pool.run("torch", "c", cfg, "cpu", mode=mode, symbolic=mode == "eager")
    return case_of(cfg), obs


def symbolic(case, obs) -> dict:
    return checks.evaluate(case, "torch", "cpu", obs, "torch", [])["symbolic"]


def test_torch_s_inferred_shapes_agree_with_what_the_call_returns(pool):
    case, obs = torch_run(pool, return_state=True, num_layers=2)
    chk = symbolic(case, obs)
    assert chk["verdict"] == "agree", chk
    assert [r["path"] for r in chk["details"]["symbolic"]] == [r["path"] for r in obs.returns]


def test_an_unknown_dimension_matches_any_size(pool):
    case, obs = torch_run(pool, return_state=True)
    obs.symbolic = copy.deepcopy(obs.symbolic)
    for r in obs.symbolic["returns"]:
        r["shape"] = [None] * len(r["shape"])
    chk = symbolic(case, obs)
    assert chk["verdict"] == "agree"
    assert chk["details"]["left_unknown"] == sorted(r["path"] or "(the return)" for r in obs.returns)


def test_an_inferred_size_other_than_the_returned_one_diverges(pool):
    case, obs = torch_run(pool)
    obs.symbolic = copy.deepcopy(obs.symbolic)
    obs.symbolic["returns"][0]["shape"][-1] = 5
    chk = symbolic(case, obs)
    assert chk["verdict"] == "diverge"
    assert "inferred" in chk["details"]["problems"][0] and "returned" in chk["details"]["problems"][0]


def test_an_inferred_rank_other_than_the_returned_one_diverges(pool):
    case, obs = torch_run(pool)
    obs.symbolic = copy.deepcopy(obs.symbolic)
    obs.symbolic["returns"][0]["shape"] = obs.symbolic["returns"][0]["shape"][:-1]
    assert symbolic(case, obs)["verdict"] == "diverge"


def test_an_inferred_dtype_other_than_the_returned_one_diverges(pool):
    case, obs = torch_run(pool)
    obs.symbolic = copy.deepcopy(obs.symbolic)
    obs.symbolic["returns"][0]["dtype"] = "float64"
    chk = symbolic(case, obs)
    assert chk["verdict"] == "diverge" and "dtype" in chk["details"]["problems"][0]


def test_an_inferred_parameter_count_other_than_the_built_one_diverges(pool):
    case, obs = torch_run(pool)
    obs.symbolic = {**obs.symbolic, "param_count": obs.param_count + 1}
    assert symbolic(case, obs)["verdict"] == "diverge"


def test_inferred_returns_at_other_places_diverge(pool):
    case, obs = torch_run(pool)
    obs.symbolic = copy.deepcopy(obs.symbolic)
    obs.symbolic["returns"] = obs.symbolic["returns"][:1]
    assert symbolic(case, obs)["verdict"] == "diverge"


def test_an_inference_that_refuses_what_the_call_accepts_diverges(pool):
    case, obs = torch_run(pool)
    obs.symbolic = {"refused": {"type": "RuntimeError", "message": "no"}, "attempts": []}
    chk = symbolic(case, obs)
    assert chk["verdict"] == "diverge"
    assert chk["details"]["symbolic"] == "refused: RuntimeError: no" and chk["details"]["eager"] == "accepted"


def test_an_inference_and_a_call_that_both_refuse_a_wrong_input_agree(pool):
    case, obs = torch_run(pool, feed_input_size=5)
    assert obs.status == "rejected"
    chk = symbolic(case, obs)
    assert chk["verdict"] == "agree", chk
    assert chk["details"]["symbolic"].startswith("refused: ")


def test_a_framework_with_no_way_to_infer_is_skipped_with_its_reason(pool):
    case, obs = torch_run(pool)
    obs.symbolic = {"cannot": "no symbolic tracing of this construct"}
    chk = symbolic(case, obs)
    assert chk["verdict"] == "skipped" and chk["details"]["reason"] == "no symbolic tracing of this construct"


def test_the_suite_s_own_failure_to_infer_is_an_error(pool):
    case, obs = torch_run(pool)
    obs.symbolic = {"error": {"type": "KeyError", "message": "'x'", "traceback": ""}, "attempts": []}
    assert symbolic(case, obs)["verdict"] == "error"


def test_a_run_not_asked_to_infer_has_no_symbolic_check(pool):
    cfg = Config(input_size=3, hidden_size=4)
    obs = pool.run("torch", "c", cfg, "cpu")
    assert obs.symbolic is None
    assert "symbolic" not in checks.evaluate(case_of(cfg), "torch", "cpu", obs, "torch", [])


def test_a_shape_only_run_is_asked_only_the_shape_checks(pool):
    case, obs = torch_run(pool, mode="shapes", return_state=True, return_sequences=True)
    assert obs.status == "ok", obs.reason
    result = checks.evaluate(case, "torch", "cpu", obs, "torch", [], shape_only=True)
    assert set(result) <= set(SHAPE_CHECKS)
    assert {"output_shape", "state_shapes", "dtype", "param_count"} <= set(result)
    assert result["output_shape"]["verdict"] == "agree" and result["state_shapes"]["verdict"] == "agree"


def test_a_shape_only_run_asks_claims_about_shapes_and_leaves_claims_about_values(pool):
    shapes = Claim(source="doc", impl=("torch",), outputs=((2, 5, 4), (1, 2, 4), (1, 2, 4)))
    values = Claim(source="doc", impl=("torch",), values=(("output", [[0.0]]),))
    cfg = Config(input_size=3, hidden_size=4, batch=2, timesteps=5, return_sequences=True)
    obs = pool.run("torch", "c", cfg, "cpu", mode="shapes")
    result = checks.evaluate(case_of(cfg, [shapes, values]), "torch", "cpu", obs, "torch", [], shape_only=True)
    claims = result["claims"]["details"]
    assert [c["claimed"].keys() for c in claims["claims"]] == [{"outputs"}]
    assert claims["claims"][0]["true"] and "not asked in shape-only mode" in claims["not_asked"]


def test_a_shape_only_run_computes_no_reference(pool, monkeypatch):
    from conformance import reference

    def refuse(*a, **k):
        raise AssertionError("the reference was computed")

    monkeypatch.setattr(reference, "forward", refuse)
    case, obs = torch_run(pool, mode="shapes")
    checks.evaluate(case, "torch", "cpu", obs, "torch", [], shape_only=True)


def test_an_inference_with_the_time_unknown_says_nothing_of_no_time_steps_the_call_refuses(pool):
    case, obs = torch_run(pool, timesteps=0)
    assert obs.status == "rejected"
    obs.symbolic = {"api": "x", "returns": [], "param_count": None, "unknown": ["batch", "time"], "attempts": []}
    chk = symbolic(case, obs)
    assert chk["verdict"] == "skipped" and "time 0" in chk["details"]["reason"]


def test_an_inference_with_every_size_known_that_accepts_no_time_steps_the_call_refuses_diverges(pool):
    case, obs = torch_run(pool, timesteps=0)
    obs.symbolic = {"api": "x", "returns": [], "param_count": None, "unknown": [], "attempts": []}
    assert symbolic(case, obs)["verdict"] == "diverge"


def test_torch_is_not_asked_for_its_shape_inference_unless_the_setting_says_so():
    from conformance.runner import WorkerPool

    p = WorkerPool(run_timeout=300)
    try:
        cfg = Config(input_size=3, hidden_size=4)
        obs = p.run("torch", "c", cfg, "cpu", symbolic=True)
    finally:
        p.close()
    assert "CONFORMANCE_TORCH_EXPORT=1" in obs.symbolic["cannot"]
    chk = checks.evaluate(case_of(cfg), "torch", "cpu", obs, "torch", [])["symbolic"]
    assert chk["verdict"] == "skipped" and "CONFORMANCE_TORCH_EXPORT=1" in chk["details"]["reason"]
