"""The case language: schema, safe strict loading, validation and matrix expansion.

A case file is YAML. Everything in it is checked here, before any framework runs, and every
problem is reported as a :class:`SpecError` naming the file, the line, the case id and the
field, so that a maintainer can fix a typo without reading a traceback.

Loading uses PyYAML's ``SafeLoader`` (no arbitrary tags) with two additions: every mapping
remembers the line of each key, and duplicate keys are an error instead of silently winning.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# --------------------------------------------------------------------------------------
# Errors


class SpecError(ValueError):
    """A problem in a case file, located as precisely as we can."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None,
                 case: str | None = None, field: str | None = None):
        self.message, self.file, self.line, self.case, self.field = message, file, line, case, field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}" if self.file else "<case>"
        if self.line:
            where += f":{self.line}"
        parts = [where]
        if self.case:
            parts.append(f"case '{self.case}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts) + f": {self.message}"


# --------------------------------------------------------------------------------------
# The configuration schema: one place says every field, its type, default and allowed values.


@dataclass(frozen=True)
class FieldSpec:
    type: type
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: int | None = None
    required: bool = False

    def describe_allowed(self) -> str:
        if self.type is tuple:
            return "a list of integers >= 1, or null"
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true | false"
        if self.minimum is not None:
            return f"integer >= {self.minimum}"
        return self.type.__name__


LAYOUTS = ("batch_major", "time_major", "unbatched")
MERGE_MODES = ("concat", "sum", "mul", "ave")
DTYPES = ("float32", "float64", "float16", "bfloat16")
INITIAL_STATES = ("none", "zeros", "random")

CONFIG_FIELDS: dict[str, FieldSpec] = {
    "input_size": FieldSpec(int, None, "features per time step", minimum=1, required=True),
    "hidden_size": FieldSpec(int, None, "hidden units H (Keras `units`, Flax `features`)", minimum=1,
                             required=True),
    "num_layers": FieldSpec(int, 1, "stacked layers", minimum=1),
    "bidirectional": FieldSpec(bool, False, "run a backward direction too"),
    "merge_mode": FieldSpec(str, "concat", "how the two directions' outputs are combined "
                            "(needs bidirectional)", choices=MERGE_MODES),
    "proj_size": FieldSpec(int, 0, "LSTM projection size P (torch `proj_size`); 0 = none; "
                           "must be < hidden_size", minimum=0),
    "bias": FieldSpec(bool, True, "use bias vectors"),
    "return_sequences": FieldSpec(bool, False, "output every time step (else the final hidden state)"),
    "return_state": FieldSpec(bool, False, "return the final (h, c) of every layer and direction"),
    "batch": FieldSpec(int, 2, "batch size B (must be 1 for layout unbatched)", minimum=1),
    "timesteps": FieldSpec(int, 3, "sequence length T", minimum=1),
    "layout": FieldSpec(str, "batch_major", "native input layout: (B,T,F), (T,B,F) or (T,F)",
                        choices=LAYOUTS),
    "dtype": FieldSpec(str, "float32", "parameter and input dtype", choices=DTYPES),
    "seed": FieldSpec(int, 0, "seed of the generated input, canonical weights and initial states", minimum=0),
    "lengths": FieldSpec(tuple, None, "valid time steps per sequence (right padding), one per batch element; "
                         "null = every sequence is timesteps long"),
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


@dataclass(frozen=True)
class Claim:
    """What a document says some implementation returns for a case."""

    source: str
    impl: tuple[str, ...]          # fnmatch patterns of impl ids
    says: str = ""
    outputs: tuple[tuple[int, ...], ...] | None = None   # native returned tensors' shapes, in order
    roles: tuple[str, ...] | None = None                 # their roles, in order
    param_count: int | None = None
    holds: bool = True             # the case author's expectation, after running it
    note: str = ""
    line: int | None = None

    def applies_to(self, impl_id: str) -> bool:
        return any(fnmatch.fnmatchcase(impl_id, p) for p in self.impl)


@dataclass(frozen=True)
class Divergence:
    """A declared, explained difference between an implementation and the canonical semantics."""

    id: str
    impl: tuple[str, ...]
    check: str
    reason: str
    link: str = ""
    when: tuple[tuple[str, tuple], ...] = ()   # (config field, allowed values)
    cases: tuple[str, ...] = ("*",)            # fnmatch patterns of case ids
    devices: tuple[str, ...] = ("*",)
    versions: tuple[tuple[str, str], ...] = ()  # (package, specifier): the framework releases it holds for
    file: str = ""
    line: int | None = None

    def applies(self, case: "Case", impl_id: str, device: str, check: str, versions: dict | None = None) -> bool:
        return (check == self.check
                and any(fnmatch.fnmatchcase(impl_id, p) for p in self.impl)
                and any(fnmatch.fnmatchcase(device, p) for p in self.devices)
                and any(fnmatch.fnmatchcase(case.id, p) for p in self.cases)
                and all(getattr(case.config, k) in vals for k, vals in self.when)
                and self.holds_for(versions or {}))

    def holds_for(self, versions: dict) -> bool:
        """Whether the run's package versions are in every ``versions`` range (unknown: not)."""
        for pkg, spec in self.versions:
            if pkg not in versions:
                return False
            try:
                if not SpecifierSet(spec).contains(Version(str(versions[pkg])), prereleases=True):
                    return False
            except InvalidVersion:
                return False
        return True

    def to_dict(self) -> dict:
        return {"id": self.id, "impl": list(self.impl), "check": self.check, "reason": self.reason,
                "link": self.link, "when": {k: list(v) for k, v in self.when},
                "cases": list(self.cases), "devices": list(self.devices), "versions": dict(self.versions),
                "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Case:
    id: str
    config: Config
    file: str
    line: int | None = None
    description: str = ""
    claims: tuple[Claim, ...] = ()
    matrix: dict = field(default_factory=dict)   # the matrix values that generated this case
    tolerance: dict = field(default_factory=dict)  # the values check's atol / rtol, when the case overrides them

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class CaseFile:
    path: str
    cases: list[Case]
    divergences: list[Divergence]
    description: str = ""


# --------------------------------------------------------------------------------------
# Safe YAML loading that remembers lines and refuses duplicate keys.


class _LineDict(dict):
    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise SpecError(f"duplicate key '{key}'", line=key_node.start_mark.line + 1, field=str(key))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc}", file=path) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except SpecError as exc:
        exc.file = path
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"invalid YAML: {exc.problem or exc}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=path) from None


# --------------------------------------------------------------------------------------
# Validation helpers


def _unknown(key: str, allowed, **loc) -> SpecError:
    hint = difflib.get_close_matches(str(key), list(allowed), n=1)
    more = f" (did you mean '{hint[0]}'?)" if hint else ""
    return SpecError(f"unknown field{more}; allowed: {', '.join(allowed)}", field=str(key), **loc)


def _check_value(name: str, value: Any, **loc) -> Any:
    spec = CONFIG_FIELDS[name]
    if spec.type is tuple:
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            raise SpecError(f"expected {spec.describe_allowed()}, got {value!r}", field=name, **loc)
        return tuple(value)
    # bool is an int in Python; YAML `true` must not pass as a size, nor `1` as a flag.
    if spec.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SpecError(f"expected an integer, got {value!r} ({type(value).__name__})", field=name, **loc)
    if spec.type is bool and not isinstance(value, bool):
        raise SpecError(f"expected true or false, got {value!r}", field=name, **loc)
    if spec.type is str and not isinstance(value, str):
        raise SpecError(f"expected one of {spec.describe_allowed()}, got {value!r}", field=name, **loc)
    if spec.choices and value not in spec.choices:
        raise SpecError(f"{value!r} is not allowed; allowed: {spec.describe_allowed()}", field=name, **loc)
    if spec.minimum is not None and value < spec.minimum:
        raise SpecError(f"{value!r} is impossible; must be >= {spec.minimum}", field=name, **loc)
    return value


def _cross_check(values: dict, line_of, **loc) -> None:
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


def _str_or_list(value, name: str, **loc) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError("expected a string or a list of strings", field=name, **loc)
    return tuple(value)


def _require_str(m: _LineDict, key: str, where: str, **loc) -> str:
    if key not in m:
        raise SpecError(f"{where} needs '{key}'", field=key, line=m.line, **loc)
    value = m[key]
    if not isinstance(value, str) or not value.strip():
        raise SpecError("expected a non-empty string", field=key, line=m.line_of(key), **loc)
    return value


CLAIM_FIELDS = ("source", "impl", "says", "outputs", "roles", "param_count", "holds", "note")
DIVERGENCE_FIELDS = ("id", "impl", "check", "reason", "link", "when", "cases", "devices", "versions")
CASE_KEYS = ("id", "description", "matrix", "claims", "tolerance") + tuple(CONFIG_FIELDS)
TOLERANCE_KEYS = ("atol", "rtol")
FILE_KEYS = ("description", "defaults", "cases", "divergences")


def _parse_claim(raw: Any, **loc) -> Claim:
    if not isinstance(raw, dict):
        raise SpecError("a claim must be a mapping", field="claims", **loc)
    for key in raw:
        if key not in CLAIM_FIELDS:
            raise _unknown(f"claims.{key}", [f"claims.{k}" for k in CLAIM_FIELDS], line=raw.line_of(key), **loc)
    source = _require_str(raw, "source", "a claim", **loc)
    impl = _str_or_list(raw.get("impl"), "claims.impl", line=raw.line_of("impl"), **loc)
    outputs = roles = param_count = None
    if "outputs" in raw:
        out = raw["outputs"]
        ok = isinstance(out, list) and out and all(
            isinstance(s, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s)
            for s in out)
        if not ok:
            raise SpecError("expected a list of shapes, each a list of non-negative integers, "
                            "e.g. [[32, 64], [32, 64]]", field="claims.outputs", line=raw.line_of("outputs"), **loc)
        outputs = tuple(tuple(s) for s in out)
    if "roles" in raw:
        rl = raw["roles"]
        if not isinstance(rl, list) or not rl or not all(r in ROLES or r == "?" for r in rl):
            raise SpecError(f"expected a list of roles from {', '.join(ROLES)} (or ? where the document "
                            "does not say)", field="claims.roles",
                            line=raw.line_of("roles"), **loc)
        roles = tuple(rl)
    if "param_count" in raw:
        pc = raw["param_count"]
        if isinstance(pc, bool) or not isinstance(pc, int) or pc < 0:
            raise SpecError("expected a non-negative integer", field="claims.param_count",
                            line=raw.line_of("param_count"), **loc)
        param_count = pc
    if outputs is None and roles is None and param_count is None:
        raise SpecError("a claim must state at least one of outputs, roles, param_count", field="claims",
                        line=raw.line, **loc)
    if outputs is not None and roles is not None and len(outputs) != len(roles):
        raise SpecError(f"claims.outputs has {len(outputs)} entries but claims.roles has {len(roles)}",
                        field="claims.roles", line=raw.line_of("roles"), **loc)
    holds = raw.get("holds", True)
    if not isinstance(holds, bool):
        raise SpecError("expected true or false", field="claims.holds", line=raw.line_of("holds"), **loc)
    for text_key in ("says", "note"):
        if text_key in raw and not isinstance(raw[text_key], str):
            raise SpecError("expected a string", field=f"claims.{text_key}", line=raw.line_of(text_key), **loc)
    return Claim(source=source, impl=impl, says=raw.get("says", ""), outputs=outputs, roles=roles,
                 param_count=param_count, holds=holds, note=raw.get("note", ""), line=raw.line)


def parse_divergence(raw: Any, file: str | Path, **loc) -> Divergence:
    loc = {"file": file, **loc}
    if not isinstance(raw, dict):
        raise SpecError("a divergence must be a mapping", field="divergences", **loc)
    did = raw.get("id")
    dloc = dict(loc, case=loc.get("case") or (f"divergence {did}" if isinstance(did, str) else None))
    for key in raw:
        if key not in DIVERGENCE_FIELDS:
            raise _unknown(key, DIVERGENCE_FIELDS, line=raw.line_of(key), **dloc)
    did = _require_str(raw, "id", "a divergence", **dloc)
    impl = _str_or_list(raw.get("impl"), "impl", line=raw.line_of("impl"), **dloc)
    check = _require_str(raw, "check", "a divergence", **dloc)
    if check not in CHECKS:
        raise SpecError(f"unknown check {check!r}; allowed: {', '.join(CHECKS)}", field="check",
                        line=raw.line_of("check"), **dloc)
    reason = _require_str(raw, "reason", "a divergence", **dloc)
    link = raw.get("link", "")
    if not isinstance(link, str):
        raise SpecError("expected a string", field="link", line=raw.line_of("link"), **dloc)
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise SpecError("expected a mapping of config field to value(s)", field="when",
                        line=raw.line_of("when"), **dloc)
    conds = []
    for key, val in when.items():
        if key not in CONFIG_FIELDS:
            raise _unknown(key, CONFIG_FIELDS, line=when.line_of(key), **dloc)
        vals = val if isinstance(val, list) else [val]
        for v in vals:
            _check_value(key, v, line=when.line_of(key), **dloc)
        conds.append((key, tuple(vals)))
    cases = _str_or_list(raw.get("cases", "*"), "cases", line=raw.line_of("cases"), **dloc)
    devices = _str_or_list(raw.get("devices", "*"), "devices", line=raw.line_of("devices"), **dloc)
    versions = raw.get("versions", {})
    if not isinstance(versions, dict):
        raise SpecError("expected a mapping of package to version specifier, e.g. {keras: '>=3.12'}",
                        field="versions", line=raw.line_of("versions"), **dloc)
    for pkg, spec in versions.items():
        try:
            SpecifierSet(spec)
        except (InvalidSpecifier, TypeError):
            raise SpecError(f"{spec!r} is not a version specifier (e.g. '>=3.12', '<2.14')",
                            field=f"versions.{pkg}", line=versions.line_of(pkg), **dloc) from None
    return Divergence(id=did, impl=impl, check=check, reason=reason, link=link, when=tuple(conds),
                      cases=cases, devices=devices, versions=tuple((str(k), str(v)) for k, v in versions.items()),
                      file=str(file), line=raw.line)


def _parse_tolerance(raw: _LineDict, **loc) -> dict:
    tol = raw.get("tolerance")
    if tol is None:
        return {}
    line = raw.line_of("tolerance")
    if not isinstance(tol, dict) or not tol:
        raise SpecError("expected a mapping with atol and/or rtol", field="tolerance", line=line, **loc)
    for key, value in tol.items():
        if key not in TOLERANCE_KEYS:
            raise _unknown(f"tolerance.{key}", [f"tolerance.{k}" for k in TOLERANCE_KEYS], line=line, **loc)
        number = _number(value)
        if number is None or number < 0:
            raise SpecError(f"expected a number >= 0, got {value!r}", field=f"tolerance.{key}", line=line, **loc)
        tol[key] = number
    return dict(tol)


def _number(value) -> float | None:
    """A YAML number; PyYAML (YAML 1.1) reads ``1e-4`` without a dot as a string, so accept that too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "_".join(str(v) for v in value)
    if value is None:
        return "null"
    return str(value)


def _expand(raw: _LineDict, defaults: dict, default_lines: dict, path: Path) -> list[Case]:
    loc = {"file": path}
    cid = raw.get("id")
    if not isinstance(cid, str) or not cid:
        raise SpecError("every case needs an 'id' (a non-empty string)", field="id",
                        line=raw.line_of("id"), **loc)
    loc["case"] = cid
    for key in raw:
        if key not in CASE_KEYS:
            raise _unknown(key, CASE_KEYS, line=raw.line_of(key), **loc)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError("expected a string", field="description", line=raw.line_of("description"), **loc)

    base = dict(defaults)
    lines = dict(default_lines)
    for key in CONFIG_FIELDS:
        if key in raw:
            base[key] = _check_value(key, raw[key], line=raw.line_of(key), **loc)
            lines[key] = raw.line_of(key)

    matrix = raw.get("matrix") or {}
    if not isinstance(matrix, dict):
        raise SpecError("matrix must map config fields to lists of values", field="matrix",
                        line=raw.line_of("matrix"), **loc)
    axes = []
    for key, values in matrix.items():
        mline = matrix.line_of(key)
        if key not in CONFIG_FIELDS:
            raise _unknown(f"matrix.{key}", [f"matrix.{k}" for k in CONFIG_FIELDS], line=mline, **loc)
        if key in raw:
            raise SpecError(f"'{key}' is set both in the case and in its matrix", field=f"matrix.{key}",
                            line=mline, **loc)
        if not isinstance(values, list) or not values:
            raise SpecError("expected a non-empty list of values", field=f"matrix.{key}", line=mline, **loc)
        axes.append((key, [_check_value(key, v, line=mline, **loc) for v in values], mline))

    template = "{" in cid
    if template:
        names = set(re.findall(r"{(\w+)}", cid))
        bad = names - {a[0] for a in axes}
        if bad:
            raise SpecError(f"id template refers to {', '.join(sorted(bad))}, which the matrix does not set",
                            field="id", line=raw.line_of("id"), **loc)
    elif not ID_RE.match(cid):
        raise SpecError("ids may hold letters, digits and _ . + - (and must start with a letter or digit)",
                        field="id", line=raw.line_of("id"), **loc)

    claims = raw.get("claims", [])
    if not isinstance(claims, list):
        raise SpecError("claims must be a list", field="claims", line=raw.line_of("claims"), **loc)
    parsed_claims = tuple(_parse_claim(c, **loc) for c in claims)
    tolerance = _parse_tolerance(raw, **loc)

    out = []
    for combo in itertools.product(*[[(k, v, ln) for v in vals] for k, vals, ln in axes]):
        values = dict(base)
        vlines = dict(lines)
        for k, v, ln in combo:
            values[k] = v
            vlines[k] = ln
        if template:
            case_id = re.sub(r"{(\w+)}", lambda m: _fmt(values[m.group(1)]), cid)
        else:
            case_id = ".".join([cid] + [f"{k}-{_fmt(v)}" for k, v, _ in combo])
        cloc = dict(loc, case=case_id)
        for key in ("input_size", "hidden_size"):
            if key not in values:
                raise SpecError(f"'{key}' is required (set it in the case, its matrix or the file's defaults)",
                                field=key, line=raw.line, **cloc)
        if values.get("layout") == "unbatched" and "batch" not in values:
            values["batch"] = 1
        full = {k: values.get(k, spec.default) for k, spec in CONFIG_FIELDS.items()}
        _cross_check(full, lambda k: vlines.get(k, raw.line), **cloc)
        out.append(Case(id=case_id, config=Config(**full), file=str(path), line=raw.line,
                        description=description, claims=parsed_claims, tolerance=tolerance,
                        matrix={k: v for k, v, _ in combo}))
    return out


def load_file(path: str | Path) -> CaseFile:
    """Load and validate one case file; raises :class:`SpecError` on the first problem."""
    path = Path(path)
    data = _read_yaml(path)
    loc = {"file": path}
    if data is None:
        data = _LineDict()
        data.line, data.key_lines = 1, {}
    if not isinstance(data, dict):
        raise SpecError("a case file must be a mapping with 'cases:' and/or 'divergences:'", line=1, **loc)
    for key in data:
        if key not in FILE_KEYS:
            raise _unknown(key, FILE_KEYS, line=data.line_of(key), **loc)

    defaults_raw = data.get("defaults") or _LineDict()
    if not isinstance(defaults_raw, dict):
        raise SpecError("defaults must be a mapping of config fields", field="defaults",
                        line=data.line_of("defaults"), **loc)
    if not hasattr(defaults_raw, "line_of"):
        defaults_raw = _LineDict(defaults_raw)
        defaults_raw.line, defaults_raw.key_lines = 1, {}
    defaults = {}
    for key, value in defaults_raw.items():
        if key not in CONFIG_FIELDS:
            raise _unknown(f"defaults.{key}", [f"defaults.{k}" for k in CONFIG_FIELDS],
                           line=defaults_raw.line_of(key), **loc)
        defaults[key] = _check_value(key, value, line=defaults_raw.line_of(key), **loc)
    default_lines = {k: defaults_raw.line_of(k) for k in defaults}

    raw_cases = data.get("cases", [])
    if not isinstance(raw_cases, list):
        raise SpecError("'cases' must be a list", field="cases", line=data.line_of("cases"), **loc)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for raw in raw_cases:
        if not isinstance(raw, dict):
            raise SpecError("each case must be a mapping with at least 'id', 'input_size', 'hidden_size'",
                            field="cases", line=data.line_of("cases"), **loc)
        for case in _expand(raw, defaults, default_lines, path):
            if case.id in seen:
                raise SpecError(f"duplicate case id (first defined at line {seen[case.id]})", field="id",
                                line=case.line, case=case.id, **loc)
            seen[case.id] = case.line
            cases.append(case)

    raw_divs = data.get("divergences", [])
    if not isinstance(raw_divs, list):
        raise SpecError("'divergences' must be a list", field="divergences",
                        line=data.line_of("divergences"), **loc)
    divergences = [parse_divergence(d, path) for d in raw_divs]
    ids = [d.id for d in divergences]
    dup = next((d for d in divergences if ids.count(d.id) > 1), None)
    if dup:
        raise SpecError("duplicate divergence id", field="id", line=dup.line, case=f"divergence {dup.id}", **loc)
    description = data.get("description", "")
    return CaseFile(path=str(path), cases=cases, divergences=divergences,
                    description=description if isinstance(description, str) else "")


def is_case_file(path: Path) -> bool:
    """Cheap test used by the pytest plugin: a YAML mapping with top-level 'cases' or 'divergences'."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    return bool(re.search(r"^(cases|divergences)\s*:", head, re.M))
