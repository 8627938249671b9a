"""torch: ``torch.nn.LSTM``, one module for the whole stack.

Native facts this adapter maps: ``forward`` always returns ``(output, (h_n, c_n))`` (there is no
``return_sequences`` / ``return_state`` switch); ``output`` is time-major unless
``batch_first=True``; ``h_n`` / ``c_n`` stack layers and directions as ``(L*D, B, H')``; unbatched
2-D input drops the batch axis everywhere; directions are always concatenated.

Weights (canonical -> native, per layer ``k`` and direction, ``_reverse`` for the backward one):
``W (in, 4H)`` -> ``weight_ih_l{k} (4H, in)`` = W.T; ``U (H', 4H)`` -> ``weight_hh_l{k} (4H, H')`` =
U.T; ``b (4H)`` -> ``bias_ih_l{k}`` = b and ``bias_hh_l{k}`` = 0 (torch has two bias vectors; read
back as their sum); ``R (H, P)`` -> ``weight_hr_l{k} (P, H)`` = R.T. torch's gate order is i, f, g, o,
the canonical one, so no gate block moves.

Variable lengths are torch's own mechanism: the input is packed with
``pack_padded_sequence(..., enforce_sorted=False)`` and the LSTM then returns a ``PackedSequence``
(not a padded tensor) as ``output``; it is unpacked with ``pad_packed_sequence(..., total_length=T)``,
which writes its ``padding_value`` (default 0.0) at every step past a sequence's length. Initial
states are the ``(h_0, c_0)`` argument, each stacked as ``(L*D, B, H')`` / ``(L*D, B, H)`` (unbatched:
no batch axis). ``nn.LSTM`` has no option to read only one direction backwards (``go_backwards``).

``calls`` > 1 gives each call the previous call's ``(h_n, c_n)``; ``layer_dropout`` is ``dropout=`` and
``training`` ``module.train()`` (else ``eval()``). ``cell_api`` builds one ``nn.LSTMCell`` per layer in an
``nn.ModuleList`` (parameters ``{l}.weight_ih`` etc., mapped as above without the suffix) and steps them by
hand, each layer over every time step before the next.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings

import numpy as np

from ..reference import (direction_names, fed_input_size, fed_state_entries, fed_state_shape, hidden_out,
                         initial_states, layer_input_size, native_input_shape, to_native_layout)
from ..spec import Config
from .base import Impl, Observation, Rejected, dtype_name, native, one_batch_axis, placeholder, returned

# PackedSequence is a namedtuple (data, batch_sizes, sorted_indices, unsorted_indices)
_PACKED_FIELDS = (("data", "output"), ("batch_sizes", "batch_sizes"), ("sorted_indices", "sorted_indices"),
                  ("unsorted_indices", "unsorted_indices"))


def _return_paths(cfg: Config) -> list[tuple[str, str]]:
    """(path, role) of every tensor ``lstm(...)`` returns for ``cfg``, in native order."""
    if cfg.lengths is not None:
        out = [(f"[0].{name}", role) for name, role in _PACKED_FIELDS]
    else:
        out = [("[0]", "output")]
    return out + [("[1][0]", "h"), ("[1][1]", "c")]


def _native_args(cfg: Config, impl_id: str, skip: tuple[str, ...] = ()) -> str:
    """The case's native keywords for torch, as source after the adapter's own arguments (but ``skip``)."""
    return "".join(f", {k}={v!r}" for k, v in cfg.native_for(impl_id).items() if k not in skip)


def _state_maker(cfg: Config) -> str:
    """The repro's call that makes an initial state of a shape: torch.full for a constant, else uniform(-0.5, 0.5)."""
    constant = {"zeros": 0.0, "ones": 1.0}.get(cfg.initial_state, cfg.initial_state)
    return "-0.5 + torch.rand" if constant == "random" else f"{float(constant)!r} + torch.zeros"


def _batch_first(cfg: Config, impl_id: str):
    """nn.LSTM's batch_first: from the layout, or as the case gives it natively (unbatched input only)."""
    return cfg.native_for(impl_id).get("batch_first", cfg.layout == "batch_major")


def _native_name(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}" + ("_reverse" if direction else "")


def _cell_name(kind: str, layer: int, direction: int) -> str:
    """cell_api: the parameters of layer ``layer``'s ``nn.LSTMCell`` in the ``nn.ModuleList`` of cells."""
    return f"{layer}.{kind}"


class TorchLSTM(Impl):
    id = "torch"
    requires = ("torch",)
    install_hint = "pip install 'lstm-conformance[torch]'"
    param_formula = "torch"

    own_keywords = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional", "proj_size",
                    "device", "dtype", "dropout")     # set from the case's fields

    def own_keywords_for(self, cfg: Config) -> tuple[str, ...]:
        # an unbatched (T, F) input has no batch axis to place: batch_first is free there (torch unsqueezes
        # the input at dim 0 if batch_first else 1, and squeezes the result; module_inputs_torch_nn_LSTM
        # runs both)
        return tuple(k for k in self.own_keywords if not (k == "batch_first" and cfg.layout == "unbatched"))

    def unsupported(self, cfg: Config) -> str | None:
        axes = one_batch_axis(cfg, "torch.nn.LSTM")
        if axes:
            return axes
        if cfg.stacked_cells:
            return ("stacked_cells is Keras's StackedRNNCells (one RNN over a list of cells); torch has no construct that "
                    "steps a list of cells: its cells are stepped by the user's own loop (cell_api, the same numbers)")
        if cfg.per_layer_sizes and not cfg.cell_api:
            return (f"torch.nn.LSTM has one hidden_size for every layer (hidden_size={list(cfg.hidden_size)}); "
                    "layers of their own sizes are a stack of modules, or of nn.LSTMCell (cell_api)")
        if cfg.merge_mode != "concat":
            return (f"torch.nn.LSTM always concatenates the two directions; merge_mode={cfg.merge_mode!r} "
                    "has no native equivalent")
        if cfg.activation != "tanh" or cfg.recurrent_activation != "sigmoid":
            return ("torch.nn.LSTM has no activation options: its cell is fixed to sigmoid gates and tanh "
                    f"(activation={cfg.activation!r}, recurrent_activation={cfg.recurrent_activation!r} have no "
                    "native equivalent)")
        if cfg.go_backwards:
            return ("torch.nn.LSTM has no go_backwards / reverse option (its constructor takes input_size, "
                    "hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype; "
                    "go_backwards=True raises TypeError: unexpected keyword argument): a lone backward "
                    "direction exists only inside bidirectional=True")
        if cfg.cell_api:
            why = [name for name, on in (("bidirectional", cfg.bidirectional), ("proj_size", cfg.proj_size),
                                         ("lengths", cfg.lengths is not None), ("mask", cfg.mask is not None),
                                         ("layer_dropout", cfg.layer_dropout), ("training", cfg.training))
                   if on]
            if cfg.feed_state_layers is not None:
                why.append("feed_state_layers")
            if cfg.num_layers == 0:
                why.append("num_layers 0 (the cells are the adapter's own list, one per layer: none is nothing to "
                           "ask torch)")
            if why:
                return (f"cell_api: torch.nn.LSTMCell stepped by hand has no {', '.join(why)} (no directions, "
                        "projection, packed lengths or dropout: a cell is one step, given one (h, c) of its own)")
        if cfg.dropout or cfg.recurrent_dropout:
            return ("torch.nn.LSTM drops nothing inside a layer: its only dropout is between stacked layers (the "
                    "field layer_dropout); dropout and recurrent_dropout (Keras's, on each cell's input and on h) "
                    "have no native equivalent")
        if cfg.mask is not None:
            return ("torch.nn.LSTM takes variable lengths only as a PackedSequence (pack_padded_sequence), which "
                    "holds a prefix of each sequence (right padding): a mask with left padding or gaps has no "
                    "native form")
        return self.native_conflict(cfg)

    def _cells_repro(self, cfg: Config) -> str:
        B, T, F, L = cfg.batch, cfg.timesteps, fed_input_size(cfg), cfg.num_layers
        travel = cfg.dtype if cfg.dtype in ("float32", "float64") else "float32"
        ins = [layer_input_size(cfg, l) for l in range(L)]
        sizes = [cfg.layer_hidden(l) for l in range(L)]
        step = {"batch_major": "x[:, t]", "time_major": "x[t]", "unbatched": "x[t]"}[cfg.layout]
        layout = {"batch_major": "", "time_major": "x = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major\n",
                  "unbatched": "x = x[0]  # unbatched (T, F)\n"}[cfg.layout]
        if cfg.initial_state == "none":
            init = f"state = [None] * {L}\n"
        else:
            make = _state_maker(cfg)
            def shape(role, layer):
                b, w = fed_state_shape(cfg, role, layer)
                return ("" if cfg.layout == "unbatched" else f"{b}, ") + str(w)
            init = "state = [\n" + "".join(
                f"    ({make}({shape('h', l)}, dtype=torch.{cfg.dtype}), {make}({shape('c', l)}, dtype=torch.{cfg.dtype})),\n"
                for l in range(L)) + "]  # (h, c) per layer\n"
        axis = 1 if cfg.layout == "batch_major" else 0
        paths = (["[0]"] if T else []) + [f"[1][{l}][{i}]" for l in range(L) for i in range(2)
                                         if T or cfg.initial_state != "none"]
        return (
            "import numpy as np\nimport torch\n\n"
            f"torch.manual_seed({cfg.seed})\n"
            f"cells = torch.nn.ModuleList(torch.nn.LSTMCell(n_in, h, bias={cfg.bias}, dtype=torch.{cfg.dtype}"
            f"{_native_args(cfg, self.id)}) for n_in, h in zip({ins}, {sizes}))\n"
            f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{travel}\")\n"
            + layout + f"x = torch.from_numpy(x).to(torch.{cfg.dtype})\n" + init +
            "with torch.no_grad():\n"
            f"    for _ in range({cfg.calls}):  # each call continues from the states the last one left\n"
            f"        seq = [{step} for t in range({T})]\n"
            "        for l, cell in enumerate(cells):  # each layer over every step, then the next over its h_t\n"
            "            outs = []\n"
            "            for x_t in seq:\n"
            "                state[l] = cell(x_t, state[l])  # (h, c)\n"
            "                outs.append(state[l][0])\n"
            "            seq = outs\n"
            f"out = (torch.stack(seq, dim={axis}) if seq else None, state)  # (output sequence, (h, c) per layer)\n"
            + "".join(f'print("out{p}", tuple(out{p}.shape))\n' for p in paths)
            + 'print("params", sum(p.numel() for p in cells.parameters()))\n')

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        if cfg.cell_api:
            return self._cells_repro(cfg)
        B, T, F = cfg.batch, cfg.timesteps, fed_input_size(cfg)
        batch_first = _batch_first(cfg, self.id)
        travel = cfg.dtype if cfg.dtype in ("float32", "float64") else "float32"   # NumPy has no bfloat16
        layout = {"batch_major": "",
                  "time_major": "x = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major (T, B, F)\n",
                  "unbatched": "x = x[0]  # unbatched (T, F)\n"}[cfg.layout]
        lines = [
            "import numpy as np",
            "import torch",
            "",
            f"torch.manual_seed({cfg.seed})",
            f"lstm = torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
            f"bias={cfg.bias}, batch_first={batch_first}, bidirectional={cfg.bidirectional}, "
            f"proj_size={cfg.proj_size}, dtype=torch.{cfg.dtype}"
            + (f", dropout={cfg.layer_dropout}" if cfg.layer_dropout else "")
            + f"{_native_args(cfg, self.id, skip=('batch_first',))})",
            f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{travel}\")",
        ]
        if cfg.layer_dropout or cfg.training:
            lines.append(f"lstm.train({cfg.training})  # training mode: dropout between layers is active"
                         if cfg.training else "lstm.eval()  # inference: no dropout")
        lines += layout.splitlines()
        lines.append(f"x = torch.from_numpy(x).to(torch.{cfg.dtype})")
        if cfg.lengths is not None:
            lines.append(f"x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor({list(cfg.lengths)}), "
                         f"batch_first={batch_first}, enforce_sorted=False)")
        args = "x"
        if cfg.initial_state != "none":
            make = _state_maker(cfg)
            for role, width in (("h", "H'"), ("c", "H")):
                n, (b, w) = fed_state_entries(cfg, role), fed_state_shape(cfg, role, 0)
                batch = "" if cfg.layout == "unbatched" else f"{b}, "
                lines.append(f"{role}0 = {make}({n}, {batch}{w}, dtype=torch.{cfg.dtype})  # (L*D, B, {width})")
            args = "x, (h0, c0)"
        lines += ["with torch.no_grad():",
                  f"    out = lstm({args})  # ({'PackedSequence' if cfg.lengths is not None else 'output'}, "
                  "(h_n, c_n))"]
        if cfg.lengths is not None:
            lines.append(f"# padded output: torch.nn.utils.rnn.pad_packed_sequence(out[0], batch_first={batch_first}, "
                         f"total_length={T})[0] (0.0 past each length)")
        lines += [f'print("out{p}", tuple(out{p}.shape))' for p, _ in _return_paths(cfg)]
        lines.append('print("params", sum(p.numel() for p in lstm.parameters()))')
        return "\n".join(lines) + "\n"

    # ---- worker half ----
    def setup(self) -> dict[str, str]:
        import torch
        self._torch = torch
        torch.set_num_threads(1)
        # GPU values must be float32 values: no TensorFloat-32 in matmuls (cuBLAS) nor in cuDNN (its LSTM
        # kernels). Plain attributes, harmless on a CPU-only build.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return {"torch": torch.__version__}

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._torch.cuda.is_available() else [])

    def device_name(self, device: str) -> str:
        torch = self._torch
        return torch.cuda.get_device_name(0) if device == "gpu" else "cpu"

    def _device(self, device: str):
        return self._torch.device("cuda:0" if device == "gpu" else "cpu")

    def _build(self, cfg: Config, dev, dtype):
        """The native construct for ``cfg`` on ``dev`` (a torch device: the meta one in shape-only mode), holding
        torch's own initial values (none on meta): ``load_weights`` then copies the canonical ones in."""
        torch = self._torch
        if cfg.cell_api:
            return torch.nn.ModuleList(
                torch.nn.LSTMCell(layer_input_size(cfg, l), cfg.layer_hidden(l), bias=cfg.bias, device=dev,
                                  dtype=dtype, **cfg.native_for(self.id)) for l in range(cfg.num_layers))
        module = torch.nn.LSTM(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
                               bidirectional=cfg.bidirectional,
                               proj_size=cfg.proj_size, device=dev, dtype=dtype,
                               **({"dropout": cfg.layer_dropout} if cfg.layer_dropout else {}),
                               **{**cfg.native_for(self.id), "batch_first": _batch_first(cfg, self.id)})
        module.train(cfg.training)
        return module

    def load_weights(self, cfg: Config, device: str, weights: dict):
        dtype = getattr(self._torch, cfg.dtype)
        module = self._build(cfg, self._device(device), dtype)
        return self._assign(cfg, module, weights, _cell_name if cfg.cell_api else _native_name, dtype)

    def _assign(self, cfg: Config, module, weights: dict, name_of, dtype):
        """The canonical weights copied into ``module``'s parameters, named by ``name_of(kind, layer, d)``."""
        torch = self._torch
        params = dict(module.named_parameters())
        native = {}
        for layer in range(cfg.num_layers):
            for d, dname in enumerate(direction_names(cfg)):
                w = {k.rsplit("/", 1)[1]: v for k, v in weights.items() if k.startswith(f"layer{layer}/{dname}/")}
                native[name_of("weight_ih", layer, d)] = w["W"].T
                native[name_of("weight_hh", layer, d)] = w["U"].T
                if cfg.bias:
                    native[name_of("bias_ih", layer, d)] = w["b"]
                    native[name_of("bias_hh", layer, d)] = np.zeros_like(w["b"])
                if cfg.proj_size:
                    native[name_of("weight_hr", layer, d)] = w["R"].T
        if set(native) != set(params):
            raise RuntimeError(f"weight mapping does not cover torch's parameters: unmapped "
                               f"{sorted(set(params) - set(native))}, unknown {sorted(set(native) - set(params))}")
        with torch.no_grad():
            for name, value in native.items():
                p = params[name]
                if tuple(p.shape) != value.shape:
                    raise RuntimeError(f"{name}: native shape {tuple(p.shape)} but mapped weight {value.shape}")
                # float64 -> native dtype in one rounding (bfloat16 / float16 included)
                p.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float64)).to(dtype))
        return module

    def read_weights(self, cfg: Config, native) -> dict:
        """Canonical float64 arrays (exact widening of the native values); b = bias_ih + bias_hh."""
        torch = self._torch
        params = {n: p.detach().cpu().to(torch.float64).numpy() for n, p in native.named_parameters()}
        name_of = _cell_name if cfg.cell_api else _native_name
        out = {}
        for layer in range(cfg.num_layers):
            for d, dname in enumerate(direction_names(cfg)):
                prefix = f"layer{layer}/{dname}/"
                out[prefix + "W"] = params.pop(name_of("weight_ih", layer, d)).T.copy()
                out[prefix + "U"] = params.pop(name_of("weight_hh", layer, d)).T.copy()
                if name_of("bias_ih", layer, d) in params:
                    out[prefix + "b"] = (params.pop(name_of("bias_ih", layer, d))
                                         + params.pop(name_of("bias_hh", layer, d)))
                if name_of("weight_hr", layer, d) in params:
                    out[prefix + "R"] = params.pop(name_of("weight_hr", layer, d)).T.copy()
        if params:
            raise RuntimeError(f"native parameters with no canonical counterpart: {sorted(params)}")
        return out


    # ---- the native call, shared by run (computed), run_shapes (meta tensors) and infer (torch.export) ----
    def _to_numpy(self, t) -> np.ndarray:
        """A computed tensor as NumPy (bfloat16 widened to float32, exactly)."""
        t = t.detach().cpu()
        return (t.float() if t.dtype == self._torch.bfloat16 else t).numpy()

    @staticmethod
    def _to_placeholder(t) -> np.ndarray:
        """Shape-only mode: a meta tensor as a placeholder array of its shape and dtype (no numbers)."""
        return placeholder(tuple(t.shape), dtype_name(t.dtype))

    def _states_in(self, cfg: Config, init, make) -> list:
        """cell_api: each layer's (h, c) given, made native by ``make`` (None: not given)."""
        return [None] * cfg.num_layers if init is None else [
            tuple(make(s[0] if cfg.layout == "unbatched" else s) for s in pair) for pair in init]

    def _hx_in(self, cfg: Config, init, make, notes: list) -> tuple | None:
        """nn.LSTM: the initial (h_0, c_0) given, stacked (L*D, B, H') / (L*D, B, H) and made native by ``make``."""
        if init is None:
            return None
        # (L*D, B, H') and (L*D, B, H), index layer * D + direction (feed_state_layers: another count, which
        # may differ between h and c: the shorter one's missing entries are None)
        h0 = np.stack([h for h, _ in init if h is not None])
        c0 = np.stack([c for _, c in init if c is not None])
        if cfg.layout == "unbatched":
            h0, c0 = h0[:, 0], c0[:, 0]
        notes.append("initial states passed as (h_0, c_0): the canonical (h0, c0) per layer, then direction, "
                     f"stacked on a first axis of L*D (index layer*D + direction) to {tuple(h0.shape)} and "
                     f"{tuple(c0.shape)}")
        return make(h0), make(c0)

    def _pack(self, cfg: Config, xin):
        """torch's own variable lengths: the input packed (lengths a CPU int64 tensor, as torch wants them; it
        sorts internally with enforce_sorted=False)."""
        torch = self._torch
        return torch.nn.utils.rnn.pack_padded_sequence(xin, torch.tensor(cfg.lengths, dtype=torch.int64),
                                                       batch_first=_batch_first(cfg, self.id), enforce_sorted=False)

    def _unpack(self, cfg: Config, packed):
        """``pad_packed_sequence(packed, batch_first, total_length=T)[0]``. On meta tensors (shape-only mode) the
        two torch ops it is made of, as it calls them: ``torch._VF._pad_packed_sequence`` (the padded batch in
        sorted order) then ``index_select`` by ``unsorted_indices``; its other return, the lengths in the input's
        order, indexes a CPU tensor by ``unsorted_indices``, whose values a meta tensor has not."""
        torch = self._torch
        rnn_utils = torch.nn.utils.rnn
        batch_first = _batch_first(cfg, self.id)
        if packed.data.device.type != "meta":
            return rnn_utils.pad_packed_sequence(packed, batch_first=batch_first, total_length=cfg.timesteps)[0]
        pad = inspect.signature(rnn_utils.pad_packed_sequence).parameters["padding_value"].default
        padded, _ = torch._VF._pad_packed_sequence(packed.data, packed.batch_sizes, batch_first, pad, cfg.timesteps)
        return padded.index_select(0 if batch_first else 1, packed.unsorted_indices)

    def _permute_on_cpu(self, cfg: Config, module, hx) -> None:
        """Shape-only, packed input with (h_0, c_0): the permutation nn.LSTM applies to them first
        (``permute_hidden``: index_select by sorted_indices), on empty CPU tensors of their shapes, so that
        torch checks the indices against the states' batch as it does for computed tensors."""
        torch = self._torch
        _, order = torch.sort(torch.tensor(cfg.lengths, dtype=torch.int64), descending=True)
        module.permute_hidden(tuple(torch.empty(tuple(t.shape), dtype=t.dtype) for t in hx), order)

    def _lstm_call(self, cfg: Config, module, xin, hx, each_call=None):
        """``module`` called as a torch user calls it, ``cfg.calls`` times (each call from the previous call's
        (h_n, c_n); a reset from the first call's initial state again); ``each_call(out, h_n)`` after each.
        Returns the last call's (out, h_n, c_n)."""
        args = (xin,) if hx is None else (xin, hx)
        first_args = args
        for call in range(1, cfg.calls + 1):           # each call continues from the previous one's (h_n, c_n)
            if call in (cfg.resets or ()):
                args = first_args                      # a reset: the initial state of call 1 (or none) again
            out, (h_n, c_n) = module(*args)
            args = (xin, (h_n, c_n))
            if each_call is not None:
                each_call(out, h_n)
        return out, h_n, c_n

    def _lstm_returns(self, cfg: Config, out, h_n, c_n) -> list[tuple]:
        """(path, role, tensor, top, layer, direction) of every tensor nn.LSTM returned, in native order (with
        lengths: the PackedSequence's fields, then the unpacked output, which is not a native return)."""
        if cfg.lengths is not None:
            path = (f"pad_packed_sequence([0], batch_first={_batch_first(cfg, self.id)}, "
                    f"total_length={cfg.timesteps})[0]")
            rows = [(f"[0].{name}", role, getattr(out, name), True, None, None) for name, role in _PACKED_FIELDS]
            rows.append((path, "output", self._unpack(cfg, out), False, None, None))
        else:
            rows = [("[0]", "output", out, True, None, None)]
        return rows + [("[1][0]", "h", h_n, True, None, None), ("[1][1]", "c", c_n, True, None, None)]

    def _cells_call(self, cfg: Config, cells, xin, state: list, each_call=None):
        """cell_api: the hand loop, ``cfg.calls`` times (a later call from the states the last one left; a reset
        from the first call's again); ``each_call(seq, state)`` after each. Returns the last call's (seq, state):
        the top cell's h of every step and each layer's (h, c)."""
        steps = (lambda t: xin[:, t]) if cfg.layout == "batch_major" else (lambda t: xin[t])
        first_state, state = list(state), list(state)
        for call in range(1, cfg.calls + 1):         # a later call continues from the states the last one left
            if call in (cfg.resets or ()):
                state = list(first_state)            # a reset: the initial states of call 1 (or none) again
            seq = [steps(t) for t in range(cfg.timesteps)]
            for l, cell in enumerate(cells):
                outs = []
                for x_t in seq:
                    state[l] = cell(x_t, state[l])   # (h, c)
                    outs.append(state[l][0])
                seq = outs
            if each_call is not None:
                each_call(seq, state)
        return seq, state

    def _cells_returns(self, cfg: Config, seq: list, state: list) -> list[tuple]:
        """The hand loop's result, as the repro builds it: (output sequence, [(h, c) of each layer's cell]), as
        (path, role, tensor, top, layer, direction) rows."""
        L = cfg.num_layers
        rows = [(f"[1][{l}][{i}]", role, state[l][i], True, l, "forward")
                for l in range(L) for i, role in enumerate(("h", "c")) if state[l] is not None]
        if seq:
            rows.insert(0, ("[0]", "output", self._torch.stack(seq, dim=1 if cfg.layout == "batch_major" else 0),
                            True, L - 1, None))
        return rows

    @staticmethod
    def _record(rows: list[tuple]) -> list[dict]:
        return [returned(path, role, t, top=top, layer=layer, direction=direction)
                for path, role, t, top, layer, direction in rows]

    def _cells_output(self, cfg: Config, seq: list, state: list, to_np=None) -> np.ndarray:
        """One call's canonical output from the hand loop (the top cell's h per step, each layer's (h, c)), as
        ``_run_cells`` makes ``obs.output``."""
        to_np = to_np or self._to_numpy
        if not cfg.return_sequences:
            if state[-1] is None:          # no step and no initial state: the cells never ran; zeros
                return np.zeros((cfg.batch, cfg.layer_hidden(-1)), np.float32)
            h = to_np(state[-1][0])
            return h[None] if cfg.layout == "unbatched" else h
        if not seq:
            return np.zeros((cfg.batch, 0, cfg.layer_hidden(-1)), np.float32)
        out = to_np(self._torch.stack(seq, dim=1 if cfg.layout == "batch_major" else 0))
        return out[None] if cfg.layout == "unbatched" else out.transpose(1, 0, 2) if cfg.layout == "time_major" else out

    def _call_output(self, cfg: Config, out, h_n, to_np=None) -> np.ndarray:
        """One call's canonical output from nn.LSTM's (output, h_n), as ``run`` makes ``obs.output``: unpacked
        (lengths), batch-first, and without return_sequences the top layer's final h, directions side by side."""
        to_np = to_np or self._to_numpy
        if cfg.return_sequences:
            if cfg.lengths is not None:
                out = self._unpack(cfg, out)
            out = to_np(out)
            return out[None] if cfg.layout == "unbatched" else out.transpose(1, 0, 2) if cfg.layout == "time_major" \
                else out
        h = to_np(h_n).reshape(cfg.num_layers, cfg.directions, cfg.batch, hidden_out(cfg))
        return np.concatenate([h[-1, d] for d in range(cfg.directions)], axis=-1)

    # ---- run: computed, or (shape-only) on the meta device ----
    def _inputs(self, cfg: Config, dev, x: np.ndarray | None):
        """The native input: ``x`` in the case's layout, or (shape-only, ``x`` None) an empty meta tensor of its
        shape."""
        torch = self._torch
        dtype = getattr(torch, cfg.dtype)
        if x is None:
            return torch.empty(native_input_shape(cfg), device=self._shape_device(), dtype=dtype)
        return torch.from_numpy(to_native_layout(cfg, x)).to(device=dev, dtype=dtype)

    def _maker(self, cfg: Config, dev, meta: bool):
        torch = self._torch
        dtype = getattr(torch, cfg.dtype)
        if meta:
            return lambda a: torch.empty(np.shape(a), device=self._shape_device(), dtype=dtype)
        return lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device=dev, dtype=dtype)

    def _run_cells(self, cfg: Config, device: str, x: np.ndarray | None, weights: dict | None, init) -> Observation:
        """cell_api: one ``nn.LSTMCell`` per layer, stepped by hand over time (each layer over the whole
        sequence, then the next layer over its outputs), as a torch user writes it. ``weights`` None: shape-only
        (the cells and the input on the meta device)."""
        torch = self._torch
        meta = weights is None
        dev = torch.device(self._shape_device()) if meta else self._device(device)
        L, T = cfg.num_layers, cfg.timesteps
        to_np = self._to_placeholder if meta else self._to_numpy
        t0 = time.perf_counter()
        with native("build"):
            cells = self._build(cfg, dev, getattr(torch, cfg.dtype)) if meta else self.load_weights(cfg, device, weights)
        xin = self._inputs(cfg, dev, x)
        state = self._states_in(cfg, init, self._maker(cfg, dev, meta))
        t1 = time.perf_counter()
        call_outputs = []
        with torch.no_grad(), native("call"):
            seq, state = self._cells_call(
                cfg, cells, xin, state,
                (lambda s, st: call_outputs.append(self._cells_output(cfg, s, st, to_np))) if cfg.calls > 1 else None)
        t2 = time.perf_counter()
        axis = 1 if cfg.layout == "batch_major" else 0
        rows = self._cells_returns(cfg, seq, state)
        out = rows[0][2] if seq else None
        obs = Observation(
            construct=(f"[torch.nn.LSTMCell(in, h, bias={cfg.bias}, dtype=torch.{cfg.dtype}{_native_args(cfg, self.id)}) "
                       f"for in, h of each of {L} layer(s): {[(layer_input_size(cfg, l), cfg.layer_hidden(l)) for l in range(L)]}] "
                       "stepped by hand: each layer over every "
                       "time step, cell(x_t, (h, c)) -> (h, c), the next layer over its h_t"
                       + (" from the given (h_0, c_0)" if init is not None else "")
                       + (f"; called {cfg.calls} times, each from the states the last call left" if cfg.calls > 1
                          else "")),
            returns=self._record(rows),
            params=[{"name": n, "shape": list(p.shape)} for n, p in cells.named_parameters()],
            param_count=sum(p.numel() for p in cells.parameters()),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
        notes = obs.normalization
        notes.append("cell_api: the hand loop's result is (output, states): output = the top cell's h of every step, "
                     f"stacked along time by the caller (torch.stack(dim={axis})), states = each layer's (h, c) after "
                     "its last step (each cell returns (h, c) per step)")
        h = [to_np(s[0]) for s in state] if T or init is not None else None
        c = [to_np(s[1]) for s in state] if T or init is not None else None
        if h is None:      # no step and no initial state: the cells never ran; their state is zeros
            B = () if cfg.layout == "unbatched" else (cfg.batch,)
            h = c = [np.zeros(B + (cfg.layer_hidden(l),), np.float32 if cfg.dtype == "bfloat16" else cfg.dtype)
                     for l in range(L)]
        if out is None:    # no step: an output sequence of none, in the native layout as the loop would stack it
            H = cfg.layer_hidden(-1)
            out = np.zeros({"batch_major": (cfg.batch, 0, H), "time_major": (0, cfg.batch, H),
                            "unbatched": (0, H)}[cfg.layout], h[0].dtype)
        else:
            out = to_np(out)
        if cfg.layout == "unbatched":
            out, h, c = out[None], [a[None] for a in h], [a[None] for a in c]
            notes.append("unbatched: add a batch axis of 1 to the output and the states")
        elif cfg.layout == "time_major":
            out = out.transpose(1, 0, 2)
            notes.append("time-major steps stacked on axis 0: transpose to (B, T, H)")
        obs.output = out if cfg.return_sequences else h[L - 1]
        obs.states = list(zip(h, c))
        obs.call_outputs = call_outputs or None
        return obs

    def run(self, cfg: Config, device: str, x: np.ndarray | None, weights: dict | None, init) -> Observation:
        """(``x`` and ``weights`` None: shape-only, see ``run_shapes``.)"""
        if cfg.cell_api:
            return self._run_cells(cfg, device, x, weights, init)
        torch = self._torch
        meta = weights is None
        dev = torch.device(self._shape_device()) if meta else self._device(device)
        to_np = self._to_placeholder if meta else self._to_numpy
        batch_first = _batch_first(cfg, self.id)
        L, D, Hp, H = cfg.num_layers, cfg.directions, hidden_out(cfg), cfg.hidden_size
        notes: list[str] = []
        t0 = time.perf_counter()
        with native("build"):
            module = self._build(cfg, dev, getattr(torch, cfg.dtype)) if meta else self.load_weights(cfg, device, weights)
        xin = self._inputs(cfg, dev, x)
        if x is not None and cfg.dtype != str(x.dtype):
            notes.append(f"input travels as {x.dtype} and is cast to torch.{cfg.dtype} before the call")
        if cfg.lengths is not None:
            with native("call"):
                xin = self._pack(cfg, xin)
            notes.append(f"lengths: input packed with torch.nn.utils.rnn.pack_padded_sequence(x, "
                         f"lengths={list(cfg.lengths)}, batch_first={batch_first}, enforce_sorted=False)")
        hx = self._hx_in(cfg, init, self._maker(cfg, dev, meta), notes)
        if meta and cfg.lengths is not None and hx is not None:
            with native("call"):
                self._permute_on_cpu(cfg, module, hx)
            notes.append("lengths with (h_0, c_0), shape-only: nn.LSTM first permutes the states by the "
                         "PackedSequence's sorted_indices (index_select on their batch axis, which checks every index "
                         "against it), and meta indices hold no values to check; that permutation is run on the CPU "
                         "instead: module.permute_hidden on empty CPU tensors of the states' shapes, by torch.sort("
                         "lengths, descending=True)'s indices, as pack_padded_sequence sorts them")
        t1 = time.perf_counter()
        call_outputs = []
        with torch.no_grad(), native("call"):
            out, h_n, c_n = self._lstm_call(
                cfg, module, xin, hx,
                (lambda o, h: call_outputs.append(self._call_output(cfg, o, h, to_np))) if cfg.calls > 1 else None)
        if cfg.calls > 1:
            notes.append(f"{cfg.calls} calls on the same input, each given the previous call's (h_n, c_n) as its "
                         "initial state (torch's own way to continue a sequence)"
                         + (f"; call(s) {', '.join(map(str, cfg.resets))} given the first call's initial state "
                            "again (a reset)" if cfg.resets else "") + "; the last call's returns are compared")
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()

        rows = self._lstm_returns(cfg, out, h_n, c_n)
        if cfg.lengths is not None:
            default_pad = inspect.signature(torch.nn.utils.rnn.pad_packed_sequence).parameters["padding_value"].default
            notes.append(f"lengths: the LSTM returns output as a PackedSequence (data {list(out.data.shape)} = "
                         f"(sum(lengths), D*H'), batch_sizes, sorted_indices, unsorted_indices), not a padded tensor; "
                         f"unpacked with torch.nn.utils.rnn.{rows[len(_PACKED_FIELDS)][0]}, which writes its "
                         f"padding_value={default_pad!r} (its default) at every step past a sequence's length")
            if meta:
                notes.append("lengths, shape-only: pad_packed_sequence reads the lengths back through unsorted_indices, "
                             "which a meta tensor holds no values of; the padded output is its own two ops on the meta "
                             "tensors instead: torch._VF._pad_packed_sequence(data, batch_sizes, batch_first, 0.0, "
                             "total_length=T), then index_select(batch axis, unsorted_indices)")
            notes.append("lengths: h_n / c_n hold each sequence's state after its last valid step, in the input's "
                         "batch order (torch restores it with unsorted_indices)")
            out = rows[len(_PACKED_FIELDS)][2]
        if cfg.dtype == "bfloat16":
            notes.append("bfloat16 results are widened to float32 (exactly) for NumPy, which has no bfloat16")
        obs = Observation(
            construct=(f"torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
                       f"bias={cfg.bias}, batch_first={batch_first}, "
                       f"bidirectional={cfg.bidirectional}, proj_size={cfg.proj_size}, dtype=torch.{cfg.dtype}"
                       f"{_native_args(cfg, self.id, skip=('batch_first',))})"
                       + (" on a PackedSequence" if cfg.lengths is not None else "")
                       + (" with (h_0, c_0)" if init is not None else "")),
            returns=self._record(rows),
            params=[{"name": n, "shape": list(p.shape)} for n, p in module.named_parameters()],
            param_count=sum(p.numel() for p in module.parameters()),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
        out, h_n, c_n = to_np(out), to_np(h_n), to_np(c_n)
        obs.normalization = notes
        obs.call_outputs = call_outputs or None
        if cfg.layout == "unbatched":
            out, h_n, c_n = out[None], h_n[:, None], c_n[:, None]
            notes.append("unbatched: add a batch axis of 1 to output (axis 0) and h_n/c_n (axis 1)")
        elif cfg.layout == "time_major":
            out = out.transpose(1, 0, 2)
            notes.append("output is (T, B, F) without batch_first: transpose to (B, T, F)")
        h = h_n.reshape(L, D, cfg.batch, Hp)
        c = c_n.reshape(L, D, cfg.batch, H)
        if cfg.return_sequences:
            obs.output = out
        else:
            obs.output = np.concatenate([h[L - 1, d] for d in range(D)], axis=-1)
            notes.append("no return_sequences switch: output = h_n.view(L, D, B, H')[-1] with directions "
                         "concatenated (the top layer's final hidden state per direction; for the backward "
                         "direction that is not output[:, -1])")
        obs.states = [(h[l, d], c[l, d]) for l in range(L) for d in range(D)]
        notes.append("states: h_n.view(L, D, B, H')[l, d], c_n.view(L, D, B, H)[l, d]"
                     + ("" if cfg.return_state else " (no return_state switch: h_n and c_n are always returned, "
                                                    "so they are compared although the case did not ask for them)"))
        return obs

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        """``run`` in torch's FakeTensorMode (fake CPU tensors), or, for packed input (whose packing reads the
        lengths' values) and what fake tensors cannot run, on the meta device: the construct built there (no weights
        loaded, no values), fed tensors of the input's and the initial states' shapes (the lengths a CPU tensor, as
        pack_padded_sequence wants them), every returned tensor a :func:`placeholder` of its shape, normalized by
        ``run``'s own code."""
        from torch._subclasses import fake_tensor

        if cfg.lengths is None:      # FakeTensorMode first: ~5x cheaper than meta's Python kernels for aten::lstm
            try:
                obs = self._fake_shapes(cfg, device, init)
                obs.normalization.insert(0, "shape-only: built and called in torch's FakeTensorMode (fake CPU "
                                            "tensors, static shapes: shapes and dtypes, no values), whatever the device "
                                            "asked")
                return obs
            except Rejected as exc:
                if not isinstance(exc.__cause__, (fake_tensor.UnsupportedFakeTensorException,
                                                  fake_tensor.DynamicOutputShapeException,
                                                  fake_tensor.DataDependentOutputException,
                                                  fake_tensor.UnsupportedOperatorException)):
                    raise
        obs = self.run(cfg, device, None, None, init)
        obs.normalization.insert(0, "shape-only: built and called on torch's meta device (shapes and dtypes, no "
                                    "values), whatever the device asked"
                                 + ("" if cfg.lengths is None else " (FakeTensorMode refuses pack_padded_sequence: it "
                                                                   "reads the lengths' values)"))
        return obs

    # ---- infer: the shapes of this config from FakeTensorMode (or the meta device), every dimension known; which
    # dimensions torch.export keeps symbolic, from one export per construct kind ----
    def _shape_device(self) -> str:
        """Where shape-only tensors live: fake CPU tensors inside ``_fake_shapes``, else the meta device."""
        return "cpu" if getattr(self, "_faking", False) else "meta"

    def _fake_shapes(self, cfg: Config, device: str, init) -> Observation:
        """``run`` in shape-only mode inside ``torch._subclasses.FakeTensorMode`` (static shapes: no ShapeEnv), on
        fake CPU tensors: torch's own shape propagation (its fake implementations and meta kernels), no values."""
        from torch._subclasses.fake_tensor import FakeTensorMode

        self._faking = True
        try:
            with FakeTensorMode():
                return self.run(cfg, device, None, None, init)
        finally:
            self._faking = False

    _FAKE_API = ("torch's FakeTensorMode (torch._subclasses.FakeTensorMode, static shapes): the construct built and "
                 "called on fake CPU tensors of the input's (and initial states') shapes, no values")
    _META_API = ("the meta device: the construct built on torch.device('meta') and called on empty meta tensors of "
                 "the input's (and initial states') shapes")

    def _known(self, cfg: Config, device: str) -> dict:
        """Every dimension known: this config's shapes from FakeTensorMode; packed input (whose packing reads the
        lengths' values, which a fake tensor has none of) or another refusal peculiar to fake tensors: the meta
        device, said in the notes. Kept for the last config (the worker asks up to four times per run)."""
        key = repr((cfg, device))
        last = getattr(self, "_last_known", None)
        if last is not None and last[0] == key:
            if isinstance(last[1], Rejected):
                raise last[1]
            return last[1]
        try:
            got = self._known_once(cfg, device)
        except Rejected as exc:
            self._last_known = (key, exc)
            raise
        self._last_known = (key, got)
        return got

    def _known_once(self, cfg: Config, device: str) -> dict:
        from torch._subclasses import fake_tensor

        init = initial_states(cfg)
        notes = []
        if cfg.lengths is None:
            try:
                obs = self._fake_shapes(cfg, device, init)
                return {"api": self._FAKE_API, "returns": obs.returns, "param_count": obs.param_count,
                        "notes": ["shapes from torch's FakeTensorMode (static shapes), whatever the device asked"]}
            except Rejected as exc:
                cause = exc.__cause__
                if not isinstance(cause, (fake_tensor.UnsupportedFakeTensorException,
                                          fake_tensor.DynamicOutputShapeException,
                                          fake_tensor.DataDependentOutputException,
                                          fake_tensor.UnsupportedOperatorException)):
                    raise
                notes.append(f"FakeTensorMode could not run this call ({type(cause).__name__}: {str(cause)[:200]}); "
                             "the meta device instead")
        else:
            notes.append("lengths: pack_padded_sequence reads the lengths' values, which fake tensors have none of "
                         "(FakeTensorMode refuses aten._pack_padded_sequence: DynamicOutputShapeException); the meta "
                         "device instead, the lengths a CPU tensor")
        obs = self.run(cfg, device, None, None, init)
        notes = ["built and called on torch's meta device (shapes and dtypes, no values), whatever the device "
                 "asked"] + notes + [n for n in obs.normalization if n.startswith("lengths, shape-only")]
        return {"api": self._META_API, "returns": obs.returns, "param_count": obs.param_count, "notes": notes}

    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        """With every dimension known: this config's own shapes (``_known``: FakeTensorMode, the meta device for
        packed input). With the batch or the time steps unknown: which dimensions torch.export keeps symbolic is
        asked once per construct kind in this worker (``_kind``: what decides it, not the sizes), by
        ``torch.export.export`` of ``run``'s call with those dimensions marked ``torch.export.Dim``, at the kind's
        first config; its refusal (a dimension torch specialized) is a :class:`Rejected`, re-raised for every later
        config of the kind with a note, its success applied to each later config's own shapes (``_known``) as the
        dimensions it left symbolic. A config torch refuses with every dimension known is refused whatever is
        unknown (the same call, traced or not): not exported, and not the kind's record."""
        from ..settings import torch_export

        if not torch_export():
            # Not NotAsked: with every dimension known too, torch's inference (FakeTensorMode or the meta device)
            # costs 1-3 s at its first call in a worker (it loads torch's decompositions and dynamo), and
            # torch.export seconds a construct kind: a session's first torch run would pay it whatever it asks.
            raise NotImplementedError("torch's shape inference is asked only with CONFORMANCE_TORCH_EXPORT=1: "
                                      "FakeTensorMode and the meta device cost 1-3 s at their first call in a "
                                      "process, torch.export seconds a construct kind (README, \"Shapes without "
                                      "running\")")
        unknown = tuple(unknown)
        known = self._known(cfg, device)         # raises torch's refusal of this config itself
        if not unknown:
            return known
        kind, sizes = self._kind(cfg, device), self._kind_sizes(cfg)
        record = self.__dict__.setdefault("_kinds", {})
        both = record.get((kind, ("batch", "time")))
        if (kind, unknown) not in record and len(unknown) == 1 and both is not None and both[0] == "refused" \
                and _specialized(both[1]) == set(unknown):
            # Asked with both unknown, torch named this one alone as the dimension it specialized ("Constraints
            # violated (time)!" lists every dimension it could not keep): the same refusal with it alone unknown.
            again = _refusal_again(both[1], f" [asked with the batch and the time steps unknown, torch.export "
                                            f"specialized the {unknown[0]} alone: not exported again with the "
                                            f"{unknown[0]} alone unknown]")
            record[(kind, unknown)] = ("refused", again, both[2])
        if (kind, unknown) not in record:
            try:
                got = self._export_once(cfg, device, unknown)
            except Rejected as exc:
                record[(kind, unknown)] = ("refused", exc, sizes)
                exc.info["message"] += f" [torch.export of this construct kind ({_describe(kind)}) at {sizes}]"
                raise
            record[(kind, unknown)] = ("ok", got, sizes)
            got = {k: v for k, v in got.items() if k != "ranges"}
            got["api"] += f", once per construct kind in this worker: this config is the kind's first ({sizes})"
            return got
        outcome, got, at = record[(kind, unknown)]
        if outcome == "refused":
            raise _refusal_again(got, f" [torch.export refused this construct kind ({_describe(kind)}) with "
                                      f"{' and '.join(unknown)} unknown at its first config's sizes in this worker "
                                      f"({at}); not exported again for this config ({sizes})]")
        symbolic = [[d is None for d in r["shape"]] for r in got["returns"]]
        mine = known["returns"]
        if [(r["path"], r["role"], len(r["shape"])) for r in mine] != \
                [(r["path"], r["role"], len(r["shape"])) for r in got["returns"]]:
            raise RuntimeError(f"construct kind {_describe(kind)}: this config's returns "
                               f"{[(r['path'], r['shape']) for r in mine]} do not match the paths and ranks of the "
                               f"kind's export at {at} {[(r['path'], r['shape']) for r in got['returns']]}")
        returns = [{**r, "shape": [None if s else d for d, s in zip(r["shape"], sym)]}
                   for r, sym in zip(mine, symbolic)]
        kept = "; ".join(f"{r['path']} axis {', '.join(str(i) for i, s in enumerate(sym) if s)}"
                         for r, sym in zip(got["returns"], symbolic) if any(sym)) or "none"
        return {"api": f"torch.export.export with torch.export.Dim for the {' and '.join(unknown)}, once per construct "
                       f"kind in this worker (at {at}), for which dimensions stay unknown; this config's shapes from "
                       + known["api"],
                "returns": returns, "param_count": known["param_count"],
                "notes": known["notes"] + [
                    f"the dimensions left unknown (None) are those torch.export kept symbolic ({kept}) when it exported "
                    f"this construct kind ({_describe(kind)}) with {' and '.join(unknown)} unknown at {at} in this "
                    f"worker; this config ({sizes}) was not exported: its shapes come from {known['api'].split(':')[0]}"]
                + [f"(at the kind's export) {n}" for n in got["notes"]]}

    def _kind(self, cfg: Config, device: str) -> tuple:
        """What decides which dimensions torch.export can keep symbolic, not the sizes: the construct and how it is
        called, and each size only as 0, 1 or at least 2 (torch specializes 0 and 1 whatever the code)."""
        # What torch.export specializes is decided by the code path the call takes (the hand-stepped cells or
        # nn.LSTM's forward, packing, given states, where the batch axis is) and by sizes 0 and 1; not by the layer's
        # widths, depth, directions or dtype, which only change the weights' shapes (aten::lstm takes them as they are);
        # the hand-stepped cells return a (h, c) per layer, so their depth is part of the kind.
        c = lambda n: min(int(n), 2)      # noqa: E731
        return (("cell_api", cfg.cell_api), ("layers", cfg.num_layers if cfg.cell_api else None),   # (cells: per layer)
                ("lengths", cfg.lengths is not None),
                ("initial states", cfg.initial_state != "none"), ("layout", cfg.layout), ("calls>1", cfg.calls > 1),
                ("batch", c(cfg.batch)), ("timesteps", c(cfg.timesteps)), ("device", device))

    @staticmethod
    def _kind_sizes(cfg: Config) -> str:
        hidden = list(cfg.hidden_size) if isinstance(cfg.hidden_size, tuple) else cfg.hidden_size
        return (f"input_size={cfg.input_size}, hidden_size={hidden}, batch={cfg.batch}, timesteps={cfg.timesteps}"
                + (f", proj_size={cfg.proj_size}" if cfg.proj_size else "")
                + (f", num_layers={cfg.num_layers}" if cfg.num_layers != 1 else ""))

    def _export_once(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        torch = self._torch
        from torch.export import Dim, export

        impl, dev, dtype = self, self._device(device), getattr(torch, cfg.dtype)
        rows: list = []

        class Call(torch.nn.Module):
            """``run``'s native call as one module, for torch.export."""

            def __init__(self, construct):
                super().__init__()
                self.construct = construct

            def forward(self, x, states):
                rows.clear()
                if cfg.cell_api:
                    seq, state = impl._cells_call(cfg, self.construct, x, list(states) or [None] * cfg.num_layers)
                    rows.extend(impl._cells_returns(cfg, seq, state))
                else:
                    xin = impl._pack(cfg, x) if cfg.lengths is not None else x
                    rows.extend(impl._lstm_returns(cfg, *impl._lstm_call(cfg, self.construct, xin, states or None)))
                return tuple(r[2] for r in rows)

        with native("build"):
            construct = self._build(cfg, dev, dtype)
        notes: list[str] = []
        make = lambda a: torch.empty(np.shape(a), device=dev, dtype=dtype)    # noqa: E731 - values never read
        x = torch.empty(native_input_shape(cfg), device=dev, dtype=dtype)
        init = initial_states(cfg)
        states = (() if init is None else tuple(self._states_in(cfg, init, make)) if cfg.cell_api
                  else self._hx_in(cfg, init, make, []))
        dims = {"batch": Dim("batch"), "time": Dim("time")}
        axes = {"batch_major": {"batch": 0, "time": 1}, "time_major": {"time": 0, "batch": 1},
                "unbatched": {"time": 0}}[cfg.layout]
        x_dims = {axes[d]: dims[d] for d in unknown if d in axes} or None
        if "batch" in unknown and "batch" not in axes:
            notes.append("unbatched: the input has no batch axis to leave unknown")
        state_axis = None if cfg.layout == "unbatched" else 0 if cfg.cell_api else 1

        def state_dims(t):
            if "batch" in unknown and state_axis is not None and t.shape[state_axis] == cfg.batch:
                return {state_axis: dims["batch"]}
            return None
        state_spec = tuple(tuple(state_dims(t) for t in pair) for pair in states) if cfg.cell_api else \
            tuple(state_dims(t) for t in states)
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            with native("call"):
                ep = export(Call(construct), (x, states), dynamic_shapes={"x": x_dims, "states": state_spec})
        for w in {(w.category.__name__, str(w.message)): w for w in caught}:
            notes.append(f"torch.export warned: {w[0]}: {w[1][:300]}")

        def size(d):
            if isinstance(d, int):
                return d
            expr = d.node.expr
            return int(expr) if expr.is_number else None

        outputs = next(n for n in ep.graph.nodes if n.op == "output").args[0]
        vals = [o.meta["val"] if isinstance(o, torch.fx.Node) else o for o in outputs]
        if len(vals) != len(rows):
            raise RuntimeError(f"torch.export's program returns {len(vals)} tensors, the call {len(rows)}")
        returns = [returned(path, role, _Shaped(tuple(size(d) for d in v.shape), v.dtype), top=top, layer=layer,
                            direction=direction)
                   for (path, role, _, top, layer, direction), v in zip(rows, vals)]
        ranges = {}
        x_val = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs)
        for d in unknown:
            if d in axes:
                sym = x_val.meta["val"].shape[axes[d]]
                r = ep.range_constraints.get(getattr(getattr(sym, "node", None), "expr", None))
                if r is not None:
                    ranges[d] = (_bound(r.lower), _bound(r.upper))
        return {"api": f"torch.export.export of the call with torch.export.Dim for the {' and '.join(unknown)}"
                       + ("" if device == "cpu" else f", on the {device}"),
                "returns": returns, "param_count": sum(p.numel() for p in construct.parameters()), "notes": notes,
                "ranges": ranges}


def _bound(v) -> float:
    """A bound of torch.export's range as a number (sympy's infinities, torch's int_oo included: math.inf)."""
    try:
        return int(v)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return -math.inf if str(v).startswith("-") else math.inf


class _Shaped:
    """A shape torch.export inferred (None: a dimension it left symbolic) and a dtype, for ``returned``."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


def _refusal_again(exc: Rejected, note: str) -> Rejected:
    """torch's refusal ``exc`` again, its type and message as torch gave them, with ``note`` added."""
    again = Rejected.__new__(Rejected)
    Exception.__init__(again, str(exc))
    again.info = {**exc.info, "message": exc.info["message"] + note}
    return again


def _specialized(exc) -> set[str]:
    """The dimensions a torch.export refusal says torch specialized ("Constraints violated (batch, time)!"), or none."""
    import re

    m = re.search(r"Constraints violated \(([\w, ]+)\)!", exc.info.get("message", ""))
    return {d.strip() for d in m.group(1).split(",")} if m else set()


def _describe(kind: tuple) -> str:
    """A construct kind (``TorchLSTM._kind``) in words; a size class 2 is "2+"."""
    sizes = ("num_layers", "input_size", "hidden_size", "batch", "timesteps")
    show = lambda k, v: ("2+" if v == 2 else str(v)) if k in sizes else v   # noqa: E731
    return ", ".join(f"{k} {list(map(lambda x: show(k, x), v)) if isinstance(v, tuple) else show(k, v)}"
                     for k, v in kind)
