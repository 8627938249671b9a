"""The ``conformance`` command.

``conformance run`` is pytest underneath (the same collection, selection and verdicts as
``pytest cases/``), always writing ``results.json`` and a report; ``conformance validate`` checks
case files without running anything; ``conformance impls`` lists implementations and whether
they can run here, without importing any framework; ``conformance report`` renders (and merges)
results files into one HTML report; ``conformance diff`` says what changed between two runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import impls, spec


def default_cases() -> Path:
    here = Path.cwd() / "cases"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "cases"


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    paths = [str(p) for p in args.paths] or [str(default_cases())]
    argv = [*paths] + (["--conformance-out", str(args.output)] if args.output else [])
    for p in paths:       # the paths given here are case paths: their files need no lstm-conformance marker
        argv += ["--conformance-cases", p]
    if args.no_cache:
        argv += ["-p", "no:cacheprovider"]
    for i in args.impl:
        argv += ["--impl", i]
    for d in args.device:
        argv += ["--device", d]
    if args.numprocesses:
        argv += ["-n", args.numprocesses]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.exitfirst:
        argv.append("-x")
    argv += ["-q", "-rfE", "--no-header", *extra]
    code = pytest.main(argv)
    return int(code)


def _validate(args: argparse.Namespace) -> int:
    paths = args.paths or [default_cases()]
    files = []
    for p in map(Path, paths):
        files += sorted(q for q in p.rglob("*.y*ml")) if p.is_dir() else [p]
    bad = 0
    loaded_files: list[spec.CaseFile] = []
    for f in files:
        try:
            loaded = spec.load_file(f)
            spec.check_unique_ids([*loaded_files, loaded])
        except spec.SpecError as exc:
            print(f"error: {exc}")
            bad += 1
            continue
        loaded_files.append(loaded)
        print(f"ok: {f}: {len(loaded.cases)} cases, {len(loaded.divergences)} divergences, "
              f"{sum(len(c.claims) for c in loaded.cases)} claims")
    return 1 if bad else 0


def _impls(args: argparse.Namespace) -> int:
    """Every implementation, whether it can run here, its package versions; with --devices, the
    devices each framework reports (this starts each installed implementation's worker)."""
    pool, started = None, {}
    if args.devices:
        from concurrent.futures import ThreadPoolExecutor

        from .runner import WorkerPool
        pool = WorkerPool()
        installed = [i for i in impls.ids() if not impls.get(i).missing()]
        executor = ThreadPoolExecutor(max_workers=max(1, len(installed)))   # frameworks start side by side
        started = {i: executor.submit(pool.info, i) for i in installed}
        executor.shutdown(wait=False)
    try:
        for impl_id in impls.ids():
            impl = impls.get(impl_id)
            missing = impl.missing()
            if missing:
                print(f"{impl_id:<22} not available: {missing}")
                continue
            versions = ", ".join(f"{k} {v}" for k, v in impl.installed_versions().items())
            print(f"{impl_id:<22} installed: {versions}")
            if pool is not None:
                try:
                    info = started[impl_id].result()
                    print(f"{'':<22} devices: " + ", ".join(f"{d} ({info['device_names'].get(d, d)})"
                                                           for d in info["devices"]))
                except Exception as exc:  # noqa: BLE001 - a worker that cannot start is reported, not fatal
                    print(f"{'':<22} devices: the worker could not start: {str(exc).splitlines()[0]}")
    finally:
        if pool is not None:
            pool.close()
    return 0


def _diff(args: argparse.Namespace) -> int:
    """Exit status 1 means regressions (``--fail-on``); anything that stops the diff is 2, said on stderr."""
    from . import diff as _d
    from .results import ResultsError, load, write_atomic

    def refuse(what: str) -> int:
        print(f"conformance diff: error: {what}", file=sys.stderr)
        return 2

    outputs = ([("--markdown", Path(args.markdown))] if args.markdown and args.markdown != "-" else []) \
        + ([("--html", Path(args.html))] if args.html else [])
    for opt, path in outputs:           # said before any work, and before anything is written
        try:
            if path.is_dir():
                return refuse(f"{opt} {path}: is a directory (give the file to write)")
        except OSError:
            pass                        # (no permission to look: said when writing)
    try:
        d = _d.compare(load(args.old), load(args.new), old_label=str(args.old), new_label=str(args.new))
    except ResultsError as exc:
        return refuse(str(exc))
    pages = {"--markdown": _d.to_markdown, "--html": _d.to_html}
    for opt, path in outputs:
        try:
            write_atomic(path, pages[opt](d))
        except OSError as exc:
            return refuse(f"{opt} {path}: cannot write: {exc.strerror or exc}"
                          + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path)
                             and not str(exc.filename).endswith(".tmp") else ""))
    print(_d.to_markdown(d) if args.markdown == "-" else _d.to_text(d), end="")
    return d.exit_status(args.fail_on)


def _report(args: argparse.Namespace) -> int:
    """Exit status 2, said on stderr, for results that cannot be read or a page that cannot be written."""
    from .report import write_report
    from .results import ResultsError

    def refuse(what: str) -> int:
        print(f"conformance report: error: {what}", file=sys.stderr)
        return 2

    try:
        if args.output.exists() and not args.output.is_dir():     # said before any work, and nothing written
            return refuse(f"-o {args.output}: is a file, not a directory (-o names the directory for index.html)")
    except OSError:
        pass                            # (no permission to look: said when writing)
    try:
        out = write_report(args.results, args.output / "index.html", baseline=args.baseline)
    except ResultsError as exc:
        return refuse(str(exc))
    except OSError as exc:
        return refuse(f"-o {args.output}: cannot write the report: {exc.strerror or exc}"
                      + (f" ({exc.filename})" if exc.filename and not str(exc.filename).endswith(".tmp") else ""))
    print(f"report: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run cases on the implementations; write results.json and a report",
                         description="Run LSTM cases on every selected implementation and device. Extra "
                                     "arguments after -- go to pytest.")
    run.add_argument("paths", nargs="*", type=Path, help="case files or directories (default: cases/)")
    run.add_argument("--impl", action="append", default=[], help="implementations (comma-separated, repeatable)")
    run.add_argument("--device", action="append", default=[], help="devices: cpu, gpu (comma-separated, repeatable)")
    run.add_argument("-o", "--output", type=Path, default=None,
                     help="output directory for results.json and index.html (default: reports/<run-id>/, "
                          "copied to reports/latest/)")
    run.add_argument("-n", "--numprocesses", default=None, help="parallel pytest-xdist workers (e.g. 2, auto)")
    run.add_argument("-k", "--keyword", default=None, help="only cases matching this pytest -k expression")
    run.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    run.add_argument("--no-cache", action="store_true", help="do not use pytest's cache (--lf state)")

    val = sub.add_parser("validate", help="check case files without running anything")
    val.add_argument("paths", nargs="*", type=Path)

    imp = sub.add_parser("impls", help="list implementations, whether they can run here, and their versions")
    imp.add_argument("--devices", action="store_true",
                     help="also start each installed implementation and list the devices it sees")

    dif = sub.add_parser("diff", help="what changed between two results.json (regressions, fixed, changed runs)",
                         description="List every run whose verdict or native result changed between two runs.")
    dif.add_argument("old", type=Path, help="results.json of the earlier run")
    dif.add_argument("new", type=Path, help="results.json of the later run")
    dif.add_argument("--markdown", metavar="FILE",
                     help="also write a Markdown summary ('-': to stdout, instead of the text)")
    dif.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    dif.add_argument("--fail-on", choices=("regression", "change", "never"), default="regression",
                     help="exit 1 on regressions (default), on any changed run, or never")

    rep = sub.add_parser("report", help="build one HTML report from one or more results.json (merge)",
                         description="Render results files into one self-contained HTML report. Several files "
                                     "(machines, devices, framework versions) merge: the same case on each sits "
                                     "side by side, columns named impl@device@version.")
    rep.add_argument("results", nargs="+", type=Path, help="results.json files")
    rep.add_argument("-o", "--output", type=Path, required=True, help="directory for index.html")
    rep.add_argument("--baseline", type=Path, default=None,
                     help="an earlier results.json: add a 'what changed' section (as conformance diff)")

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args, extra)
    if args.command == "validate":
        return _validate(args)
    if args.command == "diff":
        return _diff(args)
    if args.command == "report":
        return _report(args)
    return _impls(args)


if __name__ == "__main__":
    sys.exit(main())
