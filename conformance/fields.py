"""The configuration fields: one table says every field, its type, default, allowed values and
which implementations read it; :class:`Config` is a validated configuration with every field set.

A new field is a row in :data:`CONFIG_FIELDS` and a field of :class:`Config` (the two are checked
to match). An implementation that does not read a field runs only where the field is at its
default (``impls.base.Impl.unsupported`` says so for every other value)."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, kind_of, short
from .limits import MAX_CALLS, MAX_LAYERS, MAX_LIST_ITEMS, MAX_SEED, MAX_SIZE, MAX_TIMESTEPS


@dataclass(frozen=True)
class FieldSpec:
    type: type
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: int | None = None
    required: bool = False
    maximum: int | None = None     # a sane upper bound: larger values are typos, not experiments
    # Who reads the field: "adapters" (each adapter maps it to its framework's own option, or says it
    # cannot: ``Impl.unsupported``), or "reference" (it shapes the canonical input, weights or initial
    # states, which every adapter loads as they are: every implementation expresses it).
    readers: str = "adapters"
    nullable: bool = False         # null is allowed (and means: as the rest of the configuration says)
    axis: bool = True              # may be a matrix axis or a divergence's `when` condition
    per_layer: bool = False        # a list of values, one per stacked layer, is allowed too

    def describe_allowed(self) -> str:
        if self.type is dict:
            return "a mapping of implementation id (or glob) to a mapping of keyword to value"
        if self.type is float and not self.choices:
            return f"a number from {self.minimum:g} to {self.maximum:g}"
        if self.type is float:
            return " | ".join(str(c) for c in self.choices or ()) + f", or a number from -{MAX_CONSTANT:g} to {MAX_CONSTANT:g}"
        if self.type is tuple:
            return "a list of integers >= 0, or null"
        if self.type is list:
            return "null, or a list of rows (one per sequence) of 0/1 or true/false (one per time step)"
        if self.nullable:
            return f"null, or an integer from {self.minimum} to {self.maximum}"
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true | false"
        if self.minimum is not None and self.maximum is not None:
            return f"integer from {self.minimum} to {self.maximum}" + (", or a list of them, one per layer"
                                                                        if self.per_layer else "")
        if self.minimum is not None:
            return f"integer >= {self.minimum}"
        return self.type.__name__


LAYOUTS = ("batch_major", "time_major", "unbatched")
MERGE_MODES = ("concat", "sum", "mul", "ave", "none")
DTYPES = ("float32", "float64", "float16", "bfloat16")
INITIAL_STATES = ("none", "zeros", "ones", "random")
INPUTS = ("random", "arange")
# Named activations the reference implements (reference.ACTIVATIONS); hard_sigmoid is max(0, min(1, x/6 + 1/2)),
# Keras 3's, jax.nn's and torch's Hardsigmoid (tf-keras defines it as 0.2x + 0.5: a declared divergence).
ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "elu", "linear")   # elu: x > 0 ? x : exp(x) - 1
MAX_CONSTANT = 1e6     # a constant input, weight or initial state (larger: a typo, or an overflow in float16)


CONFIG_FIELDS: dict[str, FieldSpec] = {
    "input_size": FieldSpec(int, None, "features per time step (0: an input of no features, which the canonical "
                            "semantics accepts)", minimum=0, required=True, maximum=MAX_SIZE),
    "hidden_size": FieldSpec(int, None, "hidden units H (Keras `units`, Flax `features`; 0: a layer of no units, "
                             "which the canonical semantics accepts: outputs and states of width 0); a list gives "
                             "each stacked layer its own, bottom first (num_layers is its length)", minimum=0,
                             required=True, maximum=MAX_SIZE, per_layer=True),
    "num_layers": FieldSpec(int, 1, "stacked layers (0: a stack of none, which the canonical semantics rejects; "
                            "torch's num_layers=0)", minimum=0, maximum=MAX_LAYERS),
    "bidirectional": FieldSpec(bool, False, "run a backward direction too"),
    "merge_mode": FieldSpec(str, "concat", "how the two directions' outputs are combined (needs bidirectional); "
                            "none: returned apart (Keras merge_mode=None), canonically side by side as concat",
                            choices=MERGE_MODES),
    "proj_size": FieldSpec(int, 0, "LSTM projection size P (torch `proj_size`); 0 = none; "
                           "must be < hidden_size", minimum=0, maximum=MAX_SIZE),
    "bias": FieldSpec(bool, True, "use bias vectors"),
    "return_sequences": FieldSpec(bool, False, "output every time step (else the final hidden state)"),
    "return_state": FieldSpec(bool, False, "return the final (h, c) of every layer and direction"),
    "batch": FieldSpec(int, 2, "batch size B (must be 1 for layout unbatched; 0: an empty batch)", minimum=0,
                       maximum=MAX_SIZE),
    "batch_shape": FieldSpec(tuple, None, "the batch as several leading axes, e.g. [2, 3] for batch 6: the input is "
                             "(*batch_shape, T, F), lengths and states shaped like them (flax takes any leading batch "
                             "axes); null = one batch axis", maximum=MAX_SIZE),
    "timesteps": FieldSpec(int, 3, "sequence length T (0: empty sequences)", minimum=0, maximum=MAX_TIMESTEPS),
    "layout": FieldSpec(str, "batch_major", "native input layout: (B,T,F), (T,B,F) or (T,F)",
                        choices=LAYOUTS),
    "dtype": FieldSpec(str, "float32", "parameter and input dtype", choices=DTYPES),
    "seed": FieldSpec(int, 0, "seed of the generated input, canonical weights and initial states", minimum=0,
                      maximum=MAX_SEED),
    "lengths": FieldSpec(tuple, None, "valid time steps per sequence (right padding), one per batch element; "
                         "null = every sequence is timesteps long", maximum=MAX_TIMESTEPS),
    "mask": FieldSpec(list, None, "which steps of each sequence are real, any pattern (left padding, gaps): one "
                      "row of 0/1 per sequence, one entry per time step; a masked step keeps the state and is not "
                      "an output (what a framework puts there is the padding check's); null = lengths decide. Right "
                      "padding is written as lengths", maximum=MAX_TIMESTEPS, axis=False),
    "zero_output_for_mask": FieldSpec(bool, False, "ask for zeros as the output at masked steps (Keras "
                                      "zero_output_for_mask=True; needs lengths or mask)"),
    "initial_state": FieldSpec(float, "none", "initial (h, c): none (not given: the framework's default, zeros), "
                               "or given in each framework's native form: zeros, ones, random (seeded uniform "
                               "(-0.5, 0.5)) or a constant", choices=INITIAL_STATES),
    "go_backwards": FieldSpec(bool, False, "read the sequence in reverse (with bidirectional: the two directions swap, "
                              "the forward weights reading backwards, as Keras's Bidirectional(LSTM(go_backwards=True))); "
                              "canonical "
                              "outputs stay in time order"),
    "activation": FieldSpec(str, "tanh", "the cell's activation: of the candidate g and of c in h = o * act(c) "
                            "(Keras activation, Flax activation_fn)", choices=ACTIVATIONS),
    "recurrent_activation": FieldSpec(str, "sigmoid", "the gates' activation, of i, f and o (Keras "
                                      "recurrent_activation, Flax gate_fn)", choices=ACTIVATIONS),
    "input": FieldSpec(float, "random", "the input (B, T, F): random (seeded standard normal), arange (0, 1, 2, ... "
                       "in (B, T, F) order, as Keras's own tests feed) or a constant", choices=INPUTS,
                       readers="reference"),
    "kernel_init": FieldSpec(float, "random", "the input kernel W: random (seeded uniform(-1/sqrt(H), 1/sqrt(H))) "
                             "or a constant (Keras kernel_initializer=Constant(v))", choices=("random",),
                             readers="reference"),
    "recurrent_init": FieldSpec(float, "random", "the recurrent kernel U: random or a constant (Keras "
                                "recurrent_initializer=Constant(v))", choices=("random",), readers="reference"),
    "bias_init": FieldSpec(float, "random", "the bias b: random or a constant (Keras bias_initializer=Constant(v))",
                           choices=("random",), readers="reference"),
    "feed_input_size": FieldSpec(int, None, "features of the input fed to the call, where it is not input_size (the "
                                 "layer is built for input_size first): a wrong input, which the canonical "
                                 "semantics rejects", minimum=0, maximum=MAX_SIZE, nullable=True),
    "feed_state_batch": FieldSpec(int, None, "batch of the initial states given, where it is not batch (needs "
                                  "initial_state): a wrong state, which the canonical semantics rejects",
                                  minimum=0, maximum=MAX_SIZE, nullable=True),
    "feed_state_hidden": FieldSpec(int, None, "width of the initial states given, where it is not the layer's (h: "
                                   "proj_size or hidden_size, c: hidden_size; needs initial_state): a wrong state, "
                                   "which the canonical semantics rejects", minimum=0, maximum=MAX_SIZE,
                                   nullable=True),
    "feed_state_layers": FieldSpec(int, None, "how many (layer, direction) entries the initial states given have, "
                                   "where it is not num_layers x directions (torch's h_0.size(0); needs "
                                   "initial_state): a wrong state, which the canonical semantics rejects",
                                   minimum=0, maximum=MAX_LAYERS * 2, nullable=True),
    "feed_state_only": FieldSpec(str, "both", "which initial state the feed_state_* sizes apply to: both, h or c (the "
                                 "other is as the layer wants it)", choices=("both", "h", "c")),
    "unit_forget_bias": FieldSpec(bool, False, "the forget gate's bias is 1.0 whatever bias_init says (Keras "
                                  "unit_forget_bias=True, its default; needs bias)", readers="reference"),
    "dropout": FieldSpec(float, 0.0, "fraction of the cell's input dropped in training (Keras dropout; torch's "
                         "dropout is layer_dropout); a no-op in inference", minimum=0, maximum=1),
    "recurrent_dropout": FieldSpec(float, 0.0, "fraction of the recurrent input h dropped in training (Keras "
                                   "recurrent_dropout); a no-op in inference", minimum=0, maximum=1),
    "layer_dropout": FieldSpec(float, 0.0, "fraction of each layer's output dropped before the next layer reads it, "
                               "in training (torch nn.LSTM dropout); a no-op in inference", minimum=0, maximum=1),
    "training": FieldSpec(bool, False, "call in training mode (Keras training=True, torch module.train()); with a "
                          "dropout the values are drawn at random, so values and padding are not compared"),
    "cell_api": FieldSpec(bool, False, "build it from the cell-level API: torch nn.LSTMCell stepped by hand over "
                          "the time steps (and layer after layer), Keras RNN(LSTMCell); the same semantics"),
    "stacked_cells": FieldSpec(bool, False, "one RNN over every layer's cell, stepped together per time step: Keras "
                               "RNN([LSTMCell(H0), LSTMCell(H1), ...]) (StackedRNNCells), returning [output, [h, c] of "
                               "each cell]; needs cell_api; the same semantics (torch and Flax have no such construct)"),
    "calls": FieldSpec(int, 1, "consecutive calls on the input, each starting from the state the previous one ended "
                       "with, in each framework's own way (Keras stateful=True, torch's (h_n, c_n) fed back, Flax's "
                       "carry); the output and states compared are the last call's", minimum=1, maximum=MAX_CALLS),
    "resets": FieldSpec(tuple, None, "calls (2 to calls) that start from a reset state: as the first call did, from "
                        "the case's initial states or none (Keras reset_states() then initial_state again, torch and "
                        "Flax the initial (h, c) or carry again); null = none", maximum=MAX_CALLS),
    "native": FieldSpec(dict, (), "framework-only constructor keywords, per implementation id or glob, e.g. "
                        "{tf-keras: {batch_input_shape: [8, 2, 10]}}: passed to the native constructor as they are, "
                        "recorded in the construct and the repro", axis=False),
}
MAX_NATIVE_KEYWORDS = 32       # keywords for one implementation pattern (and patterns in `native`)
MAX_NATIVE_TEXT = 200          # characters of a keyword's name, a pattern or a string value

CHECKS = ("accepts", "output_shape", "state_shapes", "state_order", "dtype", "param_count", "symbolic", "values",
          "padding", "claims")
# The checks a shape-only run (`conformance run --shape-only`) asks: nothing that needs a computed number.
SHAPE_CHECKS = ("accepts", "output_shape", "state_shapes", "dtype", "param_count", "claims")
ROLES = ("output", "h", "c")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Config:
    """A validated, framework-neutral LSTM configuration (every field set)."""

    input_size: int
    hidden_size: int | tuple[int, ...]      # a tuple: one per layer, bottom first (see layer_hidden)
    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    proj_size: int = 0
    bias: bool = True
    return_sequences: bool = False
    return_state: bool = False
    batch: int = 2
    batch_shape: tuple[int, ...] | None = None
    timesteps: int = 3
    layout: str = "batch_major"
    dtype: str = "float32"
    seed: int = 0
    lengths: tuple[int, ...] | None = None
    mask: tuple[tuple[bool, ...], ...] | None = None
    zero_output_for_mask: bool = False
    initial_state: str = "none"
    go_backwards: bool = False
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    input: str | float = "random"
    kernel_init: str | float = "random"
    recurrent_init: str | float = "random"
    bias_init: str | float = "random"
    feed_input_size: int | None = None
    feed_state_batch: int | None = None
    feed_state_hidden: int | None = None
    feed_state_layers: int | None = None
    feed_state_only: str = "both"
    unit_forget_bias: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    layer_dropout: float = 0.0
    training: bool = False
    cell_api: bool = False
    stacked_cells: bool = False
    calls: int = 1
    resets: tuple[int, ...] | None = None
    native: tuple = ()             # ((impl pattern, ((keyword, value), ...)), ...): see native_mapping

    def __post_init__(self):
        if isinstance(self.native, dict):           # as results and the worker's messages carry it
            object.__setattr__(self, "native", freeze_native(self.native))
        if isinstance(self.hidden_size, list):      # as JSON gives it back
            object.__setattr__(self, "hidden_size", tuple(self.hidden_size))
        if isinstance(self.resets, list):
            object.__setattr__(self, "resets", tuple(self.resets))
        if isinstance(self.batch_shape, list):
            object.__setattr__(self, "batch_shape", tuple(self.batch_shape))
        if isinstance(self.mask, list) or isinstance(self.lengths, list):     # as JSON gives them back
            object.__setattr__(self, "mask", None if self.mask is None else
                               tuple(tuple(bool(v) for v in row) for row in self.mask))
            object.__setattr__(self, "lengths", None if self.lengths is None else tuple(self.lengths))

    def layer_hidden(self, layer: int) -> int:
        """H of stacked layer ``layer`` (negative: from the top)."""
        return self.hidden_size[layer] if isinstance(self.hidden_size, tuple) else self.hidden_size

    @property
    def per_layer_sizes(self) -> bool:
        """The layers have hidden sizes of their own (hidden_size is a list)."""
        return isinstance(self.hidden_size, tuple)

    @property
    def masked(self) -> bool:
        """Some steps are not real: lengths or mask given."""
        return self.lengths is not None or self.mask is not None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["native"] = native_mapping(self.native)
        return d

    def native_for(self, impl_id: str) -> dict:
        """The native keywords the case gives ``impl_id`` (the patterns that match it, in order)."""
        out: dict = {}
        for pattern, keywords in self.native:
            if fnmatch.fnmatchcase(impl_id, pattern):
                out.update((k, thaw(v)) for k, v in keywords)
        return out

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


assert [f.name for f in dataclasses.fields(Config)] == list(CONFIG_FIELDS)


@dataclass(frozen=True)
class Condition:
    """A property of a whole configuration, derived from its fields, that a declaration's ``when`` can
    name beside the fields themselves: what ``when`` could not say before ("some sequence has no real
    step"), so that a declaration applies to every configuration it is about, a generated one
    (``conformance explore``) included, not only to the cases whose ids a ``cases:`` pattern names."""

    type: type
    doc: str
    of: Any                 # Config -> value
    choices: tuple = (True, False)

    def describe_allowed(self) -> str:
        return " | ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)


def _zero_length(cfg: "Config") -> bool:
    if cfg.lengths is not None:
        return 0 in cfg.lengths
    return cfg.mask is not None and any(not any(row) for row in cfg.mask)


def _nonzero_initial_state(cfg: "Config") -> bool:
    return cfg.initial_state in ("ones", "random") or (
        not isinstance(cfg.initial_state, str) and cfg.initial_state != 0)


def _state_batch_broadcast(cfg: "Config") -> str:
    fed, batch = cfg.feed_state_batch, cfg.batch
    if fed is None or fed == batch or 1 not in (fed, batch):
        return "none"
    return "state" if fed == 1 else "input"


def _state_batch(cfg: "Config") -> str:
    fed = cfg.feed_state_batch
    return "as_input" if fed is None or fed == cfg.batch else "larger" if fed > cfg.batch else "smaller"


CONDITIONS: dict[str, Condition] = {
    "masked": Condition(bool, "some steps are not real: lengths or mask is given", lambda c: c.masked),
    "padded": Condition(bool, "some sequence has a step that is not real: a length below timesteps, or a 0 in the mask "
                        "(lengths all equal to timesteps pad nothing)",
                        lambda c: (c.lengths is not None and any(n < c.timesteps for n in c.lengths))
                        or (c.mask is not None and any(not v for row in c.mask for v in row))),
    "projected": Condition(bool, "the layer projects its hidden state (proj_size above 0: torch's weight_hr)",
                           lambda c: bool(c.proj_size)),
    "no_units": Condition(bool, "some layer has no units (hidden_size 0): its outputs and states hold no values",
                          lambda c: any(c.layer_hidden(l) == 0 for l in range(c.num_layers))),
    "zero_length": Condition(bool, "some sequence has no real step: a length of 0, or a mask row of zeros",
                             _zero_length),
    "stateful": Condition(bool, "the layer is called more than once, carrying its state (calls > 1; Keras "
                          "stateful=True)", lambda c: c.calls > 1),
    "reset": Condition(bool, "some call starts again from a reset state (resets is given)",
                       lambda c: c.resets is not None),
    "batch_axes": Condition(int, "how many leading batch axes the input has: 0 (unbatched), 1, or the length of "
                            "batch_shape", lambda c: 0 if c.layout == "unbatched" else len(c.batch_shape or (1,)),
                            choices=(0, 1, 2, 3, 4)),
    "nonzero_initial_state": Condition(bool, "initial states are given and not all zero (ones, random, or a constant "
                                       "other than 0)", _nonzero_initial_state),
    "state_batch_broadcast": Condition(str, "whether the initial states' batch (feed_state_batch) and the input's "
                                       "broadcast against each other: none (equal, or neither is 1), state (states of "
                                       "batch 1 for a larger or empty input batch), input (an input of batch 1 for "
                                       "states of another batch)", _state_batch_broadcast,
                                       choices=("none", "state", "input")),
    "state_batch": Condition(str, "how the initial states' batch (feed_state_batch) compares with the input's: "
                             "as_input, larger or smaller", _state_batch, choices=("as_input", "larger", "smaller")),
    "recurrent_dropout_given": Condition(bool, "recurrent_dropout is above 0 (whether training or not: Keras then "
                                         "leaves its fused LSTM for the generic loop)",
                                         lambda c: c.recurrent_dropout > 0),
    "per_layer_sizes": Condition(bool, "the layers have hidden sizes of their own (hidden_size is a list)",
                                 lambda c: c.per_layer_sizes),
    "wrong_input": Condition(bool, "the input's feature size is not the layer's (feed_input_size is given)",
                             lambda c: c.feed_input_size is not None),
    "wrong_state": Condition(bool, "the initial states are not what the layer wants (a feed_state_batch, "
                             "feed_state_hidden or feed_state_layers is given)",
                             lambda c: any(v is not None for v in (c.feed_state_batch, c.feed_state_hidden,
                                                                   c.feed_state_layers))),
    "empty": Condition(bool, "nothing to step through: an empty batch or no time steps (batch or timesteps is 0)",
                       lambda c: c.batch == 0 or c.timesteps == 0),
}
assert not set(CONDITIONS) & set(CONFIG_FIELDS)


def condition_value(cfg: Config, name: str):
    """The value a ``when`` condition ``name`` (a field, or one of :data:`CONDITIONS`) has for ``cfg``."""
    return CONDITIONS[name].of(cfg) if name in CONDITIONS else getattr(cfg, name)


def check_value(name: str, value: Any, **loc) -> Any:
    spec = CONFIG_FIELDS[name]
    if spec.type is dict:
        return _check_native(value, **loc)
    if spec.nullable and value is None:
        return None
    if spec.type is list:
        return _check_mask(value, **loc)
    if spec.per_layer and isinstance(value, list):
        if not 1 <= len(value) <= MAX_LAYERS:
            raise SpecError(f"a list of {name} gives one per layer: 1 to {MAX_LAYERS} values, got {len(value)}",
                            field=name, **loc)
        nested = next((v for v in value if isinstance(v, list)), None)
        if nested is not None:
            raise SpecError(f"expected {spec.describe_allowed()}; got a list in the list: {short(nested)}",
                            field=name, **loc)
        return tuple(check_value(name, v, **loc) for v in value)
    if spec.type is tuple:
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise SpecError(f"expected {spec.describe_allowed()}, got {short(value)}", field=name, **loc)
        if spec.maximum is not None and max(value) > spec.maximum:
            raise SpecError(f"{short(max(value))} is too large; at most {spec.maximum}", field=name, **loc)
        return tuple(value)
    if spec.type is float:     # one of the choices, or a finite number (YAML 1.1 reads 1e-2 as a string)
        if isinstance(value, str) and value in (spec.choices or ()):
            return value
        number = as_number(value)
        bounded = spec.minimum is not None and number is not None and not spec.minimum <= number <= spec.maximum
        if number is None or not math.isfinite(number) or abs(number) > MAX_CONSTANT or bounded:
            raise SpecError(f"expected {spec.describe_allowed()}, got {short(value)} ({kind_of(value)})",
                            field=name, **loc)
        return number
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


def _check_mask(value, **loc):
    """``mask``: null, or rows of 0/1 (or true/false), as a tuple of tuples of bools. The rows' number
    and length are checked against batch and timesteps in :func:`cross_check`."""
    if value is None:
        return None
    rows_ok = isinstance(value, list) and value and len(value) <= MAX_SIZE and all(
        isinstance(r, list) and len(r) <= MAX_TIMESTEPS and all(v in (0, 1) and (isinstance(v, (int, bool))) for v in r)
        for r in value)
    if not rows_ok:
        raise SpecError(f"expected {CONFIG_FIELDS['mask'].describe_allowed()}, e.g. [[0, 1, 1], [1, 1, 0]]; got "
                        f"{short(value)}", field="mask", **loc)
    return tuple(tuple(bool(v) for v in r) for r in value)


def freeze(value):
    """A YAML value as a hashable one (lists become tuples)."""
    return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def thaw(value):
    """The inverse of :func:`freeze`: tuples become lists again (as YAML and JSON have them)."""
    return [thaw(v) for v in value] if isinstance(value, tuple) else value


def freeze_native(mapping: dict) -> tuple:
    return tuple((str(p), tuple((str(k), freeze(v)) for k, v in kw.items())) for p, kw in mapping.items())


def native_mapping(native: tuple) -> dict:
    return {p: {k: thaw(v) for k, v in kw} for p, kw in native}


def _check_native(value: Any, **loc) -> tuple:
    """``native``: {impl pattern: {keyword: value}}, values scalars or (nested) lists of scalars."""
    if not isinstance(value, dict):
        raise SpecError(f"expected {CONFIG_FIELDS['native'].describe_allowed()}, e.g. "
                        "{tf-keras: {batch_input_shape: [8, 2, 10]}}; got " + f"{short(value)} ({kind_of(value)})",
                        field="native", **loc)
    if len(value) > MAX_NATIVE_KEYWORDS:
        raise SpecError(f"{len(value)} implementation patterns; at most {MAX_NATIVE_KEYWORDS}", field="native", **loc)
    for pattern, keywords in value.items():
        where = f"native.{str(pattern)[:MAX_NATIVE_TEXT]}"
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_NATIVE_TEXT:
            raise SpecError("an implementation id or glob (a non-empty string of at most "
                            f"{MAX_NATIVE_TEXT} characters) is expected here", field=where, **loc)
        if not isinstance(keywords, dict) or not keywords or len(keywords) > MAX_NATIVE_KEYWORDS:
            raise SpecError(f"expected a mapping of 1 to {MAX_NATIVE_KEYWORDS} keywords to values", field=where,
                            **loc)
        for name, item in keywords.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or len(name) > MAX_NATIVE_TEXT:
                raise SpecError(f"{short(name)} is not a keyword argument name", field=where, **loc)
            if not _plain(item):
                raise SpecError(f"the value of {name} must be a number, a string, true/false, null or a list of "
                                f"them (at most {MAX_LIST_ITEMS} items, strings of at most {MAX_NATIVE_TEXT} "
                                f"characters); got {short(item)}", field=f"{where}.{name}", **loc)
    return freeze_native(value)


def _plain(item, depth: int = 0) -> bool:
    if isinstance(item, list):
        return depth < 4 and len(item) <= MAX_LIST_ITEMS and all(_plain(v, depth + 1) for v in item)
    if isinstance(item, float):
        return math.isfinite(item)
    if isinstance(item, str):
        return len(item) <= MAX_NATIVE_TEXT
    return item is None or isinstance(item, (bool, int))


def _cross_check_mask(values: dict, line_of, **loc) -> None:
    mask, at = values["mask"], {"field": "mask", "line": line_of("mask"), **loc}
    if values["lengths"] is not None:
        raise SpecError("give lengths or mask, not both (lengths is right padding, mask any pattern)", **at)
    if values["layout"] == "unbatched":
        raise SpecError("a mask needs a batch axis; layout unbatched has none", **at)
    if len(mask) != values["batch"]:
        raise SpecError(f"mask has {len(mask)} rows but batch is {values['batch']} (one row per sequence)", **at)
    wrong = next((i for i, row in enumerate(mask) if len(row) != values["timesteps"]), None)
    if wrong is not None:
        raise SpecError(f"mask row {wrong} has {len(mask[wrong])} entries but timesteps is {values['timesteps']} "
                        "(one per time step)", **at)
    lengths = [sum(row) for row in mask]
    if all(row == tuple(t < n for t in range(len(row))) for row, n in zip(mask, lengths)):
        raise SpecError(f"this mask is right padding: write it as lengths: {lengths} (one spelling per "
                        "configuration; every framework expresses lengths)", **at)


def as_number(value) -> float | None:
    """A YAML number; PyYAML (YAML 1.1) reads ``1e-4`` without a dot as a string, so accept that too."""
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):   # not a number; an int too large for a float
        return None


def cross_check(values: dict, line_of, **loc) -> None:
    """Constraints between fields: impossible combinations are errors, not surprises later."""
    sizes = values["hidden_size"]
    if isinstance(sizes, tuple):
        if len(sizes) != values["num_layers"]:
            raise SpecError(f"hidden_size lists {len(sizes)} sizes (one per layer) but num_layers is "
                            f"{values['num_layers']}; leave num_layers out, or list one size per layer",
                            field="hidden_size", line=line_of("hidden_size"), **loc)
        if values["proj_size"]:
            raise SpecError("proj_size with a size per layer: torch, the one framework with a projection, has one "
                            "hidden_size for every layer", field="proj_size", line=line_of("proj_size"), **loc)
    elif values["proj_size"] and values["proj_size"] >= values["hidden_size"]:
        raise SpecError(f"proj_size ({values['proj_size']}) must be smaller than hidden_size "
                        f"({values['hidden_size']})", field="proj_size", line=line_of("proj_size"), **loc)
    if values["merge_mode"] != "concat" and not values["bidirectional"]:
        raise SpecError("merge_mode only applies when bidirectional is true", field="merge_mode",
                        line=line_of("merge_mode"), **loc)
    if values["merge_mode"] == "none" and values["num_layers"] > 1:
        raise SpecError("merge_mode none returns the two directions' outputs apart: a layer above could not read "
                        "them (Keras cannot stack it either); num_layers must be 1", field="merge_mode",
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
    if values["mask"] is not None:
        _cross_check_mask(values, line_of, **loc)
    if values["batch_shape"] is not None:
        shape, at = values["batch_shape"], {"field": "batch_shape", "line": line_of("batch_shape"), **loc}
        if not 2 <= len(shape) <= 4:
            raise SpecError(f"batch_shape gives 2 to 4 leading batch axes (one axis is batch alone); got {list(shape)}",
                            **at)
        if math.prod(shape) != values["batch"]:
            raise SpecError(f"batch_shape {list(shape)} holds {math.prod(shape)} sequences but batch is "
                            f"{values['batch']}", **at)
        if values["layout"] != "batch_major":
            raise SpecError("batch_shape puts the batch axes first: layout must be batch_major", **at)
        if values["feed_state_batch"] is not None:
            raise SpecError("batch_shape with feed_state_batch: give one or the other", **at)
    if values["stacked_cells"]:
        at = {"field": "stacked_cells", "line": line_of("stacked_cells"), **loc}
        if not values["cell_api"]:
            raise SpecError("stacked_cells is a construct of the cell-level API: set cell_api too", **at)
        if values["bidirectional"]:
            raise SpecError("stacked_cells with bidirectional: Keras's Bidirectional(RNN(cells)) runs a whole stack per "
                            "direction, which is another semantics than a bidirectional layer per level", **at)
    if values["resets"] is not None:
        resets, at = values["resets"], {"field": "resets", "line": line_of("resets"), **loc}
        if values["calls"] < 2:
            raise SpecError("resets says which calls start from a reset state; set calls to 2 or more", **at)
        if any(not 2 <= k <= values["calls"] for k in resets):
            raise SpecError(f"every reset is a call number from 2 to calls ({values['calls']}); got {list(resets)}",
                            **at)
        if list(resets) != sorted(set(resets)):
            raise SpecError(f"resets lists call numbers once each, in order; got {list(resets)}", **at)
    if values["zero_output_for_mask"] and values["lengths"] is None and values["mask"] is None:
        raise SpecError("zero_output_for_mask is about masked steps: set lengths or mask too",
                        field="zero_output_for_mask", line=line_of("zero_output_for_mask"), **loc)
    if values["unit_forget_bias"] and not values["bias"]:
        raise SpecError("unit_forget_bias sets the forget gate's bias, so it needs bias: true",
                        field="unit_forget_bias", line=line_of("unit_forget_bias"), **loc)
    feeds = [n for n in ("feed_state_batch", "feed_state_hidden", "feed_state_layers") if values[n] is not None]
    for name in feeds:
        if values["initial_state"] == "none":
            raise SpecError(f"{name} is about the initial states given; set initial_state too", field=name,
                            line=line_of(name), **loc)
    if values["feed_state_batch"] is not None and values["layout"] == "unbatched":
        raise SpecError("layout unbatched gives states without a batch axis; feed_state_batch needs batch_major or "
                        "time_major", field="feed_state_batch", line=line_of("feed_state_batch"), **loc)
    if values["feed_state_only"] != "both" and not feeds:
        raise SpecError("feed_state_only says which state a feed_state_* size applies to; set feed_state_batch, "
                        "feed_state_hidden or feed_state_layers too", field="feed_state_only",
                        line=line_of("feed_state_only"), **loc)
    if values["layout"] == "unbatched" and values["batch"] != 1:
        raise SpecError(f"layout unbatched has no batch axis, so batch must be 1 (got {values['batch']})",
                        field="batch", line=line_of("batch"), **loc)


