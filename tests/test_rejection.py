"""Rejection as a native fact: a framework that refuses a configuration or an input at run time is
``rejected`` (its exception type and message kept), compared by the ``accepts`` check with what the
canonical semantics accepts, and claimed with ``raises``. Real torch runs throughout."""

import numpy as np
import pytest

from conformance import checks, reference
from conformance.impls.base import Rejected, native
from conformance.impls import get
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


@pytest.mark.parametrize("feeds, says", [
    ({"feed_state_hidden": 7}, "the initial states have width 7, but the layer's h has 4 and c has 4"),
    ({"feed_state_hidden": 7, "feed_state_only": "c"}, "the initial c has width 7, but the layer's c has 4"),
    ({"feed_state_batch": 3, "feed_state_only": "h"}, "the initial h has a batch of 3, but the input has 2"),
    ({"feed_state_layers": 3}, "3 (layer, direction) entries, but the layer has 2"),
])
def test_the_canonical_semantics_refuses_initial_states_that_do_not_fit(feeds, says):
    cfg = Config(3, 4, num_layers=2, initial_state="random", **feeds)
    assert says in reference.rejects(cfg)


def test_a_projected_h_of_the_hidden_width_is_refused_but_c_of_it_is_not():
    cfg = Config(3, 4, proj_size=2, initial_state="random", feed_state_hidden=4)
    assert reference.rejects(cfg) == "the initial states have width 4, but the layer's h has 2"
    assert reference.rejects(Config(3, 4, proj_size=2, initial_state="random", feed_state_hidden=4,
                                    feed_state_only="c")) is None


def test_only_the_named_initial_state_takes_the_fed_shape():
    cfg = Config(3, 4, num_layers=2, initial_state="random", feed_state_layers=3, feed_state_only="c")
    states = reference.initial_states(cfg)
    assert [None if h is None else h.shape for h, _ in states] == [(2, 4), (2, 4), None]
    assert [c.shape for _, c in states] == [(2, 4)] * 3


def test_the_fed_initial_states_keep_the_values_of_the_right_ones_where_they_overlap():
    right = reference.initial_states(Config(3, 4, initial_state="random"))
    fed = reference.initial_states(Config(3, 4, initial_state="random", feed_state_hidden=7, feed_state_only="c"))
    assert np.array_equal(fed[0][0], right[0][0]) and fed[0][1].shape == (2, 7)


def test_a_stack_of_no_layers_is_refused_and_a_layer_of_no_units_or_features_is_not():
    assert "no layers" in reference.rejects(Config(3, 4, num_layers=0))
    assert reference.rejects(Config(3, 0)) is None and reference.rejects(Config(0, 4)) is None


def test_the_reference_of_no_units_gives_outputs_and_states_of_width_0():
    cfg = Config(3, 0, return_sequences=True, return_state=True)
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg))
    assert ref.output.shape == (2, 3, 0) and ref.states[0][0].shape == (2, 0)


def test_the_reference_of_no_features_is_the_lstm_driven_by_its_bias_and_h_alone():
    one = Config(1, 4, input=0.0, return_sequences=True)       # one feature, always 0: W never matters
    weights = reference.canonical_weights(one)
    none = Config(0, 4, return_sequences=True)
    no_w = {k: (v[:0] if k.endswith("/W") else v) for k, v in weights.items()}
    with_one = reference.forward(one, reference.make_input(one), weights).output
    with_none = reference.forward(none, reference.make_input(none), no_w).output
    assert np.array_equal(with_none, with_one) and np.abs(with_none).max() > 0


def test_torch_refuses_an_h_of_another_width_alone_naming_hidden_0(pool):
    _, obs = torch_run(pool, initial_state="random", feed_state_hidden=7, feed_state_only="h")
    assert obs.status == "rejected" and "Expected hidden[0] size (1, 2, 4), got [1, 2, 7]" in obs.rejection["message"]


def test_torch_refuses_states_of_another_layer_count(pool):
    _, obs = torch_run(pool, num_layers=2, initial_state="random", feed_state_layers=3, feed_state_only="c")
    assert obs.status == "rejected" and "Expected hidden[1] size (2, 2, 4), got [3, 2, 4]" in obs.rejection["message"]


@pytest.mark.parametrize("impl_id", ["keras-jax", "tf-keras", "flax-linen", "flax-nnx"])
def test_a_per_layer_stack_cannot_express_another_layer_count_in_its_states_nor_no_layers(impl_id):
    impl = get(impl_id)
    assert "feed_state_layers" in impl.unsupported(Config(3, 4, initial_state="random", feed_state_layers=2))
    assert "num_layers 0" in impl.unsupported(Config(3, 4, num_layers=0))


def test_torch_leaves_batch_first_free_only_for_unbatched_input():
    torch_impl = get("torch")
    native = {"torch": {"batch_first": True}}
    assert torch_impl.unsupported(Config(3, 4, layout="unbatched", batch=1, native=native)) is None
    assert "sets them from the case's fields" in torch_impl.unsupported(Config(3, 4, layout="time_major",
                                                                              native=native))


def test_torch_runs_unbatched_input_with_batch_first_as_given(pool):
    cfg = Config(3, 4, layout="unbatched", batch=1, return_sequences=True, native={"torch": {"batch_first": True}})
    obs = pool.run("torch", "c", cfg, "cpu")
    assert "batch_first=True" in obs.construct
    assert evaluate(case_of(cfg), obs)["values"]["verdict"] == "agree"
