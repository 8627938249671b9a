"""What every exporter adapter shares: reading the exported ONNX graph (its ``LSTM`` nodes, the weights they read,
its ops in words) and ONNX Runtime as the runner (CPU provider, one thread). The exporters themselves are
``torch_onnx_export`` (torch.onnx.export) and ``keras_onnx_export`` (Keras's model.export); this module imports onnx and
onnxruntime only inside functions the worker calls.
"""

from __future__ import annotations

import numpy as np

from .base import native

LSTM_WEIGHTS = {1: "W", 2: "R", 3: "B", 7: "P"}      # the LSTM node's weight inputs, by position


def lstm_nodes(model) -> list:
    """The exported graph's ``LSTM`` nodes, in graph order (one per stacked layer, bottom first)."""
    return [n for n in model.graph.node if n.op_type == "LSTM"]


def _producers(model) -> dict:
    return {out: node for node in model.graph.node for out in node.output}


def _closure(producers: dict, names: list[str], follow) -> set[str]:
    """Every value name ``names`` are computed from, going up through the nodes ``follow(node)`` accepts."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is not None and follow(node):
            todo += [i for i in node.input if i]
    return seen


def _upstream(model, names: list[str]) -> tuple[list, set[str]]:
    """The nodes that compute ``names`` (in graph order), and the constants (initializers, ``Constant`` outputs)
    whose values flow into them: ``Shape`` and ``Size`` read no values, so what is above them only sizes them."""
    producers, inits = _producers(model), {t.name for t in model.graph.initializer}
    computed = _closure(producers, names, lambda node: True)
    nodes = [n for n in model.graph.node if any(o in computed for o in n.output)]
    valued = _closure(producers, names, lambda node: node.op_type not in ("Shape", "Size"))
    constants = {n for n in valued if n in inits or (n in producers and producers[n].op_type == "Constant")}
    return nodes, constants


def lstm_weights(model) -> tuple[list[dict], list[dict]]:
    """Per ``LSTM`` node, the values of its weight inputs (W, R, B, P), as the graph computes them (an exporter may
    hold them as constants or reorder the gates with ``Slice`` / ``Concat`` in the graph: the nodes that compute
    them are run by ``onnx.reference``); and the floating-point constants they are computed from (the model's
    parameters: ``{"name", "shape"}``, each once)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    wanted = [(k, role, node.input[i]) for k, node in enumerate(lstm_nodes(model))
              for i, role in LSTM_WEIGHTS.items() if i < len(node.input) and node.input[i]]
    names = list(dict.fromkeys(name for _, _, name in wanted))
    if not names:
        return [], []
    nodes, sources = _upstream(model, names)
    inits = {t.name: t for t in model.graph.initializer}
    constants = {n.output[0]: a.t for n in model.graph.node if n.op_type == "Constant"
                 for a in n.attribute if a.name == "value"}
    floats = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
    tensors = {name: inits[name] if name in inits else constants.get(name) for name in sorted(sources)}
    params = [{"name": name, "shape": [int(d) for d in t.dims]} for name, t in tensors.items()
              if t is not None and t.data_type in floats]
    graph_inputs = {i.name: i for i in model.graph.input}
    used = {i for n in nodes for i in n.input} | set(names)
    pruned = helper.make_model(
        helper.make_graph(nodes, "weights", [graph_inputs[n] for n in graph_inputs if n in used],
                          [helper.make_empty_tensor_value_info(n) for n in names],
                          initializer=[t for t in model.graph.initializer if t.name in used]),
        opset_imports=list(model.opset_import))
    pruned.ir_version = model.ir_version
    feeds = {}
    for name, vi in graph_inputs.items():
        if name in used:
            t = vi.type.tensor_type
            feeds[name] = np.zeros([d.dim_value for d in t.shape.dim], helper.tensor_dtype_to_np_dtype(t.elem_type))
    values = dict(zip(names, ReferenceEvaluator(pruned).run(names, feeds)))
    out = [{} for _ in lstm_nodes(model)]
    for k, role, name in wanted:
        out[k][role] = np.asarray(values[name])
    return out, params


def ops_in_words(model) -> str:
    """``opset N (Concat×2, LSTM, ...)``: the model's default-domain opset and its ops with their counts."""
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return f"opset {opset} (" + ", ".join(f"{op}×{k}" if k > 1 else op for op, k in sorted(ops.items())) + ")"


class RunsOnOnnxRuntime:
    """Mixin of an exporter adapter (before its framework's adapter in the bases): the exported model runs on ONNX
    Runtime's CPU provider, whatever device the framework has."""

    def _setup_runtime(self, versions: dict) -> dict:
        import onnx
        import onnxruntime
        self._onnx, self._ort = onnx, onnxruntime
        return {**versions, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}

    def devices(self) -> list[str]:
        return ["cpu"]

    def device_name(self, device: str) -> str:
        return "cpu (onnxruntime CPUExecutionProvider)"

    def _ort_session(self, model):
        """An ``InferenceSession`` of ``model`` (one thread; its refusal is the framework's: ``native("build")``)."""
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        with native("build"):
            return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
