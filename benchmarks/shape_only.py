"""How much faster is shape-only than eager? (project issue 16)

    .venv/bin/python benchmarks/shape_only.py                        # every installed impl, both parts
    .venv/bin/python benchmarks/shape_only.py --impl torch,flax-linen --part adapters
    .venv/bin/python benchmarks/shape_only.py --part session --json out.json

Every measurement runs in fresh subprocesses from the repository root (this process never imports a
framework), on the default case set (``cases/`` and ``cases/upstream/``) and on CPU. Parts:

adapters (per impl)
    One process per implementation (its ``env`` set) that imports the framework and, for every default
    case the impl can express, runs ``impl.run`` (eager: weights loaded, the call computed) and
    ``impl.run_shapes`` (shape-only: the framework's inference, nothing computed), one pass of each to
    warm up (compilations, caches, the JAX persistent cache), then a measured pass of each. Reported:
    configurations per second eager and shape-only, and the speed-up (target >= 20x on Flax and Keras).
session
    ``conformance run --shape-only -n 2 --device cpu`` over the whole default set, twice (the second is
    the warm one: page cache, ``__pycache__``, JAX's persistent cache), and the same eager once, as a
    maintainer runs them: wall seconds of the whole command. Target: shape-only warm < 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

_ADAPTER_PASS = r'''
import json, sys, time
from pathlib import Path
from conformance import impls, spec
from conformance.reference import canonical_weights, initial_states, make_input

impl_id, root = sys.argv[1], Path(sys.argv[2])
impl = impls.get(impl_id)
t = time.perf_counter(); impl.setup(); impl.devices(); setup_s = time.perf_counter() - t
paths = sorted(root.glob("*.yaml")) + sorted((root / "upstream").glob("*.yaml"))
cases = [c for p in paths if p.name != "divergences.yaml" for c in spec.load_file(p).cases]
cfgs = [c.config for c in cases if not impl.unsupported(c.config)]

def eager(cfg):
    return impl.run(cfg, "cpu", make_input(cfg), canonical_weights(cfg), initial_states(cfg))

def shapes(cfg):
    return impl.run_shapes(cfg, "cpu", initial_states(cfg))

def one_pass(fn):
    t0, statuses = time.perf_counter(), {}
    for cfg in cfgs:
        try:
            status = fn(cfg).status
        except NotImplementedError:
            status = "no shape-only path"
        except Exception as exc:   # noqa: BLE001 - the framework refused (Rejected) or failed: counted
            status = type(exc).__name__
        statuses[status] = statuses.get(status, 0) + 1
    return time.perf_counter() - t0, statuses

out = {"impl": impl_id, "setup_s": setup_s, "configs": len(cfgs)}
for name, fn in (("eager", eager), ("shape_only", shapes)):
    one_pass(fn)                                   # warm-up
    seconds, statuses = one_pass(fn)
    out[name] = {"seconds": seconds, "per_second": len(cfgs) / seconds if seconds else None, "statuses": statuses}
print(json.dumps(out))
'''


def adapters(impl_ids: list[str]) -> list[dict]:
    from conformance import impls

    rows = []
    for impl_id in impl_ids:
        impl = impls.get(impl_id)
        if impl.missing():
            rows.append({"impl": impl_id, "skipped": impl.missing()})
            continue
        env = {**os.environ, **impl.env, "PYTHONPATH": str(REPO)}
        proc = subprocess.run([PY, "-c", _ADAPTER_PASS, impl_id, str(REPO / "cases")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=3600)
        line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("{")), None)
        if line is None:
            rows.append({"impl": impl_id, "error": proc.stderr[-2000:]})
            continue
        row = json.loads(line)
        e, s = row["eager"]["seconds"], row["shape_only"]["seconds"]
        row["speedup"] = e / s if s else None
        rows.append(row)
        print(f"{impl_id:22} {row['configs']:4} configs  eager {row['eager']['per_second']:8.1f}/s  "
              f"shape-only {row['shape_only']['per_second']:8.1f}/s  x{row['speedup']:.1f}", flush=True)
    return rows


def _session(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run([PY, "-m", "conformance.cli", "run", *args, "--device", "cpu", "-n", "2", "-q",
                               "-o", out], cwd=REPO, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            raise SystemExit(f"conformance run {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
        return wall


def session(impl_ids: list[str]) -> dict:
    sel = ["--impl", ",".join(impl_ids)]
    out = {"shape_only_first_s": _session(["--shape-only", *sel]), "shape_only_warm_s": _session(["--shape-only", *sel]),
           "eager_s": _session(sel)}
    out["speedup"] = out["eager_s"] / out["shape_only_warm_s"]
    print(f"default set, -n 2: shape-only {out['shape_only_first_s']:.1f} s first, {out['shape_only_warm_s']:.1f} s "
          f"warm; eager {out['eager_s']:.1f} s (x{out['speedup']:.1f})", flush=True)
    return out


def main(argv=None) -> int:
    sys.path.insert(0, str(REPO))
    from conformance import impls

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default=",".join(impls.ids()), help="comma-separated implementation ids")
    ap.add_argument("--part", default="adapters,session", help="adapters, session (comma-separated)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    chosen = impls.select([p for p in args.impl.split(",") if p])
    parts = set(args.part.split(","))
    figures = {}
    if "adapters" in parts:
        figures["adapters"] = adapters(chosen)
    if "session" in parts:
        figures["session"] = session(chosen)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
