"""The ONNX model of one LSTM configuration: one ``LSTM`` operator node per stacked layer, built with
``onnx.helper`` from the canonical weights (the worker half of ``onnx_lstm``: it imports onnx).

The operator (onnx/defs/rnn/defs.cc, LSTM-22, the v14 text): ``X`` is ``(T, B, F)`` with ``layout=0`` and
``(B, T, F)`` with ``layout=1``; ``W (D, 4H, F)``, ``R (D, 4H, H)`` and ``B (D, 8H)`` hold the gates in the
order i, o, f, c and the bias twice (``[Wb, Rb]``, added); ``Y`` is ``(T, D, B, H)`` / ``(B, T, D, H)`` and
``Y_h``, ``Y_c`` ``(D, B, H)`` / ``(B, D, H)``. A stack feeds each layer's ``Y`` to the next as its ``X``,
directions side by side: ``Transpose`` (layout 0) and ``Reshape`` to ``(T, B, D*H)`` / ``(B, T, D*H)`` (its
shape from ``Shape`` of ``Y``, with ``allowzero=1``: a layer of no units has ``D*H = 0``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ONNX_GATES = (0, 3, 1, 2)        # the canonical blocks (i, f, g, o) in the operator's order (i, o, f, c)
ELEM_TYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
              "bfloat16": TensorProto.BFLOAT16}
def gates_to_onnx(block: np.ndarray, H: int, axis: int = -1) -> np.ndarray:
    """Canonical gate blocks (i, f, g, o) along ``axis`` -> the operator's (i, o, f, c)."""
    parts = np.split(block, 4, axis=axis) if H else [block] * 4
    return np.concatenate([parts[g] for g in ONNX_GATES], axis=axis)


def gates_from_onnx(block: np.ndarray, H: int, axis: int = -1) -> np.ndarray:
    """The operator's (i, o, f, c) blocks -> canonical (i, f, g, o)."""
    parts = np.split(block, 4, axis=axis) if H else [block] * 4
    back = [None] * 4
    for onnx_pos, canonical in enumerate(ONNX_GATES):
        back[canonical] = parts[onnx_pos]
    return np.concatenate(back, axis=axis)


def build(layers: list[dict], *, dtype: str, layout: int, transpose_input: bool, lengths: bool,
          states: list | None, batch, time, features, attrs: dict | None = None, opset: int = 22) -> onnx.ModelProto:
    """The model: ``layers`` (bottom first) of ``{"W": (D, 4H, in), "R": (D, 4H, H), "B": (D, 8H) or None,
    "hidden": H, "direction": forward | reverse | bidirectional}`` (float64, the operator's gate order), one
    ``LSTM`` node each with ``layout`` and the extra node ``attrs``. Inputs ``X`` (``(B, T, F)`` transposed
    to ``(T, B, F)`` in the graph when ``transpose_input``, the case's batch-major input fed to ``layout=0``),
    ``sequence_lens`` (int32 ``(B,)``) when ``lengths``, ``initial_h_l`` / ``initial_c_l`` per layer when
    ``states`` (per layer, the (h, c) shapes the graph declares: those fed, so that the operator, not the graph's
    input types, judges them). Outputs ``Y`` of the top layer and ``Y_h_l``, ``Y_c_l`` of every layer. ``batch``, ``time``
    and ``features``: the input's sizes, or names of unknown dimensions (symbolic inference)."""
    elem = ELEM_TYPES[dtype]
    np_dtype = None if dtype == "bfloat16" else np.dtype(dtype)
    inits, nodes, inputs, outputs = [], [], [], []

    def tensor(name: str, value: np.ndarray) -> str:
        if np_dtype is None:     # bfloat16: onnx.helper rounds float32 values to it
            inits.append(helper.make_tensor(name, elem, value.shape, np.asarray(value, np.float32).ravel().tolist()))
        else:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np_dtype), name))
        return name

    x_shape = [time, batch, features] if layout == 0 and not transpose_input else [batch, time, features]
    inputs.append(helper.make_tensor_value_info("X", elem, x_shape))
    x = "X"
    if transpose_input:
        nodes.append(helper.make_node("Transpose", ["X"], ["X_time_major"], perm=[1, 0, 2]))
        x = "X_time_major"
    if lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [batch]))
    for l, layer in enumerate(layers):
        D, H = layer["W"].shape[0], layer["hidden"]
        names = [x, tensor(f"W_{l}", layer["W"]), tensor(f"R_{l}", layer["R"]),
                 "" if layer["B"] is None else tensor(f"B_{l}", layer["B"]), "sequence_lens" if lengths else ""]
        if states:
            for role, shape in zip(("h", "c"), states[l]):
                inputs.append(helper.make_tensor_value_info(f"initial_{role}_{l}", elem, list(shape)))
            names += [f"initial_h_{l}", f"initial_c_{l}"]
        while names and names[-1] == "":
            names.pop()
        y = "Y" if l == len(layers) - 1 else f"Y_{l}"
        nodes.append(helper.make_node("LSTM", names, [y, f"Y_h_{l}", f"Y_c_{l}"], name=f"lstm_{l}", hidden_size=H,
                                      direction=layer["direction"], layout=layout, **(attrs or {})))
        for role in ("h", "c"):
            outputs.append(helper.make_tensor_value_info(f"Y_{role}_{l}", elem, None))
        if l < len(layers) - 1:        # the next layer reads this one's Y, directions side by side
            if layout == 0:
                nodes.append(helper.make_node("Transpose", [y], [f"Y_{l}_tbdh"], perm=[0, 2, 1, 3]))
                y = f"Y_{l}_tbdh"
            # (T, B, D*H) from Y's own first two sizes: a literal 0 in Reshape's shape would mean "copy" (allowzero=0),
            # and D*H is 0 for a layer of no units
            nodes.append(helper.make_node("Shape", [y], [f"Y_{l}_tb"], start=0, end=2))
            inits.append(numpy_helper.from_array(np.array([D * H], np.int64), f"width_{l}"))
            nodes.append(helper.make_node("Concat", [f"Y_{l}_tb", f"width_{l}"], [f"shape_{l}"], axis=0))
            nodes.append(helper.make_node("Reshape", [y, f"shape_{l}"], [f"X_{l + 1}"], allowzero=1))
            x = f"X_{l + 1}"
    outputs.insert(0, helper.make_tensor_value_info("Y", elem, None))
    graph = helper.make_graph(nodes, "lstm", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lstm-conformance")
    model.ir_version = 10
    return model
