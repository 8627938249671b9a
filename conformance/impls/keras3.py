"""Keras 3: a stack of ``keras.layers.LSTM`` layers, each wrapped in ``keras.layers.Bidirectional``
when the case is bidirectional, called eagerly one on the output of the previous one.

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

The backend is fixed when Keras is imported, from ``KERAS_BACKEND`` (set in ``env`` before the
worker imports anything), so one adapter instance serves exactly one backend.
"""

from __future__ import annotations

import importlib
import time

import numpy as np

from ..reference import direction_names, layer_input_size, to_native_layout
from ..spec import Config
from .base import Impl, Observation, returned

# Environment per backend: select it, keep its logging quiet, and keep it from grabbing all GPU memory
# (several frameworks' workers may share one GPU).
_BACKEND_ENV = {
    "tensorflow": {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true"},
    "jax": {"TF_CPP_MIN_LOG_LEVEL": "3", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
    "torch": {"TF_CPP_MIN_LOG_LEVEL": "3"},
}


class Keras3(Impl):
    param_formula = "keras"

    def __init__(self, backend: str = "tensorflow"):
        if backend not in _BACKEND_ENV:
            raise ValueError(f"unknown Keras backend {backend!r}; known: {', '.join(_BACKEND_ENV)}")
        self.backend = backend
        self.id = f"keras-{backend}"
        self.requires = ("keras", backend)
        self.install_hint = ("pip install 'lstm-conformance[keras]'" if backend == "tensorflow"
                             else f"pip install keras {backend}")
        self.env = {"KERAS_BACKEND": backend, **_BACKEND_ENV[backend]}

    # ---- static half: no framework imports ----
    def unsupported(self, cfg: Config) -> str | None:
        if cfg.proj_size:
            return (f"keras.layers.LSTM has no projection (torch's proj_size); proj_size={cfg.proj_size} "
                    "has no native equivalent")
        if cfg.layout == "time_major":
            return ("Keras 3 LSTM has no time_major argument (tf-keras 2 had one; Keras 3 rejects it as an "
                    "unrecognized keyword argument): input is always (B, T, F)")
        if cfg.layout == "unbatched":
            return ("Keras RNN layers require 3-D input (InputSpec(ndim=3)); unbatched (T, F) input is "
                    "rejected with 'expected ndim=3, found ndim=2'")
        return None

    def repro(self, cfg: Config) -> str:
        reason = self.unsupported(cfg)
        if reason:
            raise ValueError(reason)
        L = cfg.num_layers

        def layer(return_sequences: bool) -> str:
            lstm = (f"keras.layers.LSTM({cfg.hidden_size}, return_sequences={return_sequences}, "
                    f"return_state={cfg.return_state}, use_bias={cfg.bias}, dtype=\"{cfg.dtype}\")")
            return (f"keras.layers.Bidirectional({lstm}, merge_mode=\"{cfg.merge_mode}\")" if cfg.bidirectional
                    else lstm)

        if L == 1:
            build = f"layer = {layer(cfg.return_sequences)}\nout = layer(x)\n"
            count = "layer.count_params()"
        else:
            items = [layer(True)] * (L - 1) + [layer(cfg.return_sequences)]
            step = ("    out = layer(h)\n    h = out[0]  # return_state: [output, *states]\n" if cfg.return_state
                    else "    h = out = layer(h)\n")
            build = ("layers = [\n" + "".join(f"    {i},\n" for i in items) + "]\n"
                     "h = x\nfor layer in layers:  # each layer called on the previous one's output\n" + step)
            count = "sum(layer.count_params() for layer in layers)"
        # return_state: [output, h, c], or [output, h_fw, c_fw, h_bw, c_bw]; else the output tensor alone
        paths = [f"[{i}]" for i in range(1 + 2 * cfg.directions)] if cfg.return_state else [""]
        B, T, F = cfg.batch, cfg.timesteps, cfg.input_size
        return (
            "import os\n"
            f"os.environ[\"KERAS_BACKEND\"] = \"{self.backend}\"\n"
            "import keras\n"
            "import numpy as np\n"
            "\n"
            f"keras.utils.set_random_seed({cfg.seed})\n"
            f"x = np.random.default_rng({cfg.seed}).standard_normal(({B}, {T}, {F})).astype(\"{cfg.dtype}\")\n"
            f"x = keras.ops.convert_to_tensor(x, dtype=\"{cfg.dtype}\")\n"
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
        self._backend_mod = importlib.import_module(self.backend)
        if self.backend == "tensorflow":
            tf = self._backend_mod
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        elif self.backend == "torch":
            self._backend_mod.set_num_threads(1)
        return {"keras": keras.__version__, "backend": keras.backend.backend(),
                self.backend: self._backend_mod.__version__}

    def _gpus(self) -> list:
        mod = self._backend_mod
        if self.backend == "tensorflow":
            return mod.config.list_physical_devices("GPU")
        if self.backend == "jax":
            return [d for d in mod.devices() if d.platform == "gpu"]
        return [0] if mod.cuda.is_available() else []

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
        return mod.cuda.get_device_name(0)

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict, init) -> Observation:
        keras = self._keras
        L, dirs = cfg.num_layers, direction_names(cfg)
        keras.backend.clear_session()          # free the previous run's layers and reset layer names
        t0 = time.perf_counter()
        keras.utils.set_random_seed(cfg.seed)
        with keras.device("gpu:0" if device == "gpu" else "cpu:0"):
            layers = []
            for l in range(L):
                lstm = keras.layers.LSTM(cfg.hidden_size,
                                         return_sequences=cfg.return_sequences if l == L - 1 else True,
                                         return_state=cfg.return_state, use_bias=cfg.bias, dtype=cfg.dtype)
                layer = keras.layers.Bidirectional(lstm, merge_mode=cfg.merge_mode) if cfg.bidirectional else lstm
                layer.build((cfg.batch, cfg.timesteps, layer_input_size(cfg, l)))   # else built on first call
                layers.append(layer)
            xin = keras.ops.convert_to_tensor(to_native_layout(cfg, x), dtype=cfg.dtype)
            t1 = time.perf_counter()
            native, h = [], xin
            for layer in layers:
                r = layer(h)
                native.append(r)
                h = r[0] if isinstance(r, (tuple, list)) else r
            native = [[keras.ops.convert_to_numpy(t) for t in r] if isinstance(r, (tuple, list))
                      else keras.ops.convert_to_numpy(r) for r in native]   # waits for the device
        t2 = time.perf_counter()

        def construct(return_sequences: bool) -> str:
            c = (f"keras.layers.LSTM({cfg.hidden_size}, return_sequences={return_sequences}, "
                 f"return_state={cfg.return_state}, use_bias={cfg.bias}, dtype={cfg.dtype!r})")
            return f"keras.layers.Bidirectional({c}, merge_mode={cfg.merge_mode!r})" if cfg.bidirectional else c

        obs = Observation(
            construct=(construct(cfg.return_sequences) if L == 1 else
                       f"{construct(True)}{f' x {L - 1}' if L > 2 else ''} then {construct(cfg.return_sequences)}, "
                       "each called on the previous one's output"),
            params=[{"name": w.path, "shape": [int(d) for d in w.shape]} for layer in layers for w in layer.weights],
            param_count=int(sum(layer.count_params() for layer in layers)),
            timings={"build_s": t1 - t0, "run_s": t2 - t1},
        )
        notes = obs.normalization
        roles = ["h", "c"] * len(dirs)
        directions = [d for d in dirs for _ in range(2)]
        states, lower = [], []
        for l, r in enumerate(native):
            top = l == L - 1
            into = obs.returns if top else lower
            if isinstance(r, list):
                if top:
                    into.append(returned("[0]", "output", r[0], layer=l))
                for i, (role, d) in enumerate(zip(roles, directions), start=1):
                    path = f"[{i}]" if top else f"layers[{l}][{i}]"
                    into.append(returned(path, role, r[i], top=top, layer=l, direction=d))
                states += [(r[1 + 2 * k], r[2 + 2 * k]) for k in range(len(dirs))]
            elif top:
                into.append(returned("", "output", r, layer=l))
        obs.returns += lower          # the top layer's return first, in native order, then lower layers' states

        top = native[-1]
        obs.output = top[0] if isinstance(top, list) else top
        notes.append("input and output are batch-first natively: no layout change")
        if L > 1:
            notes.append(f"{L} layers stacked by calling each on the previous one's output; lower layers use "
                         "return_sequences=True, the top layer the case's return_sequences")
        if cfg.return_sequences:
            notes.append("output = the top layer's output sequence (B, T, F')"
                         + (f" with directions merged by merge_mode={cfg.merge_mode!r}; the backward "
                            "direction is already in original time order" if cfg.bidirectional else ""))
        else:
            notes.append("output = the top layer's output (B, F'), which Keras already makes the final hidden "
                         "state" + (f" of each direction merged by merge_mode={cfg.merge_mode!r} (backward: the "
                                    "state after reading time step 0)" if cfg.bidirectional else ""))
        if str(obs.output.dtype) != cfg.dtype:
            notes.append(f"output dtype is {obs.output.dtype}, not the case's {cfg.dtype}: left as returned "
                         f"(the top layer's dtype policy is {layers[-1].dtype_policy.name!r})")
        if cfg.return_state:
            obs.states = states
            if cfg.bidirectional:
                notes.append("Bidirectional return_state order [output, h_fw, c_fw, h_bw, c_bw] -> states (h, c) "
                             "per direction (forward, backward)")
            else:
                notes.append("LSTM return_state order [output, h, c] -> states (h, c)")
            if L > 1:
                notes.append("every layer is built with return_state=True so lower layers' states are collected "
                             "from their returns (layers[l][1:]); states ordered by layer, then direction")
        return obs
