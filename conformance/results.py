"""Run records and ``results.json``: the machine-readable result every report and merge reads.

A run record is plain JSON data (see README, "Results format"). :func:`execute` turns one
case × impl × device into a record: static decisions first (not installed, unsupported, no such
device) so that they cost no framework start-up, then the worker run, then the checks.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from . import __version__, checks, impls, reference
from .devices import machine_has_gpu
from .impls.base import Observation
from .runner import WorkerPool
from .spec import Case, Divergence

SCHEMA_VERSION = 1


def _shape(a):
    return None if a is None else [int(d) for d in np.shape(a)]


def display_path(path: str, root: Path | None) -> str:
    """A case or catalogue file as results record it: relative to the rootdir (posix) when inside it,
    so that results from machines with different checkouts merge and diff on the same key."""
    if not path or root is None:
        return path
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def record(case: Case, impl_id: str, device: str, obs: Observation, run_checks: dict, info: dict,
           root: Path | None = None, repro: str = "") -> dict:
    for chk in run_checks.values():
        if chk.get("divergence"):
            chk["divergence"] = {**chk["divergence"], "file": display_path(chk["divergence"]["file"], root)}
    if obs.status == "ok":
        verdict = checks.worst(c["verdict"] for c in run_checks.values())
    else:
        verdict = {"unsupported": checks.UNSUPPORTED, "skipped": checks.SKIPPED}.get(obs.status, checks.ERROR)
    return {
        "case": case.id, "file": display_path(case.file, root), "line": case.line, "impl": impl_id, "device": device,
        "verdict": verdict, "reason": obs.reason, "traceback": obs.traceback,
        "checks": run_checks,
        "config": case.config.to_dict(),
        "reference": reference.summary(case.config),
        "native": {"construct": obs.construct, "returns": obs.returns, "params": obs.params,
                   "param_count": obs.param_count, "normalization": obs.normalization, "repro": repro},
        "canonical": {"output_shape": _shape(obs.output),
                      "state_shapes": None if obs.states is None else [[_shape(h), _shape(c)] for h, c in obs.states]},
        "versions": info.get("versions", {}),
        "device_name": info.get("device_names", {}).get(device, device),
        "worker_pid": info.get("pid") if obs.status == "ok" else None,
        "timings": obs.timings,
        "fault": obs.fault,
    }


def execute(case: Case, impl_id: str, device: str, pool: WorkerPool, divergences: list[Divergence],
            root: Path | None = None) -> dict:
    impl = impls.get(impl_id)
    obs = None
    if reason := impl.missing():
        obs = Observation(status="skipped", reason=reason)
    elif reason := impl.unsupported(case.config):
        obs = Observation(status="unsupported", reason=reason)
    elif device == "gpu" and not machine_has_gpu():
        obs = Observation(status="skipped", reason="no GPU on this machine")
    else:
        obs = pool.run(impl_id, case.id, case.config, device)
    run_checks = {}
    info = pool.infos.get(impl_id, {})
    if obs.status == "ok":
        run_checks = checks.evaluate(case, impl_id, device, obs, impl.param_formula, divergences,
                                     info.get("versions"))
    repro = "" if impl.unsupported(case.config) else impl.repro(case.config)
    return record(case, impl_id, device, obs, run_checks, info, root, repro)


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


def dumps(obj) -> str:
    return json.dumps(obj, default=_jsonable)


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
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write(out_dir: str | Path, runs: list[dict], **kw) -> Path:
    """Write ``out_dir/results.json`` atomically; keyword arguments as :func:`document`."""
    path = Path(out_dir) / "results.json"
    write_atomic(path, json.dumps(document(runs, **kw), indent=1, default=_jsonable))
    return path


class ResultsError(ValueError):
    """A results file that cannot be read as one: the message names the file and what is wrong."""


def _schema_validator():
    """The JSON Schema of results.json (``results.schema.json``, shipped with the package), compiled
    once by fastjsonschema (about 20x faster than interpreting it: 20,000 runs in ~2.5 s, as long as
    parsing the JSON takes)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        from importlib import resources

        import fastjsonschema

        schema = json.loads(resources.files("conformance").joinpath("results.schema.json").read_text("utf-8"))
        _VALIDATOR = fastjsonschema.compile(schema)
    return _VALIDATOR


_VALIDATOR = None


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


def validate(doc, where: str = "results") -> dict:
    """Check that ``doc`` is a results document this version can read, and that it is consistent
    (what a tampered or hand-edited file breaks); raise :class:`ResultsError` saying where."""
    from .checks import worst

    if not isinstance(doc, dict):
        raise ResultsError(f"{where}: not a results document (top level is {type(doc).__name__}, not an object)")
    if doc.get("schema") != SCHEMA_VERSION:
        raise ResultsError(f"{where}: schema {doc.get('schema')!r} is not supported (this version reads schema "
                           f"{SCHEMA_VERSION})")
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
        col = counts.setdefault(f"{r['impl']}@{r['device']}", {})
        col[r["verdict"]] = col.get(r["verdict"], 0) + 1
    if "summary" in doc and doc["summary"] != counts:
        raise ResultsError(f"{where}: 'summary' does not count the runs the file holds (it says {doc['summary']}, "
                           f"the runs give {counts}); the file was edited or truncated")
    return doc


def load(path: str | Path) -> dict:
    """Read and validate a ``results.json``; any problem is a :class:`ResultsError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON: {exc}") from None
    return validate(doc, str(path))
