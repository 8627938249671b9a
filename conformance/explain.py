"""Plain-text explanation of a run record: what a failing test item prints.

For each failing check it shows the native result, its canonical form, the reference, and the
declared divergence it was compared with, so a maintainer can judge it without re-running.
Everything in it comes from a run record (a case file's texts, a framework's messages), so every
line is shown through :func:`conformance.text.terminal_text`: control and bidirectional characters
escaped, a very long line shortened.
"""

from __future__ import annotations

from .checks import FAILING
from .text import terminal_text


def _num(x, spec: str = ".3g") -> str:
    """A measured number as text: formatted when it is one (NaN and infinity included), else as it is
    (None, or "NaN" / "Infinity" as results.json writes non-finite numbers)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        try:
            return format(x, spec)
        except OverflowError:       # an integer past what a float holds
            return str(x)
    return "none" if x is None else str(x)


def _returns(rec: dict) -> str:
    items = [f"{r['path'] or 'return'} {r['role']} {tuple(r['shape'])} {r['dtype']}"
             + ("" if r.get("top", True) else f" (layer {r.get('layer')})") for r in rec["native"]["returns"]]
    return "; ".join(items) or "(none)"


def _declared(chk: dict) -> str:
    d = chk.get("divergence")
    if not d:
        return "none"
    return f"{d['id']} ({d['file']}:{d['line']}): {d['reason']}" + (f" [{d['link']}]" if d.get("link") else "")


def explain(rec: dict) -> str:
    head = f"{rec['case']} on {rec['impl']}@{rec['device']}: {rec['verdict']}"
    lines = [head, f"  case: {rec['file']}:{rec['line']}", f"  config: {rec['config']}"]
    if rec["verdict"] == "error":
        lines.append(f"  error: {rec['reason']}")
        if rec.get("traceback"):
            lines += ["  " + t for t in rec["traceback"].rstrip().splitlines()[-15:]]
        return _shown(lines)
    native = rec["native"]
    lines += [f"  native construct: {native['construct']}", f"  native returns: {_returns(rec)}"]
    for name, chk in rec["checks"].items():
        if chk["verdict"] not in FAILING:
            continue
        det = chk["details"]
        lines.append(f"  check {name}: {chk['verdict']}")
        if chk["verdict"] == "stale":
            lines.append("    the declared divergence no longer happens: the framework changed, or the "
                         "declaration is too broad")
        if name == "output_shape":
            lines += [f"    canonical: {det['observed']}", f"    reference: {det['expected']}"]
        elif name == "state_shapes":
            lines += [f"    canonical (h, c) per {det['labels']}: {det['observed']}",
                      f"    reference: {det['expected']}"]
        elif name == "accepts":
            lines += [f"    canonical: {det['canonical']}", f"    native:    {det['native']}"]
        elif name == "dtype":
            lines += [f"    the case's dtype: {det['expected']}"] + [f"    returned {w}" for w in det["wrong"]]
        elif name == "state_order":
            lines += [f"    {p}" for p in det["problems"]] or ["    states are in canonical order"]
        elif name == "param_count":
            lines += [f"    native count: {det['observed']}", f"    canonical (reference): {det['canonical']}",
                      f"    documented formula gives {det['documented']}: {det['formula']} ({det['formula_source']})"]
            if det.get("problem"):
                lines.append(f"    {det['problem']}")
        elif name == "values":
            lines.append(f"    tolerance: |observed - reference| <= {_num(det['atol'], 'g')} + "
                         f"{_num(det['rtol'], 'g')}·|reference|")
            lines += [f"    {t['tensor']}: max abs error {_num(t['max_abs'])}, max rel error {_num(t['max_rel'])}"
                      f"{'' if t['ok'] else '  <- outside tolerance'}" for t in det["tensors"]]
            if det.get("first"):
                lines.append(f"    first leaves the reference at: {det['first']}")
        elif name == "symbolic":
            if "error" in det:
                lines.append(f"    the suite failed to ask for the inference: {det['error']}")
            elif "symbolic" in det and isinstance(det["symbolic"], str):
                lines += [f"    inferred ({det.get('api')}): {det['symbolic']}", f"    called:   {det.get('eager')}"]
            else:
                lines.append(f"    inferred by {det.get('api')} with {' and '.join(det.get('unknown') or []) or 'no'} "
                             "dimension(s) unknown:")
                lines += [f"    {p}" for p in det.get("problems") or []]
            lines += [f"    refused first with {' and '.join(a['unknown']) or 'nothing'} unknown: {a['refused']}"
                      for a in det.get("attempts") or []]
        elif name == "padding":
            lines.append(f"    at the {det['padded_steps']} padded output steps: {det['behaviour']} (canonical: zeros; "
                         f"largest |value| {_num(det.get('max_abs_at_padding'))})")
        elif name == "claims":
            for c in det["claims"]:
                if c["verdict"] in FAILING:
                    lines.append(f"    claim (line {c['line']}) from {c['source']}: {c['verdict']}")
                    if c["says"]:
                        lines.append(f"      says: {c['says']}")
                    lines += [f"      claimed: {c['claimed']}", f"      real:    {c['real']}",
                              f"      recorded as {'true' if c['expected_true'] else 'false'} in the case, "
                              f"but it is {'true' if c['true'] else 'false'} when run"]
        if name != "claims":
            lines.append(f"    declared divergence: {_declared(chk)}")
        for n in chk.get("near_misses") or []:
            lines.append(f"    a declaration would explain it were it in scope: {n['id']} ({n['file']}:{n['line']}): "
                         f"{n['why_not']}")
    if native["normalization"]:
        lines.append("  normalization: " + " | ".join(native["normalization"]))
    return _shown(lines)


def _shown(lines: list[str]) -> str:
    """The explanation as a terminal may show it: each line through :func:`terminal_text`."""
    return "\n".join(terminal_text(line) for line in lines)
