"""The floor for ``benchmarks/suite_speed.py``: one impl's share of a case set, in one plain process.

    python benchmarks/_floor.py IMPL CASES_DIR      (the impl's ``env`` set by the caller)

No pytest, no worker process, no IPC, no results files: it imports the framework (the adapter's
``setup``) and, for every case of every ``CASES_DIR/*.yaml`` except ``divergences.yaml`` that the
impl can express, does what the worker and the test item do for a run: ``impl.run`` on the
canonical input, weights and initial states (``conformance.worker.serve``), then every check against
the NumPy reference with the same declared divergences (``checks.evaluate``, as
``conformance.results.execute`` calls it). Prints one JSON line: the phases' times (seconds from
this process's first statement) and every run's time.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    impl_id, cases_dir = sys.argv[1], Path(sys.argv[2])
    from conformance import checks, impls, spec
    from conformance.reference import canonical_weights, initial_states, make_input

    impl = impls.get(impl_id)
    catalogue = spec.load_file(cases_dir / "divergences.yaml").divergences if (cases_dir / "divergences.yaml").is_file() else []
    files = [spec.load_file(p) for p in sorted(cases_dir.glob("*.yaml")) if p.name != "divergences.yaml"]
    t_loaded = time.perf_counter()
    versions = {str(k): str(v) for k, v in impl.setup().items()}
    impl.devices()
    t_setup = time.perf_counter()
    runs, verdicts, unsupported = [], {}, 0
    for cf in files:
        divergences = catalogue + list(cf.divergences)
        for case in cf.cases:
            cfg = case.config
            if impl.unsupported(cfg):
                unsupported += 1
                continue
            t0 = time.perf_counter()
            try:
                obs = impl.run(cfg, "cpu", make_input(cfg), canonical_weights(cfg), initial_states(cfg))
            except Exception as exc:  # noqa: BLE001 - as the worker does: an error is a verdict
                obs = None
                verdict = f"error ({type(exc).__name__})"
            t1 = time.perf_counter()
            if obs is not None and obs.status == "ok":
                res = checks.evaluate(case, impl_id, "cpu", obs, impl.param_formula, divergences, versions)
                verdict = checks.worst(c["verdict"] for c in res.values())
            elif obs is not None:
                verdict = obs.status
            t2 = time.perf_counter()
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            runs.append({"case": case.id, "run_s": t1 - t0, "checks_s": t2 - t1})
    t_end = time.perf_counter()
    print(json.dumps({"impl": impl_id, "versions": versions, "conformance_imported_s": t_loaded - T0,
                      "setup_s": t_setup - t_loaded, "setup_done_s": t_setup - T0, "runs_s": t_end - t_setup,
                      "end_s": t_end - T0, "unsupported": unsupported, "verdicts": verdicts, "runs": runs}))


if __name__ == "__main__":
    main()
