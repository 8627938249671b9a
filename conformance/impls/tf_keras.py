"""Keras 2 (``tf_keras``, the package ``tf.keras`` was before TensorFlow 2.16): a stack of
``tf_keras.layers.LSTM`` layers, each wrapped in ``tf_keras.layers.Bidirectional`` when the case is
bidirectional, called eagerly one on the output of the previous one, with the canonical weights
assigned to their variables.

The worker imports ``tf_keras``, never ``keras``: with ``TF_USE_LEGACY_KERAS=1`` (set in ``env``
before TensorFlow is imported) ``tf.keras`` is Keras 2 as well and TensorFlow does not import Keras 3
at all (without it, ``import tensorflow`` alone loads ``keras``); ``setup`` checks that.

Native facts this adapter maps: input is ``(B, T, F)``, or ``(T, B, F)`` with the constructor's
``time_major=True`` (Keras 2 has it, Keras 3 removed it), which makes the output sequence ``(T, B, F')``
too (states stay ``(B, H)``) and makes the mask ``(T, B)``; ``InputSpec(ndim=3)`` refuses unbatched
input; without ``return_state`` a layer returns one tensor, ``(B, T, F')`` with ``return_sequences``
else the final hidden state ``(B, F')``; with ``return_state`` an LSTM returns the *list*
``[output, h, c]`` and a ``Bidirectional`` the list ``[output, h_fw, c_fw, h_bw, c_bw]`` (Keras 3:
the same order, as tuples); the directions are merged by ``merge_mode``; one bias vector
(``use_bias``); no projection (``proj_size`` is "Keyword argument not understood"). States exist per
layer, so every layer gets ``return_state`` and the lower layers' states are collected as they are
produced. Unlike Keras 3's, Keras 2's ``Bidirectional`` neither casts its input nor its merged output
to its own (float32) dtype policy: a float64 bidirectional LSTM returns float64 throughout.

Weights: an LSTM cell holds ``kernel (in, 4H)``, ``recurrent_kernel (H, 4H)`` and ``bias (4H)``
with the gates in the order i, f, c, o: the canonical ``W``, ``U`` and ``b`` exactly, no transpose,
no reordering. A ``Bidirectional`` holds two LSTM copies, ``forward_layer`` and ``backward_layer``
(the latter built with ``go_backwards=True``), each with its own cell.

Lengths are a boolean mask passed as ``mask=`` to every layer's call: ``(B, T)``, or ``(T, B)`` with
``time_major=True`` (the layout ``Masking`` computes from time-major input; a ``(B, T)`` mask there
fails in ``SelectV2``, although the call docstring says ``[batch, timesteps]``); initial states are
``initial_state=[h0, c0]`` for an LSTM and ``[h_fw, c_fw, h_bw, c_bw]`` for a ``Bidirectional``;
``go_backwards`` is ``LSTM(go_backwards=True)``, which returns its output sequence in processing order.

``batch_input_shape`` (another Keras 2 option Keras 3 dropped) only fixes the batch axis of a
model's symbolic input, which matters for ``stateful=True`` RNNs (``calls`` > 1); the layers here are
built with ``layer.build(native input shape)``, which fixes the batch of their state variables, and
called eagerly, so it is not used.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict

import numpy as np

from ..reference import (array_dtype, direction_names, fed_input_size, fed_state_shape, layer_input_size,
                         to_native_layout, valid_mask)
from ..spec import Config
from .base import Impl, Observation, Rejected, dtype_name, native, placeholder
from .keras3 import (_call_output, _contiguous, canonical_output, carries_input_shape, cells_of, inference_layers,
                     layer_names,
                     lstm_layer, lstm_src, merge_src, model_outputs, native_merge_mode, nested_numpy, outputs_of,
                     plain_chain, record_stack_returns, record_stacked_returns, returned_paths, shape_only_arrays,
                     stack_construct, stack_snippet, stack_unsupported, stacked_layer, stacked_src, strip_ansi)

# Canonical tensor -> the LSTM cell's variable holding it (same layout, same gate order i, f, g(c), o).
# Copied from keras3.py (the cells have the same variables), not imported: that module is Keras 3's.
_VARIABLES = (("W", "kernel"), ("U", "recurrent_kernel"), ("b", "bias"))

# The default recurrent initializer, Orthogonal, runs tf.linalg.qr in the variable's dtype, and
# TensorFlow's Qr op has no bfloat16 kernel: tf_keras.layers.LSTM(dtype="bfloat16") fails in build()
# with "Value for attr 'T' of bfloat16 is not in the list of allowed values" (keras-team/keras#16970,
# reported against Keras 2). The canonical weights replace the initial values, so bfloat16 layers are
# built with glorot_uniform instead (as in keras3.py).
_BF16_INIT = {"recurrent_initializer": "glorot_uniform"}


_CHEAP_INIT = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros", "bias_initializer": "zeros"}
_CHEAP_NOTE = ("shape-only: the layers are built with every initializer 'zeros' (kernel, recurrent, bias) instead of "
               "the canonical weights: the values are never read, the variables' shapes and dtypes are the same; "
               "non-stateful layers built by an earlier shape-only run from the same constructor calls for the same feature "
               "sizes are reused (their variables depend on neither the batch, the time steps, masks nor initial "
               "states)")
_SHAPE_CACHE_SIZE = 256
_SHAPE_LAYER_USES = 64


def _widen(a: np.ndarray) -> np.ndarray:
    """bfloat16 (ml_dtypes, as TensorFlow hands it to NumPy) -> float32, exactly; others as they are."""
    return a.astype(np.float32) if str(a.dtype) == "bfloat16" else a


class TfKeras2(Impl):
    id = "tf-keras"
    requires = ("tf_keras", "tensorflow")
    install_hint = "pip install 'lstm-conformance[tf-keras]'"
    param_formula = "keras"
    # TF_USE_LEGACY_KERAS=1: tf.keras resolves to tf_keras and TensorFlow never imports Keras 3.
    env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}

    # ---- static half: no framework imports ----
    # set from the case's fields (the initializers: the canonical weights are loaded over them)
    own_keywords = ("units", "return_sequences", "return_state", "use_bias", "go_backwards", "time_major", "dtype",
                    "activation", "recurrent_activation",
                    "kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias",
                    "zero_output_for_mask", "dropout", "recurrent_dropout", "stateful")

    def unsupported(self, cfg: Config) -> str | None:
        stack = stack_unsupported(cfg, "tf_keras.layers")
        if stack:
            return stack
        if cfg.layer_dropout:
            return ("tf_keras.layers.LSTM has no dropout between stacked layers (torch's dropout; Keras's own "
                    "dropout is on each cell's input, the field dropout)")
        if cfg.proj_size:
            return (f"tf_keras.layers.LSTM has no projection (torch's proj_size): LSTM(proj_size=...) raises "
                    f"TypeError ('Keyword argument not understood:', 'proj_size'); proj_size={cfg.proj_size} has "
                    "no native equivalent")
        if cfg.layout == "unbatched":
            return ("tf_keras RNN layers require 3-D input (InputSpec(ndim=3)); unbatched (T, F) input is "
                    "rejected with 'expected ndim=3, found ndim=2'")
        return self.native_conflict(cfg)

    def _lstm_kwargs(self, cfg: Config, return_sequences: bool) -> list[tuple[str, object]]:
        """The LSTM constructor's arguments after ``units``, as (name, value), in the order written."""
        kw = [("return_sequences", return_sequences), ("return_state", cfg.return_state), ("use_bias", cfg.bias)]
        if cfg.layout == "time_major":
            kw.append(("time_major", True))
        if cfg.go_backwards:
            kw.append(("go_backwards", True))
        kw += [(name, getattr(cfg, name)) for name, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid"))
               if getattr(cfg, name) != default]
        if cfg.zero_output_for_mask:
            kw.append(("zero_output_for_mask", True))
        kw += [(name, getattr(cfg, name)) for name in ("dropout", "recurrent_dropout") if getattr(cfg, name)]
        if cfg.calls > 1:
            kw.append(("stateful", True))
        if cfg.dtype == "bfloat16":
            kw += list(_BF16_INIT.items())
        return kw + [("dtype", cfg.dtype)] + list(cfg.native_for(self.id).items())

    def _construct(self, cfg: Config, return_sequences: bool, layer: int, quote: str = "'") -> str:
        if cfg.stacked_cells:
            return stacked_src("tf_keras.layers", cfg, self._lstm_kwargs(cfg, return_sequences), quote)
        lstm = lstm_src("tf_keras.layers", cfg, self._lstm_kwargs(cfg, return_sequences), quote, cfg.layer_hidden(layer))
        return (f"tf_keras.layers.Bidirectional({lstm}, merge_mode={merge_src(cfg, quote)})"
                if cfg.bidirectional else lstm)

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        time_major = cfg.layout == "time_major"
        setup, build, count = stack_snippet(
            cfg, lambda seq, layer: self._construct(cfg, seq, layer, quote=chr(34)), tensor='tf.cast({}, "%s")' % cfg.dtype,
            flip=f"tf.reverse(h, axis=[{0 if time_major else 1}])",
            mask_layout="mask = mask.T  # time_major=True: the mask is (T, B) too\n" if time_major else "")
        if time_major:
            setup = "x = tf.transpose(x, [1, 0, 2])  # time_major=True: (T, B, F)\n" + setup
        # return_state: [output, h, c], or [output, h_fw, c_fw, h_bw, c_bw]; else the output tensor alone
        paths = returned_paths(cfg)
        return (
            "import os\n"
            "os.environ[\"TF_USE_LEGACY_KERAS\"] = \"1\"  # tf.keras = Keras 2 too; Keras 3 is never imported\n"
            "import numpy as np\n"
            "import tensorflow as tf\n"
            "import tf_keras\n"
            "\n"
            f"tf_keras.utils.set_random_seed({cfg.seed})\n"
            f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{array_dtype(cfg)}\")\n"
            f"x = tf.cast(x, \"{cfg.dtype}\")\n"
            + setup
            + build
            + "".join(f'print("out{p}", tuple(out{p}.shape))\n' for p in paths)
            + f'print("params", {count})\n')

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        import tensorflow as tf
        import tf_keras
        if "keras" in sys.modules:
            raise RuntimeError("Keras 3 (the keras package) was imported in the tf-keras worker: TF_USE_LEGACY_KERAS=1 "
                               "must be set before TensorFlow is imported")
        self._tf, self._keras = tf, tf_keras
        self._shape_layers = OrderedDict()        # shape-only: layer key -> [layers, symbolic calls made]
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        # Full float32 matmuls on GPU: no TF32 (Ampere and later would round matmul inputs to 10 bits), in
        # matmuls and in the cuDNN LSTM kernel Keras 2 selects on GPU.
        tf.config.experimental.enable_tensor_float_32_execution(False)
        return {"tf_keras": tf_keras.__version__, "tensorflow": tf.__version__, "backend": "tensorflow"}

    def _gpus(self) -> list:
        return self._tf.config.list_physical_devices("GPU")

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._gpus() else [])

    def device_name(self, device: str) -> str:
        if device != "gpu":
            return "cpu"
        gpu = self._gpus()[0]
        return self._tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)

    def _device(self, device: str):
        return self._tf.device("/GPU:0" if device == "gpu" else "/CPU:0")

    @staticmethod
    def _directions(layer) -> list:
        """The LSTM layers of one stacked layer, in canonical direction order (forward, backward)."""
        return [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]

    @staticmethod
    def _native_shape(cfg: Config, layer: int) -> tuple[int, int, int]:
        n_in = layer_input_size(cfg, layer)
        return ((cfg.timesteps, cfg.batch, n_in) if cfg.layout == "time_major"
                else (cfg.batch, cfg.timesteps, n_in))

    def _build(self, cfg: Config, device: str, batch: int | None = -1, time_: int | None = -1,
               cheap: bool = False) -> list:
        """Fresh built layers for ``cfg`` (random initial values), built for input of ``batch`` and ``time_``
        (the case's by default; None: unknown) in the case's layout. ``cheap``: every initializer "zeros"
        (shape-only and symbolic builds, where no value is ever read)."""
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        tf_keras = self._keras
        L = cfg.num_layers
        B = cfg.batch if batch == -1 else batch
        T = cfg.timesteps if time_ == -1 else time_
        tf_keras.backend.clear_session()          # free the previous run's layers and reset layer names
        if not cheap:
            tf_keras.utils.set_random_seed(cfg.seed)

        def kwargs(return_sequences):
            kw = self._lstm_kwargs(cfg, return_sequences)
            return kw + list(_CHEAP_INIT.items()) if cheap else kw

        def shape(l):
            n_in = layer_input_size(cfg, l)
            return (T, B, n_in) if cfg.layout == "time_major" else (B, T, n_in)

        layers = []
        with self._device(device):
            if cfg.stacked_cells:
                rnn = stacked_layer(tf_keras.layers, cfg, kwargs(cfg.return_sequences))
                rnn.build(shape(0))
                layers = [rnn]
            for l in range(0 if cfg.stacked_cells else L):
                lstm = lstm_layer(tf_keras.layers, cfg, kwargs(cfg.return_sequences if l == L - 1 else True),
                                  cfg.layer_hidden(l))
                layer = (tf_keras.layers.Bidirectional(lstm, merge_mode=native_merge_mode(cfg)) if cfg.bidirectional
                         else lstm)
                layer.build(shape(l))       # else built on first call
                layers.append(layer)
        return layers

    def load_weights(self, cfg: Config, device: str, weights: dict):
        """The built layers (one per canonical layer) with ``weights`` assigned to each cell's kernel,
        recurrent_kernel and bias (cast to the layer's dtype by ``Variable.assign``)."""
        layers = self._build(cfg, device)
        with self._device(device):
            for l, d, cell in cells_of(cfg, layers, self._directions):
                for name, attr in _VARIABLES:
                    key = f"layer{l}/{d}/{name}"
                    if key in weights:
                        var = getattr(cell, attr)
                        var.assign(self._tf.cast(np.asarray(weights[key], np.float64), var.dtype))
        return layers

    def _cheap_layers(self, cfg: Config, device: str) -> tuple[list, bool]:
        """Shape-only builds: the layers for ``cfg``, and whether they were built before. Only their structure
        is read, and a non-stateful LSTM's built layers do not depend on the batch or the time steps: layers of
        the same structure are reused (at most ``_SHAPE_LAYER_USES`` symbolic calls each: each leaves a node in
        the layers). Stateful layers (state variables per batch) are always new."""
        if cfg.calls > 1:
            return self._build(cfg, device, cheap=True), False
        # what the layers are made of: each layer's constructor call as written and the feature size it is built
        # for (the batch, the time steps, masks, initial states, training and the numbers are the call's inputs)
        L = 1 if cfg.stacked_cells else cfg.num_layers
        key = (device, cfg.stacked_cells,
               tuple(self._construct(cfg, cfg.return_sequences if l == L - 1 else True, l) for l in range(L)),
               tuple(layer_input_size(cfg, l) for l in range(L)))
        hit = self._shape_layers.get(key)
        built_before = hit is not None and hit[1] < _SHAPE_LAYER_USES
        if not built_before:
            hit = self._shape_layers[key] = [self._build(cfg, device, cheap=True), 0]
            while len(self._shape_layers) > _SHAPE_CACHE_SIZE:
                self._shape_layers.popitem(last=False)
        self._shape_layers.move_to_end(key)
        hit[1] += 1
        return hit[0], built_before

    def release(self) -> None:
        self._shape_layers.clear()
        self._ran = None

    def read_weights(self, cfg: Config, native) -> dict:
        out = {}
        for l, d, cell in cells_of(cfg, native, self._directions):
            for name, attr in _VARIABLES:
                var = getattr(cell, attr, None)
                if var is not None:
                    out[f"layer{l}/{d}/{name}"] = np.asarray(self._tf.cast(var, self._tf.float64).numpy())
        return out

    def _symbolic_inputs(self, cfg: Config, B: int | None, T: int | None, state_shapes) -> tuple:
        """``tf_keras.Input`` tensors in the case's layout ((B, T, F), time_major (T, B, F)): the input, the bool
        mask ((B, T), time_major (T, B)) when the case masks, the initial states per layer of ``state_shapes``
        ((h shape, c shape) per layer and direction; None: not given). A size None is unknown."""
        tf_keras, L, D = self._keras, cfg.num_layers, cfg.directions
        time_major = cfg.layout == "time_major"
        F = fed_input_size(cfg)
        xin = tf_keras.Input(batch_shape=(T, B, F) if time_major else (B, T, F), dtype=cfg.dtype)
        mask = (tf_keras.Input(batch_shape=(T, B) if time_major else (B, T), dtype="bool") if cfg.masked else None)
        initial = None if state_shapes is None else [
            [tf_keras.Input(batch_shape=tuple(s), dtype=cfg.dtype) for pair in state_shapes[l * D:(l + 1) * D]
             for s in pair] for l in range(L)]
        return xin, mask, initial

    def _calls(self, cfg: Config, layers: list, xin, mask, initial) -> list:
        """Call the stack ``cfg.calls`` times (stateful: each call starts from the state the last one left;
        ``resets``), eagerly or on symbolic inputs alike: each call's native returns, per layer."""
        tf, L = self._tf, len(layers)
        time_axis = 0 if cfg.layout == "time_major" else 1
        call = {"training": True} if cfg.training else {}
        if mask is not None:
            call["mask"] = mask
        every = []
        for k in range(cfg.calls):     # stateful: each call starts from the state the last one left
            returned_, h = [], xin
            reset = k + 1 in (cfg.resets or ())
            if reset:                  # back to zeros; then the case's initial_state, as in call 1
                for layer in layers:
                    layer.reset_states()
            for l, layer in enumerate(layers):
                first = {} if initial is None or (k and not reset) else {
                    "initial_state": initial if cfg.stacked_cells else initial[l]}   # (stacked: nested)
                r = layer(h, **call, **first)
                returned_.append(r)
                h = r[0] if isinstance(r, (tuple, list)) else r
                if cfg.go_backwards and l < L - 1:
                    h = tf.reverse(h, axis=[time_axis])      # processing order -> time order for the next layer
            every.append(nested_numpy(returned_, lambda t: t))
        return every

    def _record(self, cfg: Config, returned_: list, returns: list) -> list[tuple]:
        return (record_stacked_returns(returned_[0], returns) if cfg.stacked_cells else
                record_stack_returns(returned_, direction_names(cfg), returns, outputs_of(cfg)))

    def _state_shapes(self, cfg: Config, B: int | None):
        """(h shape, c shape) per layer and direction of the initial states given (None: none), the batch ``B``
        unless the case feeds another."""
        return None if cfg.initial_state == "none" else [
            tuple((B if cfg.feed_state_batch is None else b, w) for b, w in
                  (fed_state_shape(cfg, r, k) for r in ("h", "c")))
            for k in range(cfg.num_layers * cfg.directions)]

    @staticmethod
    def _by_signature(cfg: Config, layers: list) -> bool:
        """Whether ``compute_output_signature`` gives every return of ``cfg``'s stack honestly (else the call is
        traced on ``tf_keras.Input`` tensors): not with stacked_cells (the nested [h, c] per cell, which
        compute_output_shape flattens); not with initial states of other shapes than the (B, H) each cell's
        ``state_size`` declares (``feed_state_batch``/``feed_state_hidden``: tf-keras checks them only inside the
        traced call, the cell's matmuls); not where a Bidirectional's own dtype policy (whose compute dtype
        compute_output_signature reports) is not its LSTMs' (its call returns theirs: float64 stays float64)."""
        return (not cfg.stacked_cells and cfg.feed_state_batch is None and cfg.feed_state_hidden is None
                and all(layer.compute_dtype == sub.compute_dtype for layer in layers
                        for sub in TfKeras2._directions(layer)))

    def _signatures(self, cfg: Config, layers: list, B: int | None, T: int | None) -> list:
        """The stack's returns per call as ``tf.TensorSpec``s, from tf-keras's own non-tracing shape inference:
        each layer (and, in a Bidirectional, each direction's layer, which its call calls) first checks the
        input against its ``input_spec`` (``tf_keras.src.engine.input_spec.assert_input_compatibility``, what
        ``Layer.__call__`` runs before anything: a wrong feature size is refused there), then
        ``layer.compute_output_signature(input spec)`` (``compute_output_shape``, the layer's compute dtype). The
        mask, of the input's batch and time, changes no shape; go_backwards' reverse between layers neither."""
        from tf_keras.src.engine import input_spec

        tf, F = self._tf, fed_input_size(cfg)
        every = []
        for _ in range(cfg.calls):
            spec = tf.TensorSpec((T, B, F) if cfg.layout == "time_major" else (B, T, F), cfg.dtype)
            returned_ = []
            for layer in layers:
                for checked in [layer] + (self._directions(layer) if cfg.bidirectional else []):
                    input_spec.assert_input_compatibility(checked.input_spec, spec, checked.name)
                r = layer.compute_output_signature(spec)
                returned_.append(r)
                spec = r[0] if isinstance(r, (tuple, list)) else r
            every.append(returned_)
        return every

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        B, T, layers, reused = inference_layers(self, cfg, device, unknown)
        by_signature = self._by_signature(cfg, layers)
        with self._device(device), native("call"):
            if by_signature:
                returned_ = self._signatures(cfg, layers, B, T)[-1]
            else:
                xin, mask, initial = self._symbolic_inputs(cfg, B, T, self._state_shapes(cfg, B))
                returned_ = self._calls(cfg, layers, xin, mask, initial)[-1]
        returns = []
        self._record(cfg, returned_, returns)
        F = fed_input_size(cfg)
        shape = (T, B, F) if cfg.layout == "time_major" else (B, T, F)
        notes = [("the layers the eager run just built and ran, reused (shapes and counts are the same; no value "
                  "is read)") if reused else "layers built with every initializer 'zeros' (no value is read)"]
        if cfg.calls > 1:
            notes.append(f"stateful: inferred for each of the {cfg.calls} calls, as run calls them")
        if by_signature:
            api = (f"layer.compute_output_signature(tf.TensorSpec({shape})) after tf-keras's own input check "
                   "(input_spec.assert_input_compatibility), layer by layer: Keras 2's non-tracing shape inference "
                   f"(compute_output_shape), nothing traced, tf_keras {self._keras.__version__}")
            if cfg.masked:
                notes.append("the mask (of the input's batch and time) is not an input of compute_output_shape: it "
                             "changes no shape")
            if cfg.initial_state != "none":
                notes.append("the initial states, of the (B, H) each cell's state_size declares, are not an input of "
                             "compute_output_shape (RNN.__call__'s InputSpec for them is their own shape): they change "
                             "no shape")
        else:
            why = ("stacked_cells (the nested [h, c] per cell)" if cfg.stacked_cells else
                   "initial states of other shapes than the cells' state_size (checked only inside the traced call)"
                   if cfg.feed_state_batch is not None or cfg.feed_state_hidden is not None else
                   "a Bidirectional whose dtype policy is not its LSTMs' (compute_output_signature would report its "
                   "own compute dtype, which its call does not cast to)")
            api = (f"tf_keras.Input(batch_shape={shape}) -> layer(...) symbolically (Keras 2's functional "
                   f"API: the layer's call traced in a scratch graph; used for {why}), tf_keras "
                   f"{self._keras.__version__}")
        return {"api": api, "returns": returns, "param_count": int(sum(layer.count_params() for layer in layers)),
                "notes": notes}

    def summary(self, cfg: Config, device: str) -> dict:
        tf_keras = self._keras
        stateful = cfg.calls > 1       # a stateful RNN needs to know its batch size
        B = cfg.batch if stateful else None
        T, F = cfg.timesteps, fed_input_size(cfg)
        time_major = cfg.layout == "time_major"
        with native("build"):
            layers = self._build(cfg, device, batch=B, time_=T, cheap=True)
        names = layer_names(cfg, layers)
        with self._device(device), native("build"):
            if plain_chain(cfg) and not time_major:
                given = carries_input_shape(cfg.native_for(self.id))
                model = tf_keras.Sequential(layers if given else [tf_keras.Input(shape=(T, F), dtype=cfg.dtype),
                                                                  *layers])
                how = (f"Sequential([{names}]) (the first layer carries its own {given})" if given else
                       f"Sequential([Input(shape={(T, F)}), {names}])")
            else:
                xin, mask, initial = self._symbolic_inputs(cfg, B, T, self._state_shapes(cfg, B))
                returned_ = self._calls(cfg, layers, xin, mask, initial)[-1]
                inputs = [xin] + ([mask] if mask is not None else []) + [t for pair in initial or [] for t in pair]
                model = tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs, model_outputs(cfg, returned_))
                shape = tuple(xin.shape.as_list())
                how = (f"Model(inputs, outputs): functional, over {names} called on tf_keras.Input(batch_shape="
                       f"{shape})" + (", a mask Input" if mask is not None else "")
                       + (", initial-state Inputs" if initial is not None else "")
                       + ("; batch known: a stateful RNN needs it" if stateful else ""))
        lines = []
        model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        return {"text": strip_ansi("\n".join(lines)), "how": how}

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        return self._observe(cfg, device, init, x, weights)

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        return self._observe(cfg, device, init)

    def _observe(self, cfg: Config, device: str, init, x: np.ndarray | None = None,
                 weights: dict | None = None) -> Observation:
        """``run`` (``x`` and ``weights`` given: computed) or ``run_shapes`` (None: layers called on
        ``tf_keras.Input`` tensors of every size known, nothing computed); the same records and normalization."""
        tf = self._tf
        L, D = cfg.num_layers, cfg.directions
        time_major = cfg.layout == "time_major"
        time_axis = 0 if time_major else 1
        shapes_only = x is None
        t0 = time.perf_counter()
        self._ran = None
        with native("build"):
            if shapes_only:
                layers, reused = self._cheap_layers(cfg, device)
            else:
                layers = self.load_weights(cfg, device, weights)
                self._ran = (cfg, device, layers)       # for infer after the run: the same layers, inferred again
        by_signature = shapes_only and self._by_signature(cfg, layers)
        with self._device(device):
            if by_signature:
                pass
            elif shapes_only:
                with native("call"):
                    xin, mask, initial = self._symbolic_inputs(
                        cfg, cfg.batch, cfg.timesteps,
                        None if init is None else [(np.shape(h), np.shape(c)) for h, c in init])
            else:
                xin = tf.cast(np.asarray(to_native_layout(cfg, x), array_dtype(cfg)), cfg.dtype)
                mask = None
                if cfg.masked:
                    m = valid_mask(cfg)
                    mask = tf.constant(m.T if time_major else m)
                initial = None if init is None else [
                    [tf.cast(np.asarray(s, array_dtype(cfg)), cfg.dtype)
                     for pair in init[l * D:(l + 1) * D] for s in pair] for l in range(L)]
            t1 = time.perf_counter()
            try:
                with native("call"):
                    every = (self._signatures(cfg, layers, cfg.batch, cfg.timesteps) if by_signature
                             else self._calls(cfg, layers, xin, mask, initial))
                    convert = ((lambda t: placeholder(t.shape, dtype_name(t.dtype))) if shapes_only
                               else (lambda t: t.numpy()))               # (.numpy() waits for the device)
                    arrays = [nested_numpy(r, convert) for r in every]
            except Rejected:
                if shapes_only:
                    # a refused symbolic call with initial states leaves them in the layer's input_spec (RNN.__call__,
                    # tf_keras/src/layers/rnn/base_rnn.py:615-620, restores it only after a call that returned):
                    # layers a call refused are not reused
                    self._shape_layers = type(self._shape_layers)(
                        (k, v) for k, v in self._shape_layers.items() if v[0] is not layers)
                raise
        t2 = time.perf_counter()
        call_outputs = [_call_output(cfg, r[-1]) for r in arrays] if cfg.calls > 1 else []
        returned_ = arrays[-1]

        calls = []
        if cfg.masked:
            calls.append("mask=<" + ("(T, B)" if time_major else "(B, T)") + " bool, True at valid steps>")
        if init is not None:
            calls.append("initial_state=" + ("[h0, c0]" if D == 1 else "[h_fw, c_fw, h_bw, c_bw]"))
        if cfg.training:
            calls.append("training=True")
        how = (" called as layer(x" + "".join(", " + c for c in calls) + ")") if calls else ""
        between = (f"; called {cfg.calls} times on the same input (stateful=True: each call starts from the states "
                   "the previous one left in the layers"
                   + (f"; before call(s) {', '.join(map(str, cfg.resets))} every layer's reset_states() zeroes them"
                      + (" and initial_state is given again" if init is not None else "") if cfg.resets else "")
                   + "); the last call's returns are compared" if cfg.calls > 1 else "")
        if by_signature:
            between += ("; inferred by each layer's compute_output_signature(tf.TensorSpec of every size known) after "
                        "tf-keras's own input check (input_spec.assert_input_compatibility), nothing traced or "
                        "computed")
        elif shapes_only:
            between += ("; called symbolically on tf_keras.Input tensors of every size known (the functional API: "
                        "the call traced in a scratch graph, as for stacked_cells, initial states of other shapes "
                        "than the cells' and a Bidirectional of another dtype than its LSTMs'), nothing computed")
        between += (f"; each lower layer's output is flipped along time (tf.reverse(axis=[{time_axis}])) before the "
                   "next layer reads it" if cfg.go_backwards and L > 1 and not cfg.stacked_cells else "")
        obs = Observation(
            construct=(stack_construct(cfg, lambda seq, layer: self._construct(cfg, seq, layer))
                       + how + between),
            params=[{"name": w.name, "shape": [int(d) for d in w.shape]} for layer in layers for w in layer.weights],
            param_count=int(sum(layer.count_params() for layer in layers)),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
        notes = obs.normalization
        if shapes_only:
            notes.append(_CHEAP_NOTE)
            obs.timings["layers_built_before"] = float(reused)
        # the returns as returned (shape-only: the symbolic tensors); states and output from the arrays
        states = self._record(cfg, every[-1] if shapes_only else returned_, obs.returns)
        if shapes_only:
            states = self._record(cfg, returned_, [])
        top_dtype = obs.returns[0]["dtype"]     # the top output's, as returned (before any widening)

        obs.call_outputs = call_outputs or None
        out = canonical_output(cfg, returned_[-1])
        if outputs_of(cfg) == 2:
            notes.append("merge_mode=None returns the forward and the backward outputs apart (the backward one in time "
                         "order): canonical output = the two side by side, forward first")
        notes.append("canonical weights W, U, b -> each LSTM cell's kernel (in, 4H), recurrent_kernel (H, 4H), "
                     "bias (4H) as they are: same layout and gate order (i, f, c, o)"
                     + ("; Bidirectional: forward_layer.cell <- forward, backward_layer.cell <- backward"
                        if cfg.bidirectional else ""))
        if time_major:
            notes.append("time_major: input fed as (T, B, F) to LSTM(time_major=True) (Keras 2's own option), every "
                         "layer time-major, so layers pass (T, B, F') to each other unchanged; states are (B, H) "
                         "regardless")
        else:
            notes.append("input and output are batch-first natively: no layout change")
        if L > 1:
            notes.append(f"{L} layers stacked by calling each on the previous one's output; lower layers use "
                         "return_sequences=True, the top layer the case's return_sequences")
        if cfg.lengths is not None:
            notes.append(f"lengths {list(cfg.lengths)} -> a boolean mask "
                         + ("(T, B) (time_major=True: the layout Masking computes from (T, B, F) input; a (B, T) mask "
                            "fails)" if time_major else "(B, T)")
                         + ", True at steps t < length, passed as mask= to every layer's call (Keras's own "
                         "mechanism: what Masking or Embedding(mask_zero=True) attach); the native return structure "
                         "is unchanged, and the outputs at padded steps are left as returned")
        if cfg.mask is not None:
            notes.append("mask -> a boolean tensor " + ("(T, B) (time_major=True)" if time_major else "(B, T)")
                         + ", True at the real steps, passed as mask= to every layer's call (Keras's own mechanism); "
                         "the outputs at masked steps are left as returned")
        if init is not None:
            notes.append("initial states (h0, c0) per layer and direction -> initial_state="
                         + ("[h0, c0]" if D == 1 else "[h_fw, c_fw, h_bw, c_bw] (Bidirectional gives the first half to "
                                                      "its forward layer, the second to its backward layer)")
                         + f" in each layer's call, as {cfg.dtype} tensors")
        if cfg.go_backwards:
            notes.append("go_backwards -> tf_keras.layers.LSTM(go_backwards=True)"
                         + (f", every layer; each lower layer's output sequence, returned in processing order "
                            f"(reversed time), is flipped to time order (tf.reverse(axis=[{time_axis}])) before the "
                            "next layer reads it, so every layer reads the sequence in time order and runs backwards "
                            "over it" if L > 1 else ""))
        if cfg.return_sequences:
            if cfg.go_backwards:
                out = np.flip(out, axis=time_axis)
                notes.append(f"output = the top layer's output sequence flipped along time (axis {time_axis}): "
                             "LSTM(go_backwards=True) returns it in processing order, last time step first")
            else:
                notes.append("output = the top layer's output sequence"
                             + (f" with directions merged by merge_mode={cfg.merge_mode!r}; the backward "
                                "direction is already in original time order" if cfg.bidirectional else ""))
            if time_major:
                out = out.transpose(1, 0, 2)
                notes.append("time_major=True output sequence (T, B, F') transposed to (B, T, F')")
        else:
            notes.append("output = the top layer's output (B, F'), which Keras already makes the final hidden "
                         "state" + (f" of each direction merged by merge_mode={cfg.merge_mode!r} (backward: the "
                                    "state after reading time step 0)" if cfg.bidirectional else
                                    " (go_backwards: the state after reading time step 0)" if cfg.go_backwards else ""))
        obs.output = _contiguous(out)
        if top_dtype != cfg.dtype:
            notes.append(f"output dtype is {top_dtype}, not the case's {cfg.dtype}: left as returned "
                         f"(the top layer's dtype policy is {layers[-1].dtype_policy.name!r})")
        if top_dtype == "bfloat16" or any(r["dtype"] == "bfloat16" for r in obs.returns if r["role"] in ("h", "c")):
            obs.output = _widen(obs.output)
            states = [(_widen(h), _widen(c)) for h, c in states]
            notes.append("bfloat16 results widened to float32 (exact) for NumPy, which has no bfloat16 of its own")
        if cfg.return_state:
            obs.states = states
            if cfg.bidirectional:
                notes.append("Bidirectional return_state list [output, h_fw, c_fw, h_bw, c_bw] -> states (h, c) "
                             "per direction (forward, backward)")
            else:
                notes.append("LSTM return_state list [output, h, c] -> states (h, c)")
            if L > 1:
                notes.append("every layer is built with return_state=True so lower layers' states are collected "
                             "from their returns (layers[l][1:]); states ordered by layer, then direction")
        return shape_only_arrays(obs) if shapes_only else obs
