"""What changed between two runs: ``conformance diff OLD.json NEW.json``.

A conformance run says where frameworks stand today; what a maintainer reviewing a framework
upgrade, a new case or a changed declaration needs is what *moved*: which runs newly fail (a
regression, or a new error), which were fixed, which changed in some other way (a verdict, or the
native result itself: the return structure, the parameter count, the canonical shapes, whether a
documented claim still holds), which runs appeared or disappeared, and which framework versions and
devices differ. :func:`compare` computes that from two ``results.json`` documents (read with
:func:`conformance.results.load`); :func:`to_text`, :func:`to_markdown` (a CI job summary or a pull
request comment) and :func:`to_html` render it. Categories are derived from the verdicts
(:data:`conformance.checks.FAILING`), never listed by hand.

Runs are matched by ``(file, case, impl, device)``. ``file`` is relative to the rootdir of the run
when the case file lies inside it, else absolute (a case file given from elsewhere), and two
machines need not agree on absolute paths: runs left unmatched are then paired by ``(case, impl,
device)`` and the longest common trailing part of the file path (at least the file name), so
results from two machines or CI jobs still compare run for run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import PurePath

import jinja2

from .checks import ERROR, FAILING
from .text import terminal_text

ID_LIMIT = 300      # characters of a case id, file or column shown whole in the text and Markdown forms

REGRESSION, FIXED, CHANGED, ADDED, REMOVED = "regression", "fixed", "changed", "added", "removed"
CATEGORIES = (REGRESSION, FIXED, CHANGED, ADDED, REMOVED)
FAIL_ON = ("regression", "change", "never")

_env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                          lstrip_blocks=True)


@dataclass
class RunChange:
    """One run that is not the same in both documents."""

    category: str                  # one of CATEGORIES
    file: str                      # the case file, shortened for display
    case: str
    impl: str
    device: str
    old_verdict: str | None        # None: the run is not in that document
    new_verdict: str | None
    new_error: bool = False        # the new verdict is ``error`` and the old one was not
    checks: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (check, old, new)
    details: list[str] = field(default_factory=list)   # everything that differs, in words

    @property
    def column(self) -> str:
        return f"{self.impl}@{self.device}"

    @property
    def label(self) -> str:
        if self.category == REGRESSION:
            parts = ["new error"] if self.new_error else []
            if self.old_verdict is None:
                parts.append("new run")
            return REGRESSION + (f" ({', '.join(parts)})" if parts else "")
        return self.category

    @property
    def transition(self) -> str:
        return f"{self.old_verdict or '(none)'} -> {self.new_verdict or '(none)'}"


@dataclass
class Diff:
    old_label: str
    new_label: str
    changes: list[RunChange]       # every run that differs, regressions first
    unchanged: int                 # runs present in both and identical in every compared field
    environment: list[str]         # framework versions and devices that differ, in words
    warnings: list[str] = field(default_factory=list)

    def of(self, category: str) -> list[RunChange]:
        return [c for c in self.changes if c.category == category]

    @property
    def regressions(self) -> list[RunChange]:
        return self.of(REGRESSION)

    @property
    def counts(self) -> dict[str, int]:
        counts = {cat: len(self.of(cat)) for cat in CATEGORIES}
        counts["unchanged"] = self.unchanged
        return counts

    @property
    def new_errors(self) -> int:
        return sum(c.new_error for c in self.changes)

    def exit_status(self, fail_on: str = "regression") -> int:
        """1 when the diff should fail a CI job under ``--fail-on``, else 0."""
        if fail_on == "regression":
            return 1 if self.regressions else 0
        if fail_on == "change":
            return 1 if self.changes else 0
        if fail_on == "never":
            return 0
        raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")


# ---- formatting of native results ----

def _shape(s) -> str:
    if s is None:
        return "none"
    return "(" + ", ".join(str(d) for d in s) + (",)" if len(s) == 1 else ")")


def _returns(returns, full: bool) -> str:
    if returns is None:
        return "none"
    items = []
    for r in returns:
        text = f"{r.get('role', '?')} {_shape(r.get('shape'))}"
        if full:
            text = f"{r.get('path', '?')} {text} {r.get('dtype', '?')}"
        items.append(text)
    return "[" + ", ".join(items) + "]"


def _states(states) -> str:
    if states is None:
        return "none"
    return "[" + "; ".join(f"h {_shape(h)}, c {_shape(c)}" for h, c in states) + "]"


def _value(v) -> str:
    if v is None:
        return "(none)"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _first_line(text, limit: int = 200) -> str:
    line = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _claims(run: dict) -> list[dict]:
    return ((run.get("checks") or {}).get("claims") or {}).get("details", {}).get("claims") or []


def _claim_name(c: dict) -> str:
    name = c.get("source") or "claim"
    return f"claim {name!r}" + (f" ({_first_line(c['says'], 60)!r})" if c.get("says") else "")


def _native(run: dict) -> dict:
    return run.get("native") or {}


def _canonical(run: dict) -> dict:
    return run.get("canonical") or {}


def _describe(old: dict, new: dict) -> tuple[list[tuple[str, str | None, str | None]], list[str]]:
    """Per-check verdict changes and every difference in words, for a matched pair of runs."""
    details = []
    oc, nc = old.get("config") or {}, new.get("config") or {}
    for k in list(oc) + [k for k in nc if k not in oc]:
        if oc.get(k) != nc.get(k):
            details.append(f"config {k} {_value(oc.get(k))} -> {_value(nc.get(k))}")
    checks = []
    ochk, nchk = old["checks"], new["checks"]
    for name in list(ochk) + [n for n in nchk if n not in ochk]:
        ov, nv = (ochk.get(name) or {}).get("verdict"), (nchk.get(name) or {}).get("verdict")
        if ov != nv:
            checks.append((name, ov, nv))
    if not (ochk and nchk):
        # One side did not run (error, unsupported, skipped): its checks and native result are simply
        # absent, and listing each as gone says nothing the verdicts and the reason do not.
        if new.get("reason") and new.get("reason") != old.get("reason"):
            details.append(f"reason: {_first_line(new['reason'])}")
        return checks, details
    for name in list(ochk) + [n for n in nchk if n not in ochk]:
        ov, nv = (ochk.get(name) or {}).get("verdict"), (nchk.get(name) or {}).get("verdict")
        if ov != nv:
            details.append(f"{name}: {_value(ov)} -> {_value(nv)}")
        od = ((ochk.get(name) or {}).get("divergence") or {}).get("id")
        nd = ((nchk.get(name) or {}).get("divergence") or {}).get("id")
        if od != nd:
            details.append(f"{name}: declared divergence {od or 'none'} -> {nd or 'none'}")
    on, nn = _native(old), _native(new)
    if on.get("returns") != nn.get("returns"):
        full = _returns(on.get("returns"), False) == _returns(nn.get("returns"), False)
        details.append(f"returns: {_returns(on.get('returns'), full)} -> {_returns(nn.get('returns'), full)}")
    if on.get("param_count") != nn.get("param_count"):
        details.append(f"param_count {_value(on.get('param_count'))} -> {_value(nn.get('param_count'))}")
    ocan, ncan = _canonical(old), _canonical(new)
    if ocan.get("output_shape") != ncan.get("output_shape"):
        details.append(f"canonical output_shape {_shape(ocan.get('output_shape'))} -> "
                       f"{_shape(ncan.get('output_shape'))}")
    if ocan.get("state_shapes") != ncan.get("state_shapes"):
        details.append(f"canonical state_shapes {_states(ocan.get('state_shapes'))} -> "
                       f"{_states(ncan.get('state_shapes'))}")
    oclaims = {(c.get("source"), c.get("says")): c for c in _claims(old)}
    nclaims = {(c.get("source"), c.get("says")): c for c in _claims(new)}
    for key in list(oclaims) + [k for k in nclaims if k not in oclaims]:
        o, n = oclaims.get(key), nclaims.get(key)
        if o is None:
            details.append(f"{_claim_name(n)}: new, {_value(n.get('true'))}")
        elif n is None:
            details.append(f"{_claim_name(o)}: gone (was {_value(o.get('true'))})")
        elif o.get("true") != n.get("true"):
            details.append(f"{_claim_name(n)}: {_value(o.get('true'))} -> {_value(n.get('true'))} "
                           f"(real {n.get('real')})")
    if new.get("reason") and new.get("reason") != old.get("reason"):
        details.append(f"reason: {_first_line(new['reason'])}")
    return checks, details


# ---- matching and categories ----

def _key(r: dict) -> tuple[str, str, str, str]:
    return (r["file"], r["case"], r["impl"], r["device"])


def _index(runs: list[dict], which: str, warnings: list[str]) -> dict:
    out = {}
    for r in runs:
        k = _key(r)
        if k in out:
            warnings.append(f"{which}: more than one run of {k[1]} on {k[2]}@{k[3]} ({k[0]}); the last one is compared")
        out[k] = r
    return out


def _suffix_len(a: str, b: str) -> int:
    pa, pb = PurePath(a).parts[::-1], PurePath(b).parts[::-1]
    n = 0
    while n < min(len(pa), len(pb)) and pa[n] == pb[n]:
        n += 1
    return n


def _pair(old: dict, new: dict) -> list[tuple[dict | None, dict | None]]:
    pairs = [(old[k], new[k]) for k in old if k in new]
    old_only = [k for k in old if k not in new]
    new_only = [k for k in new if k not in old]
    for ko in list(old_only):
        best = max((kn for kn in new_only if kn[1:] == ko[1:]), key=lambda kn: _suffix_len(ko[0], kn[0]), default=None)
        if best is not None and _suffix_len(ko[0], best[0]) >= 1:
            pairs.append((old[ko], new[best]))
            old_only.remove(ko)
            new_only.remove(best)
    return pairs + [(old[k], None) for k in old_only] + [(None, new[k]) for k in new_only]


def _failing(checks: dict) -> set[tuple[str, str]]:
    return {(name, c["verdict"]) for name, c in checks.items() if c["verdict"] in FAILING}


def _category(old: dict | None, new: dict | None, differs: bool) -> str | None:
    if old is None:
        return REGRESSION if new["verdict"] in FAILING else ADDED
    if new is None:
        return REMOVED
    was, now = old["verdict"] in FAILING, new["verdict"] in FAILING
    if now and (not was or old["verdict"] != new["verdict"]
                or not _failing(new["checks"]) <= _failing(old["checks"])):
        return REGRESSION   # newly failing, or failing in a new way (another verdict, another failing check)
    if was and not now:
        return FIXED
    return CHANGED if differs else None


def _display_paths(runs: list[dict]) -> dict[str, str]:
    """File paths relative to the parent of their common directory (``cases/x.yaml``), for display."""
    files = sorted({r["file"] for r in runs})
    if not files:
        return {}
    try:
        root = os.path.dirname(os.path.commonpath([os.path.dirname(f) or "." for f in files]))
    except ValueError:          # mixed absolute and relative paths
        return {f: f for f in files}
    return {f: os.path.relpath(f, root) if root else f for f in files}


def _versions(doc: dict) -> dict[str, dict[str, str]]:
    """impl -> framework -> version(s), from the environment and from every run (merged documents)."""
    seen: dict[str, dict[str, set]] = {}
    for impl, vs in ((doc.get("environment") or {}).get("versions") or {}).items():
        for fw, v in (vs or {}).items():
            seen.setdefault(impl, {}).setdefault(fw, set()).add(str(v))
    for r in doc["runs"]:
        for fw, v in (r.get("versions") or {}).items():
            seen.setdefault(r["impl"], {}).setdefault(fw, set()).add(str(v))
    return {impl: {fw: ", ".join(sorted(v)) for fw, v in fws.items()} for impl, fws in seen.items()}


def _devices(doc: dict) -> dict[str, str]:
    out = dict((doc.get("environment") or {}).get("devices") or {})
    for r in doc["runs"]:
        if r.get("device_name"):
            out.setdefault(f"{r['impl']}@{r['device']}", str(r["device_name"]))
    return out


def _environment(old: dict, new: dict) -> list[str]:
    lines = []
    oe, ne = old.get("environment") or {}, new.get("environment") or {}
    for k in ("python", "conformance"):
        if oe.get(k) and ne.get(k) and oe[k] != ne[k]:
            lines.append(f"{k} {oe[k]} -> {ne[k]}")
    ov, nv = _versions(old), _versions(new)
    for impl in sorted(set(ov) | set(nv)):
        o, n = ov.get(impl, {}), nv.get(impl, {})
        for fw in sorted(set(o) | set(n)):
            if o.get(fw) != n.get(fw):
                lines.append(f"{impl}: {fw} {o.get(fw, '(none)')} -> {n.get(fw, '(none)')}")
    od, nd = _devices(old), _devices(new)
    for col in sorted(set(od) | set(nd)):
        if od.get(col) != nd.get(col):
            lines.append(f"{col}: device {od.get(col, '(none)')} -> {nd.get(col, '(none)')}")
    return lines


_ORDER = {c: i for i, c in enumerate(CATEGORIES)}


def compare(old: dict, new: dict, *, old_label: str | None = None, new_label: str | None = None) -> Diff:
    """Compare two validated results documents (see :func:`conformance.results.load`)."""
    warnings: list[str] = []
    pairs = _pair(_index(old["runs"], "old", warnings), _index(new["runs"], "new", warnings))
    shown = {**_display_paths(old["runs"]), **_display_paths(new["runs"])}
    changes, unchanged = [], 0
    for o, n in pairs:
        run = n if n is not None else o
        if o is not None and n is not None:
            checks, details = _describe(o, n)
            differs = bool(details) or o["verdict"] != n["verdict"]
        else:
            checks, differs = [], True
            details = ["new run" if o is None else "no longer run"]
            if run.get("reason"):
                details.append(f"reason: {_first_line(run['reason'])}")
        cat = _category(o, n, differs)
        if cat is None:
            unchanged += 1
            continue
        changes.append(RunChange(
            category=cat, file=shown.get(run["file"], run["file"]), case=run["case"], impl=run["impl"],
            device=run["device"], old_verdict=o["verdict"] if o else None, new_verdict=n["verdict"] if n else None,
            new_error=bool(n and n["verdict"] == ERROR and (o is None or o["verdict"] != ERROR)),
            checks=checks, details=details))
    changes.sort(key=lambda c: (_ORDER[c.category], c.file, c.case, c.impl, c.device))
    return Diff(old_label=old_label or str(old.get("created", "old")),
                new_label=new_label or str(new.get("created", "new")), changes=changes, unchanged=unchanged, environment=_environment(old, new), warnings=warnings)


# ---- renderers ----

def summary_line(diff: Diff) -> str:
    c = diff.counts
    reg = f"{c[REGRESSION]} regression{'s' if c[REGRESSION] != 1 else ''}"
    if diff.new_errors:
        reg += f" ({diff.new_errors} new error{'s' if diff.new_errors != 1 else ''})"
    return ", ".join([reg] + [f"{c[k]} {k}" for k in (FIXED, CHANGED, ADDED, REMOVED, "unchanged")])


def to_text(diff: Diff) -> str:
    """The terminal form: a summary line, the environment changes, then one block per changed run.
    Text from the results files passes through :func:`terminal_text` (controls escaped, a very long
    case id or line shortened)."""
    t = terminal_text
    lines = [f"conformance diff: {diff.old_label} -> {diff.new_label}", summary_line(diff)]
    lines += [f"warning: {w}" for w in diff.warnings]
    if diff.environment:
        lines.append("environment:")
        lines += [f"  {e}" for e in diff.environment]
    if not diff.changes:
        lines.append("no run changed")
    for c in diff.changes:
        lines.append("")
        lines.append(f"{c.label.upper()}: {t(c.case, ID_LIMIT)} on {t(c.column, ID_LIMIT)}: {c.transition}   "
                     f"({t(c.file, ID_LIMIT)})")
        lines += [f"    {d}" for d in c.details]
    return "\n".join(t(line) for line in lines) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MARK = {REGRESSION: "🔴", FIXED: "🟢", CHANGED: "🟡", ADDED: "🔵", REMOVED: "⚪", "unchanged": ""}


def md_escape(text, limit: int = 4096) -> str:
    """Text from a results file made inert in a GitHub Markdown table cell: no markup, no HTML, one
    line, control and bidirectional characters escaped and a long string shortened (:func:`terminal_text`:
    ``--markdown -`` goes to the terminal)."""
    text = terminal_text(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"(?<!\w)@(?=\w)", "@\u200b", text)     # no @mentions from a results file
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def to_markdown(diff: Diff, *, max_rows: int = 200) -> str:
    """GitHub-flavoured Markdown for a CI job summary or a pull request comment."""
    e = md_escape
    out = ["## LSTM conformance diff", "",
           f"{e(diff.old_label)} → {e(diff.new_label)}: **{e(summary_line(diff))}**", "",
           "| category | runs |", "|---|---:|"]
    out += [f"| {(_MARK[k] + ' ') if _MARK[k] else ''}{k} | {n} |" for k, n in diff.counts.items()]
    for w in diff.warnings:
        out += ["", f"> warning: {e(w)}"]
    if diff.environment:
        out += ["", "**Environment changes**", ""] + [f"- {e(x)}" for x in diff.environment]
    if diff.changes:
        out += ["", "| | case | impl@device | old → new | what changed |", "|---|---|---|---|---|"]
        for c in diff.changes[:max_rows]:
            what = "<br>".join(e(d) for d in c.details)
            out.append(f"| {_MARK[c.category]} {e(c.label)} | {e(c.case, ID_LIMIT)}<br><sub>{e(c.file, ID_LIMIT)}</sub> "
                       f"| {e(c.column, ID_LIMIT)} "
                       f"| {e(c.old_verdict or '(none)')} → {e(c.new_verdict or '(none)')} | {what} |")
        if len(diff.changes) > max_rows:
            out += ["", f"… and {len(diff.changes) - max_rows} more changed runs (see the full diff)."]
    else:
        out += ["", "No run changed."]
    return "\n".join(out) + "\n"


def to_html(diff: Diff, *, standalone: bool = True) -> str:
    """A self-contained page (``standalone``), or just the section, for inclusion in a bigger page."""
    name = "diff.html.j2" if standalone else "diff_section.html.j2"
    return _env.get_template(name).render(diff=diff, summary=summary_line(diff), categories=CATEGORIES)
