"""Keras's ``model.summary()`` table, read back from the text it prints.

Articles quote the summary (``lstm_3 (LSTM)   (None, 3)   168``), so a claim can quote it too and be
checked against the real table: the adapters return the text Keras printed (``Impl.summary``), and this
module parses it, for Keras 3 (rich's box-drawn table, ``┃`` and ``│`` between the columns) and Keras 2
(``tf_keras``: columns at fixed positions under a header, rows between ``=`` and ``_`` rules). A cell
that wraps continues on the next line with the first column blank; the ``InputLayer`` row a functional
model shows is kept (``type`` says what it is) and left out of the rows a claim is compared with.
"""

from __future__ import annotations

import re

_HEADERS = ("Layer (type)", "Output Shape", "Param #", "Connected to")
_TOTALS = {"Total params": "total_params", "Trainable params": "trainable_params",
           "Non-trainable params": "non_trainable_params"}
_BARS = "┃│║|"
_RULE = re.compile(r"^[\s_=\-━─┏┓┗┛┡┩┠┨┳┻╇╈┼├┤└┘┌┐┬┴╋═╞╡╪+]*$")


def _cells_by_bars(line: str) -> list[str]:
    inner = line.strip()
    for bar in _BARS:
        inner = inner.replace(bar, "\x00")
    return [c.strip() for c in inner.strip("\x00").split("\x00")]


def _columns(header: str) -> list[tuple[str, int]]:
    """The header's column names and where each starts (fixed-width tables)."""
    found = [(name, header.find(name)) for name in _HEADERS if name in header]
    return sorted(found, key=lambda c: c[1])


def _cells_by_position(line: str, columns: list[tuple[str, int]]) -> list[str]:
    cells = []
    for k, (_, start) in enumerate(columns):
        end = columns[k + 1][1] if k + 1 < len(columns) else None
        cells.append(line[start:end].strip() if start < len(line) else "")
    return cells


def _count(text: str) -> int | None:
    digits = text.replace(",", "").strip()
    return int(digits) if digits.isdigit() else None


def parse(text: str) -> dict:
    """``{"rows": [{"layer", "type", "output_shape", "params"}], "total_params", "trainable_params",
    "non_trainable_params"}`` from a printed summary (a count it does not print is None). Raises ``ValueError``
    when the text holds no summary table."""
    lines = text.splitlines()
    header_at = next((i for i, line in enumerate(lines) if "Layer (type)" in line and "Output Shape" in line), None)
    if header_at is None:
        raise ValueError("no summary table: no line with the headers 'Layer (type)' and 'Output Shape'")
    header = lines[header_at]
    boxed = any(bar in header for bar in _BARS)
    columns = _columns(header)
    names = [name for name, _ in columns] if not boxed else \
        [c for c in _cells_by_bars(header) if c]
    rows: list[dict] = []
    out = {"rows": rows, **dict.fromkeys(_TOTALS.values())}
    for line in lines[header_at + 1:]:
        stripped = line.strip()
        total = next((key for label, key in _TOTALS.items() if stripped.startswith(label + ":")), None)
        if total:
            out[total] = _count(stripped.split(":", 1)[1].split("(")[0])
            continue
        if not stripped or _RULE.match(stripped):
            continue
        cells = _cells_by_bars(line) if boxed else _cells_by_position(line, columns)
        cells = (cells + [""] * len(names))[:len(names)]
        cell = dict(zip(names, cells))
        first = cell.get("Layer (type)", "")
        if first and re.search(r"\(\w+\)$", first) or not rows:
            rows.append({"layer": first, "output_shape": cell.get("Output Shape", ""),
                         "params": cell.get("Param #", "")})
        else:                                           # a wrapped row: its cells go on under the previous ones
            prev = rows[-1]
            prev["layer"] = (prev["layer"] + " " + first).strip()
            prev["output_shape"] = (prev["output_shape"] + " " + cell.get("Output Shape", "")).strip()
            prev["params"] = (prev["params"] + cell.get("Param #", "")).strip()
    for row in rows:
        m = re.search(r"\((\w+)\)$", row["layer"])
        row["type"] = m.group(1) if m else ""
        row["output_shape"] = re.sub(r"\s+", " ", row["output_shape"]).replace("( ", "(").replace(" )", ")")
        row["params"] = _count(row["params"])
    return out


def shape_text(text: str) -> str:
    """An ``Output Shape`` cell compared without its spacing: ``(None, 3)`` and ``(None,3)`` are the same."""
    return re.sub(r"\s+", "", text or "")


def layer_rows(parsed: dict) -> list[dict]:
    """The rows a claim quotes: every layer but the ``InputLayer`` a functional model lists."""
    return [r for r in parsed["rows"] if r.get("type") != "InputLayer"]
