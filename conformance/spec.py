"""The case language: a case file loaded, validated and expanded into cases, and the catalogue's
divergence declarations.

A case file is YAML. Everything in it is checked before any framework runs, and every problem is
a :class:`SpecError` naming the file, the line, the case id and the field. The language is split by
idea: :mod:`conformance.loader` reads YAML safely (lines, duplicate keys, bounded cost, the
marker), :mod:`conformance.limits` says what a file, a case and a record may cost,
:mod:`conformance.fields` is the table of configuration fields and :class:`Config`,
:mod:`conformance.matrix` expands ``matrix:``, :mod:`conformance.claims` parses claims; this module
puts them together (:func:`load_file`) and holds :class:`Case`, :class:`CaseFile` and
:class:`Divergence`. Names from those modules are importable from here too.

A file must hold at least one case or divergence. Case ids must be unique within a file (here)
and across the files of a run (:func:`check_unique_ids`).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .claims import CLAIM_FIELDS, Claim, parse_claim
from .errors import (SpecError, check_count, check_length, kind_of, optional_text, require_str, short,
                     str_or_list, unknown_field)
from .fields import (CHECKS, CONDITIONS, CONFIG_FIELDS, DTYPES, ID_RE, INITIAL_STATES, LAYOUTS, MERGE_MODES, ROLES, Config,
                     FieldSpec, as_number, check_value, condition_value, cross_check)
from .limits import (MAX_CASE_COST, MAX_CLAIM_DIMS, MAX_CLAIM_INT, MAX_CLAIM_TENSORS, MAX_CLAIMS, MAX_DEPTH,
                     MAX_FILE_BYTES, MAX_FILE_CASES, MAX_ID_CHARS, MAX_LAYERS, MAX_LIST_ITEMS, MAX_MATRIX,
                     MAX_NODES, MAX_RECORD_TEXT, MAX_SEED, MAX_SIZE, MAX_TEXT_CHARS, MAX_TIMESTEPS, case_cost,
                     clip_text)
from .loader import (LANGUAGE_VERSION, MARKER, SNAPSHOT, NotRegularFile, _head, _LineDict, is_case_file,
                     is_marked, open_regular, read_text, read_yaml, snapshot_key)
from .matrix import axes_of, combinations

__all__ = [  # re-exported: the names the rest of the suite and its tests read from ``spec``
    "CHECKS", "CLAIM_FIELDS", "CONDITIONS", "CONFIG_FIELDS", "condition_value", "DTYPES", "ID_RE", "INITIAL_STATES", "LANGUAGE_VERSION", "LAYOUTS",
    "MARKER", "MERGE_MODES", "ROLES", "SNAPSHOT", "Claim", "Config", "FieldSpec", "NotRegularFile", "SpecError",
    "MAX_CASE_COST", "MAX_CLAIM_DIMS", "MAX_CLAIM_INT", "MAX_CLAIM_TENSORS", "MAX_CLAIMS", "MAX_DEPTH",
    "MAX_FILE_BYTES", "MAX_FILE_CASES", "MAX_ID_CHARS", "MAX_LAYERS", "MAX_LIST_ITEMS", "MAX_MATRIX", "MAX_NODES",
    "MAX_RECORD_TEXT", "MAX_SEED", "MAX_SIZE", "MAX_TEXT_CHARS", "MAX_TIMESTEPS", "_head", "case_cost",
    "clip_text", "is_case_file", "is_marked", "open_regular", "read_text", "snapshot_key",
    "Case", "CaseFile", "Divergence", "check_unique_ids", "complete_config", "config_of", "load_file",
    "parse_divergence"]


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
    modes: tuple[str, ...] = ("eager", "shape-only")   # the runs it is about: computed ones, shape-only ones, or both
    # The difference shows in some runs only (a framework returning uninitialized memory, a race): a run that
    # agrees is no evidence against it (never stale).
    intermittent: bool = False
    # check accepts: the framework's process dies running the call (killed by a signal, e.g. an abort): such a
    # run is this declared difference, not an error; a run that neither crashes nor differs makes it stale.
    crash: bool = False
    file: str = ""
    line: int | None = None

    def applies(self, case: "Case", impl_id: str, device: str, check: str, versions: dict | None = None,
                mode: str = "eager") -> bool:
        return (check == self.check and mode in self.modes
                and any(fnmatch.fnmatchcase(impl_id, p) for p in self.impl)
                and any(fnmatch.fnmatchcase(device, p) for p in self.devices)
                and any(fnmatch.fnmatchcase(case.id, p) for p in self.cases)
                and all(condition_value(case.config, k) in vals for k, vals in self.when)
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
                "modes": list(self.modes), "intermittent": self.intermittent, "crash": self.crash,
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


def check_cost(cfg: Config, **loc) -> None:
    cost = case_cost(cfg)
    if cost["total"] > MAX_CASE_COST:
        parts = ", ".join(f"{k} {v:,}" for k, v in cost.items() if k != "total")
        raise SpecError(f"this case is too large to check: one run would hold about {cost['total']:,} float64 "
                        f"elements ({cost['total'] * 8 / 2**30:.1f} GiB) at once in the test process ({parts}); "
                        f"the limit is {MAX_CASE_COST:,} ({MAX_CASE_COST * 8 / 2**30:g} GiB). Make it smaller "
                        "(fewer layers, a smaller hidden_size, batch or timesteps)", **loc)


def complete_config(values: dict, line_of=lambda key: None, **loc) -> Config:
    """The :class:`Config` of checked field values (each as :func:`check_value` returns it; fields not
    given take their defaults): one spelling per configuration (batch 1 when unbatched, a uniform list
    of sizes as one size, num_layers from a list), the constraints between fields, the cost limit.
    ``line_of(field)`` locates an error; raises :class:`SpecError`."""
    values = dict(values)
    if values.get("layout") == "unbatched" and "batch" not in values:
        values["batch"] = 1
    full = {k: values.get(k, spec.default) for k, spec in CONFIG_FIELDS.items()}
    if isinstance(full["hidden_size"], tuple):     # one size per layer: the list's length is the stack's
        if "num_layers" not in values:
            full["num_layers"] = len(full["hidden_size"])
        if len(set(full["hidden_size"])) == 1 and len(full["hidden_size"]) == full["num_layers"]:
            full["hidden_size"] = full["hidden_size"][0]    # one spelling: the same size everywhere is an int
    cross_check(full, line_of, **loc)
    config = Config(**full)
    check_cost(config, line=line_of(None), **loc)
    return config


def config_of(raw: dict, **loc) -> Config:
    """The :class:`Config` of a case's fields as YAML gives them (lists, numbers, strings), every one
    checked as a case file's would be; raises :class:`SpecError` naming the field."""
    for key in ("input_size", "hidden_size"):
        if key not in raw:
            raise SpecError(f"'{key}' is required", field=key, **loc)
    for key in raw:
        if key not in CONFIG_FIELDS:
            raise unknown_field(key, CONFIG_FIELDS, **loc)
    return complete_config({k: check_value(k, v, **loc) for k, v in raw.items()}, **loc)


DIVERGENCE_FIELDS = ("id", "impl", "check", "reason", "link", "when", "cases", "devices", "versions", "modes",
                     "intermittent", "crash")
MODES = ("eager", "shape-only")      # how a run was made: computed, or the framework's shape inference alone
CASE_KEYS = ("id", "description", "matrix", "max_cases", "claims", "tolerance") + tuple(CONFIG_FIELDS)
TOLERANCE_KEYS = ("atol", "rtol")
FILE_KEYS = (MARKER, "description", "defaults", "cases", "divergences")


def parse_divergence(raw: Any, file: str | Path, **loc) -> Divergence:
    loc = {"file": file, **loc}
    if not isinstance(raw, dict):
        raise SpecError("a divergence must be a mapping", field="divergences", **loc)
    did = raw.get("id")
    dloc = dict(loc, case=loc.get("case") or (f"divergence {did}" if isinstance(did, str) else None))
    for key in raw:
        if key not in DIVERGENCE_FIELDS:
            raise unknown_field(key, DIVERGENCE_FIELDS, line=raw.line_of(key), **dloc)
    did = require_str(raw, "id", "a divergence", limit=MAX_ID_CHARS, **dloc)
    impl = str_or_list(raw.get("impl"), "impl", line=raw.line_of("impl"), **dloc)
    check = require_str(raw, "check", "a divergence", **dloc)
    if check not in CHECKS:
        raise SpecError(f"unknown check {check!r}; allowed: {', '.join(CHECKS)}", field="check",
                        line=raw.line_of("check"), **dloc)
    reason = require_str(raw, "reason", "a divergence", **dloc)
    link = optional_text(raw, "link", **dloc)
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise SpecError("expected a mapping of config field to value(s)", field="when",
                        line=raw.line_of("when"), **dloc)
    conds = []
    for key, val in when.items():
        if key in CONDITIONS:
            vals = val if isinstance(val, list) else [val]
            cond = CONDITIONS[key]
            if not vals or any(type(v) is not cond.type or v not in cond.choices for v in vals):
                raise SpecError(f"expected {cond.describe_allowed()} (or a list of them), got {short(val)}",
                                field=f"when.{key}", line=when.line_of(key), **dloc)
            conds.append((key, tuple(vals)))
            continue
        if key not in CONFIG_FIELDS:
            raise unknown_field(key, [*CONFIG_FIELDS, *CONDITIONS], line=when.line_of(key), **dloc)
        if not CONFIG_FIELDS[key].axis:
            raise SpecError(f"'{key}' cannot be a `when` condition; scope the declaration with `cases:`",
                            field=f"when.{key}", line=when.line_of(key), **dloc)
        vals = val if isinstance(val, list) else [val]
        if not vals:
            raise SpecError("expected a value or a non-empty list of values", field=f"when.{key}",
                            line=when.line_of(key), **dloc)
        check_count(vals, MAX_LIST_ITEMS, "values", field=f"when.{key}", line=when.line_of(key), **dloc)
        conds.append((key, tuple(check_value(key, v, line=when.line_of(key), **dloc) for v in vals)))
    cases = str_or_list(raw.get("cases", "*"), "cases", line=raw.line_of("cases"), **dloc)
    devices = str_or_list(raw.get("devices", "*"), "devices", line=raw.line_of("devices"), **dloc)
    versions = raw.get("versions", {})
    if not isinstance(versions, dict):
        raise SpecError("expected a mapping of package to version specifier, e.g. {keras: '>=3.12'}",
                        field="versions", line=raw.line_of("versions"), **dloc)
    check_count(versions, MAX_LIST_ITEMS, "packages", field="versions", line=raw.line_of("versions"), **dloc)
    for pkg, spec in versions.items():
        check_length(pkg, MAX_TEXT_CHARS, "a package name", field="versions", line=versions.line_of(pkg), **dloc)
        try:
            if not isinstance(spec, str) or len(spec) > MAX_TEXT_CHARS:
                raise InvalidSpecifier(spec)
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise SpecError(f"{short(spec)} is not a version specifier (e.g. '>=3.12', '<2.14')",
                            field=f"versions.{pkg}", line=versions.line_of(pkg), **dloc) from None
    modes = str_or_list(raw.get("modes", list(MODES)), "modes", line=raw.line_of("modes"), **dloc)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SpecError(f"{short(bad[0])} is not a mode; allowed: {', '.join(MODES)}", field="modes",
                        line=raw.line_of("modes"), **dloc)
    flags = {}
    for key in ("intermittent", "crash"):
        flags[key] = raw.get(key, False)
        if not isinstance(flags[key], bool):
            raise SpecError(f"expected true or false, got {short(flags[key])}", field=key, line=raw.line_of(key),
                            **dloc)
    if flags["crash"] and check != "accepts":
        raise SpecError(f"crash: true declares that the framework's process dies running the call, which the "
                        f"accepts check is about; this declaration's check is {check!r}", field="crash",
                        line=raw.line_of("crash"), **dloc)
    return Divergence(id=did, impl=impl, check=check, reason=reason, link=link, when=tuple(conds),
                      cases=cases, devices=devices, versions=tuple((str(k), str(v)) for k, v in versions.items()),
                      modes=tuple(dict.fromkeys(modes)), file=str(file), line=raw.line, **flags)


def _parse_tolerance(raw: _LineDict, **loc) -> dict:
    tol = raw.get("tolerance")
    if tol is None:
        return {}
    line = raw.line_of("tolerance")
    if not isinstance(tol, dict) or not tol:
        raise SpecError("expected a mapping with atol and/or rtol", field="tolerance", line=line, **loc)
    for key, value in tol.items():
        if key not in TOLERANCE_KEYS:
            raise unknown_field(f"tolerance.{key}", [f"tolerance.{k}" for k in TOLERANCE_KEYS], line=line, **loc)
        number = as_number(value)
        if number is None or not math.isfinite(number) or number < 0:
            raise SpecError(f"expected a finite number >= 0, got {short(value)}", field=f"tolerance.{key}",
                            line=line, **loc)
        tol[key] = number
    return dict(tol)


def _expand(raw: _LineDict, defaults: dict, default_lines: dict, path: Path, room: int = MAX_FILE_CASES
            ) -> list[Case]:
    """One case entry's cases (several with a matrix); ``room``: how many more the file may make."""
    loc = {"file": path}
    cid = raw.get("id")
    if not isinstance(cid, str) or not cid:
        got = f"; got {short(cid)} ({kind_of(cid)})" if "id" in raw else ""
        raise SpecError(f"every case needs an 'id' (a non-empty string){got}", field="id",
                        line=raw.line_of("id"), **loc)
    loc["case"] = cid
    check_length(cid, MAX_ID_CHARS, "the id" + (" template" if "{" in cid else ""), field="id",
                  line=raw.line_of("id"), **loc)
    for key in raw:
        if key not in CASE_KEYS:
            raise unknown_field(key, CASE_KEYS, line=raw.line_of(key), **loc)
    description = optional_text(raw, "description", **loc)

    base = dict(defaults)
    lines = dict(default_lines)
    for key in CONFIG_FIELDS:
        if key in raw:
            base[key] = check_value(key, raw[key], line=raw.line_of(key), **loc)
            lines[key] = raw.line_of(key)

    axes, template = axes_of(raw, cid, room, **loc)

    claims = raw.get("claims", [])
    if not isinstance(claims, list):
        raise SpecError("claims must be a list", field="claims", line=raw.line_of("claims"), **loc)
    check_count(claims, MAX_CLAIMS, "claims", field="claims", line=raw.line_of("claims"), **loc)
    parsed_claims = tuple(parse_claim(c, **loc) for c in claims)
    tolerance = _parse_tolerance(raw, **loc)

    out = []
    for case_id, values, vlines, matrix_values in combinations(raw, cid, axes, template, base, lines, **loc):
        cloc = dict(loc, case=case_id)
        for key in ("input_size", "hidden_size"):
            if key not in values:
                raise SpecError(f"'{key}' is required (set it in the case, its matrix or the file's defaults)",
                                field=key, line=raw.line, **cloc)
        config = complete_config(values, lambda k: vlines.get(k, raw.line), **cloc)
        for claim in parsed_claims:
            for key in ("same_calls", "different_calls"):
                pairs = getattr(claim, key) or ()
                if any(k > config.calls for pair in pairs for k in pair):
                    raise SpecError(f"{key} names call {max(k for pair in pairs for k in pair)}, but the case makes "
                                    f"{config.calls} call(s) (set calls)", field=f"claims.{key}", line=claim.line,
                                    **cloc)
        out.append(Case(id=case_id, config=config, file=str(path), line=raw.line,
                        description=description, claims=parsed_claims, tolerance=tolerance,
                        matrix=matrix_values))
    return out


def load_file(path: str | Path) -> CaseFile:
    """Load and validate one case file; raises :class:`SpecError` on the first problem, and nothing else."""
    path = Path(path)
    try:
        return _load_file(path)
    except RecursionError:   # the depth limits should make this unreachable; a located error regardless
        raise SpecError("the file is nested too deeply to check", file=path) from None


def _load_file(path: Path) -> CaseFile:
    data = read_yaml(path)
    loc = {"file": path}
    if data is None:     # empty, or only comments
        raise SpecError("the file holds no cases and no divergences", line=1, **loc)
    if not isinstance(data, dict):
        raise SpecError("a case file must be a mapping with 'cases:' and/or 'divergences:'", line=1, **loc)
    for key in data:
        if key not in FILE_KEYS:
            raise unknown_field(key, FILE_KEYS, line=data.line_of(key), **loc)
    if MARKER in data and (type(data[MARKER]) is not int or data[MARKER] != LANGUAGE_VERSION):
        raise SpecError(f"this version reads case language {LANGUAGE_VERSION}; the file says {short(data[MARKER])}",
                        field=MARKER, line=data.line_of(MARKER), **loc)
    description = optional_text(data, "description", **loc)

    defaults_raw = data.get("defaults")
    if defaults_raw is None:
        defaults_raw = _LineDict()
        defaults_raw.line, defaults_raw.key_lines = 1, {}
    if not isinstance(defaults_raw, dict):
        raise SpecError("defaults must be a mapping of config fields", field="defaults",
                        line=data.line_of("defaults"), **loc)
    defaults = {}
    for key, value in defaults_raw.items():
        if key not in CONFIG_FIELDS:
            raise unknown_field(f"defaults.{key}", [f"defaults.{k}" for k in CONFIG_FIELDS],
                           line=defaults_raw.line_of(key), **loc)
        defaults[key] = check_value(key, value, line=defaults_raw.line_of(key), **loc)
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
        for case in _expand(raw, defaults, default_lines, path, room=MAX_FILE_CASES - len(cases)):
            if case.id in seen:
                raise SpecError(f"duplicate case id (first defined at line {seen[case.id]})", field="id",
                                line=case.line, case=case.id, **loc)
            seen[case.id] = case.line
            cases.append(case)

    raw_divs = data.get("divergences", [])
    if not isinstance(raw_divs, list):
        raise SpecError("'divergences' must be a list", field="divergences",
                        line=data.line_of("divergences"), **loc)
    divergences = []
    seen_divs: dict[str, Divergence] = {}
    for raw in raw_divs:
        if not isinstance(raw, dict):
            raise SpecError("a divergence must be a mapping", field="divergences",
                            line=data.line_of("divergences"), **loc)
        div = parse_divergence(raw, path)
        if div.id in seen_divs:
            raise SpecError(f"duplicate divergence id (first defined at line {seen_divs[div.id].line})", field="id",
                            line=div.line, case=f"divergence {div.id}", **loc)
        seen_divs[div.id] = div
        divergences.append(div)
    if not cases and not divergences:
        raise SpecError("the file holds no cases and no divergences", line=1, **loc)
    return CaseFile(path=str(path), cases=cases, divergences=divergences, description=description)


def check_unique_ids(files: list[CaseFile]) -> None:
    """Refuse a case id defined in two of ``files`` (the files of one run): the error names the
    second definition's file and line, and the first's in its message."""
    first: dict[str, Case] = {}
    for case_file in files:
        for case in case_file.cases:
            if case.id in first:
                raise SpecError(f"duplicate case id: first defined at {first[case.id].location}",
                                file=case.file, line=case.line, case=case.id, field="id")
            first[case.id] = case
