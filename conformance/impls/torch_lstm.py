"""torch: ``torch.nn.LSTM``, one module for the whole stack.

Native facts this adapter maps: ``forward`` always returns ``(output, (h_n, c_n))`` (there is no
``return_sequences`` / ``return_state`` switch); ``output`` is time-major unless
``batch_first=True``; ``h_n`` / ``c_n`` stack layers and directions as ``(L*D, B, H')``; unbatched
2-D input drops the batch axis everywhere; directions are always concatenated.
"""

from __future__ import annotations

import time

import numpy as np

from ..reference import hidden_out, to_native_layout
from ..spec import Config
from .base import Impl, Observation, returned


class TorchLSTM(Impl):
    id = "torch"
    requires = ("torch",)
    install_hint = "pip install 'lstm-conformance[torch]'"
    param_formula = "torch"

    def unsupported(self, cfg: Config) -> str | None:
        if cfg.merge_mode != "concat":
            return (f"torch.nn.LSTM always concatenates the two directions; merge_mode={cfg.merge_mode!r} "
                    "has no native equivalent")
        return None

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        B, T, F = cfg.batch, cfg.timesteps, cfg.input_size
        layout = {"batch_major": "",
                  "time_major": "x = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major (T, B, F)\n",
                  "unbatched": "x = x[0]  # unbatched (T, F)\n"}[cfg.layout]
        return (
            "import numpy as np\n"
            "import torch\n"
            "\n"
            f"torch.manual_seed({cfg.seed})\n"
            f"lstm = torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
            f"bias={cfg.bias}, batch_first={cfg.layout == 'batch_major'}, bidirectional={cfg.bidirectional}, "
            f"proj_size={cfg.proj_size}, dtype=torch.{cfg.dtype})\n"
            f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{cfg.dtype}\")\n"
            f"{layout}"
            "with torch.no_grad():\n"
            "    out = lstm(torch.from_numpy(x))  # (output, (h_n, c_n))\n"
            + "".join(f'print("out{p}", tuple(out{p}.shape))\n' for p in ("[0]", "[1][0]", "[1][1]"))
            + 'print("params", sum(p.numel() for p in lstm.parameters()))\n')

    def setup(self) -> dict[str, str]:
        import torch
        self._torch = torch
        torch.set_num_threads(1)
        return {"torch": torch.__version__}

    def devices(self) -> list[str]:
        return ["cpu"] + (["gpu"] if self._torch.cuda.is_available() else [])

    def device_name(self, device: str) -> str:
        torch = self._torch
        return torch.cuda.get_device_name(0) if device == "gpu" else "cpu"

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        torch = self._torch
        dev = torch.device("cuda:0" if device == "gpu" else "cpu")
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        module = torch.nn.LSTM(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
                               batch_first=cfg.layout == "batch_major", bidirectional=cfg.bidirectional,
                               proj_size=cfg.proj_size, device=dev, dtype=getattr(torch, cfg.dtype))
        xin = torch.from_numpy(to_native_layout(cfg, x)).to(dev)
        t1 = time.perf_counter()
        with torch.no_grad():
            out, (h_n, c_n) = module(xin)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        out, h_n, c_n = (t.cpu().numpy() for t in (out, h_n, c_n))

        obs = Observation(
            construct=(f"torch.nn.LSTM({cfg.input_size}, {cfg.hidden_size}, num_layers={cfg.num_layers}, "
                       f"bias={cfg.bias}, batch_first={cfg.layout == 'batch_major'}, "
                       f"bidirectional={cfg.bidirectional}, proj_size={cfg.proj_size})"),
            returns=[returned("[0]", "output", out), returned("[1][0]", "h", h_n), returned("[1][1]", "c", c_n)],
            params=[{"name": n, "shape": list(p.shape)} for n, p in module.named_parameters()],
            param_count=sum(p.numel() for p in module.parameters()),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
        notes = obs.normalization
        L, D, Hp, H = cfg.num_layers, cfg.directions, hidden_out(cfg), cfg.hidden_size
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
        if cfg.return_state:
            obs.states = [(h[l, d], c[l, d]) for l in range(L) for d in range(D)]
            notes.append("states: h_n.view(L, D, B, H')[l, d], c_n.view(L, D, B, H)[l, d]")
        else:
            notes.append("no return_state switch: h_n and c_n are always returned; dropped canonically")
        return obs
