"""Where a run's results go, and how they survive interruption.

Every conformance session writes ``results.json`` and ``index.html`` into its own directory,
``reports/<run-id>/`` (or the directory given with ``--conformance-out``), then refreshes
``reports/latest/``. While runs finish, ``results.json`` is rewritten atomically every few seconds
and marked partial, so a session killed outright still leaves a valid file of every run that
finished; a Ctrl-C or a ``-x`` stop ends with a report that says it is partial.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import time
from pathlib import Path

from . import results

RESULTS, REPORT = "results.json", "index.html"


def new_run_id() -> str:
    """Sortable and unique enough for runs started in the same second on one machine."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class RunOutput:
    """One session's output directory (and ``reports/latest/`` unless a directory was given)."""

    def __init__(self, out_dir: Path | None, reports_root: Path, argv, flush_every_s: float = 5.0):
        if out_dir is None:
            self.dir, self.latest = reports_root / new_run_id(), reports_root / "latest"
        else:
            self.dir, self.latest = Path(out_dir), None
        self.argv = list(argv)
        self.flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        self.since_last = None           # diff.Diff against the previous run in reports/latest/
        self.collection_errors: list[dict] = []   # case files that did not load: {"file", "message"}

    @property
    def report_path(self) -> Path:
        return self.dir / REPORT

    def progress(self, records: list[dict], expected: int | None) -> None:
        """A run finished: rewrite results.json (marked partial) when the last write is old enough."""
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush(records, partial(len(records), expected, "the session is still running (or was killed)"))

    def flush(self, records: list[dict], partial_info: dict | None, unused_divergences=()) -> Path:
        self._last_flush = time.monotonic()
        return results.write(self.dir, records, unused_divergences=unused_divergences, argv=self.argv,
                             partial=partial_info, collection_errors=self.collection_errors)

    def finish(self, records: list[dict], partial_info: dict | None, unused_divergences=()) -> Path:
        """Final results.json and report (with what changed since the previous run in
        reports/latest/); then reports/latest/ gets copies (each replaced atomically)."""
        from .report import write_report

        path = self.flush(records, partial_info, unused_divergences)
        self.since_last = self._since_last(path)
        write_report([path], self.report_path, changes=self.since_last)
        if self.latest is not None:
            for name in (RESULTS, REPORT):
                results.write_atomic(self.latest / name, (self.dir / name).read_text(encoding="utf-8"))
        return path


    def _since_last(self, path: Path):
        """What changed since the run in reports/latest/, for the runs this session made. A session
        of one implementation, one file or one ``-k`` selection is not told that the rest was
        removed: runs only the previous session made are left out (``conformance diff`` lists them)."""
        if self.latest is None or not (self.latest / RESULTS).is_file():
            return None
        from .diff import compare
        try:
            previous = results.load(self.latest / RESULTS)
        except results.ResultsError:
            return None      # an older or foreign file: nothing to compare with
        now = results.load(path)
        ran = {(r["file"], r["case"], r["impl"], r["device"]) for r in now["runs"]}
        previous["runs"] = [r for r in previous["runs"] if (r["file"], r["case"], r["impl"], r["device"]) in ran]
        return compare(previous, now, old_label=f"previous run ({previous.get('created', '?')})",
                       new_label=f"this run ({now.get('created', '?')})")


def partial(finished: int, expected: int | None, reason: str) -> dict:
    return {"reason": reason, "finished": finished, "expected": expected}
