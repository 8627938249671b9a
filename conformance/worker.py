"""The worker process: one per implementation, imports its framework once and runs cases.

Started by :mod:`conformance.runner` as ``python -m conformance.worker IMPL FD``; talks over the
inherited socket FD with pickled messages (never stdout, which frameworks write to freely).

``CONFORMANCE_FAULT`` is a fault-injection hook for the suite's own tests: ``crash:PATTERN``
kills the worker (``os.abort``), ``hang:PATTERN`` makes it sleep, and ``kill-runner:PATTERN``
kills the process that runs the test items (pytest, or its xdist worker) with SIGKILL, when it
receives a case whose id matches the fnmatch PATTERN; ``swap-gates:PATTERN`` hands the adapter
weights with two gates swapped (a wrong mapping). It exists so that crash handling, interrupted
sessions and the values check are tested on real processes.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import socket
import sys
import time
import traceback
from multiprocessing.connection import Connection

import numpy as np


def _inject_fault(case_id: str) -> None:
    spec = os.environ.get("CONFORMANCE_FAULT", "")
    kind, _, pattern = spec.partition(":")
    if not spec or not fnmatch.fnmatchcase(case_id, pattern or "*"):
        return
    if kind == "crash":
        os.abort()
    if kind == "hang":
        time.sleep(3600)
    if kind == "kill-runner":
        if os.getppid() > 1:            # never an adopting init: only the runner that started this worker
            os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)


def _mapping_fault(case_id: str, weights: dict) -> dict:
    """``CONFORMANCE_FAULT=swap-gates:PATTERN``: hand the adapter weights with the i and f gate blocks
    swapped, as a wrong mapping would, while the reference keeps the true ones (the values check must fail)."""
    kind, _, pattern = os.environ.get("CONFORMANCE_FAULT", "").partition(":")
    if kind != "swap-gates" or not fnmatch.fnmatchcase(case_id, pattern or "*"):
        return weights
    out = {}
    for name, w in weights.items():
        if name.rsplit("/", 1)[1] in ("W", "U", "b"):
            H = w.shape[-1] // 4
            w = w.copy()
            w[..., :H], w[..., H:2 * H] = weights[name][..., H:2 * H], weights[name][..., :H]
        out[name] = w
    return out


def _roundtrip(impl, cfg, device: str) -> dict:
    """Canonical weights -> native (``load_weights``) -> canonical (``read_weights``): the largest
    absolute difference per tensor, and the names that went missing or appeared."""
    from .reference import canonical_weights

    try:
        weights = canonical_weights(cfg)
        back = impl.read_weights(cfg, impl.load_weights(cfg, device, weights))
        return {"max_abs": {n: float(np.max(np.abs(np.asarray(back[n], np.float64) - w)))
                            for n, w in weights.items() if n in back},
                "missing": sorted(set(weights) - set(back)), "extra": sorted(set(back) - set(weights))}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def serve(impl_id: str, conn: Connection) -> None:
    from . import impls
    from .impls.base import Observation
    from .reference import canonical_weights, initial_states, make_input
    from .spec import Config

    try:
        impl = impls.get(impl_id)
        t0 = time.perf_counter()
        # str(): torch.__version__ is a TorchVersion, and unpickling it would import torch in the parent
        versions = {str(k): str(v) for k, v in impl.setup().items()}
        devices = impl.devices()
        names = {d: impl.device_name(d) for d in devices}
        conn.send({"ready": True, "versions": versions, "devices": devices, "device_names": names,
                   "setup_s": time.perf_counter() - t0, "pid": os.getpid()})
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        conn.send({"ready": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        return

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg.get("op") == "exit":
            return
        cfg = Config(**msg["config"])
        _inject_fault(msg.get("case", ""))
        if msg.get("op") == "roundtrip":
            conn.send(_roundtrip(impl, cfg, msg["device"]))
            continue
        t0 = time.perf_counter()
        try:
            weights = _mapping_fault(msg.get("case", ""), canonical_weights(cfg))
            obs = impl.run(cfg, msg["device"], make_input(cfg), weights, initial_states(cfg))
        except Exception as exc:  # noqa: BLE001 - a framework error is a verdict, not a crash
            obs = Observation(status="error", reason=f"{type(exc).__name__}: {exc}",
                              traceback=traceback.format_exc())
        obs.timings["total_s"] = time.perf_counter() - t0
        conn.send(obs)


def main() -> None:
    impl_id, fd = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(fileno=fd)
    conn = Connection(sock.detach())
    try:
        serve(impl_id, conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
