"""Rejection as a native fact: a framework that refuses a configuration or an input at run time is
``rejected`` (its exception type and message kept), compared by the ``accepts`` check with what the
canonical semantics accepts, and claimed with ``raises``. Real torch runs throughout."""

import numpy as np
import pytest

from conformance import checks, reference
from conformance.impls.base import Rejected, native
from conformance.spec import Case, Claim, Config


def case_of(cfg: Config, claims=()) -> Case:
    return Case(id="c", config=cfg, file="cases/x.yaml", line=1, claims=tuple(claims))


def torch_run(pool, **kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 3, **kw})
    return case_of(cfg), pool.run("torch", "c", cfg, "cpu")


def evaluate(case, obs):
    return checks.evaluate(case, "torch", "cpu", obs, "torch", [])


def test_a_framework_s_refusal_is_a_rejected_run_with_its_exception_type_and_message(pool):
    _, obs = torch_run(pool, feed_input_size=5)
    assert obs.status == "rejected"
    assert obs.rejection["type"] == "RuntimeError" and "must be equal to input_size" in obs.rejection["message"]
    assert obs.rejection["phase"] == "call" and "Exception" in obs.rejection["types"]


def test_an_exception_of_the_suite_s_own_code_inside_native_stays_an_error():
    with pytest.raises(KeyError), native("call"):
        reference.forward(Config(3, 4), np.zeros((2, 3, 3)), {})     # KeyError raised in conformance's code
    with pytest.raises(Rejected), native("call"):
        np.linalg.inv(np.zeros((2, 2)))                               # raised by NumPy's own Python code


def test_refusing_what_the_canonical_semantics_refuses_agrees(pool):
    case, obs = torch_run(pool, feed_input_size=5)
    result = evaluate(case, obs)
    assert result["accepts"]["verdict"] == "agree"
    assert set(result) == {"accepts"}                 # nothing to compare: neither computed a result


def test_refusing_what_the_canonical_semantics_accepts_diverges(pool):
    case, obs = torch_run(pool, timesteps=0)          # torch: "Expected sequence length to be larger than 0"
    result = evaluate(case, obs)
    assert result["accepts"]["verdict"] == "diverge"
    assert result["accepts"]["details"]["canonical"] == "accepts"
    assert "larger than 0" in result["accepts"]["details"]["native"]


def test_accepting_what_the_canonical_semantics_refuses_diverges(pool):
    case, obs = torch_run(pool)
    refused = case_of(Config(input_size=3, hidden_size=4, batch=2, timesteps=3, feed_input_size=5))
    assert evaluate(refused, obs)["accepts"]["verdict"] == "diverge"


def test_when_both_accept_the_accepts_check_says_nothing(pool):
    case, obs = torch_run(pool, batch=0)             # torch accepts an empty batch, as the canonical form does
    result = evaluate(case, obs)
    assert "accepts" not in result and result["output_shape"]["verdict"] == "agree"
    assert result["values"]["verdict"] == "agree"


@pytest.mark.parametrize("raises,true", [
    ((("type", "RuntimeError"), ("match", r"input\.size\(-1\)")), True),
    ((("type", "Exception"),), True),                 # a base class of the raised type
    ((("type", "ValueError"),), False),
    ((("match", "no such words"),), False),
])
def test_a_raises_claim_is_true_for_the_type_or_a_base_and_a_matching_message(pool, raises, true):
    case, obs = torch_run(pool, feed_input_size=5)
    claim = Claim(source="doc", impl=("torch",), raises=raises)
    (detail,) = evaluate(case_of(case.config, [claim]), obs)["claims"]["details"]["claims"]
    assert detail["true"] is true


def test_a_raises_claim_about_a_run_that_is_accepted_is_false(pool):
    case, obs = torch_run(pool)
    claim = Claim(source="doc", impl=("torch",), raises=(("type", "RuntimeError"),))
    (detail,) = evaluate(case_of(case.config, [claim]), obs)["claims"]["details"]["claims"]
    assert detail["true"] is False and detail["real"] == {"raises": None}


def test_the_reference_gives_empty_outputs_and_the_initial_state_for_zero_sizes():
    no_steps = Config(input_size=3, hidden_size=4, timesteps=0, initial_state="ones", return_sequences=True)
    ref = reference.forward(no_steps, reference.make_input(no_steps), reference.canonical_weights(no_steps),
                            reference.initial_states(no_steps))
    assert ref.output.shape == (2, 0, 4) and all(np.all(h == 1) and np.all(c == 1) for h, c in ref.states)
    empty = Config(input_size=3, hidden_size=4, batch=0)
    ref = reference.forward(empty, reference.make_input(empty), reference.canonical_weights(empty))
    assert ref.output.shape == (0, 4)
    one_empty = Config(input_size=3, hidden_size=4, lengths=(3, 0), return_sequences=True)
    ref = reference.forward(one_empty, reference.make_input(one_empty), reference.canonical_weights(one_empty))
    assert np.all(ref.output[1] == 0) and np.all(ref.states[0][0][1] == 0) and np.any(ref.states[0][0][0] != 0)
