"""The matrix: a case entry with ``matrix:`` makes one case per combination of its axes' values.

Each axis is a configuration field and a list of values (validated like the field itself); the
number of cases is checked against ``max_cases`` (default ``MAX_MATRIX``) and the room left in the
file before anything is built. Generated ids get ``.field-value`` suffixes, or fill an id template
(``grid-h{hidden_size}``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from typing import Any

from .errors import SpecError, check_length, short, unknown_field
from .fields import CONFIG_FIELDS, ID_RE, check_value
from .limits import MAX_FILE_CASES, MAX_ID_CHARS, MAX_MATRIX


def axes_of(raw, cid: str, room: int, **loc) -> tuple[list[tuple[str, list, int]], bool]:
    """The matrix axes of the case entry ``raw`` as (field, values, line), and whether ``cid`` is an
    id template; raises :class:`SpecError` for a bad axis, a matrix larger than its limits or an id
    that no combination could make valid. ``room``: how many more cases the file may make."""
    max_cases = raw.get("max_cases", MAX_MATRIX)
    if "max_cases" in raw and (isinstance(max_cases, bool) or not isinstance(max_cases, int)
                               or not 1 <= max_cases <= MAX_FILE_CASES):
        raise SpecError(f"expected an integer from 1 to {MAX_FILE_CASES:,} (the most cases this case's matrix "
                        f"may make), got {short(max_cases)}", field="max_cases", line=raw.line_of("max_cases"),
                        **loc)

    matrix = raw.get("matrix")
    if matrix is None:
        matrix = {}
    if not isinstance(matrix, dict):
        raise SpecError("matrix must map config fields to lists of values", field="matrix",
                        line=raw.line_of("matrix"), **loc)
    axes = []
    for key, values in matrix.items():
        mline = matrix.line_of(key)
        if key not in CONFIG_FIELDS:
            raise unknown_field(f"matrix.{key}", [f"matrix.{k}" for k in CONFIG_FIELDS], line=mline, **loc)
        if key in raw:
            raise SpecError(f"'{key}' is set both in the case and in its matrix", field=f"matrix.{key}",
                            line=mline, **loc)
        if not CONFIG_FIELDS[key].axis:
            raise SpecError(f"'{key}' cannot be a matrix axis; set it in the case or the file's defaults",
                            field=f"matrix.{key}", line=mline, **loc)
        if not isinstance(values, list) or not values:
            raise SpecError("expected a non-empty list of values", field=f"matrix.{key}", line=mline, **loc)
        axes.append((key, [check_value(key, v, line=mline, **loc) for v in values], mline))
    count = math.prod(len(vals) for _, vals, _ in axes)    # before expanding anything
    if count > max_cases:
        allow = (f"if that is intended, set 'max_cases: {count}' in the case" if count <= MAX_FILE_CASES
                 else f"a case may make at most {MAX_FILE_CASES:,}; split the matrix")
        limit = "its max_cases" if "max_cases" in raw else "the default limit"
        raise SpecError(f"the matrix would make {count:,} cases, more than {limit} of {max_cases:,}; {allow}",
                        field="matrix", line=raw.line_of("matrix"), **loc)
    if count > room:
        raise SpecError(f"the matrix would make {count:,} cases, which takes the file past {MAX_FILE_CASES:,} "
                        "cases, the limit for one file; split the file", field="matrix",
                        line=raw.line_of("matrix"), **loc)

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

    return axes, template


def fmt(value: Any) -> str:
    """A matrix value as it appears in a generated id."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "_".join(str(v) for v in value)
    if value is None:
        return "null"
    return str(value)


def combinations(raw, cid: str, axes: list, template: bool, base: dict, lines: dict, **loc
                 ) -> Iterator[tuple[str, dict, dict, dict]]:
    """Every combination of ``axes`` over ``base``: (case id, values, line of each value, the matrix
    values that made it); the id is checked here, the values by the caller."""
    for combo in itertools.product(*[[(k, v, ln) for v in vals] for k, vals, ln in axes]):
        values = dict(base)
        vlines = dict(lines)
        for k, v, ln in combo:
            values[k] = v
            vlines[k] = ln
        if template:
            case_id = re.sub(r"{(\w+)}", lambda m: fmt(values[m.group(1)]), cid)
            if not ID_RE.match(case_id):
                raise SpecError(f"the id template makes {short(case_id, 80)}; ids may hold letters, digits "
                                "and _ . + - (and must start with a letter or digit)", field="id",
                                line=raw.line_of("id"), **dict(loc, case=case_id))
        else:
            case_id = ".".join([cid] + [f"{k}-{fmt(v)}" for k, v, _ in combo])
        check_length(case_id, MAX_ID_CHARS, "the id" + (", made by the template," if template else
                                                        ", with the matrix values appended,"),
                     field="id", line=raw.line_of("id"), **dict(loc, case=case_id))
        yield case_id, values, vlines, {k: v for k, v, _ in combo}
