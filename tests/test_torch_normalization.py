"""torch.nn.LSTM's native results map to the canonical form (run on real torch)."""

import dataclasses

import numpy as np

from conformance import reference
from conformance.spec import Config


def run(pool, **kw):
    cfg = Config(**{"input_size": 3, "hidden_size": 4, "batch": 2, "timesteps": 5, **kw})
    obs = pool.run("torch", "t", cfg, "cpu")
    assert obs.status == "ok", obs.reason
    return cfg, obs


def test_native_return_is_output_then_h_n_then_c_n_whatever_the_flags(pool):
    _, obs = run(pool)
    assert [r["role"] for r in obs.returns] == ["output", "h", "c"]
    assert [r["shape"] for r in obs.returns] == [[2, 5, 4], [1, 2, 4], [1, 2, 4]]


def test_h_n_stacks_layers_and_directions_first(pool):
    _, obs = run(pool, num_layers=3, bidirectional=True, return_state=True)
    assert obs.returns[1]["shape"] == [6, 2, 4]


def test_last_output_of_bidirectional_is_final_h_of_each_direction_not_output_at_last_step(pool):
    cfg, obs = run(pool, bidirectional=True, return_state=True)
    assert obs.output.shape == reference.output_shape(cfg)
    np.testing.assert_array_equal(obs.output[:, :4], obs.states[0][0])
    np.testing.assert_array_equal(obs.output[:, 4:], obs.states[1][0])
    _, seq = run(pool, bidirectional=True, return_sequences=True)
    # the backward direction's final state is at time 0 of the sequence output, not at T-1
    np.testing.assert_allclose(seq.output[:, 0, 4:], obs.output[:, 4:], rtol=1e-6)
    assert not np.allclose(seq.output[:, -1, 4:], obs.output[:, 4:])


def test_time_major_output_is_transposed_to_batch_first(pool):
    cfg, tm = run(pool, layout="time_major", return_sequences=True)
    _, bm = run(pool, layout="batch_major", return_sequences=True)
    assert tm.returns[0]["shape"] == [5, 2, 4]
    assert tm.output.shape == reference.output_shape(cfg)
    np.testing.assert_allclose(tm.output, bm.output, rtol=1e-6)


def test_unbatched_gets_a_batch_axis_of_one(pool):
    cfg, obs = run(pool, layout="unbatched", batch=1, return_sequences=True, return_state=True)
    assert obs.returns[0]["shape"] == [5, 4] and obs.returns[1]["shape"] == [1, 4]
    assert obs.output.shape == reference.output_shape(cfg)
    assert [(h.shape, c.shape) for h, c in obs.states] == reference.state_shapes(cfg)


def test_projection_gives_h_of_proj_size_and_c_of_hidden_size(pool):
    cfg, obs = run(pool, hidden_size=6, proj_size=2, return_state=True)
    assert [(h.shape, c.shape) for h, c in obs.states] == reference.state_shapes(cfg)


def test_states_torch_always_returns_are_kept_without_return_state(pool):
    cfg, obs = run(pool)
    assert [(h.shape, c.shape) for h, c in obs.states] == reference.state_shapes(
        dataclasses.replace(cfg, return_state=True))


def test_merge_modes_other_than_concat_are_unsupported_with_a_reason():
    from conformance import impls
    torch_impl = impls.get("torch")
    assert "concatenates" in torch_impl.unsupported(Config(3, 4, bidirectional=True, merge_mode="sum"))
    assert torch_impl.unsupported(Config(3, 4)) is None
