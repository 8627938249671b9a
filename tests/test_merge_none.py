"""merge_mode none: the two directions' outputs returned apart (Keras merge_mode=None), canonically side
by side as concat. Real tf-keras runs."""

import pytest

from conformance import checks, impls, reference
from conformance.spec import Case, Config

BASE = {"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 5, "bidirectional": True, "merge_mode": "none"}


@pytest.mark.parametrize("return_state", [False, True])
def test_keras_returns_the_forward_then_the_backward_output_before_the_states(pool, return_state):
    cfg = Config(**BASE, return_sequences=True, return_state=return_state)
    obs = pool.run("tf-keras", "c", cfg, "cpu")
    assert [(r["role"], r["direction"]) for r in obs.returns][:2] == [("output", "forward"), ("output", "backward")]
    assert [r["role"] for r in obs.returns][2:] == (["h", "c", "h", "c"] if return_state else [])
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg))
    assert list(obs.output.shape) == [2, 5, 8] == list(reference.output_shape(cfg))
    assert checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), obs, "cpu", ref).ok


def test_torch_without_separate_outputs_says_why():
    assert "always concatenates the two directions" in impls.get("torch").unsupported(Config(**BASE))


@pytest.mark.parametrize("impl", ["flax-linen", "flax-nnx"])
def test_flax_returns_the_two_outputs_apart_with_a_merge_fn_that_keeps_them(pool, impl):
    cfg = Config(**BASE)
    obs = pool.run(impl, "c", cfg, "cpu")
    outputs = [(r["path"], r["direction"], r["shape"]) for r in obs.returns if r["role"] == "output"]
    assert outputs == [("[1][0]", "forward", [2, 5, 4]), ("[1][1]", "backward", [2, 5, 4])]
    ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg))
    assert checks.check_values(Case(id="c", config=cfg, file="cases/x.yaml", line=1), obs, "cpu", ref).ok


def test_merge_mode_none_cannot_be_stacked(tmp_path):
    from conformance import spec
    path = tmp_path / "c.yaml"
    path.write_text("lstm-conformance: 1\ncases:\n  - {id: c, input_size: 3, hidden_size: 4, bidirectional: true, "
                    "merge_mode: none, num_layers: 2}\n")
    with pytest.raises(spec.SpecError) as err:
        spec.load_file(path)
    assert err.value.field == "merge_mode" and "num_layers must be 1" in str(err.value)
