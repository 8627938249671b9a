"""A pytest plugin that timestamps a conformance session's phases, for ``benchmarks/suite_speed.py``.

Loaded with ``-p _suite_timing`` (``benchmarks/`` on ``PYTHONPATH``); it does nothing unless
``SUITE_TIMING_OUT`` names a file, into which the controller process (never an xdist worker) writes,
at the very end of the session, wall-clock timestamps (``time.time()``, comparable with the
benchmark's own clock) of: this plugin's import (interpreter + pytest start-up until plugins load),
collection start and end, the run loop's start and end (every item: worker start, runs, checks,
records), ``pytest_sessionfinish`` start and end (the conformance plugin writes ``results.json`` and
``index.html`` there), and ``pytest_unconfigure`` start and end (the workers are stopped there).
It reads nothing of the conformance plugin and changes nothing.
"""

from __future__ import annotations

import json
import os
import time

import pytest

_T: dict[str, float] = {"plugin_imported": time.time()}


def _controller(config) -> bool:
    return not hasattr(config, "workerinput")


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session):
    _T["collection_start"] = time.time()
    yield
    _T["collection_end"] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session):
    _T["loop_start"] = time.time()
    yield
    _T["loop_end"] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session, exitstatus):
    _T["sessionfinish_start"] = time.time()
    yield
    _T["sessionfinish_end"] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_unconfigure(config):
    _T["unconfigure_start"] = time.time()
    yield
    _T["unconfigure_end"] = time.time()
    out = os.environ.get("SUITE_TIMING_OUT")
    if out and _controller(config):
        with open(out, "w", encoding="utf-8") as f:
            json.dump(_T, f)
