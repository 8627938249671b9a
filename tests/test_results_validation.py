"""Results files from other machines are data to check, never trusted: a malformed, truncated or
tampered ``results.json`` is refused with a message naming the file and the place, and whatever
validation accepts, every reader (report, diff, terminal summary) can render.

The documents are real: a few default cases run on torch in a real worker. The property tests
mutate them at random places (Hypothesis, derandomized so CI is reproducible): 300 mutated
documents and 150 random JSON documents per run.
"""

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance import checks, diff, report, spec
from conformance.results import ResultsError, document, execute, load, validate

REPO = Path(__file__).resolve().parent.parent
PICK = {"returns.yaml": 2, "masking.yaml": 2, "bidirectional.yaml": 1}
CLAIMS = """
cases:
  - id: blog-says
    input_size: 3
    hidden_size: 4
    return_state: true
    claims:
      - source: a blog post <b>
        impl: torch
        says: "returns (output, h, c)"
        outputs: [[2, 4], [2, 4], [2, 4]]
"""


@pytest.fixture(scope="module")
def real_doc(pool, tmp_path_factory) -> dict:
    catalogue = spec.load_file(REPO / "cases" / "divergences.yaml").divergences
    claims = tmp_path_factory.mktemp("claims") / "claims.yaml"
    claims.write_text(CLAIMS)
    runs = []
    for path, n in [(REPO / "cases" / name, n) for name, n in PICK.items()] + [(claims, 1)]:
        f = spec.load_file(path)
        for case in f.cases[:n]:
            runs.append(execute(case, "torch", "cpu", pool, catalogue + f.divergences, root=REPO))
    doc = json.loads(json.dumps(document(runs, argv=["pytest", "cases"])))
    assert any(r["checks"].get("padding") for r in doc["runs"])
    assert any(r["checks"].get("claims") for r in doc["runs"])
    return doc


def rejected(doc) -> str:
    with pytest.raises(ResultsError) as info:
        validate(doc, "other-machine.json")
    return str(info.value)


def test_a_real_results_document_is_valid(real_doc):
    assert validate(copy.deepcopy(real_doc)) == real_doc


def test_the_schema_knows_exactly_the_suites_verdicts():
    schema = json.loads((REPO / "conformance" / "results.schema.json").read_text())
    assert tuple(schema["$defs"]["verdict"]["enum"]) == checks.VERDICTS


def test_a_wrong_type_is_refused_naming_the_file_the_run_and_the_field(real_doc):
    doc = copy.deepcopy(real_doc)
    doc["runs"][1]["native"]["param_count"] = "many"
    r = doc["runs"][1]
    message = rejected(doc)
    assert message.startswith("other-machine.json: runs[1]")
    assert f"({r['case']} on torch@cpu)" in message and "native.param_count" in message


def test_an_unknown_verdict_is_refused(real_doc):
    doc = copy.deepcopy(real_doc)
    doc["runs"][0]["checks"]["output_shape"]["verdict"] = "fine"
    assert "checks.output_shape.verdict" in rejected(doc)


def test_a_run_verdict_edited_to_hide_a_failing_check_is_refused(real_doc):
    doc = copy.deepcopy(real_doc)
    run = next(r for r in doc["runs"] if r["verdict"] == checks.KNOWN)
    run["checks"]["values"]["verdict"] = checks.DIVERGE
    assert "is not the worst of its checks ('diverge')" in rejected(doc)


def test_a_run_that_appears_twice_is_refused(real_doc):
    doc = copy.deepcopy(real_doc)
    doc["runs"].append(copy.deepcopy(doc["runs"][0]))
    assert "repeats runs[0]" in rejected(doc)


def test_a_summary_that_does_not_count_the_runs_is_refused(real_doc):
    doc = copy.deepcopy(real_doc)
    del doc["runs"][-1]
    assert "'summary' does not count the runs" in rejected(doc)


def test_another_schema_version_is_refused_by_number(real_doc):
    doc = copy.deepcopy(real_doc)
    doc["schema"] = 2
    assert "schema 2 is not supported" in rejected(doc)


@pytest.mark.parametrize("content,words", [
    (b'{"schema": 1, "runs": [', "not valid JSON"),
    (b"\xff\xfe{}", "cannot be read"),
    (b"[1, 2]", "not a results document"),
    (b"", "not valid JSON"),
])
def test_a_file_that_is_not_results_is_refused_naming_it(tmp_path, content, words):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ResultsError, match=words) as info:
        load(path)
    assert str(info.value).startswith(str(path))


# ---- property tests: whatever is accepted can be read by every reader ----

HOSTILE = ["<script>alert(1)</script>", "javascript:alert(1)", "\u202e\u0000", "@maintainers", "|", "`", "{{x}}"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.sampled_from(HOSTILE + list(checks.VERDICTS)) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, how, value):
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    else:
        parent[last] = value
    return doc


def read_everything(doc: dict, original: dict) -> None:
    """What the suite does with an accepted document: every reader, both ways round in a diff.
    (``explain`` is not one: it reads the records a session has just made, never a file.)"""
    pages = [report.render([("mutated.json", doc)]),
             report.render([("a.json", original), ("mutated.json", doc)], diff.compare(original, doc))]
    d = diff.compare(doc, original)
    diff.to_markdown(d), diff.to_text(d)
    pages.append(diff.to_html(d))
    assert not any(HOSTILE[0] in page for page in pages), "a string from the file reached the page as markup"
    report.text_summary(doc["runs"])


# No shrinking: the documents are large, and the draws printed on failure already say what was changed.
@settings(max_examples=300, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_mutated_document_is_refused_cleanly_or_read_by_every_reader(real_doc, data):
    doc = copy.deepcopy(real_doc)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = data.draw(st.sampled_from(paths))
        how = data.draw(st.sampled_from(["replace", "delete", "duplicate"]) if path else st.just("replace"))
        doc = _mutate(doc, path, how, data.draw(json_values))
    try:
        validate(doc, "mutated.json")
    except ResultsError as exc:
        assert str(exc).startswith("mutated.json: ")
        return
    read_everything(doc, real_doc)


@settings(max_examples=150, derandomize=True, deadline=None, database=None, phases=[Phase.generate])
@given(doc=st.fixed_dictionaries({"schema": st.just(1)}, optional={
    "runs": st.lists(st.dictionaries(st.sampled_from(["case", "file", "impl", "device", "verdict", "checks",
                                                      "native", "canonical", "line"]), json_values), max_size=3),
    "summary": json_values, "environment": json_values, "partial": json_values,
    "collection_errors": json_values, "unused_divergences": json_values}))
def test_a_random_document_is_refused_cleanly_or_read_by_every_reader(doc):
    try:
        validate(doc, "random.json")
    except ResultsError:
        return
    read_everything(doc, {"schema": 1, "runs": []})
