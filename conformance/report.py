"""The plain report: a terminal summary and a self-contained HTML page rendered with Jinja2.

Reads ``results.json`` only, so any results file (from any machine) can be rendered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import jinja2

from .checks import VERDICTS
from .results import load

_env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                          lstrip_blocks=True)


def text_summary(runs: list[dict]) -> list[str]:
    by_col: dict[str, Counter] = defaultdict(Counter)
    for r in runs:
        by_col[f"{r['impl']}@{r['device']}"][r["verdict"]] += 1
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
                    if chk["verdict"] == "known-divergence" and chk.get("divergence"))
    if known:
        lines.append("known divergences: " + ", ".join(f"{k} ({n} runs)" for k, n in sorted(known.items())))
    return lines


def write_report(results_path: str | Path) -> Path:
    results_path = Path(results_path)
    doc = load(results_path)
    runs = doc["runs"]
    cols = sorted({f"{r['impl']}@{r['device']}" for r in runs})
    cases: dict[tuple, dict] = {}
    for r in runs:
        cases.setdefault((r["file"], r["case"]), {})[f"{r['impl']}@{r['device']}"] = r
    claims = [(r, c) for r in runs for c in r.get("checks", {}).get("claims", {}).get("details", {}).get("claims", [])]
    html = _env.get_template("report.html.j2").render(
        doc=doc, cols=cols, cases=cases, claims=claims, summary=text_summary(runs) if runs else [])
    out = results_path.parent / "report.html"
    out.write_text(html, encoding="utf-8")
    return out
