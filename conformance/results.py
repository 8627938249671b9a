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
        "timings": obs.timings,
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


def document(runs: list[dict], *, unused_divergences=(), argv=None, partial: dict | None = None) -> dict:
    """A results document; ``partial`` (``{"reason", "finished", "expected"}``) when not every run finished."""
    runs = sorted(runs, key=lambda r: (r["file"], r["case"], r["impl"], r["device"]))
    return {
        "schema": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "partial": partial,
        "environment": environment(runs),
        "summary": summarize(runs),
        "unused_divergences": list(unused_divergences),
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


_RUN_FIELDS = {"case": str, "file": str, "impl": str, "device": str, "verdict": str, "checks": dict}


def validate(doc, where: str = "results") -> dict:
    """Check that ``doc`` is a results document this version can read; raise :class:`ResultsError`."""
    from .checks import VERDICTS

    if not isinstance(doc, dict):
        raise ResultsError(f"{where}: not a results document (top level is {type(doc).__name__}, not an object)")
    if doc.get("schema") != SCHEMA_VERSION:
        raise ResultsError(f"{where}: schema {doc.get('schema')!r} is not supported (this version reads schema "
                           f"{SCHEMA_VERSION})")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise ResultsError(f"{where}: field 'runs' must be a list")
    for i, r in enumerate(runs):
        if not isinstance(r, dict):
            raise ResultsError(f"{where}: runs[{i}] is not an object")
        for name, typ in _RUN_FIELDS.items():
            if not isinstance(r.get(name), typ):
                raise ResultsError(f"{where}: runs[{i}] field {name!r} must be a {typ.__name__}, "
                                   f"got {type(r.get(name)).__name__}")
        if r["verdict"] not in VERDICTS:
            raise ResultsError(f"{where}: runs[{i}] ({r['case']} on {r['impl']}@{r['device']}): verdict "
                               f"{r['verdict']!r} is not one of {', '.join(VERDICTS)}")
        for name, chk in r["checks"].items():
            if not isinstance(chk, dict) or chk.get("verdict") not in VERDICTS:
                raise ResultsError(f"{where}: runs[{i}] ({r['case']} on {r['impl']}@{r['device']}): check "
                                   f"{name!r} has no valid verdict")
    if not isinstance(doc.get("environment", {}), dict):
        raise ResultsError(f"{where}: field 'environment' must be an object")
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
