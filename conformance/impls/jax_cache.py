"""JAX's persistent compilation cache, for the implementations that run on JAX (flax-*, keras-jax).

Flax and Keras on JAX compile every new input shape with XLA: on a 2-core CPU that is most of a
flax run's cost (README, "Benchmarks"), and a case set is many shapes. An XLA executable depends
only on the program, the jax/jaxlib versions, the flags and the device, all of which are in JAX's
cache key, so a second run loads it from disk instead of compiling it again: JAX's own persistent
cache (https://docs.jax.dev/en/latest/persistent_compilation_cache.html). Tracing and lowering
still happen on every new shape; the values are those of the same executable.

Where: ``$CONFORMANCE_JAX_CACHE``, else ``$XDG_CACHE_HOME/lstm-conformance/jax`` (``~/.cache/...``);
``CONFORMANCE_JAX_CACHE=off`` turns it off. A ``JAX_COMPILATION_CACHE_DIR`` the user set wins.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path | None:
    """Where the compiled programs go, or None when the cache is off."""
    chosen = os.environ.get("CONFORMANCE_JAX_CACHE", "")
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lstm-conformance" / "jax"


def enable(jax) -> str:
    """Point ``jax`` at the cache (before anything is compiled) and cache every program, however
    quick to compile or small: the cases are small LSTMs. Returns the directory in use, or "off"."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    where = cache_dir()
    if where is None:
        return "off"
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return str(where)
