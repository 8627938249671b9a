"""Where results and pages are written, when that place cannot take them: a write that fails
(a file size limit, a full disk) leaves no temporary file and raises the OSError; `conformance
report -o` naming a file, or a place that cannot be written, exits 2 saying so and writes nothing.

The failures are real: a file size limit (RLIMIT_FSIZE, in a child process; Python ignores
SIGXFSZ, so the write fails with EFBIG) and a small tmpfs mounted in a private mount namespace
(``unshare -m`` as root, ``unshare -rm`` otherwise), full for real.
"""

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main

REPO = Path(__file__).resolve().parent.parent
WRITE = """
import resource, sys
from pathlib import Path
from conformance.results import write_atomic
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    write_atomic(Path(sys.argv[1]), "x" * 1_000_000)
except OSError as exc:
    print(type(exc).__name__, exc.errno)
else:
    print("written")
"""


def python(*args: str, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def private_mount() -> list[str]:
    """A command prefix giving the program a mount namespace of its own, where it may mount a tmpfs."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): a full filesystem cannot be made without touching the machine's own")
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare -m / -rm: "
                f"{probe.stderr.decode(errors='replace').strip()})")


def in_full_tmpfs(mountpoint: Path, command: str, size_kb: int = 8) -> subprocess.CompletedProcess:
    """``command`` (sh) run with a small tmpfs on ``mountpoint``; then every path left there, listed."""
    script = (f'mount -t tmpfs -o size={size_kb}k tmpfs "{mountpoint}" || exit 99; {command}; '
              f'echo "rc=$?"; echo "left:"; cd "{mountpoint}" && find . -mindepth 1')
    return subprocess.run([*private_mount(), "sh", "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def results_file(real_results, tmp_path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(real_results))
    return path


# ---- write_atomic ----

def test_write_atomic_past_the_file_size_limit_raises_efbig_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "results.json"
    proc = python("-c", WRITE, str(target), "4096")
    assert proc.stdout.split() == ["OSError", str(errno.EFBIG)], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_past_the_file_size_limit_keeps_the_previous_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("the previous results")
    proc = python("-c", WRITE, str(target), "4096")
    assert proc.stdout.split() == ["OSError", str(errno.EFBIG)], proc.stderr
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == "the previous results"


def test_write_atomic_on_a_full_disk_raises_enospc_and_leaves_no_temporary_file(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = in_full_tmpfs(mnt, f'"{sys.executable}" -c \'{WRITE}\' "{mnt}/results.json" 0')
    assert proc.stdout.splitlines() == [f"OSError {errno.ENOSPC}", "rc=0", "left:"], proc.stdout + proc.stderr


def test_write_atomic_into_a_directory_s_place_raises_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "results.json"
    target.mkdir()
    proc = python("-c", WRITE, str(target), "0")
    assert proc.stdout.split() == ["IsADirectoryError", str(errno.EISDIR)], proc.stderr
    assert list(tmp_path.iterdir()) == [target] and list(target.iterdir()) == []


# ---- conformance report -o ----

def test_report_to_an_existing_file_exits_2_and_writes_nothing(results_file, tmp_path, capsys):
    out = tmp_path / "report.html"
    out.write_text("not a directory")
    assert main(["report", str(results_file), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"conformance report: error: -o {out}: is a file, not a directory "
                            "(-o names the directory for index.html)\n")
    assert captured.out == "" and out.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "results.json"]


def test_report_under_a_file_exits_2_saying_it_cannot_write(results_file, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["report", str(results_file), "-o", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"conformance report: error: -o {blocker / 'out'}: cannot write the report: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "results.json"]


def test_report_where_index_html_is_a_directory_exits_2_and_leaves_no_temporary_file(results_file, tmp_path, capsys):
    (tmp_path / "out" / "index.html").mkdir(parents=True)
    assert main(["report", str(results_file), "-o", str(tmp_path / "out")]) == 2
    assert "cannot write the report: Is a directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["index.html"]


def test_report_to_a_full_disk_exits_2_and_leaves_nothing_there(results_file, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    command = (f'"{sys.executable}" -c "import sys; from conformance.cli import main; '
               f'sys.exit(main([\'report\', \'{results_file}\', \'-o\', \'{mnt}/out\']))"')
    proc = in_full_tmpfs(mnt, command)
    assert proc.stdout.splitlines() == ["rc=2", "left:", "./out"], proc.stdout + proc.stderr   # no temporary file
    assert proc.stderr.startswith(f"conformance report: error: -o {mnt}/out: cannot write the report: No space "
                                  "left on device"), proc.stderr
    assert "Traceback" not in proc.stderr
