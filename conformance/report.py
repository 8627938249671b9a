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
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path

import jinja2

from .checks import FAILING, KNOWN, VERDICTS
from .diff import ID_LIMIT, Diff, compare, summary_line
from .results import dumps, load, write_atomic
from .text import terminal_text

_env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                          lstrip_blocks=True)
_env.filters["safe_url"] = lambda u: u if isinstance(u, str) and u.startswith(("https://", "http://")) else ""

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
    for ci, col, verdict, _checks, detail in runs:
        cfg = cases[ci]["config"]
        key = tuple(cfg.get(f) for f in PARAM_FIELDS)
        row = rows.setdefault(key, {"config": dict(zip(PARAM_FIELDS, key)), "canonical": cases[ci]["reference"]
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


def _svg_chart(family: dict, sizes: list[int], series: dict[str, dict[int, tuple[int, int]]]) -> dict:
    W, H, L, R, T, B = 600, 240, 60, 200, 15, 40
    # columns whose excess is the same at every size share one line and one label
    lines_by_points: dict[tuple, list[str]] = defaultdict(list)
    for name, pts in sorted(series.items()):
        lines_by_points[tuple(sorted((h, o - c) for h, (o, c) in pts.items()))].append(name)
    hi = max([1] + [d for pts in lines_by_points for _, d in pts])
    lo = min([0] + [d for pts in lines_by_points for _, d in pts])
    xs = {h: L + (W - L - R) * (h - sizes[0]) / (sizes[-1] - sizes[0]) for h in sizes}

    def y(v):
        return T + (H - T - B) * (hi - v) / (hi - lo)

    markers = ["circle", "square", "diamond", "triangle", "cross"]
    lines = []
    for i, (pts, names) in enumerate(sorted(lines_by_points.items(), key=lambda kv: kv[1])):
        points = [(xs[h], y(d), h, d) for h, d in pts]
        lines.append({"name": ", ".join(names), "names": names, "points": points, "marker": markers[i % len(markers)],
                      "index": i, "label_y": points[-1][1]})
    ordered = sorted(lines, key=lambda l: l["label_y"])
    for a, b in zip(ordered, ordered[1:]):      # keep end labels (a line of text per column) apart
        b["label_y"] = max(b["label_y"], a["label_y"] + 13 * len(a["names"]))
    step = 10 ** max(0, math.floor(math.log10(max(1, hi - lo))))
    ticks = [v for v in range(math.floor(lo / step) * step, hi + step, step) if lo <= v <= hi]
    if len(ticks) > 6:
        ticks = ticks[::math.ceil(len(ticks) / 6)]
    xticks = []
    for h in reversed(sizes):                   # label the largest sizes; skip labels that would touch
        if not xticks or xticks[-1][0] - xs[h] >= 8 * (len(str(h)) + len(str(xticks[-1][1]))) / 2 + 4:
            xticks.append((xs[h], h))
    return {"title": ", ".join(f"{k}={v}" for k, v in family.items()), "width": W, "height": H,
            "left": L, "right": W - R, "top": T, "bottom": H - B, "x": xticks,
            "y": [(y(v), f"{v:+,}" if v else "0") for v in ticks], "lines": lines}


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
            runs.append([case_index[ck], col_index[key], r["verdict"], checks, detail])
            for c in _claims(r):
                claims.append([case_index[ck], col_index[key], c.get("source"), c.get("says"), c.get("claimed"),
                               c.get("real"), c.get("true"), c.get("verdict")])
    claims.sort(key=lambda c: (bool(c[6]), c[0], c[1]))      # claims found false first
    padding: dict[str, Counter] = defaultdict(Counter)       # column -> what it puts at padded steps
    for _ci, col, _v, _chk, detail in runs:
        pad = detail.get("checks", {}).get("padding")
        if pad:
            padding[cols[col]["key"]][(pad["details"]["behaviour"], pad["verdict"])] += 1
    param_rows, formulas = _param_rows(cases, runs, cols)
    check_names = sorted({n for run in runs for n in run[3]})
    data = {"cols": cols, "files": files, "cases": cases, "checks": check_names, "verdicts": list(VERDICTS),
            "failing": list(FAILING), "claims": claims,
            "params": [{"config": r["config"], "canonical": r["canonical"], "counts": r["counts"]} for r in param_rows],
            # details stay JSON strings until a case is opened: parsing them all up front is most of the cost
            # (strict JSON, as results.dumps writes it: the page's JSON.parse takes no NaN or Infinity)
            "runs": [[ci, col, v, chk, dumps(detail, separators=(",", ":"))] for ci, col, v, chk, detail in runs]}
    partial = [(path, doc["partial"]) for path, doc in sources if doc.get("partial")]
    collection_errors = [{"source": path, **e} for path, doc in sources for e in doc.get("collection_errors") or []]
    ctx = {
        "collection_errors": collection_errors,
        "sources": [{"path": path, "created": doc.get("created"), "argv": doc.get("argv", []),
                     "environment": doc.get("environment", {}), "label": _source_label(path, doc, i),
                     "partial": doc.get("partial")} for i, (path, doc) in enumerate(sources)],
        "merged": len(sources) > 1,
        "partial": partial,
        "cols": cols,
        "verdicts": [v for v in VERDICTS if any(c[v] for c in counts.values())],
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


def write_report(results_paths: list[str | Path], out: str | Path, baseline: str | Path | None = None,
                 changes: Diff | None = None) -> Path:
    """Render the results files into the HTML page ``out`` (written atomically), with a "what
    changed" section against the results file ``baseline``, or the precomputed ``changes``."""
    sources = [(str(p), load(p)) for p in results_paths]
    if baseline is not None:
        changes = compare(load(baseline), combined(sources), old_label=str(baseline),
                          new_label=" + ".join(p for p, _ in sources))
    out = Path(out)
    write_atomic(out, render(sources, changes))
    return out
