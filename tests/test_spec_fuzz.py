"""Property-based tests of the case-file loader: whatever a file holds, ``spec.load_file`` either
loads it or raises :class:`spec.SpecError` naming the file (and, where it names a line, a line the
file has). Never another exception, a hang or a blow-up.

Three properties, each trying a fixed number of inputs per run (``max_examples``):

* ``test_random_documents_raise_only_located_spec_errors``: 1,000 YAML documents built from the real
  top-level keys, case keys, claim and divergence fields and config values, mixed with odd keys
  (integers, null, booleans, floats, dates) and odd values (binary, sets, dates, NaN, huge
  integers), dumped with ``yaml.safe_dump``, with tokens from ``YAML_TOKENS`` (tags, aliases,
  complex keys, oversized numbers: what safe_dump cannot write) put in place of a few values;
* ``test_mutated_case_files_raise_only_spec_errors_on_real_lines``: 1,000 mutations of the files in
  ``cases/`` (lines deleted, duplicated, swapped, re-indented; characters replaced; unicode
  text, raw bytes or a ``YAML_TOKENS`` token inserted; values replaced by tokens; the file
  truncated), one to four mutations each;
* ``test_random_bytes_raise_only_spec_errors``: 500 random byte strings, half of them behind a
  ``cases:`` header so that they reach the YAML parser rather than stop at its first character.

2,500 inputs in all, about 20 s on a shared 2-core machine. ``derandomize=True`` makes every run
try the same inputs, so CI is reproducible and a failure is the same failure on every machine;
``database=None`` keeps Hypothesis from writing an example database into the working tree.
"""

import itertools
import re
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import spec

CASE_FILES = sorted(Path(__file__).resolve().parent.parent.joinpath("cases").glob("*.yaml"))
CASE_TEXTS = [p.read_text(encoding="utf-8") for p in CASE_FILES]

FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

_counter = itertools.count()


def fresh_file(tmp_path: Path, data: bytes) -> Path:
    """A new file per example: the tmp_path fixture is shared by every example of a test."""
    path = tmp_path / f"example-{next(_counter)}" / "cases.yaml"
    path.parent.mkdir()
    path.write_bytes(data)
    return path


def load_or_spec_error(path: Path) -> spec.SpecError | None:
    """Load ``path``; the only exception allowed through is SpecError, and it must name the file."""
    try:
        spec.load_file(path)
    except spec.SpecError as err:
        assert str(path) in str(err), str(err)
        return err
    return None


# A dictionary of YAML tokens that safe_dump cannot write (tags, aliases, complex keys, numbers past
# Python's limits), as fuzzers use dictionaries: (a) puts them in place of values and keys, (b) into lines.
YAML_TOKENS = [
    "!!int x", "!!float x", "!!bool maybe", "!!timestamp 2024-13-45", "!!binary '@@'", "!!null x", "!!str",
    "!!map {}", "!!seq []", "!!set {a, b}", "!!omap [a: 1]", "!!pairs [a: 1]", "!!omap [1]", "!!int [1]",
    "[a]", "{a: 1}", "{[a]: 1}", "{? [a] : 1}", "{{a: 1}: 2}", "*undefined", "&a [*a]", "&b {k: *b}",
    "&c [1, 2]", "*c", "{<<: 5}", "{<<: [1]}", "{<<: {id: x}}", "{<<: *c}", "&d {input_size: 3}", "{<<: *d}",
    "0x" + "f" * 5000, "1" + "0" * 5000, "0b" + "1" * 20000, "1" + "0" * 400, "1:30:00", "1e999", "-.inf",
    ".nan", "~", "2024-01-01", "2024-01-01T00:00:00Z", "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system", "!custom x", "!<tag:x> y", "'", r'"\x00"', r'"\ud800"', "yes", "on", "0o17",
    "010", "+1", "1_000", "4097", "10001", "65", "[0, 1]", "[[1, 2]]", "[true]", "{}", "[]", "''", "---", "...",
]


def line_count(data: bytes) -> int:
    # str.splitlines breaks at every character YAML treats as a line break (and a few more).
    return len(data.decode("utf-8", errors="replace").splitlines())


# --------------------------------------------------------------------------------------
# (a) random documents around the real schema

FIELD_NAMES = sorted(set(spec.CASE_KEYS) | set(spec.FILE_KEYS) | set(spec.CLAIM_FIELDS)
                     | set(spec.DIVERGENCE_FIELDS) | set(spec.TOLERANCE_KEYS))
CHOICE_VALUES = sorted({str(c) for f in spec.CONFIG_FIELDS.values() for c in (f.choices or ())}
                       | set(spec.CHECKS) | set(spec.ROLES) | {"?", "*", "torch", "keras-*", ">=3.12", "x{seed}"})

token = st.integers(0, len(YAML_TOKENS) - 1).map(lambda i: f"ZZTOK{i}ZZ")   # see render()
odd_scalars = st.one_of(token, 
    st.none(), st.booleans(), st.integers(-3, 40), st.integers(), st.integers(2**60, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.sampled_from(CHOICE_VALUES),
    st.sampled_from(FIELD_NAMES), st.binary(max_size=4), st.dates())
odd_keys = st.one_of(token, st.sampled_from(FIELD_NAMES), st.text(max_size=6), st.integers(), st.none(), st.booleans(),
                     st.floats(allow_nan=False), st.dates())
any_value = st.recursive(
    odd_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(odd_keys, children, max_size=4),
                               st.sets(st.integers(0, 5), max_size=3)),
    max_leaves=12)


def with_extra_keys(mapping_strategy):
    """Mostly the schema's keys; now and then an odd key or two besides."""
    extra = st.one_of(st.just({}), st.just({}), st.dictionaries(odd_keys, any_value, max_size=2))
    return st.builds(lambda m, e: {**e, **m}, mapping_strategy, extra)


def config_value(name: str):
    f = spec.CONFIG_FIELDS[name]
    if f.type is bool:
        plausible = st.booleans()
    elif f.type is float:        # a choice, or a number (constant inputs, weights, initial states)
        plausible = st.one_of(st.sampled_from(f.choices or (0.5, 1.5, -0.1)), st.floats(allow_nan=True, allow_infinity=True),
                              st.sampled_from(["1e-2", "-0.5", "1e7"]))
    elif f.choices:
        plausible = st.sampled_from(f.choices)
    elif f.type is tuple:
        plausible = st.one_of(st.none(), st.lists(st.integers(0, 6), max_size=4))
    elif f.type is list:         # mask: rows of 0/1
        plausible = st.one_of(st.none(), st.lists(st.lists(st.sampled_from([0, 1, True, 2]), max_size=5), max_size=4))
    else:
        plausible = st.one_of(st.integers(0, 9), st.sampled_from([f.maximum or 0, (f.maximum or 0) + 1, 10**100]))
    if f.per_layer:              # hidden_size: a size per layer too
        plausible = st.one_of(plausible, st.lists(st.one_of(st.integers(-1, 9), any_value), max_size=5))
    return st.one_of(plausible, plausible, any_value)


config_values = st.fixed_dictionaries({}, optional={k: config_value(k) for k in spec.CONFIG_FIELDS})
claim = with_extra_keys(st.fixed_dictionaries({}, optional={
    "source": st.one_of(st.text(max_size=5), any_value), "impl": st.one_of(st.sampled_from(CHOICE_VALUES), any_value),
    "says": any_value, "outputs": st.one_of(st.lists(st.lists(st.integers(-1, 9), max_size=3), max_size=3), any_value),
    "roles": st.one_of(st.lists(st.sampled_from(spec.ROLES + ("?", "x")), max_size=4), any_value),
    "param_count": st.one_of(st.integers(-1, 10**20), any_value), "holds": any_value, "note": any_value,
    "dtypes": st.one_of(st.lists(st.sampled_from(["float32", "float64", "int8", ""]), max_size=3), any_value),
    "paths": st.one_of(st.lists(st.sampled_from(["[0]", "[1][0]", ""]), max_size=3), any_value),
    "params": st.one_of(st.dictionaries(st.text(max_size=4), st.lists(st.integers(-1, 9), max_size=3), max_size=2),
                        any_value),
    "values": st.one_of(st.dictionaries(st.sampled_from(["output", "layer0/forward/h", "layer9/backward/c", "x"]),
                                        st.lists(st.lists(st.floats(), max_size=3), max_size=3), max_size=2),
                        any_value),
    "atol": any_value, "rtol": any_value}))
case = with_extra_keys(st.builds(lambda base, extra: {**base, **extra}, st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.sampled_from(["a", "b", "c{seed}", "d-{hidden_size}", "{", "bad id"]), any_value),
    "description": any_value,
    "matrix": st.one_of(st.dictionaries(st.sampled_from(list(spec.CONFIG_FIELDS)),
                                        st.lists(st.one_of(st.integers(0, 12), st.booleans(), any_value), max_size=12),
                                        max_size=4), any_value),
    "max_cases": st.one_of(st.integers(-1, 2 * spec.MAX_FILE_CASES), any_value),
    "claims": st.one_of(st.lists(claim, max_size=2), any_value),
    "tolerance": st.one_of(st.dictionaries(st.sampled_from(["atol", "rtol", "btol"]), any_value, max_size=2),
                           any_value),
}), config_values))
divergence = with_extra_keys(st.fixed_dictionaries({}, optional={
    **{k: st.one_of(st.sampled_from(CHOICE_VALUES), any_value) for k in spec.DIVERGENCE_FIELDS},
    "when": st.one_of(config_values, any_value),
    "versions": st.one_of(st.dictionaries(st.sampled_from(["torch", "keras"]), any_value, max_size=2), any_value)}))
document = st.one_of(
    with_extra_keys(st.fixed_dictionaries({}, optional={
        "description": any_value, "defaults": st.one_of(config_values, any_value),
        "cases": st.one_of(st.lists(case, max_size=4), any_value),
        "divergences": st.one_of(st.lists(divergence, max_size=3), any_value)})),
    any_value)


def with_tokens(doc_strategy):
    """A document and a few (line, token) replacements for render()."""
    return st.tuples(doc_strategy, st.lists(st.tuples(st.integers(0, 50), token), max_size=3))


def render(doc, replacements) -> str:
    """safe_dump, then put tokens in place of the values on a few lines and of every placeholder."""
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10**6)
    lines = text.split("\n")
    for n, token in replacements:
        i = n % len(lines)
        head, sep, _ = lines[i].partition(": ")
        if not sep:
            head, sep, _ = lines[i].partition("- ")
        lines[i] = head + sep + token
    text = "\n".join(lines)
    return re.sub(r"ZZTOK(\d+)ZZ", lambda m: YAML_TOKENS[int(m.group(1))], text)


@settings(FUZZ, max_examples=1000)
@given(doc=with_tokens(document))
def test_random_documents_raise_only_located_spec_errors(tmp_path, doc):
    text = render(*doc)
    load_or_spec_error(fresh_file(tmp_path, text.encode("utf-8")))


# --------------------------------------------------------------------------------------
# (b) real case files, mutated


def mutate(data: st.DataObject, text: str) -> bytes:
    ops = data.draw(st.lists(st.sampled_from(
        ["delete", "duplicate", "swap", "indent", "dedent", "replace", "insert_text", "insert_bytes", "truncate",
         "set_value", "set_value", "insert_token"]),
        min_size=1, max_size=4))
    raw = text.encode("utf-8")
    for op in ops:
        lines = raw.splitlines(keepends=True) or [b""]
        i = data.draw(st.integers(0, len(lines) - 1))
        pos = data.draw(st.integers(0, len(raw)))
        if op == "set_value":     # `key: value` -> `key: <token>`
            head, sep, _ = lines[i].partition(b": ")
            token = data.draw(st.sampled_from(YAML_TOKENS)).encode("utf-8")
            lines[i] = head + sep + token + b"\n" if sep else lines[i]
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = b" " * data.draw(st.integers(1, 6)) + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][data.draw(st.integers(1, 6)):]
        if op in ("set_value", "delete", "duplicate", "swap", "indent", "dedent"):
            raw = b"".join(lines)
        elif op == "replace":
            char = data.draw(st.one_of(st.sampled_from(list(":-[]{}&*!|>'\"#%@`,? \t\n")), st.characters()))
            raw = raw[:pos] + char.encode("utf-8", errors="surrogatepass") + raw[pos + 1:]
        elif op == "insert_text":
            raw = raw[:pos] + data.draw(st.text(max_size=6)).encode("utf-8", errors="surrogatepass") + raw[pos:]
        elif op == "insert_bytes":
            raw = raw[:pos] + data.draw(st.binary(min_size=1, max_size=4)) + raw[pos:]
        elif op == "insert_token":
            raw = raw[:pos] + data.draw(st.sampled_from(YAML_TOKENS)).encode("utf-8") + raw[pos:]
        elif op == "truncate":
            raw = raw[:pos]
    return raw


@settings(FUZZ, max_examples=1000)
@given(index=st.integers(0, len(CASE_TEXTS) - 1), data=st.data())
def test_mutated_case_files_raise_only_spec_errors_on_real_lines(tmp_path, index, data):
    raw = mutate(data, CASE_TEXTS[index])
    err = load_or_spec_error(fresh_file(tmp_path, raw))
    if err is not None and err.line is not None:
        assert 1 <= err.line <= line_count(raw) + 1, (err.line, line_count(raw), str(err))


# --------------------------------------------------------------------------------------
# (c) random bytes


@settings(FUZZ, max_examples=500)
@given(header=st.sampled_from([b"", b"cases:\n"]),
       body=st.one_of(st.binary(max_size=200),
                      st.text(alphabet=string.printable + "\x00\x85\u2028\ufeff\U0001f600", max_size=200)
                      .map(lambda t: t.encode("utf-8", errors="surrogatepass"))))
def test_random_bytes_raise_only_spec_errors(tmp_path, header, body):
    raw = header + body
    err = load_or_spec_error(fresh_file(tmp_path, raw))
    if err is not None and err.line is not None:
        assert 1 <= err.line <= line_count(raw) + 1, (err.line, line_count(raw), str(err))
