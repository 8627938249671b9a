"""Keras 3: the case's Keras model exported by ``model.export(path, format="onnx")`` and run by ONNX Runtime.

``onnx-export-keras-tensorflow``: Keras on TensorFlow, whose ONNX export converts the traced ``tf.function`` with tf2onnx
(``keras/src/export/onnx.py``: ``tf2onnx.convert.from_function``). ``onnx-export-keras-torch``: Keras on torch, whose
export calls ``torch.onnx.export`` (with a dimension of unknown size in the input signature, the TorchScript
exporter with ``dynamic_axes``; with none, the current exporter first, falling back to TorchScript on any exception).
Keras on JAX exports through jax2onnx, not included (it pulls equinox, optax, orbax and more into the install).

What is exported is what a Keras user exports: a ``keras.Model`` over the ``keras-<backend>`` adapter's own layers
(built and loaded as that adapter builds them), called on ``keras.Input``s of unknown batch (the input; the
``(B, T)`` mask and the initial states as inputs of their own when the case gives them), its outputs the top
layer's returns then the lower layers' states (``keras3.model_outputs``). The ONNX model's outputs come back in that
order and are normalized by the Keras adapter's own code, so a difference is the export's.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..reference import fed_input_size, fed_state_shape
from ..spec import Config
from .base import Observation, native
from .keras3 import Keras3, _flat, model_outputs, nested_numpy, outputs_of, returned_paths
from .exported import RunsOnOnnxRuntime, lstm_nodes, lstm_weights, ops_in_words

EXPORTS = {
    "onnx-export-keras-tensorflow": ("tensorflow", ("tf2onnx",), "keras",
                              "model.export(format='onnx') on TensorFlow (tf2onnx.convert.from_function)"),
    "onnx-export-keras-torch": ("torch", ("onnxscript",), "keras",
                         "model.export(format='onnx') on torch (torch.onnx.export; TorchScript with dynamic_axes for "
                         "the unknown batch)"),
}


class KerasOnnxExport(RunsOnOnnxRuntime, Keras3):
    def __init__(self, impl_id: str):
        backend, extra, self.param_formula, self.api = EXPORTS[impl_id]
        super().__init__(backend)
        self.id = impl_id
        self.requires = self.requires + ("onnx", "onnxruntime") + extra
        self.install_hint = "pip install 'lstm-conformance[onnx-export]'"

    # ---- static half ----
    def unsupported(self, cfg: Config) -> str | None:
        if cfg.calls > 1:
            return ("calls > 1: an exported ONNX model keeps no state between runs (a stateful layer's states are "
                    "variables of the Keras model, not inputs of the graph)")
        if cfg.training:
            return "training=True: model.export exports the inference call (training=False)"
        return super().unsupported(cfg)

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        L, D, B, T, F = cfg.num_layers, cfg.directions, cfg.batch, cfg.timesteps, fed_input_size(cfg)
        travel = "float32" if cfg.dtype == "bfloat16" else cfg.dtype
        layers = [self._construct(cfg, cfg.return_sequences if l == L - 1 else True, l, quote=chr(34))
                  for l in range(1 if cfg.stacked_cells else L)]
        lines = ["import os", f"os.environ[\"KERAS_BACKEND\"] = \"{self.backend}\"", "import tempfile",
                 "import keras", "import numpy as np", "import onnxruntime", "",
                 f"keras.utils.set_random_seed({cfg.seed})", f"rng = np.random.default_rng({cfg.seed})",
                 f"feeds = [rng.standard_normal(({B}, {T}, {F})).astype(\"{travel}\")]",
                 f"inputs = [keras.Input(shape=({T}, {F}), dtype=\"{cfg.dtype}\")]  # batch unknown, as users export"]
        if cfg.masked:
            mask = ([[t < n for t in range(T)] for n in cfg.lengths] if cfg.lengths is not None
                    else [[bool(v) for v in row] for row in cfg.mask])
            lines += [f"feeds.append(np.array({mask}))  # (B, T): True at the real steps",
                      f"inputs.append(keras.Input(shape=({T},), dtype=\"bool\"))"]
        if cfg.initial_state != "none":
            lines.append("states = []  # per layer: " + ("[h, c]" if D == 1 else "[h_fw, c_fw, h_bw, c_bw]"))
            for l in range(L):
                shapes = [fed_state_shape(cfg, r, l * D + d) for d in range(D) for r in ("h", "c")]
                lines += [f"states.append([keras.Input(batch_shape=(None, w), dtype=\"{cfg.dtype}\") "
                          f"for _, w in {shapes}])",
                          f"feeds += [rng.uniform(-0.5, 0.5, shape).astype(\"{travel}\") for shape in {shapes}]"]
            lines.append("inputs += [t for pair in states for t in pair]")
        lines.append("layers = [\n" + "".join(f"    {c},\n" for c in layers) + "]")
        call = (", mask=inputs[1]" if cfg.masked else "") + (
            ", initial_state=states" + ("" if cfg.stacked_cells else "[l]") if cfg.initial_state != "none" else "")
        lines += ["h, returned = inputs[0], []", "for l, layer in enumerate(layers):",
                  f"    r = layer(h{call})", "    returned.append(r)",
                  "    h = r[0] if isinstance(r, (list, tuple)) else r"]
        if cfg.go_backwards and L > 1 and not cfg.stacked_cells:
            lines.append("    h = keras.ops.flip(h, axis=1) if l < len(layers) - 1 else h  # back to time order")
        lines += ["flat = lambda r: [t for x in r for t in flat(x)] if isinstance(r, (list, tuple)) else [r]",
                  f"outputs = flat(returned[-1]) + [t for r in returned[:-1] if isinstance(r, list) "
                  f"for t in flat(r[{outputs_of(cfg)}:])]",
                  "model = keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs)",
                  "model(feeds if len(feeds) > 1 else feeds[0])  # Keras exports no model never called",
                  "path = os.path.join(tempfile.mkdtemp(), 'lstm.onnx')",
                  "model.export(path, format='onnx', verbose=False)",
                  "session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])",
                  "out = session.run(None, {i.name: f for i, f in zip(session.get_inputs(), feeds)})"]
        if len(self._paths(cfg)) == 1:
            lines.append("out = out[0]  # one output")
        lines += [f'print("out{p}", tuple(out{p}.shape))' for p in self._paths(cfg)]
        lines.append("# no parameter count: the exported graph's depends on how the exporter lowered the layer")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _paths(cfg: Config) -> list[str]:
        return returned_paths(cfg)

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        versions = self._setup_runtime(super().setup())
        if self.backend == "tensorflow":
            import tf2onnx
            versions["tf2onnx"] = tf2onnx.__version__
        return versions

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        raise NotImplementedError("an exported model's shapes come from exporting it, which traces the model: the "
                                  f"keras-{self.backend} adapter's own inference covers the Keras layers")

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        raise NotImplementedError("shape-only: an export traces the model (the run's own cost); this adapter has no "
                                  "shape-only path")

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        self._exported = None
        obs = super().run(cfg, device, x, weights, init)
        model = self._exported
        obs.construct = (obs.construct.replace("; under torch.no_grad()", "")
                         + f"; as keras.Model(inputs, outputs) exported by {self.api} to {ops_in_words(model)}, run by "
                         "onnxruntime (CPUExecutionProvider)")
        obs.normalization.insert(0, "exported: keras.Model over the layers, called on keras.Input(shape=(T, F)) (batch "
                                    "unknown)" + (", a (T,) bool mask Input" if cfg.masked else "")
                                 + (", initial-state Inputs" if init is not None else "")
                                 + "; the model called once on the case's inputs (Keras exports no model never "
                                   "called), then model.export(path, format='onnx'); the ONNX model's outputs, in the "
                                   "model's output order, put back in the layers' "
                                   "return structure and normalized as the Keras adapter does")
        # No parameter count: the exported graph's count depends on how the layer was lowered (tf2onnx: one LSTM node
        # whose B is always [Wb, Rb], zeros without use_bias; a Loop of MatMuls for a masked layer; torch: unrolled
        # steps), so no one formula holds; the constants the LSTM nodes read are listed as the params
        obs.param_count = None
        if lstm_nodes(model):
            _, obs.params = lstm_weights(model)
            obs.normalization.append("parameters: the floating-point constants the exported LSTM nodes' W, R, B are "
                                     f"computed from ({', '.join(p['name'] for p in obs.params)}); no count is "
                                     "checked (the count depends on how the exporter lowered the layer)")
        else:
            obs.normalization.append("the exported graph has no LSTM node (the recurrence is a Loop, or unrolled into "
                                     "per-step MatMul / Sigmoid / Tanh nodes): the params listed are the Keras layers'; "
                                     "no count is checked")
        return obs

    def _calls(self, cfg: Config, device: str, layers: list, xin, mask, initial, symbolic: bool):
        """The layers as a functional model, exported and run by ONNX Runtime on the call's inputs (symbolic calls:
        the Keras adapter's own)."""
        if symbolic:
            return super()._calls(cfg, device, layers, xin, mask, initial, symbolic)
        keras = self._keras
        shapes = None if initial is None else [
            tuple((None if cfg.feed_state_batch is None else b, w) for b, w in
                  (fed_state_shape(cfg, r, k) for r in ("h", "c")))
            for k in range(cfg.num_layers * cfg.directions)]
        with native("build"):
            sym_x, sym_mask, sym_initial = self._symbolic_inputs(cfg, None, cfg.timesteps, shapes, model=True)
            returned_ = nested_numpy(self._stack(cfg, layers, sym_x, sym_mask, sym_initial), lambda t: t)   # lists
            inputs = [sym_x] + ([sym_mask] if sym_mask is not None else []) + [t for p in sym_initial or [] for t in p]
            model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, model_outputs(cfg, returned_))
            # Keras's ONNX export refuses a model never called ("The model provided has never called",
            # keras/src/export/onnx.py: model._called), functional ones included: called once on the case's inputs
            called = [xin] + ([mask] if mask is not None else []) + [t for p in initial or [] for t in p]
            model(called[0] if len(called) == 1 else called)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "lstm.onnx")
                model.export(path, format="onnx", verbose=False)
                self._exported = self._onnx.load(path)
            session = self._ort_session(self._exported)
        to_np = keras.ops.convert_to_numpy
        feeds = [to_np(xin)] + ([to_np(mask)] if mask is not None else []) + [
            to_np(t) for p in initial or [] for t in p]
        names = [i.name for i in session.get_inputs()]
        if len(names) != len(feeds):
            raise RuntimeError(f"the exported model takes {len(names)} inputs ({names}) for the model's {len(feeds)}")
        with native("call"):
            outs = session.run(None, dict(zip(names, feeds)))
        expected = len(_flat(model_outputs(cfg, returned_)))
        if len(outs) != expected:
            raise RuntimeError(f"the exported model returns {len(outs)} outputs, the Keras model {expected}")
        it = iter(outs)

        def fill(r):
            return [fill(t) for t in r] if isinstance(r, (list, tuple)) else next(it)
        n = outputs_of(cfg)
        # a lower layer's output is no output of the model (the next layer read it): an empty stand-in, never read
        top = fill(returned_[-1])                    # the model's outputs: the top layer's returns first
        nested = [[np.empty(0)] * n + [fill(t) for t in r[n:]] if isinstance(r, list) else np.empty(0)
                  for r in returned_[:-1]]
        nested.append(top)
        return [nested]

