"""Executes runs, each implementation in its own lazily started, reused worker process.

Why processes (DESIGN.md): Keras 3 fixes its backend at import, TensorFlow and torch in one
process can segfault, TensorFlow and JAX each grab most GPU memory, and a framework that crashes
or hangs must become an ``error`` verdict for its runs rather than a dead test session. A worker
that dies is restarted for the next run.
"""

from __future__ import annotations

import os
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


class WorkerError(RuntimeError):
    pass


class Worker:
    def __init__(self, impl_id: str, start_timeout: float, run_timeout: float):
        self.impl_id = impl_id
        self.start_timeout = start_timeout
        self.run_timeout = run_timeout
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.info: dict = {}
        self.log = tempfile.TemporaryFile(mode="w+b")

    def _log_tail(self, n: int = 3000) -> str:
        self.log.seek(0, os.SEEK_END)
        size = self.log.tell()
        self.log.seek(max(0, size - n))
        return self.log.read().decode("utf-8", "replace").strip()

    def start(self) -> dict:
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.update(impls.get(self.impl_id).env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conformance.worker", self.impl_id, str(child.fileno())],
            pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        child.close()
        self.conn = Connection(parent.detach())
        reply = self._receive(self.start_timeout, "starting")
        if not reply.get("ready"):
            self.stop()
            raise WorkerError(f"{self.impl_id} worker could not start: {reply.get('error')}\n"
                              f"{reply.get('traceback', '')}")
        self.info = reply
        return reply

    def _receive(self, timeout: float, doing: str):
        try:
            if not self.conn.poll(timeout):
                self.stop()
                raise WorkerError(f"{self.impl_id} worker did not answer within {timeout:g}s while {doing}; "
                                  "it was killed")
            return self.conn.recv()
        except (EOFError, OSError, ConnectionError):
            code = self.proc.wait(timeout=10) if self.proc else None
            tail = self._log_tail()
            self.stop()
            raise WorkerError(f"{self.impl_id} worker died while {doing} (exit code {code})"
                              + (f"; its last output:\n{tail}" if tail else "")) from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def request(self, msg: dict, doing: str):
        self.conn.send(msg)
        return self._receive(self.run_timeout, doing)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
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
    """One worker per implementation id, started on first use and kept for the session."""

    def __init__(self, start_timeout: float = 600.0, run_timeout: float = 120.0):
        self.start_timeout, self.run_timeout = start_timeout, run_timeout
        self.workers: dict[str, Worker] = {}
        self.infos: dict[str, dict] = {}

    def _worker(self, impl_id: str) -> Worker:
        w = self.workers.get(impl_id)
        if w is None:
            w = self.workers[impl_id] = Worker(impl_id, self.start_timeout, self.run_timeout)
        if not w.alive():
            self.infos[impl_id] = w.start()
        return w

    def info(self, impl_id: str) -> dict:
        """Versions and devices reported by the impl's worker (starts it if needed)."""
        if impl_id not in self.infos:
            self._worker(impl_id)
        return self.infos[impl_id]

    def run(self, impl_id: str, case_id: str, cfg: Config, device: str) -> Observation:
        t0 = time.perf_counter()
        try:
            worker = self._worker(impl_id)
            if device not in worker.info["devices"]:
                return Observation(status="skipped", reason=(
                    f"{impl_id} sees no {device} device here (it reports: {', '.join(worker.info['devices'])})"))
            obs = worker.request({"op": "run", "case": case_id, "config": cfg.to_dict(), "device": device},
                                 f"running case {case_id!r} on {device}")
        except WorkerError as exc:
            return Observation(status="error", reason=str(exc))
        obs.timings["roundtrip_s"] = time.perf_counter() - t0
        return obs

    def roundtrip(self, impl_id: str, cfg: Config, device: str = "cpu") -> dict:
        """Map the canonical weights to native and read them back in the impl's worker (see worker)."""
        return self._worker(impl_id).request({"op": "roundtrip", "case": "", "config": cfg.to_dict(),
                                              "device": device}, "mapping weights")

    def close(self) -> None:
        for w in self.workers.values():
            w.stop()
        self.workers.clear()
