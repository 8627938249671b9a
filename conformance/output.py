"""Where a session's results go, and how they survive interruption, full disks and other sessions.

Every conformance session writes ``results.json`` and ``index.html`` into a directory of its own,
``reports/<run-id>/`` (or the directory given with ``--conformance-out``). What this module
guarantees, whatever happens to the process or the disk:

* **Checked before any run.** :func:`check_destination` refuses, with a message naming the path, an
  output that cannot work (a file where a directory must be, a directory that cannot be written, a
  ``reports/latest`` that is a plain file, an ``-o`` directory another session is writing), and
  writes nothing, so that a project with no case of ours gets no ``reports/``.
* **``reports/latest`` is always one session's consistent pair.** It is a symbolic link to a run
  directory, replaced atomically (``os.replace`` of a new link), never a directory whose two files
  are copied one after the other; two sessions in one checkout each write their own directory, and
  ``latest`` names one of them whole. It is switched when the session *starts* (:meth:`RunOutput.open`:
  a ``results.json`` of no runs, marked partial, and a page saying the session has not finished), so
  that after a kill ``reports/latest/results.json`` is that session's partial results, which
  ``--conformance-fill`` completes. A ``reports/latest`` directory left by an older version is kept,
  renamed to a run directory of its own.
* **A failed write loses nothing and stops nothing.** While runs finish, ``results.json`` is
  rewritten (marked partial) every few seconds; a failed rewrite (a full disk, a directory made
  read-only) is said once, the session goes on with its records in memory, and later rewrites try
  again. The final write is tried again, and if the directory still cannot take it, the results go to
  a directory of their own under the system's temporary directory, and the terminal says where
  (``RunOutput.finish`` returns where they are, and whether that was where they were asked for).
  Files are replaced atomically and no temporary file is left behind (:func:`results.write_atomic`).
* **Who is writing.** A session holds an exclusive lock (``flock``) on ``.session.lock`` in its
  directory while it runs and removes the file when it ends, so a second session naming the same
  ``-o`` directory is refused, and a lock file that is there but not held is a session that was
  killed (said at the next session's start, with the command that completes it).
"""

from __future__ import annotations

import datetime as _dt
import errno
import html
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

from . import results

RESULTS, REPORT, LOCK, LATEST = "results.json", "index.html", ".session.lock", "latest"
WRITE_ATTEMPTS, RETRY_WAIT_S = 3, 0.5


class OutputError(Exception):
    """An output location that cannot be used; the message names it and says what to do."""


def shown(path: Path) -> str:
    """A path as the terminal shows it: relative to the working directory when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def new_run_id() -> str:
    """Sortable and unique enough for runs started in the same second on one machine."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _writable_ancestor(path: Path) -> None:
    """Refuse ``path`` (a directory to be) when it, or the nearest part of it that exists, is not a
    writable directory. Nothing is created."""
    p = path
    while not os.path.lexists(p):
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise OutputError(f"{p} is not a directory, so {path} cannot be created there")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p} is not writable (its permissions), so results cannot be written to {path}")


def _lock_held(lock: Path) -> bool:
    """Whether another live process holds the session lock file ``lock`` (never creates it)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _lock_owner(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8", errors="replace").strip()[:200] or "another session"
    except OSError:
        return "another session"


def _remove_dead_temporaries(directory: Path) -> None:
    """Temporary files (``.NAME.PID.tmp``, see results.write_atomic) that a killed process left."""
    for tmp in directory.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            tmp.unlink(missing_ok=True)


def check_destination(out_dir: Path | None, reports_root: Path) -> None:
    """Everything that can be known about the output before any run, without writing anything;
    raises :class:`OutputError` (the plugin makes it a usage error, exit status 4)."""
    if out_dir is not None:
        if out_dir.is_symlink() and not out_dir.exists():
            raise OutputError(f"--conformance-out {out_dir}: is a link to {os.readlink(out_dir)}, which does not exist")
        if os.path.lexists(out_dir) and not out_dir.is_dir():
            raise OutputError(f"--conformance-out {out_dir}: is a file, not a directory")
        _writable_ancestor(out_dir)
        if out_dir.is_dir() and _lock_held(out_dir / LOCK):
            raise OutputError(f"--conformance-out {out_dir}: another session is writing there now "
                              f"({_lock_owner(out_dir / LOCK)}); give each session its own directory")
        return
    if os.path.lexists(reports_root) and not reports_root.is_dir():
        raise OutputError(f"{reports_root} is a file; results go to a directory of that name "
                          "(move the file, or give --conformance-out DIR)")
    _writable_ancestor(reports_root)
    latest = reports_root / LATEST
    if latest.is_symlink():
        return                               # ours, or dangling: replaced atomically when the session starts
    if os.path.lexists(latest) and not latest.is_dir():
        raise OutputError(f"{latest} is a file; it must be the link to the newest run that this suite keeps "
                          "there (remove or rename the file, or give --conformance-out DIR)")


class RunOutput:
    """One session's output directory (and ``reports/latest`` unless a directory was given).

    ``say`` prints a line to the user (the plugin passes the terminal's). Nothing is written before
    :meth:`open`; :meth:`progress` and :meth:`finish` call it when nothing else has."""

    def __init__(self, out_dir: Path | None, reports_root: Path, argv, flush_every_s: float = 5.0, say=print):
        self.run_id = new_run_id()
        if out_dir is None:
            self.dir, self.latest = reports_root / self.run_id, reports_root / LATEST
        else:
            self.dir, self.latest = Path(out_dir), None
        self.argv = list(argv)
        self.flush_every_s = flush_every_s
        self.say = say
        self._last_flush = time.monotonic()
        self._lock_fd: int | None = None
        self._busy = False                       # another session holds this directory: write elsewhere
        self._lock_was_stale = False
        self.opened = False
        self._write_failed: str | None = None    # why the last write failed (said once), None when it worked
        self.previous: Path | None = None        # the run directory reports/latest named when this session began
        self.since_last = None                   # diff.Diff against that run
        self.collection_errors: list[dict] = []  # case files that did not load: {"file", "message"}
        self.environment_extra: dict = {}        # added to results' "environment" (fault injection, ...)
        self.document_extra: dict = {}           # top-level keys added to results (catalogues, shard)
        self.written_to: Path | None = None      # where finish() put results.json

    @property
    def report_path(self) -> Path:
        return (self.written_to or self.dir) / REPORT

    # ---- start ----

    def open(self, expected: int | None = None) -> None:
        """Create the directory, take its lock, write a partial results.json of no runs and a page
        saying the session has not finished, and point reports/latest at it. A failure here is
        said, and the session goes on (its results are written at the end, or elsewhere)."""
        if self.opened:
            return
        self.opened = True
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:
            self._busy = exc.errno == errno.EBUSY     # another session's directory: never written to
            self._failed(f"could not prepare {self.dir}: {exc}")
            return
        try:
            self._keep_what_a_killed_session_left()
            self.previous = self._previous_run()
            self._write_pending_page()
            self.flush([], partial(0, expected, "the session is still running (or was killed)"), quiet=True)
            if self.latest is not None:
                self._point_latest()
        except OSError as exc:
            self._failed(f"could not prepare {self.dir}: {exc}")
            return
        where = f"{shown(self.dir)}/" + (f" ({shown(self.latest)} points to it)" if self.latest is not None else "")
        self.say(f"LSTM conformance: results go to {where}; if this session is killed, its finished runs "
                 f"stay there: the same command with `--conformance-fill {shown((self.latest or self.dir) / RESULTS)}` "
                 "runs the rest")

    def _lock(self) -> None:
        import fcntl

        self._lock_was_stale = (self.dir / LOCK).exists()     # the lock file of a session that never ended
        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OSError(errno.EBUSY, f"another session is writing there ({_lock_owner(self.dir / LOCK)})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, run {self.run_id}, started {_dt.datetime.now().isoformat(timespec='seconds')}"
                     .encode())
        self._lock_fd = fd

    def _keep_what_a_killed_session_left(self) -> None:
        """In a directory used before (``--conformance-out``): a session killed there left its lock file
        (said at once) and perhaps temporary files (removed when their process is gone); its partial
        results.json is renamed, never overwritten, so that it can still be filled."""
        _remove_dead_temporaries(self.dir)
        killed = self._lock_was_stale and (self.dir / RESULTS).is_file()
        if killed:
            kept = self.dir / f"results-killed-{_dt.datetime.fromtimestamp((self.dir / RESULTS).stat().st_mtime):%Y%m%d-%H%M%S}.json"
            os.rename(self.dir / RESULTS, kept)
            self.say(f"note: a session killed earlier left its partial results in {shown(self.dir)}; they are kept as "
                     f"{shown(kept)} (--conformance-fill {shown(kept)} completes them)")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self.dir / LOCK)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def _previous_run(self) -> Path | None:
        """The run directory reports/latest names now (a directory left by an older version is
        renamed to a run directory of its own first); says so when that session was killed."""
        if self.latest is None:
            return None
        latest, prev = self.latest, None
        if latest.is_symlink():
            target = latest.parent / os.readlink(latest)
            if target.is_dir():
                prev = target
            else:
                self.say(f"note: {latest} pointed to {target}, which no longer exists; it now points to this session")
        elif latest.is_dir():                 # the layout before links: keep its files as a run of their own
            kept = latest.parent / (_dt.datetime.fromtimestamp(latest.stat().st_mtime).strftime("%Y%m%d-%H%M%S-")
                                    + "latest")
            os.rename(latest, kept)
            self.say(f"note: {latest} was a directory (an older version's); it is kept as {kept}")
            prev = kept
        if prev is not None and (prev / LOCK).exists() and not _lock_held(prev / LOCK):
            _remove_dead_temporaries(prev)
            self.say(f"note: the previous session ({prev}) did not finish (it was killed); its finished runs are in "
                     f"{prev / RESULTS}: its command with `--conformance-fill {prev / RESULTS}` completes it")
        return prev

    def _point_latest(self) -> None:
        tmp = self.latest.parent / f".{LATEST}.{self.run_id}.tmp"
        os.symlink(self.dir.name, tmp)
        try:
            os.replace(tmp, self.latest)
        except OSError:
            os.unlink(tmp)
            raise

    def _write_pending_page(self) -> None:
        e = html.escape
        results.write_atomic(self.dir / REPORT, f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LSTM conformance: session {e(self.run_id)} not finished</title></head>
<body><h1>This session has not finished</h1>
<p id="pending">Session <code>{e(self.run_id)}</code> (process {os.getpid()}, started
{e(_dt.datetime.now().isoformat(timespec="seconds"))}) is still running, or it was stopped before it could
write its report. The runs it finished are in <a href="{RESULTS}">{RESULTS}</a> (marked partial).</p>
<p>To run what it left: its command with <code>--conformance-fill {e(str(self.dir / RESULTS))}</code>.
To build this page from what it finished: <code>conformance report {e(str(self.dir / RESULTS))} -o {e(str(self.dir))}</code>.</p>
</body></html>
""")

    # ---- while runs finish ----

    def progress(self, records: list[dict], expected: int | None) -> None:
        """A run finished: rewrite results.json (marked partial) when the last write is old enough."""
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.open(expected)
            self.flush(records, partial(len(records), expected, "the session is still running (or was killed)"))

    def flush(self, records: list[dict], partial_info: dict | None, unused_divergences=(), quiet=False) -> str | None:
        """Rewrite results.json; returns its text, or None when it could not be written (said once)."""
        self._last_flush = time.monotonic()
        if self._busy:
            return None
        text = self._text(records, partial_info, unused_divergences)
        try:
            results.write_atomic(self.dir / RESULTS, text)
        except OSError as exc:
            if quiet:
                raise
            self._failed(f"could not write {self.dir / RESULTS}: {exc}")
            return None
        if self._write_failed is not None:
            self.say(f"results.json written again to {self.dir / RESULTS}")
            self._write_failed = None
        return text

    def _failed(self, what: str) -> None:
        if self._write_failed is None:
            self.say(f"warning: {what}; the session goes on with its results in memory and writes them at the end")
        self._write_failed = what

    def _text(self, records, partial_info, unused_divergences) -> str:
        doc = results.document(records, unused_divergences=unused_divergences, argv=self.argv,
                               partial=partial_info, collection_errors=self.collection_errors)
        doc["environment"].update(self.environment_extra)
        doc.update(self.document_extra)
        return results.to_json(doc)

    # ---- end ----

    def finish(self, records: list[dict], partial_info: dict | None, unused_divergences=()) -> Path | None:
        """The final results.json and report (with what changed since the previous run), in this
        session's directory, tried again a few times, else in a directory of their own under the
        system's temporary directory. Returns where results.json is (None: nowhere, said)."""
        from .report import render

        self.open(partial_info and partial_info.get("expected"))
        text = self._text(records, partial_info, unused_divergences)
        doc = json.loads(text)
        self.since_last = self._since_last(doc)
        page = render([(str(self.dir / RESULTS), doc)], self.since_last)
        why = f"another session is writing to {self.dir}"
        for attempt in range(0 if self._busy else WRITE_ATTEMPTS):
            try:
                results.write_atomic(self.dir / RESULTS, text)
                results.write_atomic(self.dir / REPORT, page)
                self.written_to = self.dir
                break
            except OSError as exc:
                why = f"could not write the final results to {self.dir}: {exc}"
                if attempt + 1 < WRITE_ATTEMPTS:
                    time.sleep(RETRY_WAIT_S)
        else:
            self.written_to = self._fallback(text, page, why)
        if self.written_to == self.dir and self.latest is not None:
            try:
                if not (self.latest.is_symlink() and os.readlink(self.latest) == self.dir.name):
                    self._point_latest()
            except OSError as exc:
                self.say(f"warning: {shown(self.latest)} could not be pointed at this run ({exc}); "
                         f"its results are in {shown(self.dir)}")
        self._unlock()
        return None if self.written_to is None else self.written_to / RESULTS

    def _fallback(self, text: str, page: str, why: str) -> Path | None:
        elsewhere = Path(tempfile.gettempdir()) / f"lstm-conformance-{self.run_id}"
        try:
            results.write_atomic(elsewhere / RESULTS, text)
            results.write_atomic(elsewhere / REPORT, page)
        except OSError as exc:
            self.say(f"error: {why} (tried {WRITE_ATTEMPTS} times); nor to {elsewhere}: {exc}. "
                     "This session's results could not be kept")
            return None
        self.say(f"error: {why} (tried {WRITE_ATTEMPTS} times); they were written to {elsewhere} instead")
        return elsewhere

    def _since_last(self, now: dict):
        """What changed since the run reports/latest named when this session began, for the runs this
        session made. A session of one implementation, one file or one ``-k`` selection is not told
        that the rest was removed: runs only the previous session made are left out (``conformance
        diff`` lists them). A previous results file that cannot be read is said, and skipped."""
        if self.previous is None:
            return None
        from .diff import compare
        try:
            if not (self.previous / RESULTS).is_file():
                return None
            previous = results.load(self.previous / RESULTS)
        except (results.ResultsError, OSError) as exc:
            self.say(f"note: not compared with the previous run: {exc}")
            return None
        ran = {(r["file"], r["case"], r["impl"], r["device"]) for r in now["runs"]}
        previous["runs"] = [r for r in previous["runs"] if (r["file"], r["case"], r["impl"], r["device"]) in ran]
        return compare(previous, now, old_label=f"previous run ({previous.get('created', '?')})",
                       new_label=f"this run ({now.get('created', '?')})")


def partial(finished: int, expected: int | None, reason: str) -> dict:
    return {"reason": reason, "finished": finished, "expected": expected}
