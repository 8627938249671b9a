"""Shared fixtures for the suite's own tests: real frameworks, run in real worker processes."""

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


@pytest.fixture(scope="session")
def pool():
    """One worker per framework for the whole test session (frameworks are imported once)."""
    p = WorkerPool(run_timeout=300)
    yield p
    p.close()
