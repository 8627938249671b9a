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


def make_input(cfg: Config) -> np.ndarray:
    """The canonical input (B, T, F), deterministic in the case's seed, in the case's dtype."""
    rng = np.random.default_rng(cfg.seed)
    return rng.standard_normal((cfg.batch, cfg.timesteps, cfg.input_size)).astype(cfg.dtype)


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
