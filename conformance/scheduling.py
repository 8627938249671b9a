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

When an xdist worker dies (a framework that takes its process down, ``kill-runner``) this finishes
the session as ``--dist load`` does: the item it was running is reported as crashed once (xdist's
``handle_crashitem``) and is not run again, and the rest of its work goes to the replacement
worker. xdist's ``LoadScopeScheduling``, which this builds on, does neither (xdist 3.8):

* ``remove_node`` puts the dead worker's whole workload back in the queue, the crashed item still
  marked pending, so the replacement runs it again (and dies again, up to
  ``--max-worker-restart``);
* a replacement worker is given one work unit (``schedule`` -> ``_reschedule``), and no shutdown
  while units remain queued. A worker runs an item only once it knows the next one or is told to
  shut down (``remote.py``, ``run_one_test``: ``self.torun.get()`` before running), so a unit with
  one pending item never finishes, ``mark_test_complete`` never comes to hand out the rest, and
  with every other worker already shutting down the session waits for ever.

Here a worker is given units until it holds at least two pending items, and is told to shut down
as soon as the queue is empty (what ``schedule`` already does for the first distribution, #277).
"""

from __future__ import annotations

import math
import zlib

from xdist.scheduler import LoadScopeScheduling

from .devices import DEVICES
from .impls import ids as impl_ids
from .spec import ID_RE

_YAML = (".yaml", ".yml")


def scope_of(nodeid: str, split: int = 1) -> str:
    """The unit of work ``nodeid`` belongs to: ``impl-device`` for a conformance run (``#k`` added,
    k chosen by case, when an implementation is split ``split`` ways), else the item itself.

    A run's node id is ``FILE::CASE[IMPL-DEVICE]``. It is read from the right, because only the
    right end has a known shape (case ids hold no ``:``, ``[`` or ``]``, see ``spec.ID_RE``) while
    ``FILE`` is any path: ``a::b.yaml``, ``cases[gpu]/x.yaml``."""
    if not nodeid.endswith("]"):
        return nodeid
    head, _, column = nodeid[:-1].rpartition("[")        # "FILE::CASE", "IMPL-DEVICE"
    path, sep, case = head.rpartition("::")
    impl, _, device = column.rpartition("-")
    if not (sep and path.endswith(_YAML) and ID_RE.fullmatch(case) and device in DEVICES and impl in impl_ids()):
        return nodeid
    if split <= 1:
        return column
    return f"{column}#{zlib.crc32(f'{path}::{case}'.encode()) % split}"


def ways(workers: int, columns: int) -> int:
    """How many units each implementation-and-device column is split into so that no worker idles."""
    return max(1, math.ceil(workers / max(1, columns)))


class ByImplementation(LoadScopeScheduling):
    def __init__(self, config, log=None, columns: int = 1, on_abandon=None):
        super().__init__(config, log)
        self.split = ways(int(config.getoption("numprocesses") or 1), columns)
        self.on_abandon = on_abandon          # called with the node ids no worker can run any more

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid, self.split)

    def remove_node(self, node) -> str | None:
        """Forget ``node``; if it died with items pending, return the first (the one it was running,
        which xdist reports as crashed) and queue the rest of its work again, without it."""
        workload = self.assigned_work.pop(node)
        pending = [(scope, nodeid) for scope, unit in workload.items() for nodeid, done in unit.items() if not done]
        if not pending:
            return None
        scope, crashitem = pending[0]
        workload[scope][crashitem] = True       # reported by xdist as crashed; as in --dist load, not run again
        for scope, unit in workload.items():
            if not all(unit.values()):
                self.workqueue[scope] = unit
        for other in self.nodes:
            self._reschedule(other)
        return crashitem

    def add_node_collection(self, node, collection) -> None:
        """A replacement worker that collected other items than the first workers (its files
        changed on disk since) can be given nothing: it is shut down, and if no other worker is
        left to run the queued work, that work is given up (``on_abandon`` is told which items),
        so that the session ends, with partial results saying why, instead of xdist's "no active
        workers" internal error."""
        super().add_node_collection(node, collection)
        if node in self.registered_collections:
            return
        node.shutdown()
        if self.workqueue and not any(n is not node and not n.shutting_down for n in self.nodes):
            left = [nodeid for unit in self.workqueue.values() for nodeid, done in unit.items() if not done]
            self.workqueue.clear()
            if self.on_abandon is not None:
                self.on_abandon(left)

    def _reschedule(self, node) -> None:
        """Top ``node`` up when it is nearly out of work: whole units until it holds two pending
        items (one to run, one to tell it the first is not the last); shut it down once nothing is
        left to hand out, so that it runs its last item and ends. A worker still collecting (a
        replacement, when two have died) is left alone until its collection arrives: ``schedule``
        comes then (xdist's ``_assign_work_unit`` would fail on it with a KeyError)."""
        if node.shutting_down or node not in self.registered_collections:
            return
        if self._pending_of(self.assigned_work[node]) <= 2:      # xdist's low-water mark
            while self.workqueue:
                self._assign_work_unit(node)
                if self._pending_of(self.assigned_work[node]) >= 2:
                    break
        if not self.workqueue:
            node.shutdown()
