"""The worker process: one per implementation, imports its framework once and runs cases.

Started by :mod:`conformance.runner` as ``python -m conformance.worker IMPL FD``; talks over the
inherited socket FD with pickled messages (never stdout, which frameworks write to freely: the
runner keeps it, with stderr, in a log whose tail it quotes when the worker dies).

What the worker does about faults, so that the runner can turn each into a verdict:

* an exception a run raises (``Exception``, ``MemoryError`` included, and ``SystemExit``: a framework
  calling ``sys.exit``) is answered as an ``error`` observation with ``fault = {"kind": "exception",
  "type": ...}``; the worker stays in its loop (the runner restarts it after ``MemoryError`` and
  ``SystemExit``, whose aftermath it does not trust);
* a fatal signal (SIGSEGV, SIGABRT, ...) first has :mod:`faulthandler` write the Python stack to
  stderr (the log), then kills the worker as the signal would: the runner sees the signal;
* SIGUSR1 writes every thread's Python stack to stderr and goes on: the runner sends it to a run
  that timed out, before killing it, so that the log shows where it hung;
* a worker whose parent (the runner) died exits instead of running on as an orphan.

After every run the worker adds its memory figures to ``obs.timings``: ``rss_mb`` (resident set
size now, from ``/proc/self/statm``) and ``peak_rss_mb`` (the most it has held, ``ru_maxrss``), MiB,
with ``worker_run``, which run of this worker process it was (1, 2, ...).

``CONFORMANCE_FAULT`` is a fault-injection hook for the suite's own tests, so that fault handling
is tested on real processes: ``KIND:PATTERN``, several separated by ``;`` (the first whose pattern
matches wins). Run faults fire inside the run (and weight round-trip) op, where a framework's own
fault would, when the worker receives a case whose id matches the fnmatch PATTERN (empty: ``*``):

* ``segfault``: a real invalid read (``ctypes.string_at(0)``): SIGSEGV;
* ``abort`` (alias ``crash``): ``os.abort()``: SIGABRT;
* ``exit``: ``os._exit(3)``, a framework ending the process;
* ``sysexit``: ``raise SystemExit(4)`` from inside the run (``sys.exit`` in a framework);
* ``memory``: a real ``MemoryError``, NumPy asked for an impossible array (``np.empty(2**60)``);
* ``raise``: a plain ``RuntimeError`` from the framework side;
* ``hang``: sleeps for an hour (the run times out);
* ``kill-runner``: kills the process that runs the test items (pytest, or its xdist worker) with
  SIGKILL, then exits;
* ``swap-gates``: hands the adapter weights with two gates swapped (a wrong mapping; the values
  check must fail).

Start faults fire while the worker starts, before the framework is imported (``impl.setup()``),
when the *implementation id* matches PATTERN: ``start-crash`` (``os.abort()``), ``start-hang``
(sleeps for an hour) and ``start-raise`` (an ``ImportError``, as a broken installation raises).
"""

from __future__ import annotations

import fnmatch
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from multiprocessing.connection import Connection

import numpy as np

from .settings import RUN_FAULTS, START_FAULTS, SettingError, release_every


def _fault(name: str, kinds: tuple[str, ...]) -> str | None:
    """The first ``CONFORMANCE_FAULT`` kind among ``kinds`` whose pattern matches ``name``, or None."""
    for spec in os.environ.get("CONFORMANCE_FAULT", "").split(";"):
        kind, _, pattern = spec.strip().partition(":")
        if kind in kinds and fnmatch.fnmatchcase(name, pattern or "*"):
            return kind
    return None


def _inject_fault(case_id: str) -> None:
    """Run faults (see the module docstring); called inside the run op, where a framework's own fault would be."""
    kind = _fault(case_id, RUN_FAULTS)
    if kind == "segfault":
        import ctypes
        ctypes.string_at(0)             # a real invalid read: SIGSEGV
    elif kind in ("abort", "crash"):
        os.abort()
    elif kind == "exit":
        os._exit(3)
    elif kind == "sysexit":
        raise SystemExit(4)
    elif kind == "memory":
        np.empty(2 ** 60, np.uint8)     # NumPy's own MemoryError: 1 EiB cannot be had
    elif kind == "raise":
        raise RuntimeError(f"injected framework error in case {case_id!r} (CONFORMANCE_FAULT)")
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "kill-runner":
        if os.getppid() > 1:            # never an adopting init: only the runner that started this worker
            os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)


def _inject_start_fault(impl_id: str) -> None:
    kind = _fault(impl_id, START_FAULTS)
    if kind == "start-crash":
        os.abort()
    elif kind == "start-hang":
        time.sleep(3600)
    elif kind == "start-raise":
        raise ImportError(f"injected import failure while starting {impl_id} (CONFORMANCE_FAULT)")


def _mapping_fault(case_id: str, weights: dict) -> dict:
    """``CONFORMANCE_FAULT=swap-gates:PATTERN``: hand the adapter weights with the i and f gate blocks
    swapped, as a wrong mapping would, while the reference keeps the true ones (the values check must fail)."""
    if _fault(case_id, ("swap-gates",)) is None:
        return weights
    out = {}
    for name, w in weights.items():
        if name.rsplit("/", 1)[1] in ("W", "U", "b"):
            H = w.shape[-1] // 4
            w = w.copy()
            w[..., :H], w[..., H:2 * H] = weights[name][..., H:2 * H], weights[name][..., :H]
        out[name] = w
    return out


def _exception_name(exc: BaseException) -> str:
    """The exception's class name, or its first public ancestor's (NumPy raises a private
    ``_ArrayMemoryError``: it is reported as the ``MemoryError`` it is)."""
    for cls in type(exc).__mro__:
        if not cls.__name__.startswith("_"):
            return cls.__name__
    return type(exc).__name__


def _error(exc: BaseException):
    """The ``error`` observation for an exception a run raised, with its structured ``fault``."""
    from .impls.base import Observation

    name = _exception_name(exc)
    fault = {"kind": "exception", "type": name}
    if isinstance(exc, SystemExit):
        fault["code"] = exc.code
        reason = f"SystemExit: the run called sys.exit({exc.code!r})"
    else:
        reason = f"{name}: {exc}"
    return Observation(status="error", reason=reason, traceback=traceback.format_exc(), fault=fault)


# Every this many runs the worker asks its adapter to free what the framework keeps from earlier
# runs (Impl.release): compiled programs per shape would otherwise grow its memory without bound.
try:
    RELEASE_EVERY = release_every()
except SettingError:         # refused before any run by the plugin; a worker started some other way keeps 100
    RELEASE_EVERY = 100


def memory_mb() -> dict[str, float]:
    """This process's resident set size now and at its peak, in MiB."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = usage / 2 ** 20 if sys.platform == "darwin" else usage / 1024     # bytes on macOS, KiB on Linux
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        rss = peak
    peak = max(peak, rss)       # the kernel updates ru_maxrss lazily: it can trail the resident size just read
    return {"rss_mb": round(rss, 2), "peak_rss_mb": round(peak, 2)}


def _roundtrip(impl, cfg, device: str) -> dict:
    """Canonical weights -> native (``load_weights``) -> canonical (``read_weights``): the largest
    absolute difference per tensor, and the names that went missing or appeared."""
    from .reference import canonical_weights

    try:
        weights = canonical_weights(cfg)
        back = impl.read_weights(cfg, impl.load_weights(cfg, device, weights))
        return {"max_abs": {n: float(np.max(np.abs(np.asarray(back[n], np.float64) - w)))
                            for n, w in weights.items() if n in back},
                "missing": sorted(set(weights) - set(back)), "extra": sorted(set(back) - set(weights))}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def recorded_warnings(caught: list) -> list[dict]:
    """The warnings a run raised, as data: each distinct (category, message) once, in order, at most
    ``MAX_WARNINGS`` of them, their messages clipped like any native text."""
    from .limits import MAX_WARNINGS, clip_text

    out, seen = [], set()
    for w in caught:
        key = (w.category.__name__, str(w.message))
        if key in seen:
            continue
        seen.add(key)
        out.append({"type": key[0], "types": [t.__name__ for t in w.category.__mro__[:-1]],
                    "message": clip_text(key[1])})
        if len(out) == MAX_WARNINGS:
            break
    return out


def _run_shapes(impl, cfg, device: str, init):
    """Shape-only mode's observation (``Impl.run_shapes``); an adapter with no shape-only path gives an
    ``unsupported`` one saying so."""
    from .impls.base import Observation

    try:
        obs = impl.run_shapes(cfg, device, init)
    except NotImplementedError as exc:
        return Observation(status="unsupported", reason=f"shape-only: {exc}")
    obs.normalization.insert(0, "shape-only: the framework inferred the shapes without computing; the output "
                                "and states hold no numbers")
    return obs


def _failure(exc: BaseException) -> dict:
    from .limits import clip_text

    return {"type": _exception_name(exc), "message": clip_text(str(exc)),
            "traceback": clip_text(traceback.format_exc())}


def infer(impl, cfg, device: str) -> dict:
    """What the framework infers of ``cfg``'s shapes without computing (``Impl.infer``): first with the batch and
    the time steps unknown, then, where it refuses, with one of them known, then both. Each refusal is kept
    (``attempts``): a framework that cannot infer with an unknown dimension is a fact worth showing. An
    exception of the suite's own code is ``{"error": ...}``, never lost in the run's record."""
    from .impls.base import UNKNOWN_DIMS, NotAsked, Rejected

    attempts = []
    for unknown in (UNKNOWN_DIMS, ("time",), ("batch",), ()):
        try:
            got = impl.infer(cfg, device, unknown)
        except Rejected as exc:
            attempts.append({"unknown": list(unknown), "refused": {k: exc.info[k] for k in ("type", "message")}})
            continue
        except NotAsked as exc:
            attempts.append({"unknown": list(unknown), "not_asked": str(exc)})
            continue
        except NotImplementedError as exc:
            return {"cannot": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the suite's own failure: said in the symbolic check
            return {"error": _failure(exc), "attempts": attempts}
        return {**got, "unknown": list(unknown), "attempts": attempts}
    if "refused" not in attempts[-1]:        # the adapter asked nothing, not even with every dimension known
        return {"cannot": attempts[-1]["not_asked"], "attempts": attempts}
    return {"refused": attempts[-1]["refused"], "attempts": attempts}


def summary(impl, cfg, device: str) -> dict:
    """Keras's ``model.summary()`` text for ``cfg``'s construct (``Impl.summary``), or why there is none."""
    from .impls.base import Rejected

    try:
        return impl.summary(cfg, device)
    except Rejected as exc:
        return {"refused": {k: exc.info[k] for k in ("type", "message")}}
    except NotImplementedError as exc:
        return {"cannot": str(exc)}
    except Exception as exc:  # noqa: BLE001
        return {"error": _failure(exc)}


def _send(conn: Connection, obs) -> None:
    """Send an observation; one that cannot be pickled (a framework object left in it) becomes an
    error observation instead of a dead worker. Pickling happens before anything is written."""
    import pickle

    try:
        conn.send(obs)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        err = _error(exc)
        err.reason = f"the run's observation could not be sent to the runner: {err.reason}"
        err.timings = obs.timings
        conn.send(err)


def serve(impl_id: str, conn: Connection) -> None:
    from . import impls
    from .impls.base import Observation, Rejected
    from .limits import clip_text
    from .reference import canonical_weights, initial_states, make_input
    from .spec import Config

    try:
        impl = impls.get(impl_id)
        _inject_start_fault(impl_id)
        t0 = time.perf_counter()
        # str(): torch.__version__ is a TorchVersion, and unpickling it would import torch in the parent
        versions = {str(k): str(v) for k, v in impl.setup().items()}
        devices = impl.devices()
        names = {d: impl.device_name(d) for d in devices}
        conn.send({"ready": True, "versions": versions, "devices": devices, "device_names": names,
                   "setup_s": time.perf_counter() - t0, "pid": os.getpid()})
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        conn.send({"ready": False, "error": f"{_exception_name(exc)}: {exc}", "type": _exception_name(exc),
                   "traceback": traceback.format_exc()})
        return

    served = 0
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg.get("op") == "exit":
            return
        case_id = msg.get("case", "")
        if msg.get("op") == "roundtrip":
            try:
                _inject_fault(case_id)
                reply = _roundtrip(impl, Config(**msg["config"]), msg["device"])
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                reply = {"error": f"{_exception_name(exc)}: {exc}", "traceback": traceback.format_exc()}
            conn.send(reply)
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:    # what the framework warns of during the run
            warnings.simplefilter("always")
            try:
                cfg = Config(**msg["config"])
                _inject_fault(case_id)
                if msg.get("mode") == "shapes":     # shape-only: the framework's inference, nothing computed
                    obs = _run_shapes(impl, cfg, msg["device"], initial_states(cfg))
                else:
                    weights = _mapping_fault(case_id, canonical_weights(cfg))
                    obs = impl.run(cfg, msg["device"], make_input(cfg), weights, initial_states(cfg))
            except Rejected as exc:      # the framework refused what it was given: a native fact
                obs = Observation(status="rejected", reason=clip_text(str(exc)), rejection=exc.info,
                                  traceback=clip_text("".join(traceback.format_exception(exc.__cause__))))
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a framework error is a verdict, not a crash
                obs = _error(exc)
            if isinstance(obs, Observation) and obs.status in ("ok", "rejected"):
                if msg.get("symbolic"):
                    t1 = time.perf_counter()
                    obs.symbolic = infer(impl, cfg, msg["device"])
                    obs.timings["symbolic_s"] = time.perf_counter() - t1
                if msg.get("summary"):
                    obs.summary = summary(impl, cfg, msg["device"])
        if not isinstance(obs, Observation):
            obs = Observation(status="error", reason=f"{impl_id}'s run returned {type(obs).__name__}, "
                                                     "not an Observation")
        obs.warnings = recorded_warnings(caught)
        obs.timings["total_s"] = time.perf_counter() - t0
        served += 1
        obs.timings["worker_run"] = served          # this worker process's nth run: memory over time
        obs.timings.update(memory_mb())
        if served % RELEASE_EVERY == 0:
            try:
                impl.release()
            except Exception:  # noqa: BLE001 - freeing memory must never cost a verdict
                pass
        _send(conn, obs)


def _exit_with_parent(parent: int) -> None:
    """Exit when the runner that started this worker is gone (killed, or crashed) rather than run on,
    hung perhaps, as an orphan nobody will stop."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def main() -> None:
    import faulthandler

    faulthandler.enable()                                   # a fatal signal leaves the Python stack in the log
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)   # the runner's "where are you?"
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="conformance-parent-watch").start()
    impl_id, fd = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(fileno=fd)
    conn = Connection(sock.detach())
    try:
        serve(impl_id, conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
