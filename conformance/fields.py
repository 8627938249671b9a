"""The configuration fields: one table says every field, its type, default, allowed values and
which implementations read it; :class:`Config` is a validated configuration with every field set.

A new field is a row in :data:`CONFIG_FIELDS` and a field of :class:`Config` (the two are checked
to match). An implementation that does not read a field runs only where the field is at its
default (``impls.base.Impl.unsupported`` says so for every other value)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, kind_of, short
from .limits import MAX_LAYERS, MAX_SEED, MAX_SIZE, MAX_TIMESTEPS


@dataclass(frozen=True)
class FieldSpec:
    type: type
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: int | None = None
    required: bool = False
    maximum: int | None = None     # a sane upper bound: larger values are typos, not experiments

    def describe_allowed(self) -> str:
        if self.type is tuple:
            return "a list of integers >= 1, or null"
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true | false"
        if self.minimum is not None and self.maximum is not None:
            return f"integer from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"integer >= {self.minimum}"
        return self.type.__name__


LAYOUTS = ("batch_major", "time_major", "unbatched")
MERGE_MODES = ("concat", "sum", "mul", "ave")
DTYPES = ("float32", "float64", "float16", "bfloat16")
INITIAL_STATES = ("none", "zeros", "random")


CONFIG_FIELDS: dict[str, FieldSpec] = {
    "input_size": FieldSpec(int, None, "features per time step", minimum=1, required=True, maximum=MAX_SIZE),
    "hidden_size": FieldSpec(int, None, "hidden units H (Keras `units`, Flax `features`)", minimum=1,
                             required=True, maximum=MAX_SIZE),
    "num_layers": FieldSpec(int, 1, "stacked layers", minimum=1, maximum=MAX_LAYERS),
    "bidirectional": FieldSpec(bool, False, "run a backward direction too"),
    "merge_mode": FieldSpec(str, "concat", "how the two directions' outputs are combined "
                            "(needs bidirectional)", choices=MERGE_MODES),
    "proj_size": FieldSpec(int, 0, "LSTM projection size P (torch `proj_size`); 0 = none; "
                           "must be < hidden_size", minimum=0, maximum=MAX_SIZE),
    "bias": FieldSpec(bool, True, "use bias vectors"),
    "return_sequences": FieldSpec(bool, False, "output every time step (else the final hidden state)"),
    "return_state": FieldSpec(bool, False, "return the final (h, c) of every layer and direction"),
    "batch": FieldSpec(int, 2, "batch size B (must be 1 for layout unbatched)", minimum=1, maximum=MAX_SIZE),
    "timesteps": FieldSpec(int, 3, "sequence length T", minimum=1, maximum=MAX_TIMESTEPS),
    "layout": FieldSpec(str, "batch_major", "native input layout: (B,T,F), (T,B,F) or (T,F)",
                        choices=LAYOUTS),
    "dtype": FieldSpec(str, "float32", "parameter and input dtype", choices=DTYPES),
    "seed": FieldSpec(int, 0, "seed of the generated input, canonical weights and initial states", minimum=0,
                      maximum=MAX_SEED),
    "lengths": FieldSpec(tuple, None, "valid time steps per sequence (right padding), one per batch element; "
                         "null = every sequence is timesteps long", maximum=MAX_TIMESTEPS),
    "initial_state": FieldSpec(str, "none", "initial (h, c): none (not given: the framework's default, zeros), "
                               "zeros or random (given in each framework's native form)", choices=INITIAL_STATES),
    "go_backwards": FieldSpec(bool, False, "read the sequence in reverse (not with bidirectional); canonical "
                              "outputs stay in time order"),
}

CHECKS = ("output_shape", "state_shapes", "state_order", "param_count", "values", "padding", "claims")
ROLES = ("output", "h", "c")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Config:
    """A validated, framework-neutral LSTM configuration (every field set)."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    proj_size: int = 0
    bias: bool = True
    return_sequences: bool = False
    return_state: bool = False
    batch: int = 2
    timesteps: int = 3
    layout: str = "batch_major"
    dtype: str = "float32"
    seed: int = 0
    lengths: tuple[int, ...] | None = None
    initial_state: str = "none"
    go_backwards: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


assert [f.name for f in dataclasses.fields(Config)] == list(CONFIG_FIELDS)


def check_value(name: str, value: Any, **loc) -> Any:
    spec = CONFIG_FIELDS[name]
    if spec.type is tuple:
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            raise SpecError(f"expected {spec.describe_allowed()}, got {short(value)}", field=name, **loc)
        if spec.maximum is not None and max(value) > spec.maximum:
            raise SpecError(f"{short(max(value))} is too large; at most {spec.maximum}", field=name, **loc)
        return tuple(value)
    # bool is an int in Python; YAML `true` must not pass as a size, nor `1` as a flag.
    if spec.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SpecError(f"expected an integer, got {short(value)} ({kind_of(value)})", field=name, **loc)
    if spec.type is bool and not isinstance(value, bool):
        raise SpecError(f"expected true or false, got {short(value)} ({kind_of(value)})", field=name, **loc)
    if spec.type is str and not isinstance(value, str):
        raise SpecError(f"expected one of {spec.describe_allowed()}, got {short(value)} ({kind_of(value)})",
                        field=name, **loc)
    if spec.choices and value not in spec.choices:
        raise SpecError(f"{short(value)} is not allowed; allowed: {spec.describe_allowed()}", field=name, **loc)
    if spec.minimum is not None and value < spec.minimum:
        raise SpecError(f"{short(value)} is impossible; must be >= {spec.minimum}", field=name, **loc)
    if spec.maximum is not None and value > spec.maximum:
        raise SpecError(f"{short(value)} is too large; at most {spec.maximum}", field=name, **loc)
    return value


def cross_check(values: dict, line_of, **loc) -> None:
    """Constraints between fields: impossible combinations are errors, not surprises later."""
    if values["proj_size"] and values["proj_size"] >= values["hidden_size"]:
        raise SpecError(f"proj_size ({values['proj_size']}) must be smaller than hidden_size "
                        f"({values['hidden_size']})", field="proj_size", line=line_of("proj_size"), **loc)
    if values["merge_mode"] != "concat" and not values["bidirectional"]:
        raise SpecError("merge_mode only applies when bidirectional is true", field="merge_mode",
                        line=line_of("merge_mode"), **loc)
    if values["lengths"] is not None:
        lengths = values["lengths"]
        if values["layout"] == "unbatched":
            raise SpecError("lengths need a batch axis; layout unbatched has none", field="lengths",
                            line=line_of("lengths"), **loc)
        if len(lengths) != values["batch"]:
            raise SpecError(f"lengths has {len(lengths)} entries but batch is {values['batch']} (one length per "
                            "sequence)", field="lengths", line=line_of("lengths"), **loc)
        if max(lengths) > values["timesteps"]:
            raise SpecError(f"a length ({max(lengths)}) is longer than timesteps ({values['timesteps']})",
                            field="lengths", line=line_of("lengths"), **loc)
    if values["go_backwards"] and values["bidirectional"]:
        raise SpecError("go_backwards is for one direction; bidirectional already has a backward direction",
                        field="go_backwards", line=line_of("go_backwards"), **loc)
    if values["layout"] == "unbatched" and values["batch"] != 1:
        raise SpecError(f"layout unbatched has no batch axis, so batch must be 1 (got {values['batch']})",
                        field="batch", line=line_of("batch"), **loc)


