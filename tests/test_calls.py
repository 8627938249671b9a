"""Continued calls (``calls``): each call starts from the state the previous one ended with, in each
framework's own way; the last call's output and states are compared. Real torch and tf-keras runs."""

import dataclasses

import numpy as np
import pytest

from conformance import checks, reference
from conformance.spec import Case, Config

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
