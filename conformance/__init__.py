"""lstm-conformance: run one LSTM configuration on every framework and say where they agree.

Nothing in this package imports a deep-learning framework at import time; frameworks are
imported only inside the worker process that runs them (see ``conformance.runner``).

PYTEST_DONT_REWRITE: the package holds no tests, and ``conformance run`` imports it before
pytest starts (installed from a wheel, pytest would otherwise warn that it cannot rewrite it).
"""

__version__ = "0.1.0"
