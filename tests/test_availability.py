"""An implementation whose framework is not installed is reported as not available, not as a failure.

"Not installed" is made real for a whole process tree: a ``sitecustomize`` on PYTHONPATH sets
``sys.modules["flax"] = None`` in every Python process (pytest, and the workers it starts), which
is what both ``importlib.util.find_spec`` and ``import flax`` see when flax is absent.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.results import load


@pytest.fixture
def without_flax(tmp_path) -> dict:
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['flax'] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(block), os.environ.get("PYTHONPATH")]))}


def test_a_run_without_flax_is_green_and_says_flax_linen_is_not_available(tmp_path, without_flax):
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "demo.yaml").write_text(textwrap.dedent("""
        lstm-conformance: 1
        cases:
          - {id: plain, input_size: 3, hidden_size: 4, bias: false}
        """))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", "torch,flax-linen", "--device", "cpu",
                           "-p", "no:cacheprovider", "--conformance-out", "out", "-rs"],
                          cwd=tmp_path, env=without_flax, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout
    assert "flax is not installed (pip install 'lstm-conformance[flax]')" in proc.stdout
    runs = {r["impl"]: r for r in load(tmp_path / "out/results.json")["runs"]}
    assert runs["torch"]["verdict"] == "agree"
    assert runs["flax-linen"]["verdict"] == "skipped" and "flax is not installed" in runs["flax-linen"]["reason"]


def test_conformance_impls_lists_a_missing_framework_with_its_install_hint(without_flax):
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "impls"], env=without_flax,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip() and not line[0].isspace()}
    assert "not available: flax is not installed" in lines["flax-linen"]
    assert "installed: torch" in lines["torch"]
