"""Shared fixtures for the suite's own tests: real frameworks, run in real worker processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

# pytester's in-process runs restore sys.modules afterwards; a C extension first imported inside
# one (markupsafe's speedups via Jinja2, _multiprocessing) would be re-initialised by the next run
# and corrupt memory. Importing everything the plugin uses here keeps them loaded once.
import conformance.cli  # noqa: F401,E402
import conformance.plugin  # noqa: F401,E402
import conformance.report  # noqa: F401,E402
import conformance.results  # noqa: F401,E402
import xdist.plugin  # noqa: F401,E402
from conformance.runner import WorkerPool

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _pytester_projects_start_without_the_shipped_catalogue(request):
    """A pytester project is a maintainer's project of its own: the tests that use one say which
    catalogue applies (a copy of cases/divergences.yaml beside its cases, or none, so that torch's
    second bias is an undeclared divergence), so the shipped catalogue is off there."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")          # (it clears PYTEST_ADDOPTS when it starts)
        request.getfixturevalue("monkeypatch").setenv("PYTEST_ADDOPTS", "--no-builtin-divergences")
    yield


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """One real ``pytest cases -n 2`` over the default case set on every implementation, in a
    subprocess as a user runs it; its results document, output directory and output. Shared by the
    default-set tests and the report's browser tests (it is the most expensive thing the suite does)."""
    out = tmp_path_factory.mktemp("default-run")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "--device", "cpu", "-n", "2", "-p", "no:cacheprovider",
         "--conformance-out", str(out), "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=1800)
    doc = json.loads((out / "results.json").read_text())
    doc["_stdout"] = proc.stdout[-20000:]
    doc["_returncode"] = proc.returncode
    return {"doc": doc, "out": out}


@pytest.fixture(scope="session")
def pool():
    """One worker per framework for the whole test session (frameworks are imported once)."""
    p = WorkerPool(run_timeout=300)
    yield p
    p.close()


# --- Headless Chromium for tests of the HTML report (Playwright driving the system's Chromium) ---
# Imported here, not in the fixtures, for the same reason as above (greenlet is a C extension).
# Without playwright, or without a Chromium binary, the `browser`/`page` fixtures skip with the
# reason; nothing else in the suite needs either.
import os  # noqa: E402
import shutil  # noqa: E402

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

# Flags for Chromium as root on a machine with no network: without the background-networking
# ones it keeps trying (and failing) to reach Google's hosts and can hang at start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 10_000  # per Playwright action; a page that hangs fails fast


def chromium_executable():
    """$CONFORMANCE_CHROMIUM, else `chromium` or `chromium-browser` on PATH; None if none is."""
    configured = os.environ.get("CONFORMANCE_CHROMIUM")
    if configured:
        return shutil.which(configured)
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (a fresh temporary profile) for the whole test session."""
    if sync_playwright is None:
        pytest.skip(
            "playwright not installed: pip install -c constraints.txt -e '.[test]' "
            "(the browser itself comes from the system, not from `playwright install`)"
        )
    executable = chromium_executable()
    if executable is None:
        configured = os.environ.get("CONFORMANCE_CHROMIUM")
        if configured:
            pytest.skip(f"Chromium not found: CONFORMANCE_CHROMIUM={configured!r} is not an executable")
        pytest.skip(
            "Chromium not found: apt-get install chromium (Debian) or set CONFORMANCE_CHROMIUM "
            "to a Chromium/Chrome executable"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A new Playwright page (own context) that records what a person would see go wrong.

    Besides the Playwright `Page` API it has three lists, filled as the page runs:
    `page.console_errors` (text of each console message of type error), `page.page_errors`
    (each uncaught exception, as "Name: message") and `page.dialogs` ((type, message) of each
    alert/confirm/prompt/beforeunload; every dialog is dismissed).
    """
    context = browser.new_context()
    p = context.new_page()
    p.set_default_timeout(PAGE_TIMEOUT_MS)
    p.console_errors = []
    p.page_errors = []
    p.dialogs = []
    p.on("console", lambda msg: p.console_errors.append(msg.text) if msg.type == "error" else None)
    p.on("pageerror", lambda exc: p.page_errors.append(f"{exc.name}: {exc.message}"))

    def on_dialog(dialog):
        p.dialogs.append((dialog.type, dialog.message))
        dialog.dismiss()

    p.on("dialog", on_dialog)
    try:
        yield p
    finally:
        context.close()


# --- A real results document, for the tests of what readers make of results files ---

REAL_RESULTS_PICK = {"returns.yaml": 2, "masking.yaml": 2, "bidirectional.yaml": 1}
REAL_RESULTS_EXTRA = """
cases:
  - {id: hidden-2, input_size: 3, hidden_size: 2}
  - {id: hidden-3, input_size: 3, hidden_size: 3}
  - {id: hidden-5, input_size: 3, hidden_size: 5}
  - id: blog-says
    input_size: 3
    hidden_size: 4
    return_state: true
    claims:
      - source: a blog post <b>
        impl: torch
        says: "returns (output, h, c)"
        outputs: [[2, 4], [2, 4], [2, 4]]
"""


@pytest.fixture(scope="session")
def real_results(pool, tmp_path_factory) -> dict:
    """A results document of real torch runs (a few default cases, one case with a claim, one
    configuration at three hidden sizes), as it reads back from results.json: every check the
    report and the diff show (values, padding, parameter count, claims) and a parameter chart are
    in it. Tests that change it change a deep copy."""
    from conformance import spec
    from conformance.results import document, dumps, execute

    catalogue = spec.load_file(REPO / "cases" / "divergences.yaml").divergences
    extra = tmp_path_factory.mktemp("extra") / "extra.yaml"
    extra.write_text(REAL_RESULTS_EXTRA)
    runs = []
    for path, n in [(REPO / "cases" / name, n) for name, n in REAL_RESULTS_PICK.items()] + [(extra, 4)]:
        f = spec.load_file(path)
        for case in f.cases[:n]:
            runs.append(execute(case, "torch", "cpu", pool, catalogue + f.divergences, root=REPO))
    doc = json.loads(dumps(document(runs, argv=["pytest", "cases"])))
    assert any(r["checks"].get("padding") for r in doc["runs"])
    assert any(r["checks"].get("claims") for r in doc["runs"])
    assert any(r["checks"].get("values") for r in doc["runs"])
    return doc


def report_data(html: str) -> dict:
    """The data a report page embeds (gzip + base64 in ``#report-data``), read as strictly as the
    page's ``JSON.parse`` reads it (no NaN, no Infinity), each run's details (a JSON string) too."""
    import base64
    import gzip
    import re

    def refuse(literal):
        raise ValueError(f"{literal} in the report's data: JSON.parse refuses it")

    found = re.search(r'<script type="application/octet-stream" id="report-data"[^>]*>([^<]*)</script>', html)
    assert found, "the page embeds no #report-data"
    data = json.loads(gzip.decompress(base64.b64decode(found.group(1))), parse_constant=refuse)
    for run in data["runs"]:
        run[4] = json.loads(run[4], parse_constant=refuse)
    return data
