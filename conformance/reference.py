"""The reference: what the canonical semantics say for a configuration, with no framework.

Everything here is derived from the configuration alone (see DESIGN.md, "Canonical semantics"):
canonical output and state shapes, the canonical parameter tensors and their count, each
framework's *documented* native parameter-count formula, and the deterministic input every
implementation is fed. Nothing here imports a framework.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import Config


def hidden_out(cfg: Config) -> int:
    """H': the width of h (the projection size when there is one)."""
    return cfg.proj_size or cfg.hidden_size


def output_features(cfg: Config) -> int:
    """Width of a layer's output after merging directions."""
    if cfg.bidirectional and cfg.merge_mode == "concat":
        return 2 * hidden_out(cfg)
    return hidden_out(cfg)


def layer_input_size(cfg: Config, layer: int) -> int:
    """Layer 0 reads the input; layer l > 0 reads layer l-1's merged output."""
    return cfg.input_size if layer == 0 else output_features(cfg)


def direction_names(cfg: Config) -> tuple[str, ...]:
    return ("forward", "backward") if cfg.bidirectional else ("forward",)


def output_shape(cfg: Config) -> tuple[int, ...]:
    """Canonical output: batch-first, (B, T, F) with return_sequences else (B, F).

    Unbatched input is canonicalised with a batch axis of 1.
    """
    if cfg.return_sequences:
        return (cfg.batch, cfg.timesteps, output_features(cfg))
    return (cfg.batch, output_features(cfg))


def state_shapes(cfg: Config) -> list[tuple[tuple[int, ...], tuple[int, ...]]] | None:
    """Canonical states: (h (B, H'), c (B, H)) for every layer, then direction; None without return_state."""
    if not cfg.return_state:
        return None
    pair = ((cfg.batch, hidden_out(cfg)), (cfg.batch, cfg.hidden_size))
    return [pair for _ in range(cfg.num_layers) for _ in range(cfg.directions)]


def state_labels(cfg: Config) -> list[str]:
    return [f"layer{l}/{d}" for l in range(cfg.num_layers) for d in direction_names(cfg)]


def canonical_params(cfg: Config) -> list[tuple[str, tuple[int, ...]]]:
    """Canonical parameter tensors, gate order i, f, g, o: W (in, 4H), U (H', 4H), b (4H), R (H, P)."""
    H, Hp = cfg.hidden_size, hidden_out(cfg)
    out = []
    for layer in range(cfg.num_layers):
        for d in direction_names(cfg):
            p = f"layer{layer}/{d}/"
            out.append((p + "W", (layer_input_size(cfg, layer), 4 * H)))
            out.append((p + "U", (Hp, 4 * H)))
            if cfg.bias:
                out.append((p + "b", (4 * H,)))
            if cfg.proj_size:
                out.append((p + "R", (H, cfg.proj_size)))
    return out


def param_count(cfg: Config) -> int:
    """Canonical parameter count (Keras's convention: one bias vector)."""
    return int(sum(np.prod(s) for _, s in canonical_params(cfg)))


# --------------------------------------------------------------------------------------
# Documented native parameter-count formulas. Each adapter names the one its framework
# documents; the param_count check compares the real count with it *and* with the canonical one.


@dataclass(frozen=True)
class ParamFormula:
    name: str
    text: str          # the formula as its documentation states it
    source: str        # where it is documented
    per_layer_dir: callable

    def count(self, cfg: Config) -> int:
        return sum(self.per_layer_dir(cfg, layer_input_size(cfg, l))
                   for l in range(cfg.num_layers) for _ in range(cfg.directions))


def _single_bias(cfg: Config, n_in: int) -> int:
    H, Hp = cfg.hidden_size, hidden_out(cfg)
    return 4 * H * n_in + 4 * H * Hp + (4 * H if cfg.bias else 0) + H * cfg.proj_size


def _torch(cfg: Config, n_in: int) -> int:
    H, Hp = cfg.hidden_size, hidden_out(cfg)
    return 4 * H * n_in + 4 * H * Hp + (8 * H if cfg.bias else 0) + H * cfg.proj_size


PARAM_FORMULAS = {
    "keras": ParamFormula(
        "keras", "4·H·(in + H + 1) per layer and direction: kernel (in, 4H), recurrent_kernel (H, 4H), "
        "bias (4H)", "https://keras.io/api/layers/recurrent_layers/lstm/", _single_bias),
    "torch": ParamFormula(
        "torch", "4·H·in + 4·H·H' + 2·4·H (+ H·P with proj_size) per layer and direction: weight_ih, weight_hh, "
        "bias_ih and bias_hh (two bias vectors), weight_hr", "https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html",
        _torch),
    "flax": ParamFormula(
        "flax", "4·H·in + 4·(H·H + H) per layer and direction: input Dense ii/if/ig/io without bias, hidden "
        "Dense hi/hf/hg/ho with bias", "https://flax.readthedocs.io/en/latest/api_reference/flax.linen/layers.html"
        "#flax.linen.LSTMCell", _single_bias),
}


# --------------------------------------------------------------------------------------
# Input


def array_dtype(cfg: Config) -> str:
    """The NumPy dtype arrays travel in: the case's, except that float16 and bfloat16 travel as
    float32 (NumPy has no bfloat16) and each adapter casts them to the framework's own type."""
    return cfg.dtype if cfg.dtype in ("float32", "float64") else "float32"


def make_input(cfg: Config) -> np.ndarray:
    """The canonical input (B, T, F), deterministic in the case's seed (see :func:`array_dtype`).
    With ``lengths``, steps past a sequence's length hold values too: an implementation must ignore them."""
    rng = np.random.default_rng(cfg.seed)
    return rng.standard_normal((cfg.batch, cfg.timesteps, cfg.input_size)).astype(array_dtype(cfg))


# --------------------------------------------------------------------------------------
# Canonical weights, initial states and the reference LSTM (NumPy, float64)

GATES = ("i", "f", "g", "o")


def canonical_weights(cfg: Config) -> dict[str, np.ndarray]:
    """Canonical weights (names and shapes of :func:`canonical_params`, gate order i, f, g, o),
    uniform in (-1/sqrt(H), 1/sqrt(H)) like torch's and Keras's defaults, from the case's seed."""
    rng = np.random.default_rng([cfg.seed, 1])
    k = 1.0 / np.sqrt(cfg.hidden_size)
    return {name: rng.uniform(-k, k, shape) for name, shape in canonical_params(cfg)}


def initial_states(cfg: Config) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(h0 (B, H'), c0 (B, H)) per layer, then direction, when the case gives initial states."""
    if cfg.initial_state == "none":
        return None
    rng = np.random.default_rng([cfg.seed, 2])
    B, H, Hp = cfg.batch, cfg.hidden_size, hidden_out(cfg)
    make = (lambda shape: np.zeros(shape)) if cfg.initial_state == "zeros" else \
        (lambda shape: rng.uniform(-0.5, 0.5, shape))
    return [(make((B, Hp)), make((B, H))) for _ in range(cfg.num_layers) for _ in range(cfg.directions)]


def valid_mask(cfg: Config) -> np.ndarray:
    """(B, T) booleans: which steps of each sequence are real (all of them without ``lengths``)."""
    lengths = cfg.lengths or (cfg.timesteps,) * cfg.batch
    return np.arange(cfg.timesteps)[None, :] < np.asarray(lengths)[:, None]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Forward:
    """The reference result: canonical output and states, and each layer's per-direction outputs
    (time order, zeros at padded steps), which locate where an implementation first differs."""

    output: np.ndarray
    states: list[tuple[np.ndarray, np.ndarray]]             # every layer and direction, even without return_state
    layer_outputs: list[list[np.ndarray]]                    # [layer][direction] -> (B, T, H')


def _direction(cfg, x, mask, w, init, backward: bool):
    """One direction of one layer over (B, T, F); returns outputs (B, T, H') in time order and (h, c)."""
    B, T = x.shape[:2]
    H = cfg.hidden_size
    h, c = (np.zeros((B, hidden_out(cfg))), np.zeros((B, H))) if init is None else (init[0].copy(), init[1].copy())
    out = np.zeros((B, T, hidden_out(cfg)))
    b = w.get("b", 0.0)
    for t in (range(T - 1, -1, -1) if backward else range(T)):
        z = x[:, t] @ w["W"] + h @ w["U"] + b
        i, f, g, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), _sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        if "R" in w:
            h_new = h_new @ w["R"]
        m = mask[:, t][:, None]          # padded steps leave the state as it was and output zeros
        h, c = np.where(m, h_new, h), np.where(m, c_new, c)
        out[:, t] = np.where(m, h, 0.0)
    return out, (h, c)


def _merge(cfg, outs):
    if len(outs) == 1:
        return outs[0]
    a, b = outs
    return {"concat": lambda: np.concatenate([a, b], axis=-1), "sum": lambda: a + b, "mul": lambda: a * b,
            "ave": lambda: (a + b) / 2}[cfg.merge_mode]()


def forward(cfg: Config, x: np.ndarray, weights: dict[str, np.ndarray],
            init: list[tuple[np.ndarray, np.ndarray]] | None = None) -> Forward:
    """The canonical LSTM (DESIGN.md, "Canonical semantics") in float64, on canonical input (B, T, F).

    The backward direction (and ``go_backwards``) reads each sequence's valid steps in reverse and
    puts its outputs back in time order; with ``lengths`` a sequence's state stops at its last valid
    step and its outputs past it are zeros; layer l > 0 reads layer l-1's merged output.
    """
    mask = valid_mask(cfg)
    h_in = np.asarray(x, np.float64) * mask[:, :, None]
    states, layer_outputs = [], []
    backward_only = cfg.go_backwards
    for layer in range(cfg.num_layers):
        outs = []
        for d, name in enumerate(direction_names(cfg)):
            k = layer * cfg.directions + d
            w = {n.rsplit("/", 1)[1]: v for n, v in weights.items() if n.startswith(f"layer{layer}/{name}/")}
            out, (h, c) = _direction(cfg, h_in, mask, w, None if init is None else init[k],
                                     backward=name == "backward" or backward_only)
            outs.append(out)
            states.append((h, c))
        layer_outputs.append(outs)
        h_in = _merge(cfg, outs) * mask[:, :, None]
    if cfg.return_sequences:
        output = h_in
    else:   # each direction's final hidden state of the top layer, merged
        top = states[(cfg.num_layers - 1) * cfg.directions:]
        output = _merge(cfg, [h for h, _ in top])
    return Forward(output=output, states=states, layer_outputs=layer_outputs)


def to_native_layout(cfg: Config, x: np.ndarray) -> np.ndarray:
    """Canonical (B, T, F) -> the layout the case asks the implementation to be fed."""
    if cfg.layout == "time_major":
        return np.ascontiguousarray(x.transpose(1, 0, 2))
    if cfg.layout == "unbatched":
        return np.ascontiguousarray(x[0])
    return x


def native_input_shape(cfg: Config) -> tuple[int, ...]:
    B, T, F = cfg.batch, cfg.timesteps, cfg.input_size
    return {"batch_major": (B, T, F), "time_major": (T, B, F), "unbatched": (T, F)}[cfg.layout]


def summary(cfg: Config) -> dict:
    """The reference as plain data (for results.json and failure messages)."""
    states = state_shapes(cfg)
    return {
        "output_shape": list(output_shape(cfg)),
        "state_shapes": None if states is None else [[list(h), list(c)] for h, c in states],
        "state_labels": state_labels(cfg) if states is not None else None,
        "param_count": param_count(cfg),
        "params": [[n, list(s)] for n, s in canonical_params(cfg)],
        "input_shape": list(native_input_shape(cfg)),
    }
