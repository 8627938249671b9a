"""How fast is the suite, and how close to what the frameworks themselves cost? (project issue 7)

    .venv/bin/python benchmarks/suite_speed.py                       # every installed impl, every part
    .venv/bin/python benchmarks/suite_speed.py --impl torch --part suite,floor,startup
    .venv/bin/python benchmarks/suite_speed.py --quick --impl torch,flax-linen --json out.json

Every measurement runs in fresh subprocesses from the repository root (this process never imports
a framework), on the default case set ``cases/`` and on CPU. Times are wall-clock seconds. Parts
(``--part``, default all, run in this order):

parallel
    The whole default set for the chosen impls in one session, as a maintainer runs it:
    ``python -m pytest cases --impl A,B,... --device cpu -q -p no:cacheprovider --conformance-out TMP``,
    three times: serial **cold** (the first session of this benchmark: nothing of it has run
    yet; with ``--drop-caches`` the OS page cache is dropped first, so the frameworks' libraries
    come from disk), serial **warm** (the same again at once: page cache, ``__pycache__`` populated),
    and ``-n 2`` (warm). Speed-up = serial warm / ``-n 2``. Targets: warm <= 60 s, cold <= 180 s,
    speed-up >= 1.6x. It runs first so that "cold" means something.
startup (per impl)
    ``python -c "import <framework>"`` (torch: ``import torch``; keras-*: ``import keras`` with the
    backend's env; tf-keras: ``import tf_keras`` with ``TF_USE_LEGACY_KERAS=1``; flax-linen*:
    ``import flax.linen``; flax-nnx*: ``from flax import nnx``) with the impl's env: the time from
    starting the process until the import is done (interpreter start + import; the interpreter's
    exit, which takes torch ~0.5 s, is left out, and reported as the process's wall time); beside
    ``python -c pass``. And a fresh process doing ``WorkerPool().info(impl)``: the time from asking
    until the worker's ready reply (the worker's interpreter start, the framework import,
    ``impl.setup()``), with the part the worker itself reports as ``setup_s``. One untimed import
    first, so that every timed one finds the libraries in the page cache; median of ``--repeats``.
floor (per impl)
    ``benchmarks/_floor.py``: one fresh process with the impl's env that imports the framework and,
    with no pytest, no worker, no IPC and no results files, runs every default case the impl
    supports through the adapter (``impl.run`` on the canonical input, weights and initial states)
    and does every check against the NumPy reference (``checks.evaluate``): the same work the suite
    does for the impl, at its least. Reported: its wall time (interpreter start included), the
    framework import + setup, the sum of per-run times (run + checks).
suite (per impl)
    ``python -m pytest cases --impl X --device cpu -q -p no:cacheprovider --conformance-out TMP``,
    wall time of the whole subprocess: interpreter and pytest start, collection, the worker's start,
    every run, ``results.json`` and ``index.html`` written (what a maintainer gets; ``--conformance-out``
    only keeps the benchmark out of ``reports/latest/``, whose "what changed" diff is then not
    computed). A small timing plugin (``benchmarks/_suite_timing.py``) splits it into start-up (until
    collection), collection, the run loop, results/report writing (``pytest_sessionfinish``) and
    the workers' stop. From ``results.json``: the runs' verdicts; the worker's start inside the session
    (first run's ``roundtrip_s`` - ``total_s``); per run the worker's ``total_s`` and the runner's
    ``roundtrip_s``; what the session adds per run (run loop - worker start - sum of worker
    ``total_s``, per run: IPC, checks, records, pytest); the worker's peak memory. Ratios: suite /
    floor (target <= 1.2x), and suite / (bare import + the floor's per-run times) (target <= 1.5x,
    set for torch: ``pytest cases/ --impl torch`` against "torch's import time plus its runs").
    ``--also-no-report`` also times the same command with ``--no-conformance-report``.
scaling (``--scaling-impls``, default torch,keras-tensorflow)
    Generated case sets of N cases (``--scaling-sizes``, default 10,100,1000) in a temporary
    directory (``cases/scale.yaml``, a copy of ``cases/divergences.yaml``, a ``pytest.ini``): one
    case with a ``matrix`` over hidden_size x input_size x batch x timesteps and ``max_cases: N``.
    Every generated configuration is a NEW shape (no two cases share one), as in real case sets,
    so per-shape caches and compilations are not reused. Run as
    ``pytest cases --impl X --device cpu -q -p no:cacheprovider --conformance-out out``. Reported:
    wall; per-run cost = (wall - start-up) / N, start-up being this session's own fixed cost
    (pytest start and collection, the worker's start, the workers' stop; results writing is left in,
    as it grows with N); the marginal cost between consecutive sizes; the median worker ``total_s``.
    Flat: the per-run cost at the largest N over the one at the smallest. Flax compiles per new
    shape (about 0.5 s a run), so flax impls at 1,000 take ~10 min each: choose them explicitly.
memory (from the largest scaling run, and the suite part's results)
    Per worker process (``worker_pid``, runs ordered by ``timings.worker_run``): resident memory
    (``rss_mb``) after run 1, after run min(100, n) and after the last, the peak (``peak_rss_mb``),
    and the growth over the last 1,000 runs (all, if fewer), target within +-10%. torch: oneDNN's
    primitive cache grows by ~0.3 MiB per new shape until 1,024 entries
    (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``), then memory is flat; 1,000 new shapes are all cache fill,
    so judge torch's flatness from a run past ~1,100 shapes (``--scaling-sizes 10,100,1000,2100``).

Prints one table per part (times, ratios, target, met / missed by how much); ``--json OUT`` writes
every measurement. A part that fails for an impl prints the error and the benchmark goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PY = sys.executable
sys.path.insert(0, str(REPO))

from conformance import impls  # noqa: E402  (the registry and the static halves: no framework imports)

PARTS = ("parallel", "startup", "floor", "suite", "scaling", "memory")
TARGETS = {"suite_vs_floor": 1.2, "vs_import_plus_runs": 1.5, "warm_s": 60.0, "cold_s": 180.0,
           "speedup": 1.6, "memory_growth": 0.10}
IMPORTS = {   # what "import the framework" means per impl (with the impl's env)
    "torch": "import torch",
    "keras-tensorflow": "import keras", "keras-jax": "import keras", "keras-torch": "import keras",
    "tf-keras": "import tf_keras",
    "flax-linen": "import flax.linen", "flax-linen-optimized": "import flax.linen",
    "flax-nnx": "from flax import nnx", "flax-nnx-optimized": "from flax import nnx",
}
SCALE_AXES = ("hidden_size", "input_size", "batch", "timesteps")
SCALE_START = {"hidden_size": 2, "input_size": 2, "batch": 1, "timesteps": 2}


# ---------------------------------------------------------------------------------------------
# helpers

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_for(impl_id: str | None = None, timing_out: Path | None = None) -> dict:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("SUITE_TIMING_OUT", None)
    if impl_id is not None:
        env.update(impls.get(impl_id).env)
    if timing_out is not None:
        env["SUITE_TIMING_OUT"] = str(timing_out)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), str(REPO), env.get("PYTHONPATH")) if p)
    return env


def timed(cmd: list[str], *, cwd: Path = REPO, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run ``cmd``; its wall time, its exit status, and its output's tail."""
    t_wall = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    return {"cmd": " ".join(cmd), "wall_s": wall, "started": t_wall, "rc": proc.returncode,
            "stdout": proc.stdout, "stderr": proc.stderr}


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def fmt_s(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1000:.1f} ms"


def fmt_x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def verdict_vs(value, target, *, higher_is_better=False) -> str:
    """'met' / 'missed by N%' for ``value`` against ``target``."""
    if value is None:
        return "-"
    if higher_is_better:
        return "met" if value >= target else f"missed by {(target - value) / target:.0%}"
    return "met" if value <= target else f"missed by {(value - target) / target:.0%}"


def table(title: str, header: list[str], rows: list[list], notes: list[str] = ()) -> None:
    cells = [[str(c) for c in header]] + [[("-" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, r in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    for n in notes:
        print(f"  {n}")
    sys.stdout.flush()


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pytest_cmd(impl_ids: list[str], out_dir: Path | None, extra: list[str] = ()) -> list[str]:
    cmd = [PY, "-m", "pytest", "cases", "--impl", ",".join(impl_ids), "--device", "cpu", "-q",
           "-p", "no:cacheprovider", "-p", "_suite_timing"]
    cmd += ["--conformance-out", str(out_dir)] if out_dir is not None else ["--no-conformance-report"]
    return cmd + list(extra)


def session(impl_ids: list[str], *, cwd: Path = REPO, out_dir: Path | None, extra: list[str] = (),
            timeout: float = 3600) -> dict:
    """One pytest session: wall time, phases (the timing plugin), and what results.json says."""
    with tempfile.TemporaryDirectory(prefix="suite-timing-") as td:
        tfile = Path(td) / "t.json"
        res = timed(pytest_cmd(impl_ids, out_dir, extra), cwd=cwd, env=env_for(timing_out=tfile), timeout=timeout)
        phases = json.loads(tfile.read_text()) if tfile.is_file() else {}
    res["summary_line"] = last_line(res["stdout"])
    t0 = res.pop("started")
    end = t0 + res["wall_s"]
    p = phases
    if p:
        res["phases"] = {
            "startup_s": p["collection_start"] - t0,                     # interpreter, pytest, plugins
            "collection_s": p["collection_end"] - p["collection_start"],
            "loop_s": p["loop_end"] - p["loop_start"],                  # worker start + every run
            "finish_s": p["sessionfinish_end"] - p["sessionfinish_start"],   # results.json + index.html
            "unconfigure_s": p["unconfigure_end"] - p["unconfigure_start"],  # workers stopped
            "exit_s": end - p["unconfigure_end"],                       # interpreter shutdown
        }
    if out_dir is not None and (out_dir / "results.json").is_file():
        res["results"] = analyse_results(json.loads((out_dir / "results.json").read_text()))
    if res["rc"] not in (0, 1):
        res["error"] = f"pytest exited {res['rc']}: {res['stdout'][-1500:]}{res['stderr'][-1500:]}"
    for k in ("stdout", "stderr"):
        res[k] = res[k][-2000:]
    return res


def analyse_results(doc: dict) -> dict:
    """Per impl: verdicts, worker start, per-run timings, memory per worker."""
    out: dict[str, dict] = {}
    for r in doc["runs"]:
        d = out.setdefault(r["impl"], {"verdicts": {}, "runs": [], "workers": {}})
        d["verdicts"][r["verdict"]] = d["verdicts"].get(r["verdict"], 0) + 1
        t = r.get("timings") or {}
        if "total_s" in t:
            d["runs"].append({"total_s": t["total_s"], "roundtrip_s": t.get("roundtrip_s"),
                              "worker_run": t.get("worker_run")})
        if r.get("worker_pid") is not None and "rss_mb" in t:
            d["workers"].setdefault(str(r["worker_pid"]), []).append(
                (t["worker_run"], t["rss_mb"], t["peak_rss_mb"], t["total_s"], t.get("roundtrip_s")))
    for impl_id, d in out.items():
        runs = d.pop("runs")
        workers = d.pop("workers")
        first = [w[0] for w in (sorted(v) for v in workers.values()) if w and w[0][0] == 1]
        d["n_worker_runs"] = len(runs)
        d["worker_total_s"] = sum(x["total_s"] for x in runs)
        d["roundtrip_sum_s"] = sum(x["roundtrip_s"] or 0 for x in runs)
        d["median_total_s"] = median([x["total_s"] for x in runs])
        d["median_roundtrip_s"] = median([x["roundtrip_s"] for x in runs if x["worker_run"] != 1])
        # the worker's start inside the session: the first run's round trip includes it
        d["worker_start_s"] = sum((f[4] or 0) - f[3] for f in first) if first else None
        d["memory"] = {pid: memory_of(sorted(v)) for pid, v in workers.items()}
        d["peak_rss_mb"] = max((m["peak_mb"] for m in d["memory"].values()), default=None)
    return out


def memory_of(runs: list[tuple]) -> dict:
    """runs: (worker_run, rss_mb, peak_rss_mb, ...) sorted by worker_run."""
    by = {r[0]: r[1] for r in runs}
    last = runs[-1][0]

    def at(n):      # the rss after run n, or the nearest run recorded before it
        ks = [k for k in by if k <= n]
        return by[max(ks)] if ks else by[min(by)]
    base_n = max(1, last - 1000)
    n100 = min(100, last)
    return {"runs": last, "rss_first_mb": at(1), "rss_at_100_mb": at(n100), "at_100_run": n100,
            "rss_last_mb": by[last], "peak_mb": max(r[2] for r in runs),
            "growth_window": [base_n, last], "growth": (by[last] - at(base_n)) / at(base_n),
            "growth_from_100": (by[last] - at(n100)) / at(n100)}


def installed_impls() -> list[str]:
    return [i for i in impls.ids() if impls.get(i).missing() is None]


def default_case_count() -> int:
    from conformance import spec
    return sum(len(spec.load_file(p).cases) for p in sorted((REPO / "cases").glob("*.yaml"))
               if p.name != "divergences.yaml")


# ---------------------------------------------------------------------------------------------
# parts

def part_parallel(args, R: dict) -> None:
    chosen = args.impl
    res = R.setdefault("parallel", {"impls": chosen})
    if args.drop_caches:
        try:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            res["page_cache_dropped"] = True
        except OSError as exc:
            res["page_cache_dropped"] = f"could not drop the page cache: {exc}"
    else:
        res["page_cache_dropped"] = False
    for name, extra in (("serial_cold", []), ("serial_warm", []), ("n2_warm", ["-n", "2"])):
        log(f"parallel: {name} on {len(chosen)} impls")
        try:
            with tempfile.TemporaryDirectory(prefix="suite-par-") as td:
                s = session(chosen, out_dir=Path(td) / "out", extra=extra, timeout=args.timeout)
            s["n_runs"] = sum(sum(v["verdicts"].values()) for v in s.get("results", {}).values())
            res[name] = s
        except Exception as exc:  # noqa: BLE001
            res[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(traceback.format_exc())


def part_startup(args, R: dict) -> None:
    out = R.setdefault("startup", {})
    base = [timed([PY, "-c", "pass"], env=env_for())["wall_s"] for _ in range(args.repeats)]
    out["_python"] = {"wall_s": median(base)}
    for impl_id in args.impl:
        log(f"startup: {impl_id}")
        try:
            env = env_for(impl_id)
            code = f"import time\n{IMPORTS[impl_id]}\nprint(time.time())"
            timed([PY, "-c", code], env=env, timeout=args.timeout)      # untimed: warms the page cache
            imp, imp_wall = [], []
            for _ in range(args.repeats):
                r = timed([PY, "-c", code], env=env, timeout=args.timeout)
                if r["rc"] != 0:
                    raise RuntimeError(f"{IMPORTS[impl_id]!r} failed: {r['stderr'][-800:]}")
                imp.append(float(last_line(r["stdout"])) - r["started"])
                imp_wall.append(r["wall_s"])
            code = ("import json, time, sys\n"
                    "from conformance.runner import WorkerPool\n"
                    "p = WorkerPool()\n"
                    "t0 = time.perf_counter()\n"
                    f"info = p.info({impl_id!r})\n"
                    "t1 = time.perf_counter()\n"
                    "p.close()\n"
                    "print(json.dumps({'worker_ready_s': t1 - t0, 'setup_s': info.get('setup_s')}))\n")
            wk = []
            for _ in range(args.repeats):
                r = timed([PY, "-c", code], env=env_for(), timeout=args.timeout)
                if r["rc"] != 0:
                    raise RuntimeError(f"WorkerPool().info failed: {r['stderr'][-800:]}")
                wk.append({**json.loads(last_line(r["stdout"])), "wall_s": r["wall_s"]})
            out[impl_id] = {"import_s": median(imp), "import_all_s": imp, "import_process_wall_s": median(imp_wall),
                            "worker_ready_s": median([w["worker_ready_s"] for w in wk]),
                            "worker_setup_s": median([w["setup_s"] for w in wk]),
                            "worker_process_wall_s": median([w["wall_s"] for w in wk])}
        except Exception as exc:  # noqa: BLE001
            out[impl_id] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"startup {impl_id} failed: {exc}")


def part_floor(args, R: dict) -> None:
    out = R.setdefault("floor", {})
    for impl_id in args.impl:
        log(f"floor: {impl_id}")
        try:
            r = timed([PY, str(HERE / "_floor.py"), impl_id, str(REPO / "cases")], env=env_for(impl_id),
                      timeout=args.timeout)
            if r["rc"] != 0:
                raise RuntimeError(f"exit {r['rc']}: {r['stderr'][-1500:]}")
            d = json.loads(last_line(r["stdout"]))
            runs = d.pop("runs")
            d.update({"wall_s": r["wall_s"], "n_runs": len(runs),
                      "run_sum_s": sum(x["run_s"] for x in runs), "checks_sum_s": sum(x["checks_s"] for x in runs),
                      "median_run_s": median([x["run_s"] + x["checks_s"] for x in runs])})
            out[impl_id] = d
        except Exception as exc:  # noqa: BLE001
            out[impl_id] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"floor {impl_id} failed: {exc}")


def part_suite(args, R: dict) -> None:
    out = R.setdefault("suite", {})
    for impl_id in args.impl:
        log(f"suite: {impl_id}")
        try:
            with tempfile.TemporaryDirectory(prefix="suite-") as td:
                s = session([impl_id], out_dir=Path(td) / "out", timeout=args.timeout)
            if args.also_no_report:
                s["no_report"] = session([impl_id], out_dir=None, timeout=args.timeout)
                for k in ("stdout", "stderr"):
                    s["no_report"].pop(k, None)
            out[impl_id] = s
        except Exception as exc:  # noqa: BLE001
            out[impl_id] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"suite {impl_id} failed: {exc}")


def factor_axes(n: int) -> dict[str, int]:
    """Axis lengths (hidden_size, input_size, batch, timesteps) whose product is n, each as short as
    can be (prime factors dealt largest first to the shortest axis); ValueError past 32 on an axis."""
    primes, k, m = [], 2, n
    while m > 1:
        while m % k == 0:
            primes.append(k)
            m //= k
        k += 1
    lens = dict.fromkeys(SCALE_AXES, 1)
    for p in sorted(primes, reverse=True):
        ax = min(SCALE_AXES, key=lambda a: (lens[a], SCALE_AXES.index(a)))
        lens[ax] *= p
    if max(lens.values()) > 32:
        raise ValueError(f"{n} cases cannot be a matrix of 4 axes of at most 32 values each (a prime factor "
                         "is too large); choose a size such as 10, 100, 500, 1000, 2000")
    return lens


def scale_case_file(n: int) -> str:
    lens = factor_axes(n)
    matrix = "\n".join(f"      {a}: [{', '.join(str(SCALE_START[a] + i) for i in range(lens[a]))}]"
                       for a in SCALE_AXES if lens[a] > 1)
    return (f"lstm-conformance: 1\ndescription: {n} generated cases, every one a new shape (benchmarks/suite_speed.py).\n"
            "cases:\n  - id: scale\n"
            f"    max_cases: {n}\n    matrix:\n{matrix}\n")


def part_scaling(args, R: dict) -> None:
    out = R.setdefault("scaling", {})
    for impl_id in args.scaling_impls:
        out[impl_id] = {}
        for n in args.scaling_sizes:
            log(f"scaling: {impl_id}, {n} cases")
            try:
                with tempfile.TemporaryDirectory(prefix="suite-scale-") as td:
                    root = Path(td)
                    (root / "cases").mkdir()
                    shutil.copy(REPO / "cases" / "divergences.yaml", root / "cases" / "divergences.yaml")
                    (root / "cases" / "scale.yaml").write_text(scale_case_file(n))
                    (root / "pytest.ini").write_text("[pytest]\n")
                    s = session([impl_id], cwd=root, out_dir=root / "out", timeout=args.timeout)
                s["n"] = n
                s["axes"] = factor_axes(n)
                ph, res = s.get("phases"), (s.get("results") or {}).get(impl_id)
                if ph and res:
                    fixed = ph["startup_s"] + ph["collection_s"] + (res["worker_start_s"] or 0) + ph["unconfigure_s"] \
                        + ph["exit_s"]
                    s["fixed_s"] = fixed
                    s["per_run_s"] = (s["wall_s"] - fixed) / n
                    s["loop_per_run_s"] = (ph["loop_s"] - (res["worker_start_s"] or 0)) / n
                out[impl_id][str(n)] = s
            except Exception as exc:  # noqa: BLE001
                out[impl_id][str(n)] = {"error": f"{type(exc).__name__}: {exc}", "n": n}
                log(f"scaling {impl_id} {n} failed: {exc}")


def part_memory(args, R: dict) -> None:
    out = R.setdefault("memory", {})
    for impl_id, sizes in R.get("scaling", {}).items():
        ok = [s for s in sizes.values() if (s.get("results") or {}).get(impl_id)]
        if ok:
            big = max(ok, key=lambda s: s["n"])
            out[impl_id] = {"source": f"scaling, {big['n']} cases", "workers": big["results"][impl_id]["memory"]}
    for impl_id, s in R.get("suite", {}).items():
        res = (s.get("results") or {}).get(impl_id)
        if res and impl_id not in out:
            out[impl_id] = {"source": f"suite, default set ({res['n_worker_runs']} runs)", "workers": res["memory"]}


# ---------------------------------------------------------------------------------------------
# tables

def print_tables(R: dict) -> None:
    st, fl, su = R.get("startup", {}), R.get("floor", {}), R.get("suite", {})
    errors = []
    if "parallel" in R:
        P = R["parallel"]
        rows = []
        for name, label, target in (("serial_cold", "serial, cold", "cold_s"), ("serial_warm", "serial, warm", "warm_s"),
                                    ("n2_warm", "-n 2, warm", "warm_s")):
            s = P.get(name)
            if not s:
                continue
            if "error" in s:
                errors.append(f"parallel {name}: {s['error']}")
            rows.append([label, s.get("n_runs"), fmt_s(s.get("wall_s")),
                         f"<= {TARGETS[target]:.0f} s", verdict_vs(s.get("wall_s"), TARGETS[target]),
                         s.get("summary_line", "")[:60]])
        sw, n2 = P.get("serial_warm", {}).get("wall_s"), P.get("n2_warm", {}).get("wall_s")
        speedup = sw / n2 if sw and n2 else None
        P["speedup"] = speedup
        rows.append(["speed-up -n 2 (serial warm / -n 2)", "", fmt_x(speedup), f">= {TARGETS['speedup']}x",
                     verdict_vs(speedup, TARGETS["speedup"], higher_is_better=True), ""])
        cold_note = {True: "page cache dropped before the cold run",
                     False: "page cache not dropped (--drop-caches to drop it): 'cold' is this benchmark's first session"}
        table(f"PARALLEL: the whole default set, impls: {','.join(P['impls'])}",
              ["session", "items", "wall", "target", "", "pytest says"], rows,
              [cold_note.get(P.get("page_cache_dropped"), str(P.get("page_cache_dropped")))])

    if st:
        rows = []
        for impl_id, d in st.items():
            if impl_id == "_python":
                continue
            if "error" in d:
                errors.append(f"startup {impl_id}: {d['error']}")
                continue
            rows.append([impl_id, fmt_s(d["import_s"]), fmt_s(d["import_process_wall_s"]), fmt_s(d["worker_ready_s"]),
                         fmt_s(d["worker_setup_s"]),
                         fmt_s(d["worker_ready_s"] - d["import_s"]), fmt_x(d["worker_ready_s"] / d["import_s"])])
        table("STARTUP: bare framework import vs the suite's worker start (fresh processes, median)",
              ["impl", "start+import", "(process wall)", "worker ready", "of which setup", "worker - import", "ratio"], rows,
              [f"python -c pass: {fmt_s(st.get('_python', {}).get('wall_s'))}; 'worker ready' = WorkerPool().info(impl): "
               "worker interpreter start + framework import + impl.setup(); 'setup' = what the worker reports"])

    if fl:
        rows = []
        for impl_id, d in fl.items():
            if "error" in d:
                errors.append(f"floor {impl_id}: {d['error']}")
                continue
            rows.append([impl_id, d["n_runs"], fmt_s(d["wall_s"]), fmt_s(d["setup_done_s"]),
                         fmt_s(d["run_sum_s"]), fmt_s(d["checks_sum_s"]), fmt_s(d["median_run_s"]),
                         " ".join(f"{k}:{v}" for k, v in sorted(d["verdicts"].items()))])
        table("FLOOR: one plain process per impl: import, then every supported default case + its checks",
              ["impl", "runs", "wall", "import+setup", "runs", "checks", "median run+checks", "verdicts"], rows)

    if su:
        rows, rows2 = [], []
        for impl_id, s in su.items():
            if "error" in s and "wall_s" not in s:
                errors.append(f"suite {impl_id}: {s['error']}")
                continue
            if "error" in s:
                errors.append(f"suite {impl_id}: {s['error'][:300]}")
            res = (s.get("results") or {}).get(impl_id, {})
            ph = s.get("phases", {})
            f = fl.get(impl_id, {})
            floor = f.get("wall_s")
            ratio = s["wall_s"] / floor if floor else None
            imp = st.get(impl_id, {}).get("import_s")
            runs = f.get("run_sum_s", 0) + f.get("checks_sum_s", 0) if "run_sum_s" in f else res.get("worker_total_s")
            base = imp + runs if imp is not None and runs is not None else None
            r2 = s["wall_s"] / base if base else None
            rows.append([impl_id, fmt_s(s["wall_s"]), fmt_s(floor), fmt_x(ratio),
                         verdict_vs(ratio, TARGETS["suite_vs_floor"]), fmt_s(base), fmt_x(r2),
                         verdict_vs(r2, TARGETS["vs_import_plus_runs"]),
                         fmt_s(s["no_report"]["wall_s"]) if "no_report" in s else "-",
                         " ".join(f"{k}:{v}" for k, v in sorted(res.get("verdicts", {}).items()))])
            loop = ph.get("loop_s")
            n = res.get("n_worker_runs") or 0
            added = ((loop - (res.get("worker_start_s") or 0) - res.get("worker_total_s", 0)) / n
                     if loop is not None and n else None)
            s["added_per_run_s"] = added
            rows2.append([impl_id, fmt_s(ph.get("startup_s")), fmt_s(ph.get("collection_s")),
                          fmt_s(res.get("worker_start_s")), fmt_s(loop), fmt_s(ph.get("finish_s")),
                          fmt_s(ph.get("unconfigure_s")), n, fmt_s(res.get("median_total_s")),
                          fmt_s(res.get("median_roundtrip_s")), fmt_s(added),
                          f"{res['peak_rss_mb']:.0f} MiB" if res.get("peak_rss_mb") else "-"])
        table("SUITE: `pytest cases --impl X --device cpu -q -p no:cacheprovider --conformance-out DIR` vs the floor",
              ["impl", "suite wall", "floor wall", "suite/floor", f"target <= {TARGETS['suite_vs_floor']}x",
               "import+runs", "suite/(import+runs)", f"target <= {TARGETS['vs_import_plus_runs']}x",
               "no report", "verdicts"], rows,
              ["import+runs = start+import (STARTUP) + the floor's per-run times (run + checks); the "
               f"{TARGETS['vs_import_plus_runs']}x target is set for torch"])
        table("SUITE, where the time goes (timing plugin + results.json)",
              ["impl", "py+pytest start", "collection", "worker start", "run loop", "results+report",
               "workers stop", "runs", "median worker run", "median roundtrip", "added per run", "worker peak"],
              rows2, ["added per run = (run loop - worker start - sum of worker total_s) / runs: IPC, checks, "
                      "records, pytest per item"])

    sc = R.get("scaling", {})
    if sc:
        rows = []
        for impl_id, sizes in sc.items():
            prev = None
            first_per = None
            for key, s in sizes.items():
                if "error" in s and "wall_s" not in s:
                    errors.append(f"scaling {impl_id} {key}: {s['error']}")
                    continue
                res = (s.get("results") or {}).get(impl_id, {})
                per, loop_per = s.get("per_run_s"), s.get("loop_per_run_s")
                first_per = first_per if first_per is not None else loop_per
                marginal = ((s["wall_s"] - prev["wall_s"]) / (s["n"] - prev["n"]) if prev else None)
                flat = loop_per / first_per if loop_per and first_per else None
                s["loop_per_run_vs_smallest"] = flat
                rows.append([impl_id, s["n"], fmt_s(s["wall_s"]), fmt_s(s.get("fixed_s")), fmt_s(per),
                             fmt_s(marginal), fmt_s(loop_per), fmt_s(res.get("median_total_s")), fmt_s(res.get("median_roundtrip_s")),
                             fmt_x(flat), " ".join(f"{k}:{v}" for k, v in sorted(res.get("verdicts", {}).items()))])
                prev = s
        table("SCALING: generated case sets, every case a new shape (one session each)",
              ["impl", "cases", "wall", "fixed", "per run", "marginal", "loop per run", "median worker run",
               "median roundtrip", "loop per run vs smallest", "verdicts"], rows,
              ["fixed = pytest start + collection + worker start + workers stop + exit; per run = (wall - fixed) / N "
               "(results + report writing left in: it grows with N);",
               "marginal = wall difference / case difference from the previous size; loop per run = (run loop - "
               "worker start) / N: what flatness is judged on"])

    mem = R.get("memory")
    if mem == {}:
        print("\nMEMORY: nothing to read: the memory part reads the scaling and suite parts' results (run them too)")
    if mem:
        rows = []
        for impl_id, d in mem.items():
            for pid, m in d["workers"].items():
                rows.append([impl_id, d["source"], pid, m["runs"], f"{m['rss_first_mb']:.0f}",
                             f"{m['rss_at_100_mb']:.0f} (run {m['at_100_run']})", f"{m['rss_last_mb']:.0f}",
                             f"{m['peak_mb']:.0f}", f"{m['growth']:+.1%} (runs {m['growth_window'][0]}-{m['growth_window'][1]})",
                             f"{m['growth_from_100']:+.1%}",
                             ("met" if abs(m["growth"]) <= TARGETS["memory_growth"] else f"missed ({m['growth']:+.1%})")
                             + ("" if m["runs"] >= 1000 else f"; only {m['runs']} runs")])
        table("MEMORY: worker resident memory (MiB) over its runs",
              ["impl", "from", "worker pid", "runs", "rss run 1", "rss run 100", "rss last", "peak",
               "growth (last <=1000 runs)", "growth from run 100", "target +-10%"], rows,
              ["torch: oneDNN's primitive cache grows ~0.3 MiB per new shape up to 1,024 entries, then flat; "
               "judge torch from a run past ~1,100 new shapes"])
    for e in errors:
        print(f"error: {e}")


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--impl", default=None, help="comma-separated impl ids (default: every installed impl)")
    ap.add_argument("--part", default=",".join(PARTS), help=f"comma-separated, any of {', '.join(PARTS)} (default all)")
    ap.add_argument("--scaling-sizes", default=None, help="case-set sizes (default 10,100,1000; --quick: 10,20)")
    ap.add_argument("--scaling-impls", default="torch,keras-tensorflow",
                    help="impls for the scaling part (default torch,keras-tensorflow; flax compiles per new shape)")
    ap.add_argument("--repeats", type=int, default=None, help="start-up measurements per impl, median (default 3; --quick: 1)")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write every measurement here")
    ap.add_argument("--quick", action="store_true", help="a smoke run: scaling 10,20 cases, one start-up repeat")
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the OS page cache before the cold run (needs root; slows everything else on the machine)")
    ap.add_argument("--also-no-report", action="store_true",
                    help="suite: also time the command with --no-conformance-report")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per subprocess (default 3600)")
    args = ap.parse_args()

    installed = installed_impls()
    args.impl = [i.strip() for i in args.impl.split(",") if i.strip()] if args.impl else installed
    args.part = [p.strip() for p in args.part.split(",") if p.strip()]
    for p in args.part:
        if p not in PARTS:
            ap.error(f"--part {p!r}: use any of {', '.join(PARTS)}")
    for i in args.impl:
        if i not in impls.ids():
            ap.error(f"--impl {i!r}: known: {', '.join(impls.ids())}")
        if i not in installed:
            ap.error(f"--impl {i!r} is not installed here: {impls.get(i).missing()}")
    args.scaling_sizes = [int(x) for x in (args.scaling_sizes or ("10,20" if args.quick else "10,100,1000")).split(",")]
    args.scaling_sizes.sort()
    for n in args.scaling_sizes:
        try:
            factor_axes(n)
        except ValueError as exc:
            ap.error(f"--scaling-sizes: {exc}")
    args.scaling_impls = [i.strip() for i in args.scaling_impls.split(",") if i.strip() and i.strip() in installed]
    args.repeats = args.repeats or (1 if args.quick else 3)

    R: dict = {"argv": sys.argv, "python": sys.version.split()[0], "cpus": os.cpu_count(),
               "load_avg_start": os.getloadavg(), "impls": args.impl, "parts": args.part,
               "default_cases": default_case_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.perf_counter()
    for part in PARTS:        # fixed order: parallel first, so that its first session is the cold one
        if part not in args.part:
            continue
        try:
            {"parallel": part_parallel, "startup": part_startup, "floor": part_floor, "suite": part_suite,
             "scaling": part_scaling, "memory": part_memory}[part](args, R)
        except Exception as exc:  # noqa: BLE001
            R.setdefault("errors", []).append(f"{part}: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
    R["benchmark_wall_s"] = time.perf_counter() - t0
    R["load_avg_end"] = os.getloadavg()
    print(f"suite speed: {R['default_cases']} default cases, impls {','.join(args.impl)}, {os.cpu_count()} CPUs, "
          f"load average {R['load_avg_start'][0]:.1f} at start, {R['load_avg_end'][0]:.1f} at end; "
          f"benchmark took {fmt_s(R['benchmark_wall_s'])}")
    print_tables(R)
    for e in R.get("errors", []):
        print(f"error: {e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(R, indent=1, default=str))
        print(f"\nmeasurements: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
