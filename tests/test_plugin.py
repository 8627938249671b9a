"""The pytest plugin end to end (pytester), on real torch runs in real worker processes."""

import json
import os
import textwrap
from pathlib import Path

import pytest

from conformance.devices import machine_has_gpu
from conformance.reference import PARAM_FORMULAS, param_count
from conformance.spec import Config

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = str(REPO / "cases" / "divergences.yaml")

SMALL = """
defaults: {input_size: 3, hidden_size: 4, batch: 2, timesteps: 3}
cases:
  - id: plain
  - id: bidirectional-state
    bidirectional: true
    return_state: true
  - id: merged
    bidirectional: true
    merge_mode: sum
"""


def make(pytester, text=SMALL, path="cases/demo.yaml", marked=True):
    """A case file; ``marked``: with the ``lstm-conformance: 1`` line that lets pytest find it in a directory."""
    p = pytester.path / path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text) + ("\nlstm-conformance: 1\n" if marked else ""))
    return p


def verdicts(results_json: Path) -> dict:
    doc = json.loads(results_json.read_text())
    return {(r["case"], r["impl"], r["device"]): r["verdict"] for r in doc["runs"]}


def test_items_are_named_file_case_impl_device(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "cases/demo.yaml::plain[[]torch-cpu[]]",
        "cases/demo.yaml::bidirectional-state[[]torch-cpu[]]",
        "cases/demo.yaml::merged[[]torch-cpu[]]",
    ])


def test_impl_option_takes_comma_lists_and_repeats(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "torch,flax-linen", "--impl", "keras-tensorflow",
                                "--device", "cpu", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*plain[[]torch-cpu[]]", "*plain[[]flax-linen-cpu[]]",
                                 "*plain[[]keras-tensorflow-cpu[]]", "*9 tests collected*"])


def test_unknown_impl_is_a_usage_error_listing_the_known_ones(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "caffe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--impl 'caffe' matches no implementation; known: torch*"])


def test_an_explicit_case_file_is_collected_wherever_it_lives(pytester):
    make(pytester, path="elsewhere/my_cases.yaml", marked=False)
    assert pytester.runpytest("--impl", "torch", "--collect-only", "-q").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result = pytester.runpytest("elsewhere/my_cases.yaml", "--impl", "torch", "--device", "cpu", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["elsewhere/my_cases.yaml::plain[[]torch-cpu[]]"])


def test_a_misspelled_field_fails_collection_naming_file_line_case_and_field(pytester):
    make(pytester, """
        cases:
          - id: typo
            input_size: 3
            hidden_sise: 4
        """)
    result = pytester.runpytest("cases", "--impl", "torch")
    assert result.ret == pytest.ExitCode.TESTS_FAILED       # the other case files would still have run
    result.stdout.fnmatch_lines(["*cases/demo.yaml:5: case 'typo': field 'hidden_sise': unknown field "
                                 "(did you mean 'hidden_size'?)*"])


def test_unsupported_configurations_skip_with_the_reason(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*unsupported: torch.nn.LSTM always concatenates*"])


def test_a_failing_item_shows_native_canonical_reference_and_declaration(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", "-k", "plain")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*plain on torch@cpu: diverge*",
        "*native returns: [[]0[]] output (2, 3, 4) float32; [[]1[]][[]0[]] h (1, 2, 4) float32*",
        "*check param_count: diverge*",
        f"*native count: {PARAM_FORMULAS['torch'].count(Config(3, 4))}*",
        f"*canonical (reference): {param_count(Config(3, 4))}*",
        "*declared divergence: none*",
    ])


def test_a_declared_divergence_that_no_longer_happens_fails_as_stale(pytester):
    make(pytester, """
        cases:
          - {id: nobias, input_size: 3, hidden_size: 4, bias: false}
        divergences:
          - id: wrong-claim-of-double-bias
            impl: torch
            check: param_count
            reason: said torch always has two biases
        """)
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*check param_count: stale*", "*declared divergence: wrong-claim-of-double-bias*"])


def test_catalogue_beside_the_cases_applies_to_them(pytester):
    make(pytester)
    (pytester.path / "cases" / "divergences.yaml").write_text(Path(CATALOGUE).read_text())
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu")
    result.assert_outcomes(passed=2, skipped=1)


def test_keyword_exitfirst_and_last_failed_work(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", "-x")
    result.assert_outcomes(failed=1)            # stops at the first (undeclared double bias)
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", "--lf")
    result.assert_outcomes(failed=1)            # reruns only that one
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", "-k", "merged", "-q")
    result.assert_outcomes(skipped=1)


def test_results_json_records_every_run_with_its_checks(pytester):
    make(pytester)
    out = pytester.path / "out"
    pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}",
                       "--conformance-out", str(out))
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == 1 and doc["environment"]["versions"]["torch"]["torch"]
    runs = {r["case"]: r for r in doc["runs"]}
    assert set(runs) == {"plain", "bidirectional-state", "merged"}
    bi = runs["bidirectional-state"]
    assert bi["verdict"] == "known-divergence"
    assert bi["checks"]["param_count"]["divergence"]["id"] == "torch-double-bias"
    assert [r["role"] for r in bi["native"]["returns"]] == ["output", "h", "c"]
    assert bi["canonical"]["state_shapes"] == [[[2, 4], [2, 4]], [[2, 4], [2, 4]]]
    assert runs["merged"]["verdict"] == "unsupported" and runs["merged"]["reason"]
    assert (out / "index.html").read_text().count("<tr") > 3


def test_parallel_run_gives_the_same_verdicts_as_a_serial_run(pytester):
    make(pytester, SMALL + """
  - id: grid
    matrix: {num_layers: [1, 2], return_sequences: [false, true], proj_size: [0, 2]}
""")
    common = ["cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}", "-p", "no:cacheprovider"]
    pytester.runpytest_subprocess(*common, "--conformance-out", "serial")
    result = pytester.runpytest_subprocess(*common, "-n", "2", "--conformance-out", "parallel")
    result.stdout.fnmatch_lines(["*2 workers*"])
    serial, parallel = verdicts(pytester.path / "serial/results.json"), verdicts(pytester.path / "parallel/results.json")
    assert len(serial) == 11 and serial == parallel


def test_torch_runs_with_tensorflow_and_jax_unimportable(pytester):
    make(pytester)
    blocked = pytester.path / "blocked"
    for mod in ("tensorflow", "jax", "flax", "keras"):
        (blocked / mod).mkdir(parents=True)
        (blocked / mod / "__init__.py").write_text(f"raise ImportError('{mod} was imported by a torch-only run')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        result = pytester.runpytest_subprocess("cases", "--impl", "torch", "--device", "cpu",
                                               f"--divergences={CATALOGUE}", "--conformance-out", "out")
    result.assert_outcomes(passed=2, skipped=1)
    assert "was imported" not in result.stdout.str() + result.stderr.str()


def test_a_crashing_worker_is_an_error_for_its_run_and_the_session_goes_on(pytester, monkeypatch):
    make(pytester)
    monkeypatch.setenv("CONFORMANCE_FAULT", "crash:bidirectional-state")
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}",
                                "--conformance-out", "out")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*bidirectional-state on torch@cpu: error*", "*worker died while running*"])
    assert verdicts(pytester.path / "out/results.json")[("plain", "torch", "cpu")] == "known-divergence"


def test_a_hanging_worker_is_killed_and_its_run_is_an_error(pytester, monkeypatch):
    make(pytester)
    monkeypatch.setenv("CONFORMANCE_FAULT", "hang:plain")
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}",
                                "--run-timeout", "3")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*did not answer within 3s*"])


@pytest.mark.skipif(machine_has_gpu(), reason="this machine has a GPU")
def test_without_a_gpu_gpu_items_are_not_collected_and_skip_when_asked_for(pytester):
    make(pytester)
    result = pytester.runpytest("cases", "--impl", "torch", "--collect-only", "-q")
    assert "gpu" not in result.stdout.str()
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "gpu", "-k", "plain", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no GPU on this machine*"])


def test_running_a_framework_never_imports_it_into_the_test_process(pool):
    import sys

    from conformance.spec import Config
    assert pool.run("torch", "iso", Config(3, 4), "cpu").status == "ok"
    assert not {"torch", "tensorflow", "jax", "flax", "keras"} & set(sys.modules)


def test_a_declaration_that_explains_no_run_is_reported_as_unused(pytester):
    make(pytester, SMALL + """
divergences:
  - {id: never-happens, impl: torch, check: output_shape, reason: no such thing, cases: [nothing-*]}
""")
    out = pytester.path / "out"
    result = pytester.runpytest("cases", "--impl", "torch", "--device", "cpu", f"--divergences={CATALOGUE}",
                                "--conformance-out", str(out))
    result.stdout.fnmatch_lines(["*warning: declared divergence never-happens*explained no run*"])
    unused = json.loads((out / "results.json").read_text())["unused_divergences"]
    assert [d["id"] for d in unused] == ["never-happens"]
