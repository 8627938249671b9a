"""torch.onnx: the case's ``torch.nn.LSTM`` exported to ONNX by ``torch.onnx.export`` and run by ONNX Runtime.

Two exporters, two implementations, because they differ (measured, see the README's Implementations section):
``onnx-export-torch`` is the current one (``dynamo=True``, the default since torch 2.9: ``torch.export`` then
onnxscript's ``torch_lib``), ``onnx-export-torchscript`` the TorchScript-based one (``dynamo=False``, deprecated,
shipped while torch ships it: ``torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py``).

What is exported is what a torch user calls (the module :func:`_wrapper` builds around the adapter's own
``torch.nn.LSTM``, built and loaded exactly as the ``torch`` adapter does): ``forward(x[, lengths][, h_0, c_0])``
returns ``(output, h_n, c_n)``; with lengths it packs the input (``pack_padded_sequence(..., enforce_sorted=False)``)
and pads the output back (``pad_packed_sequence(..., total_length=T)``) inside ``forward``, since a
``PackedSequence`` is no tensor a graph can take or return. Each case is exported with the case's own input (static
shapes), then run by ``onnxruntime.InferenceSession`` (CPU provider, one thread); ``calls`` > 1 feed each call's
``h_n`` / ``c_n`` back (a second export, with the states as inputs, when the first call has none).

The exporter's refusals (``torch.onnx.export`` raising) and ONNX Runtime's (the session or the run raising) are the
framework's: ``rejected``, compared with the canonical semantics. The weights are read back from the exported
graph's ``LSTM`` nodes (W, R, B: gates i, o, f, c, two biases), so the weight round trip tests the exporter's own
mapping; the parameter count is those nodes' weight tensors.
"""

from __future__ import annotations

import io
import time
import warnings

import numpy as np

from ..reference import direction_names, fed_input_size, fed_state_entries, fed_state_shape
from ..spec import Config
from .base import Observation, native, returned
from .exported import RunsOnOnnxRuntime, lstm_weights, ops_in_words
from .torch_lstm import TorchLSTM, _batch_first, _native_args, _state_maker

EXPORTERS = {
    "onnx-export-torch": (True, ("torch", "onnx", "onnxruntime", "onnxscript"),
                          "torch.onnx.export(dynamo=True) (torch.export, then onnxscript's torch_lib)"),
    "onnx-export-torchscript": (False, ("torch", "onnx", "onnxruntime"),
                               "torch.onnx.export(dynamo=False) (the TorchScript-based exporter)"),
}
OUTPUT_NAMES = ("output", "h_n", "c_n")


def _wrapper(torch, module, batch_first: bool, total: int, lengths: bool, states: bool):
    """``module`` inside the ``forward`` a torch user exports: ``(x[, lengths][, h_0, c_0]) -> (output, h_n, c_n)``
    (with lengths, the output padded back to ``total`` steps)."""
    rnn = torch.nn.utils.rnn

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = module

        def forward(self, x, *rest):
            if lengths:
                x = rnn.pack_padded_sequence(x, rest[0], batch_first=batch_first, enforce_sorted=False)
                rest = rest[1:]
            out, (h_n, c_n) = self.lstm(x, (rest[0], rest[1])) if states else self.lstm(x)
            if lengths:
                out = rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=total)[0]
            return out, h_n, c_n

    return Exported().eval()


class TorchOnnxExport(RunsOnOnnxRuntime, TorchLSTM):
    param_formula = "onnx"

    def __init__(self, exporter_id: str):
        self.id = exporter_id
        self.dynamo, self.requires, self.api = EXPORTERS[exporter_id]
        self.install_hint = "pip install 'lstm-conformance[onnx-export]'"

    # ---- static half ----
    def unsupported(self, cfg: Config) -> str | None:
        if cfg.cell_api:
            return ("cell_api: this adapter exports torch.nn.LSTM, the module a user exports; nn.LSTMCell stepped "
                    "by a Python loop is the torch adapter's (an export would unroll the loop into the graph)")
        if cfg.training:
            return ("training=True: an exported ONNX model is an inference graph (torch.onnx.export exports the "
                    "module in eval mode: no dropout between layers)")
        return super().unsupported(cfg)

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        batch_first = _batch_first(cfg, self.id)
        travel = cfg.dtype if cfg.dtype in ("float32", "float64") else "float32"
        lines = ["import io", "import numpy as np", "import onnx", "import onnxruntime", "import torch", "",
                 f"torch.manual_seed({cfg.seed})",
                 f"lstm = torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
                 f"bias={cfg.bias}, batch_first={batch_first}, bidirectional={cfg.bidirectional}, "
                 f"proj_size={cfg.proj_size}, dtype=torch.{cfg.dtype}"
                 + (f", dropout={cfg.layer_dropout}" if cfg.layer_dropout else "")
                 + f"{_native_args(cfg, self.id, skip=('batch_first',))}).eval()",
                 f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{travel}\")"]
        lines += {"batch_major": [], "time_major": ["x = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, F)"],
                  "unbatched": ["x = x[0]  # unbatched (T, F)"]}[cfg.layout]
        args, names = ["torch.from_numpy(x).to(torch.%s)" % cfg.dtype], ["x"]
        if cfg.lengths is not None:
            args.append(f"torch.tensor({list(cfg.lengths)})")
            names.append("lengths")
        if cfg.initial_state != "none":
            make = _state_maker(cfg)
            for role in ("h", "c"):
                n, (b, w) = fed_state_entries(cfg, role), fed_state_shape(cfg, role, 0)
                batch = "" if cfg.layout == "unbatched" else f"{b}, "
                args.append(f"{make}({n}, {batch}{w}, dtype=torch.{cfg.dtype})")
                names.append(f"{role}_0")
        lines += ["", "class Exported(torch.nn.Module):  # what is exported: (x[, lengths][, h_0, c_0]) -> "
                  "(output, h_n, c_n)",
                  "    def __init__(self):", "        super().__init__()", "        self.lstm = lstm", "",
                  "    def forward(self, x, *rest):"]
        if cfg.lengths is not None:
            lines += [f"        x = torch.nn.utils.rnn.pack_padded_sequence(x, rest[0], batch_first={batch_first}, "
                      "enforce_sorted=False)", "        rest = rest[1:]"]
        call = "self.lstm(x, (rest[0], rest[1]))" if cfg.initial_state != "none" else "self.lstm(x)"
        lines.append(f"        out, (h_n, c_n) = {call}")
        if cfg.lengths is not None:
            lines.append(f"        out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first={batch_first}, "
                         f"total_length={T})[0]")
        lines += ["        return out, h_n, c_n", "", f"args = ({', '.join(args)},)"]
        if self.dynamo:
            lines.append(f"model = torch.onnx.export(Exported().eval(), args, dynamo=True, verbose=False, "
                         f"input_names={names}, output_names={list(OUTPUT_NAMES)}).model_proto")
        else:
            lines += ["buffer = io.BytesIO()",
                      f"torch.onnx.export(Exported().eval(), args, buffer, dynamo=False, input_names={names}, "
                      f"output_names={list(OUTPUT_NAMES)})",
                      "model = onnx.load_from_string(buffer.getvalue())"]
        lines += ["session = onnxruntime.InferenceSession(model.SerializeToString(), "
                  "providers=['CPUExecutionProvider'])",
                  "feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}",
                  "out = session.run(None, feeds)  # [output, h_n, c_n]",
                  "for i, value in enumerate(out):",
                  "    print(f\"out[{i}]\", tuple(value.shape))",
                  "weights = {t.name: t for t in model.graph.initializer}",
                  "print('params', sum(int(np.prod(weights[n.input[i]].dims)) for n in model.graph.node "
                  "if n.op_type == 'LSTM' for i in (1, 2, 3, 7) if i < len(n.input) and n.input[i] in weights))"]
        return "\n".join(lines) + "\n"

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        versions = self._setup_runtime(super().setup())
        if self.dynamo:
            import onnxscript
            versions["onnxscript"] = onnxscript.__version__
        return versions

    def _export(self, cfg: Config, module, args: list, names: list[str]):
        """The ONNX model ``torch.onnx.export`` makes of ``module`` called on ``args`` (named ``names``)."""
        torch, onnx = self._torch, self._onnx
        wrapper = _wrapper(torch, module, _batch_first(cfg, self.id), cfg.timesteps, "lengths" in names, "h_0" in names)
        with native("build"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)      # dynamo=False is deprecated: said in the README
            if self.dynamo:
                return torch.onnx.export(wrapper, tuple(args), dynamo=True, verbose=False, input_names=names,
                                         output_names=list(OUTPUT_NAMES)).model_proto
            buffer = io.BytesIO()
            torch.onnx.export(wrapper, tuple(args), buffer, dynamo=False, input_names=names,
                              output_names=list(OUTPUT_NAMES))
            return onnx.load_from_string(buffer.getvalue())

    def _args(self, cfg: Config, x: np.ndarray, states) -> tuple[list, list[str]]:
        """The exported forward's arguments and their names: the input in the case's layout, the lengths (int64),
        the stacked (h_0, c_0)."""
        torch = self._torch
        args, names = [self._inputs(cfg, torch.device("cpu"), x)], ["x"]
        if cfg.lengths is not None:
            args.append(torch.tensor(cfg.lengths, dtype=torch.int64))
            names.append("lengths")
        if states is not None:
            args += list(states)
            names += ["h_0", "c_0"]
        return args, names

    def load_weights(self, cfg: Config, device: str, weights: dict):
        """The exported model (no initial states, a zero input of the case's shape) of the torch module holding
        ``weights``."""
        module = super().load_weights(cfg, "cpu", weights)
        args, names = self._args(cfg, np.zeros((cfg.batch, cfg.timesteps, fed_input_size(cfg))), None)
        return self._export(cfg, module, args, names)

    def read_weights(self, cfg: Config, native) -> dict:
        """The canonical weights the exported graph's LSTM nodes hold: W, R in the operator's gate order i, o, f, c,
        B = [Wb, Rb] (summed)."""
        from .onnx_model import gates_from_onnx
        nodes, _ = lstm_weights(native)
        if len(nodes) != cfg.num_layers:
            raise RuntimeError(f"the exported graph has {len(nodes)} LSTM nodes for {cfg.num_layers} layers")
        out = {}
        for l, node in enumerate(nodes):
            H = cfg.layer_hidden(l)
            for d, dname in enumerate(direction_names(cfg)):
                p = f"layer{l}/{dname}/"
                out[p + "W"] = gates_from_onnx(node["W"][d].astype(np.float64), H, axis=0).T.copy()
                out[p + "U"] = gates_from_onnx(node["R"][d].astype(np.float64), H, axis=0).T.copy()
                if "B" in node:
                    b = node["B"][d].astype(np.float64)
                    out[p + "b"] = gates_from_onnx(b[:4 * H] + b[4 * H:], H)
        return out

    def _session(self, model):
        session = self._ort_session(model)
        names = [i.name for i in session.get_inputs()]

        def run(feeds: dict) -> list:
            with native("call"):
                return session.run(None, {k: v for k, v in feeds.items() if k in names})
        return run, names

    def run(self, cfg: Config, device: str, x: np.ndarray | None, weights: dict | None, init) -> Observation:
        if weights is None:
            raise NotImplementedError("shape-only: an export is the run's own cost (torch.export or TorchScript "
                                      "tracing runs the module); this adapter has no shape-only path")
        torch = self._torch
        notes: list[str] = []
        t0 = time.perf_counter()
        with native("build"):
            module = TorchLSTM.load_weights(self, cfg, "cpu", weights)
        if x is not None and cfg.dtype != str(x.dtype):
            notes.append(f"input travels as {x.dtype} and is cast to torch.{cfg.dtype} before the export")
        hx = self._hx_in(cfg, init, lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(getattr(torch, cfg.dtype)),
                         notes)
        models: dict = {}
        dropped: set[str] = set()

        def exported(states):
            key = states is not None
            if key not in models:
                args, names = self._args(cfg, x, None if states is None else [torch.from_numpy(s) for s in states])
                model = self._export(cfg, module, args, names)
                run, kept = self._session(model)
                dropped.update(n for n in names if n not in kept)
                models[key] = (model, run, {n: a.numpy() for n, a in zip(names, args)})
            return models[key]

        t1 = time.perf_counter()
        first = None if hx is None else [t.numpy() for t in hx]
        state, call_outputs, out, model = first, [], None, None
        for call in range(1, cfg.calls + 1):
            if call in (cfg.resets or ()):
                state = first
            model, run, feeds = exported(state)
            if state is not None:
                feeds = {**feeds, "h_0": state[0], "c_0": state[1]}
            out = dict(zip(OUTPUT_NAMES, run(feeds)))
            state = [out["h_n"], out["c_n"]]
            if cfg.calls > 1:
                call_outputs.append(self._canonical(cfg, out, [])[0])
        t2 = time.perf_counter()
        if cfg.calls > 1:
            notes.append(f"{cfg.calls} calls on the same input, each given the previous call's h_n / c_n as the "
                         "exported model's h_0 / c_0 inputs" + (" (the first call, which has none, runs the model "
                                                                 "exported without them)" if first is None else "")
                         + (f"; call(s) {', '.join(map(str, cfg.resets))} given the first call's again (a reset)"
                            if cfg.resets else "") + "; the last call's returns are compared")
        if dropped:
            notes.append(f"the exported model has no input for {', '.join(sorted(dropped))} (the exporter dropped it: "
                         "it is not fed)")
        obs = self._observe(cfg, module, model, out, notes, init)
        obs.timings = {"build_s": t1 - t0, "run_s": t2 - t1}
        obs.call_outputs = call_outputs or None
        return obs

    def _observe(self, cfg: Config, module, model, out: dict, notes: list, init) -> Observation:
        weights, params = lstm_weights(model)
        obs = Observation(
            construct=(f"torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
                       f"bias={cfg.bias}, batch_first={_batch_first(cfg, self.id)}, "
                       f"bidirectional={cfg.bidirectional}, dtype=torch.{cfg.dtype}"
                       f"{_native_args(cfg, self.id, skip=('batch_first',))})"
                       + (" with pack_padded_sequence / pad_packed_sequence inside forward" if cfg.lengths is not None
                          else "") + (" with (h_0, c_0)" if init is not None else "")
                       + f", exported by {self.api} to {ops_in_words(model)}, run by onnxruntime "
                       "(CPUExecutionProvider)"),
            returns=[returned(f"[{i}]", role, out[name])
                     for i, (name, role) in enumerate(zip(OUTPUT_NAMES, ("output", "h", "c")))],
            params=params,
            param_count=sum(int(np.prod(p["shape"])) for p in params) if weights else None,
        )
        if not weights:
            notes.append("the exported graph has no LSTM node: no parameter count is read")
        else:
            notes.append("parameters: the floating-point constants the LSTM nodes' W, R, B are computed from "
                         f"({', '.join(p['name'] for p in params)})")
        obs.output, obs.states = self._canonical(cfg, out, notes)
        notes.insert(0, f"exported with {self.api}: forward(x"
                     + (", lengths" if cfg.lengths is not None else "") + (", h_0, c_0" if init is not None else "")
                     + ") -> (output, h_n, c_n), the model's outputs in that order")
        if cfg.dtype in ("float16", "bfloat16"):
            notes.append(f"{cfg.dtype} results are widened to float32 (exactly) for NumPy")
        obs.normalization = notes
        return obs

    def _canonical(self, cfg: Config, out: dict, notes: list) -> tuple:
        """(canonical output, canonical states) from one run's output, h_n, c_n (torch's layouts, as arrays)."""
        wide = (lambda a: np.asarray(a, np.float32)) if cfg.dtype in ("float16", "bfloat16") else np.asarray
        y, h_n, c_n = wide(out["output"]), wide(out["h_n"]), wide(out["c_n"])
        L, D = cfg.num_layers, cfg.directions
        if cfg.layout == "unbatched":
            y, h_n, c_n = y[None], h_n[:, None], c_n[:, None]
            notes.append("unbatched: add a batch axis of 1 to output (axis 0) and h_n/c_n (axis 1)")
        elif cfg.layout == "time_major":
            y = y.transpose(1, 0, 2)
            notes.append("output is (T, B, F) without batch_first: transpose to (B, T, F)")
        # h_n / c_n stack (layer, direction) first, index l*D + d; an entry count other than L*D is shown as returned
        if cfg.return_sequences:
            output = y
        else:
            output = np.concatenate([h_n[(L - 1) * D + d] for d in range(D)], axis=-1)
            notes.append("no return_sequences switch: output = h_n[(L-1)*D + d] of each direction d, side by side")
        notes.append("states: h_n[l*D + d], c_n[l*D + d] of each layer l and direction d")
        return output, list(zip(h_n, c_n))

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        raise NotImplementedError("an exported model's shapes come from exporting it, which runs the module: the "
                                  "torch adapter's own inference covers torch.nn.LSTM")

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        return self.run(cfg, device, None, None, init)
