"""Claims: what a document (a blog post, a framework's own test) says an implementation returns for a
case, parsed and validated here; ``checks`` gives each claim its verdict from the run."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, check_count, optional_text, require_str, str_or_list, unknown_field
from .fields import ROLES
from .limits import MAX_CLAIM_DIMS, MAX_CLAIM_INT, MAX_CLAIM_TENSORS

CLAIM_FIELDS = ("source", "impl", "says", "outputs", "roles", "param_count", "holds", "note")


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
    if outputs is None and roles is None and param_count is None:
        raise SpecError("a claim must state at least one of outputs, roles, param_count", field="claims",
                        line=raw.line, **loc)
    if outputs is not None and roles is not None and len(outputs) != len(roles):
        raise SpecError(f"claims.outputs has {len(outputs)} entries but claims.roles has {len(roles)}",
                        field="claims.roles", line=raw.line_of("roles"), **loc)
    holds = raw.get("holds", True)
    if not isinstance(holds, bool):
        raise SpecError("expected true or false", field="claims.holds", line=raw.line_of("holds"), **loc)
    says = optional_text(raw, "says", "claims.says", **loc)
    note = optional_text(raw, "note", "claims.note", **loc)
    return Claim(source=source, impl=impl, says=says, outputs=outputs, roles=roles,
                 param_count=param_count, holds=holds, note=note, line=raw.line)


