"""What an explore writes: ``findings.json`` (schema-validated, as results.json is), and, rendered
from it alone, one ready case file per finding (``cases/<slug>.yaml``, which ``conformance run``
runs as it is), its repro snippets, native facts and a draft upstream report
(``findings/<slug>/``), and ``index.html``. Because every file is rendered from findings.json,
the findings of several shards (or machines) merge by merging their findings.json (:func:`merge`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from .. import __version__, spec
from ..results import ResultsError, compiled_schema, write_atomic
from . import signature, space

SCHEMA_VERSION = 1
FINDINGS = "findings.json"
MAX_FINDINGS_BYTES = 256 * 2**20


def document(explorer) -> dict:
    """findings.json of an :class:`engine.Explorer` session."""
    s = explorer.settings
    findings = []
    for sig, f in sorted(explorer.findings.items(), key=lambda kv: (-kv[1].get("configs", 0), kv[0])):
        if "minimal" not in f:
            continue
        findings.append(finding_entry(f, s.seed))
    coverage: dict[str, dict[str, int]] = {}
    for e in explorer.configs.values():
        for k, v in e["values"].items():
            key = json.dumps(v) if not isinstance(v, str) else v
            coverage.setdefault(k, {})[key[:60]] = coverage.setdefault(k, {}).get(key[:60], 0) + 1
    return {
        "schema_version": SCHEMA_VERSION, "tool": f"lstm-conformance {__version__} explore",
        "settings": s.to_dict(),
        "state": {"stopped": explorer.stopped, "configs": len(explorer.configs),
                  "indices": sorted(explorer.configs)[-1:] and _ranges(sorted(explorer.configs))},
        "throughput": explorer.throughput(),
        "findings": findings,
        "known": explorer.known(),
        "stale": explorer.stale(),
        "unused_declarations": explorer.unused(),
        "coverage": {k: dict(sorted(v.items(), key=lambda kv: -kv[1])[:24]) for k, v in sorted(coverage.items())},
        "shards": [s.to_dict()["shard"]] if s.shard else [],
    }


def _ranges(numbers: list[int]) -> list[list[int]]:
    """[0, 1, 2, 5, 6] -> [[0, 2], [5, 6]]: which indices were run, compactly."""
    out: list[list[int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _union(ranges: list[list[int]]) -> list[list[int]]:
    """Index ranges put together (overlapping or touching ones joined), without listing their indices."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def finding_entry(f: dict, seed: int) -> dict:
    slug = signature.slug(f["signature"])
    return {
        "signature": f["signature"], "slug": slug, "check": f["check"], "kind": f["kind"], "impls": f["impls"],
        "configs": f.get("configs", 0), "first": f.get("first"), "examples": f.get("examples", []), "seed": seed,
        "original": f["original"], "minimal": f["minimal"], "shrink": f.get("shrink", {}),
        "agree": f.get("agree", []), "unsupported": f.get("unsupported", []), "facts": f.get("facts", {}),
        "confirm": f.get("confirm"), "reference": f.get("reference"),
        "case_file": f"cases/{slug}.yaml", "report": f"findings/{slug}/report.md",
    }


# ---- files rendered from a findings document ----
def case_text(entry: dict) -> str:
    """A case file holding the finding's minimal configuration (checked: it loads as it is)."""
    head = (f"Found by conformance explore (seed {entry['seed']}, configuration {entry['first']}; "
            f"{entry['configs']} configuration(s) showed it): {entry['signature']}. Shrunk from "
            f"{entry['shrink'].get('from', ['?'])[0]} fields off their default to {len(entry['minimal'])}.")
    doc = {"lstm-conformance": 1, "description": head,
           "cases": [{"id": entry["slug"], **entry["minimal"]}]}
    return yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def _details(entry: dict, where: str) -> str:
    fact = entry["facts"].get(where) or {}
    chk = fact.get("check") or {}
    return json.dumps(chk.get("details", fact.get("reason")), indent=1, default=str)[:4000]


def report_text(entry: dict) -> str:
    """A draft upstream report in Markdown: what differs, the minimal configuration, each framework's
    repro, what it returned against what the canonical semantics expects, who agrees."""
    impls = entry["impls"]
    lines = [f"# {', '.join(impls)}: {entry['check']} differs ({entry['kind']})", "",
             "_Draft for an upstream report, written by `conformance explore`; read the framework's source "
             "before filing: the suite may be wrong._", "",
             "## What differs", "",
             f"`{entry['signature']}`. Implementations that agree with the canonical semantics on the same "
             f"configuration: {', '.join(entry['agree']) or 'none'}"
             + (f"; that cannot express it: {', '.join(entry['unsupported'])}." if entry["unsupported"] else "."),
             "", "## Minimal configuration", "", "```yaml", case_text(entry).rstrip(), "```", "",
             "Run it with `conformance run " + entry["case_file"] + "`.", ""]
    for where in impls:
        fact = entry["facts"].get(where) or {}
        versions = ", ".join(f"{k} {v}" for k, v in (fact.get("versions") or {}).items())
        lines += [f"## {where}" + (f" ({versions})" if versions else ""), ""]
        snippet = (fact.get("native") or {}).get("repro")
        if snippet:
            lines += ["Repro on the bare framework:", "", "```python", snippet.rstrip(), "```", ""]
        conf = (entry.get("confirm") or {}).get(where)
        if conf:
            lines += [f"Run on the bare framework: {'confirmed' if conf['confirmed'] else 'NOT confirmed'}: "
                      f"{conf['why']}.", ""]
        rej = (fact.get("native") or {}).get("rejection")
        if rej:
            lines += [f"It raised `{rej.get('type')}`: {rej.get('message', '')[:800]}", ""]
        lines += ["What the suite measured (the check's details):", "", "```json", _details(entry, where), "```", ""]
    return "\n".join(lines)


def write_files(out: Path, doc: dict) -> None:
    """findings.json, and every file rendered from it, under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases").mkdir(exist_ok=True)
    for entry in doc["findings"]:
        write_atomic(out / entry["case_file"], case_text(entry))
        folder = out / "findings" / entry["slug"]
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "report.md", report_text(entry))
        for where, fact in entry["facts"].items():
            snippet = (fact.get("native") or {}).get("repro")
            if snippet:
                write_atomic(folder / f"repro-{re.sub(r'[^A-Za-z0-9_.-]', '_', where)}.py", snippet)
        write_atomic(folder / "facts.json", json.dumps(entry["facts"], indent=1, sort_keys=True, default=str))
    write_atomic(out / FINDINGS, json.dumps(doc, indent=1, sort_keys=True, allow_nan=False, default=str) + "\n")
    from .page import write_page
    write_page(out / "index.html", doc)


# ---- reading, validating and merging findings documents from elsewhere ----
def validate(doc, where: str) -> dict:
    import fastjsonschema

    try:
        compiled_schema("findings.schema.json")(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ResultsError(f"{where}: not a findings document: {exc.message[:300]}") from None
    for k, entry in enumerate(doc["findings"]):
        try:
            spec.config_of(entry["minimal"])
        except spec.SpecError as exc:
            raise ResultsError(f"{where}: findings[{k}] ({entry['slug']}): its minimal configuration is not a "
                               f"valid case: {exc.message}") from None
        if entry["slug"] != signature.slug(entry["signature"]):
            raise ResultsError(f"{where}: findings[{k}]: slug {entry['slug']!r} is not its signature's")
    return doc


def load(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / FINDINGS
    try:
        if path.stat().st_size > MAX_FINDINGS_BYTES:
            raise ResultsError(f"{path}: {path.stat().st_size:,} bytes; at most {MAX_FINDINGS_BYTES:,}")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: cannot be read: {str(exc)[:300]}") from None
    return validate(doc, str(path))


def _merge_stale(parts: list[dict]) -> dict:
    out: dict = {}
    for part in parts:
        for d, s in part.items():
            have = out.setdefault(d, {"configs": 0, "examples": []})
            have["configs"] += s["configs"]
            have["examples"] = sorted(set(have["examples"]) | set(s["examples"]))[:10]
    return out


def merge(docs: list[tuple[str, dict]]) -> dict:
    """One findings document from several (the shards of one explore, or explores on several machines):
    a finding seen by several keeps the smallest minimal configuration and the counts add up."""
    first = docs[0][1]
    for label, doc in docs[1:]:
        if doc["settings"]["seed"] != first["settings"]["seed"]:
            raise ResultsError(f"{label}: seed {doc['settings']['seed']}, but {docs[0][0]} has "
                               f"{first['settings']['seed']}: findings of other explores are compared, not merged")
    by_sig: dict[str, dict] = {}
    for _, doc in docs:
        for entry in doc["findings"]:
            have = by_sig.get(entry["signature"])
            if have is None:
                by_sig[entry["signature"]] = dict(entry)
                continue
            count = have["configs"] + entry["configs"]
            if space.size_of(entry["minimal"]) < space.size_of(have["minimal"]):
                have.update(entry)
            have["configs"] = count
            have["examples"] = sorted(set(have["examples"]) | set(entry["examples"]))[:10]
            have["first"] = min(have["first"], entry["first"])

    def add(key):
        out: dict = {}
        for _, doc in docs:
            for k, v in doc[key].items():
                out[k] = out.get(k, 0) + v
        return out

    coverage: dict = {}
    for _, doc in docs:
        for field, counts in doc["coverage"].items():
            for value, n in counts.items():
                coverage.setdefault(field, {})[value] = coverage.setdefault(field, {}).get(value, 0) + n
    used = set(add("known"))
    unused = {d["id"]: d for _, doc in docs for d in doc["unused_declarations"] if d["id"] not in used}
    tp = [doc["throughput"] for _, doc in docs]
    secs = sum(t["explore_s"] + t["shrink_s"] + t["confirm_s"] for t in tp)
    configs = sum(doc["state"]["configs"] for _, doc in docs)
    return {
        **first, "findings": sorted(by_sig.values(), key=lambda e: (-e["configs"], e["signature"])),
        "known": dict(sorted(add("known").items())), "unused_declarations": list(unused.values()),
        "stale": _merge_stale([doc["stale"] for _, doc in docs]),
        "coverage": coverage,
        "state": {"stopped": "merged", "configs": configs,
                  "indices": _union([r for _, d in docs for r in d["state"]["indices"]])},
        "throughput": {**first["throughput"], "configs": configs,
                       "explore_s": sum(t["explore_s"] for t in tp), "shrink_s": sum(t["shrink_s"] for t in tp),
                       "confirm_s": sum(t["confirm_s"] for t in tp),
                       "configs_per_min": round(configs / (secs / 60), 2) if secs else None},
        "shards": sorted({tuple(s) for _, d in docs for s in d.get("shards", [])}),
    }
