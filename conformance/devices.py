"""Which devices exist on this machine, found without importing any framework.

Collection must stay cheap, so GPU presence is read from the NVIDIA driver's files; whether a
given framework build can *use* the GPU is asked of that framework's worker at run time (a CPU
build of torch on a GPU machine reports only 'cpu', and its GPU items skip with that reason).
"""

from __future__ import annotations

import glob
import os

DEVICES = ("cpu", "gpu")


def machine_has_gpu() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return bool(glob.glob("/proc/driver/nvidia/gpus/*") or glob.glob("/dev/nvidia[0-9]*"))


def default_devices() -> list[str]:
    return ["cpu", "gpu"] if machine_has_gpu() else ["cpu"]
