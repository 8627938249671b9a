"""pytest plugin: YAML case files become test items, one per case × implementation × device.

Registered through the ``pytest11`` entry point, so ``pytest cases/`` just works, with ``-k``,
``-x``, ``--lf``, ``-n auto`` and JUnit XML as maintainers expect. Item ids look like
``cases/returns.yaml::return-flags.return_sequences-true[torch-cpu]``.

Which YAML files are collected: any ``*.yaml``/``*.yml`` under a directory named ``cases``, and
any YAML file named explicitly on the command line, when it holds top-level ``cases:`` or
``divergences:``. Known divergences come from ``divergences.yaml`` files in the case file's
directory and its parents (like conftest.py), from ``--divergences FILE``, and from the case
file's own ``divergences:`` (which apply to that file only).

Every run's record travels in the test report's ``user_properties`` (xdist carries those to the
controller), and the controller writes ``results.json`` and ``index.html`` for every session that
ran cases: into ``--conformance-out DIR``, or into ``reports/<run-id>/`` under the rootdir with a
copy in ``reports/latest/`` (see :mod:`conformance.output`).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from . import checks, impls, spec
from .devices import DEVICES, default_devices

_KEY = pytest.StashKey["ConformanceSession"]()
_PROP = "conformance"


def pytest_addoption(parser):
    g = parser.getgroup("conformance", "LSTM conformance cases")
    g.addoption("--impl", action="append", default=[], metavar="IDS",
                help="implementations to run (comma-separated, repeatable, globs allowed); "
                     f"default: all of {', '.join(impls.ids())}")
    g.addoption("--device", action="append", default=[], metavar="DEVICES",
                help="devices to run on (cpu, gpu; comma-separated, repeatable); default: every device "
                     "this machine has")
    g.addoption("--divergences", action="append", default=[], metavar="FILE",
                help="extra known-divergence catalogue(s) to apply")
    g.addoption("--conformance-out", default=None, metavar="DIR",
                help="write this session's results.json and index.html into DIR (default: "
                     "reports/<run-id>/ under the rootdir, copied to reports/latest/)")
    g.addoption("--no-conformance-report", action="store_true",
                help="write no results.json or report for this session")
    g.addoption("--conformance-flush", type=float, default=5.0, metavar="SECONDS",
                help="rewrite results.json (marked partial) at most this often while runs finish, so a "
                     "killed session keeps them (default 5; 0 = after every run)")
    g.addoption("--conformance-fill", default=None, metavar="RESULTS",
                help="run only the runs that RESULTS (a results.json, e.g. a partial one left by an "
                     "interrupted session) does not hold, and write results holding both")
    g.addoption("--run-timeout", type=float, default=300.0, metavar="SECONDS",
                help="a run taking longer kills its worker and is an error (default 300)")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _select_impls(patterns: list[str]) -> list[str]:
    if not patterns:
        return impls.ids()
    chosen = []
    for p in patterns:
        hits = [i for i in impls.ids() if fnmatch.fnmatchcase(i, p)]
        if not hits:
            raise pytest.UsageError(f"--impl {p!r} matches no implementation; known: {', '.join(impls.ids())}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _select_devices(values: list[str]) -> list[str]:
    if not values:
        return default_devices()
    for v in values:
        if v not in DEVICES:
            raise pytest.UsageError(f"--device {v!r} is not a device; use one of {', '.join(DEVICES)}")
    return list(dict.fromkeys(values))


class ConformanceSession:
    """Per-process state: selection, catalogues, the worker pool, and (controller) the records."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.impls = _select_impls(_split(config.getoption("impl")))
        self.devices = _select_devices(_split(config.getoption("device")))
        self.extra_catalogues = [Path(p) for p in config.getoption("divergences")]
        self.run_timeout = config.getoption("run_timeout")
        self._pool = None
        self._catalogues: dict[Path, list[spec.Divergence]] = {}
        self.records: list[dict] = []
        self.collection_errors: list[dict] = []   # case files that did not load: {"file", "message"}
        self.expected: int | None = None     # conformance items collected (after deselection)
        self.output = None                   # output.RunOutput, once the first record arrives
        self.results_path: Path | None = None
        self.case_files: list[spec.CaseFile] = []   # collected so far (case ids are unique across them)
        self.filled: list[dict] = []           # runs taken from --conformance-fill's file
        if fill := config.getoption("conformance_fill"):
            from .results import ResultsError, load
            try:
                self.filled = load(fill)["runs"]
            except ResultsError as exc:
                raise pytest.UsageError(f"--conformance-fill: {exc}") from None
        self.records += self.filled
        self._index = {(r["file"], r["case"], r["impl"], r["device"]): i for i, r in enumerate(self.records)}

    @property
    def pool(self):
        if self._pool is None:
            from .runner import WorkerPool
            self._pool = WorkerPool(run_timeout=self.run_timeout)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def _catalogue(self, path: Path) -> list[spec.Divergence]:
        path = path.resolve()
        if path not in self._catalogues:
            self._catalogues[path] = spec.load_file(path).divergences
        return self._catalogues[path]

    def catalogue_files(self, case_file: Path) -> list[Path]:
        root = self.config.rootpath.resolve()
        found = []
        for d in [case_file.resolve().parent, *case_file.resolve().parent.parents]:
            for name in ("divergences.yaml", "divergences.yml"):
                if (d / name).is_file():
                    found.append(d / name)
            if d == root:
                break
        return found + self.extra_catalogues

    # ---- controller side: gather every record (from xdist workers too), write results at the end ----

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list) -> None:
        """--conformance-fill: deselect the runs its results file already holds."""
        if not self.filled:
            return
        from .results import display_path
        done = {(r["file"], r["case"], r["impl"], r["device"]) for r in self.filled}
        keep, skip = [], []
        for item in items:
            key = (isinstance(item, CaseItem)
                   and (display_path(item.case.file, config.rootpath), item.case.id, item.impl_id, item.device))
            (skip if key in done else keep).append(item)
        if skip:
            config.hook.pytest_deselected(items=skip)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.expected = sum(isinstance(i, CaseItem) for i in session.items) + len(self.filled)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if self.expected is None:   # every xdist worker collects the same items
            self.expected = sum(i.split("::", 1)[0].endswith((".yaml", ".yml")) for i in ids) + len(self.filled)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A case file that did not load is kept (results.json, the report) and, in a session that
        has no other collection error, does not stop the other files' runs (it still fails the session)."""
        if report.failed and report.nodeid.endswith((".yaml", ".yml")) and not hasattr(self.config, "workerinput"):
            message = str(report.longrepr).strip()
            if not any(e["file"] == report.nodeid and e["message"] == message for e in self.collection_errors):
                self.collection_errors.append({"file": report.nodeid, "message": message})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if session.testsfailed and session.testsfailed == len(self.collection_errors):
            session.config.option.continue_on_collection_errors = True

    def _output(self):
        if self.output is None and not self.config.getoption("no_conformance_report"):
            from .output import RunOutput
            out = self.config.getoption("conformance_out")
            self.output = RunOutput(Path(out) if out else None, self.config.rootpath / "reports",
                                    argv=self.config.invocation_params.args,
                                    flush_every_s=self.config.getoption("conformance_flush"))
            self.output.collection_errors = self.collection_errors
        return self.output

    @pytest.hookimpl(tryfirst=True)   # results reach disk before the terminal says the run passed
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or hasattr(self.config, "workerinput"):
            return
        for name, value in report.user_properties:
            if name == _PROP:
                rec = json.loads(value)
                key = (rec["file"], rec["case"], rec["impl"], rec["device"])
                if key in self._index:          # run again in this session (--dist each, a rerun plugin): the last counts
                    self.records[self._index[key]] = rec
                else:
                    self._index[key] = len(self.records)
                    self.records.append(rec)
                if (out := self._output()) is not None:
                    out.progress(self.records, self.expected)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if hasattr(session.config, "workerinput"):
            return  # an xdist worker: its records reached the controller in the reports
        if (self.records or self.collection_errors) and (out := self._output()) is not None:
            from .output import partial
            info = None
            if exitstatus == pytest.ExitCode.INTERRUPTED:
                info = partial(len(self.records), self.expected, "the session was interrupted")
            elif self.expected is not None and len(self.records) < self.expected:
                info = partial(len(self.records), self.expected,
                               f"{self.expected - len(self.records)} collected runs did not finish (stopped early "
                               "with -x/--maxfail, or a worker crashed)")
            self.results_path = out.finish(self.records, info, self.unused_divergences())

    def unused_divergences(self) -> list[dict]:
        """Declarations for an implementation that ran here which explained none of its runs."""
        used = {chk["divergence"]["id"] for r in self.records for chk in r["checks"].values() if chk.get("divergence")}
        ran = {r["impl"] for r in self.records if r["checks"]}
        declared: dict[str, spec.Divergence] = {}
        for f in sorted({r["file"] for r in self.records}):
            path = self.config.rootpath / f      # records hold rootdir-relative paths where they can
            for d in self.divergences_for(path, self._catalogue(path)):
                declared.setdefault(d.id, d)
        from .results import display_path
        return [{**d.to_dict(), "file": display_path(d.file, self.config.rootpath)} for d in declared.values()
                if d.id not in used and any(fnmatch.fnmatchcase(i, p) for i in ran for p in d.impl)]

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config: pytest.Config) -> None:
        if not (self.records or self.collection_errors) or hasattr(config, "workerinput"):
            return
        from .report import text_summary
        terminalreporter.section("LSTM conformance")
        for line in text_summary(self.records):
            terminalreporter.write_line(line)
        for e in self.collection_errors:
            terminalreporter.write_line(f"case file not loaded: {e['message']}", red=True)
        if self.filled:
            terminalreporter.write_line(f"{len(self.filled)} runs taken from {config.getoption('conformance_fill')}, "
                                        f"{len(self.records) - len(self.filled)} run now")
        for d in self.unused_divergences():
            terminalreporter.write_line(f"warning: declared divergence {d['id']} ({d['file']}:{d['line']}) explained "
                                        "no run of this session", yellow=True)
        if self.results_path is not None:
            if self.output.since_last is not None:
                from .diff import summary_line
                terminalreporter.write_line(f"since the previous run: {summary_line(self.output.since_last)}")
            terminalreporter.write_line(f"results: {self.results_path}   report: {self.output.report_path}")

    def divergences_for(self, case_file: Path, own: list[spec.Divergence]) -> list[spec.Divergence]:
        out = []
        for path in self.catalogue_files(case_file):
            if path.resolve() != case_file.resolve():
                out += self._catalogue(path)
        return out + list(own)


def pytest_configure(config: pytest.Config) -> None:
    for impl_id in impls.ids():
        config.addinivalue_line("markers", f"{impl_id.replace('-', '_')}: runs on the {impl_id} implementation")
    sess = ConformanceSession(config)
    config.stash[_KEY] = sess
    config.pluginmanager.register(sess, "lstm-conformance-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    sess = config.stash.get(_KEY, None)
    if sess is not None:
        sess.close()


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
    return ByImplementation(config, log, columns=len(sess.impls) * len(sess.devices))


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    try:
        rel_parts = file_path.relative_to(parent.config.rootpath).parts
    except ValueError:
        rel_parts = file_path.parts
    if not (parent.session.isinitpath(file_path) or "cases" in rel_parts[:-1]):
        return None
    if not spec.is_case_file(file_path):
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
        from .results import dumps, execute

        sess: ConformanceSession = self.config.stash[_KEY]
        self.record = execute(self.case, self.impl_id, self.device, sess.pool, self.divergences,
                              root=self.config.rootpath)
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
