"""The HTML comparison report: one self-contained page built from one or more ``results.json``.

Reads results files only, so a report can be built from any machine's runs, and several results
(a laptop, a GPU box, two framework versions) merge into one page: :func:`build` lays every run
into a matrix of case rows and ``impl@device`` columns (``impl@device@version`` when results are
merged; the same case on two versions or devices then sits side by side).

What is rendered where: the page is a Jinja2 template (autoescaped) holding everything whose size
does not grow with the number of runs (environment, counts per verdict, the divergence
catalogue, parameter-count charts as inline SVG, a diff section). The data that does grow (the
matrix, case details, parameter tables, claims) is embedded once, gzip-compressed, and rendered
on demand by a small script that only ever sets text (``textContent``), one page of rows at a
time, so a 20,000-run report stays small and quick to open (README, "Reports"). No network is
needed to view it.
"""

from __future__ import annotations

import base64
import gzip
import math
import re
import shlex
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path

import jinja2

from .checks import FAILING, KNOWN, VERDICTS
from .diff import ID_LIMIT, Diff, compare, summary_line
from .results import dumps, load, write_atomic
from .fields import SHAPE_CHECKS, freeze
from .text import terminal_text

_env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                          lstrip_blocks=True)
_env.filters["safe_url"] = lambda u: u if isinstance(u, str) and u.startswith(("https://", "http://")) else ""


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``0 runs`` (``words`` when the plural is not ``word + "s"``)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


_env.filters["plural"] = plural

# Configuration fields that decide the parameter count (the rest only change the input).
PARAM_FIELDS = ("input_size", "hidden_size", "num_layers", "bidirectional", "merge_mode", "proj_size", "bias")
_DETAIL_DROP = ("case", "file", "line", "impl", "device", "verdict", "config", "reference")


def text_summary(runs: list[dict]) -> list[str]:
    """The terminal summary of ``runs``: verdicts per column, claims, known divergences; text from the
    results (columns, divergence ids) passes through :func:`terminal_text`."""
    by_col: dict[str, Counter] = defaultdict(Counter)
    for r in runs:
        by_col[f"{r['impl']}@{r['device']}"][r["verdict"]] += 1
    if not by_col:
        return ["no runs"]
    used = [v for v in VERDICTS if any(c[v] for c in by_col.values())]
    width = max(len(k) for k in by_col)
    lines = [" " * width + "  " + "  ".join(f"{v:>16}" for v in used)]
    for col in sorted(by_col):
        lines.append(f"{col:<{width}}  " + "  ".join(f"{by_col[col][v]:>16}" for v in used))
    claims = [c for r in runs for c in r.get("checks", {}).get("claims", {}).get("details", {}).get("claims", [])]
    if claims:
        false = sum(not c["true"] for c in claims)
        lines.append(f"claims from documents: {len(claims)} checked, {len(claims) - false} true, {false} false")
    known = Counter(chk["divergence"]["id"] for r in runs for chk in r.get("checks", {}).values()
                    if chk["verdict"] == KNOWN and chk.get("divergence"))
    if known:
        lines.append("known divergences: " + ", ".join(f"{terminal_text(k, ID_LIMIT)} ({n} runs)"
                                                      for k, n in sorted(known.items())))
    return [terminal_text(line) for line in lines]


# ---- merging: columns ----

def _primary_version(impl: str, versions: dict) -> str:
    """The version of the framework an impl is named after (torch, keras, flax), else the first one."""
    for k, v in versions.items():
        if k in impl.split("-"):
            return str(v)
    return str(next(iter(versions.values()), "?"))


def _source_label(path: str, doc: dict, index: int) -> str:
    machine = doc.get("environment", {}).get("machine")
    return f"{machine or Path(path).parent.name or 'results'}#{index + 1}"


def columns(sources: list[tuple[str, dict]]) -> dict[tuple[int, str, str], str]:
    """Column key of every (source index, impl, device): ``impl@device``, plus ``@version`` when
    several results are merged (the versions that differ between them, else the impl's own), plus
    the source when that still does not tell two apart."""
    merged = len(sources) > 1
    members: dict[str, dict[int, dict]] = defaultdict(dict)     # impl@device -> source -> versions
    for si, (_, doc) in enumerate(sources):
        for r in doc["runs"]:
            members[f"{r['impl']}@{r['device']}"].setdefault(si, {str(k): str(v) for k, v in
                                                                 (r.get("versions") or {}).items()})
    keys: dict[tuple[int, str, str], str] = {}
    for base, by_source in members.items():
        impl, device = base.split("@", 1)
        differing = sorted({k for v in by_source.values() for k in v
                            if len({w.get(k) for w in by_source.values()}) > 1})
        labels = {}
        for si, v in by_source.items():
            label = base
            if merged:
                tag = "+".join(f"{k}-{v.get(k, 'none')}" if len(differing) > 1 else v.get(k, "none")
                               for k in differing) if differing else _primary_version(impl, v) if v else ""
                label = f"{base}@{tag}" if tag else base
            labels[si] = label
        for si, label in labels.items():
            if list(labels.values()).count(label) > 1:
                label = f"{label}@{_source_label(sources[si][0], sources[si][1], si)}"
            keys[(si, impl, device)] = label
    return keys


# ---- the page model ----

def _claims(run: dict) -> list[dict]:
    return run.get("checks", {}).get("claims", {}).get("details", {}).get("claims", [])


def _param_rows(cases: list[dict], runs: list[list], cols: list[dict]) -> tuple[list[dict], dict]:
    """One row per parameter-relevant configuration: every column's native count next to the canonical."""
    rows: dict[tuple, dict] = {}
    formulas: dict[str, dict] = {}
    for ci, col, verdict, _checks, detail, *_ in runs:
        cfg = cases[ci]["config"]
        key = tuple(freeze(cfg.get(f)) for f in PARAM_FIELDS)     # (hidden_size may be a list, one per layer)
        row = rows.setdefault(key, {"config": {f: cfg.get(f) for f in PARAM_FIELDS}, "canonical": cases[ci]["reference"]
                                    .get("param_count"), "counts": {}})
        pc = detail.get("checks", {}).get("param_count")
        if pc:
            d = pc["details"]
            row["counts"][col] = [d["observed"], d["documented"], pc["verdict"]]
            impl = cols[col]["impl"]
            formulas.setdefault(impl, {"impl": impl, "formula": d["formula"], "source": d["formula_source"]})
    return list(rows.values()), formulas


def _charts(param_rows: list[dict], cols: list[dict], limit: int = 4) -> list[dict]:
    """Parameters beyond the canonical count against hidden size, one line per column, for every
    configuration family that ran at three or more hidden sizes (inline SVG). Absolute counts on a
    log scale would hide the point: torch's second bias grows with H while the others stay at 0."""
    families: dict[tuple, list[dict]] = defaultdict(list)
    for row in param_rows:
        if not isinstance(row["config"]["hidden_size"], int):    # sizes per layer: no point on the H axis
            continue
        fam = tuple((k, v) for k, v in row["config"].items() if k != "hidden_size")
        families[fam].append(row)
    charts = []
    for fam, rows in sorted(families.items(), key=lambda kv: -len(kv[1])):
        sizes = sorted({r["config"]["hidden_size"] for r in rows})
        if len(sizes) < 3 or len(charts) >= limit:
            continue
        series: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
        for r in rows:
            for col, (observed, _doc, _v) in r["counts"].items():
                if observed is not None and r["canonical"] is not None:   # a count not recorded has no point
                    series[cols[col]["key"]][r["config"]["hidden_size"]] = (observed, r["canonical"])
        if series:
            charts.append(_svg_chart(dict(fam), sizes, series))
    return charts


def _law(points: list[tuple[int, int]]) -> str:
    """What the excess is as a function of hidden size H: ``0``, ``+4·H``, ``+8·H``, else ``varies``."""
    if all(d == 0 for _, d in points):
        return "0"
    ratios = {d / h for h, d in points if h}
    if len(ratios) == 1 and all(d == 0 for h, d in points if not h):     # k·H is 0 at H = 0
        k = ratios.pop()
        return f"{'+' if k > 0 else '−'}{abs(k):g}·H"
    return "varies with H"


def _svg_chart(family: dict, sizes: list[int], series: dict[str, dict[int, tuple[int, int]]]) -> dict:
    """One chart: native − canonical parameters against hidden size, a line per group of columns
    with the same excess, each labelled with its columns and the law it follows (``+4·H``), so the
    chart says what the table only lists: how the difference grows. The right margin and the height
    grow to hold every label (nothing is cut off)."""
    H, T, B, LINE = 240, 15, 40, 13
    # columns whose excess is the same at every size share one line and one label
    lines_by_points: dict[tuple, list[str]] = defaultdict(list)
    for name, pts in sorted(series.items()):
        lines_by_points[tuple(sorted((h, o - c) for h, (o, c) in pts.items()))].append(name)
    hi = max([1] + [d for pts in lines_by_points for _, d in pts])
    lo = min([0] + [d for pts in lines_by_points for _, d in pts])
    labels = {pts: [f"{_law(list(pts))}:"] + names for pts, names in lines_by_points.items()}
    step = 10 ** max(0, math.floor(math.log10(max(1, hi - lo))))
    ticks = [v for v in range(math.floor(lo / step) * step, hi + step, step) if lo <= v <= hi]
    if len(ticks) > 6:
        ticks = ticks[::math.ceil(len(ticks) / 6)]
    tick_labels = [f"{v:+,}" if v else "0" for v in ticks]
    L = 14 + 7 * max([3] + [len(t) for t in tick_labels])               # room for the longest tick label
    W0 = L + 300
    R = 24 + 7 * max(len(t) for ls in labels.values() for t in ls)      # and for the longest line label
    W = W0 + R
    xs = {h: L + (W0 - L) * (h - sizes[0]) / (sizes[-1] - sizes[0]) for h in sizes}

    def y(v):
        return T + (H - T - B) * (hi - v) / (hi - lo)

    markers = ["circle", "square", "diamond", "triangle", "cross"]
    lines = []
    for i, (pts, names) in enumerate(sorted(lines_by_points.items(), key=lambda kv: kv[1])):
        points = [(xs[h], y(d), h, d) for h, d in pts]
        lines.append({"name": ", ".join(names), "names": names, "labels": labels[pts], "law": _law(list(pts)),
                      "points": points, "marker": markers[i % len(markers)], "index": i, "label_y": points[-1][1]})
    ordered = sorted(lines, key=lambda l: l["label_y"])
    for a, b in zip(ordered, ordered[1:]):      # keep end labels (a line of text per column) apart
        b["label_y"] = max(b["label_y"], a["label_y"] + LINE * len(a["labels"]))
    for later, line in zip(ordered[::-1], ordered[-2::-1]):   # then up from the bottom, where there is room
        later["label_y"] = min(later["label_y"], H - 8 - LINE * (len(later["labels"]) - 1))
        line["label_y"] = min(line["label_y"], later["label_y"] - LINE * len(line["labels"]))
    if ordered:
        ordered[0]["label_y"] = max(ordered[0]["label_y"], T + 4)
        for a, b in zip(ordered, ordered[1:]):  # and down again where there is not: the chart grows
            b["label_y"] = max(b["label_y"], a["label_y"] + LINE * len(a["labels"]))
    height = max(H, int(max((l["label_y"] + LINE * len(l["labels"]) for l in lines), default=0)) + 8)
    xticks = []
    for h in reversed(sizes):                   # label the largest sizes; skip labels that would touch
        if not xticks or xticks[-1][0] - xs[h] >= 8 * (len(str(h)) + len(str(xticks[-1][1]))) / 2 + 4:
            xticks.append((xs[h], h))
    return {"title": ", ".join(f"{k}={v}" for k, v in family.items()), "width": W, "height": height,
            "left": L, "right": W0, "top": T, "bottom": H - B, "x": xticks,
            "y": [(y(v), label) for v, label in zip(ticks, tick_labels)], "lines": lines}


# ---- what each run returned, and why a check did not agree: short text for the matrix ----

_PATH_TOKEN = re.compile(r"\[(\d+)\]|\.?([A-Za-z_][A-Za-z0-9_]*)")
_NOTE_LIMIT = 240


def _dims(shape) -> str:
    return "×".join(str(d) for d in shape) if shape else "scalar"


def _path_keys(path: str) -> list:
    keys, pos = [], 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m:                                   # a path this function does not know: one key, as it is
            return [path]
        keys.append(int(m.group(1)) if m.group(1) is not None else m.group(2))
        pos = m.end()
    return keys


def native_structure(returns: list[dict]) -> str:
    """A run's native return structure in one line, with shapes, built from the paths of the
    record's ``native.returns`` (``[1][0]``, ``[0].data``, ``""`` for a bare tensor): torch
    ``out 2×5×4, (h 1×2×4, c 1×2×4)``, Keras ``out 2×5×4, h 2×4, c 2×4``, Flax linen
    ``(c 2×4, h 2×4), out 2×5×4``. The states of lower layers that a stack returns beside the top
    layer's (``top: false``) are counted after it."""
    root: dict = {}
    bare = []
    lower = 0
    for r in returns:
        if r.get("top") is False:
            lower += 1
            continue
        leaf = f"{'out' if r.get('role') == 'output' else r.get('role')} {_dims(r.get('shape'))}"
        keys = _path_keys(str(r.get("path") or ""))
        if not keys:
            bare.append(leaf)
            continue
        node = root
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):          # a leaf and a branch at one path: list them flat
                return ", ".join(f"{x.get('path')} {x.get('role')} {_dims(x.get('shape'))}" for x in returns)
        node[keys[-1]] = leaf

    def render(node, top=False) -> str:
        if not isinstance(node, dict):
            return node
        parts = []
        for k in sorted(node, key=lambda k: (isinstance(k, str), str(k) if isinstance(k, str) else k)):
            text = render(node[k])
            parts.append(text if isinstance(k, int) or text.startswith(k) else f"{k}: {text}")
        return ", ".join(parts) if top else f"({', '.join(parts)})"

    line = ", ".join(bare + ([render(root, top=True)] if root else []))
    return line + (f" + {plural(lower, 'lower-layer state')}" if lower else "")


def _check_note(name: str, chk: dict) -> str:
    """Why a check did not agree, in a few words (the case's detail has everything)."""
    d = chk.get("details") or {}
    try:
        if chk.get("verdict") == "stale":
            note = "declared to differ, but it no longer does"
        elif name in ("output_shape", "state_shapes"):
            note = f"observed {d.get('observed')}, expected {d.get('expected')}"
        elif name == "state_order":
            note = "; ".join(map(str, d.get("problems") or []))
        elif name == "accepts":
            note = f"{d.get('native')} (canonical: {d.get('canonical')})"
        elif name == "dtype":
            note = f"case {d.get('expected')}: " + "; ".join(map(str, d.get("wrong") or []))
        elif name == "param_count":
            note = f"native {d.get('observed')}, canonical {d.get('canonical')}, documented {d.get('documented')}"
        elif name == "values":
            bad = [t for t in d.get("tensors") or [] if not t.get("ok")]
            note = "; ".join(f"{t.get('tensor')}: max abs {t.get('max_abs')}" for t in bad[:3]) or "values differ"
        elif name == "padding":
            note = f"padded steps hold {d.get('behaviour')}"
        elif name == "symbolic":
            note = d.get("error") or "; ".join(map(str, d.get("problems") or [])) or str(d.get("symbolic"))
        elif name == "claims":
            claims = d.get("claims") or []
            false = sum(not c.get("true") for c in claims)
            note = f"{plural(len(claims), 'claim')} checked, {false} false"
        else:
            note = dumps(d, separators=(",", ":"))
    except (AttributeError, TypeError):            # details of a shape this does not know: as they are
        note = dumps(d, separators=(",", ":"))
    return note if len(note) <= _NOTE_LIMIT else note[:_NOTE_LIMIT - 1] + "…"


# ---- the environment, once ----

def _command(doc: dict) -> str:
    """The command the user typed (``environment.command``), else the session's argv as recorded."""
    command = (doc.get("environment") or {}).get("command")
    if isinstance(command, list) and command:
        return shlex.join(str(x) for x in command)
    return " ".join(str(a) for a in doc.get("argv") or [])


def _environment(sources: list[tuple[str, dict]]) -> list[tuple[str, list[str]]]:
    """Rows of the environment table: (name, values), one value per source, or one value when
    every source has the same (a merged report says a shared value once)."""
    docs = [doc for _, doc in sources]
    envs = [doc.get("environment") or {} for doc in docs]
    rows: list[tuple[str, list[str]]] = [
        ("results file", [path for path, _ in sources]),
        ("created", [str(doc.get("created") or "") for doc in docs]),
        ("command", [_command(doc) for doc in docs]),
        ("machine", [" · ".join(str(e[k]) for k in ("machine", "platform") if e.get(k)) for e in envs]),
        ("Python", [f"{e.get('python', '')} · lstm-conformance {e.get('conformance', '')}" for e in envs]),
    ]
    shards = [doc.get("shard") for doc in docs]
    if any(isinstance(s, dict) for s in shards):
        rows.append(("shard", [f"{s.get('index')} of {s.get('count')}" if isinstance(s, dict) else "" for s in shards]))
    for impl in sorted({k for e in envs for k in (e.get("versions") or {})}):
        rows.append((impl, [" · ".join(f"{k} {v}" for k, v in ((e.get("versions") or {}).get(impl) or {}).items())
                            for e in envs]))
    for dev in sorted({k for e in envs for k in (e.get("devices") or {})}):
        rows.append((dev, [str((e.get("devices") or {}).get(dev, "")) for e in envs]))
    if any(e.get("fault_injection") for e in envs):
        rows.append(("fault injection", [str(e.get("fault_injection") or "") for e in envs]))
    if any(doc.get("partial") for doc in docs):
        rows.append(("partial", [(doc.get("partial") or {}).get("reason", "") for doc in docs]))
    return [(name, values[:1] if len(set(values)) == 1 else values) for name, values in rows if any(values)]


def _shards(sources: list[tuple[str, dict]]) -> list[dict]:
    """What a combined document says of its shards (``shards``: count, arrived, missing, complete)."""
    out = []
    for path, doc in sources:
        s = doc.get("shards")
        if not isinstance(s, dict):
            continue
        count = s.get("count") or 0
        missing = list(s.get("missing") or [])
        arrived = s.get("arrived")
        n_arrived = len(arrived) if isinstance(arrived, list) else max(0, count - len(missing))
        complete = bool(s.get("complete", not missing))
        text = (f"All {plural(count, 'shard')} arrived." if complete and not missing else
                f"{n_arrived} of {plural(count, 'shard')} arrived; missing: "
                + ", ".join(f"{m}/{count}" for m in missing) + ".")
        out.append({"source": path, "text": text, "complete": complete and not missing})
    return out


def _catalogue(sources: list[tuple[str, dict]], runs_by_source: list[list[dict]], keys: dict) -> list[dict]:
    """Every declared divergence: how many runs it explains, on which columns, and where it went stale."""
    out: dict[str, dict] = {}
    for si, runs in enumerate(runs_by_source):
        for r in runs:
            for name, chk in r.get("checks", {}).items():
                d = chk.get("divergence")
                if not d:
                    continue
                e = out.setdefault(d["id"], {"decl": d, "explained": 0, "stale": 0, "columns": Counter()})
                col = keys[(si, r["impl"], r["device"])]
                if chk["verdict"] == KNOWN:
                    e["explained"] += 1
                    e["columns"][col] += 1
                elif chk["verdict"] == "stale":
                    e["stale"] += 1
                    e["columns"][col + " (stale)"] += 1
        for d in sources[si][1].get("unused_divergences", []):
            out.setdefault(d["id"], {"decl": d, "explained": 0, "stale": 0, "columns": Counter(), "unused": True})
    return sorted(out.values(), key=lambda e: (-e["stale"], e["decl"]["id"]))


def build(sources: list[tuple[str, dict]], changes: Diff | None = None) -> dict:
    """The template context for ``sources`` (``[(path, results document), ...]``), with a "what
    changed" section when ``changes`` (a :class:`conformance.diff.Diff`) is given."""
    keys = columns(sources)
    col_index: dict[str, int] = {}
    cols: list[dict] = []
    for (si, impl, device), key in sorted(keys.items(), key=lambda kv: kv[1]):
        col_index[key] = len(cols)
        env = sources[si][1].get("environment", {})
        cols.append({"key": key, "impl": impl, "device": device, "source": si,
                     "device_name": env.get("devices", {}).get(f"{impl}@{device}", device),
                     "versions": env.get("versions", {}).get(impl, {})})
    files: list[str] = []
    cases: list[dict] = []
    case_index: dict[tuple[str, str], int] = {}
    runs: list[list] = []
    counts: dict[str, Counter] = {c["key"]: Counter() for c in cols}
    claims = []
    texts: list[str] = []                    # every note, reason and structure line once; runs hold indexes
    text_index: dict[str, int] = {}
    decls: list[dict] = []
    decl_index: dict[str, int] = {}

    def intern(text) -> int:
        if not text:
            return -1
        if text not in text_index:
            text_index[text] = len(texts)
            texts.append(text)
        return text_index[text]

    def marks(r: dict) -> dict:
        """{check: [declaration index or -1, note index or -1]} for every check that did not agree."""
        out = {}
        for name, chk in (r.get("checks") or {}).items():
            if chk.get("verdict") == "agree":
                continue
            d = chk.get("divergence")
            di = -1
            if isinstance(d, dict) and d.get("id"):
                if d["id"] not in decl_index:
                    decl_index[d["id"]] = len(decls)
                    decls.append({"id": d["id"], "check": d.get("check"), "reason": d.get("reason"),
                                  "link": d.get("link")})
                di = decl_index[d["id"]]
            note = None if chk.get("verdict") == KNOWN and di >= 0 else _check_note(name, chk)
            out[name] = [di, intern(note)]
        return out

    for si, (_, doc) in enumerate(sources):
        for r in doc["runs"]:
            ck = (r["file"], r["case"])
            if ck not in case_index:
                if r["file"] not in files:
                    files.append(r["file"])
                case_index[ck] = len(cases)
                cases.append({"file": files.index(r["file"]), "id": r["case"], "line": r.get("line"),
                              "config": r.get("config") or {}, "reference": r.get("reference") or {}})
            key = keys[(si, r["impl"], r["device"])]
            counts[key][r["verdict"]] += 1
            detail = {k: v for k, v in r.items() if k not in _DETAIL_DROP}
            if detail.get("traceback"):
                detail["traceback"] = detail["traceback"][-4000:]
            checks = {name: chk["verdict"] for name, chk in r.get("checks", {}).items()}
            native = r.get("native") or {}
            reason = r.get("reason")
            reason = reason if not isinstance(reason, str) or len(reason) <= _NOTE_LIMIT else reason[:_NOTE_LIMIT - 1] + "…"
            runs.append([case_index[ck], col_index[key], r["verdict"], checks, detail, marks(r), intern(reason),
                         intern(native_structure(native["returns"])) if native.get("returns") else -1,
                         native.get("param_count")])
            for c in _claims(r):
                claims.append([case_index[ck], col_index[key], c.get("source"), c.get("says"), c.get("claimed"),
                               c.get("real"), c.get("true"), c.get("verdict")])
    claims.sort(key=lambda c: (bool(c[6]), c[0], c[1]))      # claims found false first
    padding: dict[str, Counter] = defaultdict(Counter)       # column -> what it puts at padded steps
    for _ci, col, _v, _chk, detail, *_ in runs:
        pad = detail.get("checks", {}).get("padding")
        if pad and "behaviour" in pad.get("details", {}):
            padding[cols[col]["key"]][(pad["details"]["behaviour"], pad["verdict"])] += 1
    param_rows, formulas = _param_rows(cases, runs, cols)
    check_names = sorted({n for run in runs for n in run[3]})
    data = {"cols": cols, "files": files, "cases": cases, "checks": check_names, "verdicts": list(VERDICTS),
            "failing": list(FAILING), "claims": claims,
            "params": [{"config": r["config"], "canonical": r["canonical"], "counts": r["counts"]} for r in param_rows],
            # details stay JSON strings until a case is opened: parsing them all up front is most of the cost
            # (strict JSON, as results.dumps writes it: the page's JSON.parse takes no NaN or Infinity)
            "decls": decls, "texts": texts,
            # [case, column, verdict, {check: verdict}, details (JSON), {check: [declaration, note]} of the
            #  checks that did not agree, reason, native structure (indexes into texts), native count]
            "runs": [[ci, col, v, chk, dumps(detail, separators=(",", ":")), *rest]
                     for ci, col, v, chk, detail, *rest in runs]}
    partial = [(path, doc["partial"]) for path, doc in sources if doc.get("partial")]
    shape_only = sum(1 for _, doc in sources for r in doc.get("runs") or [] if r.get("mode") == "shape-only")
    collection_errors = [{"source": path, **e} for path, doc in sources for e in doc.get("collection_errors") or []]
    ctx = {
        "collection_errors": collection_errors,
        "sources": [{"path": path, "created": doc.get("created"), "command": _command(doc),
                     "environment": doc.get("environment", {}), "label": _source_label(path, doc, i),
                     "partial": doc.get("partial")} for i, (path, doc) in enumerate(sources)],
        "environment": _environment(sources),
        "shards": _shards(sources),
        "merged": len(sources) > 1,
        "partial": partial,
        "shape_only": shape_only, "shape_checks": SHAPE_CHECKS,
        "cols": cols,
        # agree is always a column when a declaration can be muted (its runs then count as agree)
        "verdicts": [v for v in VERDICTS if any(c[v] for c in counts.values()) or (v == "agree" and decls)],
        "decls": decls,
        "counts": counts,
        "n_runs": len(runs), "n_cases": len(cases),
        "catalogue": _catalogue(sources, [doc["runs"] for _, doc in sources], keys),
        "formulas": sorted(formulas.values(), key=lambda f: f["impl"]),
        "charts": _charts(param_rows, cols),
        "param_rows": param_rows,
        "padding": sorted(padding.items()),
        "claims_total": len(claims), "claims_false": sum(not c[6] for c in claims),
        "data": base64.b64encode(gzip.compress(dumps(data, separators=(",", ":")).encode(), 6, mtime=0))
        .decode("ascii"),
        "script": resources.files("conformance").joinpath("templates/report.js").read_text(encoding="utf-8"),
        "style": resources.files("conformance").joinpath("templates/report.css").read_text(encoding="utf-8"),
        "diff_ctx": None if changes is None else {"diff": changes, "summary": summary_line(changes)},
    }
    return ctx


def render(sources: list[tuple[str, dict]], changes: Diff | None = None) -> str:
    return _env.get_template("report.html.j2").render(**build(sources, changes))


def combined(sources: list[tuple[str, dict]]) -> dict:
    """One results document holding every source's runs (what a baseline is compared with)."""
    return {**sources[-1][1], "runs": [r for _, doc in sources for r in doc["runs"]]}


def load_sources(results_paths) -> list[tuple[str, dict]]:
    """(label, document) per results file (or as given, for pairs already loaded), with the shards
    of one session put back together (:func:`conformance.shards.combine`)."""
    from .results import ResultsError
    from .shards import ShardError, combine
    loaded = [p if isinstance(p, tuple) else (str(p), load(p)) for p in results_paths]
    try:
        return combine(loaded)
    except ShardError as exc:
        raise ResultsError(str(exc)) from None


def write_report(results_paths: list[str | Path], out: str | Path, baseline: str | Path | None = None,
                 changes: Diff | None = None) -> Path:
    """Render the results files into the HTML page ``out`` (written atomically), with a "what
    changed" section against the results file ``baseline``, or the precomputed ``changes``."""
    sources = load_sources(results_paths)
    if baseline is not None:
        changes = compare(load(baseline), combined(sources), old_label=str(baseline),
                          new_label=" + ".join(p for p, _ in sources))
    out = Path(out)
    write_atomic(out, render(sources, changes))
    return out
