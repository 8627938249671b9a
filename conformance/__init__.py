"""lstm-conformance: run one LSTM configuration on every framework and say where they agree.

Nothing in this package imports a deep-learning framework at import time; frameworks are
imported only inside the worker process that runs them (see ``conformance.runner``).
"""

__version__ = "0.1.0"
