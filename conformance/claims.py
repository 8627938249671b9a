"""Claims: what a document (a blog post, a framework's own test) says an implementation returns for a
case, parsed and validated here; ``checks`` gives each claim its verdict from the run."""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import (SpecError, check_count, check_length, optional_text, require_str, short, str_or_list,
                     unknown_field)
from .fields import ROLES, as_number
from .limits import MAX_CLAIM_DIMS, MAX_CLAIM_INT, MAX_CLAIM_TENSORS, MAX_CLAIM_VALUES, MAX_TEXT_CHARS

CLAIM_FIELDS = ("source", "impl", "says", "outputs", "roles", "param_count", "dtypes", "paths", "params",
                "values", "same_calls", "different_calls", "atol", "rtol", "raises", "warns", "summary", "holds", "note")
# What a claim may state (at least one of them), beside its source, scope and texts.
STATEMENTS = ("outputs", "roles", "param_count", "dtypes", "paths", "params", "values", "same_calls",
              "different_calls", "raises", "warns", "summary")
SUMMARY_ROW_KEYS = ("layer", "output_shape", "params")         # a summary row's columns a claim may quote
SUMMARY_TOTALS = ("total_params", "trainable_params", "non_trainable_params")
VALUE_TENSOR_RE = re.compile(r"^(output|layer\d+/(forward|backward)/[hc])$")
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64", "int32", "int64", "bool")
CLAIM_ATOL = CLAIM_RTOL = 1e-6     # a values claim's default tolerance (Keras's and NumPy's assertAllClose)


@dataclass(frozen=True)
class Claim:
    """What a document says some implementation returns for a case."""

    source: str
    impl: tuple[str, ...]          # fnmatch patterns of impl ids
    says: str = ""
    outputs: tuple[tuple[int, ...], ...] | None = None   # native returned tensors' shapes, in order
    roles: tuple[str, ...] | None = None                 # their roles, in order
    param_count: int | None = None
    dtypes: tuple[str, ...] | None = None                # native returned tensors' dtypes, in order
    paths: tuple[str, ...] | None = None                 # native returned tensors' paths (the nesting), in order
    params: tuple[tuple[str, tuple[int, ...]], ...] | None = None   # native parameter tensors: name, shape
    values: tuple[tuple[str, Any], ...] | None = None    # canonical tensor label -> nested list of numbers
    atol: float = CLAIM_ATOL
    rtol: float = CLAIM_RTOL
    raises: tuple[tuple[str, str], ...] | None = None    # ("type", name) and ("match", regex): the call is refused
    warns: tuple[tuple[str, str], ...] | None = None     # the same, of a warning the run raises
    # pairs of call numbers (1-based, ``calls``) whose outputs are the same (within atol/rtol), or are not
    same_calls: tuple[tuple[int, int], ...] | None = None
    different_calls: tuple[tuple[int, int], ...] | None = None
    # Keras's model.summary() as printed: (("rows", ((("layer", "lstm (LSTM)"), ("output_shape", "(None, 3)"),
    # ("params", 168)), ...)), ("total_params", 168), ...); see summary_dict
    summary: tuple | None = None
    holds: bool = True             # the case author's expectation, after running it
    note: str = ""
    line: int | None = None

    def applies_to(self, impl_id: str) -> bool:
        return any(fnmatch.fnmatchcase(impl_id, p) for p in self.impl)

    def summary_dict(self) -> dict | None:
        """The summary this claim quotes: ``{"rows": [{"layer", "output_shape", "params"} (those given)], and
        any of "total_params", "trainable_params", "non_trainable_params"}``, or None."""
        if self.summary is None:
            return None
        out = dict(self.summary)
        if "rows" in out:
            out["rows"] = [dict(r) for r in out["rows"]]
        return out

    def raises_matches(self, rejection: dict, want: tuple | None = None) -> bool:
        """Whether a run's ``rejection`` (or a warning: ``want`` is then ``warns``) is the one this claim says:
        of the claimed type (or a subclass of it), its message matching the claimed pattern (``re.search``)."""
        want = dict(self.raises if want is None else want)
        return ((not want.get("type") or want["type"] in rejection.get("types", [rejection.get("type")]))
                and (not want.get("match") or re.search(want["match"], rejection.get("message", "")) is not None))


def parse_claim(raw: Any, **loc) -> Claim:
    if not isinstance(raw, dict):
        raise SpecError("a claim must be a mapping", field="claims", **loc)
    for key in raw:
        if key not in CLAIM_FIELDS:
            raise unknown_field(f"claims.{key}", [f"claims.{k}" for k in CLAIM_FIELDS], line=raw.line_of(key), **loc)
    source = require_str(raw, "source", "a claim", **loc)
    impl = str_or_list(raw.get("impl"), "claims.impl", line=raw.line_of("impl"), **loc)
    outputs = roles = param_count = None
    if "outputs" in raw:
        out = raw["outputs"]
        oloc = dict(loc, field="claims.outputs", line=raw.line_of("outputs"))
        if isinstance(out, list):
            check_count(out, MAX_CLAIM_TENSORS, "shapes", **oloc)
            for i, shape in enumerate(out):
                if isinstance(shape, list) and len(shape) > MAX_CLAIM_DIMS:
                    raise SpecError(f"shape {i} has {len(shape):,} dimensions; at most {MAX_CLAIM_DIMS} are "
                                    "allowed", **oloc)
        ok = isinstance(out, list) and out and all(
            isinstance(s, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_CLAIM_INT
                                        for d in s)
            for s in out)
        if not ok:
            raise SpecError("expected a list of shapes, each a list of non-negative integers, "
                            "e.g. [[32, 64], [32, 64]]", field="claims.outputs", line=raw.line_of("outputs"), **loc)
        outputs = tuple(tuple(s) for s in out)
    if "roles" in raw:
        rl = raw["roles"]
        if isinstance(rl, list):
            check_count(rl, MAX_CLAIM_TENSORS, "roles", field="claims.roles", line=raw.line_of("roles"), **loc)
        if not isinstance(rl, list) or not rl or not all(r in ROLES or r == "?" for r in rl):
            raise SpecError(f"expected a list of roles from {', '.join(ROLES)} (or ? where the document "
                            "does not say)", field="claims.roles",
                            line=raw.line_of("roles"), **loc)
        roles = tuple(rl)
    if "param_count" in raw:
        pc = raw["param_count"]
        if isinstance(pc, bool) or not isinstance(pc, int) or not 0 <= pc <= MAX_CLAIM_INT:
            raise SpecError("expected a non-negative integer (at most 2**63 - 1)", field="claims.param_count",
                            line=raw.line_of("param_count"), **loc)
        param_count = pc
    raises, warns = _raises(raw, **loc), _raises(raw, "warns", **loc)
    dtypes = _names(raw, "dtypes", DTYPE_NAMES, **loc)
    paths = _names(raw, "paths", None, **loc)
    params = _params(raw, **loc)
    values = _values(raw, **loc)
    same_calls, different_calls = _call_pairs(raw, "same_calls", **loc), _call_pairs(raw, "different_calls", **loc)
    summary = _summary(raw, **loc)
    tol = {}
    for key in ("atol", "rtol"):
        if key in raw:
            number = as_number(raw[key])
            if number is None or not math.isfinite(number) or number < 0:
                raise SpecError(f"expected a finite number >= 0, got {short(raw[key])}", field=f"claims.{key}",
                                line=raw.line_of(key), **loc)
            if values is None and same_calls is None and different_calls is None:
                raise SpecError(f"{key} is the tolerance of a values, same_calls or different_calls claim; this "
                                "claim states none of them",
                                field=f"claims.{key}", line=raw.line_of(key), **loc)
            tol[key] = number
    if outputs is None and roles is None and param_count is None and all(
            x is None for x in (dtypes, paths, params, values, raises, warns, same_calls, different_calls, summary)):
        raise SpecError(f"a claim must state at least one of {', '.join(STATEMENTS)}", field="claims",
                        line=raw.line, **loc)
    if outputs is not None and roles is not None and len(outputs) != len(roles):
        raise SpecError(f"claims.outputs has {len(outputs)} entries but claims.roles has {len(roles)}",
                        field="claims.roles", line=raw.line_of("roles"), **loc)
    holds = raw.get("holds", True)
    if not isinstance(holds, bool):
        raise SpecError("expected true or false", field="claims.holds", line=raw.line_of("holds"), **loc)
    says = optional_text(raw, "says", "claims.says", **loc)
    note = optional_text(raw, "note", "claims.note", **loc)
    return Claim(source=source, impl=impl, says=says, outputs=outputs, roles=roles, param_count=param_count,
                 dtypes=dtypes, paths=paths, params=params, values=values, **tol, raises=raises, holds=holds, note=note,
                 same_calls=same_calls, different_calls=different_calls, warns=warns, summary=summary, line=raw.line)


def _call_pairs(raw, key: str, **loc) -> tuple | None:
    """``same_calls`` / ``different_calls``: pairs of call numbers, e.g. [[1, 3]] (checked against the
    case's ``calls`` when the case is built)."""
    if key not in raw:
        return None
    value = raw[key]
    ok = isinstance(value, list) and 0 < len(value) <= MAX_CLAIM_TENSORS and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 10_000
                                                    for k in p) and p[0] != p[1] for p in value)
    if not ok:
        raise SpecError(f"expected a list of pairs of two different call numbers (1 = the first call), e.g. [[1, 3]]; "
                        f"got {short(value)}", field=f"claims.{key}", line=raw.line_of(key), **loc)
    return tuple(tuple(p) for p in value)


def _summary_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_CLAIM_INT


def _summary(raw, **loc) -> tuple | None:
    """``summary``: rows of Keras's ``model.summary()`` table as printed, ``{rows: [{layer: "lstm_3 (LSTM)",
    output_shape: "(None, 3)", params: 168}], total_params: 168}`` (each key optional, at least one); the
    layer's name is compared by its type in parentheses only (Keras numbers names per session)."""
    if "summary" not in raw:
        return None
    value, kloc = raw["summary"], dict(loc, field="claims.summary", line=raw.line_of("summary"))
    allowed = ("rows", *SUMMARY_TOTALS)
    if not isinstance(value, dict) or not value or set(value) - set(allowed):
        raise SpecError(f"expected a mapping of {', '.join(allowed)} (at least one), e.g. {{rows: [{{layer: "
                        "'lstm (LSTM)', output_shape: '(None, 3)', params: 168}], total_params: 168}", **kloc)
    out = []
    for key in SUMMARY_TOTALS:
        if key in value:
            if not _summary_count(value[key]):
                raise SpecError(f"{key}: expected a non-negative integer, got {short(value[key])}", **kloc)
            out.append((key, value[key]))
    if "rows" in value:
        rows = value["rows"]
        if isinstance(rows, list):
            check_count(rows, MAX_CLAIM_TENSORS, "summary rows", **kloc)
        if not isinstance(rows, list) or not rows:
            raise SpecError("rows: expected a list of the table's rows, e.g. [{output_shape: '(None, 3)', params: 168}]",
                            **kloc)
        parsed = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or not row or set(row) - set(SUMMARY_ROW_KEYS):
                raise SpecError(f"row {i}: expected a mapping of {', '.join(SUMMARY_ROW_KEYS)} (at least one)", **kloc)
            for key in ("layer", "output_shape"):
                if key in row and not (isinstance(row[key], str) and 0 < len(row[key]) <= 200):
                    raise SpecError(f"row {i}: {key}: expected the text as printed (at most 200 characters)", **kloc)
            if "params" in row and not _summary_count(row["params"]):
                raise SpecError(f"row {i}: params: expected a non-negative integer, got {short(row['params'])}", **kloc)
            parsed.append(tuple((k, row[k]) for k in SUMMARY_ROW_KEYS if k in row))
        out.insert(0, ("rows", tuple(parsed)))
    return tuple(out)


def _raises(raw, key: str = "raises", **loc) -> tuple | None:
    """``raises``: ``{type: ExceptionName, match: regex}`` (either may be left out): the implementation
    refuses the call with such an exception; ``warns``: it warns so (a warning category, e.g. UserWarning)."""
    if key not in raw:
        return None
    value, kloc = raw[key], dict(loc, field=f"claims.{key}", line=raw.line_of(key))
    what = "an exception class name, e.g. ValueError" if key == "raises" else "a warning category, e.g. UserWarning"
    if not isinstance(value, dict) or not value or set(value) - {"type", "match"} or not all(
            isinstance(v, str) and v for v in value.values()):
        raise SpecError(f"expected a mapping with type ({what}) and/or match (a regular expression its message must "
                        "contain)", **kloc)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,99}", value.get("type", "x")):
        raise SpecError(f"{short(value['type'])} is not {what.split(',')[0]}", **kloc)
    if "match" in value:
        check_length(value["match"], MAX_TEXT_CHARS, "the pattern", **kloc)
        try:
            re.compile(value["match"])
        except re.error as exc:
            raise SpecError(f"match is not a regular expression: {exc}", **kloc) from None
    return tuple((k, value[k]) for k in ("type", "match") if k in value)


def _names(raw, key: str, allowed: tuple | None, **loc) -> tuple[str, ...] | None:
    """``dtypes`` or ``paths``: a non-empty list of short strings, one per native returned tensor."""
    if key not in raw:
        return None
    value, kloc = raw[key], dict(loc, field=f"claims.{key}", line=raw.line_of(key))
    if isinstance(value, list):
        check_count(value, MAX_CLAIM_TENSORS, key, **kloc)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and len(v) <= 100 for v in value):
        raise SpecError("expected a list of strings, one per returned tensor in native order", **kloc)
    bad = [v for v in value if allowed is not None and v not in allowed]
    if bad:
        raise SpecError(f"{short(bad[0])} is not a dtype this suite knows; allowed: {', '.join(allowed)}", **kloc)
    return tuple(value)


def _params(raw, **loc) -> tuple | None:
    """``params``: a mapping of native parameter name to its shape."""
    if "params" not in raw:
        return None
    value, kloc = raw["params"], dict(loc, field="claims.params", line=raw.line_of("params"))
    if isinstance(value, dict):
        check_count(value, MAX_CLAIM_TENSORS, "parameters", **kloc)
    if not isinstance(value, dict) or not value or not all(
            isinstance(s, list) and len(s) <= MAX_CLAIM_DIMS and all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_CLAIM_INT for d in s)
            for s in value.values()) or any(len(k) > 200 for k in value):
        raise SpecError("expected a mapping of native parameter name to its shape, e.g. {weight_ih_l0: [16, 3]}",
                        **kloc)
    return tuple((k, tuple(s)) for k, s in value.items())


def _values(raw, **loc) -> tuple | None:
    """``values``: a mapping of canonical tensor (``output``, ``layer0/forward/h``, ...) to its numbers,
    a nested list (at most ``MAX_CLAIM_VALUES`` numbers in all: they are copied into each run's record)."""
    if "values" not in raw:
        return None
    value, kloc = raw["values"], dict(loc, field="claims.values", line=raw.line_of("values"))
    if not isinstance(value, dict) or not value:
        raise SpecError("expected a mapping of canonical tensor (output, layer0/forward/h, layer0/forward/c, ...) "
                        "to a nested list of numbers", **kloc)
    total = 0
    for name, numbers in value.items():
        if not VALUE_TENSOR_RE.match(name):
            raise SpecError(f"{short(name)} is not a canonical tensor; use output or layer<l>/<forward|backward>/<h|c>",
                            **kloc)
        try:
            array = np.asarray(numbers, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            array = None
        if array is None or array.dtype != np.float64 or not np.all(np.isfinite(array)) or array.ndim > MAX_CLAIM_DIMS:
            raise SpecError(f"the values of {name} must be a rectangular nested list of finite numbers", **kloc)
        total += array.size
        if total > MAX_CLAIM_VALUES:
            raise SpecError(f"more than {MAX_CLAIM_VALUES:,} numbers in one claim's values; at most that many are "
                            "allowed (they are copied into every run's record)", **kloc)
    return tuple((name, numbers) for name, numbers in value.items())


