"""The configuration space ``conformance explore`` draws from: one row per case field, saying how
often the field leaves its default and what it takes when it does.

Configuration ``index`` of seed ``seed`` depends on nothing else (its own ``random.Random`` seeded
with both), so a run is deterministic for a seed, a resumed run skips what it did, and shards split
the indices among themselves without talking to each other. The draws favour small sizes and edge
values: sizes of 1 and 0 where the language allows them, batch equal to timesteps, hidden size 1,
lengths with ties and zeros, every dtype, activation, initial state, layout and call pattern.

A draw is a mapping of field to value as a case file would write it (lists, numbers, strings), so
that it is checked by the same code (``spec.config_of``) and written back as a case as it is. A
draw the language refuses (a combination :func:`fields.cross_check` rejects) is repaired by
leaving out the field the error names, which keeps every configuration valid and deterministic.

Every field of the language is drawn but ``native`` (framework-only keywords, which no generator
can invent meaningfully). :data:`DRAWS` is checked against ``CONFIG_FIELDS``: a new field must be
added here too, or to :data:`NOT_DRAWN` with the reason.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from .. import spec
from ..fields import ACTIVATIONS, CONFIG_FIELDS, DTYPES, INITIAL_STATES

NOT_DRAWN = {"native": "framework-only constructor keywords: nothing to draw without a framework's own list"}

Draw = Callable[[random.Random, dict], Any]


def pick(*values, weights=None) -> Draw:
    return lambda rng, v: rng.choices(values, weights=weights)[0]


def _hidden(rng: random.Random, v: dict):
    size = pick(1, 1, 2, 3, 4, 5, 8, 0, weights=(3, 1, 3, 3, 3, 2, 1, 1))
    if rng.random() < 0.12:                 # a size per layer
        return [size(rng, v) or 1 for _ in range(rng.choice((2, 3)))]
    return size(rng, v)


def _num_layers(rng: random.Random, v: dict):
    return rng.choices((2, 3, 0), weights=(6, 2, 1))[0]


def _single_size(v: dict) -> int:
    h = v.get("hidden_size")
    return h if isinstance(h, int) else 0


def _batch(rng: random.Random, v: dict):
    return rng.choices((1, 3, 4, 0, 5), weights=(4, 3, 2, 1, 1))[0]


def _timesteps(rng: random.Random, v: dict):
    if rng.random() < 0.3:                  # B = T: a swapped axis does not show in the shape
        return v.get("batch", 2)
    return rng.choices((1, 2, 4, 5, 0), weights=(4, 3, 2, 2, 1))[0]


def _batch_size(v: dict) -> int:
    return 1 if v.get("layout") == "unbatched" else v.get("batch", 2)


def _lengths(rng: random.Random, v: dict):
    T, B = v.get("timesteps", 3), _batch_size(v)
    tie = rng.randint(0, T)
    return [tie if rng.random() < 0.4 else rng.randint(0, T) for _ in range(B)]


def _mask(rng: random.Random, v: dict):
    T, B = v.get("timesteps", 3), _batch_size(v)
    return [[rng.choice((0, 1, 1)) for _ in range(T)] for _ in range(B)]


def _batch_shape(rng: random.Random, v: dict):
    b = v.get("batch", 2)
    splits = [[a, b // a] for a in range(2, b) if b % a == 0]
    return rng.choice(splits) if splits else None


def _proj(rng: random.Random, v: dict):
    h = _single_size(v)
    return rng.randint(1, h - 1) if h > 1 else None


def _resets(rng: random.Random, v: dict):
    calls = v.get("calls", 1)
    return sorted(rng.sample(range(2, calls + 1), rng.randint(1, calls - 1))) if calls > 1 else None


def _feed(extra: Callable[[dict], int]) -> Draw:
    return lambda rng, v: extra(v) + rng.choice((1, 2)) if rng.random() < 0.7 else max(0, extra(v) - 1)


def _constant_or(*names) -> Draw:
    return lambda rng, v: rng.choice((*names, 0.0, 0.5, -1.0, 1.0))


def _initial_state(rng: random.Random, v: dict):
    return rng.choice((*[s for s in INITIAL_STATES if s != "none"], 0.5, -2.0))


# field -> (probability of leaving the default, draw); in dependency order (a draw reads earlier ones).
DRAWS: dict[str, tuple[float, Draw]] = {
    "input_size": (1.0, pick(1, 2, 3, 4, 5, 7, 0, weights=(3, 3, 3, 3, 2, 1, 1))),
    "hidden_size": (1.0, _hidden),
    "num_layers": (0.25, _num_layers),
    "bidirectional": (0.3, pick(True)),
    "merge_mode": (0.4, pick("sum", "mul", "ave", "none")),
    "proj_size": (0.08, _proj),
    "bias": (0.15, pick(False)),
    "return_sequences": (0.5, pick(True)),
    "return_state": (0.5, pick(True)),
    "layout": (0.3, pick("time_major", "unbatched")),
    "batch": (0.6, _batch),
    "batch_shape": (0.06, _batch_shape),
    "timesteps": (0.6, _timesteps),
    "dtype": (0.35, pick(*[d for d in DTYPES if d != "float32"])),
    "seed": (0.3, lambda rng, v: rng.randint(1, 999)),
    "lengths": (0.22, _lengths),
    "mask": (0.08, _mask),
    "zero_output_for_mask": (0.3, pick(True)),
    "initial_state": (0.3, _initial_state),
    "go_backwards": (0.2, pick(True)),
    "activation": (0.1, pick(*[a for a in ACTIVATIONS if a != "tanh"])),
    "recurrent_activation": (0.1, pick(*[a for a in ACTIVATIONS if a != "sigmoid"])),
    "input": (0.1, _constant_or("arange")),
    "kernel_init": (0.04, _constant_or()),
    "recurrent_init": (0.04, _constant_or()),
    "bias_init": (0.04, _constant_or()),
    "feed_input_size": (0.03, _feed(lambda v: v["input_size"])),
    "feed_state_batch": (0.05, _feed(_batch_size)),
    "feed_state_hidden": (0.05, _feed(lambda v: _single_size(v))),
    "feed_state_layers": (0.04, _feed(lambda v: v.get("num_layers", 1) * (2 if v.get("bidirectional") else 1))),
    "feed_state_only": (0.4, pick("h", "c")),
    "unit_forget_bias": (0.1, pick(True)),
    "dropout": (0.05, pick(0.5, 1.0)),
    "recurrent_dropout": (0.05, pick(0.5)),
    "layer_dropout": (0.04, pick(0.5)),
    "training": (0.1, pick(True)),
    "cell_api": (0.15, pick(True)),
    "stacked_cells": (0.3, pick(True)),
    "calls": (0.1, pick(2, 3)),
    "resets": (0.35, _resets),
}
assert set(DRAWS) | set(NOT_DRAWN) == set(CONFIG_FIELDS), set(CONFIG_FIELDS) ^ (set(DRAWS) | set(NOT_DRAWN))

# Fields whose draw only makes sense with another field set (drawn only then).
NEEDS: dict[str, Callable[[dict], bool]] = {
    "merge_mode": lambda v: v.get("bidirectional", False),
    "proj_size": lambda v: _single_size(v) > 1,
    "batch_shape": lambda v: v.get("layout") is None and v.get("batch", 2) in (4, 6, 8),
    "lengths": lambda v: v.get("layout") != "unbatched",
    "mask": lambda v: v.get("layout") != "unbatched" and "lengths" not in v,
    "zero_output_for_mask": lambda v: "lengths" in v or "mask" in v,
    "feed_state_batch": lambda v: "initial_state" in v and v.get("layout") != "unbatched" and "batch_shape" not in v,
    "feed_state_hidden": lambda v: "initial_state" in v,
    "feed_state_layers": lambda v: "initial_state" in v,
    "feed_state_only": lambda v: any(k in v for k in ("feed_state_batch", "feed_state_hidden", "feed_state_layers")),
    "unit_forget_bias": lambda v: v.get("bias", True),
    "stacked_cells": lambda v: v.get("cell_api") and not v.get("bidirectional"),
    "resets": lambda v: v.get("calls", 1) > 1,
}

MAX_REPAIRS = 12


def draw(seed: int, index: int) -> dict:
    """Configuration ``index`` of seed ``seed``: the fields that leave their defaults, as YAML writes
    them, always valid (``spec.config_of`` accepts it)."""
    rng = random.Random(f"lstm-conformance explore {seed} {index}")
    values: dict = {}
    for name, (p, fn) in DRAWS.items():
        if name in NEEDS and not NEEDS[name](values):
            continue
        if p >= 1.0 or rng.random() < p:
            value = fn(rng, values)
            if value is not None:
                values[name] = value
    if values.get("layout") == "unbatched":
        values.pop("batch", None)
    return repair(values)


def repair(values: dict) -> dict:
    """``values`` with what the language refuses left out, one named field at a time (the field an
    error names; the required sizes are never left out: they are made 1 instead)."""
    values = dict(values)
    for _ in range(MAX_REPAIRS):
        try:
            spec.config_of(values)
            return values
        except spec.SpecError as exc:
            field = exc.field if exc.field in values else None
            if field in ("input_size", "hidden_size"):
                values[field] = 1
            elif field is not None:
                values.pop(field)
            else:           # a cost limit or a field not given: start again from the smallest configuration
                return {"input_size": values.get("input_size", 1) or 1, "hidden_size": 1}
    return {"input_size": 1, "hidden_size": 1}


def _amount(x) -> float:
    if isinstance(x, list):
        return sum(_amount(y) for y in x)
    return 0.0 if isinstance(x, (bool, str)) or x is None else abs(float(x))


def size_of(values: dict) -> tuple[int, float]:
    """How far from minimal a configuration is: (fields off their default, the sum of its numbers)."""
    return len(values), sum(_amount(v) for v in values.values())
