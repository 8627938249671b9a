"""flax-nnx: ``flax.nnx.RNN(flax.nnx.LSTMCell(in, H, rngs=...), return_carry=True)``, one module per
layer; ``flax-nnx-optimized`` the same over ``flax.nnx.OptimizedLSTMCell``.

NNX is flax's eager, object-oriented API: a module is built (and randomly initialised) by its
constructor, with ``rngs=nnx.Rngs(...)``, and holds its parameters as ``nnx.Param`` attributes. So,
unlike linen, the cell needs its input size up front (``in_features``): the module is built per
input size (layer ``l > 0`` reads the previous layer's merged output). Its call conventions are
linen's: ``nnx.RNN(..., return_carry=True)`` returns ``(carry, outputs)``, the LSTM carry is
``(c, h)`` (c first), ``nnx.Bidirectional(..., return_carry=True)`` returns
``((carry_fwd, carry_bwd), merged_outputs)`` and passes its own ``time_major`` to both RNNs;
``seq_lengths=``, ``initial_carry=``, ``reverse=``/``keep_order=`` and ``time_major=`` exist and
behave as in linen (the same ``flip_sequences`` and last-carry selection); no return_sequences /
return_state switch and no stacking switch (layers are an ``nnx.List`` applied in sequence). The
native return structure and its normalization are therefore shared with :class:`FlaxLinen`.

Parameters (checked against the module's own ``nnx.state(model, nnx.Param)``):

* ``nnx.LSTMCell``: per-gate ``Linear`` layers like linen's, but the forget gate's input layer is
  ``if_`` (``if`` is a Python keyword; linen names it ``if``): ``ii/if_/ig/io`` kernels ``(in, H)``,
  no bias; ``hi/hf/hg/ho`` kernels ``(H, H)`` with bias ``(H,)``. ``W[:, kH:(k+1)H] -> i{k}``,
  ``U[:, block] -> h{k}/kernel``, ``b[block] -> h{k}/bias``.
* ``nnx.OptimizedLSTMCell``: two *fused* ``Linear`` layers, ``dense_i`` (kernel ``(in, 4H)``, no
  bias) and ``dense_h`` (kernel ``(H, 4H)``, bias ``(4H,)``), split with ``jnp.split(y, 4)`` in gate
  order i, f, g, o: exactly the canonical ``W``, ``U``, ``b``, no slicing. (linen's
  ``OptimizedLSTMCell`` keeps the per-gate tree and fuses at call time.) Same count either way.

Each ``nnx.RNN`` (and ``nnx.Bidirectional``) also holds a carry ``RngStream`` (``RngKey`` and
``RngCount`` variables): the RNN asks its cell's ``initialize_carry`` for the zero carry with an RNG
even though ``zeros_init`` ignores it (``rngs=False`` makes a call without ``initial_carry`` fail with
"RNGs must be provided to initialize the cell carry"). They are state, not parameters.

Compilation: the module is built once per configuration key with its default arguments, abstractly
(``nnx.eval_shape``: no initializer runs, as the linen adapter's ``jax.eval_shape(model.init)``; an
eager build costs 0.4-1.4 s per new shape in initializer dispatch), and split with ``nnx.split`` into
a graph definition, its ``nnx.Param`` state and the rest (the carry RNG streams, made concrete as the
constructor makes them: ``RngStream(0)``). Each run merges the canonical weights into a copy of that
state (``load_weights`` returns a real ``nnx`` module holding them) and calls one ``jax.jit`` function
of the state that ``nnx.merge``-s and applies the module, so runs that share the module and shapes
reuse the compiled function.

16-bit: the default ``recurrent_kernel_init`` of ``nnx.LSTMCell`` is ``modified_orthogonal`` (the QR in
float32, then cast: "for compatibility with half precision"), so it builds eagerly in
float16/bfloat16; ``nnx.OptimizedLSTMCell``'s is ``initializers.orthogonal()`` in the parameter dtype,
whose QR has no 16-bit kernel (jax-ml/jax#30176): ``nnx.OptimizedLSTMCell(..., param_dtype=bfloat16,
rngs=...)`` raises ``NotImplementedError: Unsupported dtype bfloat16``. The adapter never runs the
initializers; the repro snippet, which builds eagerly, passes ``recurrent_kernel_init=modified_orthogonal``
(flax's own function) there.
"""

from __future__ import annotations

import numpy as np

from ..reference import array_dtype, direction_names, fed_input_size, layer_input_size
from ..spec import Config
from .flax_linen import (_GATES, _MERGE_FN, _RNN_NAMES, FlaxLinen, backwards_kwargs, backwards_src, by_hand_src, cell_functions, cell_functions_src,
                         features_text, flax_unsupported, initial_carry_src, native_kwargs, native_src, step_by_hand)

# cell choice -> the flax.nnx cell class
_CELLS = {"plain": "LSTMCell", "optimized": "OptimizedLSTMCell"}
_MERGE_SRC = {"sum": "lambda a, b: a + b", "mul": "lambda a, b: a * b", "ave": "lambda a, b: (a + b) / 2",
              "none": "lambda a, b: (a, b)"}


def _gate_name(prefix: str, gate: str) -> str:
    """nnx.LSTMCell's per-gate Linear attribute: i{gate} / h{gate}, except ``if_`` (``if`` is a keyword)."""
    name = f"{prefix}{gate}"
    return "if_" if name == "if" else name


def _model_key(cfg: Config, device: str) -> tuple:
    """What the nnx module depends on: like linen's, plus the input size (nnx cells take in_features)."""
    return (cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.bidirectional,
            cfg.merge_mode if cfg.bidirectional else None, cfg.layout == "time_major", cfg.dtype,
            cfg.go_backwards, cfg.native, cfg.activation, cfg.recurrent_activation, cfg.cell_api, device)


class FlaxNnx(FlaxLinen):
    requires = ("jax", "flax")
    install_hint = "pip install 'lstm-conformance[flax]'"
    param_formula = "flax"
    _api = "nnx"

    def __init__(self, cell: str = "plain"):
        if cell not in _CELLS:
            raise ValueError(f"unknown flax.nnx LSTM cell {cell!r}; known: {', '.join(_CELLS)}")
        self.cell = cell
        self.cell_cls = _CELLS[cell]
        self.id = "flax-nnx" if cell == "plain" else f"flax-nnx-{cell}"
        self._templates: dict = {}   # _model_key -> (graphdef, params State, rest State, jitted apply)
        self._abstract_states: dict = {}   # _model_key -> the template's whole State, its Params abstract
        self._abstract: dict = {}    # abstract signature -> (carries, outputs) ShapeDtypeStructs (run_shapes, infer)
        self._symbols: dict = {}     # "b, t" -> jax.export.symbolic_shape("b, t"), one scope for every trace
        self._models: dict = {}      # (linen's caches, unused here: release() clears them)
        self._shapes: dict = {}

    # ---- static half ----
    def unsupported(self, cfg: Config) -> str | None:
        if cfg.proj_size:
            return (f"flax.nnx.{self.cell_cls} has no projection (proj_size={cfg.proj_size}): its h is always "
                    "o * tanh(c) of width hidden_features")
        if not cfg.bias:
            layers = "hi/hf/hg/ho" if self.cell == "plain" else "dense_h (H, 4H)"
            return (f"flax.nnx.{self.cell_cls} has no use_bias switch: its hidden Linear layer(s) {layers} always "
                    "have a bias (use_bias=True is hard-coded), so bias=False has no native equivalent")
        return flax_unsupported(cfg, "flax.nnx.RNN") or self.native_conflict(cfg)

    def _half_init(self, cfg: Config) -> bool:
        """Whether an *eager* build (the repro snippet) needs recurrent_kernel_init=modified_orthogonal: the
        default orthogonal() of nnx.OptimizedLSTMCell fails in 16 bits (see the module doc)."""
        return self.cell == "optimized" and cfg.dtype in ("float16", "bfloat16")

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        tm = cfg.layout == "time_major"
        lines = ["import jax", "import jax.numpy as jnp", "import numpy as np", "from flax import nnx"]
        if self._half_init(cfg):
            lines.append("from flax.nnx.nn.recurrent import modified_orthogonal")
        lines.append("")
        if cfg.dtype == "float64":
            lines.append('jax.config.update("jax_enable_x64", True)')
        lines.append(f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F}))"
                     f'.astype("{array_dtype(cfg)}")')
        if cfg.layout == "time_major":
            lines.append("x = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major (T, B, F)")
        elif cfg.layout == "unbatched":
            lines.append("x = x[0]  # unbatched (T, F)")
        if cfg.batch_shape is not None:
            lines.append(f"x = x.reshape({tuple(cfg.batch_shape)} + x.shape[1:])  # leading batch axes")
        if cfg.dtype in ("float16", "bfloat16"):
            lines.append(f"x = jnp.asarray(x, jnp.{cfg.dtype})")
        lines.append(f"rngs = nnx.Rngs({cfg.seed})")
        if self._half_init(cfg):
            lines.append(f"# OptimizedLSTMCell's default recurrent_kernel_init (orthogonal: a QR) has no {cfg.dtype} "
                         "kernel (jax-ml/jax#30176);\n# flax's own half-precision variant (nnx.LSTMCell's default) "
                         "runs the QR in float32 and casts")
        half = ", recurrent_kernel_init=modified_orthogonal" if self._half_init(cfg) else ""
        backwards = backwards_src(cfg, self.id)

        def rnn(n_in: int, H: int) -> str:
            cell = (f"nnx.{self.cell_cls}({n_in}, {H}, dtype=jnp.{cfg.dtype}, param_dtype=jnp.{cfg.dtype}"
                    f"{half}{cell_functions_src(cfg, 'nnx')}, rngs=rngs)")
            if cfg.cell_api:
                return f"ByHand({cell})"
            return (f"nnx.RNN({cell}, return_carry=True, time_major={tm}{backwards}{native_src(cfg, self.id)})")

        if cfg.cell_api:
            lines.append(by_hand_src(cfg, "nnx").rstrip("\n"))

        layers = []
        for l in range(cfg.num_layers):
            n_in, H = layer_input_size(cfg, l), cfg.layer_hidden(l)
            if cfg.bidirectional:
                merge = "" if cfg.merge_mode == "concat" else f", merge_fn={_MERGE_SRC[cfg.merge_mode]}"
                layers.append(f"nnx.Bidirectional({rnn(n_in, H)}, {rnn(n_in, H)}, return_carry=True, "
                              f"time_major={tm}{merge})")
            else:
                layers.append(rnn(n_in, H))
        lines.append("layers = [  # one per layer; in_features: the input size, then the previous layer's output")
        lines += [f"    {layer}," for layer in layers]
        lines.append("]")
        call = ""
        if cfg.lengths is not None:
            lines.append(f"seq_lengths = jnp.array({list(cfg.lengths)})"
                         + (f".reshape({tuple(cfg.batch_shape)})" if cfg.batch_shape else "") + "  # valid steps per sequence")
            call += ", seq_lengths=seq_lengths"
        if cfg.initial_state != "none":
            carries = []
            for l in range(cfg.num_layers if cfg.per_layer_sizes else 1):   # (sizes per layer: a carry each)
                suffix = f"_{l}" if cfg.per_layer_sizes else ""
                lines += initial_carry_src(cfg, l).replace("c0 =", f"c0{suffix} =").replace(
                    "h0 =", f"h0{suffix} =").splitlines()
                lines.append(f"carry{suffix} = (c0{suffix}, h0{suffix})  # {self.cell_cls} carry: c first")
                if cfg.bidirectional:
                    lines.append(f"carry{suffix} = (carry{suffix}, carry{suffix})  # (forward, backward)")
                carries.append(f"carry{suffix}")
            if cfg.per_layer_sizes:
                lines.append(f"carries = [{', '.join(carries)}]")
            call += ", initial_carry=" + ("carries[l]" if cfg.per_layer_sizes else "carry")
        carry = "((c_fw, h_fw), (c_bw, h_bw))" if cfg.bidirectional else "(c, h)"
        paths = (["[0][0][0]", "[0][0][1]", "[0][1][0]", "[0][1][1]"]
                 + (["[1][0]", "[1][1]"] if cfg.merge_mode == "none" else ["[1]"]) if cfg.bidirectional
                 else ["[0][0]", "[0][1]", "[1]"])
        lines += ["h = x",
                  "for l, layer in enumerate(layers):  # each layer reads the previous one's outputs",
                  f"    out = layer(h{call})  # (carry, outputs), carry {carry}",
                  "    h = out[1]"]
        lines += [f'print("out{p}", tuple(out{p}.shape))' for p in paths]
        lines.append('print("params", sum(np.size(p) for layer in layers '
                     'for p in jax.tree_util.tree_leaves(nnx.state(layer, nnx.Param))))')
        return "\n".join(lines) + "\n"

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        versions = super().setup()
        from flax import nnx
        self._nnx = nnx
        return versions

    def release(self) -> None:
        self._templates.clear()
        self._abstract_states.clear()
        super().release()

    def _template(self, cfg: Config, device: str):
        """The nnx module for ``cfg``, built once per :func:`_model_key` (eagerly, on the CPU) and split
        into (graphdef, Param state, other state), with the jitted ``apply(state, x, seq_lengths,
        initial_carries)`` that merges the graphdef with a state and calls it."""
        key = _model_key(cfg, device)
        if key in self._templates:
            return self._templates[key]
        jax, nnx = self._jax, self._nnx
        import jax.numpy as jnp

        dtype = getattr(jnp, cfg.dtype)
        time_major = cfg.layout == "time_major"
        backwards = backwards_kwargs(cfg, self.id)
        cell_cls = getattr(nnx, self.cell_cls)

        def rnn(n_in, H, rngs):
            return nnx.RNN(cell_cls(n_in, H, dtype=dtype, param_dtype=dtype, rngs=rngs,
                                    **cell_functions(cfg)),
                           return_carry=True, time_major=time_major, **backwards, **native_kwargs(cfg, self.id))

        merge = {} if cfg.merge_mode == "concat" else {"merge_fn": _MERGE_FN[cfg.merge_mode]}

        class CellByHand(nnx.Module):
            """cell_api: the cell stepped by hand over time (see step_by_hand); its parameters sit under
            ``cell`` as in nnx.RNN."""

            def __init__(self, cell):
                self.cell = cell

            def __call__(self, x, seq_lengths=None, initial_carry=None):
                axis = 0 if (time_major or x.ndim == 2) else 1
                return step_by_hand(self.cell, x, initial_carry, axis,
                                    lambda x_t: self.cell.initialize_carry(x_t.shape, nnx.Rngs(0)))

        def layers():
            rngs = nnx.Rngs(0)
            out = []
            for l in range(cfg.num_layers):
                n_in, H = layer_input_size(cfg, l), cfg.layer_hidden(l)
                if cfg.cell_api:
                    out.append(CellByHand(cell_cls(n_in, H, dtype=dtype, param_dtype=dtype, rngs=rngs,
                                                   **cell_functions(cfg))))
                elif cfg.bidirectional:
                    # Bidirectional passes its own time_major to both RNNs (overriding theirs): set it too.
                    out.append(nnx.Bidirectional(rnn(n_in, H, rngs), rnn(n_in, H, rngs), return_carry=True,
                                                 time_major=time_major, **merge))
                else:
                    out.append(rnn(n_in, H, rngs))
            return out

        class StackedRNN(nnx.Module):
            """Applies the RNN layers in sequence, each with the same ``seq_lengths`` and its own
            ``initial_carry``; returns every layer's carry and the top outputs."""

            def __init__(self, layers):
                self.layers = nnx.List(layers)

            def __call__(self, x, seq_lengths=None, initial_carries=None):
                carries = []
                for l, layer in enumerate(self.layers):
                    carry, x = layer(x, seq_lengths=seq_lengths,
                                     initial_carry=None if initial_carries is None else initial_carries[l])
                    carries.append(carry)
                return carries, x

        # Abstract construction (no initializer runs: the Params are the canonical weights, load_weights), then
        # the non-Param state made concrete: each carry RngStream is RngStream(0, tag='carry') (nnx.RNN's and
        # nnx.Bidirectional's rngs=True default): key(0), count 0. The carry it seeds is zeros_init's anyway.
        abstract = nnx.eval_shape(lambda: StackedRNN(layers()))
        graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
        full_graphdef = nnx.split(abstract)[0]

        def concrete(a):
            if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
                if a.shape != ():
                    raise ValueError(f"unexpected RNG key state of shape {a.shape} in the nnx module")
                return jax.random.key(0)
            return jnp.zeros(a.shape, a.dtype)

        rest = jax.tree_util.tree_map(concrete, rest)

        def apply(state, x, seq_lengths, initial_carries):
            return nnx.merge(full_graphdef, state)(x, seq_lengths, initial_carries)

        built = self._templates[key] = (graphdef, params, rest, jax.jit(apply))
        return built

    def load_weights(self, cfg: Config, device: str, weights: dict[str, np.ndarray]):
        """Canonical weights -> a new nnx module (the template's graph merged with the mapped ``nnx.Param``
        values, cfg.dtype, on ``device``): nnx.LSTMCell per gate k, ``W[:, block] -> i{k}/kernel`` (``if_``
        for f), ``U[:, block] -> h{k}/kernel``, ``b[block] -> h{k}/bias``; nnx.OptimizedLSTMCell
        ``W -> dense_i/kernel``, ``U -> dense_h/kernel``, ``b -> dense_h/bias`` whole. Checked against the
        module's own Param tree (names, shapes, dtypes)."""
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        jax, nnx = self._jax, self._nnx
        graphdef, params, rest, _ = self._template(cfg, device)
        dev = self._device(device)
        ndtype = np.dtype(getattr(jax.numpy, cfg.dtype))

        def put(a):
            return jax.device_put(np.asarray(a).astype(ndtype), dev)

        pure: dict = {}
        for l in range(cfg.num_layers):
            layer = pure[l] = {}
            H = cfg.layer_hidden(l)
            for d, name in enumerate(direction_names(cfg)):
                w = {k: weights[f"layer{l}/{name}/{k}"] for k in ("W", "U", "b")}
                if self.cell == "optimized":
                    cell = {"dense_i": {"kernel": put(w["W"])},
                            "dense_h": {"kernel": put(w["U"]), "bias": put(w["b"])}}
                else:
                    cell = {}
                    for k, gate in enumerate(_GATES):
                        block = slice(k * H, (k + 1) * H)
                        cell[_gate_name("i", gate)] = {"kernel": put(w["W"][:, block])}
                        cell[_gate_name("h", gate)] = {"kernel": put(w["U"][:, block]), "bias": put(w["b"][block])}
                if cfg.bidirectional:
                    layer[_RNN_NAMES[d]] = {"cell": cell}
                else:
                    layer["cell"] = cell
        pure = {"layers": pure}

        def sig(tree):
            return jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), tree)

        if sig(pure) != sig(params.to_pure_dict()):
            raise ValueError(f"mapped weights do not match nnx's own Params: {sig(pure)} != "
                             f"{sig(params.to_pure_dict())}")
        mapped = jax.tree_util.tree_map(lambda a: a, params)   # a copy: the template keeps its values
        nnx.replace_by_pure_dict(mapped, pure)
        return nnx.merge(graphdef, mapped, jax.device_put(rest, dev))

    def read_weights(self, cfg: Config, native) -> dict[str, np.ndarray]:
        """nnx module -> canonical weights (float64), from its own ``nnx.state(module, nnx.Param)``."""
        tree = self._nnx.state(native, self._nnx.Param).to_pure_dict()["layers"]
        out = {}
        for l in range(cfg.num_layers):
            for d, name in enumerate(direction_names(cfg)):
                cell = (tree[l][_RNN_NAMES[d]] if cfg.bidirectional else tree[l])["cell"]
                p = f"layer{l}/{name}/"
                if self.cell == "optimized":
                    out[p + "W"] = np.asarray(cell["dense_i"]["kernel"], np.float64)
                    out[p + "U"] = np.asarray(cell["dense_h"]["kernel"], np.float64)
                    out[p + "b"] = np.asarray(cell["dense_h"]["bias"], np.float64)
                    continue

                def cat(prefix, param, axis):
                    return np.concatenate([np.asarray(cell[_gate_name(prefix, g)][param], np.float64)
                                           for g in _GATES], axis)

                out[p + "W"] = cat("i", "kernel", 1)
                out[p + "U"] = cat("h", "kernel", 1)
                out[p + "b"] = cat("h", "bias", 0)
        return out

    # ---- hooks of the shared run()
    def _apply(self, cfg: Config, device: str, native, x, seq_lengths, carries0):
        _, state = self._nnx.split(native)
        return self._template(cfg, device)[3](state, x, seq_lengths, carries0)

    def _param_shapes(self, cfg: Config, device: str, native) -> list[tuple[str, tuple]]:
        """(name, shape) of every ``nnx.Param`` of the module (RngKey/RngCount state is not a parameter); no
        module (shape-only, infer): the template's own abstract Params (``nnx.eval_shape``)."""
        if native is None:
            flat = self._template(cfg, device)[1].flat_state()
        else:
            flat = self._nnx.state(native, self._nnx.Param).flat_state()
        return [("/".join(str(k) for k in path), tuple(v.shape)) for path, v in flat]

    def _abstract_key(self, cfg: Config, device: str) -> tuple:
        return _model_key(cfg, device)

    def _first_trace(self, cfg: Config, device: str, xin, seq_lengths, carries0) -> None:
        """(linen's init_with_output shortcut has no nnx counterpart: the module's abstract state is its template's,
        built by nnx.eval_shape without a call.)"""

    def _eval_shape(self, cfg: Config, device: str, xin, seq_lengths, carries0):
        """``jax.eval_shape`` of the template's jitted ``nnx.merge(graphdef, state)(...)`` on its abstract state
        (the Params as ``nnx.eval_shape`` built them, the carry RNG streams as ``load_weights`` gives them)."""
        key = _model_key(cfg, device)
        graphdef, params, rest, apply = self._template(cfg, device)
        state = self._abstract_states.get(key)
        if state is None:
            state = self._abstract_states[key] = self._nnx.merge_state(params, rest)
        return self._jax.eval_shape(apply, state, xin, seq_lengths, carries0)

    def _infer_api(self) -> str:
        return ("jax.eval_shape of the jitted nnx.merge(graphdef, state)(x, ...) (the module built by nnx.eval_shape, "
                "its Params abstract) on jax.ShapeDtypeStruct inputs, unknown dims from jax.export.symbolic_shape")

    def _construct(self, cfg: Config, device: str, with_init: bool) -> str:
        time_major = cfg.layout == "time_major"
        backwards = backwards_src(cfg, self.id)
        rnn = (f"nnx.RNN(nnx.{self.cell_cls}(in_features, {features_text(cfg)}, dtype={cfg.dtype}, "
               f"param_dtype={cfg.dtype}{cell_functions_src(cfg, 'nnx')}, rngs=rngs), return_carry=True, "
               f"time_major={time_major}{backwards}"
               f"{native_src(cfg, self.id)})")
        if cfg.cell_api:
            layer = (f"ByHand(nnx.{self.cell_cls}(in_features, {features_text(cfg)}, dtype={cfg.dtype}, "
                     f"param_dtype={cfg.dtype}{cell_functions_src(cfg, 'nnx')}, rngs=rngs)): the cell stepped by hand, "
                     "carry, y = cell(carry, x_t) for every time step (carry from cell.initialize_carry unless given), "
                     "the y stacked along time")
        elif cfg.bidirectional:
            merge = "" if cfg.merge_mode == "concat" else f", merge_fn=<{cfg.merge_mode}>"
            layer = f"nnx.Bidirectional({rnn}, {rnn}{merge}, return_carry=True, time_major={time_major})"
        else:
            layer = rnn
        call = "".join([", seq_lengths=lengths" if cfg.lengths is not None else "",
                        ", initial_carry=carries[l]" if with_init else ""])
        return (f"[{layer}] * {cfg.num_layers} (in_features: {cfg.input_size}, then the previous layer's output "
                f"size) in an nnx.List applied in sequence by a small nnx.Module, layer l called as layer(x{call}); "
                f"built with nnx.eval_shape (no random init), the canonical weights merged into its nnx.Param "
                f"state (load_weights); nnx.split once, jax.jit of nnx.merge + call on {device}")

    def _cell_notes(self, cfg: Config) -> list[str]:
        if self.cell == "optimized":
            notes = ["nnx.OptimizedLSTMCell holds two fused Linear layers: dense_i/kernel (in, 4H) = W, dense_h/kernel "
                     "(H, 4H) = U, dense_h/bias (4H) = b, split by jnp.split(y, 4) in gate order i, f, g, o: the "
                     "canonical tensors as they are (linen's OptimizedLSTMCell keeps the per-gate tree instead)"]
        else:
            notes = ["nnx.LSTMCell's per-gate Linear layers are ii/if_/ig/io (no bias) and hi/hf/hg/ho (with bias): "
                     "the forget gate's input layer is if_, not linen's if (a Python keyword as an attribute)"]
        notes.append("each nnx.RNN / nnx.Bidirectional also holds a carry RngStream (RngKey, RngCount): state, not "
                     "nnx.Param, so not counted")
        if self._half_init(cfg):
            notes.append(f"built abstractly: an eager nnx.OptimizedLSTMCell(param_dtype={cfg.dtype}) fails in its "
                         f"default orthogonal() recurrent init (no {cfg.dtype} QR, jax-ml/jax#30176), nnx.LSTMCell's "
                         "modified_orthogonal does not; no initializer runs here (the canonical weights are the "
                         "values)")
        return notes
