"""Dropout and training mode: every dropout is a no-op in inference (values compared as usual); in
training the frameworks really drop (their values leave the reference), so values are skipped with
the reason while shapes, dtypes and states are still compared. Real torch and tf-keras runs."""

import numpy as np
import pytest

from conformance import checks, reference
from conformance.spec import Case, Claim, Config


def run(pool, impl, **kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 4, "timesteps": 5, "return_sequences": True, **kw})
    case = Case(id="c", config=cfg, file="cases/x.yaml", line=1)
    obs = pool.run(impl, "c", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg))
    return case, obs, ref


@pytest.mark.parametrize("impl, dropout", [("torch", {"layer_dropout": 0.5, "num_layers": 2}),
                                           ("tf-keras", {"dropout": 0.5, "recurrent_dropout": 0.5})])
def test_a_dropout_is_a_no_op_in_inference(pool, impl, dropout):
    case, obs, ref = run(pool, impl, **dropout)
    assert checks.check_values(case, obs, "cpu", ref).ok


@pytest.mark.parametrize("impl, dropout", [("torch", {"layer_dropout": 0.5, "num_layers": 2}),
                                           ("tf-keras", {"dropout": 0.5, "recurrent_dropout": 0.5})])
def test_in_training_the_framework_really_drops_and_values_are_skipped_with_the_reason(pool, impl, dropout):
    case, obs, ref = run(pool, impl, training=True, return_state=True, **dropout)
    assert np.abs(np.asarray(obs.output, np.float64) - ref.output).max() > 1e-3      # the masks were applied
    result = checks.evaluate(case, impl, "cpu", obs, "keras" if impl != "torch" else "torch", [])
    assert result["values"]["verdict"] == "skipped"
    assert "draws its own random dropout masks" in result["values"]["details"]["reason"]
    assert result["output_shape"]["verdict"] == "agree" and result["state_order"]["verdict"] == "agree"


def test_training_without_a_dropout_changes_nothing(pool):
    case, obs, ref = run(pool, "torch", training=True, num_layers=2)
    assert checks.check_values(case, obs, "cpu", ref).ok
    assert reference.drawn_at_random(case.config) is None


@pytest.mark.parametrize("field, impl, words", [
    ("dropout", "torch", "its only dropout is between stacked layers"),
    ("layer_dropout", "keras-jax", "no dropout between stacked layers"),
    ("dropout", "flax-linen", "have no dropout and no training mode")])
def test_a_dropout_a_framework_does_not_have_is_unsupported_and_says_so(field, impl, words):
    from conformance import impls
    assert words in impls.get(impl).unsupported(Config(3, 4, **{field: 0.5}))


def test_a_run_whose_values_were_skipped_is_valid_results_and_reads_back(pool, tmp_path):
    import json

    from conformance.results import document, dumps, execute, validate
    cfg = Config(input_size=3, hidden_size=4, num_layers=2, layer_dropout=0.5, training=True)
    record = execute(Case(id="c", config=cfg, file="cases/x.yaml", line=1), "torch", "cpu", pool, [], root=tmp_path)
    doc = json.loads(dumps(document([record], argv=["pytest"])))
    assert validate(doc)["runs"][0]["checks"]["values"]["verdict"] == "skipped"
    doc["runs"][0]["checks"]["values"]["details"] = {}           # neither a reason nor the comparison
    with pytest.raises(Exception, match="must contain"):
        validate(doc)


def test_a_warning_the_framework_raises_during_the_run_is_recorded_and_claims_read_it(pool):
    cfg = Config(3, 4, layer_dropout=0.5)
    obs = pool.run("torch", "c", cfg, "cpu")
    (warning,) = [w for w in obs.warnings if "dropout" in w["message"]]
    assert warning["type"] == "UserWarning" and "Warning" in warning["types"]
    claim = Claim(source="doc", impl=("torch",), warns=(("type", "UserWarning"), ("match", "expects num_layers")))
    (detail,) = checks.check_claims(Case(id="c", config=cfg, file="cases/x.yaml", line=1, claims=(claim,)), obs,
                                    "torch").details["claims"]
    assert detail["true"] is True
    two = pool.run("torch", "c", Config(3, 4, layer_dropout=0.5, num_layers=2), "cpu")
    assert not [w for w in two.warnings if "dropout" in w["message"]]
