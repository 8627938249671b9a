"""How pytest-xdist shares the runs of a parallel session (``-n N``) among its workers.

xdist's default (``--dist load``) hands out test items in chunks regardless of what they run, so
with two xdist workers every framework is imported and its worker process started twice (seconds
each: TensorFlow, torch under Keras), and two copies of each framework sit in memory. Here the unit
of work is an implementation on a device: all of its runs go to one xdist worker, in collection
order, so each framework starts once. When there are fewer implementations than xdist workers,
each implementation's runs are split into as many units (by case, stably) so that no worker idles.
Items that are not conformance runs (the suite's own tests, say) are units of one, as in ``load``.

Why a scheduler of our own rather than ``xdist_group`` marks and ``--dist loadgroup``: with pytest
9.2 and xdist 3.8 loadgroup silently stops grouping (xdist rewrites ``item._nodeid``, which pytest's
structured node ids no longer read: pytest-dev/pytest-xdist#1386, fix proposed in #1388).
"""

from __future__ import annotations

import math
import zlib

from xdist.scheduler import LoadScopeScheduling


def scope_of(nodeid: str, split: int = 1) -> str:
    """The unit of work ``nodeid`` belongs to: ``impl-device`` for a conformance run (``#k`` added,
    k chosen by case, when an implementation is split ``split`` ways), else the item itself."""
    path, _, rest = nodeid.partition("::")
    if not path.endswith((".yaml", ".yml")) or not rest.endswith("]") or "[" not in rest:
        return nodeid
    case, _, column = rest[:-1].rpartition("[")         # "case-id[impl-device]"
    if split <= 1:
        return column
    return f"{column}#{zlib.crc32(f'{path}::{case}'.encode()) % split}"


def ways(workers: int, columns: int) -> int:
    """How many units each implementation-and-device column is split into so that no worker idles."""
    return max(1, math.ceil(workers / max(1, columns)))


class ByImplementation(LoadScopeScheduling):
    def __init__(self, config, log=None, columns: int = 1):
        super().__init__(config, log)
        self.split = ways(int(config.getoption("numprocesses") or 1), columns)

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid, self.split)
