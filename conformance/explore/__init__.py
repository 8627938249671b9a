"""``conformance explore``: search the configuration space for differences nobody wrote a case for,
and shrink each to a minimal case.

Hand-written cases confirm what their authors thought of; the differences that matter most to a
maintainer sit in combinations nobody wrote. This draws configurations from the whole case language
(:mod:`.space`), runs each on every selected implementation through the same engine as
``conformance run`` (:mod:`.engine`), groups what disagrees by signature (:mod:`.signature`),
shrinks each new signature to a minimal configuration (:mod:`.shrink`), runs its repro snippets on
the bare framework (:mod:`.confirm`), journals everything as it goes (:mod:`.journal`) and writes
findings.json, a case file, repros and a draft report per finding, and index.html
(:mod:`.findings`, :mod:`.page`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  conformance explore --time 1800 --seed 7 -o reports/explore          30 minutes, every implementation
  conformance explore --impl 'keras-*,torch' --max-configs 200 -o reports/keras-torch
  conformance explore --resume reports/explore --time 600                go on where it stopped
  conformance explore --shard 2/4 --seed 7 --time 3600 -o shard-2         a quarter of the indices
  conformance explore --merge shard-*/ -o reports/explore-all             put shards' findings together
"""


def add_parser(sub) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "explore", formatter_class=raw, epilog=EXAMPLES,
        help="search the configuration space for undeclared differences; shrink each to a minimal case",
        description="Draw configurations from the whole case language (seeded: the same seed draws the same "
                    "configurations), run each on every selected implementation with the same checks, reference "
                    "and declarations as `conformance run`, group what differs by signature (check, kind, "
                    "implementations), shrink each new signature to a minimal configuration, run its repro on the "
                    "bare framework, and write DIR/findings.json, DIR/index.html, DIR/cases/<finding>.yaml and "
                    "DIR/findings/<finding>/ (repros, native facts, a draft upstream report). Everything is "
                    "journaled as it goes: Ctrl-C keeps what was found, --resume DIR goes on.")
    p.add_argument("--impl", action="append", default=[], metavar="IDS",
                   help="implementations: comma-separated, repeatable, globs (default: every one installed)")
    p.add_argument("--device", action="append", default=[], metavar="DEVICE", choices=("cpu", "gpu"),
                   help="cpu, gpu (default: every device here)")
    p.add_argument("--max-configs", type=int, metavar="N", help="stop after N configurations (resumed ones count)")
    p.add_argument("--time", type=float, metavar="SECONDS", help="stop after this many seconds (this session)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the configurations drawn (default 0)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="where to write (default reports/explore)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="go on with the explore in DIR (its settings)")
    p.add_argument("--shard", metavar="I/N", help="draw only the indices of shard I of N (counted from 1)")
    p.add_argument("--merge", type=Path, nargs="+", metavar="DIR", help="merge the findings of these explores into -o")
    p.add_argument("--divergences", action="append", default=[], type=Path, metavar="FILE",
                   help="an extra known-divergence catalogue (repeatable)")
    p.add_argument("--no-builtin-divergences", action="store_true", help="do not apply the shipped catalogue")
    p.add_argument("--shrink-tries", type=int, default=None, metavar="N",
                   help="configurations tried to shrink one finding (default 48)")
    p.add_argument("--no-confirm", action="store_true", help="do not run repros on the bare frameworks")
    p.add_argument("--shape-only", action="store_true",
                   help="a first pass at scale: every configuration shape-only (as conformance run --shape-only: the "
                        "frameworks' shape inference, no values)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="implementations run side by side (default: the CPU count, at most 4)")
    p.add_argument("--run-timeout", type=float, default=120.0, metavar="SECONDS", help="a longer run is an error")


class UsageError(ValueError):
    pass


def _positive(value, option: str, integer: bool = False):
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0 or value > 1e9 or (integer and value != int(value)):
        raise UsageError(f"{option} {value}: must be a positive {'integer' if integer else 'number'}, at most 1e9")
    return value


def _check_saved(fixed: dict, path: Path) -> None:
    """The settings an explore saved, as hostile as any input: known implementations and devices, a
    shard I/N, catalogue files that are still there."""
    from .. import impls

    def bad(what: str):
        raise UsageError(f"{path}: {what}; it is not an explore's settings file, or it was edited")

    if not isinstance(fixed["impls"], list) or not fixed["impls"] or any(i not in impls.ids() for i in fixed["impls"]):
        bad(f"impls {str(fixed['impls'])[:200]} are not implementations ({', '.join(impls.ids())})")
    if not isinstance(fixed["devices"], list) or not fixed["devices"] or any(d not in ("cpu", "gpu")
                                                                             for d in fixed["devices"]):
        bad(f"devices {str(fixed['devices'])[:100]} are not cpu or gpu")
    shard = fixed.get("shard")
    if shard is not None and not (isinstance(shard, list) and len(shard) == 2 and all(type(x) is int for x in shard)
                                  and 1 <= shard[0] <= shard[1]):
        bad(f"shard {str(shard)[:100]} is not [I, N]")
    if not 0 <= fixed["seed"] <= 10**9:
        bad(f"seed {fixed['seed']} is not from 0 to 1e9")
    if not isinstance(fixed.get("divergences"), list) or any(not isinstance(f, str) or not Path(f).is_file()
                                                             for f in fixed["divergences"]):
        bad(f"divergences {str(fixed.get('divergences'))[:200]} are not catalogue files here")
    if not isinstance(fixed.get("builtin"), bool):
        bad("builtin is not true or false")
    if not isinstance(fixed.get("shape_only"), bool):
        bad("shape_only is not true or false")


def settings_from(args) -> tuple:
    from ..devices import default_devices
    from . import engine, journal

    if args.resume is not None:
        saved = journal.read_settings(args.resume)
        fixed = {k: saved.get(k) for k in engine.Settings.FIXED}
        fixed["shape_only"] = saved.get("shape_only", False)      # (explores saved before shape-only mode: eager)
        _check_saved(fixed, args.resume / journal.SETTINGS)
        fixed["shard"] = tuple(fixed["shard"]) if fixed.get("shard") else None
        s = engine.Settings(**fixed)
        s.max_configs = args.max_configs if args.max_configs is not None else saved.get("max_configs")
        s.shrink_tries = saved.get("shrink_tries", s.shrink_tries)
        s.confirm = saved.get("confirm", True)
        out = args.resume
    else:
        if args.shard:
            from ..shards import _SHARD_RE, MAX_SHARDS
            m = _SHARD_RE.match(args.shard)
            if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= MAX_SHARDS:
                raise UsageError(f"--shard {args.shard!r}: must be I/N with 1 <= I <= N, e.g. 1/4")
        names = [v.strip() for value in args.impl for v in value.split(",") if v.strip()]
        if args.impl and not names:
            raise UsageError("--impl names nothing; leave it out for every implementation")
        try:
            from .. import impls as _impls
            chosen = _impls.select(names)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        from .. import impls
        installed = [i for i in chosen if not impls.get(i).missing()]
        if not installed:
            raise UsageError("none of the selected implementations is installed here (conformance impls says why)")
        for f in args.divergences:
            if not f.is_file():
                raise UsageError(f"--divergences {f}: not a file")
        if not 0 <= args.seed <= 10**9:
            raise UsageError(f"--seed {args.seed}: from 0 to 1e9")
        s = engine.Settings(seed=args.seed, impls=installed, devices=list(dict.fromkeys(args.device)) or default_devices(),
                            max_configs=args.max_configs,
                            shard=tuple(int(x) for x in args.shard.split("/")) if args.shard else None,
                            divergences=[str(p) for p in args.divergences], builtin=not args.no_builtin_divergences,
                            confirm=not args.no_confirm, shape_only=args.shape_only)
        out = args.output or Path("reports/explore")
    s.time_s = _positive(args.time, "--time")
    _positive(s.max_configs, "--max-configs", integer=True)
    if args.shrink_tries is not None:
        if args.shrink_tries < 0 or args.shrink_tries > 10_000:
            raise UsageError(f"--shrink-tries {args.shrink_tries}: from 0 to 10000")
        s.shrink_tries = args.shrink_tries
    s.jobs = int(_positive(args.jobs, "--jobs", integer=True) or min(4, os.cpu_count() or 1))
    s.run_timeout = _positive(args.run_timeout, "--run-timeout")
    if s.max_configs is None and s.time_s is None:
        raise UsageError("give --max-configs, --time or both: an explore without a bound never stops")
    return s, Path(out)


def main(args) -> int:
    from ..results import ResultsError
    from . import engine, findings, journal

    def refuse(what: str, status: int = 2) -> int:
        print(f"conformance explore: error: {what}", file=sys.stderr)
        return status

    try:
        if args.merge:
            if args.output is None:
                return refuse("--merge needs -o DIR (where the merged findings go)")
            docs = [(str(d), findings.load(d)) for d in args.merge]
            doc = findings.merge(docs)
            findings.write_files(args.output, doc)
            print(f"merged {len(docs)} explores: {len(doc['findings'])} findings, {doc['state']['configs']} "
                  f"configurations; {args.output / findings.FINDINGS}, {args.output / 'index.html'}")
            return 0
        settings, out = settings_from(args)
        if args.resume is None and (out / journal.JOURNAL).exists():
            return refuse(f"{out} holds an explore already: --resume {out} to go on with it, or another -o")
        explorer = engine.Explorer(out, settings, resume=args.resume is not None)
    except (UsageError, journal.JournalError, ResultsError) as exc:
        return refuse(str(exc), 4 if isinstance(exc, UsageError) else 2)
    except OSError as exc:
        return refuse(f"{exc.filename or ''}: {exc.strerror or exc}")
    stopped = explorer.explore()
    doc = findings.document(explorer)
    try:
        findings.write_files(out, doc)
    except OSError as exc:
        return refuse(f"cannot write the findings to {out}: {exc.strerror or exc} (the journal keeps everything "
                      f"found: --resume {out} writes them again)")
    new = [e for e in doc["findings"]]
    print(f"explore: {doc['state']['configs']} configurations, stopped by {stopped}; {len(new)} findings; "
          f"{sum(doc['known'].values())} differences explained by {len(doc['known'])} declarations")
    for e in new:
        ok = [w for w, c in (e.get("confirm") or {}).items() if c["confirmed"]]
        print(f"  {e['signature']}  ({e['configs']} configurations; minimal: {e['case_file']}"
              + (f"; confirmed on {', '.join(ok)}" if ok else "") + ")")
    print(f"findings: {out / findings.FINDINGS}   page: {out / 'index.html'}")
    return 130 if stopped == "interrupted" else 0
