"""Registry of implementations: id -> adapter class, imported only when asked for.

Like einops' backends: one class per framework family, and nothing framework-specific is
imported until an adapter's worker half runs. Adding an implementation is one line here and one
module beside this file.
"""

from __future__ import annotations

import importlib

from .base import Impl, Observation

# impl id -> (module, class name, constructor kwargs)
_REGISTRY: dict[str, tuple[str, str, dict]] = {
    "torch": ("conformance.impls.torch_lstm", "TorchLSTM", {}),
    "keras-tensorflow": ("conformance.impls.keras3", "Keras3", {"backend": "tensorflow"}),
    "keras-jax": ("conformance.impls.keras3", "Keras3", {"backend": "jax"}),
    "keras-torch": ("conformance.impls.keras3", "Keras3", {"backend": "torch"}),
    "tf-keras": ("conformance.impls.tf_keras", "TfKeras2", {}),
    "flax-linen": ("conformance.impls.flax_linen", "FlaxLinen", {}),
    "flax-linen-optimized": ("conformance.impls.flax_linen", "FlaxLinen", {"cell": "optimized"}),
    "flax-nnx": ("conformance.impls.flax_nnx", "FlaxNnx", {}),
    "flax-nnx-optimized": ("conformance.impls.flax_nnx", "FlaxNnx", {"cell": "optimized"}),
    "onnx-reference": ("conformance.impls.onnx_lstm", "OnnxLSTM", {"runtime": "onnx-reference"}),
    "onnxruntime": ("conformance.impls.onnx_lstm", "OnnxLSTM", {"runtime": "onnxruntime"}),
    # exporters, each case's model exported to ONNX and run by ONNX Runtime
    "onnx-export-torch": ("conformance.impls.torch_onnx_export", "TorchOnnxExport", {"exporter_id": "onnx-export-torch"}),
    "onnx-export-torchscript": ("conformance.impls.torch_onnx_export", "TorchOnnxExport",
                                {"exporter_id": "onnx-export-torchscript"}),
    "onnx-export-keras-tensorflow": ("conformance.impls.keras_onnx_export", "KerasOnnxExport",
                                     {"impl_id": "onnx-export-keras-tensorflow"}),
    "onnx-export-keras-torch": ("conformance.impls.keras_onnx_export", "KerasOnnxExport",
                                {"impl_id": "onnx-export-keras-torch"}),
}

_cache: dict[str, Impl] = {}


def ids() -> list[str]:
    return list(_REGISTRY)


def get(impl_id: str) -> Impl:
    if impl_id not in _REGISTRY:
        raise KeyError(f"unknown implementation {impl_id!r}; known: {', '.join(_REGISTRY)}")
    if impl_id not in _cache:
        module, cls, kwargs = _REGISTRY[impl_id]
        _cache[impl_id] = getattr(importlib.import_module(module), cls)(**kwargs)
    return _cache[impl_id]


__all__ = ["Impl", "Observation", "get", "ids"]


def select(patterns: list[str]) -> list[str]:
    """The implementation ids ``patterns`` (ids or globs) name, in the order given, each once; none: every
    one. Raises ``ValueError`` naming a pattern that matches nothing."""
    import fnmatch

    if not patterns:
        return ids()
    chosen: list[str] = []
    for p in patterns:
        hits = [i for i in ids() if fnmatch.fnmatchcase(i, p)]
        if not hits:
            raise ValueError(f"--impl {p!r} matches no implementation; known: {', '.join(ids())}")
        chosen += [h for h in hits if h not in chosen]
    return chosen
