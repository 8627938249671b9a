"""The reference: what the canonical semantics say for a configuration, with no framework.

Everything here is derived from the configuration alone (see DESIGN.md, "Canonical semantics"):
canonical output and state shapes, the canonical parameter tensors and their count, each
framework's *documented* native parameter-count formula, and the deterministic input every
implementation is fed. Nothing here imports a framework.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .spec import Config


def hidden_out(cfg: Config, layer: int = -1) -> int:
    """H': the width of h of ``layer`` (the top one by default): the projection size when there is one."""
    return cfg.proj_size or cfg.layer_hidden(layer)


def side_by_side(cfg: Config) -> bool:
    """The directions' outputs sit side by side in the canonical output (forward first): concat, and none
    (returned apart natively)."""
    return cfg.bidirectional and cfg.merge_mode in ("concat", "none")


def output_features(cfg: Config, layer: int = -1) -> int:
    """Width of a layer's output (the top one's by default) after merging directions."""
    if side_by_side(cfg):
        return 2 * hidden_out(cfg, layer)
    return hidden_out(cfg, layer)


def layer_input_size(cfg: Config, layer: int) -> int:
    """Layer 0 reads the input; layer l > 0 reads layer l-1's merged output."""
    return cfg.input_size if layer == 0 else output_features(cfg, layer - 1)


def direction_names(cfg: Config) -> tuple[str, ...]:
    return ("forward", "backward") if cfg.bidirectional else ("forward",)


def reads_backwards(cfg: Config, direction: str) -> bool:
    """Whether ``direction`` reads the sequence from its end: the backward one, and with go_backwards the
    other way round (a lone layer reads backwards; a bidirectional one swaps its two directions, as Keras's
    Bidirectional(LSTM(go_backwards=True)) does: its backward copy gets go_backwards=False)."""
    return (direction == "backward") != cfg.go_backwards


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
    return [((cfg.batch, hidden_out(cfg, l)), (cfg.batch, cfg.layer_hidden(l)))
            for l in range(cfg.num_layers) for _ in range(cfg.directions)]


def state_labels(cfg: Config) -> list[str]:
    return [f"layer{l}/{d}" for l in range(cfg.num_layers) for d in direction_names(cfg)]


def canonical_params(cfg: Config) -> list[tuple[str, tuple[int, ...]]]:
    """Canonical parameter tensors, gate order i, f, g, o: W (in, 4H), U (H', 4H), b (4H), R (H, P)."""
    out = []
    for layer in range(cfg.num_layers):
        H, Hp = cfg.layer_hidden(layer), hidden_out(cfg, layer)
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
    per_layer_dir: callable        # (cfg, layer's input size, layer's H) -> its count

    def count(self, cfg: Config) -> int:
        return sum(self.per_layer_dir(cfg, layer_input_size(cfg, l), cfg.layer_hidden(l))
                   for l in range(cfg.num_layers) for _ in range(cfg.directions))


def _single_bias(cfg: Config, n_in: int, H: int) -> int:
    Hp = cfg.proj_size or H
    return 4 * H * n_in + 4 * H * Hp + (4 * H if cfg.bias else 0) + H * cfg.proj_size


def _torch(cfg: Config, n_in: int, H: int) -> int:
    Hp = cfg.proj_size or H
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
    "onnx": ParamFormula(
        "onnx", "4·H·in + 4·H·H + 2·4·H per layer and direction: W (D, 4H, in), R (D, 4H, H), B = [Wb, Rb] "
        "(D, 8H: two bias vectors)", "https://onnx.ai/onnx/operators/onnx__LSTM.html", _torch),
}


# --------------------------------------------------------------------------------------
# Input


def array_dtype(cfg: Config) -> str:
    """The NumPy dtype arrays travel in: the case's, except that float16 and bfloat16 travel as
    float32 (NumPy has no bfloat16) and each adapter casts them to the framework's own type."""
    return cfg.dtype if cfg.dtype in ("float32", "float64") else "float32"


def fed_input_size(cfg: Config) -> int:
    """The features of the input the call is given: ``input_size``, or the case's ``feed_input_size``."""
    return cfg.input_size if cfg.feed_input_size is None else cfg.feed_input_size


def rejects(cfg: Config) -> str | None:
    """Why the canonical semantics refuses the case, or None: a stack of no layers, or an input or initial
    states the case feeds that do not fit the layer (``feed_input_size``, ``feed_state_*``). Zero sizes are
    legal: an empty batch gives empty outputs, zero time steps (or a sequence of length 0) leave the state
    as it was given (zeros) and the output sequence empty (or zeros), and an input of no features or a
    layer of no units compute as the equations say (empty products are zeros; outputs of width 0)."""
    if cfg.num_layers == 0:
        return "num_layers is 0: a stack of no layers is no LSTM"
    if fed_input_size(cfg) != cfg.input_size:
        return (f"the input has {fed_input_size(cfg)} features, but the layer was built for input_size "
                f"{cfg.input_size}")
    which = {"both": "the initial states have", "h": "the initial h has", "c": "the initial c has"}[cfg.feed_state_only]
    if cfg.feed_state_batch is not None and cfg.feed_state_batch != cfg.batch:
        return f"{which} a batch of {cfg.feed_state_batch}, but the input has {cfg.batch}"
    if cfg.feed_state_hidden is not None:
        wants = {"h": {hidden_out(cfg, l) for l in range(cfg.num_layers)},
                 "c": {cfg.layer_hidden(l) for l in range(cfg.num_layers)}}
        wrong = [r for r in ("h", "c") if cfg.feed_state_only in ("both", r) and wants[r] != {cfg.feed_state_hidden}]
        if wrong:
            return (f"{which} width {cfg.feed_state_hidden}, but the layer's "
                    + " and ".join(f"{r} has {'/'.join(map(str, sorted(wants[r])))}" for r in wrong))
    entries = cfg.num_layers * cfg.directions
    if cfg.feed_state_layers is not None and cfg.feed_state_layers != entries:
        return (f"{which} {cfg.feed_state_layers} (layer, direction) entries, but the layer has {entries} "
                f"({cfg.num_layers} layer(s) x {cfg.directions} direction(s))")
    return None


def make_input(cfg: Config) -> np.ndarray:
    """The canonical input (B, T, F) of the case's ``input``: seeded standard normal (``random``, from the
    case's seed), 0, 1, 2, ... in (B, T, F) order (``arange``) or a constant; see :func:`array_dtype`.
    With ``lengths``, steps past a sequence's length hold values too: an implementation must ignore them."""
    shape = (cfg.batch, cfg.timesteps, fed_input_size(cfg))
    if cfg.input == "random":
        x = np.random.default_rng(cfg.seed).standard_normal(shape)
    elif cfg.input == "arange":
        x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    else:
        x = np.full(shape, float(cfg.input))
    return x.astype(array_dtype(cfg))


# --------------------------------------------------------------------------------------
# Canonical weights, initial states and the reference LSTM (NumPy, float64)

GATES = ("i", "f", "g", "o")


def canonical_weights(cfg: Config) -> dict[str, np.ndarray]:
    """Canonical weights (names and shapes of :func:`canonical_params`, gate order i, f, g, o),
    uniform in (-1/sqrt(H), 1/sqrt(H)) like torch's and Keras's defaults, from the case's seed; W, U
    and b are constants where ``kernel_init``, ``recurrent_init`` or ``bias_init`` says so (the random
    ones are drawn all the same, so the others do not change), and ``unit_forget_bias`` sets the
    forget gate's block of b to 1.0 (Keras: ``[init(H), ones(H), init(2H)]``)."""
    rng = np.random.default_rng([cfg.seed, 1])
    weights = {}
    for name, shape in canonical_params(cfg):
        H = cfg.layer_hidden(int(name.split("/", 1)[0].removeprefix("layer")))
        k = 1.0 / np.sqrt(max(H, 1))             # (no units: no weights to draw)
        weights[name] = value = rng.uniform(-k, k, shape)
        init = _INITS.get(name.rsplit("/", 1)[1])
        if init and getattr(cfg, init) != "random":
            value[...] = float(getattr(cfg, init))
        if cfg.unit_forget_bias and name.endswith("/b"):
            value[H:2 * H] = 1.0
    return weights


_INITS = {"W": "kernel_init", "U": "recurrent_init", "b": "bias_init"}   # canonical weight -> its field


def initial_states(cfg: Config) -> list[tuple[np.ndarray | None, np.ndarray | None]] | None:
    """(h0 (B, H'), c0 (B, H)) per layer, then direction, when the case gives initial states. The
    ``feed_state_*`` fields change the batch, width or number of entries of both or one of them
    (``feed_state_only``); where h and c then have different numbers of entries, the shorter one's
    missing entries are None (only an adapter that stacks h and c apart expresses that)."""
    if cfg.initial_state == "none":
        return None
    rng = np.random.default_rng([cfg.seed, 2])
    constant = {"zeros": 0.0, "ones": 1.0}.get(cfg.initial_state, cfg.initial_state)
    make = (lambda shape: rng.uniform(-0.5, 0.5, shape)) if constant == "random" else \
        (lambda shape: np.full(shape, float(constant)))
    counts = {role: fed_state_entries(cfg, role) for role in ("h", "c")}
    return [tuple(make(fed_state_shape(cfg, r, k)) if k < counts[r] else None for r in ("h", "c"))
            for k in range(max(counts.values()))]


def fed_state_entries(cfg: Config, role: str) -> int:
    """How many (layer, direction) entries the initial ``role`` ("h" or "c") given has: one per layer and
    direction, unless ``feed_state_layers`` says otherwise for it."""
    if cfg.feed_state_layers is not None and cfg.feed_state_only in ("both", role):
        return cfg.feed_state_layers
    return cfg.num_layers * cfg.directions


def fed_state_shape(cfg: Config, role: str, entry: int) -> tuple[int, int]:
    """(batch, width) of entry ``entry`` (layer * directions + direction) of the initial ``role`` given:
    (B, H') or (B, H) of its layer (entries past the stack's: the top layer's), unless ``feed_state_batch`` or
    ``feed_state_hidden`` says otherwise for it."""
    layer = min(entry // cfg.directions, cfg.num_layers - 1)
    B, W = cfg.batch, hidden_out(cfg, layer) if role == "h" else cfg.layer_hidden(layer)
    if cfg.feed_state_only in ("both", role):
        B = B if cfg.feed_state_batch is None else cfg.feed_state_batch
        W = W if cfg.feed_state_hidden is None else cfg.feed_state_hidden
    return B, W


def valid_mask(cfg: Config) -> np.ndarray:
    """(B, T) booleans: which steps of each sequence are real (``mask``, or ``lengths``' right padding; all of
    them without either)."""
    if cfg.mask is not None:
        return np.array(cfg.mask, dtype=bool).reshape(cfg.batch, cfg.timesteps)
    lengths = cfg.lengths or (cfg.timesteps,) * cfg.batch
    return np.arange(cfg.timesteps)[None, :] < np.asarray(lengths)[:, None]


def drawn_at_random(cfg: Config) -> str | None:
    """Why the outputs are not a function of the case (dropout in training draws random masks), or None."""
    rates = {n: getattr(cfg, n) for n in ("dropout", "recurrent_dropout", "layer_dropout") if getattr(cfg, n)}
    if cfg.training and rates:
        return ("training with " + ", ".join(f"{n} {v:g}" for n, v in rates.items()) + ": each framework draws "
                "its own random dropout masks, so the values are not comparable (shapes, dtypes and states are)")
    return None


def first_and_last_valid(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence, its first and last real step (-1 for a sequence with none): where a forward
    direction's final output is (the last), and a backward one's (the first)."""
    mask = valid_mask(cfg)
    T = cfg.timesteps
    if T == 0:
        return np.full(cfg.batch, -1), np.full(cfg.batch, -1)
    none = ~mask.any(axis=1)
    return np.where(none, -1, mask.argmax(axis=1)), np.where(none, -1, T - 1 - mask[:, ::-1].argmax(axis=1))


@dataclass
class Forward:
    """The reference result: canonical output and states, and the top layer's per-direction outputs
    (time order, zeros at padded steps).

    The reference streams layer by layer (see :func:`forward`), so only the top layer's outputs are
    kept: ``layer_outputs`` gives them at ``[num_layers - 1]`` and ``None`` for the layers below.
    """

    output: np.ndarray
    states: list[tuple[np.ndarray, np.ndarray]]             # every layer and direction, even without return_state
    top_outputs: list[np.ndarray]                            # [direction] -> (B, T, H'), the top layer's
    call_outputs: list[np.ndarray] | None = None             # every call's output, in order (calls > 1)

    @property
    def layer_outputs(self) -> list[list[np.ndarray] | None]:
        """[layer][direction] -> (B, T, H'): the top layer's only (the layers below are not kept)."""
        layers = len(self.states) // len(self.top_outputs)
        return [None] * (layers - 1) + [self.top_outputs]


ACTIVATIONS = {                                   # the cell options' named functions, in float64
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "hard_sigmoid": lambda z: np.clip(z / 6.0 + 0.5, 0.0, 1.0),
    "relu": lambda z: np.maximum(z, 0.0),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),   # alpha 1: Keras's and jax.nn's default
    "linear": lambda z: np.array(z, copy=True),   # (a new array: h = o * act(c) is computed in place)
}


def _sigmoid_(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))``, in place."""
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def _direction(cfg, x, mask, w, init, backward: bool, out: np.ndarray, out_batch_major: bool,
               deadline: float | None = None):
    """One direction of one layer over ``x`` (T, B, F), time-major so that each step's rows are
    contiguous for BLAS: writes its outputs in time order into ``out``, (B, T, H') with
    ``out_batch_major`` else (T, B, H'), which must hold zeros (padded steps are left as they are),
    and returns the final (h, c). Per step it allocates only (B, H)-sized temporaries; the gate
    pre-activations go to two (B, 4H) buffers reused for every step."""
    T, B = x.shape[:2]
    Hp, H = w["U"].shape[0], w["U"].shape[1] // 4          # this layer's (sizes may differ per layer)
    if init is None:
        h, c = np.zeros((B, Hp)), np.zeros((B, H))
    else:
        h, c = np.array(init[0], np.float64), np.array(init[1], np.float64)
    W, U, b, R = w["W"], w["U"], w.get("b"), w.get("R")
    z, zh = np.empty((B, 4 * H)), np.empty((B, 4 * H))
    plain = cfg.activation == "tanh" and cfg.recurrent_activation == "sigmoid"   # in place, the common case
    act, gate = ACTIVATIONS[cfg.activation], ACTIVATIONS[cfg.recurrent_activation]
    every = mask.all(axis=0)                     # (T,) steps where every sequence is valid
    for t in (range(T - 1, -1, -1) if backward else range(T)):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the float64 reference took longer than the run timeout (--run-timeout)")
        np.matmul(x[t], W, out=z)
        np.matmul(h, U, out=zh)
        z += zh
        if b is not None:
            z += b
        if plain:
            _sigmoid_(z[:, :2 * H])              # i, f
            np.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])   # g
            _sigmoid_(z[:, 3 * H:])              # o
        else:
            z[:, :2 * H] = gate(z[:, :2 * H])
            z[:, 2 * H:3 * H] = act(z[:, 2 * H:3 * H])
            z[:, 3 * H:] = gate(z[:, 3 * H:])
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        c_new = f * c
        c_new += i * g
        h_new = np.tanh(c_new) if plain else act(c_new)
        h_new *= o
        if R is not None:
            h_new = h_new @ R
        dst = out[:, t] if out_batch_major else out[t]
        if every[t]:
            h, c = h_new, c_new
            dst[...] = h
        else:                                    # padded steps leave the state as it was and output zeros
            m = mask[:, t][:, None]
            h, c = np.where(m, h_new, h), np.where(m, c_new, c)
            np.copyto(dst, h, where=m)
    return h, c


def _merge_into(cfg, outs: list[np.ndarray], keep: bool) -> np.ndarray:
    """Merge the directions' outputs (sum, mul, ave); in place in ``outs[0]`` unless ``keep``."""
    a, b = outs
    res = a.copy() if keep else a
    if cfg.merge_mode == "mul":
        res *= b
    else:
        res += b
        if cfg.merge_mode == "ave":
            res /= 2
    return res


def forward(cfg: Config, x: np.ndarray, weights: dict[str, np.ndarray],
            init: list[tuple[np.ndarray, np.ndarray]] | None = None, deadline: float | None = None) -> Forward:
    """The case's ``calls`` consecutive calls on ``x``, each starting from the states the previous one
    ended with (the first, and each call in ``resets``, from ``init``): the last call's output and states
    (see :func:`forward_once`), with every call's output in ``call_outputs`` when there are several."""
    state, outputs = init, []
    for call in range(1, cfg.calls + 1):
        if call in (cfg.resets or ()):
            state = init
        result = forward_once(cfg, x, weights, state, deadline)
        state = result.states
        outputs.append(result.output)
    result.call_outputs = outputs if cfg.calls > 1 else None
    return result


def forward_once(cfg: Config, x: np.ndarray, weights: dict[str, np.ndarray],
                 init: list[tuple[np.ndarray, np.ndarray]] | None = None, deadline: float | None = None) -> Forward:
    """The canonical LSTM (DESIGN.md, "Canonical semantics") in float64, on canonical input (B, T, F).

    The backward direction (and ``go_backwards``) reads each sequence's valid steps in reverse and
    puts its outputs back in time order; with ``lengths`` or ``mask`` a masked step keeps the state as it
    was and its output is zeros (so a sequence's state is the one after its last real step, in reading
    order); layer l > 0 reads layer l-1's merged output.

    Memory is streamed: besides ``weights``, it holds the layer's input sequence (the float64 input,
    then the layer below's merged output) and the layer's output sequence, never more layers than
    those two, plus every layer's final (h, c) and two (B, 4H) step buffers. With concat the
    directions write straight into their halves of the merged output. Sequences are time-major
    inside (a step's rows contiguous for BLAS: ten times faster than reading (B, T, F) strided);
    the top layer writes the canonical batch-major output directly. Peak, measured with
    ``tracemalloc`` (``tests/test_reference.py``, ``tests/test_limits_memory.py``): with
    S = B·T·max(in, D·H') elements of the widest sequence, about 2·S (sum, mul, ave: 1.5·S, the
    layer's input and both directions) plus the states and 2·B·4H, whatever the number of layers:
    B=32, T=500, in=H=64, bidirectional (S·8 = 16.4 MB): 33.2 MB for 4 layers and 34.0 MB for 16,
    where keeping every layer's outputs took 115 MB and 312 MB. ``spec.case_cost`` bounds it.
    Time is bounded by ``deadline`` (``time.monotonic()``; the run timeout where the suite calls it):
    past it, :class:`TimeoutError`.
    """
    mask = valid_mask(cfg)
    B, T, D, L = cfg.batch, cfg.timesteps, cfg.directions, cfg.num_layers
    names = direction_names(cfg)
    # the layer's input sequence, time-major (T, B, F): an own float64 copy, zeros at padded steps
    seq = np.array(np.asarray(x).transpose(1, 0, 2), np.float64, order="C")
    if not mask.all():
        seq[~mask.T] = 0.0
    states: list[tuple[np.ndarray, np.ndarray]] = []
    outs: list[np.ndarray] = []
    concat = side_by_side(cfg)
    for layer in range(L):
        top = layer == L - 1                     # writes (B, T, .), the canonical layout; the others (T, B, .)
        shape, Hp = (B, T) if top else (T, B), hidden_out(cfg, layer)
        if concat:
            merged = np.zeros(shape + (2 * Hp,))
            outs = [merged[..., :Hp], merged[..., Hp:]]
        else:
            outs = [np.zeros(shape + (Hp,)) for _ in names]
        for d, name in enumerate(names):
            k = layer * D + d
            w = {n.rsplit("/", 1)[1]: v for n, v in weights.items() if n.startswith(f"layer{layer}/{name}/")}
            states.append(_direction(cfg, seq, mask, w, None if init is None else init[k],
                                     backward=reads_backwards(cfg, name), out=outs[d],
                                     out_batch_major=top, deadline=deadline))
        del seq                                  # the layer below's output: no longer needed
        if D == 1:
            seq = outs[0]
        elif concat:
            seq = merged
        else:                                    # padded steps are zeros in both, so in the merge too
            seq = _merge_into(cfg, outs, keep=top)
        if not top:
            outs = []                            # (the merge is in seq; the backward half goes now)
    if cfg.return_sequences:
        output = seq
    else:   # each direction's final hidden state of the top layer, merged
        finals = [h for h, _ in states[(L - 1) * D:]]
        if D == 1:
            output = finals[0]
        elif concat:
            output = np.concatenate(finals, axis=-1)
        else:
            output = _merge_into(cfg, finals, keep=True)
    return Forward(output=output, states=states, top_outputs=outs)


def to_native_layout(cfg: Config, x: np.ndarray) -> np.ndarray:
    """Canonical (B, T, F) -> the layout the case asks the implementation to be fed (with ``batch_shape``,
    (*batch_shape, T, F): the batch split into its leading axes, in order)."""
    if cfg.batch_shape is not None:
        return np.ascontiguousarray(x.reshape(cfg.batch_shape + x.shape[1:]))
    if cfg.layout == "time_major":
        return np.ascontiguousarray(x.transpose(1, 0, 2))
    if cfg.layout == "unbatched":
        return np.ascontiguousarray(x[0])
    return x


def native_input_shape(cfg: Config) -> tuple[int, ...]:
    B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
    if cfg.batch_shape is not None:
        return (*cfg.batch_shape, T, F)
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
        "rejects": rejects(cfg),
    }
