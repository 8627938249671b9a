"""The case language: loading, strict validation with located errors, matrix expansion."""

import os
import subprocess
from pathlib import Path

import pytest

from conformance import spec
from helpers import fields_error, load_error, project, run, write


def test_a_minimal_case_gets_every_default(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - id: tiny
            input_size: 3
            hidden_size: 4
        """)).cases
    assert case.config == spec.Config(input_size=3, hidden_size=4)
    assert case.config.num_layers == 1 and case.config.layout == "batch_major"


def test_misspelled_field_names_file_line_case_and_field(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: typo
            input_size: 3
            hiden_size: 4
        """)
    assert err.file.name == "cases.yaml" and err.line == 5
    assert err.case == "typo" and err.field == "hiden_size"
    message = str(err)
    assert "cases.yaml:5" in message and "'typo'" in message and "hiden_size" in message
    assert "did you mean 'hidden_size'" in message


@pytest.mark.parametrize("field,value,words", [
    ("hidden_size", -1, "must be >= 0"),
    ("num_layers", -1, "must be >= 0"),
    ("hidden_size", "4", "expected an integer"),
    ("hidden_size", True, "expected an integer"),
    ("bidirectional", 1, "expected true or false"),
    ("layout", "channels_last", "not allowed"),
])
def test_wrong_types_and_impossible_values_are_rejected(tmp_path, field, value, words):
    fields = {"input_size": 3, "hidden_size": 4, field: value}
    body = "\n".join(f"    {k}: {v!r}" if isinstance(v, str) else f"    {k}: {str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in fields.items())
    err = load_error(tmp_path, "cases:\n  - id: bad\n" + body + "\n")
    assert err.field == field and err.case == "bad" and words in str(err)
    assert err.line == 2 + list(fields).index(field) + 1


def test_proj_size_must_be_smaller_than_hidden_size(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: proj
            input_size: 3
            hidden_size: 4
            proj_size: 4
        """)
    assert err.field == "proj_size" and err.line == 6 and "smaller than hidden_size" in str(err)


def test_merge_mode_without_bidirectional_is_rejected(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - {id: m, input_size: 3, hidden_size: 4, merge_mode: sum}
        """)
    assert err.field == "merge_mode"


def test_unbatched_layout_requires_batch_one_and_defaults_to_it(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - {id: u, input_size: 3, hidden_size: 4, layout: unbatched}
        """)).cases
    assert case.config.batch == 1
    err = load_error(tmp_path, """
        cases:
          - {id: u, input_size: 3, hidden_size: 4, layout: unbatched, batch: 2}
        """)
    assert err.field == "batch"


def test_arbitrary_yaml_tags_are_refused(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: evil
            input_size: !!python/object/apply:os.system ["echo pwned"]
            hidden_size: 4
        """)
    assert "invalid YAML" in str(err) and err.line == 4


def test_duplicate_keys_are_an_error_not_a_silent_override(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: dup
            input_size: 3
            hidden_size: 4
            hidden_size: 8
        """)
    assert err.field == "hidden_size" and err.line == 6 and "duplicate" in str(err)


def test_matrix_expands_to_the_cartesian_product_with_readable_ids(tmp_path):
    cases = spec.load_file(write(tmp_path, """
        defaults: {input_size: 3, hidden_size: 4}
        cases:
          - id: flags
            matrix:
              return_sequences: [false, true]
              return_state: [false, true]
        """)).cases
    assert [c.id for c in cases] == [
        "flags.return_sequences-false.return_state-false", "flags.return_sequences-false.return_state-true",
        "flags.return_sequences-true.return_state-false", "flags.return_sequences-true.return_state-true"]
    assert [(c.config.return_sequences, c.config.return_state) for c in cases] == [
        (False, False), (False, True), (True, False), (True, True)]


def test_matrix_id_template_names_each_generated_case(tmp_path):
    cases = spec.load_file(write(tmp_path, """
        defaults: {input_size: 3}
        cases:
          - id: grid-h{hidden_size}-bi-{bidirectional}
            matrix: {hidden_size: [1, 8], bidirectional: [false, true]}
        """)).cases
    assert [c.id for c in cases] == ["grid-h1-bi-false", "grid-h1-bi-true", "grid-h8-bi-false", "grid-h8-bi-true"]


def test_matrix_values_are_validated_like_fields(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: m
            input_size: 3
            matrix:
              hidden_size: [4, -2]
        """)
    assert err.field == "hidden_size" and err.line == 6 and "must be >= 0" in str(err)


def test_matrix_generated_impossible_combination_names_the_generated_case(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: p
            input_size: 3
            proj_size: 2
            matrix:
              hidden_size: [4, 2]
        """)
    assert err.case == "p.hidden_size-2" and err.field == "proj_size"


def test_duplicate_generated_ids_are_rejected(tmp_path):
    err = load_error(tmp_path, """
        defaults: {input_size: 3}
        cases:
          - id: same
            matrix: {hidden_size: [1, 2]}
          - id: same.hidden_size-2
            hidden_size: 9
        """)
    assert err.case == "same.hidden_size-2" and "duplicate case id" in str(err)


def test_missing_required_size_is_reported(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: nosize
            input_size: 3
        """)
    assert err.field == "hidden_size" and "required" in str(err)


def test_claims_are_parsed_and_validated(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - id: c
            input_size: 3
            hidden_size: 4
            return_state: true
            claims:
              - source: an article
                impl: [keras-*]
                outputs: [[2, 4], [2, 4], [2, 4]]
                roles: [output, h, c]
                param_count: 128
                holds: true
        """)).cases
    (claim,) = case.claims
    assert claim.outputs == ((2, 4), (2, 4), (2, 4)) and claim.roles == ("output", "h", "c")
    assert claim.applies_to("keras-tensorflow") and not claim.applies_to("torch")
    err = load_error(tmp_path, """
        cases:
          - id: c
            input_size: 3
            hidden_size: 4
            claims:
              - source: an article
                impl: torch
                roles: [output, hidden]
        """)
    assert err.field == "claims.roles" and err.line == 9


def test_claim_without_anything_checkable_is_rejected(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: c
            input_size: 3
            hidden_size: 4
            claims:
              - {source: an article, impl: torch, says: "it works"}
        """)
    assert "at least one of outputs, roles, param_count" in str(err)


def test_divergences_are_validated_and_located(tmp_path):
    err = load_error(tmp_path, """
        divergences:
          - id: d
            impl: torch
            check: param_cout
            reason: because
        """)
    assert err.field == "check" and err.line == 5 and "divergence d" in str(err)
    err = load_error(tmp_path, """
        divergences:
          - id: d
            impl: torch
            check: param_count
            reason: because
            when: {biass: true}
        """)
    assert err.field == "biass" and "did you mean 'bias'" in str(err)


def test_a_crash_declaration_must_be_about_the_accepts_check(tmp_path):
    err = load_error(tmp_path, """
        divergences:
          - id: d
            impl: onnxruntime
            check: values
            crash: true
            reason: aborts
        """)
    assert err.field == "crash" and err.line == 6 and "accepts" in str(err) and "divergence d" in str(err)


def test_intermittent_and_crash_are_true_or_false(tmp_path):
    err = load_error(tmp_path, """
        divergences:
          - {id: d, impl: torch, check: values, reason: r, intermittent: sometimes}
        """)
    assert err.field == "intermittent" and "true or false" in str(err)


def test_a_divergence_applies_by_impl_check_and_config(tmp_path):
    loaded = spec.load_file(write(tmp_path, """
        defaults: {input_size: 3, hidden_size: 4}
        cases:
          - id: b
            matrix: {bias: [true, false]}
        divergences:
          - {id: d, impl: "tor*", check: param_count, reason: two biases, when: {bias: true}}
        """))
    (d,) = loaded.divergences
    with_bias, without = loaded.cases
    assert d.applies(with_bias, "torch", "cpu", "param_count")
    assert not d.applies(without, "torch", "cpu", "param_count")
    assert not d.applies(with_bias, "torch", "cpu", "output_shape")
    assert not d.applies(with_bias, "keras-tensorflow", "cpu", "param_count")


def test_the_default_case_set_loads(tmp_path):
    files = sorted(Path(__file__).resolve().parent.parent.joinpath("cases").glob("*.yaml"))
    loaded = [spec.load_file(f) for f in files]
    assert sum(len(f.cases) for f in loaded) > 50
    assert sum(len(c.claims) for f in loaded for c in f.cases) > 10


@pytest.mark.parametrize("fields, field, words", [
    ({"lengths": "[3]"}, "lengths", "lengths has 1 entries but batch is 2"),
    ({"lengths": "[3, 9]"}, "lengths", "longer than timesteps"),
    ({"lengths": "[3, -1]"}, "lengths", "a list of integers >= 0"),
    ({"lengths": "3"}, "lengths", "a list of integers >= 0"),
    ({"batch": "-1"}, "batch", "must be >= 0"),
    ({"mask": "[[1, 0, 1, 1]]"}, "mask", "mask has 1 rows but batch is 2"),
    ({"mask": "[[1, 0, 1], [1, 1, 1]]"}, "mask", "mask row 0 has 3 entries but timesteps is 4"),
    ({"mask": "[[1, 0, 2, 1], [1, 1, 1, 1]]"}, "mask", "a list of rows (one per sequence) of 0/1"),
    ({"mask": "[1, 0, 1, 1]"}, "mask", "e.g. [[0, 1, 1], [1, 1, 0]]"),
    ({"mask": "[[1, 1, 0, 0], [1, 1, 1, 1]]"}, "mask", "this mask is right padding: write it as lengths: [2, 4]"),
    ({"mask": "[[0, 1, 1, 1], [1, 1, 1, 1]]", "lengths": "[4, 4]"}, "mask", "give lengths or mask, not both"),
    ({"zero_output_for_mask": "true"}, "zero_output_for_mask", "set lengths or mask too"),
    ({"dropout": "1.5"}, "dropout", "a number from 0 to 1"),
    ({"layer_dropout": "-0.1"}, "layer_dropout", "a number from 0 to 1"),
    ({"training": "1"}, "training", "expected true or false"),
    ({"feed_input_size": "three"}, "feed_input_size", "expected an integer"),
    ({"feed_state_batch": "1"}, "feed_state_batch", "set initial_state too"),
    ({"feed_state_hidden": "5"}, "feed_state_hidden", "set initial_state too"),
    ({"feed_state_layers": "-1", "initial_state": "ones"}, "feed_state_layers", "must be >= 0"),
    ({"feed_state_only": "h", "initial_state": "ones"}, "feed_state_only", "set feed_state_batch, feed_state_hidden"),
    ({"feed_state_only": "both_of_them"}, "feed_state_only", "both | h | c"),
    ({"layout": "unbatched", "batch": "1", "initial_state": "ones", "feed_state_batch": "2"}, "feed_state_batch",
     "needs batch_major or time_major"),
    ({"num_layers": "-1"}, "num_layers", "must be >= 0"),
    ({"layout": "unbatched", "batch": "1", "lengths": "[2]"}, "lengths", "layout unbatched has none"),
    ({"initial_state": "twos"}, "initial_state", "none | zeros | ones | random, or a number"),
    ({"initial_state": ".inf"}, "initial_state", "or a number from -1e+06 to 1e+06"),
    ({"input": "ones"}, "input", "random | arange, or a number"),
    ({"kernel_init": "[1, 2]"}, "kernel_init", "random, or a number"),
    ({"unit_forget_bias": "true", "bias": "false"}, "unit_forget_bias", "needs bias: true"),
    ({"dtype": "float8"}, "dtype", "float32 | float64 | float16 | bfloat16"),
])
def test_lengths_initial_states_and_direction_are_validated(tmp_path, fields, field, words):
    body = "".join(f"\n            {k}: {v}" for k, v in fields.items())
    err = load_error(tmp_path, f"""
        cases:
          - id: bad
            input_size: 3
            hidden_size: 4
            timesteps: 4{body}
        """)
    assert err.field == field and words in str(err), str(err)
    assert "case 'bad'" in str(err)


@pytest.mark.parametrize("claim, field, words", [
    ("{values: {output: [[1, 2], [3]]}}", "claims.values", "rectangular nested list of finite numbers"),
    ("{values: {layer0/sideways/h: [1]}}", "claims.values", "not a canonical tensor"),
    ("{values: {output: [.nan]}}", "claims.values", "finite numbers"),
    ("{roles: [output], atol: 1e-3}", "claims.atol", "this claim states none of them"),
    ("{values: {output: [1]}, rtol: -1}", "claims.rtol", "a finite number >= 0"),
    ("{dtypes: [float8]}", "claims.dtypes", "not a dtype this suite knows"),
    ("{paths: [1, 2]}", "claims.paths", "a list of strings"),
    ("{params: {w: [3, x]}}", "claims.params", "parameter name to its shape"),
    ("{raises: {type: 'Runtime Error'}}", "claims.raises", "not an exception class name"),
    ("{raises: {match: '(unclosed'}}", "claims.raises", "not a regular expression"),
    ("{raises: {kind: RuntimeError}}", "claims.raises", "type (an exception class name"),
    ("{says: nothing}", "claims", "at least one of outputs, roles, param_count, dtypes, paths, params, values, same_calls, different_calls, raises"),
])
def test_each_claim_statement_is_validated_with_its_field_named(tmp_path, claim, field, words):
    err = load_error(tmp_path, f"""
        cases:
          - id: bad
            input_size: 3
            hidden_size: 4
            claims:
              - {{source: doc, impl: torch, {claim[1:-1]}}}
        """)
    assert err.field == field and words in str(err), str(err)
    assert "case 'bad'" in str(err)


def test_lengths_in_a_matrix_become_tuples_and_readable_ids(tmp_path):
    cases = spec.load_file(write(tmp_path, """
        defaults: {input_size: 3, hidden_size: 4, timesteps: 5}
        cases:
          - id: masked
            matrix: {lengths: [[5, 2], [1, 1]]}
        """)).cases
    assert [(c.id, c.config.lengths) for c in cases] == [("masked.lengths-5_2", (5, 2)), ("masked.lengths-1_1", (1, 1))]


def test_a_case_tolerance_is_read_and_checked(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - {id: loose, input_size: 3, hidden_size: 4, tolerance: {atol: 1e-4, rtol: 0.01}}
        """)).cases
    assert case.tolerance == {"atol": 1e-4, "rtol": 0.01}
    err = load_error(tmp_path, """
        cases:
          - {id: bad, input_size: 3, hidden_size: 4, tolerance: {atoll: 1}}
        """)
    assert err.field == "tolerance.atoll" and "did you mean 'tolerance.atol'" in str(err)
    err = load_error(tmp_path, """
        cases:
          - {id: bad, input_size: 3, hidden_size: 4, tolerance: {atol: -1}}
        """)
    assert err.field == "tolerance.atol" and ">= 0" in str(err)


def test_a_divergence_can_be_scoped_to_framework_releases(tmp_path):
    loaded = spec.load_file(write(tmp_path, """
        cases:
          - {id: c, input_size: 3, hidden_size: 4}
        divergences:
          - {id: d, impl: keras-jax, check: values, reason: since 3.12, versions: {keras: ">=3.12"}}
        """))
    (d,), (case,) = loaded.divergences, loaded.cases
    assert d.applies(case, "keras-jax", "cpu", "values", {"keras": "3.15.1", "jax": "0.10.2"})
    assert not d.applies(case, "keras-jax", "cpu", "values", {"keras": "3.11.3"})
    assert not d.applies(case, "keras-jax", "cpu", "values", {})             # version unknown: not claimed
    assert d.to_dict()["versions"] == {"keras": ">=3.12"}


def test_a_bad_version_specifier_names_the_package(tmp_path):
    err = load_error(tmp_path, """
        divergences:
          - {id: d, impl: torch, check: values, reason: r, versions: {torch: "newer than 2"}}
        """)
    assert err.field == "versions.torch" and "not a version specifier" in str(err)


# --- Hostile and malformed files (issue 6): only ever a located SpecError ---------------------


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "cases.yaml"
    p.write_bytes(data)
    return p


def bytes_error(tmp_path, data: bytes) -> spec.SpecError:
    with pytest.raises(spec.SpecError) as info:
        spec.load_file(write_bytes(tmp_path, data))
    return info.value


def test_a_matrix_over_the_limit_names_its_size_the_limit_and_max_cases(tmp_path):
    err = load_error(tmp_path, """
        defaults: {input_size: 3, hidden_size: 4}
        cases:
          - id: big
            matrix:
              seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
              timesteps: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
              batch: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        """)
    assert err.case == "big" and err.field == "matrix" and err.line == 5
    assert "1,100 cases" in str(err) and "1,000" in str(err) and "max_cases: 1100" in str(err)
    assert spec.MAX_MATRIX == 1000


def test_max_cases_allows_a_larger_matrix(tmp_path):
    cases = spec.load_file(write(tmp_path, """
        defaults: {input_size: 3, hidden_size: 4}
        cases:
          - id: big
            max_cases: 1100
            matrix:
              seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
              timesteps: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
              batch: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        """)).cases
    assert len(cases) == 1100


def test_a_huge_matrix_is_refused_before_it_is_expanded(tmp_path):
    axis = "[" + ", ".join(str(i) for i in range(1, 101)) + "]"
    axes = "".join(f"\n      {k}: {axis}" for k in ("seed", "timesteps", "batch", "hidden_size", "input_size"))
    err = load_error(tmp_path, "cases:\n  - id: bomb\n    matrix:" + axes + "\n")
    assert err.field == "matrix" and "10,000,000,000 cases" in str(err)


def test_a_file_is_limited_in_cases_even_when_each_matrix_is_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(spec, "MAX_FILE_CASES", 10)
    err = load_error(tmp_path, """
        defaults: {input_size: 3, hidden_size: 4}
        cases:
          - {id: one, matrix: {seed: [0, 1, 2, 3, 4, 5]}}
          - {id: two, matrix: {seed: [0, 1, 2, 3, 4, 5]}}
        """)
    assert err.case == "two" and err.field == "matrix" and "split the file" in str(err)


@pytest.mark.parametrize("value", ["0", "-1", "true", "'10'", "1.5", "100001"])
def test_max_cases_must_be_a_positive_integer(tmp_path, value):
    err = load_error(tmp_path, f"""
        cases:
          - id: m
            input_size: 3
            hidden_size: 4
            max_cases: {value}
        """)
    assert err.field == "max_cases" and err.line == 6 and err.case == "m"


def test_an_alias_bomb_is_refused_quickly_with_its_line(tmp_path):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    err = load_error(tmp_path, "\n".join(lines) + "\ncases: []\n")   # 9**10 nodes, expanded
    assert "more than 100,000 nodes" in str(err) and err.line == 6


def test_anchors_aliases_and_merge_keys_still_work(tmp_path):
    cases = spec.load_file(write(tmp_path, """
        defaults: &sizes {input_size: 3, hidden_size: 4}
        cases:
          - {<<: *sizes, id: merged, batch: 1}
          - id: aliased
            claims:
              - &claim {source: s, impl: torch, param_count: 1}
              - *claim
        """)).cases
    assert [c.id for c in cases] == ["merged", "aliased"]
    assert cases[0].config.batch == 1 and len(cases[1].claims) == 2


@pytest.mark.parametrize("text", ["&a [*a]\n", "cases: &a [*a]\n", "&a {cases: *a}\n",
                                  "cases:\n  - &c {id: x, input_size: 3, hidden_size: 4, claims: [*c]}\n"])
def test_a_recursive_alias_is_refused(tmp_path, text):
    err = load_error(tmp_path, text)
    assert "recursive" in str(err) and err.line is not None


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    err = load_error(tmp_path, "cases: " + "[" * 2000 + "]" * 2000 + "\n")
    assert "nested more than 50 levels" in str(err) and err.line == 1


def test_deep_nesting_through_aliases_is_refused(tmp_path):
    err = load_error(tmp_path, "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n")
    assert "nested more than 50 levels" in str(err) and err.line == 2


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    err = bytes_error(tmp_path, b"# " + b"x" * spec.MAX_FILE_BYTES + b"\ncases: []\n")
    assert "larger than 1,048,576 bytes" in str(err) and "cases.yaml" in str(err)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "cases: []\n", "cases: []\ndivergences: []\n",
                                  "description: nothing yet\n"])
def test_a_file_without_cases_or_divergences_is_refused(tmp_path, text):
    err = load_error(tmp_path, text)
    assert "holds no cases and no divergences" in str(err) and err.line == 1


def test_a_second_yaml_document_is_refused_at_its_line(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - {id: a, input_size: 3, hidden_size: 4}
        ---
        cases: []
        """)
    assert "single document" in str(err) and err.line == 4


@pytest.mark.parametrize("text, line", [
    ("1: x\n", 1),
    ("null: x\n", 1),
    ("cases:\n  - {id: a, input_size: 3, hidden_size: 4, yes: 1}\n", 2),
    ("cases:\n  - [a]: b\n", 2),              # unhashable keys: found by the fuzzer (TypeError)
    ("cases:\n  - {a: 1}: b\n", 2),
    ("cases:\n  - ? [a]\n    : b\n", 2),
])
def test_non_string_keys_are_refused_with_their_line(tmp_path, text, line):
    err = load_error(tmp_path, text)
    assert "keys must be strings" in str(err) and err.line == line


@pytest.mark.parametrize("value, words", [
    (".inf", "got inf (float)"),
    (".nan", "got nan (float)"),
    ("2024-01-01", "(date)"),
    ("!!binary aGVsbG8=", "(binary)"),
    ("!!set {a, b}", "(set)"),
    ("[4]", "(list)"),
    ("{a: 4}", "(mapping)"),
])
def test_odd_yaml_types_for_a_size_are_refused_by_name(tmp_path, value, words):
    err = load_error(tmp_path, f"""
        cases:
          - id: odd
            hidden_size: 4
            input_size: {value}
        """)
    assert err.field == "input_size" and err.line == 5 and err.case == "odd" and words in str(err)


@pytest.mark.parametrize("field, value, most", [
    ("hidden_size", "10" + "0" * 100, 4096),
    ("input_size", "4097", 4096),
    ("batch", "4097", 4096),
    ("timesteps", "10001", 10000),
    ("num_layers", "65", 64),
    ("seed", "4294967296", 4294967295),
])
def test_sizes_have_sane_maxima(tmp_path, field, value, most):
    body = {"input_size": "3", "hidden_size": "4", field: value}
    text = "cases:\n  - id: big\n" + "".join(f"    {k}: {v}\n" for k, v in body.items())
    err = load_error(tmp_path, text)
    assert err.field == field and f"is too large; at most {most}" in str(err)


def test_a_huge_hex_integer_is_reported_without_printing_it(tmp_path):
    # Found by the fuzzer: Python reads 0x... of any length, but refuses to print an int of more than
    # 4300 digits, so the error message itself raised ValueError.
    err = load_error(tmp_path, "cases:\n  - {id: h, input_size: 3, hidden_size: 4, lengths: [0x" + "f" * 5000 + "]}\n")
    assert err.field == "lengths" and "an integer of 20000 bits is too large" in str(err)


@pytest.mark.parametrize("value", ["!!int x", "!!float x", "!!bool maybe", "!!timestamp 2024-13-45", "1" + "0" * 5000])
def test_a_value_yaml_cannot_build_is_a_located_error(tmp_path, value):
    # Found by the fuzzer: PyYAML's constructors raise ValueError / KeyError for these, not YAMLError.
    err = load_error(tmp_path, f"""
        cases:
          - id: t
            input_size: 3
            hidden_size: {value}
        """)
    assert "invalid YAML: cannot read" in str(err) and err.line == 5


def test_python_tags_are_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    err = load_error(tmp_path, f"""
        cases:
          - id: evil
            input_size: 3
            hidden_size: !!python/object/apply:os.system ["touch {marker}"]
        """)
    assert "cases.yaml:5" in str(err) and "could not determine a constructor" in str(err)
    assert not marker.exists()


@pytest.mark.parametrize("text, field, line", [
    ("cases:\n  - {id: 7, input_size: 3, hidden_size: 4}\n", "id", 2),
    ("cases:\n  - {id: a, input_size: 3, hidden_size: 4, description: [x]}\n", "description", 2),
    ("description: 3\ncases:\n  - {id: a, input_size: 3, hidden_size: 4}\n", "description", 1),
    ("cases:\n  - {id: a, input_size: 3, hidden_size: 4, claims: [{source: 1, impl: t, param_count: 1}]}\n",
     "source", 2),
    ("divergences:\n  - {id: d, impl: [1], check: values, reason: r}\n", "impl", 2),
    ("divergences:\n  - {id: d, impl: t, check: values, reason: 2024-01-01}\n", "reason", 2),
    ("divergences:\n  - {id: d, impl: t, check: values, reason: r, versions: {torch: 2}}\n", "versions.torch", 2),
    ("divergences:\n  - {id: d, impl: t, check: values, reason: r, versions: {torch: null}}\n", "versions.torch", 2),
])
def test_non_string_texts_are_refused(tmp_path, text, field, line):
    err = load_error(tmp_path, text)
    assert err.field == field and err.line == line


@pytest.mark.parametrize("value", ["1" + "0" * 400, ".nan", ".inf"])
def test_a_tolerance_must_be_a_finite_number(tmp_path, value):
    err = load_error(tmp_path, f"cases:\n  - {{id: t, input_size: 3, hidden_size: 4, tolerance: {{atol: {value}}}}}\n")
    assert err.field == "tolerance.atol" and "finite number" in str(err)


@pytest.mark.parametrize("data, line, offset", [
    (b"cases:\n  - {id: a\xff\xfe, input_size: 3, hidden_size: 4}\n", 2, 17),
    ("cases:\n  - {id: caf\u00e9, input_size: 3, hidden_size: 4}\n".encode("latin-1"), 2, 19),
])
def test_non_utf8_bytes_name_the_file_line_and_offset(tmp_path, data, line, offset):
    err = bytes_error(tmp_path, data)
    assert "cases.yaml" in str(err) and err.line == line
    assert "not UTF-8" in str(err) and f"byte offset {offset}" in str(err)


def test_a_utf8_bom_is_allowed(tmp_path):
    path = write_bytes(tmp_path, b"\xef\xbb\xbfcases:\n  - {id: a, input_size: 3, hidden_size: 4}\n")
    assert [c.id for c in spec.load_file(path).cases] == ["a"]
    assert spec.is_case_file(path)


def test_is_case_file_leaves_bad_bytes_to_the_loader(tmp_path):
    path = write_bytes(tmp_path, b"cases:\n  - {id: \xff}\n")
    assert spec.is_case_file(path)     # was UnicodeDecodeError; collected, load_file reports it


def test_a_control_character_is_refused_at_its_line(tmp_path):
    err = bytes_error(tmp_path, b"cases:\n  - {id: a\x00, input_size: 3, hidden_size: 4}\n")
    assert "U+0000" in str(err) and err.line == 2


def test_an_id_template_must_make_valid_ids(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - {id: "a {seed}", input_size: 3, hidden_size: 4, matrix: {seed: [1]}}
        """)
    assert err.field == "id" and err.case == "a 1" and "ids may hold" in str(err)


def test_divergence_conditions_are_normalized_like_case_values(tmp_path):
    loaded = spec.load_file(write(tmp_path, """
        cases:
          - {id: c, input_size: 3, hidden_size: 4, timesteps: 5, lengths: [5, 2]}
        divergences:
          - {id: d, impl: torch, check: padding, reason: r, when: {lengths: [[5, 2]]}}
        """))
    assert loaded.divergences[0].applies(loaded.cases[0], "torch", "cpu", "padding")


def test_a_duplicate_divergence_id_names_the_second_and_the_first_line(tmp_path):
    err = load_error(tmp_path, """
        divergences:
          - {id: d, impl: torch, check: values, reason: r}
          - {id: d, impl: torch, check: values, reason: r}
        """)
    assert err.line == 4 and "first defined at line 3" in str(err)


def test_check_unique_ids_names_both_definitions(tmp_path):
    one = write(tmp_path, "cases:\n  - {id: same, input_size: 3, hidden_size: 4}\n", "one.yaml")
    two = write(tmp_path, "cases:\n  - {id: other, input_size: 3, hidden_size: 4}\n"
                          "  - {id: same, input_size: 3, hidden_size: 4}\n", "two.yaml")
    with pytest.raises(spec.SpecError) as info:
        spec.check_unique_ids([spec.load_file(one), spec.load_file(two)])
    err = info.value
    assert err.file == str(two) and err.line == 3 and err.case == "same" and err.field == "id"
    assert f"{one}:2" in str(err)


def test_check_unique_ids_accepts_distinct_ids(tmp_path):
    files = sorted(Path(__file__).resolve().parent.parent.joinpath("cases").glob("*.yaml"))
    spec.check_unique_ids([spec.load_file(f) for f in files])


# ---- only regular files are read: a named pipe or a device is refused at once ----

CONFORMANCE = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "conformance"


def within(seconds: float, fn):
    """``fn()``'s result or exception, failing the test (instead of hanging it) if it has not
    returned within ``seconds``."""
    import threading

    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_a_named_pipe_as_a_case_file_is_a_located_error_at_once(tmp_path):
    os.mkfifo(tmp_path / "d.yaml")
    with pytest.raises(spec.SpecError) as info:
        within(10, lambda: spec.load_file(tmp_path / "d.yaml"))
    assert info.value.file == tmp_path / "d.yaml"
    assert "cannot read file: a named pipe (FIFO), not a regular file" in str(info.value)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_a_case_file_is_a_located_error_at_once(device):
    with pytest.raises(spec.SpecError) as info:
        within(10, lambda: spec.load_file(Path(device)))
    assert str(info.value) == f"{device}: cannot read file: a character device, not a regular file"


def test_a_named_pipe_is_neither_marked_nor_a_case_file_so_it_is_not_collected(tmp_path):
    os.mkfifo(tmp_path / "p.yaml")
    assert within(10, lambda: (spec._head(tmp_path / "p.yaml"), spec.is_marked(tmp_path / "p.yaml"),
                               spec.is_case_file(tmp_path / "p.yaml"))) == ("", False, False)


def test_a_symlink_to_a_case_file_loads_and_is_collected(tmp_path):
    target = write(tmp_path, "lstm-conformance: 1\ncases:\n  - {id: a, input_size: 3, hidden_size: 4}\n",
                   name="real.yml")
    (tmp_path / "link.yaml").symlink_to(target)
    assert spec.is_marked(tmp_path / "link.yaml")
    assert [c.id for c in spec.load_file(tmp_path / "link.yaml").cases] == ["a"]


@pytest.mark.parametrize("what", ["d.yaml", "cases"])
def test_validate_names_a_named_pipe_as_an_error_and_ends(tmp_path, what):
    (tmp_path / "cases").mkdir()
    os.mkfifo(tmp_path / "d.yaml")
    os.mkfifo(tmp_path / "cases" / "p.yaml")
    done = subprocess.run([str(CONFORMANCE), "validate", what], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "cannot read file: a named pipe (FIFO), not a regular file" in done.stdout, done.stdout


@pytest.mark.parametrize("option", [[], ["--divergences", "d.yaml"]])
def test_a_session_with_a_named_pipe_among_its_cases_or_as_its_catalogue_ends(tmp_path, option):
    root = project(tmp_path, one="""
        defaults: {input_size: 3, hidden_size: 4}
        cases:
          - id: one
        """)
    os.mkfifo(root / "cases" / "p.yaml")
    os.mkfifo(root / "d.yaml")
    done = run(root, "--collect-only", "-q", *option, timeout=120)
    if option:
        assert "--divergences: " in done.stdout and "d.yaml: cannot read file: a named pipe (FIFO)" in done.stdout
    else:
        assert done.returncode == 0 and "cases/one.yaml::one[torch-cpu]" in done.stdout
        assert "p.yaml" not in done.stdout, done.stdout


@pytest.mark.parametrize("native, field, words", [
    ("[batch_input_shape]", "native", "a mapping of implementation id (or glob) to a mapping of keyword to value"),
    ("{tf-keras: []}", "native.tf-keras", "a mapping of 1 to 32 keywords"),
    ("{tf-keras: {2x: 1}}", "native.tf-keras", "not a keyword argument name"),
    ("{tf-keras: {shape: {a: 1}}}", "native.tf-keras.shape", "a list of them"),
])
def test_native_keywords_are_validated_with_their_place_named(tmp_path, native, field, words):
    err = load_error(tmp_path, f"""
        cases:
          - id: bad
            input_size: 3
            hidden_size: 4
            native: {native}
        """)
    assert err.field == field and words in str(err), str(err)


def test_native_keywords_are_neither_a_matrix_axis_nor_a_when_condition(tmp_path):
    err = load_error(tmp_path, """
        cases:
          - id: bad
            input_size: 3
            hidden_size: 4
            matrix: {native: [{torch: {dropout: 0.0}}]}
        """)
    assert err.field == "matrix.native" and "cannot be a matrix axis" in str(err)


def test_native_keywords_travel_as_a_mapping_and_come_back_frozen(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - id: ok
            input_size: 3
            hidden_size: 4
            native: {"keras-*": {batch_input_shape: [8, 2, 10]}, keras-jax: {unroll: true}}
        """)).cases
    d = case.config.to_dict()
    assert d["native"] == {"keras-*": {"batch_input_shape": [8, 2, 10]}, "keras-jax": {"unroll": True}}
    again = spec.Config(**d)
    assert again == case.config and hash(again) == hash(case.config)
    assert again.native_for("keras-jax") == {"batch_input_shape": [8, 2, 10], "unroll": True}
    assert again.native_for("torch") == {}


# ---- hidden sizes of their own per layer (hidden_size: [5, 3, 6]) ----

def test_a_hidden_size_list_gives_each_layer_its_size_and_the_stack_its_depth(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - id: sizes
            input_size: 3
            hidden_size: [5, 3, 6]
        """)).cases
    assert case.config.hidden_size == (5, 3, 6) and case.config.num_layers == 3
    assert [case.config.layer_hidden(l) for l in range(3)] == [5, 3, 6]


def test_a_hidden_size_list_of_one_size_is_that_size(tmp_path):
    (case,) = spec.load_file(write(tmp_path, """
        cases:
          - id: same
            input_size: 3
            hidden_size: [4, 4]
        """)).cases
    assert case.config.hidden_size == 4 and case.config.num_layers == 2


@pytest.mark.parametrize("fields, words", [
    ({"hidden_size": "[5, 3]", "num_layers": "3"}, "lists 2 sizes (one per layer) but num_layers is 3"),
    ({"hidden_size": "[5, 3]", "proj_size": "2"}, "one hidden_size for every layer"),
    ({"hidden_size": "[5, [3]]"}, "a list in the list"),
    ({"hidden_size": "[5, -3]"}, "must be >= 0"),
    ({"hidden_size": "[]"}, "1 to 64 values"),
])
def test_a_hidden_size_list_is_validated(tmp_path, fields, words):
    body = "".join(f"\n            {k}: {v}" for k, v in fields.items())
    err = load_error(tmp_path, f"""
        cases:
          - id: bad
            input_size: 3{body}
        """)
    assert err.field in ("hidden_size", "proj_size") and words in str(err), str(err)


@pytest.mark.parametrize("fields, words", [
    ({"stacked_cells": "true"}, "set cell_api too"),
    ({"stacked_cells": "true", "cell_api": "true", "bidirectional": "true"}, "runs a whole stack per direction"),
])
def test_stacked_cells_needs_the_cell_api_and_one_direction(tmp_path, fields, words):
    err = fields_error(tmp_path, fields)
    assert err.field == "stacked_cells" and words in str(err), str(err)


@pytest.mark.parametrize("claim, words", [
    ("{warns: UserWarning}", "a mapping with type (a warning category, e.g. UserWarning)"),
    ("{warns: {type: 'User Warning'}}", "is not a warning category"),
    ("{warns: {match: '(unclosed'}}", "not a regular expression"),
])
def test_a_warns_claim_is_validated_with_its_field_named(tmp_path, claim, words):
    err = fields_error(tmp_path, {"claims": f"[{{source: doc, impl: torch, {claim[1:-1]}}}]"})
    assert err.field == "claims.warns" and words in str(err), str(err)


@pytest.mark.parametrize("fields, words", [
    ({"batch": "6", "batch_shape": "[6]"}, "2 to 4 leading batch axes"),
    ({"batch": "6", "batch_shape": "[2, 2]"}, "holds 4 sequences but batch is 6"),
    ({"batch": "6", "batch_shape": "[2, 3]", "layout": "time_major"}, "layout must be batch_major"),
    ({"batch": "6", "batch_shape": "[2, -3]"}, "a list of integers >= 0"),
])
def test_batch_shape_is_validated(tmp_path, fields, words):
    err = fields_error(tmp_path, fields)
    assert err.field == "batch_shape" and words in str(err), str(err)


# ---- `when` conditions: properties of a whole configuration ----
WHEN = """
    cases:
      - id: {id}
        input_size: 3
        hidden_size: 4
{fields}
    divergences:
      - id: d
        impl: torch
        check: values
        reason: r
        when: {when}
    """


def _applies(tmp_path, fields: str, when: str) -> bool:
    loaded = spec.load_file(write(tmp_path, WHEN.format(id="c", fields=fields, when=when)))
    (case,), (div,) = loaded.cases, loaded.divergences
    return div.applies(case, "torch", "cpu", "values")


@pytest.mark.parametrize("fields, when, applies", [
    ("        lengths: [3, 0]", "{zero_length: true}", True),
    ("        lengths: [3, 1]", "{zero_length: true}", False),
    ("        mask: [[0, 0, 0], [0, 1, 1]]", "{zero_length: true, masked: true}", True),
    ("        calls: 3\n        resets: [3]", "{reset: true, stateful: true}", True),
    ("        batch: 4\n        batch_shape: [2, 2]", "{batch_axes: [2, 3]}", True),
    ("        initial_state: zeros", "{nonzero_initial_state: true}", False),
    ("        initial_state: 0.5", "{nonzero_initial_state: true}", True),
    ("        batch: 1\n        initial_state: ones\n        feed_state_batch: 2",
     "{state_batch_broadcast: input, state_batch: larger}", True),
    ("        initial_state: ones\n        feed_state_batch: 1", "{state_batch_broadcast: input}", False),
])
def test_a_when_condition_is_a_property_of_the_whole_configuration(tmp_path, fields, when, applies):
    assert _applies(tmp_path, fields, when) is applies


def test_a_when_condition_with_a_value_it_cannot_take_is_refused_with_the_allowed_ones(tmp_path):
    err = load_error(tmp_path, WHEN.format(id="c", fields="", when="{state_batch: bigger}"))
    assert err.field == "when.state_batch" and "as_input | larger | smaller" in str(err), str(err)


def test_an_unknown_when_key_names_the_conditions_too(tmp_path):
    err = load_error(tmp_path, WHEN.format(id="c", fields="", when="{zero_lenght: true}"))
    assert "zero_length" in str(err), str(err)
