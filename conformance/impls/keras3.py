"""Keras 3: a stack of ``keras.layers.LSTM`` layers, each wrapped in ``keras.layers.Bidirectional``
when the case is bidirectional, called eagerly one on the output of the previous one, with the
canonical weights assigned to their variables.

Native facts this adapter maps: input is always batch-first ``(B, T, F)`` (there is no
``time_major`` argument in Keras 3, and ``InputSpec(ndim=3)`` refuses unbatched input); without
``return_state`` a layer returns one tensor, ``(B, T, F')`` with ``return_sequences`` else the
final hidden state ``(B, F')``; with ``return_state`` an LSTM returns the tuple
``(output, h, c)`` and a ``Bidirectional`` returns ``(output, h_fw, c_fw, h_bw, c_bw)``; the
directions are merged by ``merge_mode``; a layer has one bias vector (``use_bias``); there is no
projection. States exist per layer, so every layer gets ``return_state`` and the lower layers'
states are collected as they are produced. ``Bidirectional`` has its own dtype policy (the
global default, float32) that it does not take from the wrapped layer: with ``dtype="float64"`` on
the LSTM only, it casts its input to float32 and returns a float32 merged output beside float64
states; that is recorded as returned, not corrected.

Weights: an LSTM cell holds ``kernel (in, 4H)``, ``recurrent_kernel (H, 4H)`` and ``bias (4H)``
with the gates in the order i, f, c, o: the canonical ``W``, ``U`` and ``b`` exactly, no
transpose, no reordering. A ``Bidirectional`` holds two LSTM copies, ``forward_layer`` and
``backward_layer`` (the latter built with ``go_backwards=True``), each with its own cell.

Lengths are a boolean mask ``(B, T)`` passed as ``mask=`` to every layer's call; initial states
are ``initial_state=[h0, c0]`` for an LSTM and ``[h_fw, c_fw, h_bw, c_bw]`` for a
``Bidirectional`` (it gives the first half to its forward layer); ``go_backwards`` is
``LSTM(go_backwards=True)``, which returns its output sequence in processing order (reversed).

``merge_mode: none`` is ``Bidirectional(merge_mode=None)``, which returns the forward and backward outputs
apart (canonically side by side); ``cell_api`` builds ``RNN(LSTMCell(...))`` (the cell's keywords to the
cell, the others to the RNN); ``calls`` > 1 builds the layers ``stateful=True`` and calls them again
(initial states only in the first call; on JAX eagerly, as a jitted ``StatelessScope`` would not keep
the states); ``resets`` calls every layer's ``reset_state()`` before the named calls (and gives
``initial_state`` again); ``training`` calls with ``training=True``. ``stacked_cells`` builds one
``RNN([LSTMCell(H0), LSTMCell(H1), ...])`` (Keras's StackedRNNCells) whose return nests each cell's
``[h, c]`` and whose ``initial_state`` is nested the same way; a ``hidden_size`` list gives each layer (or
cell) its own ``units``.

The backend is fixed when Keras is imported, from ``KERAS_BACKEND`` (set in ``env`` before the
worker imports anything), so one adapter instance serves exactly one backend: ``keras-tensorflow``,
``keras-jax`` and ``keras-torch`` run the same layers and the same mapping, and where they differ the
backend does. Per backend:

- TensorFlow: layers called eagerly (``tf.function`` is not involved); TF32 off
  (``enable_tensor_float_32_execution(False)``, which also covers cuDNN RNNs).
- JAX: eager Keras ops compile every ``lax.scan`` anew (a new closure per layer call), so the stack is
  run as one ``jax.jit`` of the layers' ``stateless_call`` (what Keras's own JAX trainer jits), cached
  per configuration structure with its layers: a configuration seen before (another seed, other
  lengths) reuses the compiled program and only gets its weights assigned. ``jax_enable_x64`` is on
  (``JAX_ENABLE_X64`` in ``env``): without it JAX silently makes float64 variables float32 while the
  Keras variable still says float64. Matmul precision "highest" (no TF32 on GPU). TensorFlow is not
  needed (nor imported).
- torch: layers called eagerly under ``torch.no_grad()``; ``keras.device("cpu")`` (not "cpu:0", see
  ``_keras_device``); TF32 off in cuBLAS and cuDNN (Keras's torch LSTM runs ``torch._VF.lstm``, cuDNN,
  on CUDA without a mask). TensorFlow is not needed (nor imported).

The default recurrent initializer (Orthogonal, a QR decomposition in the variable's dtype) cannot
run in 16 bits where the backend has no 16-bit QR; such layers are built with ``glorot_uniform``,
whose values the canonical weights replace (``_INIT_WITHOUT_QR``).

Where the backends compute differently (recorded, not corrected): Keras's type promotion
(``backend.result_type``) demotes float64 to float32 on every backend but TensorFlow
(keras-team/keras#23223), and each backend applies it to other ops: JAX's ``keras.ops.tanh`` (so a
float64 LSTM on JAX is float32-accurate, float64 tensors throughout), torch's ``keras.ops.matmul``
(so a masked float64 LSTM on torch, which runs ``LSTMCell.call`` in the generic RNN loop, is; unmasked,
Keras's torch LSTM is a plain-torch loop and float64-accurate). torch's ``keras.ops.matmul`` also
computes float16 in float32 on the CPU (masked runs).
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections import OrderedDict

import numpy as np

from ..reference import (array_dtype, direction_names, fed_input_size, fed_state_shape, layer_input_size,
                         to_native_layout, valid_mask)
from ..spec import Config
from . import jax_cache
from .base import (Impl, Observation, dtype_name, native, one_batch_axis, per_layer_unsupported, placeholder,
                   returned)

# Environment per backend: select it, keep its logging quiet, and keep it from grabbing all GPU memory
# (several frameworks' workers may share one GPU).
_BACKEND_ENV = {
    "tensorflow": {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true"},
    "jax": {"TF_CPP_MIN_LOG_LEVEL": "3", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_ENABLE_X64": "true"},
    "torch": {"TF_CPP_MIN_LOG_LEVEL": "3"},
}

# Canonical tensor -> the LSTM cell's variable holding it (same layout, same gate order i, f, g(c), o).
_VARIABLES = (("W", "kernel"), ("U", "recurrent_kernel"), ("b", "bias"))

# Modules each backend needs (missing() checks them without importing anything): never TensorFlow for
# JAX or torch.
_REQUIRES = {"tensorflow": ("keras", "tensorflow"), "jax": ("keras", "jax", "jaxlib"), "torch": ("keras", "torch")}
_INSTALL_HINT = {
    "tensorflow": "pip install 'lstm-conformance[keras]'",
    "jax": "pip install 'lstm-conformance[keras-jax]'",
    "torch": "pip install 'lstm-conformance[keras-torch]'",
}

# The default recurrent initializer, Orthogonal, runs a QR decomposition in the variable's dtype, and not
# every backend has a 16-bit QR: TensorFlow's Qr op has no bfloat16 kernel ("Value for attr 'T' of
# bfloat16 is not in the list of allowed values", keras-team/keras#16970); JAX's LAPACK-backed qr has
# neither float16 nor bfloat16 ("Unsupported dtype float16.", jax-ml/jax#30176); torch's geqrf neither
# ('"geqrf_cpu" not implemented for \'Half\'', pytorch/pytorch#9315). LSTM(dtype=...) then fails in
# build(). The initial values are replaced by the canonical weights anyway, so those builds use another
# initializer.
_NO_QR_DTYPES = {"tensorflow": ("bfloat16",), "jax": ("float16", "bfloat16"), "torch": ("float16", "bfloat16")}
_INIT_WITHOUT_QR = {"recurrent_initializer": "glorot_uniform"}
# Shape-only and symbolic builds: no value is ever read, so every variable starts as zeros (no QR, no draws).
_CHEAP_INIT = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros", "bias_initializer": "zeros"}
_CHEAP_NOTE = ("shape-only: the layers are built with every initializer 'zeros' (kernel, recurrent, bias) instead of "
               "the canonical weights, and (but for stateful layers) inside keras.StatelessScope(initialize_variables="
               "False), which declares the variables without initializing them: the values are never read, the "
               "variables' shapes and dtypes are the same; non-stateful layers built by an earlier shape-only run from the "
               "same constructor calls for the same feature sizes are reused (their variables depend on neither the "
               "batch, the time steps, masks nor initial states)")
# keras-jax: compiled stacks kept (layers + jitted forward), least recently used dropped first.
_JIT_CACHE_SIZE = 64
# shape-only: built layers kept per structure (see Keras3._cheap_layers), and symbolic calls per layers
_SHAPE_CACHE_SIZE = 256
_SHAPE_LAYER_USES = 64


def _widen(a: np.ndarray) -> np.ndarray:
    """bfloat16 (ml_dtypes, as TensorFlow and JAX hand it to NumPy) -> float32, exactly; others as they are."""
    return a.astype(np.float32) if str(a.dtype) == "bfloat16" else a


class Keras3(Impl):
    param_formula = "keras"

    def __init__(self, backend: str = "tensorflow"):
        if backend not in _BACKEND_ENV:
            raise ValueError(f"unknown Keras backend {backend!r}; known: {', '.join(_BACKEND_ENV)}")
        self.backend = backend
        self.id = f"keras-{backend}"
        self.requires = _REQUIRES[backend]
        self.install_hint = _INSTALL_HINT[backend]
        self.env = {"KERAS_BACKEND": backend, **_BACKEND_ENV[backend]}
        self._jitted: OrderedDict = OrderedDict()   # keras-jax: structure key -> (layers, jitted forward)
        self._shape_layers: OrderedDict = OrderedDict()   # shape-only: layer key -> [layers, symbolic calls made]
        self._ran = None            # (cfg, device, layers) of the last eager run, for infer after it

    # ---- static half: no framework imports ----
    # set from the case's fields (the initializers: the canonical weights are loaded over them)
    own_keywords = ("units", "return_sequences", "return_state", "use_bias", "go_backwards", "time_major", "dtype",
                    "activation", "recurrent_activation",
                    "kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias",
                    "zero_output_for_mask", "dropout", "recurrent_dropout", "stateful")

    def unsupported(self, cfg: Config) -> str | None:
        stack = stack_unsupported(cfg, "keras.layers")
        if stack:
            return stack
        if cfg.layer_dropout:
            return ("keras.layers.LSTM has no dropout between stacked layers (torch's dropout; Keras's own dropout "
                    "is on each cell's input, the field dropout)")
        if cfg.proj_size:
            return (f"keras.layers.LSTM has no projection (torch's proj_size); proj_size={cfg.proj_size} "
                    "has no native equivalent")
        if cfg.layout == "time_major":
            return ("Keras 3 LSTM has no time_major argument (tf-keras 2 had one; Keras 3 rejects it as an "
                    "unrecognized keyword argument): input is always (B, T, F)")
        if cfg.layout == "unbatched":
            return ("Keras RNN layers require 3-D input (InputSpec(ndim=3)); unbatched (T, F) input is "
                    "rejected with 'expected ndim=3, found ndim=2'")
        return self.native_conflict(cfg)

    def _lstm_kwargs(self, cfg: Config, return_sequences: bool) -> list[tuple[str, object]]:
        """The LSTM constructor's arguments after ``units``, as (name, value), in the order written."""
        kw = [("return_sequences", return_sequences), ("return_state", cfg.return_state), ("use_bias", cfg.bias)]
        if cfg.go_backwards:
            kw.append(("go_backwards", True))
        kw += [(name, getattr(cfg, name)) for name, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid"))
               if getattr(cfg, name) != default]
        if cfg.zero_output_for_mask:
            kw.append(("zero_output_for_mask", True))
        kw += [(name, getattr(cfg, name)) for name in ("dropout", "recurrent_dropout") if getattr(cfg, name)]
        if cfg.calls > 1:
            kw.append(("stateful", True))
        if cfg.dtype in _NO_QR_DTYPES[self.backend]:
            kw += list(_INIT_WITHOUT_QR.items())
        return kw + [("dtype", cfg.dtype)] + list(cfg.native_for(self.id).items())

    def _construct(self, cfg: Config, return_sequences: bool, layer: int, quote: str = "'") -> str:
        if cfg.stacked_cells:
            return stacked_src("keras.layers", cfg, self._lstm_kwargs(cfg, return_sequences), quote)
        lstm = lstm_src("keras.layers", cfg, self._lstm_kwargs(cfg, return_sequences), quote, cfg.layer_hidden(layer))
        return (f"keras.layers.Bidirectional({lstm}, merge_mode={merge_src(cfg, quote)})"
                if cfg.bidirectional else lstm)

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        setup, build, count = stack_snippet(
            cfg, lambda seq, layer: self._construct(cfg, seq, layer, quote=chr(34)),
            tensor='keras.ops.convert_to_tensor({}, dtype="%s")' % cfg.dtype, flip="keras.ops.flip(h, axis=1)")
        # return_state: [output, h, c], or [output, h_fw, c_fw, h_bw, c_bw]; else the output tensor alone
        paths = returned_paths(cfg)
        x64 = ('os.environ["JAX_ENABLE_X64"] = "true"  # else JAX makes float64 variables float32\n'
               if self.backend == "jax" else "")
        return (
            "import os\n"
            f"os.environ[\"KERAS_BACKEND\"] = \"{self.backend}\"\n"
            + x64 +
            "import keras\n"
            "import numpy as np\n"
            "\n"
            f"keras.utils.set_random_seed({cfg.seed})\n"
            f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{array_dtype(cfg)}\")\n"
            f"x = keras.ops.convert_to_tensor(x, dtype=\"{cfg.dtype}\")\n"
            + setup
            + build
            + "".join(f'print("out{p}", tuple(out{p}.shape))\n' for p in paths)
            + f'print("params", {count})\n')

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        import keras
        if keras.backend.backend() != self.backend:
            raise RuntimeError(f"Keras was imported with backend {keras.backend.backend()!r}, not "
                               f"{self.backend!r} (KERAS_BACKEND must be set before keras is imported)")
        self._keras = keras
        mod = self._backend_mod = importlib.import_module(self.backend)
        versions = {"keras": keras.__version__, "backend": keras.backend.backend(), self.backend: mod.__version__}
        # Full float32 matmuls on GPU: no TF32 (Ampere and later would round matmul inputs to 10 bits).
        if self.backend == "tensorflow":
            mod.config.threading.set_intra_op_parallelism_threads(1)
            mod.config.threading.set_inter_op_parallelism_threads(1)
            mod.config.experimental.enable_tensor_float_32_execution(False)   # matmuls and cuDNN RNNs
        elif self.backend == "jax":
            import jaxlib
            # float64 exists only in x64 mode (JAX_ENABLE_X64 in env, read when jax is imported; set here
            # too, before any array exists, should the worker have been started without it).
            mod.config.update("jax_enable_x64", True)
            mod.config.update("jax_default_matmul_precision", "highest")   # every matmul in full float32
            jax_cache.enable(mod)
            versions["jaxlib"] = jaxlib.__version__
        elif self.backend == "torch":
            mod.set_num_threads(1)
            mod.backends.cuda.matmul.allow_tf32 = False    # cuBLAS matmuls (the CPU/fallback LSTM path on GPU)
            mod.backends.cudnn.allow_tf32 = False          # cuDNN (torch._VF.lstm, Keras's CUDA LSTM path)
        return versions

    def release(self) -> None:
        """keras-jax: drop the jitted stacks (an XLA executable per shape each) and JAX's in-memory caches."""
        self._shape_layers.clear()
        self._ran = None
        if self.backend == "jax":
            self._jitted.clear()
            self._backend_mod.clear_caches()

    def _gpus(self) -> list:
        mod = self._backend_mod
        if self.backend == "tensorflow":
            return mod.config.list_physical_devices("GPU")
        if self.backend == "jax":
            try:
                return mod.devices("gpu")
            except RuntimeError:          # no GPU backend in this jaxlib, or no GPU
                return []
        return [mod.device("cuda", 0)] if mod.cuda.is_available() else []

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._gpus() else [])

    def device_name(self, device: str) -> str:
        if device != "gpu":
            return "cpu"
        mod, gpu = self._backend_mod, self._gpus()[0]
        if self.backend == "tensorflow":
            return mod.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
        if self.backend == "jax":
            return gpu.device_kind
        return mod.cuda.get_device_name(gpu)

    def _keras_device(self, device: str) -> str:
        """The ``keras.device()`` name for ``device`` on this backend.

        TensorFlow and JAX take "cpu:0" / "gpu:0". The torch backend must be given "cpu", not "cpu:0":
        its Variable is created as ``torch.nn.Parameter(...).to(<the scope's device>)``, and a CPU tensor
        (device "cpu") moved ``.to("cpu:0")`` is copied into a plain Tensor, no longer a Parameter
        (pytorch/pytorch#9303); the layer then wraps it in a new Parameter with requires_grad=True,
        which fails for the int32 seed-generator state every LSTM cell holds ("Only Tensors of floating
        point and complex dtype can require gradients"). "gpu:0" is "cuda:0" there, the device its
        tensors report, so no copy. Without a scope, Keras on torch puts everything on CUDA when it
        exists: the "cpu" device needs the scope too."""
        if self.backend == "torch":
            return "cuda:0" if device == "gpu" else "cpu"
        return "gpu:0" if device == "gpu" else "cpu:0"

    @staticmethod
    def _directions(layer) -> list:
        """The LSTM layers of one stacked layer, in canonical direction order (forward, backward)."""
        return [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]

    @staticmethod
    def _structure(cfg: Config, device: str) -> tuple:
        """What a compiled keras-jax stack depends on: the configuration and device, without what is only
        an input of the call (the seed's numbers, the lengths' values, which initial states)."""
        d = cfg.to_dict()
        d.pop("seed")
        d["lengths"] = cfg.masked                    # lengths or mask: the same (B, T) boolean input
        d.pop("mask")
        d["initial_state"] = cfg.initial_state != "none"
        d["native"] = cfg.native                      # (hashable: the frozen form)
        for numbers in ("input", "kernel_init", "recurrent_init", "bias_init", "unit_forget_bias"):
            d.pop(numbers)                            # the input's and the weights' numbers: inputs of the call
        return (device, *sorted(d.items()))

    def _build(self, cfg: Config, device: str, batch: int | None = -1, time_: int | None = -1,
               cheap: bool = False, lazy: bool = True) -> list:
        """Fresh built layers for ``cfg`` on ``device``, one per canonical layer (random initial values), built
        for input (``batch``, ``time_``, F): the case's sizes by default, None where left unknown (``infer``).
        ``cheap``: every initializer "zeros" (shape-only and symbolic builds, where no value is ever read)."""
        keras = self._keras
        L = cfg.num_layers
        B = cfg.batch if batch == -1 else batch
        T = cfg.timesteps if time_ == -1 else time_
        # The previous run's global state, and layer names restarting at "lstm". No gc.collect(): with
        # two frameworks' worth of objects in the process it costs ~0.5 s per run.
        keras.backend.clear_session(free_memory=False)
        if not cheap:
            keras.utils.set_random_seed(cfg.seed)

        def kwargs(return_sequences):
            kw = self._lstm_kwargs(cfg, return_sequences)
            return kw + list(_CHEAP_INIT.items()) if cheap else kw

        layers = []
        # cheap, not stateful: variables declared, never initialized (a StatelessScope defers the initializers;
        # nothing reads a value); a stateful RNN's state variables are made from a tensor, which a
        # StatelessScope refuses ("You are attempting to create a variable while in a stateless scope")
        # (not for a model's summary: keras.Model would initialize them later, outside the device scope, which
        # keras-torch refuses for the int32 seed-generator state, see _keras_device)
        scope = (keras.StatelessScope(initialize_variables=False) if cheap and lazy and cfg.calls == 1
                 else contextlib.nullcontext())
        with keras.device(self._keras_device(device)), scope:
            if cfg.stacked_cells:
                rnn = stacked_layer(keras.layers, cfg, kwargs(cfg.return_sequences))
                rnn.build((B, T, cfg.input_size))
                return [rnn]
            for l in range(L):
                lstm = lstm_layer(keras.layers, cfg, kwargs(cfg.return_sequences if l == L - 1 else True),
                                  cfg.layer_hidden(l))
                layer = (keras.layers.Bidirectional(lstm, merge_mode=native_merge_mode(cfg)) if cfg.bidirectional
                         else lstm)
                layer.build((B, T, layer_input_size(cfg, l)))   # else built on first call
                layers.append(layer)
        return layers

    def _layers_key(self, cfg: Config, device: str) -> tuple:
        """What a non-stateful stack's built layers are made of: each layer's constructor call as written (its
        source, ``_construct``) and the feature size it is built for, on ``device``. Two configurations with the
        same key get identical layers (the same classes, arguments, variables and names); the batch, the time
        steps, masks, initial states, training and the numbers are inputs of the call only."""
        L = 1 if cfg.stacked_cells else cfg.num_layers
        return (device, cfg.stacked_cells,
                tuple(self._construct(cfg, cfg.return_sequences if l == L - 1 else True, l) for l in range(L)),
                tuple(layer_input_size(cfg, l) for l in range(L)))

    def _cheap_layers(self, cfg: Config, device: str) -> tuple[list, bool]:
        """Shape-only and symbolic builds: the layers for ``cfg``, and whether they were built before. Their
        structure is all that is read (never a value), and a non-stateful Keras LSTM's built layers do not
        depend on the batch or the time steps (its variables are (in, 4H), (H, 4H), (4H)): layers built for a
        configuration of the same structure are reused, at most ``_SHAPE_LAYER_USES`` symbolic calls each (each
        call leaves a node in the layers). Stateful layers (their state variables are per batch) are always new."""
        if cfg.calls > 1:
            return self._build(cfg, device, cheap=True), False
        key = self._layers_key(cfg, device)
        hit = self._shape_layers.get(key)
        if hit is None or hit[1] >= _SHAPE_LAYER_USES:
            hit = self._shape_layers[key] = [self._build(cfg, device, cheap=True), 0]
            built_before = False
            while len(self._shape_layers) > _SHAPE_CACHE_SIZE:
                self._shape_layers.popitem(last=False)
        else:
            built_before = True
        self._shape_layers.move_to_end(key)
        hit[1] += 1
        return hit[0], built_before

    def load_weights(self, cfg: Config, device: str, weights: dict):
        """The built layers (one per canonical layer) with ``weights`` assigned to each cell's kernel,
        recurrent_kernel and bias (cast to the layer's dtype by ``Variable.assign``). keras-jax reuses the
        layers of a compiled stack of the same structure (see ``_structure``)."""
        keras = self._keras
        if self.backend == "jax" and cfg.calls == 1:      # (stateful layers hold states: never reused)
            key = self._structure(cfg, device)
            if key not in self._jitted:
                layers = self._build(cfg, device)
                self._jitted[key] = (layers, self._jit(cfg, layers))
                while len(self._jitted) > _JIT_CACHE_SIZE:
                    self._jitted.popitem(last=False)
            self._jitted.move_to_end(key)
            layers = self._jitted[key][0]
        else:
            layers = self._build(cfg, device)
        with keras.device(self._keras_device(device)):
            for l, d, cell in cells_of(cfg, layers, self._directions):
                for name, attr in _VARIABLES:
                    key = f"layer{l}/{d}/{name}"
                    if key in weights:
                        getattr(cell, attr).assign(np.asarray(weights[key], array_dtype(cfg)))
        return layers

    def read_weights(self, cfg: Config, native) -> dict:
        keras, out = self._keras, {}
        for l, d, cell in cells_of(cfg, native, self._directions):
            for name, attr in _VARIABLES:
                var = getattr(cell, attr, None)
                if var is not None:
                    out[f"layer{l}/{d}/{name}"] = np.asarray(keras.ops.convert_to_numpy(var), array_dtype(cfg))
        return out

    def _stack(self, cfg: Config, layers: list, x, mask, initial) -> list:
        """Call every layer (its ``__call__``, so Keras's input casting and mask handling apply) on the
        previous one's output: the native return of each layer."""
        native, h = [], x
        for l, layer in enumerate(layers):
            kw = {} if mask is None else {"mask": mask}
            if cfg.training:
                kw["training"] = True
            if initial is not None:    # stacked_cells: the one RNN takes every cell's [h, c], nested
                kw["initial_state"] = initial if cfg.stacked_cells else initial[l]
            r = layer(h, **kw)
            native.append(r)
            h = r[0] if isinstance(r, (tuple, list)) else r
            if cfg.go_backwards and l < len(layers) - 1:
                h = self._keras.ops.flip(h, axis=1)       # processing order -> time order for the next layer
        return native

    def _jit(self, cfg: Config, layers: list):
        """keras-jax: ``jax.jit`` of the whole stack, its variables' values an argument (never baked in):
        each layer's ``__call__`` runs in a ``keras.StatelessScope`` mapping the variables to them."""
        keras = self._keras
        variables = [v for layer in layers for v in layer.variables]

        def forward(values, x, mask, initial):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return self._stack(cfg, layers, x, mask, initial)

        jitted = self._backend_mod.jit(forward)
        return lambda x, mask, initial: jitted([v.value for v in variables], x, mask, initial)

    def _symbolic_inputs(self, cfg: Config, B: int | None, T: int | None, state_shapes, model: bool = False) -> tuple:
        """Symbolic tensors for a symbolic call: the input (B, T, F), the (B, T) bool mask when the case masks, the
        initial states per layer ([h0, c0] or [h_fw, c_fw, h_bw, c_bw]) of ``state_shapes`` ((h shape, c shape)
        per layer and direction; None: not given). A size None is unknown. ``keras.KerasTensor``s (Keras's
        symbolic tensor, which a layer's ``__call__`` takes as it takes a ``keras.Input``'s, without building an
        InputLayer per tensor); ``model``: ``keras.Input``s, which a ``keras.Model`` needs as its inputs."""
        keras, L, D = self._keras, cfg.num_layers, cfg.directions

        def tensor(shape, dtype):
            return (keras.Input(batch_shape=shape, dtype=dtype) if model
                    else keras.KerasTensor(shape, dtype=dtype))
        xin = tensor((B, T, fed_input_size(cfg)), cfg.dtype)
        mask = tensor((B, T), "bool") if cfg.masked else None
        initial = None if state_shapes is None else [
            [tensor(tuple(s), cfg.dtype) for pair in state_shapes[l * D:(l + 1) * D] for s in pair] for l in range(L)]
        return xin, mask, initial

    def _calls(self, cfg: Config, device: str, layers: list, xin, mask, initial, symbolic: bool):
        """Call the stack ``cfg.calls`` times (stateful: each call starts from the state the last one left;
        ``resets``), eagerly or (``symbolic``) on symbolic tensors: each call's native return, nested
        as lists."""
        every = []
        for call in range(1, cfg.calls + 1):
            reset = call in (cfg.resets or ())
            if reset:                          # back to zeros; then the case's initial_state, as in call 1
                for layer in layers:
                    layer.reset_state()
            first = initial if call == 1 or reset else None
            if symbolic:
                r = self._stack(cfg, layers, xin, mask, first)
            elif self.backend == "jax" and cfg.calls == 1:
                r = self._jitted[self._structure(cfg, device)][1](xin, mask, first)
            elif self.backend == "torch":
                with self._backend_mod.no_grad():
                    r = self._stack(cfg, layers, xin, mask, first)
            else:   # (keras-jax stateful: eager, as a jitted StatelessScope would not keep the states)
                r = self._stack(cfg, layers, xin, mask, first)
            every.append(nested_numpy(r, lambda t: t))
        return every

    def _record(self, cfg: Config, returned_: list, returns: list) -> list[tuple]:
        """``record_stack_returns`` / ``record_stacked_returns`` for this stack: the states (h, c)."""
        return (record_stacked_returns(returned_[0], returns) if cfg.stacked_cells else
                record_stack_returns(returned_, direction_names(cfg), returns, outputs_of(cfg)))

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        keras = self._keras
        # After a run: its built layers, called symbolically (Layer.__call__ on symbolic tensors goes through
        # compute_output_spec, RNN's and Bidirectional's compute_output_shape: nothing traced, no state touched;
        # keras-jax's jitted program is compiled already and not retraced).
        B, T, layers, reused = inference_layers(self, cfg, device, unknown)
        shapes = None if cfg.initial_state == "none" else [
            tuple((None if "batch" in unknown and cfg.feed_state_batch is None else b, w)
                  for b, w in (fed_state_shape(cfg, r, k) for r in ("h", "c")))
            for k in range(cfg.num_layers * cfg.directions)]
        with keras.device(self._keras_device(device)), native("call"):
            xin, mask, initial = self._symbolic_inputs(cfg, B, T, shapes)
            returned_ = self._calls(cfg, device, layers, xin, mask, initial, symbolic=True)[-1]
        returns = []
        self._record(cfg, returned_, returns)
        notes = [("the layers the eager run just built and ran, reused (shapes and counts are the same; no value "
                  "is read)") if reused else "layers built with every initializer 'zeros' (no value is read)"]
        if cfg.calls > 1:
            notes.append(f"stateful: called {cfg.calls} times symbolically, as run calls it")
        return {"api": (f"keras.KerasTensor({(B, T, fed_input_size(cfg))}) -> layer(...) symbolically "
                        f"(compute_output_spec), Keras {keras.__version__} on {self.backend}"),
                "returns": returns, "param_count": int(sum(layer.count_params() for layer in layers)),
                "notes": notes}

    def summary(self, cfg: Config, device: str) -> dict:
        keras = self._keras
        stateful = cfg.calls > 1       # stateful RNNs need the batch: "the batch size must be static"
        B = cfg.batch if stateful else None
        with native("build"):
            layers = self._build(cfg, device, batch=B, time_=cfg.timesteps, cheap=True, lazy=False)
        names = layer_names(cfg, layers)
        with keras.device(self._keras_device(device)), native("build"):
            if plain_chain(cfg):
                given = carries_input_shape(cfg.native_for(self.id))
                model = keras.Sequential(layers if given else
                                         [keras.Input(shape=(cfg.timesteps, fed_input_size(cfg)), dtype=cfg.dtype),
                                          *layers])
                how = (f"Sequential([{names}]) (the first layer carries its own {given})" if given else
                       f"Sequential([Input(shape={(cfg.timesteps, fed_input_size(cfg))}), {names}])")
            else:
                shapes = None if cfg.initial_state == "none" else [
                    tuple((B if cfg.feed_state_batch is None else b, w) for b, w in
                          (fed_state_shape(cfg, r, k) for r in ("h", "c")))
                    for k in range(cfg.num_layers * cfg.directions)]
                xin, mask, initial = self._symbolic_inputs(cfg, B, cfg.timesteps, shapes, model=True)
                returned_ = self._calls(cfg, device, layers, xin, mask, initial, symbolic=True)[-1]
                inputs = [xin] + ([mask] if mask is not None else []) + [t for pair in initial or [] for t in pair]
                outputs = model_outputs(cfg, returned_)
                model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
                how = (f"Model(inputs, outputs): functional, over {names} called on keras.Input(batch_shape="
                       f"{(B, cfg.timesteps, fed_input_size(cfg))})"
                       + (", a mask Input" if mask is not None else "")
                       + (", initial-state Inputs" if initial is not None else "")
                       + ("; batch known: a stateful RNN needs it" if stateful else ""))
        lines = []
        model.summary(print_fn=lambda line, line_break=True: lines.append(line))
        return {"text": strip_ansi("\n".join(lines)), "how": how}

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        return self._observe(cfg, device, init, x, weights)

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        return self._observe(cfg, device, init)

    def _observe(self, cfg: Config, device: str, init, x: np.ndarray | None = None,
                 weights: dict | None = None) -> Observation:
        """``run`` (``x`` and ``weights`` given: the layers hold the weights and compute) or ``run_shapes``
        (None: layers called on ``keras.KerasTensor`` inputs of every size known, nothing computed); the
        same records and normalization either way."""
        keras = self._keras
        L, D = cfg.num_layers, cfg.directions
        shapes_only = x is None
        t0 = time.perf_counter()
        compiled = (not shapes_only and self.backend == "jax" and cfg.calls == 1
                    and self._structure(cfg, device) in self._jitted)
        self._ran = None
        with native("build"):
            if shapes_only:
                layers, reused = self._cheap_layers(cfg, device)
            else:
                layers = self.load_weights(cfg, device, weights)
                self._ran = (cfg, device, layers)       # for infer after the run: the same layers, called symbolically
        with keras.device(self._keras_device(device)):
            if shapes_only:
                with native("call"):
                    xin, mask, initial = self._symbolic_inputs(
                        cfg, cfg.batch, cfg.timesteps,
                        None if init is None else [(np.shape(h), np.shape(c)) for h, c in init])
            else:
                xin = keras.ops.convert_to_tensor(np.asarray(to_native_layout(cfg, x), array_dtype(cfg)),
                                                  dtype=cfg.dtype)
                mask = keras.ops.convert_to_tensor(valid_mask(cfg), dtype="bool") if cfg.masked else None
                initial = None if init is None else [
                    [keras.ops.convert_to_tensor(np.asarray(s, array_dtype(cfg)), dtype=cfg.dtype)
                     for pair in init[l * D:(l + 1) * D] for s in pair] for l in range(L)]
            t1 = time.perf_counter()
            with native("call"):
                every = self._calls(cfg, device, layers, xin, mask, initial, symbolic=shapes_only)
                convert = ((lambda t: placeholder(t.shape, dtype_name(t.dtype))) if shapes_only
                           else keras.ops.convert_to_numpy)          # (convert_to_numpy waits for the device)
                arrays = [nested_numpy(r, convert) for r in every]
        t2 = time.perf_counter()
        call_outputs = [_call_output(cfg, r[-1]) for r in arrays] if cfg.calls > 1 else []
        returned_ = arrays[-1]

        calls = []
        if cfg.masked:
            calls.append("mask=<(B, T) bool, True at valid steps>")
        if init is not None:
            calls.append("initial_state=" + ("[h0, c0]" if D == 1 else "[h_fw, c_fw, h_bw, c_bw]"))
        if cfg.training:
            calls.append("training=True")
        how = (" called as layer(x" + "".join(", " + c for c in calls) + ")") if calls else ""
        between = ("; each lower layer's output is flipped along time (keras.ops.flip(axis=1)) before the next "
                   "layer reads it" if cfg.go_backwards and L > 1 and not cfg.stacked_cells else "")
        if shapes_only:
            between += ("; called symbolically on keras.KerasTensor inputs of every size known "
                        "(compute_output_spec), nothing computed")
        else:
            between += {"jax": "; the whole call jitted: jax.jit of the layers' __call__ in a keras.StatelessScope "
                               "holding their variables' values" if cfg.calls == 1 else "",
                        "torch": "; under torch.no_grad()", "tensorflow": ""}[self.backend]
        if cfg.calls > 1:
            between += (f"; called {cfg.calls} times on the same input (stateful=True: each call starts from the "
                        "states the previous one left in the layers" + ("; initial_state only in the first call"
                                                                          if init is not None else "")
                        + (f"; before call(s) {', '.join(map(str, cfg.resets))} every layer's reset_state() zeroes "
                           "them" + (" and initial_state is given again" if init is not None else "")
                           if cfg.resets else "")
                        + (", eagerly: a jitted StatelessScope would not keep them"
                           if self.backend == "jax" and not shapes_only else "")
                        + "); the last call's returns are compared")
        obs = Observation(
            construct=(stack_construct(cfg, lambda seq, layer: self._construct(cfg, seq, layer))
                       + how + between),
            params=[{"name": w.path, "shape": [int(d) for d in w.shape]} for layer in layers for w in layer.weights],
            param_count=int(sum(layer.count_params() for layer in layers)),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
        notes = obs.normalization
        if shapes_only:
            notes.append(_CHEAP_NOTE)
            obs.timings["layers_built_before"] = float(reused)
        elif self.backend == "jax":
            obs.timings["jit_compiled_before"] = float(compiled)
            notes.append("Keras on JAX, x64 mode on (float64 exists only there); " + (
                "stateful calls run eagerly (a jitted StatelessScope would not keep the layers' states)"
                if cfg.calls > 1 else "the stack is one jax.jit program "
                         + ("compiled by an earlier run of the same structure (its layers reused, the weights "
                            "assigned anew)" if compiled else "compiled by this run (run_s includes the compilation)")))
        elif self.backend == "torch":
            notes.append(f"Keras on torch, under keras.device({self._keras_device(device)!r}) and torch.no_grad()")
        # the returns as returned (shape-only: the symbolic tensors, whose dtype is the framework's, bfloat16
        # included); the states and output from the arrays (placeholders of the inferred shapes)
        states = self._record(cfg, every[-1] if shapes_only else returned_, obs.returns)
        if shapes_only:
            states = self._record(cfg, returned_, [])
        top_dtype = obs.returns[0]["dtype"]     # the top output's, as returned (before any widening)
        obs.call_outputs = call_outputs or None

        obs.output = canonical_output(cfg, returned_[-1])
        if outputs_of(cfg) == 2:
            notes.append("merge_mode=None returns the forward and the backward outputs apart (the backward one in time "
                         "order): canonical output = the two side by side, forward first")
        notes.append("canonical weights W, U, b -> each LSTM cell's kernel (in, 4H), recurrent_kernel (H, 4H), "
                     "bias (4H) as they are: same layout and gate order (i, f, c, o)"
                     + ("; Bidirectional: forward_layer.cell <- forward, backward_layer.cell <- backward"
                        if cfg.bidirectional else ""))
        notes.append("input and output are batch-first natively: no layout change")
        if cfg.stacked_cells:
            notes.append(f"stacked_cells: one RNN over {L} LSTMCells (StackedRNNCells), stepped together per time step, "
                         "each cell reading the one below's h; canonical layer l <- rnn.cell.cells[l]; initial_state "
                         "is nested, [[h, c] of each cell]")
        elif L > 1:
            notes.append(f"{L} layers stacked by calling each on the previous one's output; lower layers use "
                         "return_sequences=True, the top layer the case's return_sequences")
        if cfg.lengths is not None:
            notes.append(f"lengths {list(cfg.lengths)} -> a boolean mask (B, T), True at steps t < length, passed as "
                         "mask= to every layer's call (Keras's own mechanism: what Masking or "
                         "Embedding(mask_zero=True) attach); the native return structure is unchanged, and the outputs "
                         "at padded steps are left as returned")
        if cfg.mask is not None:
            notes.append("mask (B, T) passed as mask= to every layer's call, True at the real steps (Keras's own "
                         "mechanism); the outputs at masked steps are left as returned")
        if init is not None:
            notes.append("initial states (h0, c0) per layer and direction -> initial_state="
                         + ("[h0, c0]" if D == 1 else "[h_fw, c_fw, h_bw, c_bw] (Bidirectional gives the first half to "
                                                      "its forward layer, the second to its backward layer)")
                         + f" in each layer's call, as {cfg.dtype} tensors")
        if cfg.go_backwards:
            notes.append("go_backwards -> keras.layers.LSTM(go_backwards=True)"
                         + (", every layer; each lower layer's output sequence, returned in processing order "
                            "(reversed time), is flipped to time order (keras.ops.flip(axis=1)) before the next "
                            "layer reads it, so every layer reads the sequence in time order and runs backwards over "
                            "it (unflipped, the next go_backwards layer would read it forwards)" if L > 1 else ""))
        if cfg.return_sequences:
            if cfg.go_backwards:
                notes.append("output = the top layer's output sequence flipped along time (axis 1): "
                             "LSTM(go_backwards=True) returns it in processing order, last time step first")
            else:
                notes.append("output = the top layer's output sequence (B, T, F')"
                             + (f" with directions merged by merge_mode={cfg.merge_mode!r}; the backward "
                                "direction is already in original time order" if cfg.bidirectional else ""))
        else:
            notes.append("output = the top layer's output (B, F'), which Keras already makes the final hidden "
                         "state" + (f" of each direction merged by merge_mode={cfg.merge_mode!r} (backward: the "
                                    "state after reading time step 0)" if cfg.bidirectional else
                                    " (go_backwards: the state after reading time step 0)" if cfg.go_backwards else ""))
        if cfg.return_sequences and cfg.go_backwards:
            obs.output = _contiguous(obs.output[:, ::-1])
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
                notes.append("Bidirectional return_state order [output, h_fw, c_fw, h_bw, c_bw] -> states (h, c) "
                             "per direction (forward, backward)")
            elif cfg.stacked_cells:
                notes.append("RNN(cells) return_state order [output, [h, c] of cell 0, [h, c] of cell 1, ...] (nested) "
                             "-> states (h, c) per layer")
            else:
                notes.append("LSTM return_state order [output, h, c] -> states (h, c)")
            if L > 1 and not cfg.stacked_cells:
                notes.append("every layer is built with return_state=True so lower layers' states are collected "
                             "from their returns (layers[l][1:]); states ordered by layer, then direction")
        return shape_only_arrays(obs) if shapes_only else obs


# cell_api: the keywords that go to LSTMCell; the others (and the case's native ones) go to the RNN layer
_CELL_KEYWORDS = ("use_bias", "activation", "recurrent_activation", "dropout", "recurrent_dropout", "kernel_initializer",
                  "recurrent_initializer", "bias_initializer", "unit_forget_bias", "dtype")


def inference_layers(impl, cfg: Config, device: str, unknown: tuple[str, ...]) -> tuple:
    """``infer``'s layers (Keras 3 and Keras 2 alike): ``(B, T, layers, reused)``, the batch and the time steps
    (None where unknown) and the layers the last eager ``run`` built for ``cfg`` on ``device`` (``impl._ran``), or
    fresh ones built with cheap initializers. Stateful layers were built for the case's batch: with the batch
    unknown, a build is what refuses."""
    B = None if "batch" in unknown else cfg.batch
    T = None if "time" in unknown else cfg.timesteps
    ran = getattr(impl, "_ran", None)
    layers = ran[2] if ran is not None and ran[1] == device and (ran[0] is cfg or ran[0] == cfg) else None
    reused = layers is not None and (cfg.calls == 1 or B is not None)
    if not reused:
        with native("build"):
            layers = impl._build(cfg, device, batch=B, time_=T, cheap=True)
    return B, T, layers, reused


def stack_unsupported(cfg: Config, module: str) -> str | None:
    """What a stack of ``module``.LSTM layers (Keras 3 and Keras 2 alike) cannot take: several batch axes, a
    stack of no layers, another count of initial-state entries."""
    return (one_batch_axis(cfg, f"{module}.LSTM (InputSpec(ndim=3))")
            or per_layer_unsupported(cfg, f"{module}.LSTM", "initial_state=[h, c], Bidirectional [h_fw, c_fw, h_bw, c_bw]"))


def lstm_layer(layers, cfg: Config, kw: list[tuple[str, object]], units: int):
    """The LSTM layer from ``layers`` (keras.layers or tf_keras.layers) with the keywords ``kw``:
    ``LSTM(units, **kw)``, or with cell_api ``RNN(LSTMCell(units, **cell keywords), **the others)`` (the
    dtype to both)."""
    if not cfg.cell_api:
        return layers.LSTM(units, **dict(kw))
    cell = {k: v for k, v in kw if k in _CELL_KEYWORDS}
    rnn = {k: v for k, v in kw if k not in _CELL_KEYWORDS or k == "dtype"}
    return layers.RNN(layers.LSTMCell(units, **cell), **rnn)


def lstm_src(prefix: str, cfg: Config, kw: list[tuple[str, object]], quote: str, units: int) -> str:
    """The source of :func:`lstm_layer`'s layer, ``prefix`` the module (``keras.layers``)."""
    def args(items):
        return ", ".join(f"{k}={quote}{v}{quote}" if isinstance(v, str) else f"{k}={v}" for k, v in items)
    if not cfg.cell_api:
        return f"{prefix}.LSTM({units}, {args(kw)})"
    cell = [(k, v) for k, v in kw if k in _CELL_KEYWORDS]
    rnn = [(k, v) for k, v in kw if k not in _CELL_KEYWORDS or k == "dtype"]
    return f"{prefix}.RNN({prefix}.LSTMCell({units}, {args(cell)}), {args(rnn)})"


def stacked_layer(layers, cfg: Config, kw: list[tuple[str, object]]):
    """stacked_cells: ``RNN([LSTMCell(H0, **cell keywords), LSTMCell(H1, ...), ...], **the others)``, one RNN
    over every layer's cell (Keras wraps the list in StackedRNNCells)."""
    cell = {k: v for k, v in kw if k in _CELL_KEYWORDS}
    rnn = {k: v for k, v in kw if k not in _CELL_KEYWORDS or k == "dtype"}
    return layers.RNN([layers.LSTMCell(cfg.layer_hidden(l), **cell) for l in range(cfg.num_layers)], **rnn)


def stacked_src(prefix: str, cfg: Config, kw: list[tuple[str, object]], quote: str) -> str:
    """The source of :func:`stacked_layer`'s layer."""
    def args(items):
        return ", ".join(f"{k}={quote}{v}{quote}" if isinstance(v, str) else f"{k}={v}" for k, v in items)
    cell = args([(k, v) for k, v in kw if k in _CELL_KEYWORDS])
    rnn = args([(k, v) for k, v in kw if k not in _CELL_KEYWORDS or k == "dtype"])
    cells = ", ".join(f"{prefix}.LSTMCell({cfg.layer_hidden(l)}, {cell})" for l in range(cfg.num_layers))
    return f"{prefix}.RNN([{cells}], {rnn})"


def nested_numpy(r, convert):
    """A layer's nested return (lists of lists of tensors: stacked_cells nests each cell's [h, c]) as NumPy."""
    return [nested_numpy(t, convert) for t in r] if isinstance(r, (tuple, list)) else convert(r)


def cells_of(cfg: Config, layers: list, directions) -> list[tuple[int, str, object]]:
    """(canonical layer, direction, its Keras LSTMCell) of built layers: each layer's (or Bidirectional
    direction's) cell, or with stacked_cells the one RNN's cells in order."""
    if cfg.stacked_cells:
        return [(l, "forward", cell) for l, cell in enumerate(layers[0].cell.cells)]
    return [(l, d, sub.cell) for l, layer in enumerate(layers)
            for d, sub in zip(direction_names(cfg), directions(layer))]


def record_stacked_returns(r, returns: list) -> list[tuple]:
    """stacked_cells: what the one RNN over the cells returned, ``[output, [h, c] of cell 0, [h, c] of cell
    1, ...]`` with return_state (else the output alone): appended to ``returns``; the (h, c) per layer."""
    if not isinstance(r, list):
        returns.append(returned("", "output", r))
        return []
    returns.append(returned("[0]", "output", r[0]))
    for l, pair in enumerate(r[1:]):
        returns += [returned(f"[{l + 1}][{i}]", role, pair[i], layer=l, direction="forward")
                    for i, role in enumerate(("h", "c"))]
    return [(pair[0], pair[1]) for pair in r[1:]]


def stack_construct(cfg: Config, construct) -> str:
    """The construct of a stack in words, ``construct(return_sequences, layer)`` one layer's source."""
    L = cfg.num_layers
    if L == 1 or cfg.stacked_cells:
        return construct(cfg.return_sequences, 0)
    if cfg.per_layer_sizes:
        return (" then ".join(construct(cfg.return_sequences if l == L - 1 else True, l) for l in range(L))
                + ", each called on the previous one's output")
    return (f"{construct(True, 0)}{f' x {L - 1}' if L > 2 else ''} then "
            f"{construct(cfg.return_sequences, L - 1)}, each called on the previous one's output")


def native_merge_mode(cfg: Config):
    """Keras's merge_mode for the case: the same name, and None for none (outputs returned apart)."""
    return None if cfg.merge_mode == "none" else cfg.merge_mode


def merge_src(cfg: Config, quote: str) -> str:
    return "None" if cfg.merge_mode == "none" else f"{quote}{cfg.merge_mode}{quote}"


def outputs_of(cfg: Config) -> int:
    """How many output tensors a layer returns before its states: 2 for a Bidirectional with merge_mode=None."""
    return 2 if cfg.bidirectional and cfg.merge_mode == "none" else 1


def returned_paths(cfg: Config) -> list[str]:
    """The paths of what the top layer returns, in native order (``out`` alone, or ``out[i]``)."""
    if cfg.stacked_cells:
        return ["[0]"] + [f"[{l + 1}][{i}]" for l in range(cfg.num_layers) for i in range(2)] if cfg.return_state \
            else [""]
    n = outputs_of(cfg) + (2 * cfg.directions if cfg.return_state else 0)
    return [f"[{i}]" for i in range(n)] if n > 1 else [""]


def plain_chain(cfg: Config) -> bool:
    """Whether the construct is a plain chain of single-output layers, each reading the one below's output as
    it is: what articles build as a ``Sequential`` (no states returned or given, no mask, no second output, one
    call, no flip between layers, no call keywords)."""
    return (not cfg.return_state and cfg.initial_state == "none" and not cfg.masked and cfg.merge_mode != "none"
            and cfg.calls == 1 and not cfg.training
            and not (cfg.go_backwards and cfg.num_layers > 1 and not cfg.stacked_cells))


def carries_input_shape(native_kw: dict) -> str | None:
    """The case's native keyword that gives a layer its own input shape (``batch_input_shape``,
    ``input_shape``), or None."""
    return next((k for k in ("batch_input_shape", "input_shape") if k in native_kw), None)


def strip_ansi(text: str) -> str:
    import re
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def layer_names(cfg: Config, layers: list) -> str:
    """The layers in words, as articles write them: ``LSTM(3)``, ``Bidirectional(LSTM(3))``, ``RNN([LSTMCell(3),
    ...])``."""
    if cfg.stacked_cells:
        return f"RNN([{', '.join(f'LSTMCell({cfg.layer_hidden(l)})' for l in range(cfg.num_layers))}])"
    one = [f"RNN(LSTMCell({cfg.layer_hidden(l)}))" if cfg.cell_api else f"LSTM({cfg.layer_hidden(l)})"
           for l in range(len(layers))]
    return ", ".join(f"Bidirectional({o})" if cfg.bidirectional else o for o in one)


def model_outputs(cfg: Config, returned_: list):
    """A functional model's outputs over a symbolic stack: what ``run`` records (the top layer's returns,
    then the lower layers' states), one tensor alone as itself."""
    out = _flat(returned_[-1]) + [t for r in returned_[:-1] if isinstance(r, list) for t in _flat(r[outputs_of(cfg):])]
    return out[0] if len(out) == 1 else out


def _flat(r) -> list:
    return [t for x in r for t in _flat(x)] if isinstance(r, (list, tuple)) else [r]


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``np.ascontiguousarray``, except for a shape-only placeholder (every stride 0), kept as it is."""
    return a if a.size and not any(a.strides) else np.ascontiguousarray(a)


def shape_only_arrays(obs: Observation) -> Observation:
    """Shape-only mode: the observation's output, states and call outputs as placeholders of their canonical
    shapes and dtypes (the normalization may have copied them into real arrays of zeros)."""
    def empty(a):
        return None if a is None else placeholder(a.shape, str(a.dtype))
    obs.output = empty(obs.output)
    if obs.states is not None:
        obs.states = [tuple(empty(t) for t in pair) for pair in obs.states]
    if obs.call_outputs is not None:
        obs.call_outputs = [empty(a) for a in obs.call_outputs]
    return obs


def _call_output(cfg: Config, top) -> np.ndarray:
    """One call's canonical output from the top layer's return, as ``run`` makes ``obs.output`` (Keras 3
    and Keras 2 share it; tf-keras's time_major output is transposed too)."""
    out = np.asarray(canonical_output(cfg, top))
    if cfg.return_sequences:
        time_axis = 0 if cfg.layout == "time_major" else 1
        if cfg.go_backwards:
            out = np.flip(out, axis=time_axis)
        if cfg.layout == "time_major":
            out = out.transpose(1, 0, 2)
    out = _contiguous(out)
    return _widen(out) if str(out.dtype) == "bfloat16" else out


def canonical_output(cfg: Config, top):
    """The canonical output from the top layer's return: its output, or (merge_mode=None) the forward and
    backward outputs side by side, forward first."""
    if outputs_of(cfg) == 2:
        return np.concatenate([np.asarray(top[0]), np.asarray(top[1])], axis=-1)
    return top[0] if isinstance(top, list) else top


def record_stack_returns(native: list, dirs, returns: list, n_out: int = 1) -> list[tuple]:
    """What a stack of Keras LSTM layers returned (Keras 3 and Keras 2 alike: each layer's return as
    a list ``[output, h, c]`` or ``[output, h_fw, c_fw, h_bw, c_bw]`` with return_state, else the
    output; with merge_mode=None ``n_out`` = 2 outputs, forward then backward, come first): appended to
    ``returns`` (the top layer's first, in native order, then the lower layers' states), and the (h, c)
    pairs per layer, then direction."""
    L = len(native)
    roles = ["h", "c"] * len(dirs)
    directions = [d for d in dirs for _ in range(2)]
    states, lower = [], []
    for l, r in enumerate(native):
        top = l == L - 1
        into = returns if top else lower
        if isinstance(r, list):
            if top:
                for i in range(n_out):
                    into.append(returned(f"[{i}]", "output", r[i], layer=l,
                                         direction=dirs[i] if n_out == 2 else None))
            if len(r) == n_out:                   # merge_mode=None without return_state: the outputs alone
                continue
            for i, (role, d) in enumerate(zip(roles, directions), start=n_out):
                path = f"[{i}]" if top else f"layers[{l}][{i}]"
                into.append(returned(path, role, r[i], top=top, layer=l, direction=d))
            states += [(r[n_out + 2 * k], r[n_out + 1 + 2 * k]) for k in range(len(dirs))]
        elif top:
            into.append(returned("", "output", r, layer=l))
    returns += lower
    return states


def stack_snippet(cfg: Config, construct, tensor: str, flip: str, mask_layout: str = "") -> tuple[str, str, str]:
    """The part of a repro snippet that calls a stack of Keras LSTM layers (Keras 3 and Keras 2 alike):
    ``(setup, build, count)`` source lines. ``construct(return_sequences)`` is a layer's constructor
    call, ``tensor`` formats a NumPy expression into the framework's tensor ({}), ``flip`` turns a
    go_backwards layer's output back to time order, ``mask_layout`` is extra source after the mask."""
    L, D, T = cfg.num_layers, cfg.directions, cfg.timesteps
    call = []                       # the extra arguments of each layer's call
    setup = ""
    if cfg.lengths is not None:
        setup += (f"mask = np.arange({T})[None, :] < np.array({list(cfg.lengths)})[:, None]"
                  "  # (B, T): True at the valid steps of each sequence (right padding)\n" + mask_layout)
        call.append("mask=mask")
    elif cfg.mask is not None:
        setup += (f"mask = np.array({[[int(v) for v in row] for row in cfg.mask]}, dtype=bool)"
                  "  # (B, T): True at the real steps of each sequence\n" + mask_layout)
        call.append("mask=mask")
    if cfg.initial_state != "none":
        make = ("rng.uniform(-0.5, 0.5, shape)" if cfg.initial_state == "random" else
                f"np.full(shape, {float({'zeros': 0.0, 'ones': 1.0}.get(cfg.initial_state, cfg.initial_state))!r})")
        order = "[h, c]" if D == 1 else "[h_fw, c_fw, h_bw, c_bw]"
        if cfg.initial_state == "random":
            setup += f"rng = np.random.default_rng([{cfg.seed}, 2])\n"
        setup += ("states = [  # per layer: initial_state=" + order + "\n"
                  + "".join(f"    [{tensor.format(make)} for shape in "
                            f"{[fed_state_shape(cfg, r, l * D + d) for d in range(D) for r in ('h', 'c')]}],\n"
                            for l in range(L)) + "]\n")
    if L == 1 or cfg.stacked_cells:
        if cfg.initial_state != "none":
            call.append("initial_state=states" + ("" if cfg.stacked_cells else "[0]"))
        build = f"layer = {construct(cfg.return_sequences, 0)}\nout = layer({', '.join(['x'] + call)})\n"
        return setup, build, "layer.count_params()"
    items = [construct(True, l) for l in range(L - 1)] + [construct(cfg.return_sequences, L - 1)]
    if cfg.initial_state != "none":
        call.append("initial_state=state")
        loop = "for layer, state in zip(layers, states):"
    else:
        loop = "for layer in layers:"
    step = (f"    out = layer({', '.join(['h'] + call)})\n    h = out[0]  # return_state: [output, *states]\n"
            if cfg.return_state else f"    h = out = layer({', '.join(['h'] + call)})\n")
    if cfg.go_backwards:
        step += f"    h = {flip}  # go_backwards returns reversed time: back to time order\n"
    build = ("layers = [\n" + "".join(f"    {i},\n" for i in items) + "]\n"
             f"h = x\n{loop}  # each layer called on the previous one's output\n" + step)
    return setup, build, "sum(layer.count_params() for layer in layers)"
