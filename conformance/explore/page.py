"""``index.html`` of an explore: the findings (signature, how many configurations showed it, the
minimal case, who agrees, whether the bare framework confirmed it, links to the case file, repro
snippets and draft report), the declarations that explained what else differed and those that
explained nothing, and the coverage of the space explored. Rendered from findings.json alone."""

from __future__ import annotations

from pathlib import Path

import jinja2

from ..results import write_atomic

_env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def render(doc: dict) -> str:
    from .findings import case_text

    rows = [{**e, "case_text": case_text(e),
             "confirmed": sorted(w for w, c in (e.get("confirm") or {}).items() if c.get("confirmed")),
             "not_confirmed": sorted(w for w, c in (e.get("confirm") or {}).items() if not c.get("confirmed")),
             "repros": sorted(w for w, f in e["facts"].items() if (f.get("native") or {}).get("repro"))}
            for e in doc["findings"]]
    return _env.get_template("explore.html.j2").render(doc=doc, rows=rows)


def write_page(path: Path, doc: dict) -> None:
    write_atomic(path, render(doc))
