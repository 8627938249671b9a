"""Executes runs, each implementation in its own lazily started, reused worker process.

Why processes (DESIGN.md): Keras 3 fixes its backend at import, TensorFlow and torch in one
process can segfault, TensorFlow and JAX each grab most GPU memory, and a framework that crashes
or hangs must become an ``error`` verdict for its runs rather than a dead test session.

What a fault looks like here, and what becomes of it (every one is an ``error`` observation whose
``reason`` says what happened and whose ``fault`` says it as data, see ``Observation.fault``):

* the run raised (``MemoryError`` and ``SystemExit`` included): the worker answers with the error;
  it keeps running, except after ``MemoryError`` or ``SystemExit``, when it is stopped;
* the worker died (a signal such as SIGSEGV or SIGABRT, or an exit): "died while running case ...:
  it was killed by SIGSEGV (signal 11)" / "it exited with status 3", with the tail of its output;
* it did not answer within the run timeout (``WorkerPool(run_timeout=...)``, per run
  ``run(..., timeout=...)``; the plugin's ``--run-timeout``): it is asked for its Python stack
  (SIGUSR1, written to its output, quoted), then killed.

A worker that died or was stopped is started again for the impl's next run; the other impls'
workers are not touched. A worker that fails to *start* (an import error, a crash or a hang while
starting, ``start_timeout``) is not started again in the session: the impl's later runs are errors
at once, quoting the first failure. The exception: a process that could not even be created
(``Popen`` raised ``OSError``, such as E2BIG, ENOMEM or EAGAIN) says nothing about the framework,
so that run is an error and the next run tries again. The worker's
environment is the session's, never a run's: pytest's per-test ``PYTEST_CURRENT_TEST`` (which
holds the node id, of any length) is left out, so the run that happens to start a worker cannot
change or break it. Every worker that stops is waited for (no zombies), and one
that is killed is killed with SIGKILL; a worker whose runner dies exits by itself (see worker).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import impls
from .impls.base import Observation
from .spec import Config

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
# exceptions after which a worker is not trusted with another run: it is stopped, the next run starts a fresh one
RESTART_AFTER = ("MemoryError", "SystemExit")
# environment variables that belong to the run that happens to start a worker, not to the worker
PER_RUN_ENV = ("PYTEST_CURRENT_TEST",)
# waiting for a worker wakes this often to see whether a stop signal came that raised nothing: Python
# swallows an exception a signal handler raises while a finalizer (``__del__``) runs
POLL_SLICE_S = 0.5


class WorkerError(RuntimeError):
    """A worker that died, timed out or could not start; ``fault`` says which, as ``Observation.fault``
    does. ``retry``: the start was not even attempted (``Popen`` failed), so it is not held against
    the implementation for the rest of the session."""

    def __init__(self, message: str, fault: dict | None = None, retry: bool = False):
        super().__init__(message)
        self.fault = fault
        self.retry = retry


def describe_exit(code: int | None) -> tuple[str, dict]:
    """How a process ended, from its return code (negative: the signal that killed it), in words and as a fault."""
    if code is None:
        return ("it closed its connection but did not exit (it was killed)",
                {"kind": "exit", "code": None})
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"it was killed by {name} (signal {-code})", {"kind": "signal", "signal": name, "code": code}
    return f"it exited with status {code}", {"kind": "exit", "code": code}


class Worker:
    def __init__(self, impl_id: str, start_timeout: float, run_timeout: float, env: dict | None = None,
                 stop_requested=None):
        self.impl_id = impl_id
        self.stop_requested = stop_requested or (lambda: None)
        self.start_timeout = start_timeout
        self.run_timeout = run_timeout
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.info: dict = {}
        self.log = tempfile.TemporaryFile(mode="w+b")   # the worker's stdout and stderr, this start's only

    def _log_size(self) -> int:
        self.log.seek(0, os.SEEK_END)
        return self.log.tell()

    def _log_tail(self, n: int = 3000) -> str:
        size = self._log_size()
        self.log.seek(max(0, size - n))
        return self.log.read().decode("utf-8", "replace").strip()

    def _last_output(self) -> str:
        tail = self._log_tail()
        return f"; its last output:\n{tail}" if tail else ""

    def start(self) -> dict:
        from multiprocessing.connection import Connection

        self.stop()
        self.log.seek(0)
        self.log.truncate()
        parent, child = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if k not in PER_RUN_ENV}
        env.update(impls.get(self.impl_id).env)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "conformance.worker", self.impl_id, str(child.fileno())],
                pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        except OSError as exc:
            parent.close()
            raise WorkerError(f"{self.impl_id} worker could not be started: {exc}; the next run tries again",
                              {"kind": "exception", "type": type(exc).__name__, "phase": "start",
                               "errno": errno.errorcode.get(exc.errno, exc.errno)}, retry=True) from None
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        try:
            reply = self._receive(self.start_timeout, "starting", "the start timeout")
        except WorkerError as exc:
            exc.fault = {**(exc.fault or {}), "phase": "start"}
            raise
        if not reply.get("ready"):
            self.stop()
            raise WorkerError(f"{self.impl_id} worker could not start: {reply.get('error')}\n"
                              f"{reply.get('traceback', '')}",
                              {"kind": "exception", "type": reply.get("type", ""), "phase": "start"})
        self.info = reply
        return reply

    def _died(self, doing: str):
        """The worker's connection broke: wait for it to end, and raise what ended it."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        cause, fault = describe_exit(code)
        tail = self._last_output()
        self.stop(kill=True)
        raise WorkerError(f"{self.impl_id} worker died while {doing}: {cause}{tail}", fault) from None

    def _dump_stacks(self, wait: float = 1.0) -> None:
        """Ask a silent worker for every thread's Python stack (SIGUSR1, see worker): it lands in the log."""
        if not hasattr(signal, "SIGUSR1") or self.proc is None or self.proc.poll() is not None:
            return
        before = self._log_size()
        try:
            self.proc.send_signal(signal.SIGUSR1)
        except OSError:
            return
        deadline, last = time.monotonic() + wait, before
        while time.monotonic() < deadline:
            time.sleep(0.05)
            size = self._log_size()
            if size > before and size == last:      # written, and no longer growing
                return
            last = size

    def _receive(self, timeout: float, doing: str, limit: str):
        ready, deadline = False, time.monotonic() + timeout
        while not ready:
            stop = self.stop_requested()
            if stop:      # a stop signal whose KeyboardInterrupt was lost (raised inside a finalizer) still stops
                raise KeyboardInterrupt(stop)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                ready = self.conn.poll(min(left, POLL_SLICE_S))
            except (OSError, ValueError):
                ready = True                        # a broken connection: recv says how
        if not ready:
            self._dump_stacks()
            tail = self._last_output()
            self.stop(kill=True)
            raise WorkerError(f"{self.impl_id} worker timed out: it did not answer within {timeout:g}s while "
                              f"{doing} ({limit}); it was killed{tail}",
                              {"kind": "timeout", "seconds": float(timeout)})
        try:
            return self.conn.recv()
        except (EOFError, OSError, ConnectionError):
            self._died(doing)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def request(self, msg: dict, doing: str, timeout: float | None = None):
        """Send one op and wait for its answer, at most ``timeout`` (default: the run timeout) seconds."""
        try:
            self.conn.send(msg)
        except (OSError, ValueError, ConnectionError):
            self._died(doing)
        return self._receive(self.run_timeout if timeout is None else timeout, doing,
                             "the run timeout, --run-timeout")

    def stop(self, kill: bool = False) -> None:
        """End the worker: asked to exit (or, with ``kill``, SIGKILL at once), killed if it has not
        after 5 s, and always waited for, so that it leaves no zombie."""
        if self.proc is not None:
            if self.proc.poll() is None and not kill:
                try:
                    self.conn.send({"op": "exit"})
                    self.proc.wait(timeout=5)
                except Exception:  # noqa: BLE001
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.proc = self.conn = None


class WorkerPool:
    """One worker per implementation id, started on first use and kept for the session.

    ``start_timeout`` bounds a worker's start (the framework import), ``run_timeout`` each run
    (``run(timeout=...)`` overrides it for one run); ``env`` is added to the workers' environment.
    """

    def __init__(self, start_timeout: float = 600.0, run_timeout: float = 120.0, env: dict | None = None,
                 stop_requested=None):
        self.start_timeout, self.run_timeout = start_timeout, run_timeout
        self.stop_requested = stop_requested      # () -> the stop signal's name once one came, else None
        self.env = dict(env or {})
        self.workers: dict[str, Worker] = {}
        self.infos: dict[str, dict] = {}
        self.start_failures: dict[str, WorkerError] = {}   # impl id -> why its worker could not start

    def _worker(self, impl_id: str) -> Worker:
        failed = self.start_failures.get(impl_id)
        if failed is not None:
            raise WorkerError(f"the {impl_id} worker failed to start earlier in this session (it is not started "
                              f"again): {failed}", {**(failed.fault or {}), "repeated": True})
        w = self.workers.get(impl_id)
        if w is None:
            w = self.workers[impl_id] = Worker(impl_id, self.start_timeout, self.run_timeout, self.env,
                                                  self.stop_requested)
        if not w.alive():
            try:
                self.infos[impl_id] = w.start()
            except WorkerError as exc:
                if not exc.retry:          # a process that could not be created says nothing of the framework
                    self.start_failures[impl_id] = exc
                raise
        return w

    def info(self, impl_id: str) -> dict:
        """Versions and devices reported by the impl's worker (starts it if needed)."""
        if impl_id not in self.infos:
            self._worker(impl_id)
        return self.infos[impl_id]

    def run(self, impl_id: str, case_id: str, cfg: Config, device: str, timeout: float | None = None, *,
            mode: str = "eager", symbolic: bool = False, summary: bool = False) -> Observation:
        """One run in the impl's worker; a worker fault becomes an ``error`` observation (see the module doc).
        ``mode`` "shapes": shape-only (``Impl.run_shapes``); ``symbolic``: the framework's shape inference
        attached (``Observation.symbolic``); ``summary``: Keras's ``model.summary()`` attached."""
        t0 = time.perf_counter()
        try:
            worker = self._worker(impl_id)
            if device not in worker.info["devices"]:
                return Observation(status="skipped", reason=(
                    f"{impl_id} sees no {device} device here (it reports: {', '.join(worker.info['devices'])})"))
            obs = worker.request({"op": "run", "case": case_id, "config": cfg.to_dict(), "device": device,
                                  "mode": mode, "symbolic": symbolic, "summary": summary},
                                 f"running case {case_id!r} on {device}",
                                 self.run_timeout if timeout is None else timeout)
        except WorkerError as exc:
            obs = Observation(status="error", reason=str(exc), fault=exc.fault)
        else:
            if (obs.fault or {}).get("type") in RESTART_AFTER:
                worker.stop()
                obs.reason += "; the worker was stopped, and the next run starts a fresh one"
        obs.timings["roundtrip_s"] = time.perf_counter() - t0
        return obs

    def roundtrip(self, impl_id: str, cfg: Config, device: str = "cpu") -> dict:
        """Map the canonical weights to native and read them back in the impl's worker (see worker)."""
        return self._worker(impl_id).request({"op": "roundtrip", "case": "", "config": cfg.to_dict(),
                                              "device": device}, "mapping weights", self.run_timeout)

    def close(self) -> None:
        """Stop every worker: all are asked to exit first, then each is waited for, so that the
        frameworks' interpreter shutdowns (0.5-2 s each) overlap instead of adding up."""
        for w in self.workers.values():
            if w.alive():
                try:
                    w.conn.send({"op": "exit"})
                except (OSError, ValueError):
                    pass
        for w in self.workers.values():
            w.stop()
        self.workers.clear()
