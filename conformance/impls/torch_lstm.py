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
import time

import numpy as np

from ..reference import (direction_names, fed_input_size, fed_state_entries, fed_state_shape, hidden_out, layer_input_size,
                         to_native_layout)
from ..spec import Config
from .base import Impl, Observation, native, one_batch_axis, returned

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

    def load_weights(self, cfg: Config, device: str, weights: dict):
        torch = self._torch
        dtype = getattr(torch, cfg.dtype)
        if cfg.cell_api:
            module = torch.nn.ModuleList(
                torch.nn.LSTMCell(layer_input_size(cfg, l), cfg.layer_hidden(l), bias=cfg.bias, device=self._device(device),
                                  dtype=dtype, **cfg.native_for(self.id)) for l in range(cfg.num_layers))
            return self._assign(cfg, module, weights, _cell_name, dtype)
        module = torch.nn.LSTM(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
                               bidirectional=cfg.bidirectional,
                               proj_size=cfg.proj_size, device=self._device(device), dtype=dtype,
                               **({"dropout": cfg.layer_dropout} if cfg.layer_dropout else {}),
                               **{**cfg.native_for(self.id), "batch_first": _batch_first(cfg, self.id)})
        module.train(cfg.training)
        return self._assign(cfg, module, weights, _native_name, dtype)

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

    def _run_cells(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        """cell_api: one ``nn.LSTMCell`` per layer, stepped by hand over time (each layer over the whole
        sequence, then the next layer over its outputs), as a torch user writes it."""
        torch = self._torch
        dev, dtype = self._device(device), getattr(torch, cfg.dtype)
        L, T = cfg.num_layers, cfg.timesteps
        t0 = time.perf_counter()
        with native("build"):
            cells = self.load_weights(cfg, device, weights)
        xin = torch.from_numpy(to_native_layout(cfg, x)).to(device=dev, dtype=dtype)
        steps = (lambda t: xin[:, t]) if cfg.layout == "batch_major" else (lambda t: xin[t])
        state = [None] * L if init is None else [
            tuple(torch.from_numpy(np.ascontiguousarray(s[0] if cfg.layout == "unbatched" else s)).to(dev, dtype)
                  for s in pair) for pair in init]
        t1 = time.perf_counter()
        first_state, call_outputs = list(state), []
        with torch.no_grad(), native("call"):
            for call in range(1, cfg.calls + 1):         # a later call continues from the states the last one left
                if call in (cfg.resets or ()):
                    state = list(first_state)            # a reset: the initial states of call 1 (or none) again
                seq = [steps(t) for t in range(T)]
                for l, cell in enumerate(cells):
                    outs = []
                    for x_t in seq:
                        state[l] = cell(x_t, state[l])   # (h, c)
                        outs.append(state[l][0])
                    seq = outs
                if cfg.calls > 1:
                    call_outputs.append(self._cells_output(cfg, seq, state))
        t2 = time.perf_counter()
        axis = 1 if cfg.layout == "batch_major" else 0
        out = torch.stack(seq, dim=axis) if seq else None

        def to_np(t):
            t = t.detach().cpu()
            return (t.float() if t.dtype == torch.bfloat16 else t).numpy()

        # the hand loop's result, as the repro builds it: (output sequence, [(h, c) of each layer's cell])
        returns = [returned(f"[1][{l}][{i}]", role, state[l][i], layer=l, direction="forward")
                   for l in range(L) for i, role in enumerate(("h", "c")) if state[l] is not None]
        if out is not None:
            returns.insert(0, returned("[0]", "output", out, layer=L - 1))
        obs = Observation(
            construct=(f"[torch.nn.LSTMCell(in, h, bias={cfg.bias}, dtype=torch.{cfg.dtype}{_native_args(cfg, self.id)}) "
                       f"for in, h of each of {L} layer(s): {[(layer_input_size(cfg, l), cfg.layer_hidden(l)) for l in range(L)]}] "
                       "stepped by hand: each layer over every "
                       "time step, cell(x_t, (h, c)) -> (h, c), the next layer over its h_t"
                       + (" from the given (h_0, c_0)" if init is not None else "")
                       + (f"; called {cfg.calls} times, each from the states the last call left" if cfg.calls > 1
                          else "")),
            returns=returns,
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

    def _cells_output(self, cfg: Config, seq: list, state: list) -> np.ndarray:
        """One call's canonical output from the hand loop (the top cell's h per step, each layer's (h, c)), as
        ``_run_cells`` makes ``obs.output``."""
        torch = self._torch

        def to_np(t):
            t = t.detach().cpu()
            return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
        if not cfg.return_sequences:
            if state[-1] is None:          # no step and no initial state: the cells never ran; zeros
                return np.zeros((cfg.batch, cfg.layer_hidden(-1)), np.float32)
            h = to_np(state[-1][0])
            return h[None] if cfg.layout == "unbatched" else h
        if not seq:
            return np.zeros((cfg.batch, 0, cfg.layer_hidden(-1)), np.float32)
        out = to_np(torch.stack(seq, dim=1 if cfg.layout == "batch_major" else 0))
        return out[None] if cfg.layout == "unbatched" else out.transpose(1, 0, 2) if cfg.layout == "time_major" else out

    def _call_output(self, cfg: Config, out, h_n) -> np.ndarray:
        """One call's canonical output from nn.LSTM's (output, h_n), as ``run`` makes ``obs.output``: unpacked
        (lengths), batch-first, and without return_sequences the top layer's final h, directions side by side."""
        torch = self._torch
        if cfg.return_sequences:
            if cfg.lengths is not None:
                out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=_batch_first(cfg, self.id),
                                                             total_length=cfg.timesteps)[0]
            out = out.detach().cpu().float().numpy() if out.dtype == torch.bfloat16 else out.detach().cpu().numpy()
            return out[None] if cfg.layout == "unbatched" else out.transpose(1, 0, 2) if cfg.layout == "time_major" \
                else out
        h = h_n.detach().cpu()
        h = (h.float() if h.dtype == torch.bfloat16 else h).numpy()
        h = h.reshape(cfg.num_layers, cfg.directions, cfg.batch, hidden_out(cfg))
        return np.concatenate([h[-1, d] for d in range(cfg.directions)], axis=-1)

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        if cfg.cell_api:
            return self._run_cells(cfg, device, x, weights, init)
        torch = self._torch
        rnn_utils = torch.nn.utils.rnn
        dev = self._device(device)
        dtype = getattr(torch, cfg.dtype)
        batch_first = _batch_first(cfg, self.id)
        L, D, Hp, H, T = cfg.num_layers, cfg.directions, hidden_out(cfg), cfg.hidden_size, cfg.timesteps
        notes: list[str] = []
        t0 = time.perf_counter()
        with native("build"):
            module = self.load_weights(cfg, device, weights)
        xin = torch.from_numpy(to_native_layout(cfg, x)).to(device=dev, dtype=dtype)
        if cfg.dtype != str(x.dtype):
            notes.append(f"input travels as {x.dtype} and is cast to torch.{cfg.dtype} before the call")
        if cfg.lengths is not None:
            # lengths must be a CPU int64 tensor (or a list); torch sorts internally with enforce_sorted=False
            with native("call"):
                xin = rnn_utils.pack_padded_sequence(xin, torch.tensor(cfg.lengths, dtype=torch.int64),
                                                     batch_first=batch_first, enforce_sorted=False)
            notes.append(f"lengths: input packed with torch.nn.utils.rnn.pack_padded_sequence(x, "
                         f"lengths={list(cfg.lengths)}, batch_first={batch_first}, enforce_sorted=False)")
        args = (xin,)
        if init is not None:
            # (L*D, B, H') and (L*D, B, H), index layer * D + direction (feed_state_layers: another count, which
            # may differ between h and c: the shorter one's missing entries are None)
            h0 = np.stack([h for h, _ in init if h is not None])
            c0 = np.stack([c for _, c in init if c is not None])
            if cfg.layout == "unbatched":
                h0, c0 = h0[:, 0], c0[:, 0]
            hx = tuple(torch.from_numpy(np.ascontiguousarray(s)).to(device=dev, dtype=dtype) for s in (h0, c0))
            args = (xin, hx)
            notes.append("initial states passed as (h_0, c_0): the canonical (h0, c0) per layer, then direction, "
                         f"stacked on a first axis of L*D (index layer*D + direction) to {tuple(h0.shape)} and "
                         f"{tuple(c0.shape)}")
        t1 = time.perf_counter()
        first_args, call_outputs = args, []
        with torch.no_grad(), native("call"):
            for call in range(1, cfg.calls + 1):           # each call continues from the previous one's (h_n, c_n)
                if call in (cfg.resets or ()):
                    args = first_args                      # a reset: the initial state of call 1 (or none) again
                out, (h_n, c_n) = module(*args)
                args = (xin, (h_n, c_n))
                if cfg.calls > 1:
                    call_outputs.append(self._call_output(cfg, out, h_n))
        if cfg.calls > 1:
            notes.append(f"{cfg.calls} calls on the same input, each given the previous call's (h_n, c_n) as its "
                         "initial state (torch's own way to continue a sequence)"
                         + (f"; call(s) {', '.join(map(str, cfg.resets))} given the first call's initial state "
                            "again (a reset)" if cfg.resets else "") + "; the last call's returns are compared")
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()

        def record(path, role, tensor, top=True):
            return returned(path, role, tensor, top=top)

        if cfg.lengths is not None:
            returns = [record(f"[0].{name}", role, getattr(out, name)) for name, role in _PACKED_FIELDS]
            default_pad = inspect.signature(rnn_utils.pad_packed_sequence).parameters["padding_value"].default
            padded, _ = rnn_utils.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
            path = f"pad_packed_sequence([0], batch_first={batch_first}, total_length={T})[0]"
            notes.append(f"lengths: the LSTM returns output as a PackedSequence (data {list(out.data.shape)} = "
                         f"(sum(lengths), D*H'), batch_sizes, sorted_indices, unsorted_indices), not a padded tensor; "
                         f"unpacked with torch.nn.utils.rnn.{path}, which writes its padding_value={default_pad!r} "
                         "(its default) at every step past a sequence's length")
            notes.append("lengths: h_n / c_n hold each sequence's state after its last valid step, in the input's "
                         "batch order (torch restores it with unsorted_indices)")
            returns.append(record(path, "output", padded, top=False))
            out = padded
        else:
            returns = [record("[0]", "output", out)]
        returns += [record("[1][0]", "h", h_n), record("[1][1]", "c", c_n)]

        def to_np(t):
            t = t.detach().cpu()
            return (t.float() if t.dtype == torch.bfloat16 else t).numpy()

        if cfg.dtype == "bfloat16":
            notes.append("bfloat16 results are widened to float32 (exactly) for NumPy, which has no bfloat16")
        out, h_n, c_n = to_np(out), to_np(h_n), to_np(c_n)

        obs = Observation(
            construct=(f"torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
                       f"bias={cfg.bias}, batch_first={batch_first}, "
                       f"bidirectional={cfg.bidirectional}, proj_size={cfg.proj_size}, dtype=torch.{cfg.dtype}"
                       f"{_native_args(cfg, self.id, skip=('batch_first',))})"
                       + (" on a PackedSequence" if cfg.lengths is not None else "")
                       + (" with (h_0, c_0)" if init is not None else "")),
            returns=returns,
            params=[{"name": n, "shape": list(p.shape)} for n, p in module.named_parameters()],
            param_count=sum(p.numel() for p in module.parameters()),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
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
