"""Confirming a finding on the bare framework: its repro snippet, run in a fresh Python with only
NumPy and the framework (the implementation's own environment, e.g. ``KERAS_BACKEND``), must show
the native facts the suite's run recorded: the same exception type where the run was refused, else
the same native return shapes, in order, and the same parameter count.

What this confirms is the native side of a finding (the framework refuses, accepts, returns those
shapes, holds that many parameters) without any of the suite's code in the process. A difference
in values is computed with the canonical weights loaded by the adapter; the snippet shows the
construct, call and shapes that produce it, and the finding says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from .. import impls

MARKER = "@@@ repro snippet"
RAISED = "@@@ raised"
DRIVER = textwrap.dedent(f"""
    import runpy, sys, traceback
    for path in sys.argv[1:]:
        print({MARKER!r}, path, flush=True)
        try:
            runpy.run_path(path, run_name="__main__")
        except BaseException as exc:
            traceback.print_exc(file=sys.stdout)
            print({RAISED!r}, type(exc).__name__)
        sys.stdout.flush()
""")
_LINE = re.compile(r"^(out\S*) \(([\d, ]*)\)$")


def run_snippets(impl_id: str, snippets: list[str], timeout: float = 300.0) -> list[str]:
    """Run each snippet (source text) in one fresh interpreter with ``impl_id``'s environment; what
    each printed, in order (a snippet cut short by a crash or the timeout: what it printed so far,
    and a line saying why)."""
    impl = impls.get(impl_id)
    with tempfile.TemporaryDirectory(prefix="conformance-repro-") as tmp:
        paths = []
        for k, text in enumerate(snippets):
            path = Path(tmp) / f"repro_{k}.py"
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        driver = Path(tmp) / "driver.py"
        driver.write_text(DRIVER, encoding="utf-8")
        env = {**os.environ, **impl.env}
        try:
            proc = subprocess.run([sys.executable, str(driver), *paths], cwd=tmp, env=env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            out, why = proc.stdout, "" if proc.returncode == 0 else f"the interpreter exited with {proc.returncode}"
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            why = f"it did not finish within {timeout:g} s"
    parts = out.split(MARKER)[1:]
    texts = [p.split("\n", 1)[1] if "\n" in p else "" for p in parts]
    texts += [""] * (len(snippets) - len(texts))
    if why:
        texts = [t or f"(no output: {why})" for t in texts]
    return texts


def facts(printed: str) -> dict:
    """What a snippet's output says: the exception type it raised, its return shapes, its parameter count."""
    raised = re.search(rf"^{re.escape(RAISED)} (\w+)$", printed, re.M)
    shapes = [(m.group(1), [int(d) for d in m.group(2).replace(" ", "").split(",") if d])
              for m in (_LINE.match(line) for line in printed.splitlines()) if m]
    params = re.search(r"^params (\d+)$", printed, re.M)
    return {"raised": raised.group(1) if raised else None, "returns": shapes,
            "params": int(params.group(1)) if params else None}


def verdict(record: dict, printed: str) -> dict:
    """Whether the bare framework showed what the run recorded: ``{"confirmed": bool, "why": ...}``."""
    got = facts(printed)
    native = record.get("native") or {}
    rejection = native.get("rejection")
    if record.get("verdict") == "error" and not record.get("checks"):
        return {"confirmed": got["raised"] is not None, "why": f"the snippet raised {got['raised']}"
                if got["raised"] else "the snippet ran without the error the run had", "printed": printed[-2000:]}
    if rejection:
        ok = got["raised"] == rejection.get("type")
        return {"confirmed": ok, "printed": printed[-2000:],
                "why": f"the bare framework raised {got['raised']} (the run: {rejection.get('type')})"}
    if got["raised"]:
        return {"confirmed": False, "printed": printed[-2000:],
                "why": f"the snippet raised {got['raised']}, but the run was not refused"}
    # what the native call returned (paths into `out`), not what the adapter derived from it (an unpacked
    # sequence, named by the call that derives it), which the snippet shows as a comment
    want = [(r["path"], r["shape"]) for r in native.get("returns") or []
            if "shape" in r and (r["path"] == "" or r["path"][0] in "[.")]
    want_params = native.get("param_count")
    problems = []
    if want and [list(s) for _, s in want] != [s for _, s in got["returns"]]:
        problems.append(f"shapes {got['returns']} (the run: {want})")
    if want_params is not None and got["params"] != want_params:
        problems.append(f"{got['params']} parameters (the run: {want_params})")
    return {"confirmed": not problems, "printed": printed[-2000:],
            "why": "; ".join(problems) or "the same native return shapes and parameter count"}
