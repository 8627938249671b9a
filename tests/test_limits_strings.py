"""Strings that travel are bounded: the loader refuses over-long ids and texts with located errors,
a worker's environment holds nothing of the run that started it, a worker that could not even be
created is tried again, and a framework's over-long message is cut in the run's record. Real torch
workers and real pytest sessions where it matters."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import checks, spec
from conformance.results import record
from conformance.runner import WorkerPool
from conformance.spec import Case, Config
from helpers import load_error, write

REPO = Path(__file__).resolve().parent.parent
LONG = 131_072            # characters: one more than Linux's limit for one environment string


# ---- the loader ----

def test_a_case_id_of_131072_characters_is_a_located_error_with_a_short_message(tmp_path):
    err = load_error(tmp_path, f"cases:\n  - id: a{'x' * (LONG - 1)}\n    input_size: 3\n    hidden_size: 4\n")
    assert err.line == 2 and err.field == "id"
    assert f"the id is {LONG:,} characters long; at most {spec.MAX_ID_CHARS} are allowed" in str(err)
    assert len(str(err)) < 400, str(err)[:500]


def test_an_id_of_the_longest_allowed_length_loads(tmp_path):
    (case,) = spec.load_file(write(tmp_path, f"cases:\n  - {{id: {'a' * spec.MAX_ID_CHARS}, input_size: 3, "
                                              "hidden_size: 4}\n")).cases
    assert len(case.id) == spec.MAX_ID_CHARS


def test_an_id_template_that_expands_past_the_limit_names_the_case_it_makes(tmp_path):
    lengths = "[" + ", ".join(["1"] * 150) + "]"
    err = load_error(tmp_path, textwrap.dedent(f"""\
        cases:
          - id: t-{{lengths}}
            input_size: 3
            hidden_size: 4
            batch: 150
            matrix: {{lengths: [{lengths}]}}
        """))
    assert err.line == 2 and err.field == "id"
    assert "the id, made by the template, is 301 characters long; at most 200" in str(err)
    assert err.case.startswith("t-1_1_1")


def test_matrix_suffixes_that_take_an_id_past_the_limit_are_refused(tmp_path):
    err = load_error(tmp_path, f"cases:\n  - id: {'a' * 190}\n    input_size: 3\n    matrix: {{hidden_size: [4]}}\n")
    assert err.field == "id" and "with the matrix values appended, is 204 characters long" in str(err)


def test_a_divergence_id_over_the_limit_is_refused(tmp_path):
    err = load_error(tmp_path, f"divergences:\n  - {{id: {'d' * 201}, impl: torch, check: values, reason: r}}\n")
    assert err.field == "id" and err.line == 2 and "201 characters long; at most 200" in str(err)


TOO_LONG = "y" * (spec.MAX_TEXT_CHARS + 1)
CASE = "cases:\n  - id: c\n    input_size: 3\n    hidden_size: 4\n"
CLAIM = CASE + "    claims:\n      - {source: s, impl: t, param_count: 1, "
DIV = "divergences:\n  - {id: d, check: values, reason: r, "


@pytest.mark.parametrize("text, field, line", [
    (f"description: {TOO_LONG}\n" + CASE, "description", 1),
    (CASE + f"    description: {TOO_LONG}\n", "description", 5),
    (CLAIM.replace("source: s", f"source: {TOO_LONG}") + "}\n", "source", 6),
    (CLAIM + f"says: {TOO_LONG}}}\n", "claims.says", 6),
    (CLAIM + f"note: {TOO_LONG}}}\n", "claims.note", 6),
    (CLAIM.replace("impl: t", f"impl: [t, {TOO_LONG}]") + "}\n", "claims.impl", 6),
    (DIV + f"impl: t, link: {TOO_LONG}}}\n", "link", 2),
    (DIV.replace("reason: r", f"reason: {TOO_LONG}") + "impl: t}\n", "reason", 2),
    (DIV + f"impl: t, cases: [{TOO_LONG}]}}\n", "cases", 2),
    (DIV + f"impl: t, devices: {TOO_LONG}}}\n", "devices", 2),
    (DIV + f"impl: {TOO_LONG}}}\n", "impl", 2),
    (DIV + f"impl: t, versions: {{torch: '>={'1.' * 3000}1'}}}}\n", "versions.torch", 2),
], ids=["file description", "case description", "claim source", "claim says", "claim note", "claim impl",
        "divergence link", "divergence reason", "divergence cases", "divergence devices", "divergence impl",
        "version specifier"])
def test_every_free_text_field_is_bounded_by_a_located_error(tmp_path, text, field, line):
    err = load_error(tmp_path, text)
    assert err.field == field and err.line == line
    assert len(str(err)) < 400, str(err)[:500]


def test_texts_of_the_longest_allowed_length_load(tmp_path):
    ok = "z" * spec.MAX_TEXT_CHARS
    loaded = spec.load_file(write(tmp_path, f"description: {ok}\n" + CLAIM + f"says: {ok}, note: {ok}}}\n"
                                  + DIV + f"impl: t, link: {ok}}}\n"))
    assert loaded.cases[0].claims[0].says == ok and loaded.divergences[0].link == ok


# ---- lists copied into every run's record ----

def _items(n: int, item: str = "t") -> str:
    return "[" + ", ".join(item for _ in range(n)) + "]"


def _claims(n: int) -> str:
    return CASE + "    claims:\n" + "      - {source: s, impl: t, param_count: 1}\n" * n


@pytest.mark.parametrize("text, field, line, said", [
    (_claims(spec.MAX_CLAIMS + 1), "claims", 5, "17 claims; at most 16"),
    (CLAIM.replace("param_count: 1", f"outputs: {_items(65, '[1]')}") + "}\n", "claims.outputs", 6,
     "65 shapes; at most 64"),
    (CLAIM.replace("param_count: 1", f"outputs: [{_items(9, '1')}]") + "}\n", "claims.outputs", 6,
     "shape 0 has 9 dimensions; at most 8"),
    (CLAIM.replace("param_count: 1", f"roles: {_items(65, 'h')}") + "}\n", "claims.roles", 6,
     "65 roles; at most 64"),
    (CLAIM.replace("impl: t", f"impl: {_items(65)}") + "}\n", "claims.impl", 6, "65 patterns; at most 64"),
    (DIV + f"impl: {_items(65)}}}\n", "impl", 2, "65 patterns; at most 64"),
    (DIV + f"impl: t, cases: {_items(65)}}}\n", "cases", 2, "65 patterns; at most 64"),
    (DIV + f"impl: t, devices: {_items(65)}}}\n", "devices", 2, "65 patterns; at most 64"),
    (DIV + "impl: t, when: {seed: [" + ", ".join(map(str, range(65))) + "]}}\n", "when.seed", 2,
     "65 values; at most 64"),
    (DIV + "impl: t, versions: {" + ", ".join(f"p{i}: '>=1'" for i in range(65)) + "}}\n", "versions", 2,
     "65 packages; at most 64"),
], ids=["claims per case", "claimed shapes", "dimensions of a shape", "roles", "claim impl", "divergence impl",
        "divergence cases", "divergence devices", "divergence when values", "divergence versions"])
def test_every_list_copied_into_run_records_is_bounded_by_a_located_error(tmp_path, text, field, line, said):
    err = load_error(tmp_path, text)
    assert err.field == field and err.line == line and said in str(err), str(err)


def test_lists_of_the_longest_allowed_length_load(tmp_path):
    n, dims = spec.MAX_CLAIM_TENSORS, spec.MAX_CLAIM_DIMS
    claim = (f"      - {{source: s, impl: {_items(spec.MAX_LIST_ITEMS)}, outputs: {_items(n, _items(dims, '1'))}, "
             f"roles: {_items(n, 'h')}}}\n")
    loaded = spec.load_file(write(tmp_path, CASE + "    claims:\n" + claim * spec.MAX_CLAIMS + DIV
                                  + f"impl: {_items(spec.MAX_LIST_ITEMS)}, when: {{seed: "
                                  + "[" + ", ".join(map(str, range(spec.MAX_LIST_ITEMS))) + "]}}\n"))
    (case,) = loaded.cases
    assert len(case.claims) == spec.MAX_CLAIMS and len(case.claims[0].outputs) == n
    assert len(loaded.divergences[0].when[0][1]) == spec.MAX_LIST_ITEMS


def test_a_claim_of_90000_dimensions_in_a_matrix_of_250_seeds_is_refused_where_it_is(tmp_path):
    # Within the YAML node limit, it made a 2.4 GB session and a 317 MB results.json no report reads.
    seeds = ", ".join(map(str, range(250)))
    err = load_error(tmp_path, CASE + f"    matrix: {{seed: [{seeds}]}}\n    claims:\n      - source: s\n"
                     f"        impl: torch\n        outputs: [[{', '.join(['1'] * 90_000)}]]\n")
    assert (err.line, err.case, err.field) == (9, "c", "claims.outputs")
    assert "shape 0 has 90,000 dimensions; at most 8 are allowed" in str(err) and len(str(err)) < 400


def test_the_default_case_set_is_within_every_limit():
    done = subprocess.run([str(REPO / ".venv" / "bin" / "conformance"), "validate", "cases"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "error" not in done.stdout, done.stdout[-2000:]


def test_a_version_package_name_is_bounded_too(tmp_path):
    err = load_error(tmp_path, "divergences:\n  - {id: d, impl: t, check: values, reason: r, versions: "
                               f"{{? {TOO_LONG} : '>=1'}}}}\n")
    assert err.field == "versions" and err.line == 2 and "a package name is 4,097 characters long" in str(err)


# (YAML's plain keys stop at 1,024 characters; an explicit key, `? key`, may be of any length)
def test_an_unknown_key_of_any_length_is_named_briefly(tmp_path):
    err = load_error(tmp_path, CASE + f"    ? {'k' * LONG}\n    : 1\n")
    assert err.line == 5 and f"({LONG:,} characters)" in str(err) and len(str(err)) < 1000


def test_a_duplicate_key_of_any_length_is_named_briefly(tmp_path):
    key = "k" * LONG
    err = load_error(tmp_path, f"cases: []\n? {key}\n: 1\n? {key}\n: 2\n")
    assert err.line == 4 and f"({LONG:,} characters)" in str(err) and len(str(err)) < 400


# ---- the worker's environment and its start ----

def test_the_worker_environment_leaves_out_pytest_current_test_whatever_its_length(monkeypatch):
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "x" * LONG)        # alone it is too long to pass to a process
    pool = WorkerPool()
    try:
        obs = pool.run("torch", "plain", Config(3, 4), "cpu")
        assert obs.status == "ok", obs.reason
        environ = Path(f"/proc/{pool.info('torch')['pid']}/environ").read_bytes().split(b"\0")
        assert not any(e.startswith(b"PYTEST_CURRENT_TEST=") for e in environ)
    finally:
        pool.close()


def test_a_worker_that_could_not_be_created_is_tried_again_by_the_next_run(monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TEST_HUGE", "x" * LONG)     # a real E2BIG from execve
    pool = WorkerPool()
    try:
        first = pool.run("torch", "plain", Config(3, 4), "cpu")
        assert first.status == "error"
        assert "torch worker could not be started: [Errno 7] Argument list too long" in first.reason
        assert "the next run tries again" in first.reason
        assert first.fault == {"kind": "exception", "type": "OSError", "phase": "start", "errno": "E2BIG"}
        assert pool.start_failures == {}
        monkeypatch.delenv("CONFORMANCE_TEST_HUGE")
        second = pool.run("torch", "plain", Config(3, 4), "cpu")
        assert second.status == "ok", second.reason
    finally:
        pool.close()


# ---- a framework's message in the record ----

def test_a_framework_message_of_a_megabyte_is_cut_in_the_record_head_and_tail_kept():
    case_id = "f-raise-" + "m" * 1_000_000                        # the worker's exception quotes it
    pool = WorkerPool(env={"CONFORMANCE_FAULT": "raise:f-raise-*"})
    try:
        obs = pool.run("torch", case_id, Config(3, 4), "cpu")
    finally:
        pool.close()
    assert obs.status == "error" and len(obs.reason) > 1_000_000 and len(obs.traceback) > 1_000_000
    rec = record(Case(id="f-raise", config=Config(3, 4), file="x.yaml"), "torch", "cpu", obs, {}, {})
    assert rec["verdict"] == checks.ERROR
    for key in ("reason", "traceback"):
        text = rec[key]
        assert len(text) <= spec.MAX_RECORD_TEXT
        assert f" of {len(getattr(obs, key)):,} characters cut here ...]" in text
        assert text[:100] == getattr(obs, key)[:100] and text[-100:] == getattr(obs, key)[-100:]
    assert rec["reason"].startswith("RuntimeError: injected framework error in case 'f-raise-mmm")
    assert len(json.dumps(rec)) < 3 * spec.MAX_RECORD_TEXT + 10_000


def test_a_short_message_is_kept_whole():
    assert spec.clip_text("short") == "short"
    assert spec.clip_text("x" * spec.MAX_RECORD_TEXT) == "x" * spec.MAX_RECORD_TEXT


# ---- end to end ----

def test_a_session_with_a_131072_character_id_reports_that_file_and_runs_the_others(tmp_path):
    (tmp_path / "cases").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "cases" / "divergences.yaml").write_text((REPO / "cases" / "divergences.yaml").read_text())
    (tmp_path / "cases" / "long.yaml").write_text(
        f"lstm-conformance: 1\ncases:\n  - {{id: a{'x' * (LONG - 1)}, input_size: 3, hidden_size: 4}}\n")
    (tmp_path / "cases" / "good.yaml").write_text(
        "lstm-conformance: 1\ncases:\n  - {id: first, input_size: 3, hidden_size: 4}\n"
        "  - {id: second, input_size: 3, hidden_size: 4, return_state: true}\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "--impl", "torch", "--device", "cpu",
                           "-p", "no:cacheprovider", "--conformance-out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "2 passed, 1 error" in proc.stdout, proc.stdout[-3000:]
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (error,) = doc["collection_errors"]
    assert error["file"] == "cases/long.yaml" and "long.yaml:3: case 'axxx" in error["message"]
    assert f"the id is {LONG:,} characters long" in error["message"] and len(error["message"]) < 400
    # (known-divergence: torch counts two bias vectors, as the catalogue declares)
    assert {r["case"]: r["verdict"] for r in doc["runs"]} == {"first": "known-divergence", "second": "known-divergence"}
