"""How big and how quick is a report of many runs? Builds one and opens it in headless Chromium.

    .venv/bin/python benchmarks/report_scale.py [RESULTS.json] [--runs 20000] [--out reports/bench-report]

Takes a real results.json (default: reports/latest/results.json, from ``conformance run``) and
repeats its runs under new case ids and case files until there are ``--runs`` of them, so every
run carries real native structures, checks and reasons. Then it measures: building the report
(Python), the file size, and in Chromium the time to interactive (navigation start until the
matrix is rendered and filters work: ``<html data-ready="1">``), a text filter over every case,
a verdict filter, paging, and opening a case's details. Prints a table; the README's "Reports"
section quotes it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import CHROMIUM_ARGS, chromium_executable  # noqa: E402

from conformance.report import write_report  # noqa: E402
from conformance.results import load, write  # noqa: E402


def scaled(doc: dict, n: int) -> dict:
    runs = []
    k = 0
    while len(runs) < n:
        for r in doc["runs"]:
            r = copy.deepcopy(r)
            r["case"] = f"{r['case']}.r{k}"
            r["file"] = f"cases/bench{k % 40:02d}.yaml"
            runs.append(r)
            if len(runs) == n:
                break
        k += 1
    return runs


def measure_browser(path: Path, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    exe = chromium_executable()
    if exe is None:
        raise SystemExit("Chromium not found: apt-get install chromium, or set CONFORMANCE_CHROMIUM")
    out: dict[str, list[float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.resolve().as_uri())
            page.wait_for_selector("html[data-ready='1']", timeout=120_000)
            tti = page.evaluate("performance.now()")
            marks = page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))")
            timed = page.evaluate("""() => {
              const t = (f) => { const t0 = performance.now(); f(); return performance.now() - t0; };
              const fire = (id, ev, set) => { const el = document.getElementById(id); set(el);
                                              el.dispatchEvent(new Event(ev)); };
              return {
                text_filter_ms: t(() => fire("f-text", "input", (e) => { e.value = "bidirectional"; })),
                clear_filter_ms: t(() => fire("f-text", "input", (e) => { e.value = ""; })),
                verdict_filter_ms: t(() => fire("f-verdict", "change", (e) => { e.value = "known-divergence"; })),
                next_page_ms: t(() => { [...document.querySelectorAll("#matrix-pager button")]
                                         .find((b) => b.textContent.startsWith("next")).click(); }),
                open_case_ms: t(() => { location.hash = "#case-123"; dispatchEvent(new HashChangeEvent("hashchange")); }),
                dom_nodes: document.getElementsByTagName("*").length,
              };
            }""")
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
            if errors:
                raise SystemExit(f"console errors: {errors}")
            phases = {"decompressed_at_ms": marks["report-decompressed"], "parsed_at_ms": marks["report-parsed"],
                      "ready_at_ms": marks["report-ready"]}
            for k, v in {"time_to_interactive_ms": tti, **phases, **timed, "js_heap_mb": (heap or 0) / 2**20}.items():
                out.setdefault(k, []).append(v)
            page.close()
        browser.close()
    return {k: sorted(v)[len(v) // 2] for k, v in out.items()}   # median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", type=Path, default=REPO / "reports/latest/results.json")
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=REPO / "reports/bench-report")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    doc = load(args.results)
    runs = scaled(doc, args.runs)
    t0 = time.perf_counter()
    results_path = write(args.out, runs, argv=["benchmarks/report_scale.py"])
    t1 = time.perf_counter()
    report = write_report([results_path], args.out / "index.html")
    t2 = time.perf_counter()
    b = measure_browser(report, args.repeats)
    rows = [
        ("runs", f"{len(runs):,} ({len({(r['file'], r['case']) for r in runs}):,} cases)"),
        ("results.json", f"{results_path.stat().st_size / 2**20:.1f} MiB, written in {t1 - t0:.1f} s"),
        ("index.html", f"{report.stat().st_size / 2**20:.2f} MiB, built in {t2 - t1:.1f} s"),
        ("time to interactive", f"{b['time_to_interactive_ms']:.0f} ms (data decompressed at "
                                f"{b['decompressed_at_ms']:.0f} ms, parsed at {b['parsed_at_ms']:.0f} ms, matrix "
                                f"and tables rendered at {b['ready_at_ms']:.0f} ms)"),
        ("text filter (all cases)", f"{b['text_filter_ms']:.0f} ms"),
        ("clear filter", f"{b['clear_filter_ms']:.0f} ms"),
        ("verdict filter", f"{b['verdict_filter_ms']:.0f} ms"),
        ("next page", f"{b['next_page_ms']:.0f} ms"),
        ("open a case", f"{b['open_case_ms']:.0f} ms"),
        ("DOM elements", f"{b['dom_nodes']:,.0f}"),
        ("JS heap", f"{b['js_heap_mb']:.0f} MiB"),
    ]
    print(f"report scale benchmark ({args.repeats} opens in Chromium, median)")
    for k, v in rows:
        print(f"  {k:<26} {v}")
    print(json.dumps({"runs": len(runs), "html_bytes": report.stat().st_size, **b}))


if __name__ == "__main__":
    main()
