"""How fast does ``conformance explore`` search? (project issue 15)

    .venv/bin/python benchmarks/explore_speed.py                          # every impl together, 5 minutes
    .venv/bin/python benchmarks/explore_speed.py --time 120 --solo --impl torch,flax-linen
    .venv/bin/python benchmarks/explore_speed.py --from reports/explore-30min   # figures of an explore done

Runs ``conformance explore`` in a fresh subprocess (this process imports no framework) on CPU, with a
fixed seed, into a temporary directory, and reads its ``findings.json``:

together
    One explore over the chosen implementations for ``--time`` seconds: configurations per minute in
    all, the share of the time spent shrinking findings and confirming them on the bare frameworks,
    and per implementation the seconds its runs took (each run's round trip to its worker, summed;
    the implementations of one configuration run side by side, ``--jobs``) and the configurations per
    minute that alone would allow.
solo (``--solo``)
    The same, one implementation at a time, each for ``--time`` seconds: what each framework costs a
    search by itself (framework start-up included).

``--from DIR`` prints the same table for an explore already run (its findings.json), spending no time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_explore(impls: str, seconds: float, seed: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "conformance.cli", "explore", "--impl", impls, "--time", str(seconds),
           "--seed", str(seed), "--device", "cpu", "-o", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"explore failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads((out / "findings.json").read_text())


def table(doc: dict, label: str) -> list[str]:
    t = doc["throughput"]
    total = t["explore_s"] + t["shrink_s"] + t["confirm_s"]
    lines = [f"{label}: {t['configs']} configurations in {total:.0f} s: {t['configs_per_min']} per minute; "
             f"exploring {t['explore_s']:.0f} s, shrinking {t['shrink_s']:.0f} s ({t['shrink_s'] / total:.0%}), "
             f"confirming {t['confirm_s']:.0f} s ({t['confirm_s'] / total:.0%}); {len(doc['findings'])} findings",
             "| impl | seconds of runs | configurations / min of its runs alone |", "|---|---|---|"]
    for impl, sec in t.get("impl_s", {}).items():
        lines.append(f"| {impl} | {sec:.0f} | {t['impl_configs_per_min'].get(impl)} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", default="*", help="implementations (comma-separated globs; default every one)")
    ap.add_argument("--time", type=float, default=300.0, help="seconds per explore (default 300)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--solo", action="store_true", help="also one explore per implementation")
    ap.add_argument("--from", dest="source", type=Path, help="report an explore already run (its directory)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    figures = {}
    if args.source:
        doc = json.loads((args.source / "findings.json").read_text())
        figures["together"] = doc["throughput"]
        print("\n".join(table(doc, str(args.source))))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            doc = run_explore(args.impl, args.time, args.seed, Path(tmp) / "together")
            figures["together"] = doc["throughput"]
            print("\n".join(table(doc, f"together ({args.impl})")))
            if args.solo:
                for impl in doc["settings"]["impls"]:
                    solo = run_explore(impl, args.time, args.seed, Path(tmp) / impl)
                    figures[impl] = solo["throughput"]
                    print("\n" + "\n".join(table(solo, f"solo {impl}")))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
