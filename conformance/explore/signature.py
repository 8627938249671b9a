"""Signatures: what kind of disagreement a configuration's runs show, so that many configurations
showing the same difference count as one finding.

A signature is (check, kind, implementations@devices): the check that failed, the kind of
difference (which tensor's values, refused or accepted, the exception type of an error, the dtype
returned, what sits at the padding), and every implementation in the configuration that shows that
same check and kind. ``values@c: flax-linen+flax-nnx ≠ reference`` is one. The kind comes from the
check's own details, so a signature says the same thing whatever the sizes were; a configuration
shows one signature per (check, kind) it fails.

Runs the catalogue explains (``known-divergence``) are not findings: they are counted under their
declaration. Nor is a declaration that says a run differs when it does not (``stale``): it is counted
apart, per declaration (its ``when`` is broader than the difference, or the difference is below the
tolerance for that configuration's numbers), with examples, for the catalogue's maintainer to read.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

from .. import checks

REFERENCE = "reference"


def _values_kind(details: dict) -> str:
    bad = [t["tensor"] for t in details.get("tensors", []) if not t.get("ok")]
    if not bad:
        return "values"
    name = bad[0]
    if name.startswith("call"):
        return "values@earlier-call"
    return "values@" + name.rsplit("/", 1)[-1]       # output, h or c


def kind_of(check: str, chk: dict) -> str:
    """The kind of difference a failing check shows, from its details (sizes left out)."""
    details = chk.get("details") or {}
    if check == "accepts":
        if str(details.get("native", "")).startswith("rejected"):
            exc = re.match(r"rejected: ([\w.]+)", str(details["native"]))
            return "refuses" + (f":{exc.group(1)}" if exc else "")
        return "accepts"
    if check == "values":
        return _values_kind(details)
    if check == "dtype":
        return "dtype:" + "+".join(details.get("observed") or [])
    if check == "padding":
        behaviour = str(details.get("behaviour", ""))
        return "padding:" + ("repeated" if "repeated" in behaviour else "computed" if "computed" in behaviour
                             else behaviour.split()[0] if behaviour else "?")
    if check == "symbolic":
        if isinstance(details.get("symbolic"), str):     # one of inference and call refused, the other accepted
            return "symbolic:" + ("refuses" if details["symbolic"].startswith("refused") else "accepts")
        problems = " ".join(map(str, details.get("problems") or []))
        return "symbolic:" + ("error" if "error" in details else "dtype" if "dtype" in problems
                              else "count" if "parameters" in problems else "shape")
    if check == "state_shapes" and details.get("unrequested"):
        return "shapes:unrequested"
    return {"output_shape": "shape", "state_shapes": "shapes", "state_order": "order",
            "param_count": "count"}.get(check, check)


def _error_kind(record: dict) -> str:
    fault = record.get("fault") or {}
    what = fault.get("type") or fault.get("signal") or fault.get("kind") or "error"
    return f"error:{what}"


def where(record: dict) -> str:
    """``impl`` on CPU, ``impl@gpu`` elsewhere: what a signature names."""
    return record["impl"] if record["device"] == "cpu" else f"{record['impl']}@{record['device']}"


def signatures(records: list[dict]) -> dict[str, dict]:
    """The signatures one configuration's run records show: ``{signature: {"check", "kind", "impls"}}``."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rec in records:
        if rec["verdict"] == checks.ERROR and not rec.get("checks"):
            groups[("error", _error_kind(rec))].append(where(rec))
            continue
        for name, chk in (rec.get("checks") or {}).items():
            if chk["verdict"] == checks.DIVERGE:
                groups[(name, kind_of(name, chk))].append(where(rec))
    return {text(check, kind, impls): {"check": check, "kind": kind, "impls": sorted(impls)}
            for (check, kind), impls in groups.items()}


def text(check: str, kind: str, impls) -> str:
    return f"{check} {kind}: {'+'.join(sorted(impls))} ≠ {REFERENCE}"


def shows(records: list[dict], target: dict) -> bool:
    """Whether these records show ``target``'s difference (same check and kind) on every one of its
    implementations (more is fine: shrinking may only make it clearer)."""
    for sig in signatures(records).values():
        if sig["check"] == target["check"] and sig["kind"] == target["kind"] and set(target["impls"]) <= set(sig["impls"]):
            return True
    return False


def slug(signature: str) -> str:
    """A file name for a signature: its words, and a short hash so that two never collide."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", signature.replace("≠ reference", "")).strip("-").lower()
    return f"{words[:80].rstrip('-')}-{hashlib.sha256(signature.encode()).hexdigest()[:6]}"


def known(records: list[dict], verdict: str = checks.KNOWN) -> dict[str, int]:
    """How many checks each declaration explained in these records (``known-divergence``; with
    ``verdict="stale"``: how many it declared different that agreed)."""
    out: dict[str, int] = defaultdict(int)
    for rec in records:
        for chk in (rec.get("checks") or {}).values():
            if chk["verdict"] == verdict and chk.get("divergence"):
                out[chk["divergence"]["id"]] += 1
    return dict(out)
