"""ONNX: the ``LSTM`` operator, one node per stacked layer (``onnx_model.build``), run by
``onnx.reference.ReferenceEvaluator`` (``onnx-reference``) or by ONNX Runtime (``onnxruntime``).

Native facts this adapter maps: the operator's gate order is i, o, f, c (canonical blocks moved); it holds
two bias vectors, ``B = [Wb, Rb]`` (the canonical one in ``Wb``, zeros in ``Rb``; read back as their sum);
``Y`` keeps the directions on an axis of their own (``(T, D, B, H)``, ``layout=1``: ``(B, T, D, H)``),
``Y_h`` / ``Y_c`` stack them first (``(D, B, H)``; ``layout=1``: ``(B, D, H)``); variable lengths are the
``sequence_lens`` input; a lone backward direction is ``direction="reverse"``, whose ``Y`` is stored in time
order; the cell's functions are the ``activations`` attribute. The operator always returns ``Y``, ``Y_h``
and ``Y_c``: there is no ``return_sequences`` / ``return_state`` switch.

Layout: ``onnx-reference`` feeds a batch-major case to ``layout=1``; ONNX Runtime's CPU kernel refuses
``layout=1`` when the session is created (``lstm_base.h``: "Batchwise recurrent operations (layout == 1)
are not supported"), so ``onnxruntime`` transposes the batch-major input to time-major in the graph
(``Transpose``) and runs ``layout=0``, as torch.onnx's exporter does for ``batch_first``; a case's native
keyword ``layout: 1`` asks it for ``layout=1`` anyway.
"""

from __future__ import annotations

import time

import numpy as np

from ..reference import direction_names, fed_input_size, fed_state_shape, layer_input_size, to_native_layout
from ..spec import Config
from .base import Impl, Observation, native, one_batch_axis, per_layer_unsupported, returned

OPSET = 22       # the LSTM operator's version the models are built for (LSTM-22, the v14 text)
# the cell's functions by the operator's names, with the (alpha, beta) each takes (activation_alpha/beta)
ACTIVATIONS = {"sigmoid": ("Sigmoid", ()), "tanh": ("Tanh", ()), "relu": ("Relu", ()),
               "hard_sigmoid": ("HardSigmoid", (1.0 / 6.0, 0.5)), "elu": ("Elu", (1.0,)),
               "linear": ("Affine", (1.0, 0.0))}


def activation_attrs(recurrent_activation: str, activation: str, directions: int) -> dict:
    """The node's ``activations`` (f, g, h per direction) and their ``activation_alpha`` / ``activation_beta``
    (consumed in that order by the functions that take them), or none where they are the defaults."""
    if (recurrent_activation, activation) == ("sigmoid", "tanh"):
        return {}
    names = [ACTIVATIONS[recurrent_activation], ACTIVATIONS[activation], ACTIVATIONS[activation]] * directions
    attrs: dict = {"activations": [n for n, _ in names]}
    params = [p for _, p in names if p]
    if params:
        attrs["activation_alpha"] = [p[0] for p in params]
        betas = [p[1] for p in params if len(p) > 1]
        if betas:
            attrs["activation_beta"] = betas
    return attrs



class _Inferred:
    """An output as ONNX's shape inference gives it: what ``returned`` reads (a shape, None where unknown; a dtype)."""

    def __init__(self, shape: list, dtype: str):
        self.shape, self.dtype = shape, dtype


RUNTIMES = {
    "onnx-reference": ("onnx.reference.ReferenceEvaluator", ("onnx",), "pip install 'lstm-conformance[onnx]'"),
    "onnxruntime": ("onnxruntime.InferenceSession (CPUExecutionProvider)", ("onnx", "onnxruntime"),
                    "pip install 'lstm-conformance[onnx]'"),
}


class OnnxLSTM(Impl):
    param_formula = "onnx"
    # node attributes the adapter sets from the case's fields; any other (clip, input_forget, layout) is passed
    own_keywords = ("hidden_size", "direction", "activations", "activation_alpha", "activation_beta")

    def __init__(self, runtime: str):
        self.id = runtime
        self.api, self.requires, self.install_hint = RUNTIMES[runtime]

    # ---- static half ----
    def unsupported(self, cfg: Config) -> str | None:
        why = one_batch_axis(cfg, "the ONNX LSTM operator") or per_layer_unsupported(
            cfg, "LSTM nodes", "initial_h and initial_c of its own, (D, B, H)")
        if why:
            return why
        if cfg.layout == "unbatched":
            return ("the ONNX LSTM operator takes a 3-D X only ((T, B, F), or (B, T, F) with layout=1): an unbatched "
                    "(T, F) input has no spelling")
        if cfg.proj_size:
            return ("the ONNX LSTM operator has no projection (inputs X, W, R, B, sequence_lens, initial_h, initial_c, "
                    "P: no weight_hr); proj_size has no native equivalent")
        if cfg.bidirectional and cfg.merge_mode not in ("concat", "none"):
            return (f"the ONNX LSTM operator returns each direction's Y apart (axis 1); merge_mode="
                    f"{cfg.merge_mode!r} would be an exporter's own ops (Add, Mul, ...), not the operator's")
        if cfg.bidirectional and cfg.go_backwards:
            return ("the ONNX LSTM operator's directions are forward, reverse or bidirectional: a bidirectional layer "
                    "whose two directions swap (go_backwards inside Bidirectional) has no spelling")
        if cfg.mask is not None:
            return ("the ONNX LSTM operator takes variable lengths only as sequence_lens (a prefix of each sequence, "
                    "right padding): a mask with left padding or gaps has no native form")
        if cfg.cell_api or cfg.stacked_cells:
            return ("ONNX has no cell-level LSTM operator: the LSTM node steps the whole sequence (cell_api and "
                    "stacked_cells have no native equivalent)")
        if cfg.training:
            return ("an ONNX model is an inference graph: the LSTM operator has no training mode and no dropout "
                    "(training=True has no native equivalent)")
        return self.native_conflict(cfg)

    def _layout(self, cfg: Config) -> tuple[int, bool]:
        """(the node's layout, whether the graph transposes a batch-major input to time-major first)."""
        given = cfg.native_for(self.id).get("layout")
        if given is not None:
            return int(given), cfg.layout == "batch_major" and int(given) == 0
        if cfg.layout == "time_major":
            return 0, False
        return (0, True) if self.id == "onnxruntime" else (1, False)

    def _attrs(self, cfg: Config) -> dict:
        attrs = activation_attrs(cfg.recurrent_activation, cfg.activation, cfg.directions)
        attrs.update({k: v for k, v in cfg.native_for(self.id).items() if k != "layout"})
        return attrs

    def _direction(self, cfg: Config) -> str:
        return "bidirectional" if cfg.bidirectional else ("reverse" if cfg.go_backwards else "forward")

    def _layers(self, cfg: Config, weights: dict | None) -> list[dict]:
        """The operator's W, R, B per layer from the canonical weights (zeros of their shapes when None)."""
        from .onnx_model import gates_to_onnx
        layers = []
        for l in range(cfg.num_layers):
            H, F = cfg.layer_hidden(l), layer_input_size(cfg, l)
            W, R, B = [], [], []
            for dname in direction_names(cfg):
                p = f"layer{l}/{dname}/"
                w = weights[p + "W"] if weights else np.zeros((F, 4 * H))
                u = weights[p + "U"] if weights else np.zeros((H, 4 * H))
                W.append(gates_to_onnx(w.T, H, axis=0))
                R.append(gates_to_onnx(u.T, H, axis=0))
                if cfg.bias:
                    b = weights[p + "b"] if weights else np.zeros(4 * H)
                    B.append(np.concatenate([gates_to_onnx(b, H), np.zeros(4 * H)]))
            layers.append({"W": np.stack(W), "R": np.stack(R), "B": np.stack(B) if cfg.bias else None,
                           "hidden": H, "direction": self._direction(cfg)})
        return layers

    def _model(self, cfg: Config, weights: dict | None, states: bool, sizes=None):
        from .onnx_model import build
        layout, transpose = self._layout(cfg)
        B, T, F = sizes or (cfg.batch, cfg.timesteps, fed_input_size(cfg))
        return build(self._layers(cfg, weights), dtype=cfg.dtype, layout=layout, transpose_input=transpose,
                     lengths=cfg.lengths is not None, states=self._state_shapes(cfg, layout, B) if states else None,
                     batch=B, time=T, features=F, attrs=self._attrs(cfg), opset=OPSET)

    def _state_shapes(self, cfg: Config, layout: int, batch) -> list:
        """Per layer, the (initial_h, initial_c) shapes fed (``feed_state_*`` included), stacked as the operator
        takes them; a batch equal to the input's is ``batch`` (a name, when symbolic inference leaves it unknown)."""
        D, out = cfg.directions, []
        for l in range(cfg.num_layers):
            pair = []
            for role in ("h", "c"):
                b, w = fed_state_shape(cfg, role, l * D)
                b = batch if b == cfg.batch else b
                pair.append((D, b, w) if layout == 0 else (b, D, w))
            out.append(tuple(pair))
        return out

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        layout, transpose = self._layout(cfg)
        B, T, F, L, D = cfg.batch, cfg.timesteps, fed_input_size(cfg), cfg.num_layers, cfg.directions
        elem = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT16", "bfloat16": "BFLOAT16"}[cfg.dtype]
        np_dtype = "ml_dtypes.bfloat16" if cfg.dtype == "bfloat16" else f'"{cfg.dtype}"'
        travel = cfg.dtype if cfg.dtype in ("float32", "float64") else "float32"
        states = cfg.initial_state != "none"
        lines = ["import numpy as np", "import onnx", "from onnx import TensorProto, helper, numpy_helper"]
        if cfg.dtype == "bfloat16":
            lines.append("import ml_dtypes")
        x_shape = (B, T, F) if (layout == 1 or transpose) else (T, B, F)
        lines += ["", f"rng = np.random.default_rng({cfg.seed})",
                  f"inputs = [helper.make_tensor_value_info('X', TensorProto.{elem}, {list(x_shape)})]",
                  "nodes, inits, outputs = [], [], []", "x = 'X'"]
        if transpose:
            lines += ["nodes.append(helper.make_node('Transpose', ['X'], ['X_time_major'], perm=[1, 0, 2]))"
                      "  # batch-major input, layout=0 node", "x = 'X_time_major'"]
        if cfg.lengths is not None:
            lines.append(f"inputs.append(helper.make_tensor_value_info('sequence_lens', TensorProto.INT32, [{B}]))")
        attrs = self._attrs(cfg)
        for l in range(L):
            H, Fl = cfg.layer_hidden(l), layer_input_size(cfg, l)
            blob = (f"numpy_helper.from_array(rng.uniform(-0.5, 0.5, {{shape}}).astype({np_dtype}), '{{name}}')"
                    if cfg.dtype != "bfloat16" else
                    "helper.make_tensor('{name}', TensorProto.BFLOAT16, {shape}, "
                    "rng.uniform(-0.5, 0.5, {shape}).astype('float32').ravel().tolist())")
            lines.append(f"# layer {l}: W (D, 4H, in), R (D, 4H, H)" + (", B (D, 8H) = [Wb, Rb]" if cfg.bias else "")
                         + ", gates i, o, f, c")
            blocks = [(f"W_{l}", (D, 4 * H, Fl)), (f"R_{l}", (D, 4 * H, H))] + ([(f"B_{l}", (D, 8 * H))] if cfg.bias
                                                                                  else [])
            for name, shape in blocks:
                lines.append("inits.append(" + blob.format(name=name, shape=shape) + ")")
            ins = ["x", f"'W_{l}'", f"'R_{l}'", f"'B_{l}'" if cfg.bias else "''",
                   "'sequence_lens'" if cfg.lengths is not None else "''"]
            if states:
                s_shape = [D, B, H] if layout == 0 else [B, D, H]
                for role in ("h", "c"):
                    lines.append(f"inputs.append(helper.make_tensor_value_info('initial_{role}_{l}', "
                                 f"TensorProto.{elem}, {s_shape}))")
                ins += [f"'initial_h_{l}'", f"'initial_c_{l}'"]
            while ins[-1] == "''":
                ins.pop()
            y = "'Y'" if l == L - 1 else f"'Y_{l}'"
            extra = "".join(f", {k}={v!r}" for k, v in attrs.items())
            lines.append(f"nodes.append(helper.make_node('LSTM', [{', '.join(ins)}], [{y}, 'Y_h_{l}', 'Y_c_{l}'], "
                         f"hidden_size={H}, direction={self._direction(cfg)!r}, layout={layout}{extra}))")
            lines.append(f"outputs += [helper.make_tensor_value_info(n, TensorProto.{elem}, None) "
                         f"for n in ('Y_h_{l}', 'Y_c_{l}')]")
            if l < L - 1:
                if layout == 0:
                    lines.append(f"nodes.append(helper.make_node('Transpose', [{y}], ['Y_{l}_tbdh'], perm=[0, 2, 1, 3]))")
                    y = f"'Y_{l}_tbdh'"
                lines += [f"nodes.append(helper.make_node('Shape', [{y}], ['Y_{l}_tb'], start=0, end=2))",
                          f"inits.append(numpy_helper.from_array(np.array([{D * H}], np.int64), 'width_{l}'))",
                          f"nodes.append(helper.make_node('Concat', ['Y_{l}_tb', 'width_{l}'], ['shape_{l}'], axis=0))",
                          f"nodes.append(helper.make_node('Reshape', [{y}, 'shape_{l}'], ['X_{l + 1}'], allowzero=1))"
                          "  # directions side by side", f"x = 'X_{l + 1}'"]
        lines += [f"outputs.insert(0, helper.make_tensor_value_info('Y', TensorProto.{elem}, None))",
                  "model = helper.make_model(helper.make_graph(nodes, 'lstm', inputs, outputs, initializer=inits), "
                  f"opset_imports=[helper.make_opsetid('', {OPSET})])", "model.ir_version = 10", ""]
        lines.append(f"feeds = {{'X': rng.standard_normal({x_shape}).astype(\"{travel}\").astype({np_dtype})}}")
        if cfg.lengths is not None:
            lines.append(f"feeds['sequence_lens'] = np.array({list(cfg.lengths)}, np.int32)")
        if states:
            for l in range(L):
                for role in ("h", "c"):
                    b, w = fed_state_shape(cfg, role, l * D)
                    shp = (D, b, w) if layout == 0 else (b, D, w)
                    lines.append(f"feeds['initial_{role}_{l}'] = rng.uniform(-0.5, 0.5, {shp}).astype({np_dtype})")
        if self.id == "onnxruntime":
            lines += ["import onnxruntime",
                      "session = onnxruntime.InferenceSession(model.SerializeToString(), "
                      "providers=['CPUExecutionProvider'])",
                      "out = session.run(None, feeds)  # [Y, Y_h_0, Y_c_0, Y_h_1, ...]: the graph's outputs"]
        else:
            lines += ["from onnx.reference import ReferenceEvaluator",
                      "session = ReferenceEvaluator(model)",
                      "out = session.run(None, feeds)  # [Y, Y_h_0, Y_c_0, Y_h_1, ...]: the graph's outputs"]
        lines += ["for i, value in enumerate(out):",
                  "    print(f\"out[{i}]\", tuple(value.shape))",
                  "print('params', sum(int(np.prod(t.dims)) for t in model.graph.initializer "
                  "if t.name[:2] in ('W_', 'R_', 'B_')))"]
        return "\n".join(lines) + "\n"

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        import onnx
        self._onnx = onnx
        versions = {"onnx": onnx.__version__}
        if self.id == "onnxruntime":
            import onnxruntime
            self._ort = onnxruntime
            versions["onnxruntime"] = onnxruntime.__version__
        return versions

    def devices(self) -> list[str]:
        if self.id == "onnxruntime" and "CUDAExecutionProvider" in self._ort.get_available_providers():
            return ["cpu", "gpu"]
        return ["cpu"]

    def _session(self, model, device: str):
        if self.id == "onnxruntime":
            options = self._ort.SessionOptions()
            options.intra_op_num_threads = 1
            providers = ["CUDAExecutionProvider"] if device == "gpu" else ["CPUExecutionProvider"]
            s = self._ort.InferenceSession(model.SerializeToString(), options, providers=providers)
            names = [o.name for o in s.get_outputs()]
            return lambda feeds: dict(zip(names, s.run(None, feeds)))
        from onnx.reference import ReferenceEvaluator
        s = ReferenceEvaluator(model)
        return lambda feeds: dict(zip(s.output_names, s.run(None, feeds)))

    def load_weights(self, cfg: Config, device: str, weights: dict):
        return self._model(cfg, weights, states=cfg.initial_state != "none")

    def read_weights(self, cfg: Config, native) -> dict:
        from onnx import numpy_helper
        from .onnx_model import gates_from_onnx
        init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in native.graph.initializer}
        out = {}
        for l in range(cfg.num_layers):
            H = cfg.layer_hidden(l)
            for d, dname in enumerate(direction_names(cfg)):
                p = f"layer{l}/{dname}/"
                out[p + "W"] = gates_from_onnx(init[f"W_{l}"][d], H, axis=0).T
                out[p + "U"] = gates_from_onnx(init[f"R_{l}"][d], H, axis=0).T
                if cfg.bias:
                    wb, rb = np.split(init[f"B_{l}"][d], 2)
                    out[p + "b"] = gates_from_onnx(wb + rb, H)
        return out

    def _native_array(self, cfg: Config, a: np.ndarray) -> np.ndarray:
        if cfg.dtype == "bfloat16":
            import ml_dtypes
            return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16)
        return np.asarray(a).astype(cfg.dtype)

    def _state_feeds(self, cfg: Config, state: list, layout: int) -> dict:
        """``state``: per layer, (h, c) stacked as the operator takes them."""
        return {f"initial_{role}_{l}": self._native_array(cfg, pair[i])
                for l, pair in enumerate(state) for i, role in enumerate(("h", "c"))}

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        layout, transpose = self._layout(cfg)
        L, D = cfg.num_layers, cfg.directions
        notes: list[str] = []
        t0 = time.perf_counter()
        first = None           # per layer, the initial (h, c) as the operator takes them, or None: not given
        if init is not None:
            first = []
            for l in range(L):
                h = np.stack([init[l * D + d][0] for d in range(D)])     # (D, B, H)
                c = np.stack([init[l * D + d][1] for d in range(D)])
                first.append((h, c) if layout == 0 else (h.transpose(1, 0, 2), c.transpose(1, 0, 2)))
            notes.append("initial states: each layer's (h0, c0) per direction stacked as initial_h / initial_c "
                         + ("(D, B, H)" if layout == 0 else "(B, D, H) (layout=1)"))
        models = {}

        def session(with_states: bool):
            if with_states not in models:
                model = self._model(cfg, weights, states=with_states)
                with native("build"):
                    models[with_states] = (model, self._session(model, device))
            return models[with_states]

        xin = to_native_layout(cfg, x)
        if transpose:
            notes.append("batch-major input fed as it is: a Transpose node in the graph makes it time-major for the "
                         "LSTM node's layout=0")
        feeds = {"X": self._native_array(cfg, xin)}
        if x is not None and cfg.dtype != str(x.dtype):
            notes.append(f"input travels as {x.dtype} and is cast to {cfg.dtype} before the call")
        if cfg.lengths is not None:
            feeds["sequence_lens"] = np.asarray(cfg.lengths, np.int32)
            notes.append(f"lengths: the sequence_lens input, int32 {list(cfg.lengths)}")
        t1 = time.perf_counter()
        state, call_outputs, out = first, [], None
        for call in range(1, cfg.calls + 1):
            if call in (cfg.resets or ()):
                state = first
            model, run = session(state is not None)
            with native("call"):
                out = run({**feeds, **(self._state_feeds(cfg, state, layout) if state is not None else {})})
            state = [(out[f"Y_h_{l}"], out[f"Y_c_{l}"]) for l in range(L)]
            if cfg.calls > 1:
                call_outputs.append(self._canonical(cfg, out, layout, [])[0])
        if cfg.calls > 1:
            notes.append(f"{cfg.calls} calls on the same input, each given the previous call's Y_h / Y_c of every "
                         "layer as its initial_h / initial_c"
                         + (f"; call(s) {', '.join(map(str, cfg.resets))} given the first call's again (a reset)"
                            if cfg.resets else "") + "; the last call's returns are compared")
        t2 = time.perf_counter()
        obs = self._observe(cfg, model, out, layout, notes, init, self.api)
        obs.timings = {"build_s": t1 - t0, "run_s": t2 - t1}
        obs.call_outputs = call_outputs or None
        return obs

    def _observe(self, cfg: Config, model, out: dict, layout: int, notes: list, init, api: str,
                 natives: dict | None = None) -> Observation:
        """The observation of one call's ``Y``, ``Y_h_l``, ``Y_c_l`` (arrays, or shape-only placeholders, whose
        native shapes and dtypes are then ``natives``: what the inference gave)."""
        L, got = cfg.num_layers, natives or out
        rows = [("[0]", "output", got["Y"], True, None, None)]      # session.run's list, in the graph's output order
        for l in range(L):
            rows += [(f"[{1 + 2 * l}]", "h", got[f"Y_h_{l}"], True, l, None),
                     (f"[{2 + 2 * l}]", "c", got[f"Y_c_{l}"], True, l, None)]
        attrs = self._attrs(cfg)
        obs = Observation(
            construct=(f"{L} ONNX LSTM node{'s' if L != 1 else ''} (opset {OPSET}; hidden_size="
                       f"{[cfg.layer_hidden(l) for l in range(L)] if L != 1 else cfg.layer_hidden(0)}, "
                       f"direction={self._direction(cfg)!r}, layout={layout}"
                       + "".join(f", {k}={v!r}" for k, v in attrs.items())
                       + f"; {cfg.dtype}) run by {api}"
                       + (" with sequence_lens" if cfg.lengths is not None else "")
                       + (" with initial_h / initial_c" if init is not None else "")),
            returns=[returned(p, role, t, top=top, layer=layer, direction=d) for p, role, t, top, layer, d in rows],
            params=[{"name": t.name, "shape": list(t.dims)} for t in model.graph.initializer
                    if t.name[:2] in ("W_", "R_", "B_")],
        )
        obs.param_count = sum(int(np.prod(p["shape"])) for p in obs.params)
        obs.output, obs.states = self._canonical(cfg, out, layout, notes)
        if cfg.dtype in ("float16", "bfloat16"):
            notes.append(f"{cfg.dtype} results are widened to float32 (exactly) for NumPy")
        obs.normalization = notes
        return obs

    # ---- shapes without computing: ONNX's own shape inference (onnx.shape_inference.infer_shapes) ----
    def _inferred(self, model) -> dict:
        """``{output name: (shape with None for an unknown dim, dtype name)}`` from onnx's strict shape inference
        (its refusal is the framework's: :class:`Rejected`)."""
        from onnx import helper, shape_inference
        with native("build"):
            inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        out = {}
        for vi in inferred.graph.output:
            t = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            out[vi.name] = (dims, helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type != 16
                            else "bfloat16")
        return out

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        from .base import placeholder
        layout, _ = self._layout(cfg)
        model = self._model(cfg, None, states=init is not None or cfg.calls > 1)
        shapes = self._inferred(model)
        if any(d is None for dims, _ in shapes.values() for d in dims):
            raise NotImplementedError(f"onnx's shape inference left a dimension unknown: {shapes}")
        out = {name: placeholder(dims, dtype) for name, (dims, dtype) in shapes.items()}
        notes = ["shape-only: the model's outputs from onnx.shape_inference.infer_shapes(strict_mode=True) (the "
                 "operator's RNNShapeInference), nothing run"]
        return self._observe(cfg, model, out, layout, notes, init, "onnx.shape_inference",
                             {name: _Inferred(dims, dtype) for name, (dims, dtype) in shapes.items()})

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        sizes = ("batch" if "batch" in unknown else B, "time" if "time" in unknown else T, F)
        model = self._model(cfg, None, states=cfg.initial_state != "none" or cfg.calls > 1, sizes=sizes)
        shapes = self._inferred(model)
        out = {name: _Inferred(dims, dtype) for name, (dims, dtype) in shapes.items()}
        rows = [returned("[0]", "output", out["Y"])]
        for l in range(cfg.num_layers):
            rows += [returned(f"[{1 + 2 * l}]", "h", out[f"Y_h_{l}"], layer=l),
                     returned(f"[{2 + 2 * l}]", "c", out[f"Y_c_{l}"], layer=l)]
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name[:2] in ("W_", "R_", "B_"))
        return {"api": "onnx.shape_inference.infer_shapes(strict_mode=True), X with dim_params "
                       + ", ".join(repr(n) for n in sizes if isinstance(n, str)),
                "returns": rows, "param_count": params, "notes": []}

    def _canonical(self, cfg: Config, out: dict, layout: int, notes: list) -> tuple:
        """(canonical output, canonical states) from one call's ``Y``, ``Y_h_l``, ``Y_c_l``."""
        L, D = cfg.num_layers, cfg.directions
        wide = (lambda a: np.asarray(a, np.float32)) if cfg.dtype in ("float16", "bfloat16") else np.asarray
        y = wide(out["Y"])
        if layout == 0:
            y = y.transpose(2, 0, 1, 3)            # (T, D, B, H) -> (B, T, D, H)
        hs = [wide(out[f"Y_h_{l}"]) for l in range(L)]
        cs = [wide(out[f"Y_c_{l}"]) for l in range(L)]
        if layout == 1:
            hs, cs = [h.transpose(1, 0, 2) for h in hs], [c.transpose(1, 0, 2) for c in cs]
        B, T = y.shape[0], y.shape[1]
        if cfg.return_sequences:
            output = y.reshape(B, T, -1) if y.size else np.zeros((B, T, D * y.shape[3]), y.dtype)
            notes.append("output: Y " + ("(T, D, B, H) transposed to (B, T, D, H)" if layout == 0 else
                                         "(B, T, D, H) (layout=1)") + ", directions side by side: (B, T, D*H)")
        else:
            output = np.concatenate([hs[L - 1][d] for d in range(D)], axis=-1)
            notes.append("no return_sequences switch: output = the top layer's Y_h, directions side by side "
                         "(each direction's final hidden state; for the backward one that is not Y[-1])")
        states = [(hs[l][d], cs[l][d]) for l in range(L) for d in range(D)]
        notes.append("states: Y_h_l[d], Y_c_l[d] of each layer l and direction d"
                     + ("" if cfg.return_state else " (no return_state switch: Y_h and Y_c are always returned, so "
                                                    "they are compared although the case did not ask for them)"))
        return output, states
