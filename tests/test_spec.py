"""The case language: loading, strict validation with located errors, matrix expansion."""

import textwrap
from pathlib import Path

import pytest

from conformance import spec


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def load_error(tmp_path, text) -> spec.SpecError:
    with pytest.raises(spec.SpecError) as info:
        spec.load_file(write(tmp_path, text))
    return info.value


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
    ("hidden_size", 0, "must be >= 1"),
    ("num_layers", -1, "must be >= 1"),
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
              hidden_size: [4, 0]
        """)
    assert err.field == "hidden_size" and err.line == 6 and "must be >= 1" in str(err)


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
    ({"lengths": "[3, 0]"}, "lengths", "a list of integers >= 1"),
    ({"lengths": "3"}, "lengths", "a list of integers >= 1"),
    ({"layout": "unbatched", "batch": "1", "lengths": "[2]"}, "lengths", "layout unbatched has none"),
    ({"go_backwards": "true", "bidirectional": "true"}, "go_backwards", "bidirectional already has a backward"),
    ({"initial_state": "ones"}, "initial_state", "none | zeros | random"),
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
