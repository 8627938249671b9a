"""Continued calls (``calls``): each call starts from the state the previous one ended with, in each
framework's own way; the last call's output and states are compared. Real torch and tf-keras runs."""

import dataclasses

import numpy as np
import pytest

from conformance import checks, reference
from conformance.spec import Case, Claim, Config

BASE = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, "return_sequences": True,
        "return_state": True}


def ref_of(cfg):
    return reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                             reference.initial_states(cfg))


def test_a_second_call_continues_the_sequence_as_one_call_over_the_input_twice():
    cfg = Config(**BASE, calls=2)
    x = reference.make_input(cfg)
    twice = dataclasses.replace(cfg, timesteps=6, calls=1)
    whole = reference.forward(twice, np.concatenate([x, x], axis=1), reference.canonical_weights(cfg))
    ref = ref_of(cfg)
    np.testing.assert_allclose(ref.output, whole.output[:, 3:], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref.states[0][1], whole.states[0][1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("impl", ["torch", "tf-keras"])
def test_each_framework_continues_from_the_previous_call_s_state(pool, impl):
    cfg = Config(**BASE, calls=2, num_layers=2)
    obs = pool.run(impl, "c", cfg, "cpu")
    case = Case(id="c", config=cfg, file="cases/x.yaml", line=1)
    assert checks.check_values(case, obs, "cpu", ref_of(cfg)).ok
    once = dataclasses.replace(cfg, calls=1)
    assert not checks.check_values(Case(id="c", config=once, file="cases/x.yaml", line=1), obs, "cpu",
                                   ref_of(once)).ok              # not a fresh call: the state was carried
    assert any("2 calls" in n or "called 2 times" in n for n in obs.normalization + [obs.construct])


@pytest.mark.parametrize("value, words", [("0", "must be >= 1"), ("17", "at most 16"), ("true", "expected an integer")])
def test_calls_is_a_whole_number_from_1_to_16(tmp_path, value, words):
    from conformance import spec
    path = tmp_path / "c.yaml"
    path.write_text(f"lstm-conformance: 1\ncases:\n  - {{id: c, input_size: 3, hidden_size: 4, calls: {value}}}\n")
    with pytest.raises(spec.SpecError) as err:
        spec.load_file(path)
    assert err.value.field == "calls" and words in str(err.value)


# ---- resets: calls that start again from the case's initial state ----

def test_a_reset_call_gives_the_first_call_s_output_again_and_the_others_continue():
    ref = ref_of(Config(**BASE, calls=3, resets=(3,), initial_state="random"))
    first, second, third = ref.call_outputs
    assert np.array_equal(third, first) and not np.allclose(second, first)
    assert np.array_equal(ref.output, third)


def test_a_single_call_has_no_call_outputs():
    assert ref_of(Config(**BASE)).call_outputs is None


@pytest.mark.parametrize("impl", ["torch", "tf-keras"])
def test_every_call_s_output_is_compared_with_the_reference(pool, impl):
    cfg = Config(**BASE, calls=3, resets=(3,), initial_state="random")
    obs = pool.run(impl, "c", cfg, "cpu")
    assert len(obs.call_outputs) == 3
    values = checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), obs, "cpu", ref_of(cfg))
    assert values.ok and [t["tensor"] for t in values.details["tensors"]][:3] == ["output", "call1/output",
                                                                                  "call2/output"]


def test_a_framework_that_did_not_reset_diverges(pool):
    kept = pool.run("torch", "c", Config(**BASE, calls=3), "cpu")          # no reset: call 3 continues
    cfg = Config(**BASE, calls=3, resets=(3,))
    values = checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), kept, "cpu", ref_of(cfg))
    assert not values.ok
    assert [t["tensor"] for t in values.details["tensors"] if not t["ok"]][0] == "output"


@pytest.mark.parametrize("same, different, true", [
    ([[1, 3]], [[1, 2]], True),
    ([[1, 2]], None, False),
    (None, [[1, 3]], False),
])
def test_claims_about_which_calls_give_the_same_output_are_checked_on_the_native_outputs(pool, same, different,
                                                                                        true):
    cfg = Config(**BASE, calls=3, resets=(3,))
    obs = pool.run("torch", "c", cfg, "cpu")
    claim = Claim(source="doc", impl=("torch",), same_calls=same and tuple(map(tuple, same)),
                  different_calls=different and tuple(map(tuple, different)))
    (detail,) = checks.check_claims(Case(id="c", config=cfg, file="cases/x.yaml", line=1, claims=(claim,)), obs,
                                    "torch").details["claims"]
    assert detail["true"] is true


@pytest.mark.parametrize("fields, field, words", [
    ("resets: [2]", "resets", "set calls to 2 or more"),
    ("calls: 3, resets: [1]", "resets", "a call number from 2 to calls (3)"),
    ("calls: 3, resets: [4]", "resets", "a call number from 2 to calls (3)"),
    ("calls: 3, resets: [3, 2]", "resets", "once each, in order"),
    ("calls: 2, claims: [{source: d, impl: torch, same_calls: [[1, 3]]}]", "claims.same_calls",
     "names call 3, but the case makes 2 call(s)"),
    ("calls: 2, claims: [{source: d, impl: torch, different_calls: [[1, 1]]}]", "claims.different_calls",
     "pairs of two different call numbers"),
])
def test_resets_and_call_claims_are_validated_with_located_errors(tmp_path, fields, field, words):
    from conformance import spec
    path = tmp_path / "c.yaml"
    path.write_text(f"lstm-conformance: 1\ncases:\n  - {{id: c, input_size: 3, hidden_size: 4, {fields}}}\n")
    with pytest.raises(spec.SpecError) as err:
        spec.load_file(path)
    assert err.value.field == field and words in str(err.value), str(err.value)
