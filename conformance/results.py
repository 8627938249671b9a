"""Run records and ``results.json``: the machine-readable result every report and merge reads.

A run record is plain JSON data (see README, "Results format"). :func:`execute` turns one
case × impl × device into a record: static decisions first (not installed, unsupported, no such
device) so that they cost no framework start-up, then the worker run, then the checks.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np

from . import __version__, checks, impls, reference
from .devices import machine_has_gpu
from .impls.base import Observation
from .runner import WorkerPool
from .spec import Case, Divergence, open_regular
from .text import terminal_text

SCHEMA_VERSION = 1


def _shape(a):
    return None if a is None else [int(d) for d in np.shape(a)]


def display_path(path: str, root: Path | None) -> str:
    """A case or catalogue file as results record it: relative to the rootdir (posix) when inside it,
    so that results from machines with different checkouts merge and diff on the same key; a file of
    the shipped case set outside the rootdir (an installed package) as ``cases/<name>``, as in a checkout."""
    if not path or root is None:
        return path
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        from .catalogue import shipped_label
        return shipped_label(path) or path      # the shipped case set: cases/<name> on every machine


def record(case: Case, impl_id: str, device: str, obs: Observation, run_checks: dict, info: dict,
           root: Path | None = None, repro: str = "", shape_only: bool = False) -> dict:
    """The run record of one case × impl × device. A framework's ``reason`` and ``traceback`` can be
    of any length (an exception quoting a whole tensor): each is cut to ``spec.MAX_RECORD_TEXT``
    characters, head and tail kept, with a line saying how much was cut."""
    from .spec import clip_text

    for chk in run_checks.values():
        if chk.get("divergence"):
            chk["divergence"] = {**chk["divergence"], "file": display_path(chk["divergence"]["file"], root)}
    if obs.status in ("ok", "rejected") or (obs.status == "error" and run_checks):
        verdict = checks.worst(c["verdict"] for c in run_checks.values())
    else:
        verdict = {"unsupported": checks.UNSUPPORTED, "skipped": checks.SKIPPED}.get(obs.status, checks.ERROR)
    return {
        "case": case.id, "file": display_path(case.file, root), "line": case.line, "impl": impl_id, "device": device,
        "verdict": verdict, "reason": clip_text(obs.reason), "traceback": clip_text(obs.traceback),
        "checks": run_checks,
        "config": case.config.to_dict(),
        "reference": reference.summary(case.config),
        "native": {"construct": obs.construct, "returns": obs.returns, "params": obs.params,
                   "param_count": obs.param_count, "normalization": obs.normalization, "repro": repro,
                   "rejection": obs.rejection, "warnings": obs.warnings,
                   **({"symbolic": _clipped(obs.symbolic)} if obs.symbolic is not None else {}),
                   **({"summary": _clipped(obs.summary)} if obs.summary is not None else {})},
        "mode": "shape-only" if shape_only else "eager",
        "canonical": {"output_shape": _shape(obs.output),
                      "state_shapes": None if obs.states is None else [[_shape(h), _shape(c)] for h, c in obs.states]},
        "versions": info.get("versions", {}),
        "device_name": info.get("device_names", {}).get(device, device),
        "worker_pid": info.get("pid") if obs.status in ("ok", "rejected") else None,
        "timings": obs.timings,
        "fault": obs.fault,
    }


def _clipped(node):
    """A framework's texts inside a native fact (messages, tracebacks, a printed summary), each cut as a run's
    reason is (``clip_text``)."""
    from .spec import clip_text

    if isinstance(node, str):
        return clip_text(node)
    if isinstance(node, dict):
        return {k: _clipped(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_clipped(v) for v in node]
    return node


def wants_summary(case: Case, impl_id: str) -> bool:
    """Whether a claim of ``case`` for ``impl_id`` quotes Keras's ``model.summary()`` (the worker prints it then)."""
    return any(c.summary is not None and c.applies_to(impl_id) for c in case.claims)


def execute(case: Case, impl_id: str, device: str, pool: WorkerPool, divergences: list[Divergence],
            root: Path | None = None, shape_only: bool = False, symbolic: bool = True) -> dict:
    """The record of one run. The float64 reference and the checks run here, in the test process:
    when they fail (``MemoryError`` included) the run is an ``error`` saying so, with ``fault``
    ``{"kind": "exception", "type": ..., "phase": "reference"}`` (or ``"checks"``), never an
    exception that would lose the run's record."""
    impl = impls.get(impl_id)
    obs = None
    if reason := impl.missing():
        obs = Observation(status="skipped", reason=reason)
    elif reason := impl.unsupported(case.config):
        obs = Observation(status="unsupported", reason=reason)
    elif device == "gpu" and not machine_has_gpu():
        obs = Observation(status="skipped", reason="no GPU on this machine")
    else:
        obs = pool.run(impl_id, case.id, case.config, device, mode="shapes" if shape_only else "eager",
                       symbolic=symbolic and not shape_only, summary=wants_summary(case, impl_id))
    run_checks = {}
    info = pool.infos.get(impl_id, {})
    if obs.status == "error":        # a framework that died running the call: a declared crash, or an error
        run_checks = checks.crashed_verdicts(case, impl_id, device, obs, divergences, info.get("versions"),
                                             "shape-only" if shape_only else "eager")
    if obs.status in ("ok", "rejected"):
        try:
            run_checks = checks.evaluate(case, impl_id, device, obs, impl.param_formula, divergences,
                                         info.get("versions"), timeout=pool.run_timeout, shape_only=shape_only)
        except Exception as exc:   # noqa: BLE001 - MemoryError too: whatever it is, the run keeps its record
            import traceback

            failure = exc if isinstance(exc, checks.EvaluationError) else checks.EvaluationError("checks", exc)
            obs.status, obs.reason = "error", str(failure)
            obs.traceback = "".join(traceback.format_exception(failure.cause))
            obs.fault = {"kind": "exception", "type": type(failure.cause).__name__, "phase": failure.phase}
            del exc, failure               # (their frames hold the reference's arrays: free them now)
    repro = "" if impl.unsupported(case.config) else impl.repro(case.config)
    return record(case, impl_id, device, obs, run_checks, info, root, repro, shape_only)


def failed_record(case: Case, impl_id: str, device: str, exc: BaseException, root: Path | None = None) -> dict:
    """The ``error`` record of a run whose execution failed in the suite itself (not in the framework's
    worker): the run keeps its place in results.json, with the exception as its reason."""
    import traceback

    obs = Observation(status="error", reason=f"the suite failed on this run: {type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(), fault={"kind": "exception", "type": type(exc).__name__,
                                                               "phase": "suite"})
    return record(case, impl_id, device, obs, {}, {}, root)


def environment(runs: list[dict]) -> dict:
    versions: dict[str, dict] = {}
    devices: dict[str, str] = {}
    for r in runs:
        if r.get("versions"):
            versions[r["impl"]] = r["versions"]
        devices[f"{r['impl']}@{r['device']}"] = r.get("device_name", r["device"])
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.node(),
            "conformance": __version__, "versions": versions, "devices": devices}


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)   # a framework's own scalar or version type: keep it readable, never fail a run on it


# JSON has no NaN or infinity, yet a framework can return them (and the values check then measures
# max_abs = nan). Python would write a bare NaN, which the report's JSON.parse and every strict
# reader refuse; they are written as these strings instead, which the schema allows exactly where
# computed numbers live (values and padding details, timings) and every reader shows as they are.
NON_FINITE = ("NaN", "Infinity", "-Infinity")


def _finite(obj):
    """``obj`` with every non-finite float (NumPy's too) replaced by "NaN", "Infinity" or "-Infinity"."""
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return obj if math.isfinite(f) else NON_FINITE[0] if f != f else NON_FINITE[1] if f > 0 else NON_FINITE[2]
    if isinstance(obj, dict):
        return {(_finite(k) if isinstance(k, (float, np.floating)) else k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return _finite(obj.tolist())
    return obj


def _json_text(obj, **kw) -> str:
    """Strict JSON text of ``obj`` (``allow_nan=False``: never a bare NaN or Infinity)."""
    try:
        return json.dumps(obj, default=_jsonable, allow_nan=False, **kw)
    except ValueError:          # a non-finite float somewhere (rare): written as a string, see NON_FINITE
        return json.dumps(_finite(obj), default=_jsonable, allow_nan=False, **kw)


def dumps(obj, **kw) -> str:
    """JSON text of a record (keyword arguments as :func:`json.dumps`): strict JSON, non-finite
    numbers written as the strings of :data:`NON_FINITE`."""
    return _json_text(obj, **kw)


def summarize(runs: list[dict]) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for r in runs:
        key = f"{r['impl']}@{r['device']}"
        counts.setdefault(key, {}).setdefault(r["verdict"], 0)
        counts[key][r["verdict"]] += 1
    return counts


def document(runs: list[dict], *, unused_divergences=(), argv=None, partial: dict | None = None,
             collection_errors=()) -> dict:
    """A results document; ``partial`` (``{"reason", "finished", "expected"}``) when not every run
    finished; ``collection_errors`` (``[{"file", "message"}]``) for case files that did not load."""
    runs = sorted(runs, key=lambda r: (r["file"], r["case"], r["impl"], r["device"]))
    return {
        "schema": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "partial": partial,
        "environment": environment(runs),
        "summary": summarize(runs),
        "unused_divergences": list(unused_divergences),
        "collection_errors": list(collection_errors),
        "runs": runs,
    }


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:       # a full disk, a file size limit, no permission, Ctrl-C: leave no temporary file
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def to_json(doc: dict) -> str:
    """A results document as the text of ``results.json``."""
    return _json_text(doc, indent=1)


def write(out_dir: str | Path, runs: list[dict], **kw) -> Path:
    """Write ``out_dir/results.json`` atomically; keyword arguments as :func:`document`."""
    path = Path(out_dir) / "results.json"
    write_atomic(path, to_json(document(runs, **kw)))
    return path


class ResultsError(ValueError):
    """A results file that cannot be read as one: the message names the file and what is wrong."""


def _schema_validator():
    """The JSON Schema of results.json (``results.schema.json``, shipped with the package), compiled
    once by fastjsonschema (about 20x faster than interpreting it: 20,000 runs in ~2.5 s, as long as
    parsing the JSON takes)."""
    return compiled_schema("results.schema.json")


@functools.lru_cache(maxsize=None)
def compiled_schema(name: str):
    """A JSON Schema shipped with the package (results.json's, findings.json's), compiled once."""
    from importlib import resources

    import fastjsonschema

    return fastjsonschema.compile(json.loads(resources.files("conformance").joinpath(name).read_text("utf-8")))


def _where_in(doc: dict, path) -> str:
    """``runs[3] (case on impl@device) checks.values.verdict`` for a JSON path into a document."""
    parts = list(path)
    text = ""
    if len(parts) >= 2 and parts[0] == "runs" and isinstance(parts[1], int) and parts[1] < len(doc["runs"]):
        r = doc["runs"][parts[1]]
        who = (f" ({r.get('case')} on {r.get('impl')}@{r.get('device')})"
               if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("case", "impl", "device")) else "")
        text, parts = f"runs[{parts[1]}]{who}", parts[2:]
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "the document"


# ---- limits on what a results file may be (a file from elsewhere is data to check, never trusted) ----

# Size. A 20,000-run results.json is ~116-146 MiB (README, "Size and speed at scale"); reading one
# takes ~3.7x its size in memory (146 MiB: 540 MiB peak). Checked before reading.
MAX_BYTES = 256 * 2**20
# Containers ('[' and '{', counted in the text before parsing, those inside strings too). Real
# results hold one per 68 bytes (9 implementations, 946 runs, as written: indent=1), one per 45
# bytes written compactly, one per 26 in the densest run (an unsupported one, compact). An empty
# list costs Python ~64 bytes: 60 MB of `[]` took 1.5 GB. One per 16 bytes keeps any file's
# memory near a real file's (~4-5x its size).
BYTES_PER_CONTAINER = 16
MIN_CONTAINERS = 100_000        # what any file may hold whatever its size (~6 MiB in memory)
# Elements (',' counted the same way). Real results hold one per 14 bytes or more. A short string
# costs Python ~50 bytes: 256 MiB of `"ab",` would take ~3 GB. One per 8 bytes keeps a file of
# short strings or floats near 6-8x its size.
BYTES_PER_ELEMENT = 8
MIN_ELEMENTS = 200_000
# Nesting. Results nest 11 levels deep (runs[i].checks.claims.details.claims[j].claimed.outputs[k]);
# json.loads fails past ~1,000 and every recursive reader (the report's json.dumps, the diff's
# comparisons) somewhat earlier, depending on its own stack.
MAX_DEPTH = 64
# Integers. Python refuses to read or write ones past 4,300 digits (sys.int_max_str_digits);
# counts and sizes are bounded far below that by the schema (2**53, exact in a float and in JS).
_INT_LIMIT = 10 ** 4300


class _Unreadable(Exception):
    """What :func:`_check_data` found, and where (a JSON path, filled in on the way out)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what, self.path = what, []


def _check_text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unreadable("a string holding a lone UTF-16 surrogate (not text: no page or terminal can show "
                          "it)") from None


def _check_data(node, depth: int = 1) -> None:
    """That ``node`` (a dict or list) is JSON data every reader can take: plain JSON types, text,
    finite numbers, integers of at most 4,300 digits, nesting at most :data:`MAX_DEPTH` deep. (20,000
    runs: ~1.4 s, a quarter of what json.loads takes.)"""
    if depth > MAX_DEPTH:
        raise _Unreadable(f"nested more than {MAX_DEPTH} levels deep (results nest about 11)")
    is_dict = type(node) is dict
    for key, value in (node.items() if is_dict else enumerate(node)):
        try:
            if is_dict:
                if type(key) is not str:
                    raise _Unreadable(f"a key that is not a string ({type(key).__name__})")
                if not key.isascii():
                    _check_text(key)
            t = type(value)
            if t is str:
                if not value.isascii():
                    _check_text(value)
            elif t is dict or t is list:
                _check_data(value, depth + 1)
            elif t is float:
                if value - value != 0.0:        # NaN or infinity (a JSON number past 1.8e308 reads as one)
                    raise _Unreadable(f"{value} is not a finite number (JSON has no NaN or infinity; results "
                                      f"write them as the strings {', '.join(map(repr, NON_FINITE))})")
            elif t is int:
                if not -_INT_LIMIT < value < _INT_LIMIT:
                    raise _Unreadable("an integer of more than 4,300 digits")
            elif value is not None and t is not bool:
                raise _Unreadable(f"a {t.__name__}, not JSON data")
        except _Unreadable as exc:
            exc.path.insert(0, key)
            raise


def _printable(message: str, limit: int = 2000) -> str:
    """A refusal as a terminal shows it, on one line: control (newline included), bidirectional and
    lone surrogate characters escaped (a results file's case id could otherwise move the cursor or
    reorder the line), and a message quoting huge strings from the file cut in the middle
    (:func:`conformance.text.terminal_text`)."""
    return terminal_text(message, limit, lines=False)


def validate(doc, where: str = "results") -> dict:
    """Check that ``doc`` is a results document this version can read, and that it is consistent
    (what a tampered or hand-edited file breaks); raise :class:`ResultsError` saying where."""
    try:
        return _validate(doc, where)
    except ResultsError as exc:
        raise ResultsError(_printable(str(exc))) from None


# The verdicts of a run that has no checks: it did not run (unsupported, skipped) or failed (error).
_UNCHECKED = (checks.UNSUPPORTED, checks.SKIPPED, checks.ERROR)


def _validate(doc, where: str) -> dict:
    from .checks import worst

    if not isinstance(doc, dict):
        raise ResultsError(f"{where}: not a results document (top level is {type(doc).__name__}, not an object)")
    if doc.get("schema") != SCHEMA_VERSION or type(doc.get("schema")) is not int:
        raise ResultsError(f"{where}: schema {doc.get('schema')!r:.100} is not supported (this version reads "
                           f"schema {SCHEMA_VERSION})")
    try:
        _check_data(doc)
    except _Unreadable as exc:
        raise ResultsError(f"{where}: {_where_in(doc, exc.path)}: {exc.what}") from None
    import fastjsonschema

    try:
        _schema_validator()(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = [int(p) if p.isdigit() else p for p in exc.path[1:]]
        said = exc.message[len(exc.name):].strip() if exc.message.startswith(exc.name) else exc.message
        raise ResultsError(f"{where}: {_where_in(doc, path)}: {said}") from None
    seen: dict[tuple, int] = {}
    counts: dict[str, dict[str, int]] = {}
    for i, r in enumerate(doc["runs"]):
        key = (r["file"], r["case"], r["impl"], r["device"])
        if key in seen:
            raise ResultsError(f"{where}: runs[{i}] ({r['case']} on {r['impl']}@{r['device']}) repeats runs[{seen[key]}]: "
                               "a run appears once in a results file (merge files with `conformance report A B`)")
        seen[key] = i
        if r["checks"] and r["verdict"] != (w := worst(c["verdict"] for c in r["checks"].values())):
            raise ResultsError(f"{where}: runs[{i}] ({r['case']} on {r['impl']}@{r['device']}): verdict "
                               f"{r['verdict']!r} is not the worst of its checks ({w!r}); the file was edited")
        if not r["checks"] and r["verdict"] not in _UNCHECKED:
            raise ResultsError(f"{where}: runs[{i}] ({r['case']} on {r['impl']}@{r['device']}): verdict "
                               f"{r['verdict']!r} but no checks: a run that was not checked is "
                               f"{', '.join(map(repr, _UNCHECKED))}; the file was edited")
        col = counts.setdefault(f"{r['impl']}@{r['device']}", {})
        col[r["verdict"]] = col.get(r["verdict"], 0) + 1
    if doc.get("partial") is not None:
        finished, expected = doc["partial"]["finished"], doc["partial"].get("expected")
        if finished != len(doc["runs"]):
            raise ResultsError(f"{where}: partial.finished: says {finished:,} runs finished, but the file holds "
                               f"{len(doc['runs']):,}; the file was edited or truncated")
        if expected is not None and expected < finished:
            raise ResultsError(f"{where}: partial.expected: says {expected:,} runs were expected, fewer than the "
                               f"{finished:,} that finished; the file was edited")
    if "summary" in doc and doc["summary"] != counts:
        raise ResultsError(f"{where}: 'summary' does not count the runs the file holds (it says "
                           f"{str(doc['summary']):.500}, the runs give {str(counts):.500}); the file was edited or "
                           "truncated")
    return doc


class _Constant(Exception):
    """A NaN, Infinity or -Infinity literal: Python's json reads them, no other JSON reader does."""


def _refuse_constant(name: str):
    raise _Constant(name)


def _place(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - text.rfind(chr(10), 0, pos)} (char {pos})"


# A JSON string, or (group 1) the token looked for; only run to say where a refused token is.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'


def _find(text: str, token: str) -> int:
    for m in re.finditer(f"{_STRING}|({token})", text):
        if m.group(1):
            return m.start(1)
    return -1


def load(path: str | Path) -> dict:
    """Read and validate a ``results.json``; any problem is a :class:`ResultsError` naming the file
    (and nothing else is raised: a session reads ``reports/latest/results.json``, whatever is there).

    Before parsing: at most :data:`MAX_BYTES`, UTF-8, at most one container per
    :data:`BYTES_PER_CONTAINER` bytes. Parsing refuses NaN and Infinity (which only Python's json
    reads); then :func:`validate`."""
    try:
        return _load(Path(path))
    except ResultsError as exc:
        raise ResultsError(_printable(str(exc))) from None
    except MemoryError:
        raise ResultsError(f"{path}: too large to read in the memory available") from None
    except Exception as exc:  # noqa: BLE001 - whatever a file makes of the reader, it is refused, named
        raise ResultsError(_printable(f"{path}: cannot be read: {type(exc).__name__}: {exc}")) from None


def _load(path: Path) -> dict:
    try:
        with open_regular(path) as f:     # a FIFO or a device is refused, never read (it could block or never end)
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                raise ResultsError(f"{path}: {size:,} bytes is more than a results file may be "
                                   f"({MAX_BYTES // 2**20} MiB; 20,000 runs take ~120 MiB)")
            chunks, total = [], 0
            want = size + 1 if 0 < size <= MAX_BYTES else 2**16   # a file in /proc says size 0
            while total <= MAX_BYTES and (chunk := f.read(min(want, MAX_BYTES + 1 - total))):
                chunks.append(chunk)
                total, want = total + len(chunk), 2**24
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ResultsError(f"{path}: more than {MAX_BYTES // 2**20} MiB, more than a results file may be")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: cannot be read: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    del data
    containers = text.count("[") + text.count("{")
    if containers > max(MIN_CONTAINERS, len(text) // BYTES_PER_CONTAINER):
        raise ResultsError(f"{path}: {containers:,} '[' and '{{' in {len(text):,} characters: not a results file "
                           f"(those hold about one per 45-70 characters; at most one per {BYTES_PER_CONTAINER} "
                           "is read)")
    elements = text.count(",")
    if elements > max(MIN_ELEMENTS, len(text) // BYTES_PER_ELEMENT):
        raise ResultsError(f"{path}: {elements:,} ',' in {len(text):,} characters: not a results file (those hold "
                           f"about one per 14 characters or more; at most one per {BYTES_PER_ELEMENT} is read)")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except _Constant as exc:
        token = {"NaN": "NaN", "Infinity": "(?<!-)Infinity", "-Infinity": "-Infinity"}[str(exc)]
        raise ResultsError(f"{path}: not valid JSON: {exc} at {_place(text, _find(text, token))}: JSON has no "
                           f"NaN or infinity (results write them as the strings "
                           f"{', '.join(map(repr, NON_FINITE))})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise ResultsError(f"{path}: nested too deeply to read (results nest about 11 levels; at most "
                           f"{MAX_DEPTH} are read)") from None
    except ValueError as exc:       # an integer past sys.int_max_str_digits
        digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        at = _find(text, f"-?[0-9]{{{digits + 1},}}")
        raise ResultsError(f"{path}: not readable JSON: an integer of more than {digits:,} digits"
                           + (f" at {_place(text, at)}" if at >= 0 else f" ({exc})")) from None
    return _validate(doc, str(path))
