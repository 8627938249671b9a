"""Which known-divergence declarations apply to a case file, and where each comes from.

The project's catalogue ships inside the package (``conformance/cases/divergences.yaml``, beside the
default case set), so it applies to a maintainer's case file wherever that file lives, with no
checkout. Layers, from the broadest to the most specific (a later layer's declaration replaces an
earlier one with the same id):

1. ``builtin``: the shipped catalogue (off with ``--no-builtin-divergences``);
2. ``project``: marked ``divergences.yaml`` files from the rootdir down to the case file's directory
   (never above the rootdir, like conftest.py; nearer ones override farther ones);
3. ``option``: ``--divergences FILE``, in the order given;
4. ``own``: the case file's own ``divergences:`` (they apply to that file only).

A file met twice (the checkout's ``cases/divergences.yaml`` is the shipped one) counts once, at
its first layer. :func:`near_misses` answers the question a failing run raises: is there a
declaration the session knows that would have explained this, were it in scope?
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import spec

NAMES = ("divergences.yaml", "divergences.yml")


def shipped_cases() -> Path:
    """The default case set shipped in the package (in a checkout: the repository's ``cases/``)."""
    return Path(str(resources.files("conformance").joinpath("cases"))).resolve()


def builtin_catalogue() -> Path:
    return shipped_cases() / "divergences.yaml"


def shipped_label(path: str | Path) -> str | None:
    """``cases/<name>`` for a file of the shipped case set, so that results name it the same on
    every machine and install (a checkout's relative path), else None."""
    try:
        rel = Path(path).resolve().relative_to(shipped_cases())
    except (ValueError, OSError):
        return None
    return (Path("cases") / rel).as_posix()


@dataclass(frozen=True)
class Source:
    """One catalogue file in a case file's scope."""

    path: Path
    layer: str          # builtin, project, option, own

    def key(self) -> str:
        return spec.snapshot_key(self.path)


def project_files(case_file: Path, root: Path) -> list[Path]:
    """Marked ``divergences.yaml`` files from ``root`` down to ``case_file``'s directory (a case
    file outside the rootdir: its own directory only), farthest first."""
    root = root.resolve()
    here = Path(case_file).resolve().parent
    dirs = [here, *here.parents]
    dirs = dirs[:dirs.index(root) + 1] if root in dirs else [here]
    found = []
    for d in reversed(dirs):
        for name in NAMES:
            p = d / name
            if (spec.snapshot_key(p) in spec.SNAPSHOT or p.is_file()) and spec.is_marked(p):
                found.append(p)
    return found


def sources(case_file: Path, root: Path, extra: list[Path], builtin: bool) -> list[Source]:
    """The catalogue files in ``case_file``'s scope, broadest first; the case file itself (its own
    ``divergences:``) is not among them."""
    out: list[Source] = []
    seen = {spec.snapshot_key(case_file)}
    layers = ([("builtin", builtin_catalogue())] if builtin else []) \
        + [("project", p) for p in project_files(case_file, root)] + [("option", p) for p in extra]
    for layer, p in layers:
        if spec.snapshot_key(p) not in seen:
            seen.add(spec.snapshot_key(p))
            out.append(Source(Path(p), layer))
    return out


def in_scope(layers: list[list[spec.Divergence]]) -> list[spec.Divergence]:
    """The declarations that apply, from layers broadest first: a later layer's declaration replaces
    an earlier one of the same id. Most specific first (the first that applies explains a check)."""
    by_id: dict[str, spec.Divergence] = {}
    for layer in layers:
        for d in layer:
            by_id.pop(d.id, None)
            by_id[d.id] = d
    return list(reversed(by_id.values()))


def _why_not(d: spec.Divergence, case: spec.Case, impl_id: str, device: str, versions: dict,
             in_scope_ids: set[str], builtin_off: bool, builtin_path: str) -> str | None:
    """Why ``d`` (which names this check, and whose ``cases`` and ``when`` take this run) does not
    explain the run: its device or release scope, or its file's scope; None when it would, or when
    it is about other configurations."""
    if not any(fnmatch.fnmatchcase(impl_id, p) for p in d.impl):
        return None
    if not any(fnmatch.fnmatchcase(case.id, p) for p in d.cases) or any(
            spec.condition_value(case.config, k) not in vals for k, vals in d.when):
        return None                     # it is about other configurations: not a near miss
    reasons = []
    if not any(fnmatch.fnmatchcase(device, p) for p in d.devices):
        reasons.append(f"it holds on {', '.join(d.devices)} only")
    if d.versions and not d.holds_for(versions):
        have = ", ".join(f"{p} {versions.get(p, 'not installed')}" for p, _ in d.versions)
        reasons.append(f"it holds for {', '.join(p + s for p, s in d.versions)} (this run: {have})")
    if d.id not in in_scope_ids:
        if builtin_off and spec.snapshot_key(Path(d.file)) == builtin_path:
            reasons.append("the shipped catalogue is off (--no-builtin-divergences)")
        else:
            reasons.append(f"{d.file} is not in this case file's scope")
    return "; ".join(reasons) or None


def near_misses(check: str, case: spec.Case, impl_id: str, device: str, versions: dict,
                known: list[spec.Divergence], in_scope_decls: list[spec.Divergence],
                builtin_off: bool) -> list[dict]:
    """Declarations the session knows (``known``: every catalogue and case file it read, the shipped
    one even when off) that name ``check`` for ``impl_id`` but did not explain this run, each with
    why not: what would make it explain the run."""
    ids = {d.id for d in in_scope_decls}
    builtin_path = spec.snapshot_key(builtin_catalogue())
    out, seen = [], set()
    for d in known:
        if d.check != check or (d.id, d.file) in seen:
            continue
        seen.add((d.id, d.file))
        why = _why_not(d, case, impl_id, device, versions, ids, builtin_off, builtin_path)
        if why:
            out.append({"id": d.id, "file": d.file, "line": d.line, "why_not": why})
    return out[:5]
