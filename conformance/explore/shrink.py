"""Shrinking: from a configuration that shows a difference to a minimal one that still shows it.

Delta debugging over fields, greedy: try each simpler neighbour of the current configuration (a
field back to its default; a size made 0, 1, half or one less; a list shorter; a per-layer size
list one layer shorter), keep the first that still shows the signature, and start again from it,
until no neighbour does or the budget is spent. Simpler means fewer fields off their default
first, then smaller sizes (:func:`space.size_of`). A neighbour the language refuses is repaired
(:func:`space.repair`) or skipped, so every configuration tried is a valid case.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from . import space

SIZES = ("input_size", "hidden_size", "num_layers", "batch", "timesteps", "proj_size", "calls", "seed",
         "feed_input_size", "feed_state_batch", "feed_state_hidden", "feed_state_layers")


# Sizes shrink toward 1, not 0: a size of 0 is an edge of its own (no features, no units, an empty
# batch), another configuration rather than a smaller one. These may reach 0 (0 is their default).
TO_ZERO = ("seed", "proj_size")


def _smaller_ints(name: str, v: int) -> list[int]:
    low = 0 if name in TO_ZERO else 1
    return [x for x in dict.fromkeys((low, v // 2, v - 1)) if low <= x < v]


def _fit(values: dict) -> dict:
    """Lengths, mask and resets cut to the batch, time steps and calls a smaller neighbour has."""
    v = dict(values)
    B = 1 if v.get("layout") == "unbatched" else v.get("batch", 2)
    T = v.get("timesteps", 3)
    if "lengths" in v:
        v["lengths"] = [min(n, T) for n in v["lengths"][:B]] or None
    if "mask" in v:
        v["mask"] = [row[:T] for row in v["mask"][:B]] or None
    if "resets" in v:
        v["resets"] = [k for k in v["resets"] if k <= v.get("calls", 1)] or None
    if isinstance(v.get("hidden_size"), list) and "num_layers" in v:
        v["hidden_size"] = v["hidden_size"][:v["num_layers"]] or 1
    return {k: x for k, x in v.items() if x is not None}


def neighbours(values: dict) -> Iterator[dict]:
    """Simpler configurations than ``values``, the simplest steps first (each valid, maybe repaired)."""
    seen = set()

    def emit(candidate: dict):
        fixed = space.repair(_fit(candidate))
        key = repr(sorted(fixed.items()))
        if fixed != values and key not in seen and space.size_of(fixed) < space.size_of(values):
            seen.add(key)
            return fixed
        return None

    for name in [k for k in values if k not in ("input_size", "hidden_size")]:      # a field back to its default
        if (c := emit({k: v for k, v in values.items() if k != name})) is not None:
            yield c
    for name in SIZES:                                                              # a size smaller
        v = values.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            for smaller in _smaller_ints(name, v):
                if (c := emit({**values, name: smaller})) is not None:
                    yield c
    hidden = values.get("hidden_size")
    if isinstance(hidden, list):                                                    # fewer layers, or one size
        for c in (emit({**values, "hidden_size": hidden[:-1] if len(hidden) > 2 else hidden[0]}),
                  emit({**values, "hidden_size": min(hidden)})):
            if c is not None:
                yield c
    for name in ("lengths", "resets"):                                              # fewer entries or smaller ones
        v = values.get(name)
        if isinstance(v, list):
            for c in (emit({**values, name: [min(x, 1) for x in v]}), emit({**values, name: v[:-1]})):
                if c is not None:
                    yield c


def shrink(values: dict, still_shows: Callable[[dict], bool], max_tries: int = 60,
           deadline: float | None = None) -> tuple[dict, int, bool]:
    """The smallest configuration reached from ``values`` that ``still_shows``; also how many
    configurations were tried and whether it finished (no simpler neighbour shows it) within the
    budget (``max_tries``, ``deadline`` as ``time.monotonic()``)."""
    tries = 0
    current = dict(values)
    progress = True
    while progress:
        progress = False
        for candidate in neighbours(current):
            if tries >= max_tries or (deadline is not None and time.monotonic() >= deadline):
                return current, tries, False
            tries += 1
            if still_shows(candidate):
                current, progress = candidate, True
                break
    return current, tries, True
