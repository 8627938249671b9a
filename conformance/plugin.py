"""pytest plugin: YAML case files become test items, one per case × implementation × device.

Registered through the ``pytest11`` entry point, so ``pytest cases/`` just works, with ``-k``,
``-x``, ``--lf``, ``-n auto`` and JUnit XML as maintainers expect. Item ids look like
``cases/returns.yaml::return-flags.return_sequences-true[torch-cpu]``.

Which YAML files are collected: those with a top-level ``lstm-conformance: 1`` line, wherever
they are; and a YAML file named on the command line, or under a directory given with
``--conformance-cases`` (``conformance run PATH`` does that), when it holds top-level ``cases:`` or
``divergences:``. Nothing else, so installed, the plugin leaves other projects' YAML alone. Known
divergences come from ``divergences.yaml`` files (marked) in the case file's directory and its
parents up to the rootdir, never above it (like conftest.py), from ``--divergences FILE``, and from
the case file's own ``divergences:`` (which apply to that file only).

Every run's record travels in the test report's ``user_properties`` (xdist carries those to the
controller), and the controller writes ``results.json`` and ``index.html`` for every session that
ran cases: into ``--conformance-out DIR``, or into ``reports/<run-id>/`` under the rootdir, with
``reports/latest`` a link to it (see :mod:`conformance.output`). Nothing at the session's end reads
an input again: the declarations in each file's scope travel with its items, so a case file edited,
moved or deleted while the session runs changes nothing in its results.
"""

from __future__ import annotations

import fnmatch
import json
import math
import signal
import threading
from pathlib import Path

import pytest

from . import catalogue, checks, impls, options, shards, spec
from .devices import DEVICES, default_devices
from .fields import CHECKS, SHAPE_CHECKS

_KEY = pytest.StashKey["ConformanceSession"]()
_ALIASES_LEFT = pytest.StashKey[list]()
_PROP = "conformance"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_DECLARED = "conformance-declared"   # once per case file and process: the declarations in the file's scope


def pytest_addoption(parser):
    options.register(parser)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """The short aliases (``--impl``, ``--device``, ...) once the rootdir conftests have registered
    theirs: a name another project's conftest already uses stays theirs (see :mod:`conformance.options`)."""
    result = yield
    early_config.stash[_ALIASES_LEFT] = options.add_free_aliases(parser)
    return result


def _split(values: list[str], option: str) -> list[str]:
    for value in values:            # `--impl ''` (an empty shell variable) is not "all of them"
        if not value.replace(",", "").strip():
            raise pytest.UsageError(f"{option} {value!r}: names nothing; leave the option out for all")
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _select_impls(patterns: list[str]) -> list[str]:
    try:
        return impls.select(patterns)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _select_devices(values: list[str]) -> list[str]:
    if not values:
        return default_devices()
    for v in values:
        if v not in DEVICES:
            raise pytest.UsageError(f"--device {v!r} is not a device; use one of {', '.join(DEVICES)}")
    return list(dict.fromkeys(values))


MAX_SECONDS = 1e6      # ~11.6 days; larger values overflow the OS's timeouts (poll) rather than mean anything


def _positive_seconds(value: float, option: str, allow_zero: bool = False) -> float:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value > MAX_SECONDS:
        raise pytest.UsageError(f"{option} {value:g}: must be a finite number of seconds "
                                f"{'>= 0' if allow_zero else '> 0'}, at most {MAX_SECONDS:g}")
    return value


def key_of(record: dict) -> tuple[str, str, str, str]:
    """What names a run in results: its case file (as results record it), case, impl and device."""
    return record["file"], record["case"], record["impl"], record["device"]


def node_file(path: str, root: Path, bases=()) -> Path:
    """The case file a node id's path names: relative to the rootdir ``root``, or (a file outside
    the rootdir, e.g. the shipped case set of an installed package) to one of the session's
    initial paths ``bases``, as pytest names those."""
    for base in (root, *bases):
        if (base / path).is_file():
            return base / path
    return root / path


def run_key(nodeid: str, root: Path, bases=()) -> tuple[str, str, str, str] | None:
    """The :func:`key_of` of a conformance item's node id (``file::case[impl-device]``, file as in
    :func:`node_file`), else None."""
    from .results import display_path

    path, sep, rest = nodeid.rpartition("::")
    if not sep or not path.endswith((".yaml", ".yml")) or not rest.endswith("]") or "[" not in rest:
        return None
    case, _, column = rest[:-1].rpartition("[")
    impl, _, device = column.rpartition("-")
    return (display_path(str(node_file(path, root, bases)), root), case, impl, device) \
        if impl and device in DEVICES else None


class ConformanceSession:
    """Per-process state: selection, catalogues, the worker pool, and (controller) the records."""

    def __init__(self, config: pytest.Config):
        self.config = config
        if "conformance_snapshot" in getattr(config, "workerinput", {}):   # a replacement xdist worker
            spec.SNAPSHOT.update(config.workerinput["conformance_snapshot"])   # reads what the first ones read
        self._catalogues: dict[Path, list[spec.Divergence]] = {}
        self.is_worker = hasattr(config, "workerinput")      # an xdist worker: the controller writes results
        self.impls = _select_impls(_split(config.getoption("conformance_impl"), "--impl"))
        self.devices = _select_devices(_split(config.getoption("conformance_device"), "--device"))
        self.extra_catalogues = [Path(p) for p in config.getoption("conformance_divergences")]
        self.builtin = not config.getoption("conformance_no_builtin_divergences")
        for path in self.extra_catalogues:         # read once now (a bad one is a usage error), kept for the session
            try:
                self._catalogue(path)
            except spec.SpecError as exc:
                raise pytest.UsageError(f"--divergences: {exc}") from None
        self._catalogue(catalogue.builtin_catalogue())   # even when off: it says what would have explained a run
        self.shard = shards.parse_option(config.getoption("conformance_shard"))
        self.doc_extra: dict = {"catalogues": []}    # top-level keys of results.json (catalogues used, shard)
        self.run_timeout = _positive_seconds(config.getoption("conformance_run_timeout"), "--run-timeout")
        self.shape_only = bool(config.getoption("conformance_shape_only"))
        self.symbolic = not self.shape_only and not config.getoption("conformance_no_symbolic")
        self.flush_s = _positive_seconds(config.getoption("conformance_flush"), "--conformance-flush", allow_zero=True)
        from .settings import SettingError, check
        try:
            self.environment_extra = check()          # the suite's environment variables, before any run
        except SettingError as exc:
            raise pytest.UsageError(str(exc)) from None
        self._pool = None
        self.records: list[dict] = []
        self.collection_errors: list[dict] = []   # case files that did not load: {"file", "message"}
        self.expected: int | None = None     # conformance runs this session's results should hold
        self.output = None                   # output.RunOutput (controller, unless --no-conformance-report)
        self.results_path: Path | None = None
        self.case_files: list[spec.CaseFile] = []   # collected so far (case ids are unique across them)
        self.declared: dict[str, list[dict]] = {}   # case file -> the declarations in its scope (sent by items)
        self._declared_sent: set[str] = set()        # files whose declarations this process has sent
        self.crashed: list[str] = []           # items an xdist worker was running when it died
        self.stop_signal: str | None = None    # SIGINT, SIGTERM or SIGHUP, when one ended the session
        self.late_signal: str | None = None    # one that came while the session stopped or wrote its results
        self._handled_signals: list = []
        self._writing = False                  # the session is writing its results: a stop signal waits
        self.filled: list[dict] = []           # runs taken from --conformance-fill's file
        self.rerun_from_fill = 0               # of those, runs collected again (their configuration changed)
        self.abandoned: list[str] = []        # items no xdist worker could run (their files changed mid-session)
        self.snapshot: dict[str, str] = {}     # case files and catalogues as the session first read them
        self.fill_path = config.getoption("conformance_fill")
        given = getattr(config, "workerinput", {})
        if "conformance_fill" in given:        # xdist workers: the controller read the file (it may have changed)
            self.filled = given["conformance_fill"]
        elif self.fill_path:
            from .results import ResultsError, load
            try:
                fill_doc = load(self.fill_path)
            except ResultsError as exc:
                raise pytest.UsageError(f"--conformance-fill: {exc}") from None
            self.filled = fill_doc["runs"]
            injected = fill_doc.get("environment", {}).get("fault_injection")
            if injected:                       # the filled runs were made with fault injection: say so too
                self.environment_extra["filled_runs_fault_injection"] = injected
        self.records += self.filled
        self._reindex()
        if self.shard is not None:
            self.doc_extra["shard"] = {"index": self.shard[0], "count": self.shard[1], "group": self._shard_group()}
        self.environment_extra["builtin_divergences"] = self.builtin
        if self.shape_only:
            self.environment_extra["shape_only"] = True
        elif not self.symbolic:
            self.environment_extra["symbolic"] = False
        self.environment_extra["command"] = _command(config)
        if not self.is_worker and not config.getoption("no_conformance_report"):
            from .output import OutputError, check_destination
            out = config.getoption("conformance_out")
            if out is not None and not out.strip():
                raise pytest.UsageError("--conformance-out '': names no directory; leave the option out for reports/")
            try:
                check_destination(Path(out) if out else None, config.rootpath / "reports")
            except OutputError as exc:
                raise pytest.UsageError(str(exc)) from None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """What every xdist worker is given instead of reading it again: the runs --conformance-fill
        already holds (``reports/latest`` names this session once it has started), and, for a
        worker that replaces a dead one, the case files and catalogues as the session first read them."""
        node.workerinput["conformance_fill"] = [
            {k: r[k] for k in ("file", "case", "impl", "device", "config")} for r in self.filled]
        if self.snapshot:
            node.workerinput["conformance_snapshot"] = self.snapshot

    def _take_snapshot(self, files: set[Path]) -> None:
        """The text of the collected case files and of every catalogue in their scope, read now,
        once (for replacement xdist workers: see pytest_configure_node)."""
        paths = set(self.extra_catalogues)
        for f in files:
            paths.add(f)
            try:
                paths.update(s.path for s in self.catalogue_sources(f))
            except OSError:
                pass
        for p in paths:
            key = spec.snapshot_key(p)
            if key not in self.snapshot:
                try:
                    self.snapshot[key] = spec.read_text(p)
                except spec.SpecError:
                    pass                           # gone or unreadable already: a replacement finds that itself

    def _shard_group(self) -> str:
        """What the shards of one session share (see :func:`conformance.shards.group_of`): the
        selection and the installed framework releases, not the shard index."""
        from .results import display_path
        o = self.config.option
        return shards.group_of({
            "impls": self.impls, "devices": self.devices, "keyword": o.keyword, "markexpr": o.markexpr,
            "paths": sorted(display_path(str(Path(a.split("::")[0]).resolve()), self.config.rootpath)
                            for a in self.config.args),
            "divergences": [str(p) for p in self.extra_catalogues], "builtin": self.builtin,
            "versions": {i: impls.get(i).installed_versions() for i in self.impls},
            "fill": bool(self.fill_path)})

    def _reindex(self) -> None:
        self._index = {key_of(r): i for i, r in enumerate(self.records)}

    @property
    def pool(self):
        if self._pool is None:
            from .runner import WorkerPool
            self._pool = WorkerPool(run_timeout=self.run_timeout, stop_requested=lambda: self.stop_signal)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def _catalogue(self, path: Path) -> list[spec.Divergence]:
        path = path.resolve()
        if path not in self._catalogues:
            self._catalogues[path] = spec.load_file(path).divergences
        return self._catalogues[path]

    def catalogue_sources(self, case_file: Path) -> list[catalogue.Source]:
        """The catalogues in the case file's scope, broadest first (see :mod:`conformance.catalogue`)."""
        return catalogue.sources(case_file, self.config.rootpath, self.extra_catalogues, self.builtin)

    def known_divergences(self) -> list[spec.Divergence]:
        """Every declaration this process has read: every catalogue and every case file's own."""
        return [d for ds in self._catalogues.values() for d in ds] + [d for f in self.case_files for d in f.divergences]

    # ---- controller side: gather every record (from xdist workers too), write results at the end ----

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """SIGTERM and SIGHUP end the session as Ctrl-C (SIGINT) does: its finished runs are written,
        marked partial, saying which signal. A second signal while it stops, or any while it writes
        its results, is noted, not obeyed: the results are written whole, then the session ends
        (exit status 2, interrupted)."""
        if self.is_worker or threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                self._handled_signals.append((sig, signal.getsignal(sig)))
                signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, signum, frame):
        name = signal.Signals(signum).name
        if self._writing or self.stop_signal is not None:
            self.late_signal = self.late_signal or name
            return
        self.stop_signal = name
        raise KeyboardInterrupt(name)

    def restore_signals(self) -> None:
        for sig, handler in self._handled_signals:
            signal.signal(sig, handler)
        self._handled_signals = []

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list) -> None:
        """--shard I/N: deselect the runs of the other shards. --conformance-fill: deselect the runs
        its results file already holds, unless the case's configuration has changed since (those run
        again)."""
        from .results import display_path
        if self.shard is not None:
            index, count = self.shard
            keep, skip = [], []
            for item in items:
                key = isinstance(item, CaseItem) and (display_path(item.case.file, config.rootpath), item.case.id,
                                                      item.impl_id, item.device)
                (skip if key and shards.shard_of(key, count) != index else keep).append(item)
            self.doc_extra["shard"]["collected"] = sum(isinstance(i, CaseItem) for i in items)
            if skip:
                config.hook.pytest_deselected(items=skip)
                items[:] = keep
        if not self.filled:
            return
        mode = "shape-only" if self.shape_only else "eager"      # a run of the other mode is not this session's
        done = {key_of(r): r["config"] for r in self.filled if r.get("mode", "eager") == mode}
        keep, skip = [], []
        for item in items:
            key = isinstance(item, CaseItem) and (display_path(item.case.file, config.rootpath), item.case.id,
                                                  item.impl_id, item.device)
            if key in done and done[key] == json.loads(json.dumps(item.case.config.to_dict())):
                skip.append(item)
            else:
                keep.append(item)
        if skip:
            config.hook.pytest_deselected(items=skip)
            items[:] = keep

    def _collected(self, keys: set) -> None:
        """The controller knows which runs this session makes: filled runs collected again are
        dropped (their configuration changed), the output is opened, before any run."""
        if self.expected is not None:
            return
        if self.filled:
            stale = [r for r in self.filled if key_of(r) in keys]
            self.rerun_from_fill = len(stale)
            self.records = [r for r in self.records if key_of(r) not in keys]
            self._reindex()
        self.expected = len(keys) + len(self.records)
        if (keys or self.collection_errors or self.shard) and not self.config.option.collectonly:
            out = self._output()
            if out is not None:
                out.open(self.expected)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.is_worker and not getattr(self.config.option, "numprocesses", None):
            from .results import display_path
            self._collected({(display_path(i.case.file, self.config.rootpath), i.case.id, i.impl_id, i.device)
                             for i in session.items if isinstance(i, CaseItem)})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        root, bases = self.config.rootpath, self._bases()
        if self.expected is None:                 # every xdist worker collects the same (the first one counts)
            self._take_snapshot({node_file(i.rpartition("::")[0], root, bases) for i in ids if run_key(i, root)})
        self._collected({k for k in (run_key(i, root, bases) for i in ids) if k is not None})

    def _bases(self) -> list[Path]:
        """The directories of the session's initial paths (what pytest names files outside the rootdir by)."""
        here = self.config.invocation_params.dir
        out = []
        for a in self.config.args:
            p = here / a.split("::")[0]
            out.append(p if p.is_dir() else p.parent)
        return out

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem, report, sched) -> None:
        self.crashed.append(crashitem)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A case file that did not load is kept (results.json, the report) and, in a session that
        has no other collection error, does not stop the other files' runs (it still fails the session)."""
        if report.failed and report.nodeid.endswith((".yaml", ".yml")) and not self.is_worker:
            message = str(report.longrepr).strip()
            if not any(e["file"] == report.nodeid and e["message"] == message for e in self.collection_errors):
                self.collection_errors.append({"file": report.nodeid, "message": message})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if session.testsfailed and session.testsfailed == len(self.collection_errors):
            session.config.option.continue_on_collection_errors = True

    def _say(self, line: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(line, yellow=line.startswith(("warning", "note")), red=line.startswith("error"))
        else:
            print(line)

    def _output(self):
        if self.output is None and not self.config.getoption("no_conformance_report"):
            from .output import RunOutput
            out = self.config.getoption("conformance_out")
            self.output = RunOutput(Path(out) if out else None, self.config.rootpath / "reports",
                                    argv=self.config.invocation_params.args, flush_every_s=self.flush_s,
                                    say=self._say)
            self.output.collection_errors = self.collection_errors
            self.output.environment_extra = self.environment_extra
            self.output.document_extra = self.doc_extra
        return self.output

    @pytest.hookimpl(tryfirst=True)   # results reach disk before the terminal says the run passed
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or self.is_worker:
            return
        for name, value in report.user_properties:
            if name == _DECLARED:
                sent = json.loads(value)
                self.declared[sent["file"]] = sent["declarations"]
                for c in sent.get("catalogues", []):
                    if c not in self.doc_extra["catalogues"]:
                        self.doc_extra["catalogues"].append(c)
            elif name == _PROP:
                rec = json.loads(value)
                key = key_of(rec)
                if key in self._index:          # run again in this session (--dist each, a rerun plugin): the last counts
                    self.records[self._index[key]] = rec
                else:
                    self._index[key] = len(self.records)
                    self.records.append(rec)
                if (out := self._output()) is not None:
                    out.progress(self.records, self.expected)

    def _partial_reason(self, session: pytest.Session, exitstatus) -> str | None:
        """Why not every collected run has a record, as far as this session can tell; None when all do."""
        missing = (self.expected or 0) - len(self.records)
        if exitstatus == pytest.ExitCode.INTERRUPTED or self.stop_signal:
            how = f"stopped by {self.stop_signal}" if self.stop_signal not in (None, "SIGINT") else "interrupted"
            return f"the session was {how}"
        if missing <= 0:
            return None
        causes = []
        if self.abandoned:
            causes.append(f"{len(self.abandoned)} could not be run: the replacement for a crashed xdist worker "
                          "collected other items (case files changed during the session)")
        if self.crashed:
            causes.append(f"an xdist worker crashed while running {', '.join(self.crashed[:5])}"
                          + (f" and {len(self.crashed) - 5} more" if len(self.crashed) > 5 else ""))
        causes += [f"pytest stopped: {why}" for why in (session.shouldfail, session.shouldstop)   # -x, --maxfail
                   if isinstance(why, str) and why]
        return (f"{missing} collected runs did not finish: "
                + ("; ".join(causes) if causes else "the cause is unknown (see the failures above)"))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.is_worker:
            return  # an xdist worker: its records reached the controller in the reports
        self._writing = True
        opened = self.output is not None and self.output.opened
        if (opened or self.records or self.collection_errors) and (out := self._output()) is not None:
            from .output import partial
            reason = self._partial_reason(session, exitstatus)
            info = None if reason is None else partial(len(self.records), self.expected, reason)
            self.results_path = out.finish(self.records, info, self.unused_divergences())
            if out.written_to != out.dir and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED   # results not where asked: the session fails
        if self.fill_path and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.records:
            session.exitstatus = (pytest.ExitCode.TESTS_FAILED if any(r["verdict"] in checks.FAILING for r in self.records)
                                  else pytest.ExitCode.OK)       # everything was in the fill file: its verdicts
        if (self.shard and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
                and self.doc_extra["shard"].get("collected")):
            session.exitstatus = pytest.ExitCode.OK       # the session has runs; none fell to this shard
        if self.late_signal and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.INTERRUPTED        # obeyed once the results were written

    def unused_divergences(self) -> list[dict]:
        """Declarations in the scope of a case file that ran here, for an implementation that ran
        here, which explained none of its runs. From what the items sent: no file is read again."""
        used = {chk["divergence"]["id"] for r in self.records for chk in r["checks"].values() if chk.get("divergence")}
        ran = {r["impl"] for r in self.records if r["checks"]}
        declared: dict[str, dict] = {}
        from .results import display_path
        builtin = display_path(str(catalogue.builtin_catalogue()), self.config.rootpath)
        for f in sorted(self.declared):
            for d in self.declared[f]:
                if d["file"] != builtin or self._runs_shipped_cases():    # the shipped catalogue is about the
                    declared.setdefault(d["id"], d)                       # shipped cases: not said of yours
        asked = SHAPE_CHECKS if self.shape_only else CHECKS     # a shape-only session asks no values or padding
        asked = [c for c in asked if c != "symbolic" or self.symbolic]
        # A shape-only session says so only of declarations about shape-only runs alone: one about the calls too
        # (most are: what the call refuses, computes or returns) has nothing to explain in a session of no calls.
        wanted = ("shape-only",) if self.shape_only else ("eager",)
        return [d for d in declared.values()       # (an intermittent difference need not show in every session)
                if d["id"] not in used and d.get("check") in asked and not d.get("intermittent")
                and (tuple(d.get("modes", ("eager",))) == wanted if self.shape_only else "eager" in d.get("modes", wanted))
                and any(fnmatch.fnmatchcase(i, p) for i in ran for p in d["impl"])]

    def _runs_shipped_cases(self) -> bool:
        shipped = catalogue.shipped_cases()
        for a in self.config.args:
            p = Path(a.split("::")[0]).resolve()
            if p == shipped or shipped in p.parents or p in shipped.parents:
                return True
        return False

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config: pytest.Config) -> None:
        if not (self.records or self.collection_errors or self.results_path) or self.is_worker:
            return
        from .report import text_summary
        terminalreporter.section("LSTM conformance")
        for line in text_summary(self.records):
            terminalreporter.write_line(line)
        for e in self.collection_errors:
            terminalreporter.write_line(f"case file not loaded: {e['message']}", red=True)
        if self.fill_path:
            taken = sum(1 for r in self.filled if key_of(r) in self._index and self.records[self._index[key_of(r)]] is r)
            terminalreporter.write_line(
                f"{taken} runs taken from {self.fill_path}, {len(self.records) - taken} run now"
                + (f" ({self.rerun_from_fill} of them again: their configuration changed since it was written, "
                   "or the mode, eager or shape-only)" if self.rerun_from_fill else ""))
        if self.environment_extra.get("fault_injection"):
            terminalreporter.write_line(f"warning: fault injection is on: CONFORMANCE_FAULT="
                                        f"{self.environment_extra['fault_injection']} (recorded in results.json)",
                                        yellow=True)
        for alias in config.stash.get(_ALIASES_LEFT, []):
            terminalreporter.write_line(f"note: {alias} is another plugin's or conftest's option here; "
                                        f"lstm-conformance's is {options.BY_ALIAS[alias].name}", yellow=True)
        for d in self.unused_divergences():
            terminalreporter.write_line(f"warning: declared divergence {d['id']} ({d['file']}:{d['line']}) explained "
                                        "no run of this session", yellow=True)
        if self.results_path is not None:
            if self.output.since_last is not None:
                from .diff import summary_line
                terminalreporter.write_line(f"since the previous run: {summary_line(self.output.since_last)}")
            terminalreporter.write_line(f"results: {self.results_path}   report: {self.output.report_path}")

    def divergences_for(self, case_file: Path, own: list[spec.Divergence]) -> list[spec.Divergence]:
        """The declarations that apply to ``case_file``'s runs, most specific first."""
        return catalogue.in_scope([self._catalogue(s.path) for s in self.catalogue_sources(case_file)] + [list(own)])


def _command(config: pytest.Config) -> list[str]:
    """The command the user typed, as results record it: ``conformance run ...`` as typed (the CLI
    says it), else pytest's command line (not the arguments ``conformance run`` made of it)."""
    import os
    import sys

    from . import cli
    if cli.INVOKED is not None:
        return list(cli.INVOKED)
    args = list(config.invocation_params.args)
    if sys.argv[1:] == args:
        prog = os.path.basename(sys.argv[0])
        return ["python -m pytest" if prog == "__main__.py" else prog, *args]
    return ["pytest", *args]


def _conformance_run_paths(config: pytest.Config) -> None:
    """``conformance run``: the paths it was given are case paths (their YAML files need no
    marker); given none, it runs the default case set shipped in the package, wherever that is
    installed (the rootdir stays where the command was typed: reports go there)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(catalogue.shipped_cases())]
    config.option.conformance_cases = [*config.option.conformance_cases,
                                       *(a.split("::")[0] for a in config.args)]


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("conformance_run"):
        _conformance_run_paths(config)
    for impl_id in impls.ids():
        config.addinivalue_line("markers", f"{impl_id.replace('-', '_')}: runs on the {impl_id} implementation")
    sess = ConformanceSession(config)
    config.stash[_KEY] = sess
    config.pluginmanager.register(sess, "lstm-conformance-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    sess = config.stash.get(_KEY, None)
    if sess is not None:
        sess.close()
        sess.restore_signals()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``-n N`` (xdist's default ``--dist load``): send each implementation's runs to one xdist
    worker, so that each framework is imported and started once per session rather than once per
    xdist worker (measured in README, "Benchmarks"). An explicit ``--dist`` is left alone."""
    if config.getoption("dist", None) != "load" or any(
            a == "-d" or a.startswith("--dist") for a in config.invocation_params.args):
        return None
    from .scheduling import ByImplementation
    sess: ConformanceSession = config.stash[_KEY]
    return ByImplementation(config, log, columns=len(sess.impls) * len(sess.devices), on_abandon=sess.abandoned.extend)


def _under(path: Path, roots) -> bool:
    return any(path == r or r in path.parents for r in roots)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config):
    """A link to the shipped case set inside the rootdir (a checkout's ``conformance/cases``, which
    is ``cases/``) is not walked into: its files are collected once, under their real directory."""
    if collection_path.is_symlink() and collection_path.is_dir():
        target = collection_path.resolve()
        root = config.rootpath.resolve()
        if target == catalogue.shipped_cases() and (target == root or root in target.parents) \
                and collection_path not in {config.invocation_params.dir / a.split("::")[0] for a in config.args}:
            return True
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Which YAML files are case files: those that say so (a top-level ``lstm-conformance: 1``),
    wherever they are; and, with no marker needed, a file named on the command line or lying under a
    directory given with ``--conformance-cases`` (``conformance run PATH`` gives its paths so), when
    it holds top-level ``cases:`` or ``divergences:``. Nothing else is read as ours: another
    project's ``tests/cases/*.yaml`` is left alone."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    config = parent.config
    named = parent.session.isinitpath(file_path) or _under(
        file_path.resolve(), [Path(p).resolve() for p in config.getoption("conformance_cases")])
    if not (spec.is_marked(file_path) or (named and spec.is_case_file(file_path))):
        return None
    return CaseFile.from_parent(parent, path=file_path)


class CaseFile(pytest.File):
    def _error(self, exc: spec.SpecError):
        from .results import display_path
        exc.file = display_path(str(exc.file), self.config.rootpath) if exc.file else exc.file
        return self.CollectError(str(exc))

    def collect(self):
        sess: ConformanceSession = self.config.stash[_KEY]
        try:
            loaded = spec.load_file(self.path)
            spec.check_unique_ids([*sess.case_files, loaded])    # a case id names one case in a session
        except spec.SpecError as exc:
            raise self._error(exc) from None
        sess.case_files.append(loaded)
        self.own_divergences = loaded.divergences
        try:
            divergences = sess.divergences_for(self.path, loaded.divergences)
        except spec.SpecError as exc:
            raise self._error(exc) from None
        for case in loaded.cases:
            for impl_id in sess.impls:
                for device in sess.devices:
                    name = f"{case.id}[{impl_id}-{device}]"
                    # nodeid given as a string: pytest 9 parses "name[params]" structurally from
                    # strings (as --lf's cache keys are), so both sides must be built the same way.
                    yield CaseItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", case=case,
                                               impl_id=impl_id, device=device, divergences=divergences)


class ConformanceFailure(Exception):
    pass


class CaseItem(pytest.Item):
    def __init__(self, *, case: spec.Case, impl_id: str, device: str, divergences, **kw):
        super().__init__(**kw)
        self.case, self.impl_id, self.device, self.divergences = case, impl_id, device, divergences
        self.record: dict | None = None
        self.add_marker(getattr(pytest.mark, impl_id.replace("-", "_")))

    def runtest(self) -> None:
        from .results import display_path, dumps, execute, failed_record

        sess: ConformanceSession = self.config.stash[_KEY]
        if sess.stop_signal:        # its KeyboardInterrupt was lost (raised inside a finalizer): stop here
            raise KeyboardInterrupt(sess.stop_signal)
        try:
            self.record = execute(self.case, self.impl_id, self.device, sess.pool, self.divergences,
                                  root=self.config.rootpath, shape_only=sess.shape_only, symbolic=sess.symbolic)
        except Exception as exc:  # noqa: BLE001 - a bug of the suite's own still leaves the run's record
            self.record = failed_record(self.case, self.impl_id, self.device, exc, root=self.config.rootpath)
        root = self.config.rootpath
        for name, chk in self.record["checks"].items():
            if chk["verdict"] == checks.DIVERGE:        # would a declaration the session knows explain it, in scope?
                near = catalogue.near_misses(name, self.case, self.impl_id, self.device, self.record.get("versions") or {},
                                             sess.known_divergences(), self.divergences, not sess.builtin)
                if near:
                    chk["near_misses"] = [{**n, "file": display_path(n["file"], root)} for n in near]
        file = self.record["file"]
        if file not in sess._declared_sent:     # the controller learns each file's declarations once, from its items
            sess._declared_sent.add(file)
            own = self.parent.own_divergences if isinstance(self.parent, CaseFile) else []
            self.user_properties.append((_DECLARED, dumps({"file": file, "declarations": [
                {**d.to_dict(), "file": display_path(d.file, root)} for d in self.divergences],
                "catalogues": [{"path": display_path(str(c.path), root), "layer": c.layer}
                               for c in sess.catalogue_sources(self.path)]
                + ([{"path": file, "layer": "own"}] if own else [])})))
        self.user_properties.append((_PROP, dumps(self.record)))
        verdict = self.record["verdict"]
        if verdict in (checks.UNSUPPORTED, checks.SKIPPED):
            pytest.skip(f"{verdict}: {self.record['reason']}")
        if verdict in checks.FAILING:
            raise ConformanceFailure(verdict)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure) and self.record is not None:
            from .explain import explain
            return explain(self.record)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, (self.case.line or 1) - 1, f"{self.case.id}[{self.impl_id}-{self.device}]"


# The controller-side hooks live on ConformanceSession (registered as a plugin object).
