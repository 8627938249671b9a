"""flax-linen: ``flax.linen.RNN(flax.linen.LSTMCell(H), return_carry=True)``, one module per layer.

Native facts this adapter maps: ``nn.RNN(..., return_carry=True)`` returns ``(carry, outputs)``
and the ``LSTMCell`` carry is ``(c, h)`` -- c first, the reverse of the canonical ``(h, c)``;
``nn.Bidirectional(..., return_carry=True)`` returns ``((carry_fwd, carry_bwd), merged_outputs)``
with the backward outputs put back in original time order; there is no ``return_sequences`` /
``return_state`` switch (the whole sequence is always returned, the carry with ``return_carry``);
there is no stacking switch either, so layers are a Python list of RNN modules applied in
sequence; ``time_major=True`` takes ``(T, B, F)``; a ``(T, F)`` input has no batch axis anywhere.
``LSTMCell`` has no projection and always has a bias (its hidden Dense layers hi/hf/hg/ho use
``use_bias=True``, the input Dense layers ii/if/ig/io none: one bias vector per layer and
direction). ``Bidirectional`` passes its *own* ``time_major`` to both RNNs, overriding theirs.

``FlaxLinen(cell="optimized")`` (``flax-linen-optimized``) runs the same construct over
``flax.linen.OptimizedLSTMCell``: the same equations and the same carry ``(c, h)``, and -- checked
against flax's own variable tree, not assumed -- the *same* parameter tree as ``LSTMCell`` (its
docstring: "The parameters are compatible with LSTMCell"): per-gate ``DenseParams`` named
``ii/if/ig/io`` (kernel only) and ``hi/hf/hg/ho`` (kernel and bias). The fusion happens at call
time: it concatenates the four input kernels into one ``(in, 4H)`` and the four hidden kernels
into one ``(H, 4H)`` in gate order i, f, g, o and does one matmul each per step. So the weight
mapping below serves both cells unchanged; only the rounding of the fused matmul can differ.

Weights: one Dense per gate. Canonical ``W (in, 4H)``, ``U (H, 4H)``, ``b (4H)`` (gates i, f, g, o)
map block by block, with no transpose (flax kernels are ``(in, out)`` like the canonical ones):
``W[:, k*H:(k+1)*H] -> cell/i{k}/kernel``, ``U[:, block] -> cell/h{k}/kernel``,
``b[block] -> cell/h{k}/bias`` for k in i, f, g, o, under ``params/layers_{l}`` (one direction) or
``params/layers_{l}/{forward_rnn|backward_rnn}`` (``Bidirectional``).

Call arguments: lengths are ``seq_lengths`` (``RNN`` and ``Bidirectional``; flax selects the carry at
each sequence's last valid step but does not zero, or stop computing, the outputs at padded steps);
initial states are ``initial_carry=(c0, h0)`` per RNN and ``((c0_f, h0_f), (c0_b, h0_b))`` for
``Bidirectional``; ``go_backwards`` is ``nn.RNN(reverse=True, keep_order=True)`` (reverse=True alone
returns the outputs in reading order; keep_order=True flips them back to time order, as
``Bidirectional`` does for its backward RNN).

``cell_api`` replaces each ``nn.RNN`` with a small module holding the same cell as ``cell`` (so the
parameter tree is the same) that steps it by hand, ``carry, y = cell(carry, x_t)`` for every time step
(:func:`step_by_hand`); ``calls`` > 1 feeds each call's carries back as ``initial_carry`` (``resets``: the
first call's again). Flax's cells have no dropout and no training mode. ``merge_mode: none`` is
``Bidirectional(merge_fn=lambda a, b: (a, b))`` (the outputs a tuple); ``batch_shape`` feeds
``(*batch_shape, T, F)`` (seq_lengths and carries shaped like the batch) and reshapes the results back;
a native ``keep_order: false`` with ``go_backwards`` returns the outputs in reading order, flipped back.
"""

from __future__ import annotations

import time

import numpy as np

from ..reference import array_dtype, direction_names, fed_input_size, fed_state_shape, initial_states, to_native_layout
from ..spec import Config
from . import jax_cache
from .base import Impl, Observation, dtype_name, native as native_call, per_layer_unsupported, placeholder, returned

# cell choice -> the flax.linen cell class
_CELLS = {"plain": "LSTMCell", "optimized": "OptimizedLSTMCell"}

# merge_mode -> (merge_fn source shown in obs.normalization, numpy equivalent for the final h)
_MERGE = {
    "concat": ("flax default merge_fn (concatenate on the last axis)", lambda a, b: np.concatenate([a, b], -1)),
    "sum": ("merge_fn=lambda a, b: a + b", lambda a, b: a + b),
    "mul": ("merge_fn=lambda a, b: a * b", lambda a, b: a * b),
    "ave": ("merge_fn=lambda a, b: (a + b) / 2", lambda a, b: (a + b) / 2),
    # merge_mode none: the two outputs returned apart (a tuple), canonically side by side
    "none": ("merge_fn=lambda a, b: (a, b) (the outputs apart)", lambda a, b: np.concatenate([a, b], -1)),
}
_MERGE_FN = {"sum": lambda a, b: a + b, "mul": lambda a, b: a * b, "ave": lambda a, b: (a + b) / 2,
             "none": lambda a, b: (a, b)}     # flax's merge_fn per merge_mode (concat: its default)
_GATES = ("i", "f", "g", "o")   # canonical gate order; flax names its Dense layers i{gate} and h{gate}
_RNN_NAMES = ("forward_rnn", "backward_rnn")   # nn.Bidirectional's submodule names, by canonical direction


def _model_key(cfg: Config, device: str) -> tuple:
    """What the native module depends on. Everything else (input size, batch, timesteps, lengths and
    initial-state values, return_sequences/return_state, seed) is an argument or a shape of the
    jitted apply, so configurations that differ only there share one jitted function (jit retraces
    per new shape or argument structure)."""
    return (cfg.hidden_size, cfg.num_layers, cfg.bidirectional, cfg.merge_mode if cfg.bidirectional else None,
            cfg.layout == "time_major", cfg.dtype, cfg.go_backwards, cfg.native, cfg.activation,
            cfg.recurrent_activation, cfg.cell_api, device)


# the case's activations -> jax.nn's functions (by name; linear is the identity); defaults not written
_JAX_ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid", "hard_sigmoid": "hard_sigmoid", "relu": "relu", "elu": "elu",
                    "linear": None}


def cell_functions(cfg: Config) -> dict:
    """The cell's gate_fn / activation_fn for ``cfg`` (only where not flax's defaults), as functions."""
    import jax

    out = {}
    for field, key, default in (("recurrent_activation", "gate_fn", "sigmoid"), ("activation", "activation_fn", "tanh")):
        name = getattr(cfg, field)
        if name != default:
            out[key] = (lambda x: x) if _JAX_ACTIVATIONS[name] is None else getattr(jax.nn, _JAX_ACTIVATIONS[name])
    return out


def flax_unsupported(cfg: Config, api: str) -> str | None:
    """Why flax's ``api`` (``flax.linen.RNN``, ``flax.nnx.RNN``) cannot express the case's masking or
    dropout, or the adapter does not yet express its cell_api with them, or None."""
    stack = per_layer_unsupported(cfg, api, "initial_carry=(c, h), Bidirectional ((c_fw, h_fw), (c_bw, h_bw))")
    if stack:
        return stack
    if cfg.go_backwards and cfg.bidirectional:
        return ("go_backwards with bidirectional: nn.Bidirectional calls its forward RNN with reverse=False and its "
                "backward one with reverse=True, overriding the RNNs' own: the directions cannot be swapped")
    if cfg.batch_shape is not None and cfg.cell_api:
        return ("cell_api with batch_shape: the cell stepped by hand here steps axis 1 of a (B, T, F) input; "
                f"{api} itself takes the leading batch axes")
    if cfg.stacked_cells:
        return (f"stacked_cells is Keras's StackedRNNCells (one RNN over a list of cells); {api} takes one cell, and "
                "flax has no cell that steps a list of cells (cell_api steps each by hand, the same numbers)")
    if cfg.cell_api:
        why = [name for name, on in (("bidirectional", cfg.bidirectional), ("lengths", cfg.lengths is not None),
                                     ("go_backwards", cfg.go_backwards), ("native keywords", cfg.native))
               if on]
        if why:
            return (f"cell_api: the cell stepped by hand (cell(carry, x_t) per step) has no {', '.join(why)}: those "
                    f"are {api}'s")
    rates = [n for n in ("dropout", "recurrent_dropout", "layer_dropout") if getattr(cfg, n)]
    if rates or cfg.training:
        return (f"{api} and its LSTM cells have no dropout and no training mode (no deterministic flag): "
                + (", ".join(rates) if rates else "training") + " has no native equivalent")
    if cfg.mask is not None:
        return (f"{api} takes variable lengths only as seq_lengths (each sequence's real steps a prefix, "
                "right padding); a mask with left padding or gaps has no native form")
    if cfg.zero_output_for_mask:
        return (f"{api} has no option to zero its outputs at padded steps: they are computed from the padding "
                "(\"The output elements corresponding to padding elements are NOT zeroed out\", google/flax#2604)")
    return None


def features_text(cfg: Config) -> str:
    """The hidden size as a construct's words say it: the number, or H with each layer's."""
    return str(cfg.hidden_size) if not cfg.per_layer_sizes else f"H (per layer: {list(cfg.hidden_size)})"


def initial_carry_src(cfg: Config, layer: int = 0) -> str:
    """Source of ``c0`` and ``h0`` as a repro gives them (the ``feed_state_*`` shapes where the case has
    them): zeros, or uniform(-0.5, 0.5) from fixed keys."""
    lines = ""
    constant = {"zeros": 0.0, "ones": 1.0}.get(cfg.initial_state, cfg.initial_state)
    for role, key in (("c", 1), ("h", 2)):
        b, w = fed_state_shape(cfg, role, layer * cfg.directions)
        shape = (w,) if cfg.layout == "unbatched" else (*cfg.batch_shape, w) if cfg.batch_shape else (b, w)
        lines += (f"{role}0 = jax.random.uniform(jax.random.PRNGKey({key}), {shape}, jnp.{cfg.dtype}, -0.5, 0.5)\n"
                  if constant == "random" else f"{role}0 = jnp.full({shape}, {float(constant)!r}, jnp.{cfg.dtype})\n")
    return lines


def by_hand_src(cfg: Config, api: str) -> str:
    """cell_api: the repro's ``ByHand`` module (``api``: ``nn`` or ``nnx``), which steps a cell by hand with
    nn.RNN's call interface, as :func:`step_by_hand` does in the suite."""
    axis = 0 if cfg.layout != "batch_major" else 1
    step = "x[:, t]" if axis == 1 else "x[t]"
    if api == "nn":
        head = ("class ByHand(nn.Module):  # the cell stepped by hand: cell(carry, x_t) for every step\n"
                "    cell: nn.Module\n\n")
        make = "self.cell.initialize_carry(jax.random.PRNGKey(0), step_shape)"
    else:
        head = ("class ByHand(nnx.Module):  # the cell stepped by hand: cell(carry, x_t) for every step\n"
                "    def __init__(self, cell):\n        self.cell = cell\n\n")
        make = "self.cell.initialize_carry(step_shape, nnx.Rngs(0))"
    return (head +
            "    def __call__(self, x, initial_carry=None):\n"
            f"        steps = [{step} for t in range(x.shape[{axis}])]\n"
            f"        step_shape = x.shape[:{axis}] + x.shape[{axis + 1}:]\n"
            f"        carry = initial_carry if initial_carry is not None else {make}\n"
            "        outs = []\n"
            "        for x_t in steps:\n"
            "            carry, y = self.cell(carry, x_t)\n"
            "            outs.append(y)\n"
            "        if not outs:  # no time steps: the carry as given, no outputs\n"
            "            h = carry[1]\n"
            f"            return carry, jnp.zeros(h.shape[:{axis}] + (0,) + h.shape[{axis}:], h.dtype)\n"
            f"        return carry, jnp.stack(outs, axis={axis})  # like RNN(return_carry=True)\n\n")


def step_by_hand(cell, x, initial_carry, time_axis: int, initial_carry_of):
    """cell_api: ``cell(carry, x_t)`` for every time step of ``x`` in a Python loop, as a flax user steps a
    cell by hand: ``(final carry, outputs stacked on time_axis)``, like ``RNN(return_carry=True)``.
    ``initial_carry_of(x_t)`` makes the carry when none is given (the cell's own initialize_carry)."""
    import jax.numpy as jnp

    # int(): a Python loop needs the number of steps; a symbolic one (infer) is jax's to refuse
    steps = [x[:, t] if time_axis == 1 else x[t] for t in range(int(x.shape[time_axis]))]
    step_shape = x.shape[:time_axis] + x.shape[time_axis + 1:]
    carry = initial_carry if initial_carry is not None else initial_carry_of(jnp.zeros(step_shape, x.dtype))
    outs = []
    for x_t in steps:
        carry, y = cell(carry, x_t)
        outs.append(y)
    if not outs:        # no time steps: the carry as it was given, and an output sequence of none
        h = carry[1]
        return carry, jnp.zeros(h.shape[:time_axis] + (0,) + h.shape[time_axis:], h.dtype)
    return carry, jnp.stack(outs, axis=time_axis)


def cell_functions_src(cfg: Config, module: str = "jax.nn") -> str:
    """:func:`cell_functions` as source after the cell's other arguments."""
    out = ""
    for field, key, default in (("recurrent_activation", "gate_fn", "sigmoid"), ("activation", "activation_fn", "tanh")):
        name = getattr(cfg, field)
        if name != default:
            out += f", {key}=" + ("lambda x: x" if _JAX_ACTIVATIONS[name] is None else f"{module}.{_JAX_ACTIVATIONS[name]}")
    return out


def native_src(cfg: Config, impl_id: str) -> str:
    """The case's native keywords for this implementation's RNN constructor, as source after its own
    (keep_order is in :func:`backwards_src`)."""
    return "".join(f", {k}={v!r}" for k, v in cfg.native_for(impl_id).items() if k != "keep_order")


def native_kwargs(cfg: Config, impl_id: str) -> dict:
    """The case's native RNN keywords, but keep_order (see :func:`backwards_kwargs`)."""
    return {k: v for k, v in cfg.native_for(impl_id).items() if k != "keep_order"}


def keeps_order(cfg: Config, impl_id: str) -> bool:
    """go_backwards: whether the RNN returns its outputs in time order (keep_order=True, the adapter's choice)
    or in reading order, last time step first (the case's native keep_order: false)."""
    return bool(cfg.native_for(impl_id).get("keep_order", True))


def backwards_kwargs(cfg: Config, impl_id: str) -> dict:
    """go_backwards as the RNN's keywords: reverse=True, keep_order as :func:`keeps_order` says."""
    return {"reverse": True, "keep_order": keeps_order(cfg, impl_id)} if cfg.go_backwards else {}


def backwards_src(cfg: Config, impl_id: str) -> str:
    return "".join(f", {k}={v!r}" for k, v in backwards_kwargs(cfg, impl_id).items())


def _placeholder(s) -> np.ndarray:
    """Shape-only mode: a returned ShapeDtypeStruct as a :func:`placeholder` of its shape (no numbers)."""
    return placeholder(s.shape, dtype_name(s.dtype))


def _placeholder_of(shape) -> np.ndarray:
    return np.broadcast_to(np.zeros((), np.float32), tuple(shape))


class _Inferred:
    """A returned ShapeDtypeStruct with each symbolic dimension expression jax left in its shape as None."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


def _unknown_as_none(s) -> _Inferred:
    return _Inferred(tuple(int(d) if isinstance(d, (int, np.integer)) else None for d in s.shape), s.dtype)


def _symbol_names(cfg: Config, unknown: tuple[str, ...]) -> list[str]:
    """The symbolic dims ``infer`` names: ``b`` (``b0, b1, ...`` with ``batch_shape``; none unbatched) when the
    batch is unknown, ``t`` when the time steps are."""
    names = []
    if "batch" in unknown:
        if cfg.batch_shape is not None:
            names += [f"b{i}" for i in range(len(cfg.batch_shape))] if len(cfg.batch_shape) > 1 else ["b"]
        elif cfg.layout != "unbatched":
            names.append("b")
    if "time" in unknown:
        names.append("t")
    return names


def _dims_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class FlaxLinen(Impl):
    id = "flax-linen"
    requires = ("jax", "flax")
    install_hint = "pip install 'lstm-conformance[flax]'"
    param_formula = "flax"
    env: dict[str, str] = {}

    def __init__(self, cell: str = "plain"):
        if cell not in _CELLS:
            raise ValueError(f"unknown flax.linen LSTM cell {cell!r}; known: {', '.join(_CELLS)}")
        self.cell = cell
        self.cell_cls = _CELLS[cell]          # the flax.linen class name: LSTMCell | OptimizedLSTMCell
        self.id = "flax-linen" if cell == "plain" else f"flax-linen-{cell}"
        self._models: dict = {}   # _model_key -> (model, jitted apply)
        self._shapes: dict = {}   # (_model_key, input_size) -> flax's own abstract variables (eval_shape)
        self._abstract: dict = {}  # abstract signature -> (carries, outputs) ShapeDtypeStructs (run_shapes, infer)
        self._symbols: dict = {}   # "b, t" -> jax.export.symbolic_shape("b, t"), one scope for every trace

    # ---- static half ----
    # the RNN keywords the adapter sets (go_backwards is reverse=True with keep_order=True; the cell is built
    # from the case's fields); a case's other `native:` keywords go to the RNN constructor
    own_keywords = ("cell", "return_carry", "time_major", "reverse", "keep_order")   # (gate_fn, activation_fn: fields)

    def own_keywords_for(self, cfg: Config) -> tuple[str, ...]:
        # go_backwards without lengths: keep_order is free (false: the outputs in reading order, which the
        # normalization flips back to time order; nn.RNN's own reverse test reads them so)
        free = cfg.go_backwards and cfg.lengths is None
        return tuple(k for k in self.own_keywords if not (k == "keep_order" and free))

    def unsupported(self, cfg: Config) -> str | None:
        if cfg.proj_size:
            return (f"flax.linen.{self.cell_cls} has no projection (proj_size={cfg.proj_size}): its h is always "
                    "o * tanh(c) of width features")
        if not cfg.bias:
            return (f"flax.linen.{self.cell_cls} has no use_bias switch: its hidden Dense layers hi/hf/hg/ho always "
                    "have a bias (use_bias=True is hard-coded), so bias=False has no native equivalent")
        return flax_unsupported(cfg, "flax.linen.RNN") or self.native_conflict(cfg)

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        tm = cfg.layout == "time_major"
        layout = {"batch_major": "",
                  "time_major": "x = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major (T, B, F)\n",
                  "unbatched": "x = x[0]  # unbatched (T, F)\n"}[cfg.layout]
        if cfg.batch_shape is not None:
            layout += f"x = x.reshape({tuple(cfg.batch_shape)} + x.shape[1:])  # leading batch axes\n"
        if cfg.dtype in ("float16", "bfloat16"):
            layout += f"x = jnp.asarray(x, jnp.{cfg.dtype})\n"
        backwards = backwards_src(cfg, self.id)

        def rnn_src(param_dtype: str, H: int) -> str:
            cell = (f"nn.{self.cell_cls}(features={H}, dtype=jnp.{cfg.dtype}, "
                    f"param_dtype=jnp.{param_dtype}{cell_functions_src(cfg, 'nn')})")
            if cfg.cell_api:
                return f"ByHand({cell})"
            return (f"nn.RNN({cell}, return_carry=True, time_major={tm}{backwards}"
                    f"{native_src(cfg, self.id)})")

        half = cfg.dtype in ("float16", "bfloat16")
        merge = {"concat": "", "sum": ", merge_fn=lambda a, b: a + b", "mul": ", merge_fn=lambda a, b: a * b",
                 "ave": ", merge_fn=lambda a, b: (a + b) / 2",
                 "none": ", merge_fn=lambda a, b: (a, b)"}.get(cfg.merge_mode, "")

        def layer_src(param_dtype: str, H: int) -> str:
            if cfg.bidirectional:
                return (f"nn.Bidirectional({rnn_src(param_dtype, H)}, {rnn_src(param_dtype, H)}, return_carry=True, "
                        f"time_major={tm}{merge})")
            return rnn_src(param_dtype, H)

        L = cfg.num_layers
        per_layer = cfg.per_layer_sizes          # layers of their own sizes: a list of layers (and carries)
        extra, call = "", ""
        if cfg.lengths is not None:
            extra += (f"seq_lengths = jnp.array({list(cfg.lengths)})"
                      + (f".reshape({tuple(cfg.batch_shape)})" if cfg.batch_shape else "") + "  # valid steps per sequence\n")
            call += ", seq_lengths=seq_lengths"
        if cfg.initial_state != "none":
            for l in range(L if per_layer else 1):
                suffix = f"_{l}" if per_layer else ""
                extra += (initial_carry_src(cfg, l).replace("c0 =", f"c0{suffix} =").replace("h0 =", f"h0{suffix} =")
                          + f"carry{suffix} = (c0{suffix}, h0{suffix})  # {self.cell_cls} carry: c first\n")
                if cfg.bidirectional:
                    extra += f"carry{suffix} = (carry{suffix}, carry{suffix})  # (forward, backward)\n"
            call += ", initial_carry=" + ("carries[l]" if per_layer else "carry")
            if per_layer:
                extra += f"carries = [{', '.join(f'carry_{l}' for l in range(L))}]\n"
        if cfg.bidirectional:
            carry = "((c_fw, h_fw), (c_bw, h_bw))"
            paths = ["[0][0][0]", "[0][0][1]", "[0][1][0]", "[0][1][1]"] + (
                ["[1][0]", "[1][1]"] if cfg.merge_mode == "none" else ["[1]"])
        else:
            carry = "(c, h)"
            paths = ["[0][0]", "[0][1]", "[1]"]
        if per_layer:
            build = "layers = [\n" + "".join(f"    {layer_src(cfg.dtype, cfg.layer_hidden(l))},\n" for l in range(L)) + "]\n"
        elif cfg.bidirectional:
            build = (f"forward = {rnn_src(cfg.dtype, cfg.hidden_size)}\nbackward = {rnn_src(cfg.dtype, cfg.hidden_size)}\n"
                     f"layer = nn.Bidirectional(forward, backward, return_carry=True, time_major={tm}{merge})\n")
        else:
            build = f"layer = {rnn_src(cfg.dtype, cfg.hidden_size)}\n"
        if half:
            build += (f"# {self.cell_cls}'s default recurrent_kernel_init (orthogonal: a QR) has no {cfg.dtype} kernel "
                      f"(jax-ml/jax#30176):\n# random init of the same layer with float32 parameters, cast to "
                      f"{cfg.dtype}\n")
            build += ("init_layers = [\n" + "".join(f"    {layer_src('float32', cfg.layer_hidden(l))},\n"
                                                     for l in range(L)) + "]\n" if per_layer
                      else f"init_layer = {layer_src('float32', cfg.hidden_size)}\n")
        build += extra
        count = "sum(np.size(p) for p in jax.tree_util.tree_leaves(variables))"
        key = f"jax.random.PRNGKey({cfg.seed})"

        def init(inp: str) -> str:
            if half:
                return (f"jax.tree_util.tree_map(lambda p: p.astype(jnp.{cfg.dtype}), "
                        f"{'init_layers[l]' if per_layer else 'init_layer'}.init({key}, {inp}))")
            return f"layer.init({key}, {inp})"

        if cfg.feed_input_size is not None:     # the layer is built for input_size, then fed the other input
            build += f"x_built = jnp.zeros(x.shape[:-1] + ({cfg.input_size},), x.dtype)  # input_size features\n"
        x_built = "x" if cfg.feed_input_size is None else "x_built"
        if L == 1:
            build += (f"variables = {init(x_built)}\n"
                      f"out = layer.apply(variables, x{call})  # (carry, outputs), carry {carry}\n")
            params = f'print("params", {count})\n'
        else:
            loop = (f"for l, layer in enumerate(layers):  # {L} layers of their own sizes" if per_layer
                    else f"for l in range({L}):  # {L} layers")
            build += (f"h, params = x, 0\n"
                      f"{loop}, each reading the previous one's outputs\n"
                      f"    variables = {init('h' if x_built == 'x' else 'h if l else ' + x_built)}\n"
                      f"    params += {count}\n"
                      f"    out = layer.apply(variables, h{call})  # (carry, outputs), carry {carry}\n"
                      f"    h = out[1]\n")
            params = 'print("params", params)\n'
        return (
            "import flax.linen as nn\n"
            "import jax\n"
            "import jax.numpy as jnp\n"
            "import numpy as np\n"
            "\n"
            + ('jax.config.update("jax_enable_x64", True)\n' if cfg.dtype == "float64" else "")
            + f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{array_dtype(cfg)}\")\n"
            + layout + (by_hand_src(cfg, "nn") if cfg.cell_api else "") + build
            + "".join(f'print("out{p}", tuple(out{p}.shape))\n' for p in paths)
            + params)

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        import flax
        import jax
        import jaxlib
        # float64 cases need x64; float32 cases stay float32 (dtype/param_dtype are passed explicitly).
        jax.config.update("jax_enable_x64", True)
        # GPU: XLA's default float32 matmul precision there is TF32-like (reduced); "highest" makes every
        # Dense (which uses the default precision) a full float32 matmul. A no-op on the CPU.
        jax.config.update("jax_default_matmul_precision", "highest")
        jax_cache.enable(jax)
        self._jax = jax
        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__}

    def release(self) -> None:
        """Every jitted apply keeps an XLA executable per shape it has seen, and JAX keeps traces:
        drop the adapter's models and JAX's in-memory caches (the persistent cache on disk stays)."""
        self._models.clear()
        self._shapes.clear()
        self._abstract.clear()
        self._jax.clear_caches()

    def _gpus(self) -> list:
        try:
            return self._jax.devices("gpu")
        except RuntimeError:
            return []

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._gpus() else [])

    def device_name(self, device: str) -> str:
        return self._gpus()[0].device_kind if device == "gpu" else "cpu"

    def _device(self, device: str):
        return self._gpus()[0] if device == "gpu" else self._jax.devices("cpu")[0]

    def _build(self, cfg: Config, device: str):
        """The native construct for ``cfg`` and its jitted apply ``apply(variables, x, seq_lengths,
        initial_carries)``, cached per :func:`_model_key`: the weights are an argument, never baked in."""
        key = _model_key(cfg, device)
        if key in self._models:
            return self._models[key]
        import flax.linen as nn
        import jax
        import jax.numpy as jnp

        dtype = getattr(jnp, cfg.dtype)
        time_major = cfg.layout == "time_major"
        backwards = backwards_kwargs(cfg, self.id)

        cell_cls = getattr(nn, self.cell_cls)

        def rnn(H):
            return nn.RNN(cell_cls(features=H, dtype=dtype, param_dtype=dtype, **cell_functions(cfg)),
                          return_carry=True, time_major=time_major, **backwards, **native_kwargs(cfg, self.id))

        class CellByHand(nn.Module):
            """cell_api: the cell stepped by hand over time (see step_by_hand); its parameters sit under
            ``cell`` as in nn.RNN."""
            cell: nn.Module

            def __call__(self, x, seq_lengths=None, initial_carry=None):
                axis = 0 if (time_major or x.ndim == 2) else 1
                return step_by_hand(self.cell, x, initial_carry, axis,
                                    lambda x_t: self.cell.initialize_carry(jax.random.PRNGKey(0), x_t.shape))

        if cfg.cell_api:
            layers = [CellByHand(cell_cls(features=cfg.layer_hidden(l), dtype=dtype, param_dtype=dtype,
                                          **cell_functions(cfg))) for l in range(cfg.num_layers)]
        elif cfg.bidirectional:
            merge = {} if cfg.merge_mode == "concat" else {"merge_fn": _MERGE_FN[cfg.merge_mode]}
            # Bidirectional passes its own time_major to both RNNs (overriding theirs): set it too.
            layers = [nn.Bidirectional(rnn(cfg.layer_hidden(l)), rnn(cfg.layer_hidden(l)), return_carry=True,
                                       time_major=time_major, **merge) for l in range(cfg.num_layers)]
        else:
            layers = [rnn(cfg.layer_hidden(l)) for l in range(cfg.num_layers)]

        class StackedRNN(nn.Module):
            """Applies the RNN layers in sequence, each with the same ``seq_lengths`` and its own
            ``initial_carry``; returns every layer's carry and the top outputs."""
            layers: tuple

            def __call__(self, x, seq_lengths=None, initial_carries=None):
                carries = []
                for l, layer in enumerate(self.layers):
                    carry, x = layer(x, seq_lengths=seq_lengths,
                                     initial_carry=None if initial_carries is None else initial_carries[l])
                    carries.append(carry)
                return carries, x

        model = StackedRNN(layers=tuple(layers))
        built = self._models[key] = (model, jax.jit(model.apply))
        return built

    def _native_shapes(self, cfg: Config, device: str, model):
        """Flax's own variables tree for ``cfg`` (abstract: ``jax.eval_shape`` of ``model.init``, no
        compute), cached. The mapped weights must match it exactly, so the parameters the observation
        reports are the ones flax itself declares."""
        key = (_model_key(cfg, device), cfg.input_size)
        if key not in self._shapes:
            jax = self._jax
            x = jax.ShapeDtypeStruct((1, 1, cfg.input_size), getattr(jax.numpy, cfg.dtype))
            self._shapes[key] = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
        return self._shapes[key]

    def load_weights(self, cfg: Config, device: str, weights: dict[str, np.ndarray]):
        """Canonical weights -> flax ``variables`` (``{"params": ...}``, cfg.dtype, on ``device``): per gate
        k of i, f, g, o, ``W[:, kH:(k+1)H] -> i{k}/kernel``, ``U[:, kH:(k+1)H] -> h{k}/kernel``,
        ``b[kH:(k+1)H] -> h{k}/bias``; checked against flax's own tree (names, shapes, dtypes)."""
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        jax = self._jax
        model, _ = self._build(cfg, device)
        dev = self._device(device)
        ndtype = np.dtype(getattr(jax.numpy, cfg.dtype))

        def put(a):
            return jax.device_put(np.asarray(a).astype(ndtype), dev)

        params = {}
        for l in range(cfg.num_layers):
            layer = params[f"layers_{l}"] = {}
            H = cfg.layer_hidden(l)
            for d, name in enumerate(direction_names(cfg)):
                w = {k: weights[f"layer{l}/{name}/{k}"] for k in ("W", "U", "b")}
                cell = {}
                for k, gate in enumerate(_GATES):
                    block = slice(k * H, (k + 1) * H)
                    cell[f"i{gate}"] = {"kernel": put(w["W"][:, block])}
                    cell[f"h{gate}"] = {"kernel": put(w["U"][:, block]), "bias": put(w["b"][block])}
                if cfg.bidirectional:
                    layer[_RNN_NAMES[d]] = {"cell": cell}
                else:
                    layer["cell"] = cell
        variables = {"params": params}
        expected = self._native_shapes(cfg, device, model)
        ours = jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), variables)
        theirs = jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), expected)
        if ours != theirs:
            raise ValueError(f"mapped weights do not match flax's own variables: {ours} != {theirs}")
        return variables

    def read_weights(self, cfg: Config, native) -> dict[str, np.ndarray]:
        """flax ``variables`` -> canonical weights (float64): concatenate the per-gate kernels and
        biases in gate order i, f, g, o."""
        out = {}
        for l in range(cfg.num_layers):
            layer = native["params"][f"layers_{l}"]
            for d, name in enumerate(direction_names(cfg)):
                cell = (layer[_RNN_NAMES[d]] if cfg.bidirectional else layer)["cell"]

                def cat(module, param, axis):
                    return np.concatenate([np.asarray(cell[f"{module}{g}"][param], np.float64) for g in _GATES], axis)

                p = f"layer{l}/{name}/"
                out[p + "W"] = cat("i", "kernel", 1)
                out[p + "U"] = cat("h", "kernel", 1)
                out[p + "b"] = cat("h", "bias", 0)
        return out

    def _initial_carries(self, cfg: Config, init, dev):
        """Canonical [(h0, c0)] per layer, then direction -> per layer ``(c0, h0)`` (one direction) or
        ``((c0_f, h0_f), (c0_b, h0_b))`` (Bidirectional); no batch axis for unbatched input."""
        jax = self._jax
        ndtype = np.dtype(getattr(jax.numpy, cfg.dtype))

        def put(a):
            a = np.asarray(a).astype(ndtype)
            if cfg.batch_shape is not None:               # (B, H) -> (*batch_shape, H)
                a = a.reshape(cfg.batch_shape + a.shape[1:])
            return jax.device_put(a[0] if cfg.layout == "unbatched" else a, dev)

        D = cfg.directions
        per_layer = []
        for l in range(cfg.num_layers):
            dirs = [(put(init[l * D + d][1]), put(init[l * D + d][0])) for d in range(D)]
            per_layer.append(tuple(dirs) if D == 2 else dirs[0])
        return per_layer

    @staticmethod
    def _call_output(cfg: Config, out, top_h: list, flip: bool = False) -> np.ndarray:
        """One call's canonical output from the top layer's outputs (merge_mode none: the two apart) and its
        final h per direction, as ``run`` makes ``obs.output``."""
        out = np.concatenate(out, -1) if isinstance(out, tuple) else out
        if cfg.batch_shape is not None:                    # (*batch_shape, ...) -> (B, ...)
            out = out.reshape((cfg.batch,) + out.shape[len(cfg.batch_shape):])
            top_h = [h.reshape(cfg.batch, -1) for h in top_h]
        if not cfg.return_sequences:
            hs = [h[None] if cfg.layout == "unbatched" else h for h in top_h]
            out = _MERGE[cfg.merge_mode][1](*hs) if cfg.directions == 2 else hs[0]
        elif cfg.layout == "unbatched":
            out = out[None]
        elif cfg.layout == "time_major":
            out = out.transpose(1, 0, 2)
        if flip and cfg.return_sequences:                   # keep_order=False: reading order -> time order
            out = out[:, ::-1]
        return out.astype(np.float32, copy=False) if cfg.dtype == "bfloat16" else out

    # Hooks that FlaxNnx (flax_nnx.py) overrides; the native return structure and its normalization
    # below are shared (nnx.RNN / nnx.Bidirectional return the same (carry, outputs) with (c, h) carries).
    _api = "nn"   # how the notes name the module namespace (flax.linen as nn)

    def _apply(self, cfg: Config, device: str, native, x, seq_lengths, carries0):
        """Run the native construct: the jitted ``model.apply(variables, ...)`` -> (carries per layer, outputs)."""
        return self._build(cfg, device)[1](native, x, seq_lengths, carries0)

    def _param_shapes(self, cfg: Config, device: str, native) -> list[tuple[str, tuple]]:
        """(name, shape) of every native parameter, as flax itself declares them (its abstract init)."""
        model, _ = self._build(cfg, device)
        flat = self._jax.tree_util.tree_flatten_with_path(self._native_shapes(cfg, device, model))[0]
        return [("/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path), tuple(v.shape))
                for path, v in flat]

    def _construct(self, cfg: Config, device: str, with_init: bool) -> str:
        time_major = cfg.layout == "time_major"
        backwards = backwards_src(cfg, self.id)
        rnn = (f"nn.RNN(nn.{self.cell_cls}(features={features_text(cfg)}, dtype={cfg.dtype}, param_dtype={cfg.dtype}"
               f"{cell_functions_src(cfg, 'nn')}), "
               f"return_carry=True, time_major={time_major}{backwards}{native_src(cfg, self.id)})")
        if cfg.cell_api:
            layer = (f"ByHand(nn.{self.cell_cls}(features={features_text(cfg)}, dtype={cfg.dtype}, param_dtype={cfg.dtype}"
                     f"{cell_functions_src(cfg, 'nn')})): the cell stepped by hand, carry, y = cell(carry, x_t) for "
                     "every time step (carry from cell.initialize_carry unless given), the y stacked along time")
        elif cfg.bidirectional:
            merge = "" if cfg.merge_mode == "concat" else f", merge_fn=<{cfg.merge_mode}>"
            layer = f"nn.Bidirectional({rnn}, {rnn}{merge}, return_carry=True, time_major={time_major})"
        else:
            layer = rnn
        call = "".join([", seq_lengths=lengths" if cfg.lengths is not None else "",
                        ", initial_carry=carries[l]" if with_init else ""])
        return (f"[{layer}] * {cfg.num_layers} applied in sequence by a small nn.Module, layer l called as "
                f"layer(x{call}); the canonical weights mapped per gate into its variables "
                f"(load_weights, no random init); jax.jit(apply) on {device}")

    def _cell_notes(self, cfg: Config) -> list[str]:
        if self.cell != "optimized":
            return []
        return ["OptimizedLSTMCell keeps LSTMCell's per-gate parameter tree (ii/if/ig/io kernels, hi/hf/hg/ho "
                "kernels and biases) and concatenates it at call time into one (in, 4H) and one (H, 4H) "
                "kernel in gate order i, f, g, o: the weights map per gate exactly as for LSTMCell"]

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        jax = self._jax
        dev = self._device(device)
        t0 = time.perf_counter()
        with native_call("build"):
            native = self.load_weights(cfg, device, weights)
        ndtype = np.dtype(getattr(jax.numpy, cfg.dtype))
        xin = jax.device_put(to_native_layout(cfg, x).astype(ndtype), dev)
        seq_lengths = None if cfg.lengths is None else jax.device_put(
            np.asarray(cfg.lengths, np.int32).reshape(cfg.batch_shape or (cfg.batch,)), dev)   # shaped like the batch
        carries0 = None if init is None else self._initial_carries(cfg, init, dev)
        jax.block_until_ready((xin, seq_lengths, carries0))
        t1 = time.perf_counter()
        with jax.default_device(dev), native_call("call"):
            carries, out, call_outputs = self._calls(
                cfg, lambda c0: jax.block_until_ready(self._apply(cfg, device, native, xin, seq_lengths, c0)),
                carries0, np.asarray)
        t2 = time.perf_counter()
        obs = self._observe(cfg, self._param_shapes(cfg, device, native), init is not None, device, carries, out,
                            call_outputs, np.asarray)
        obs.timings = {"build_s": t1 - t0, "run_s": t2 - t1}
        return obs

    # ---- shape-only mode and symbolic inference: the same construct, jax.eval_shape instead of a computation
    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        """``run``'s observation from ``jax.eval_shape`` of the same apply (every dimension known): the abstract
        variables flax itself declares (no weights), ShapeDtypeStruct inputs, each returned ShapeDtypeStruct a
        :func:`placeholder` for ``run``'s own normalization. Nothing is computed or compiled; the traced result is
        kept per abstract signature (:meth:`_abstract_apply`)."""
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        t0 = time.perf_counter()
        xin, seq_lengths, carries0 = self._abstract_inputs(cfg, init)
        with native_call("build"):
            self._first_trace(cfg, device, xin, seq_lengths, carries0)
            params = self._param_shapes(cfg, device, None)
        t1 = time.perf_counter()
        with native_call("call"):
            carries, out, call_outputs = self._calls(
                cfg, lambda c0: self._abstract_apply(cfg, device, xin, seq_lengths, c0), carries0, _placeholder)
        t2 = time.perf_counter()
        obs = self._observe(cfg, params, init is not None, device, carries, out, call_outputs, _placeholder)
        obs.timings = {"build_s": t1 - t0, "run_s": t2 - t1}
        return obs

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        """``jax.eval_shape`` of the construct ``run`` calls (its abstract variables, calls > 1 fed back) on
        ShapeDtypeStruct inputs whose ``unknown`` dims are ``jax.export.symbolic_shape`` dims; a symbolic
        dimension expression left in a result is recorded as None."""
        reason = self.unsupported(cfg)
        if reason:
            raise NotImplementedError(reason)
        xin, seq_lengths, carries0 = self._abstract_inputs(cfg, initial_states(cfg), unknown)
        with native_call("build"):
            params = self._param_shapes(cfg, device, None)
        with native_call("call"):
            carries, out, _ = self._calls(
                cfg, lambda c0: self._abstract_apply(cfg, device, xin, seq_lengths, c0), carries0, None)
        carries, out = self._jax.tree_util.tree_map(_unknown_as_none, (carries, out))
        notes = [f"inputs as jax.ShapeDtypeStruct: x {_dims_text(xin.shape)}"
                 + ("" if seq_lengths is None else f", seq_lengths {_dims_text(seq_lengths.shape)} int32")
                 + ("" if carries0 is None else ", initial_carry (c, h) of the fed states' shapes")
                 + (f"; unknown dims jax.export.symbolic_shape({', '.join(_symbol_names(cfg, unknown))!r})"
                    if _symbol_names(cfg, unknown) else "; every dim known")]
        if cfg.calls > 1:
            notes.append(f"{cfg.calls} calls, each given the previous call's (abstract) carries as initial_carry")
        return {"api": self._infer_api(), "returns": self._record(cfg, carries, out),
                "param_count": int(sum(np.prod(shape, dtype=int) for _, shape in params)), "notes": notes}

    def _infer_api(self) -> str:
        return ("jax.eval_shape of the jitted flax.linen model.apply (variables: jax.eval_shape(model.init), flax's "
                "own abstract tree) on jax.ShapeDtypeStruct inputs, unknown dims from jax.export.symbolic_shape")

    def _symbolic_dims(self, spec: str) -> tuple:
        """``jax.export.symbolic_shape(spec)``, made once per spec: every trace then sees the same dimension
        variables (one symbolic scope), so a symbolic signature seen before is the same key again."""
        dims = self._symbols.get(spec)
        if dims is None:
            dims = self._symbols[spec] = self._jax.export.symbolic_shape(spec)
        return dims

    def _abstract_inputs(self, cfg: Config, init, unknown: tuple[str, ...] = ()):
        """What ``run`` feeds (x in the native layout, seq_lengths shaped like the batch, the initial carries) as
        ``jax.ShapeDtypeStruct``s; the batch axes (all of them with ``batch_shape``) and the time axis named in
        ``unknown`` are symbolic dims (``b`` or ``b0, b1, ...``, ``t``). A fed state's batch that is not the
        input's stays its number."""
        jax = self._jax
        dtype = np.dtype(getattr(jax.numpy, cfg.dtype))
        sds = jax.ShapeDtypeStruct
        batch = (tuple(cfg.batch_shape) if cfg.batch_shape is not None else
                 () if cfg.layout == "unbatched" else (cfg.batch,))
        T = cfg.timesteps
        names = _symbol_names(cfg, unknown)
        if names:
            syms = dict(zip(names, self._symbolic_dims(", ".join(names))))
            if "t" in syms:
                T = syms.pop("t")
            if syms:
                batch = tuple(syms.values())
        F = fed_input_size(cfg)
        shape = ((T, *batch, F) if cfg.layout == "time_major" and cfg.batch_shape is None else (*batch, T, F))
        xin = sds(shape, dtype)
        seq_lengths = None
        if cfg.lengths is not None:
            seq_lengths = sds(batch if cfg.layout != "unbatched" or cfg.batch_shape is not None else (cfg.batch,),
                              np.dtype(np.int32))
        if init is None:
            return xin, seq_lengths, None

        def put(a):
            n = np.shape(a)[0]
            if cfg.batch_shape is not None:               # (B, H) -> (*batch_shape, H), as run reshapes it
                shape = _placeholder_of(np.shape(a)).reshape(cfg.batch_shape + np.shape(a)[1:]).shape
                return sds((batch if n == cfg.batch else shape[:-1]) + shape[-1:], dtype)
            if cfg.layout == "unbatched":
                return sds(np.shape(a)[1:], dtype)
            return sds(((batch[0] if n == cfg.batch else n),) + np.shape(a)[1:], dtype)

        D = cfg.directions
        per_layer = []
        for l in range(cfg.num_layers):
            dirs = [(put(init[l * D + d][1]), put(init[l * D + d][0])) for d in range(D)]
            per_layer.append(tuple(dirs) if D == 2 else dirs[0])
        return xin, seq_lengths, per_layer

    def _abstract_apply(self, cfg: Config, device: str, xin, seq_lengths, carries0, keep: bool = True):
        """``jax.eval_shape`` of the jitted apply ``run`` calls, on the abstract variables: (carries, outputs) as
        ShapeDtypeStructs. ``keep``: the result is kept per abstract signature (the construct's key and every
        input's structure, shapes and dtypes), which is all it depends on; so is the framework's refusal, kept as
        the exception (and its traceback) it raised, raised again."""
        args = (xin, seq_lengths, carries0)
        if not keep:
            return self._eval_shape(cfg, device, *args)
        key = self._signature(cfg, device, args)
        if key not in self._abstract:
            try:
                self._abstract[key] = (self._eval_shape(cfg, device, *args), None)
            except Exception as exc:   # noqa: BLE001 - re-raised now and whenever this signature comes again
                self._abstract[key] = (None, (exc, exc.__traceback__))
        got, refused = self._abstract[key]
        if refused is not None:
            raise refused[0].with_traceback(refused[1])
        return got

    def _signature(self, cfg: Config, device: str, args) -> tuple:
        """What a trace of the apply on the abstract ``args`` depends on: the construct's key and every input's
        structure, shapes (symbolic dims of one scope, :meth:`_symbolic_dims`) and dtypes."""
        leaves, treedef = self._jax.tree_util.tree_flatten(args)
        return (self._abstract_key(cfg, device), treedef, tuple((s.shape, s.dtype) for s in leaves))

    def _first_trace(self, cfg: Config, device: str, xin, seq_lengths, carries0) -> None:
        """Shape-only, a construct whose variables are not known yet: one ``jax.eval_shape`` of flax's own
        ``model.init_with_output`` on the run's abstract inputs gives both flax's variable tree and the first
        call's (carries, outputs), where ``jax.eval_shape(model.init)`` then the apply would trace the module twice.
        Only where the two cannot differ: the input fed has the size the layer is built for (else the variables
        would be made for the fed size, and apply's refusal of it lost). A refusal is not kept: the two traces
        apart then meet it as the apply does."""
        skey = (_model_key(cfg, device), cfg.input_size)
        # (no time steps: the hand-stepped cells never call the cell, so init_with_output would make no variables)
        if cfg.feed_input_size is not None or cfg.timesteps == 0 or skey in self._shapes:
            return
        akey = self._signature(cfg, device, (xin, seq_lengths, carries0))
        if akey in self._abstract:
            return
        jax = self._jax
        model, _ = self._build(cfg, device)
        try:
            out, variables = jax.eval_shape(
                lambda x, lengths, c0: model.init_with_output(jax.random.PRNGKey(0), x, lengths, c0),
                xin, seq_lengths, carries0)
        except Exception:  # noqa: BLE001 - traced again apart, as run's apply meets it
            return
        self._shapes[skey] = variables
        self._abstract[akey] = (out, None)

    def _abstract_key(self, cfg: Config, device: str) -> tuple:
        return (_model_key(cfg, device), cfg.input_size)

    def _eval_shape(self, cfg: Config, device: str, xin, seq_lengths, carries0):
        model, apply = self._build(cfg, device)
        return self._jax.eval_shape(apply, self._native_shapes(cfg, device, model), xin, seq_lengths, carries0)

    def _calls(self, cfg: Config, call, carries0, host):
        """``cfg.calls`` calls of ``call(initial carries) -> (carries, outputs)``, each continuing from the previous
        one's carries (``resets``: the first call's again): the last call's (carries, outputs) and, calls > 1 and
        ``host`` given (a returned array -> NumPy), every call's canonical output."""
        first, call_outputs = carries0, []
        for n in range(1, cfg.calls + 1):                # each call continues from the previous one's carry
            if n in (cfg.resets or ()):
                carries0 = first                         # a reset: the initial carry of call 1 (or none) again
            carries, out = call(carries0)
            carries0 = carries
            if cfg.calls > 1 and host is not None:
                top = carries[-1]                        # (c, h), or ((c_f, h_f), (c_b, h_b))
                hs = [top[1]] if cfg.directions == 1 else [top[0][1], top[1][1]]
                call_outputs.append(self._call_output(cfg, self._jax.tree_util.tree_map(host, out),
                                                      [host(h) for h in hs],
                                                      cfg.go_backwards and not keeps_order(cfg, self.id)))
        return carries, out, call_outputs

    def _record(self, cfg: Config, carries, out) -> list[dict]:
        """The native returns (``returned``) of the top layer's ``(carry, outputs)`` then every lower layer's carry,
        from the native trees (arrays, ShapeDtypeStructs, or shapes with None for an unknown dim)."""
        L, D, dirs = cfg.num_layers, cfg.directions, direction_names(cfg)

        def carry_returns(prefix: str, l: int, top: bool) -> list[dict]:
            res = []
            for d in range(D):
                p = f"{prefix}[{d}]" if D == 2 else prefix
                c, h = carries[l][d] if D == 2 else carries[l]
                res.append(returned(p + "[0]", "c", c, top=top, layer=l, direction=dirs[d]))
                res.append(returned(p + "[1]", "h", h, top=top, layer=l, direction=dirs[d]))
            return res

        if isinstance(out, tuple):          # merge_mode none: (forward outputs, backward outputs)
            rets = carry_returns("[0]", L - 1, True) + [
                returned(f"[1][{d}]", "output", o, top=True, layer=L - 1, direction=dirs[d]) for d, o in enumerate(out)]
        else:
            rets = carry_returns("[0]", L - 1, True) + [returned("[1]", "output", out, top=True, layer=L - 1)]
        for l in range(L - 1):
            rets += carry_returns(f"layers[{l}]", l, False)
        return rets

    def _observe(self, cfg: Config, params, with_init: bool, device: str, carries, out, call_outputs,
                 host) -> Observation:
        """The observation of the last call's native ``(carries, outputs)``: the returns as native, then each
        array made NumPy by ``host`` (``np.asarray``, or a :func:`placeholder` in shape-only mode) and normalized
        to the canonical output and states."""
        L, D = cfg.num_layers, cfg.directions
        time_major = cfg.layout == "time_major"
        obs = Observation(
            construct=self._construct(cfg, device, with_init),
            params=[{"name": name, "shape": list(shape)} for name, shape in params],
            param_count=int(sum(np.prod(shape, dtype=int) for _, shape in params)),
            returns=self._record(cfg, carries, out),
        )
        carries, out = self._jax.tree_util.tree_map(host, (carries, out))
        # (c, h) per direction, per layer, in native order
        per_dir = [list(carries[l]) if D == 2 else [carries[l]] for l in range(L)]
        if isinstance(out, tuple):          # merge_mode none: (forward outputs, backward outputs)
            out = np.concatenate(out, -1)

        notes = obs.normalization
        if cfg.calls > 1:
            notes.append(f"{cfg.calls} calls on the same input, each given the previous call's carries as "
                         "initial_carry (flax's own way to continue a sequence)"
                         + (f"; call(s) {', '.join(map(str, cfg.resets))} given the first call's initial carry again "
                            "(a reset)" if cfg.resets else "") + "; the last call's returns are compared")
        obs.call_outputs = call_outputs or None
        notes.append("no stacking switch: layer l's carry is StackedRNN's carries[l]; the native return of the "
                     "top layer is (carry, outputs)")
        notes += self._cell_notes(cfg)
        if cfg.bidirectional:
            notes.append(f"bidirectional: carry is (carry_fwd, carry_bwd); outputs merged by {_MERGE[cfg.merge_mode][0]}")
        if with_init:
            notes.append("initial states: canonical (h0, c0) per layer and direction fed as initial_carry=(c0, h0)"
                         + (" per direction, ((c0_f, h0_f), (c0_b, h0_b)) per Bidirectional layer" if D == 2 else
                            " per layer")
                         + (", without the batch axis (unbatched)" if cfg.layout == "unbatched" else ""))
        if cfg.lengths is not None:
            notes.append(f"lengths fed as seq_lengths={list(cfg.lengths)} to every layer: flax's carry is the state "
                         "at each sequence's last valid step; the outputs at padded steps are left as flax "
                         "returns them (it does not zero them)")
        if cfg.go_backwards and keeps_order(cfg, self.id):
            notes.append(f"go_backwards: {self._api}.RNN(reverse=True, keep_order=True) reads each sequence's "
                         "valid steps in reverse and returns the outputs already in time order (keep_order), so "
                         "no flip; its carry is the state after reading time step 0")
        elif cfg.go_backwards:
            notes.append(f"go_backwards: {self._api}.RNN(reverse=True, keep_order=False) reads the sequence in reverse; "
                         "its carry is the state after reading time step 0")
        notes.append("carry (c, h) -> canonical (h, c)")
        if cfg.layout == "unbatched":
            out = out[None]
            per_dir = [[(c[None], h[None]) for c, h in dirs_] for dirs_ in per_dir]
            notes.append("unbatched (T, F) input: add a batch axis of 1 to outputs and to every carry's c and h")
        elif time_major:
            out = out.transpose(1, 0, 2)
            notes.append("time_major=True outputs are (T, B, F): transpose to (B, T, F)")
        elif cfg.batch_shape is not None:
            nb = len(cfg.batch_shape)
            out = out.reshape((cfg.batch,) + out.shape[nb:])
            per_dir = [[(c.reshape(cfg.batch, -1), h.reshape(cfg.batch, -1)) for c, h in dirs_] for dirs_ in per_dir]
            notes.append(f"input fed as {tuple(cfg.batch_shape)} + (T, F) (leading batch axes; seq_lengths and carries "
                         "shaped like them); outputs and carries reshaped back to one batch axis (B, ...), in order")
        if cfg.go_backwards and not keeps_order(cfg, self.id):
            out = np.ascontiguousarray(out[:, ::-1])
            notes.append("keep_order=False: the outputs come back in reading order (the last time step's first): "
                         "flipped along time to time order")
        if cfg.dtype == "bfloat16":
            out = out.astype(np.float32, copy=False)      # (a shape-only placeholder is float32 already)
            per_dir = [[(c.astype(np.float32, copy=False), h.astype(np.float32, copy=False)) for c, h in dirs_]
                       for dirs_ in per_dir]
            notes.append("bfloat16 results cast to float32 (exact; NumPy has no bfloat16 of its own)")
        if cfg.return_sequences:
            obs.output = out
        else:
            hs = [per_dir[L - 1][d][1] for d in range(D)]
            obs.output = _MERGE[cfg.merge_mode][1](*hs) if D == 2 else hs[0]
            notes.append("no return_sequences switch: output = the top layer's final h from the carry"
                         + (f" of each direction, merged like merge_mode={cfg.merge_mode!r}" if D == 2 else "")
                         + (" (for the backward direction that is outputs at time 0, not outputs[:, -1])"
                            if D == 2 or cfg.go_backwards else "")
                         + (" (with lengths: the state at each sequence's last valid step)" if cfg.lengths else ""))
        obs.states = [(per_dir[l][d][1], per_dir[l][d][0]) for l in range(L) for d in range(D)]
        notes.append("states: carries[l][d] = (c, h) -> (h, c), layers then directions (forward, backward)"
                     + ("" if cfg.return_state else " (the construct returns its carries with return_carry=True "
                                                    "always, so they are compared although the case did not ask "
                                                    "for them)"))
        return obs
