"""Helpers shared by the tests that run real pytest sessions of the suite in a temporary project:
make the project, start or run a session, wait for a line, mount a small private filesystem."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conformance import spec

REPO = Path(__file__).resolve().parent.parent
MARKER = "lstm-conformance: 1\n"
THREE = """
defaults: {input_size: 3, hidden_size: 4}
cases:
  - id: first
  - id: second
  - id: third
"""


def project(root: Path, catalogue: bool = True, **files: str) -> Path:
    """A project with ``pytest.ini``, ``cases/<name>.yaml`` for each keyword (marked as ours) and,
    unless ``catalogue=False``, the default set's ``cases/divergences.yaml``; with
    ``catalogue=False`` no catalogue applies at all (the shipped one is turned off in pytest.ini)."""
    (root / "cases").mkdir(parents=True, exist_ok=True)
    if catalogue:
        shutil.copy(REPO / "cases" / "divergences.yaml", root / "cases" / "divergences.yaml")
    for name, text in files.items():
        (root / "cases" / f"{name}.yaml").write_text(MARKER + textwrap.dedent(text))
    (root / "pytest.ini").write_text("[pytest]\n" + ("" if catalogue else "addopts = --no-builtin-divergences\n"))
    return root


def session_argv(*args: str, impl: str = "torch") -> list[str]:
    return [sys.executable, "-m", "pytest", "cases", "--impl", impl, "--device", "cpu", "-p", "no:cacheprovider",
            *args]


def run(root: Path, *args: str, env=None, timeout: float = 300, prefix=()) -> subprocess.CompletedProcess:
    """One session, waited for; killed with its process group (workers included) if it outlives ``timeout``."""
    proc = start(root, *args, env=env, prefix=prefix)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def start(root: Path, *args: str, env=None, prefix=()) -> subprocess.Popen:
    """A session in its own process group, stdout and stderr merged, line by line."""
    return foreground_popen([*prefix, *session_argv(*args)], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def foreground_popen(argv: list, **kwargs) -> subprocess.Popen:
    """A process started as a terminal's foreground job is: Ctrl-C (SIGINT) at its default. A shell
    without job control starts its background jobs with SIGINT ignored (``cmd &`` in a script), a
    test suite run that way passes that on to every child, and Python then never raises
    KeyboardInterrupt: the tests that send SIGINT would hang. A handler of ours becomes SIGINT's
    default in the child at exec; an ignored signal would stay ignored."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(argv, **kwargs)
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def wait_for(proc: subprocess.Popen, text: str, seen: list | None = None, timeout: float = 120) -> str:
    """Read the session's output until a line holds ``text``; returns that line."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if seen is not None:
            seen.append(line)
        if text in line:
            return line
        if time.monotonic() > deadline:
            break
    kill_group(proc)
    raise AssertionError(f"no line with {text!r} in the session's output:\n{''.join(seen or [])}")


def finish(proc: subprocess.Popen, seen: list | None = None, timeout: float = 120) -> str:
    """The rest of the session's output, once it has ended."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    return "".join(seen or []) + out


def kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def leftover_workers(root: Path) -> list[str]:
    """Framework workers still alive whose command line or working directory is in ``root``."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(p / "cwd")
        except OSError:
            continue
        if "conformance.worker" in cmd and cwd.startswith(str(root)):
            found.append(f"{p.name}: {cmd}")
    return found


def private_mount_prefix() -> list[str] | None:
    """A command prefix that runs a program in a private mount namespace where it may mount a
    filesystem of its own (``unshare -m`` as root, ``unshare -rm`` otherwise); None when neither works."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


def with_tmpfs(prefix: list[str], mountpoint: Path, size_kb: int, options: str = "") -> list[str]:
    """``prefix`` extended to mount a ``size_kb`` tmpfs on ``mountpoint`` (private to the program)
    before running it. While it runs the test reaches that filesystem through ``/proc/<pid>/root``;
    when it has ended, what was left there is copied to ``<mountpoint>.after``."""
    opts = f"size={size_kb}k" + (f",{options}" if options else "")
    return [*prefix, "sh", "-c", f'mount -t tmpfs -o {opts} tmpfs "$0" || exit 99; "$@"; rc=$?; '
            'mkdir -p "$0.after" && cp -a "$0/." "$0.after/"; exit $rc', str(mountpoint)]


def seen_from_outside(proc: subprocess.Popen, path: Path) -> Path:
    """``path`` as the process ``proc`` (in its own mount namespace) sees it."""
    return Path(f"/proc/{proc.pid}/root") / path.relative_to("/")


def fill(directory: Path, name: str = "filler") -> Path:
    """Fill the filesystem that holds ``directory`` to the last byte."""
    path = directory / name
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 1024)
        except OSError:
            pass
    return path


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    """A case file (dedented) for the loader's own tests."""
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def load_error(tmp_path: Path, text: str) -> spec.SpecError:
    """The SpecError that loading ``text`` as a case file raises (the test fails if none is)."""
    with pytest.raises(spec.SpecError) as info:
        spec.load_file(write(tmp_path, text))
    return info.value


def fields_error(tmp_path: Path, fields: dict, input_size: int = 3, hidden_size: int = 4) -> spec.SpecError:
    """The SpecError of one case ``bad`` with ``input_size``, ``hidden_size`` and ``fields`` (YAML text per
    value, written as they are)."""
    body = "".join(f"\n    {k}: {v}" for k, v in fields.items())
    return load_error(tmp_path, f"cases:\n  - id: bad\n    input_size: {input_size}\n    hidden_size: {hidden_size}{body}\n")
