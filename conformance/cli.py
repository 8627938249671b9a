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
import textwrap
from pathlib import Path

from . import impls, options, spec


INVOKED: list[str] | None = None     # the `conformance ...` command line as typed (results record it)

RUN_USAGE = "conformance run [CASE_PATH ...] [OPTIONS] [PYTEST OPTIONS]"
RUN_EXAMPLES = """\
examples:
  conformance run                                    the shipped default case set, every implementation
  conformance run my_cases.yaml --impl torch,keras-tensorflow,flax-linen
  conformance run my_cases.yaml --divergences mine.yaml --run-timeout 60 -n 2
  conformance run --impl 'keras-*' -k bidirectional -x
  conformance run --device cpu -o reports/cpu-run    results.json and index.html in reports/cpu-run
  conformance run --shard 2/4 -o shard-2             one machine's quarter; merge with conformance report
  conformance run --conformance-fill reports/latest/results.json   finish what a killed session left
"""


def run_help() -> str:
    """``conformance run --help``: what it does, every option of the plugin (from the one table
    pytest reads too), and examples."""
    lines = [f"usage: {RUN_USAGE}", "",
             "Run LSTM cases on every selected implementation and device, write results.json and an HTML",
             "report (reports/<run-id>/, linked as reports/latest; or -o DIR). It is pytest underneath: every",
             "pytest option works here too (-k, -x, -n N, --lf, -v, ...; `pytest --help` lists them).",
             "CASE_PATH: case files or directories (their YAML files with top-level cases: or divergences:",
             "are case files); none: the default case set shipped with lstm-conformance.", "",
             "options:",
             "  -o DIR, --output DIR  the same as --conformance-out DIR (pytest's -o is --override-ini here)",
             "  --no-cache            do not use pytest's cache (the --lf state)"]
    for o in options.OPTIONS:
        if o.name == "--conformance-run":
            continue
        names = f"{o.alias}, {o.name}" if o.alias else o.name
        meta = f" {o.kwargs['metavar']}" if o.takes_value and o.kwargs.get("metavar") else ""
        lines.append(f"  {names}{meta}")
        lines += [f"      {t}" for t in textwrap.wrap(o.help or options._impl_help(), 88)]
    return "\n".join(lines) + "\n\n" + RUN_EXAMPLES


def run_args(argv: list[str]) -> list[str]:
    """``conformance run``'s arguments as pytest's: aliases spelled by their prefixed names, ``-o DIR``
    as ``--conformance-out DIR``, ``--no-cache`` as ``-p no:cacheprovider``; a ``--`` (older command
    lines put pytest options after one) dropped, and what follows it passed as it is."""
    out: list[str] = []
    rest: list[str] = []
    if "--" in argv:
        argv, rest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    it = iter(options.canonical(argv))
    for a in it:
        if a in ("-o", "--output"):
            out += ["--conformance-out", next(it, "")]
        elif a.startswith("--output="):
            out.append("--conformance-out=" + a.partition("=")[2])
        elif a.startswith("-o") and not a.startswith("--"):
            out.append("--conformance-out=" + a[2:].removeprefix("="))
        elif a == "--no-cache":
            out += ["-p", "no:cacheprovider"]
        else:
            out.append(a)
    return out + rest


def _run(argv: list[str]) -> int:
    import pytest

    if any(a in ("-h", "--help") for a in argv[:argv.index("--") if "--" in argv else None]):
        print(run_help(), end="")
        return 0
    return int(pytest.main(["--conformance-run", "-q", "-rfE", "--no-header", *run_args(argv)]))


def _validate(args: argparse.Namespace) -> int:
    from .catalogue import shipped_cases
    paths = args.paths or [shipped_cases()]
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
    from .report import load_sources, write_report
    from .shards import union
    from .results import ResultsError, to_json, write_atomic

    def refuse(what: str) -> int:
        print(f"conformance report: error: {what}", file=sys.stderr)
        return 2

    try:
        if args.output.exists() and not args.output.is_dir():     # said before any work, and nothing written
            return refuse(f"-o {args.output}: is a file, not a directory (-o names the directory for index.html)")
    except OSError:
        pass                            # (no permission to look: said when writing)
    try:
        sources = load_sources(args.results)
        out = write_report(sources, args.output / "index.html", baseline=args.baseline)
        whole = union(sources) if len(args.results) > 1 else None   # shards, a CI matrix's jobs: one results.json
        if whole is not None:
            write_atomic(args.output / "results.json", to_json(whole))
    except ResultsError as exc:
        return refuse(str(exc))
    except OSError as exc:
        return refuse(f"-o {args.output}: cannot write the report: {exc.strerror or exc}"
                      + (f" ({exc.filename})" if exc.filename and not str(exc.filename).endswith(".tmp") else ""))
    print(f"report: {out}")
    if whole is not None:
        print(f"results: {args.output / 'results.json'} ({len(whole['runs'])} runs from {len(args.results)} files)")
    elif len(args.results) > 1:
        print("results: no combined results.json: two of the files hold the same run (framework releases or "
              "machines side by side); the report shows them as separate columns")
    incomplete = False
    for label, doc in sources:
        sh = doc.get("shards")
        if sh:
            n = sh["count"]
            missing = ", ".join(f"{i}/{n}" for i in sh["missing"])
            print(f"shards: {len(sh['arrived'])} of {n} arrived" + (f"; missing: {missing}" if missing else ""))
            incomplete |= bool(sh["missing"])
    return 1 if incomplete else 0


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="conformance", formatter_class=raw,
        description="Cross-framework conformance suite for LSTM layers: the same case on Keras, PyTorch and "
                    "Flax, checked against a float64 reference, with declared divergences explained.",
        epilog="examples:\n"
               "  conformance run                           the shipped default case set, every implementation\n"
               "  conformance run my_cases.yaml --impl torch,flax-linen -n 2\n"
               "  conformance validate my_cases.yaml        check a case file without running it\n"
               "  conformance impls --devices               what can run here, and on which devices\n"
               "  conformance report shard-*/results.json -o reports/merged\n"
               "  conformance diff old.json new.json --markdown summary.md\n"
               "  conformance explore --time 1800 --seed 7   search for undeclared differences, shrink them\n\n"
               "`conformance COMMAND --help` says more about each.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", add_help=False,
                   help="run cases on the implementations; write results.json and a report (every pytest option too)")

    val = sub.add_parser("validate", help="check case files without running anything", formatter_class=raw,
                         description="Load and check case files (schema, limits, unique ids), running nothing; "
                                     "exit 1 if any does not load.",
                         epilog="examples:\n  conformance validate                 the shipped default case set\n"
                                "  conformance validate my_cases.yaml other/")
    val.add_argument("paths", nargs="*", type=Path, help="case files or directories (default: the shipped case set)")

    imp = sub.add_parser("impls", help="list implementations, whether they can run here, and their versions",
                         formatter_class=raw, description="List every implementation, whether its framework is "
                         "installed here (with versions) or what to install; imports no framework.",
                         epilog="examples:\n  conformance impls\n  conformance impls --devices   "
                                "starts each installed framework to list its devices")
    imp.add_argument("--devices", action="store_true",
                     help="also start each installed implementation and list the devices it sees")

    dif = sub.add_parser("diff", help="what changed between two results.json (regressions, fixed, changed runs)",
                         formatter_class=raw,
                         description="List every run whose verdict or native result changed between two runs; "
                                     "exit 1 on regressions (see --fail-on), 2 when a file cannot be read.",
                         epilog="examples:\n  conformance diff main/results.json reports/latest/results.json\n"
                                "  conformance diff old.json new.json --markdown - --fail-on never   "
                                "a Markdown summary for a pull request")
    dif.add_argument("old", type=Path, help="results.json of the earlier run")
    dif.add_argument("new", type=Path, help="results.json of the later run")
    dif.add_argument("--markdown", metavar="FILE",
                     help="also write a Markdown summary ('-': to stdout, instead of the text)")
    dif.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    dif.add_argument("--fail-on", choices=("regression", "change", "never"), default="regression",
                     help="exit 1 on regressions (default), on any changed run, or never")

    rep = sub.add_parser("report", help="build one HTML report from one or more results.json (merge, shards)",
                         formatter_class=raw,
                         description="Render results files into one self-contained HTML report. Several files "
                                     "(machines, devices, framework versions) merge: the same case on each sits "
                                     "side by side, columns named impl@device@version. The shards of one "
                                     "session (--shard I/N) are put back together first: the report and the "
                                     "terminal say whether every shard arrived (exit 1 when one did not), and "
                                     "the combined results.json is written beside index.html.",
                         epilog="examples:\n  conformance report reports/latest/results.json -o reports/again\n"
                                "  conformance report laptop.json gpu-box.json -o reports/merged\n"
                                "  conformance report shard-*/results.json -o reports/all --baseline main.json")
    rep.add_argument("results", nargs="+", type=Path, help="results.json files")
    rep.add_argument("-o", "--output", type=Path, required=True, help="directory for index.html")
    rep.add_argument("--baseline", type=Path, default=None,
                     help="an earlier results.json: add a 'what changed' section (as conformance diff)")
    from .explore import add_parser as add_explore
    add_explore(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from . import cli          # (this module, also when run as python -m conformance.cli)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:           # pytest parses the rest: every plugin and pytest option works
        cli.INVOKED = ["conformance", *argv]
        try:
            return _run(argv[1:])
        finally:
            cli.INVOKED = None
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args)
    if args.command == "diff":
        return _diff(args)
    if args.command == "report":
        return _report(args)
    if args.command == "explore":
        from .explore import main as explore
        return explore(args)
    return _impls(args)


if __name__ == "__main__":
    sys.exit(main())
