"""Keras's model.summary() read back from its text, and summary claims checked against the real one."""

import re
import pytest

from conformance import checks, summary
from conformance.spec import Case, SpecError, config_of, load_file

# Seed article 001's three model.summary() tables as it prints them (Keras 2, shared/seeds/001_*.txt, In [5]-[7]).
ARTICLE_TABLES = [f"""-----
{header}
-----
{row}
-----
Total params: 168
Trainable params: 168
Non-trainable params: 0
-----
""" for header, row in (
    ("Layer (type)                 Output Shape          Param #", "lstm_3 (LSTM)                 (None, 3)             168"),
    ("Layer (type)                 Output Shape              Param #", "lstm_4 (LSTM)                (8, 3)                    168"),
    ("Layer (type)                 Output Shape              Param #", "lstm_5 (LSTM)                (8, 2, 3)                 168"))]


def test_the_article_s_keras_2_tables_parse_to_their_rows_and_totals():
    parsed = [summary.parse(t) for t in ARTICLE_TABLES]
    assert [p["rows"][0]["output_shape"] for p in parsed] == ["(None, 3)", "(8, 3)", "(8, 2, 3)"]
    assert {p["rows"][0]["params"] for p in parsed} == {168}
    assert {(p["total_params"], p["trainable_params"], p["non_trainable_params"]) for p in parsed} == {(168, 168, 0)}
    assert parsed[0]["rows"][0]["type"] == "LSTM"


def test_text_with_no_summary_table_is_refused():
    with pytest.raises(ValueError, match="no summary table"):
        summary.parse("Model: nothing here\n")


def test_an_output_shape_is_compared_without_its_spacing():
    assert summary.shape_text("(None,  3)") == summary.shape_text("(None,3)")


def claim_case(tmp_path, claim: str, **cfg) -> Case:
    f = tmp_path / "c.yaml"
    f.write_text("lstm-conformance: 1\ndefaults: {input_size: 10, hidden_size: 3, batch: 8, timesteps: 2}\n"
                 f"cases:\n  - id: c\n    claims:\n      - {{source: s, impl: [keras-*, tf-keras], {claim}}}\n")
    return load_file(f).cases[0]


@pytest.mark.parametrize("claim, message", [
    ("summary: []", "expected a mapping of rows"),
    ("summary: {rows: []}", "rows: expected a list"),
    ("summary: {rows: [{shape: '(None, 3)'}]}", "row 0: expected a mapping"),
    ("summary: {rows: [{params: -1}]}", "row 0: params: expected a non-negative integer"),
    ("summary: {total_params: x}", "total_params: expected a non-negative integer"),
])
def test_a_malformed_summary_claim_is_refused_naming_the_field(tmp_path, claim, message):
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        claim_case(tmp_path, claim)
    assert "claims.summary" in str(err.value)


SUMMARY_IMPLS = ["keras-tensorflow", "keras-jax", "keras-torch", "tf-keras"]


@pytest.mark.parametrize("impl", SUMMARY_IMPLS)
def test_a_summary_claim_is_checked_against_the_real_summary(pool, tmp_path, impl):
    case = claim_case(tmp_path, "summary: {rows: [{layer: lstm_3 (LSTM), output_shape: '(None, 3)', params: 168}], "
                                "total_params: 168}")
    obs = pool.run(impl, "c", case.config, "cpu", summary=True)
    assert obs.status == "ok", obs.reason
    assert "text" in obs.summary, obs.summary
    verdict = checks.evaluate(case, impl, "cpu", obs, "keras", [])["claims"]["details"]["claims"][0]
    assert verdict["true"], verdict["real"]
    assert verdict["real"]["summary"]["rows"][0]["params"] == 168


@pytest.mark.parametrize("impl", ["keras-tensorflow", "tf-keras"])
def test_a_false_summary_claim_is_false_with_the_real_row(pool, tmp_path, impl):
    case = claim_case(tmp_path, "summary: {rows: [{output_shape: '(None, 2, 3)'}]}")
    obs = pool.run(impl, "c", case.config, "cpu", summary=True)
    verdict = checks.evaluate(case, impl, "cpu", obs, "keras", [])["claims"]["details"]["claims"][0]
    assert not verdict["true"] and summary.shape_text(verdict["real"]["summary"]["rows"][0]["output_shape"]) == "(None,3)"


def test_a_summary_claim_on_a_construct_keras_refuses_is_false_saying_why(pool):
    cfg = config_of({"input_size": 10, "hidden_size": 3, "native": {"keras-*": {"batch_input_shape": [8, 2, 10]}}})
    obs = pool.run("keras-tensorflow", "c", cfg, "cpu", summary=True)
    real, true = checks._summary_verdict({"total_params": 168}, obs.summary)
    assert not true and "batch_input_shape" in real["unavailable"]
