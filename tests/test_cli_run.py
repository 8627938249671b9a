"""``conformance run`` takes every option the plugin defines and every pytest option directly (no
``--``), says what it does with examples, and runs the shipped default set from anywhere; the
plugin's short option names never break another project's pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import cli, options

from helpers import MARKER

CASES = """
cases:
  - id: mine-basic
    input_size: 3
    hidden_size: 4
"""

# A value each option accepts (the options that take one); --conformance-run is the CLI's own.
VALUES = {"--conformance-impl": "torch", "--conformance-device": "cpu", "--conformance-divergences": "extra.yaml",
          "--conformance-shard": "1/1", "--conformance-run-timeout": "60", "--conformance-out": "out",
          "--conformance-flush": "0", "--conformance-fill": "empty/results.json", "--conformance-cases": "."}


def conformance(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def maintainer_dir(tmp_path) -> Path:
    (tmp_path / "mine.yaml").write_text(CASES)
    (tmp_path / "extra.yaml").write_text(textwrap.dedent("""
        divergences:
          - id: mine-declared
            impl: flax-linen
            check: padding
            reason: a declaration of the maintainer's own
    """))
    from conformance.results import write
    write(tmp_path / "empty", [])               # a results file of no runs, for --conformance-fill
    return tmp_path


def every_option(spelling: str) -> list[str]:
    """Every plugin option (the CLI's own --conformance-run aside), spelled by its alias where it has
    one (``spelling="alias"``) or by its prefixed name, each with a value it accepts."""
    args = []
    for o in options.OPTIONS:
        if o.name == "--conformance-run":
            continue
        name = (o.alias or o.name) if spelling == "alias" else o.name
        args += [name, VALUES[o.name]] if o.takes_value else [name]
    return args


@pytest.mark.parametrize("spelling", ["alias", "prefixed"])
def test_every_plugin_option_works_directly_after_conformance_run(maintainer_dir, spelling):
    proc = conformance(maintainer_dir, "run", "mine.yaml", *every_option(spelling), "--collect-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mine-basic[torch-cpu]" in proc.stdout


def test_the_issue_s_command_runs_with_divergences_timeout_and_xdist(maintainer_dir):
    proc = conformance(maintainer_dir, "run", "mine.yaml", "--divergences", "extra.yaml", "--run-timeout", "60",
                       "-n", "2", "--impl", "torch,flax-linen", "-o", "out", "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert (maintainer_dir / "out" / "results.json").is_file()


def test_pytest_options_after_a_double_dash_still_work(maintainer_dir):
    proc = conformance(maintainer_dir, "run", "mine.yaml", "--impl", "torch", "--", "--collect-only")
    assert proc.returncode == 0 and "mine-basic[torch-cpu]" in proc.stdout


def test_aliases_and_output_become_the_prefixed_options():
    assert cli.run_args(["--impl=torch", "-o", "d", "--shard", "1/2", "--no-cache", "-k", "x"]) == [
        "--conformance-impl=torch", "--conformance-out", "d", "--conformance-shard", "1/2",
        "-p", "no:cacheprovider", "-k", "x"]


def test_run_help_lists_every_option_with_examples():
    text = cli.run_help()
    for o in options.OPTIONS:
        if o.name != "--conformance-run":
            assert o.name in text and (o.alias is None or o.alias in text)
    assert "examples:" in text and "conformance run my_cases.yaml --divergences" in text


@pytest.mark.parametrize("command", ["", "validate", "impls", "diff", "report"])
def test_every_command_s_help_has_examples(command, tmp_path):
    proc = conformance(tmp_path, *filter(None, [command]), "--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout, proc.stdout + proc.stderr


def test_results_record_the_command_as_typed(maintainer_dir):
    proc = conformance(maintainer_dir, "run", "mine.yaml", "--impl", "torch", "-o", "out", "--no-cache")
    assert proc.returncode == 0, proc.stdout
    import json
    doc = json.loads((maintainer_dir / "out" / "results.json").read_text())
    assert doc["environment"]["command"] == ["conformance", "run", "mine.yaml", "--impl", "torch", "-o", "out",
                                             "--no-cache"]


def test_with_no_case_path_it_runs_the_shipped_default_set_from_any_directory(tmp_path):
    proc = conformance(tmp_path, "run", "--impl", "torch", "-k", "bidirectional-state", "--collect-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "returns.yaml::bidirectional-state[torch-cpu]" in proc.stdout


def test_another_projects_device_option_keeps_its_pytest_working(pytester):
    """A conftest that defines --device (a common option) and a plain test: the plugin's alias yields,
    the project's pytest runs, and the prefixed name still selects the conformance device."""
    pytester.makeconftest("""
        def pytest_addoption(parser):
            parser.addoption("--device", default="cpu")
    """)
    pytester.makepyfile(test_theirs="def test_device(request):\n    assert request.config.getoption('device') == 'mps'\n")
    result = pytester.runpytest_subprocess("--device", "mps", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (pytester.path / "cases").mkdir()
    (pytester.path / "cases" / "mine.yaml").write_text(MARKER + textwrap.dedent(CASES))
    result = pytester.runpytest_subprocess("cases", "--device", "mps", "--conformance-device", "cpu", "--impl",
                                           "torch", "--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*mine-basic[[]torch-cpu[]]*"])
    result = pytester.runpytest_subprocess("cases", "--device", "mps", "--impl", "torch", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*note: --device is another plugin's or conftest's option here; "
                                 "lstm-conformance's is --conformance-device*"])


def test_a_non_editable_install_runs_its_shipped_cases_from_another_directory(tmp_path):
    """A wheel built from this checkout, installed into a directory of its own, run from a third one:
    the default set comes from the package, results name its files as in a checkout."""
    repo = Path(__file__).resolve().parent.parent
    wheel_dir, target, work = tmp_path / "wheel", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(repo),
                    "-w", str(wheel_dir)], check=True, capture_output=True, cwd=tmp_path, timeout=300)
    (wheel,) = wheel_dir.glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    shipped = {p.relative_to(repo / "cases").as_posix() for p in (repo / "cases").rglob("*.yaml")}
    assert {p.relative_to(target / "conformance" / "cases").as_posix()
            for p in (target / "conformance" / "cases").rglob("*.yaml")} == shipped   # upstream/ included
    code = ("import sys, conformance; assert conformance.__file__.startswith(sys.argv[1]), conformance.__file__; "
            "from conformance.cli import main; sys.exit(main(sys.argv[2:]))")
    proc = subprocess.run([sys.executable, "-c", code, str(target), "run", "--impl", "torch", "-k", "return-flags",
                           "-o", "out", "--no-cache"], cwd=work, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Warning" not in proc.stdout + proc.stderr      # (pytest's assertion-rewrite warning, for one)
    import json
    doc = json.loads((work / "out" / "results.json").read_text())
    assert doc["runs"] and {r["file"] for r in doc["runs"]} == {"cases/returns.yaml"}
    assert doc["catalogues"] == [{"path": "cases/divergences.yaml", "layer": "builtin"}]


def test_walking_the_checkout_collects_the_shipped_cases_once_not_again_through_the_package_link():
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "conformance", "--collect-only", "-q",
                           "--impl", "torch", "--device", "cpu", "-p", "no:cacheprovider"], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    assert items and all(line.startswith("cases/") for line in items)
    assert len(items) == len(set(items))
