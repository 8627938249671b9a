"""Shared fixtures for the suite's own tests: real frameworks, run in real worker processes."""

import pytest

from conformance.runner import WorkerPool


@pytest.fixture(scope="session")
def pool():
    """One worker per framework for the whole test session (frameworks are imported once)."""
    p = WorkerPool(run_timeout=300)
    yield p
    p.close()
