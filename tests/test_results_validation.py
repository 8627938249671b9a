"""Results files from other machines are data to check, never trusted: a malformed, truncated or
tampered ``results.json`` is refused with a message naming the file and the place, and whatever
validation accepts, every reader (report, diff, terminal summary) can render.

The documents are real: a few default cases run on torch in a real worker (``real_results`` in
conftest.py). The property tests mutate them at random places (Hypothesis, derandomized so CI is
reproducible): 300 mutated documents, 150 mutated files (NaN, Infinity, numbers past a float or past
4,300 digits, deep nesting, lone surrogates spliced into the JSON text), 100 documents with a null
in a nullable field or a separator in an implementation or device name, and 150 random JSON
documents per run; and every nullable field of the schema is set to null once.
"""

import copy
import json
import tempfile
from pathlib import Path

import pytest
from conftest import report_data
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from conformance import checks, diff, report
from conformance.results import ResultsError, load, summarize, validate

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "conformance" / "results.schema.json").read_text())


@pytest.fixture(scope="module")
def real_doc(real_results) -> dict:
    return real_results


def rejected(doc) -> str:
    with pytest.raises(ResultsError) as info:
        validate(doc, "other-machine.json")
    return str(info.value)


def test_a_real_results_document_is_valid(real_doc):
    assert validate(copy.deepcopy(real_doc)) == real_doc


def test_the_real_document_draws_a_parameter_chart(real_doc):
    """(so that the property tests below reach the chart's arithmetic)"""
    assert report.build([("real.json", real_doc)])["charts"]


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

HOSTILE = ["<script>alert(1)</script>", "javascript:alert(1)", "\u202e\u0000", "@maintainers", "|", "`", "{{x}}",
           "NaN", "Infinity", "-Infinity", "\ud800", "\x1b[2J"]


def nested(depth: int, leaf=0):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# numbers at and past what JSON, floats, JavaScript and Python's int/str conversion take
EDGE_NUMBERS = [2**53, 2**53 + 1, 2**63, 2**64 + 1, -2**63 - 1, 1e308, float("inf"), float("-inf"), float("nan"), -0.0]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.sampled_from(EDGE_NUMBERS)
    | st.sampled_from([4299, 4300, 5000]).map(lambda exponent: 10**exponent)      # 4,300 digits and more
    | st.sampled_from(HOSTILE + list(checks.VERDICTS)) | st.text(max_size=20)
    | st.sampled_from([60, 64, 65, 200]).map(nested),
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
    """What the suite does with an accepted document: every reader, both ways round in a diff; each
    page, text and summary is UTF-8 text (what a file or a terminal takes), and the report's data is
    strict JSON (what the page's JSON.parse takes). (``explain`` is not one: it reads the records a
    session has just made, never a file.)"""
    pages = [report.render([("mutated.json", doc)]),
             report.render([("a.json", original), ("mutated.json", doc)], diff.compare(original, doc))]
    for page in pages:
        report_data(page)
    d = diff.compare(doc, original)
    texts = [diff.to_markdown(d), diff.to_text(d), *report.text_summary(doc["runs"])]
    pages.append(diff.to_html(d))
    assert not any(HOSTILE[0] in page for page in pages), "a string from the file reached the page as markup"
    for text in pages + texts:
        text.encode("utf-8")


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
        event("refused")
        return
    event("read")
    read_everything(doc, real_doc)


# ---- hostile files: what only a file can hold, spliced into the JSON text, read with load() ----

SPLICE = "\u0000splice\u0000"
LITERALS = ["NaN", "Infinity", "-Infinity", "-NaN", "1e400", "-1e400", "1E+309", "9" * 4301, "-" + "1" * 5000,
            str(2**64), str(-2**63 - 1), str(2**53 + 1), "[" * 10_000 + "]" * 10_000, "{\"a\":" * 10_000 + "0"
            + "}" * 10_000, nested(65).__repr__().replace(" ", ""), '"\\ud800"', '"x\\udc00"', '"\\ud83d\\ude00"',
            '"\\u0000\\u001b[2J\\u202e"', "null", "[]", "{}"]


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@settings(max_examples=150, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_file_with_hostile_json_spliced_in_is_refused_cleanly_or_read_by_every_reader(real_doc, scratch, data):
    doc = copy.deepcopy(real_doc)
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
    doc = _mutate(doc, path, "replace", SPLICE)
    literal = data.draw(st.sampled_from(LITERALS))
    text = json.dumps(doc, indent=data.draw(st.sampled_from([None, 1]))).replace(json.dumps(SPLICE), literal)
    file = scratch / "spliced.json"
    file.write_text(text)
    try:
        accepted = load(file)
    except ResultsError as exc:
        assert str(exc).startswith(f"{file}: ")
        event("refused")
        return
    event("read")
    read_everything(accepted, real_doc)
    report.write_report([file], scratch / "index.html")


# ---- null wherever the schema allows it, and names with separators ----

def _nullable(node=SCHEMA, path=(), seen=()):
    """Path patterns of every place the schema lets hold null: keys and indexes, "*" (any item of
    an array) and ("other", names) (any key of an object but those it names)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        if name not in seen:
            yield from _nullable(SCHEMA["$defs"][name], path, seen + (name,))
    for sub in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
        yield from _nullable(sub, path, seen)
    kind = node.get("type")
    if kind == "null" or isinstance(kind, list) and "null" in kind:
        yield path
    for key, sub in node.get("properties", {}).items():
        yield from _nullable(sub, path + (key,), seen)
    if isinstance(node.get("additionalProperties"), dict):
        others = ("other", frozenset(node.get("properties", ())))
        yield from _nullable(node["additionalProperties"], path + (others,), seen)
    items = node.get("items")
    if isinstance(items, dict):
        yield from _nullable(items, path + ("*",), seen)
    for i, sub in enumerate(items if isinstance(items, list) else []):
        yield from _nullable(sub, path + (i,), seen)


def _matches(pattern, path) -> bool:
    return len(pattern) == len(path) and all(
        p == k or p == "*" and isinstance(k, int) or isinstance(p, tuple) and isinstance(k, str) and k not in p[1]
        for p, k in zip(pattern, path))


NULLABLE = sorted(set(_nullable()), key=str)


def _null_places(doc) -> dict:
    """Pattern -> the places in ``doc`` it names (a missing optional field counts, if its parent is there)."""
    places = {}
    paths = list(_paths(doc))
    for pattern in NULLABLE:
        found = [p for p in paths if _matches(pattern, p)]
        if not found and all(isinstance(k, str) for k in pattern[-1:]):
            found = [p + (pattern[-1],) for p in paths if _matches(pattern[:-1], p) and isinstance(_at(doc, p), dict)]
        if found:
            places[pattern] = found
    return places


def _at(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def test_the_schema_has_nullable_fields_the_walk_finds(real_doc):
    places = _null_places(real_doc)
    assert len(places) >= 20
    assert ("partial",) in places and ("runs", "*", "checks", "param_count", "details", "observed") in places


def test_null_in_every_nullable_field_is_read_by_every_reader(real_doc):
    for pattern, places in _null_places(real_doc).items():
        doc = copy.deepcopy(real_doc)
        for path in places:
            _mutate(doc, path, "replace", None)
        validate(doc, "nulled.json")            # the schema allows it ...
        read_everything(doc, real_doc)           # ... so every reader shows it


SEPARATED = ["tor@ch", "torch@cpu", "cpu#1", "a/b", "x y", "", "-torch", "Torch", "t\u0000", "gpu:0", "cuda:1",
             "keras-jax", "torch.nightly", "t_1"]


@settings(max_examples=100, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_null_or_a_strange_name_is_refused_cleanly_or_read_by_every_reader(real_doc, data):
    doc = copy.deepcopy(real_doc)
    places = _null_places(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            pattern = data.draw(st.sampled_from(sorted(places, key=str)))
            _mutate(doc, data.draw(st.sampled_from(places[pattern])), "replace", None)
        else:
            run = data.draw(st.sampled_from(doc["runs"]))
            run[data.draw(st.sampled_from(["impl", "device"]))] = data.draw(st.sampled_from(SEPARATED))
            doc["summary"] = summarize(doc["runs"])      # a consistent file: only the name is strange
    try:
        validate(doc, "strange.json")
    except ResultsError as exc:
        assert str(exc).startswith("strange.json: ")
        event("refused")
        return
    event("read")
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
