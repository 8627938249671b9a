"""The case language: schema, safe strict loading, validation and matrix expansion.

A case file is YAML. Everything in it is checked here, before any framework runs, and every
problem is reported as a :class:`SpecError` naming the file, the line, the case id and the
field, so that a maintainer can fix a typo without reading a traceback.

Loading uses PyYAML's ``SafeLoader`` (no arbitrary tags, nothing from the file is executed) with
a few additions: every mapping remembers the line of each key, duplicate keys are an error instead
of silently winning, and keys must be strings. Hand-written files can be wrong in any way, so the
loader only ever raises :class:`SpecError`, and it bounds what a file can cost before building it:

* a file is at most ``MAX_FILE_BYTES`` (1 MiB), UTF-8 (a BOM is allowed);
* one YAML document, nested at most ``MAX_DEPTH`` (50) levels, expanding to at most ``MAX_NODES``
  (100,000) nodes counted through aliases (an "alias bomb" is refused before it is built), and no
  alias inside the node it refers to;
* a case's matrix makes at most ``MAX_MATRIX`` (1,000) cases unless the case raises its own limit
  with ``max_cases: N``; a file makes at most ``MAX_FILE_CASES`` (10,000) cases in all;
* sizes have sane maxima (see ``CONFIG_FIELDS``), so a typo like ``hidden_size: 40960000`` is an
  error here rather than an out-of-memory later;
* what one case costs is bounded as a whole, too (:func:`case_cost`): the float64 elements the test
  process holds at once for one run (the canonical weights, the widest layer sequence four times
  over: the reference's input and output sequences, the input and the observation; the states; the
  step buffers) are at most ``MAX_CASE_COST`` (2**27: 1 GiB of float64), so that each field within its
  maximum cannot add up to a case that exhausts memory (64 layers of hidden_size 4096 would hold
  ~200 GB of weights); measured peaks are in ``reference.forward``'s docstring;
* strings that travel (into pytest node ids, the worker's environment, results and reports) are
  bounded: a case id, after matrix expansion, and a divergence id at most ``MAX_ID_CHARS`` (200)
  characters; every other string (descriptions, a claim's ``source``, ``says``, ``note`` and
  ``impl`` patterns, a divergence's ``reason``, ``link``, patterns and version specifiers) at most
  ``MAX_TEXT_CHARS`` (4,096). Lists copied into every run's record are bounded too: at most
  ``MAX_CLAIMS`` (16) claims per case, ``MAX_CLAIM_TENSORS`` (64) shapes in a claim's ``outputs``
  and roles in its ``roles``, ``MAX_CLAIM_DIMS`` (8) dimensions per shape, and ``MAX_LIST_ITEMS``
  (64) patterns in an ``impl``, ``cases`` or ``devices`` list, values of one ``when`` field or
  packages in ``versions`` (``lengths`` is bounded by ``batch``). A run record's ``reason`` and ``traceback``, which come from a
  framework, are cut to ``MAX_RECORD_TEXT`` (16,384) characters each, head and tail kept
  (:func:`clip_text`).

A file must hold at least one case or divergence. Case ids must be unique within a file (here)
and across the files of a run (:func:`check_unique_ids`).
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import fnmatch
import itertools
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# --------------------------------------------------------------------------------------
# Errors


class SpecError(ValueError):
    """A problem in a case file, located as precisely as we can."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None,
                 case: str | None = None, field: str | None = None):
        self.message, self.file, self.line, self.case, self.field = message, file, line, case, field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}" if self.file else "<case>"
        if self.line:
            where += f":{self.line}"
        parts = [where]
        if self.case:     # a case id or field name from the file may be of any length: the message is not
            parts.append(f"case {_quoted(self.case, MAX_ID_CHARS + len('divergence '))}")
        if self.field:
            parts.append(f"field {_quoted(self.field, 100)}")
        return ": ".join(parts) + f": {self.message}"


def _quoted(text: str, limit: int) -> str:
    """A name for a message, quoted: whole up to ``limit`` characters, else its start and its length."""
    text = str(text)
    return f"'{text}'" if len(text) <= limit else f"'{text[:40]}...' ({len(text):,} characters)"


# --------------------------------------------------------------------------------------
# The configuration schema: one place says every field, its type, default and allowed values.


@dataclass(frozen=True)
class FieldSpec:
    type: type
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: int | None = None
    required: bool = False
    maximum: int | None = None     # a sane upper bound: larger values are typos, not experiments

    def describe_allowed(self) -> str:
        if self.type is tuple:
            return "a list of integers >= 1, or null"
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true | false"
        if self.minimum is not None and self.maximum is not None:
            return f"integer from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"integer >= {self.minimum}"
        return self.type.__name__


LAYOUTS = ("batch_major", "time_major", "unbatched")
MERGE_MODES = ("concat", "sum", "mul", "ave")
DTYPES = ("float32", "float64", "float16", "bfloat16")
INITIAL_STATES = ("none", "zeros", "random")

# Limits on what one case file may cost (see the module docstring).
MAX_FILE_BYTES = 1 << 20       # pure-Python PyYAML parses about 3 s per MiB
MAX_DEPTH = 50                 # nesting levels (the case language needs 7)
MAX_NODES = 100_000            # YAML nodes, counted through aliases
MAX_MATRIX = 1000              # cases one matrix may make, unless the case sets max_cases
MAX_FILE_CASES = 10_000        # cases one file may make in all (and the most max_cases may allow)
MAX_SIZE = 4096                # input_size, hidden_size, proj_size, batch
MAX_TIMESTEPS = 10_000
MAX_LAYERS = 64
MAX_SEED = 2**32 - 1
MAX_CLAIM_INT = 2**63 - 1      # a claimed dimension or parameter count
MAX_CASE_COST = 2**27          # float64 elements one run holds in the test process (1 GiB), see case_cost
# Strings that travel: a case id goes into pytest's node id, which pytest puts in the environment
# (PYTEST_CURRENT_TEST; Linux refuses one string over 128 KiB), into results and reports.
MAX_ID_CHARS = 200             # a case id (after matrix expansion) or a divergence id
MAX_TEXT_CHARS = 4096          # descriptions, claim and divergence texts, patterns, version specifiers
MAX_RECORD_TEXT = 16 * 1024    # characters of a run record's reason and traceback (head and tail kept)
# Lists that are copied into every run's record (a case's claims with each of its runs, a divergence
# declaration with each check it explains), so that a matrix cannot multiply a long list into a
# results file larger than a report reads: the default set uses at most 3 claims per case, 3 tensors
# and 3 dimensions per claimed shape, and one pattern per list.
MAX_CLAIMS = 16                # claims in one case
MAX_CLAIM_TENSORS = 64         # a claim's `outputs` shapes, and its `roles`
MAX_CLAIM_DIMS = 8             # dimensions of one claimed shape
MAX_LIST_ITEMS = 64            # patterns in an `impl`, `cases` or `devices` list; values of one `when`
                               # field; packages in `versions`


def clip_text(text: str, limit: int = MAX_RECORD_TEXT) -> str:
    """``text`` cut to at most ``limit`` characters: its head and its tail, with a line between them
    saying how many characters were cut (where a message starts and how a traceback ends both
    matter)."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    marker = f"\n[... {{:,}} of {len(text):,} characters cut here ...]\n"
    keep = max(0, limit - len(marker.format(len(text))))
    head = keep - keep // 2
    cut = len(text) - keep
    return text[:head] + marker.format(cut) + (text[len(text) - keep // 2:] if keep // 2 else "")


CONFIG_FIELDS: dict[str, FieldSpec] = {
    "input_size": FieldSpec(int, None, "features per time step", minimum=1, required=True, maximum=MAX_SIZE),
    "hidden_size": FieldSpec(int, None, "hidden units H (Keras `units`, Flax `features`)", minimum=1,
                             required=True, maximum=MAX_SIZE),
    "num_layers": FieldSpec(int, 1, "stacked layers", minimum=1, maximum=MAX_LAYERS),
    "bidirectional": FieldSpec(bool, False, "run a backward direction too"),
    "merge_mode": FieldSpec(str, "concat", "how the two directions' outputs are combined "
                            "(needs bidirectional)", choices=MERGE_MODES),
    "proj_size": FieldSpec(int, 0, "LSTM projection size P (torch `proj_size`); 0 = none; "
                           "must be < hidden_size", minimum=0, maximum=MAX_SIZE),
    "bias": FieldSpec(bool, True, "use bias vectors"),
    "return_sequences": FieldSpec(bool, False, "output every time step (else the final hidden state)"),
    "return_state": FieldSpec(bool, False, "return the final (h, c) of every layer and direction"),
    "batch": FieldSpec(int, 2, "batch size B (must be 1 for layout unbatched)", minimum=1, maximum=MAX_SIZE),
    "timesteps": FieldSpec(int, 3, "sequence length T", minimum=1, maximum=MAX_TIMESTEPS),
    "layout": FieldSpec(str, "batch_major", "native input layout: (B,T,F), (T,B,F) or (T,F)",
                        choices=LAYOUTS),
    "dtype": FieldSpec(str, "float32", "parameter and input dtype", choices=DTYPES),
    "seed": FieldSpec(int, 0, "seed of the generated input, canonical weights and initial states", minimum=0,
                      maximum=MAX_SEED),
    "lengths": FieldSpec(tuple, None, "valid time steps per sequence (right padding), one per batch element; "
                         "null = every sequence is timesteps long", maximum=MAX_TIMESTEPS),
    "initial_state": FieldSpec(str, "none", "initial (h, c): none (not given: the framework's default, zeros), "
                               "zeros or random (given in each framework's native form)", choices=INITIAL_STATES),
    "go_backwards": FieldSpec(bool, False, "read the sequence in reverse (not with bidirectional); canonical "
                              "outputs stay in time order"),
}

CHECKS = ("output_shape", "state_shapes", "state_order", "param_count", "values", "padding", "claims")
ROLES = ("output", "h", "c")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Config:
    """A validated, framework-neutral LSTM configuration (every field set)."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    proj_size: int = 0
    bias: bool = True
    return_sequences: bool = False
    return_state: bool = False
    batch: int = 2
    timesteps: int = 3
    layout: str = "batch_major"
    dtype: str = "float32"
    seed: int = 0
    lengths: tuple[int, ...] | None = None
    initial_state: str = "none"
    go_backwards: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


assert [f.name for f in dataclasses.fields(Config)] == list(CONFIG_FIELDS)


@dataclass(frozen=True)
class Claim:
    """What a document says some implementation returns for a case."""

    source: str
    impl: tuple[str, ...]          # fnmatch patterns of impl ids
    says: str = ""
    outputs: tuple[tuple[int, ...], ...] | None = None   # native returned tensors' shapes, in order
    roles: tuple[str, ...] | None = None                 # their roles, in order
    param_count: int | None = None
    holds: bool = True             # the case author's expectation, after running it
    note: str = ""
    line: int | None = None

    def applies_to(self, impl_id: str) -> bool:
        return any(fnmatch.fnmatchcase(impl_id, p) for p in self.impl)


@dataclass(frozen=True)
class Divergence:
    """A declared, explained difference between an implementation and the canonical semantics."""

    id: str
    impl: tuple[str, ...]
    check: str
    reason: str
    link: str = ""
    when: tuple[tuple[str, tuple], ...] = ()   # (config field, allowed values)
    cases: tuple[str, ...] = ("*",)            # fnmatch patterns of case ids
    devices: tuple[str, ...] = ("*",)
    versions: tuple[tuple[str, str], ...] = ()  # (package, specifier): the framework releases it holds for
    file: str = ""
    line: int | None = None

    def applies(self, case: "Case", impl_id: str, device: str, check: str, versions: dict | None = None) -> bool:
        return (check == self.check
                and any(fnmatch.fnmatchcase(impl_id, p) for p in self.impl)
                and any(fnmatch.fnmatchcase(device, p) for p in self.devices)
                and any(fnmatch.fnmatchcase(case.id, p) for p in self.cases)
                and all(getattr(case.config, k) in vals for k, vals in self.when)
                and self.holds_for(versions or {}))

    def holds_for(self, versions: dict) -> bool:
        """Whether the run's package versions are in every ``versions`` range (unknown: not)."""
        for pkg, spec in self.versions:
            if pkg not in versions:
                return False
            try:
                if not SpecifierSet(spec).contains(Version(str(versions[pkg])), prereleases=True):
                    return False
            except InvalidVersion:
                return False
        return True

    def to_dict(self) -> dict:
        return {"id": self.id, "impl": list(self.impl), "check": self.check, "reason": self.reason,
                "link": self.link, "when": {k: list(v) for k, v in self.when},
                "cases": list(self.cases), "devices": list(self.devices), "versions": dict(self.versions),
                "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Case:
    id: str
    config: Config
    file: str
    line: int | None = None
    description: str = ""
    claims: tuple[Claim, ...] = ()
    matrix: dict = field(default_factory=dict)   # the matrix values that generated this case
    tolerance: dict = field(default_factory=dict)  # the values check's atol / rtol, when the case overrides them

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class CaseFile:
    path: str
    cases: list[Case]
    divergences: list[Divergence]
    description: str = ""


def case_cost(cfg: Config) -> dict[str, int]:
    """What one run of ``cfg`` holds at once in the test process, in float64 elements, by part, and
    their ``total`` (checked against ``MAX_CASE_COST`` by the loader).

    * ``weights``: the canonical weights, 4H·(in + H') + 4H (bias) + H·P per layer and direction;
    * ``sequences``: 4·B·T·max(in, D·H'), the widest sequence a layer reads or writes, four times:
      the reference streams layer by layer and holds a layer's input and output sequences (sum,
      mul and ave: the input and both directions, at most 1.5 times the widest), the canonical
      input is there in the case's dtype too, and the observation's output comes back from the
      worker;
    * ``states``: every layer's and direction's final (h, c), B·(H + H'), the reference's and the
      observation's;
    * ``steps``: the reference's per-step buffers and temporaries, 4·B·4H.

    The checks compare in chunks (``checks.CHUNK_ELEMENTS``) and add no tensor-sized copies. Measured
    with tracemalloc (the observation, then the peak of ``checks.evaluate`` with the reference), a
    run holds 0.38 (the input widest: in=1024, H=8) to 0.99 (the weights dominate: H=512, 3 layers,
    B=4, T=10) of ``8 * total`` bytes, e.g. 316 MB of an 840 MB estimate for in=4096, H=8, B=16,
    T=400 with return_sequences (``tests/test_limits_memory.py`` checks seven shapes). At the
    limit the test process needs about 1 GiB for the run. The reference's time is not bounded here:
    64 bidirectional layers of H=32 with B=64, T=2000 (a quarter of the limit) took 123 s on a
    loaded 2-core machine, one (B, 4H) step at a time.
    """
    H, Hp, D, B, T = cfg.hidden_size, cfg.proj_size or cfg.hidden_size, cfg.directions, cfg.batch, cfg.timesteps
    merged = D * Hp if cfg.merge_mode == "concat" else Hp
    per_layer = [D * (4 * H * (n_in + Hp) + (4 * H if cfg.bias else 0) + H * cfg.proj_size)
                 for n_in in (cfg.input_size, merged)]
    parts = {"weights": per_layer[0] + (cfg.num_layers - 1) * per_layer[1],
             "sequences": 4 * B * T * max(cfg.input_size, D * Hp),
             "states": 2 * cfg.num_layers * D * B * (H + Hp),
             "steps": 4 * B * 4 * H}
    parts["total"] = sum(parts.values())
    return parts


def _check_cost(cfg: Config, **loc) -> None:
    cost = case_cost(cfg)
    if cost["total"] > MAX_CASE_COST:
        parts = ", ".join(f"{k} {v:,}" for k, v in cost.items() if k != "total")
        raise SpecError(f"this case is too large to check: one run would hold about {cost['total']:,} float64 "
                        f"elements ({cost['total'] * 8 / 2**30:.1f} GiB) at once in the test process ({parts}); "
                        f"the limit is {MAX_CASE_COST:,} ({MAX_CASE_COST * 8 / 2**30:g} GiB). Make it smaller "
                        "(fewer layers, a smaller hidden_size, batch or timesteps)", **loc)


# --------------------------------------------------------------------------------------
# Safe YAML loading that remembers lines, refuses duplicate and non-string keys, and bounds what
# a file can cost before anything is constructed.


class _LineDict(dict):
    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


def _node_line(node_or_event) -> int:
    return node_or_event.start_mark.line + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader with a nesting limit while composing, a size check on the composed node graph
    (through aliases) before constructing, and located errors for values PyYAML cannot build."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        # PyYAML's composer recurses once per nesting level: stop well before Python's recursion limit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecError(f"nested more than {MAX_DEPTH} levels deep", line=_node_line(self.peek_event()))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _check_node_graph(node)
        return self.construct_document(node)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (SpecError, yaml.YAMLError):
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # e.g. `!!int x`, `!!bool maybe`, `!!timestamp 2024-13-45`, an integer of more than 4300 digits
            value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            raise SpecError(f"invalid YAML: cannot read {_short(value)} as {node.tag.rsplit(':', 1)[-1]} "
                            f"({type(exc).__name__}: {_short(str(exc), 100)})", line=_node_line(node)) from None


def _check_node_graph(root: yaml.Node) -> None:
    """Refuse a node graph that is cyclic (an alias inside its own anchor), nested too deeply or too
    large once aliases are expanded: counted once per node, so a billion-laughs file costs no more
    to check than its text."""
    done: dict[int, tuple[int, int]] = {}     # id(node) -> (expanded node count, depth)
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finishing = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            children: list = []
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = [n for pair in node.value for n in pair]
        if finishing:
            count = 1 + sum(done[id(c)][0] for c in children)
            depth = 1 + max((done[id(c)][1] for c in children), default=0)
            if count > MAX_NODES:
                raise SpecError(f"the document expands to more than {MAX_NODES:,} nodes through aliases "
                                f"(this node alone to {count:,}); case files are limited to that",
                                line=_node_line(node))
            if depth > MAX_DEPTH:
                raise SpecError(f"the document is nested more than {MAX_DEPTH} levels deep through aliases",
                                line=_node_line(node))
            entered.discard(id(node))
            done[id(node)] = (count, depth)
            continue
        if id(node) in done:
            continue
        if id(node) in entered:
            raise SpecError("an alias refers to a node that contains it (a recursive structure)",
                            line=_node_line(node))
        entered.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in done)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            # YAML reads `1:`, `null:`, `yes:`, `2024-01-01:` and `[a]:` as non-string keys.
            raise SpecError(f"keys must be strings; got {_short(key)} ({_kind(key)}); "
                            "quote it if it is meant as text", line=_node_line(key_node))
        if key in result:
            raise SpecError(f"duplicate key {_quoted(key, 100)}", line=_node_line(key_node), field=key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = _node_line(key_node)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class NotRegularFile(OSError):
    """A path that is not a regular file (a named pipe, a device, a socket, a directory): reading one
    could block for ever (a FIFO with no writer) or never end (``/dev/zero``), so it is refused."""


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | Path):
    """``path`` opened for reading in binary, if it is a regular file (a symlink to one is followed);
    otherwise :class:`NotRegularFile` (an ``OSError``), raised without blocking: the file is opened
    with ``O_NONBLOCK`` (opening a FIFO that has no writer returns at once) and checked with
    ``fstat`` on what was opened, so nothing can swap it between the check and the read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
            raise NotRegularFile(f"{kind}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_text(path: Path) -> str:
    try:
        with open_regular(path) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc}", file=path) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"the file is larger than {MAX_FILE_BYTES:,} bytes, the limit for a case file", file=path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise SpecError(f"not UTF-8 text: byte 0x{data[start]:02x} at byte offset {start} (column {column}); "
                        "save the file as UTF-8", file=path, line=line) from None


# Case files and catalogues as a session first read them (``snapshot_key`` -> text). A worker that
# pytest-xdist starts to replace a dead one reads these instead of the files, which may have changed.
SNAPSHOT: dict[str, str] = {}


def snapshot_key(path: Path) -> str:
    return str(Path(path).resolve())


def read_text(path: Path) -> str:
    """A case or catalogue file's text (from :data:`SNAPSHOT` when it holds it); raises SpecError."""
    key = snapshot_key(path)
    return SNAPSHOT[key] if key in SNAPSHOT else _read_text(Path(path))


def _read_yaml(path: Path) -> Any:
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except SpecError as exc:
        exc.file = path
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = ", ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise SpecError(f"invalid YAML: {what}", file=path, line=line) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (control characters, for instance); position is in `text`.
        line = text.count("\n", 0, exc.position) + 1
        raise SpecError(f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML", file=path,
                        line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=path) from None


_KINDS = {dict: "mapping", list: "list", type(None): "null", str: "string", bool: "boolean", int: "integer",
          float: "float", bytes: "binary", set: "set", tuple: "list"}


def _kind(value: Any) -> str:
    """What YAML made of a value, in YAML's words (dates and timestamps by their Python name)."""
    return next((name for t, name in _KINDS.items() if type(value) is t), None) or (
        "mapping" if isinstance(value, dict) else type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:   # an int with more digits than Python will print (sys.get_int_max_str_digits)
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else "a value"
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------------------
# Validation helpers


def _unknown(key: str, allowed, **loc) -> SpecError:
    hint = difflib.get_close_matches(str(key), list(allowed), n=1)
    more = f" (did you mean '{hint[0]}'?)" if hint else ""
    return SpecError(f"unknown field{more}; allowed: {', '.join(allowed)}", field=str(key), **loc)


def _check_value(name: str, value: Any, **loc) -> Any:
    spec = CONFIG_FIELDS[name]
    if spec.type is tuple:
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            raise SpecError(f"expected {spec.describe_allowed()}, got {_short(value)}", field=name, **loc)
        if spec.maximum is not None and max(value) > spec.maximum:
            raise SpecError(f"{_short(max(value))} is too large; at most {spec.maximum}", field=name, **loc)
        return tuple(value)
    # bool is an int in Python; YAML `true` must not pass as a size, nor `1` as a flag.
    if spec.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SpecError(f"expected an integer, got {_short(value)} ({_kind(value)})", field=name, **loc)
    if spec.type is bool and not isinstance(value, bool):
        raise SpecError(f"expected true or false, got {_short(value)} ({_kind(value)})", field=name, **loc)
    if spec.type is str and not isinstance(value, str):
        raise SpecError(f"expected one of {spec.describe_allowed()}, got {_short(value)} ({_kind(value)})",
                        field=name, **loc)
    if spec.choices and value not in spec.choices:
        raise SpecError(f"{_short(value)} is not allowed; allowed: {spec.describe_allowed()}", field=name, **loc)
    if spec.minimum is not None and value < spec.minimum:
        raise SpecError(f"{_short(value)} is impossible; must be >= {spec.minimum}", field=name, **loc)
    if spec.maximum is not None and value > spec.maximum:
        raise SpecError(f"{_short(value)} is too large; at most {spec.maximum}", field=name, **loc)
    return value


def _cross_check(values: dict, line_of, **loc) -> None:
    """Constraints between fields: impossible combinations are errors, not surprises later."""
    if values["proj_size"] and values["proj_size"] >= values["hidden_size"]:
        raise SpecError(f"proj_size ({values['proj_size']}) must be smaller than hidden_size "
                        f"({values['hidden_size']})", field="proj_size", line=line_of("proj_size"), **loc)
    if values["merge_mode"] != "concat" and not values["bidirectional"]:
        raise SpecError("merge_mode only applies when bidirectional is true", field="merge_mode",
                        line=line_of("merge_mode"), **loc)
    if values["lengths"] is not None:
        lengths = values["lengths"]
        if values["layout"] == "unbatched":
            raise SpecError("lengths need a batch axis; layout unbatched has none", field="lengths",
                            line=line_of("lengths"), **loc)
        if len(lengths) != values["batch"]:
            raise SpecError(f"lengths has {len(lengths)} entries but batch is {values['batch']} (one length per "
                            "sequence)", field="lengths", line=line_of("lengths"), **loc)
        if max(lengths) > values["timesteps"]:
            raise SpecError(f"a length ({max(lengths)}) is longer than timesteps ({values['timesteps']})",
                            field="lengths", line=line_of("lengths"), **loc)
    if values["go_backwards"] and values["bidirectional"]:
        raise SpecError("go_backwards is for one direction; bidirectional already has a backward direction",
                        field="go_backwards", line=line_of("go_backwards"), **loc)
    if values["layout"] == "unbatched" and values["batch"] != 1:
        raise SpecError(f"layout unbatched has no batch axis, so batch must be 1 (got {values['batch']})",
                        field="batch", line=line_of("batch"), **loc)


def _check_length(text: str, limit: int, what: str = "this text", **loc) -> str:
    """``text``, or a located error when it is longer than ``limit`` characters (see MAX_ID_CHARS,
    MAX_TEXT_CHARS: strings travel into node ids, the environment, results and reports)."""
    if len(text) > limit:
        raise SpecError(f"{what} is {len(text):,} characters long; at most {limit:,} are allowed", **loc)
    return text


def _check_count(items, limit: int, what: str, **loc) -> None:
    """A located error when ``items`` (a list or mapping copied into run records) has more than ``limit``
    entries (see MAX_CLAIMS and the limits below it)."""
    if len(items) > limit:
        raise SpecError(f"{len(items):,} {what}; at most {limit:,} are allowed (the list is copied into "
                        "every run's record)", **loc)


def _str_or_list(value, name: str, **loc) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError("expected a string or a list of strings", field=name, **loc)
    _check_count(value, MAX_LIST_ITEMS, "patterns", field=name, **loc)
    for v in value:
        _check_length(v, MAX_TEXT_CHARS, "a pattern", field=name, **loc)
    return tuple(value)


def _optional_text(m: _LineDict, key: str, field: str | None = None, **loc) -> str:
    """An optional free-text field: a string of at most MAX_TEXT_CHARS characters ("" when absent)."""
    value = m.get(key, "")
    if not isinstance(value, str):
        raise SpecError(f"expected a string, got {_short(value)} ({_kind(value)})", field=field or key,
                        line=m.line_of(key), **loc)
    return _check_length(value, MAX_TEXT_CHARS, field=field or key, line=m.line_of(key), **loc)


def _require_str(m: _LineDict, key: str, where: str, limit: int = MAX_TEXT_CHARS, **loc) -> str:
    if key not in m:
        raise SpecError(f"{where} needs '{key}'", field=key, line=m.line, **loc)
    value = m[key]
    if not isinstance(value, str) or not value.strip():
        raise SpecError("expected a non-empty string", field=key, line=m.line_of(key), **loc)
    return _check_length(value, limit, field=key, line=m.line_of(key), **loc)


CLAIM_FIELDS = ("source", "impl", "says", "outputs", "roles", "param_count", "holds", "note")
DIVERGENCE_FIELDS = ("id", "impl", "check", "reason", "link", "when", "cases", "devices", "versions")
CASE_KEYS = ("id", "description", "matrix", "max_cases", "claims", "tolerance") + tuple(CONFIG_FIELDS)
TOLERANCE_KEYS = ("atol", "rtol")
MARKER, LANGUAGE_VERSION = "lstm-conformance", 1   # `lstm-conformance: 1`: the file is a case file of ours
FILE_KEYS = (MARKER, "description", "defaults", "cases", "divergences")


def _parse_claim(raw: Any, **loc) -> Claim:
    if not isinstance(raw, dict):
        raise SpecError("a claim must be a mapping", field="claims", **loc)
    for key in raw:
        if key not in CLAIM_FIELDS:
            raise _unknown(f"claims.{key}", [f"claims.{k}" for k in CLAIM_FIELDS], line=raw.line_of(key), **loc)
    source = _require_str(raw, "source", "a claim", **loc)
    impl = _str_or_list(raw.get("impl"), "claims.impl", line=raw.line_of("impl"), **loc)
    outputs = roles = param_count = None
    if "outputs" in raw:
        out = raw["outputs"]
        oloc = dict(loc, field="claims.outputs", line=raw.line_of("outputs"))
        if isinstance(out, list):
            _check_count(out, MAX_CLAIM_TENSORS, "shapes", **oloc)
            for i, shape in enumerate(out):
                if isinstance(shape, list) and len(shape) > MAX_CLAIM_DIMS:
                    raise SpecError(f"shape {i} has {len(shape):,} dimensions; at most {MAX_CLAIM_DIMS} are "
                                    "allowed", **oloc)
        ok = isinstance(out, list) and out and all(
            isinstance(s, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_CLAIM_INT
                                        for d in s)
            for s in out)
        if not ok:
            raise SpecError("expected a list of shapes, each a list of non-negative integers, "
                            "e.g. [[32, 64], [32, 64]]", field="claims.outputs", line=raw.line_of("outputs"), **loc)
        outputs = tuple(tuple(s) for s in out)
    if "roles" in raw:
        rl = raw["roles"]
        if isinstance(rl, list):
            _check_count(rl, MAX_CLAIM_TENSORS, "roles", field="claims.roles", line=raw.line_of("roles"), **loc)
        if not isinstance(rl, list) or not rl or not all(r in ROLES or r == "?" for r in rl):
            raise SpecError(f"expected a list of roles from {', '.join(ROLES)} (or ? where the document "
                            "does not say)", field="claims.roles",
                            line=raw.line_of("roles"), **loc)
        roles = tuple(rl)
    if "param_count" in raw:
        pc = raw["param_count"]
        if isinstance(pc, bool) or not isinstance(pc, int) or not 0 <= pc <= MAX_CLAIM_INT:
            raise SpecError("expected a non-negative integer (at most 2**63 - 1)", field="claims.param_count",
                            line=raw.line_of("param_count"), **loc)
        param_count = pc
    if outputs is None and roles is None and param_count is None:
        raise SpecError("a claim must state at least one of outputs, roles, param_count", field="claims",
                        line=raw.line, **loc)
    if outputs is not None and roles is not None and len(outputs) != len(roles):
        raise SpecError(f"claims.outputs has {len(outputs)} entries but claims.roles has {len(roles)}",
                        field="claims.roles", line=raw.line_of("roles"), **loc)
    holds = raw.get("holds", True)
    if not isinstance(holds, bool):
        raise SpecError("expected true or false", field="claims.holds", line=raw.line_of("holds"), **loc)
    says = _optional_text(raw, "says", "claims.says", **loc)
    note = _optional_text(raw, "note", "claims.note", **loc)
    return Claim(source=source, impl=impl, says=says, outputs=outputs, roles=roles,
                 param_count=param_count, holds=holds, note=note, line=raw.line)


def parse_divergence(raw: Any, file: str | Path, **loc) -> Divergence:
    loc = {"file": file, **loc}
    if not isinstance(raw, dict):
        raise SpecError("a divergence must be a mapping", field="divergences", **loc)
    did = raw.get("id")
    dloc = dict(loc, case=loc.get("case") or (f"divergence {did}" if isinstance(did, str) else None))
    for key in raw:
        if key not in DIVERGENCE_FIELDS:
            raise _unknown(key, DIVERGENCE_FIELDS, line=raw.line_of(key), **dloc)
    did = _require_str(raw, "id", "a divergence", limit=MAX_ID_CHARS, **dloc)
    impl = _str_or_list(raw.get("impl"), "impl", line=raw.line_of("impl"), **dloc)
    check = _require_str(raw, "check", "a divergence", **dloc)
    if check not in CHECKS:
        raise SpecError(f"unknown check {check!r}; allowed: {', '.join(CHECKS)}", field="check",
                        line=raw.line_of("check"), **dloc)
    reason = _require_str(raw, "reason", "a divergence", **dloc)
    link = _optional_text(raw, "link", **dloc)
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise SpecError("expected a mapping of config field to value(s)", field="when",
                        line=raw.line_of("when"), **dloc)
    conds = []
    for key, val in when.items():
        if key not in CONFIG_FIELDS:
            raise _unknown(key, CONFIG_FIELDS, line=when.line_of(key), **dloc)
        vals = val if isinstance(val, list) else [val]
        if not vals:
            raise SpecError("expected a value or a non-empty list of values", field=f"when.{key}",
                            line=when.line_of(key), **dloc)
        _check_count(vals, MAX_LIST_ITEMS, "values", field=f"when.{key}", line=when.line_of(key), **dloc)
        conds.append((key, tuple(_check_value(key, v, line=when.line_of(key), **dloc) for v in vals)))
    cases = _str_or_list(raw.get("cases", "*"), "cases", line=raw.line_of("cases"), **dloc)
    devices = _str_or_list(raw.get("devices", "*"), "devices", line=raw.line_of("devices"), **dloc)
    versions = raw.get("versions", {})
    if not isinstance(versions, dict):
        raise SpecError("expected a mapping of package to version specifier, e.g. {keras: '>=3.12'}",
                        field="versions", line=raw.line_of("versions"), **dloc)
    _check_count(versions, MAX_LIST_ITEMS, "packages", field="versions", line=raw.line_of("versions"), **dloc)
    for pkg, spec in versions.items():
        _check_length(pkg, MAX_TEXT_CHARS, "a package name", field="versions", line=versions.line_of(pkg), **dloc)
        try:
            if not isinstance(spec, str) or len(spec) > MAX_TEXT_CHARS:
                raise InvalidSpecifier(spec)
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise SpecError(f"{_short(spec)} is not a version specifier (e.g. '>=3.12', '<2.14')",
                            field=f"versions.{pkg}", line=versions.line_of(pkg), **dloc) from None
    return Divergence(id=did, impl=impl, check=check, reason=reason, link=link, when=tuple(conds),
                      cases=cases, devices=devices, versions=tuple((str(k), str(v)) for k, v in versions.items()),
                      file=str(file), line=raw.line)


def _parse_tolerance(raw: _LineDict, **loc) -> dict:
    tol = raw.get("tolerance")
    if tol is None:
        return {}
    line = raw.line_of("tolerance")
    if not isinstance(tol, dict) or not tol:
        raise SpecError("expected a mapping with atol and/or rtol", field="tolerance", line=line, **loc)
    for key, value in tol.items():
        if key not in TOLERANCE_KEYS:
            raise _unknown(f"tolerance.{key}", [f"tolerance.{k}" for k in TOLERANCE_KEYS], line=line, **loc)
        number = _number(value)
        if number is None or not math.isfinite(number) or number < 0:
            raise SpecError(f"expected a finite number >= 0, got {_short(value)}", field=f"tolerance.{key}",
                            line=line, **loc)
        tol[key] = number
    return dict(tol)


def _number(value) -> float | None:
    """A YAML number; PyYAML (YAML 1.1) reads ``1e-4`` without a dot as a string, so accept that too."""
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):   # not a number; an int too large for a float
        return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "_".join(str(v) for v in value)
    if value is None:
        return "null"
    return str(value)


def _expand(raw: _LineDict, defaults: dict, default_lines: dict, path: Path, room: int = MAX_FILE_CASES
            ) -> list[Case]:
    """One case entry's cases (several with a matrix); ``room``: how many more the file may make."""
    loc = {"file": path}
    cid = raw.get("id")
    if not isinstance(cid, str) or not cid:
        got = f"; got {_short(cid)} ({_kind(cid)})" if "id" in raw else ""
        raise SpecError(f"every case needs an 'id' (a non-empty string){got}", field="id",
                        line=raw.line_of("id"), **loc)
    loc["case"] = cid
    _check_length(cid, MAX_ID_CHARS, "the id" + (" template" if "{" in cid else ""), field="id",
                  line=raw.line_of("id"), **loc)
    for key in raw:
        if key not in CASE_KEYS:
            raise _unknown(key, CASE_KEYS, line=raw.line_of(key), **loc)
    description = _optional_text(raw, "description", **loc)

    base = dict(defaults)
    lines = dict(default_lines)
    for key in CONFIG_FIELDS:
        if key in raw:
            base[key] = _check_value(key, raw[key], line=raw.line_of(key), **loc)
            lines[key] = raw.line_of(key)

    max_cases = raw.get("max_cases", MAX_MATRIX)
    if "max_cases" in raw and (isinstance(max_cases, bool) or not isinstance(max_cases, int)
                               or not 1 <= max_cases <= MAX_FILE_CASES):
        raise SpecError(f"expected an integer from 1 to {MAX_FILE_CASES:,} (the most cases this case's matrix "
                        f"may make), got {_short(max_cases)}", field="max_cases", line=raw.line_of("max_cases"),
                        **loc)

    matrix = raw.get("matrix")
    if matrix is None:
        matrix = {}
    if not isinstance(matrix, dict):
        raise SpecError("matrix must map config fields to lists of values", field="matrix",
                        line=raw.line_of("matrix"), **loc)
    axes = []
    for key, values in matrix.items():
        mline = matrix.line_of(key)
        if key not in CONFIG_FIELDS:
            raise _unknown(f"matrix.{key}", [f"matrix.{k}" for k in CONFIG_FIELDS], line=mline, **loc)
        if key in raw:
            raise SpecError(f"'{key}' is set both in the case and in its matrix", field=f"matrix.{key}",
                            line=mline, **loc)
        if not isinstance(values, list) or not values:
            raise SpecError("expected a non-empty list of values", field=f"matrix.{key}", line=mline, **loc)
        axes.append((key, [_check_value(key, v, line=mline, **loc) for v in values], mline))
    count = math.prod(len(vals) for _, vals, _ in axes)    # before expanding anything
    if count > max_cases:
        allow = (f"if that is intended, set 'max_cases: {count}' in the case" if count <= MAX_FILE_CASES
                 else f"a case may make at most {MAX_FILE_CASES:,}; split the matrix")
        limit = "its max_cases" if "max_cases" in raw else "the default limit"
        raise SpecError(f"the matrix would make {count:,} cases, more than {limit} of {max_cases:,}; {allow}",
                        field="matrix", line=raw.line_of("matrix"), **loc)
    if count > room:
        raise SpecError(f"the matrix would make {count:,} cases, which takes the file past {MAX_FILE_CASES:,} "
                        "cases, the limit for one file; split the file", field="matrix",
                        line=raw.line_of("matrix"), **loc)

    template = "{" in cid
    if template:
        names = set(re.findall(r"{(\w+)}", cid))
        bad = names - {a[0] for a in axes}
        if bad:
            raise SpecError(f"id template refers to {', '.join(sorted(bad))}, which the matrix does not set",
                            field="id", line=raw.line_of("id"), **loc)
    elif not ID_RE.match(cid):
        raise SpecError("ids may hold letters, digits and _ . + - (and must start with a letter or digit)",
                        field="id", line=raw.line_of("id"), **loc)

    claims = raw.get("claims", [])
    if not isinstance(claims, list):
        raise SpecError("claims must be a list", field="claims", line=raw.line_of("claims"), **loc)
    _check_count(claims, MAX_CLAIMS, "claims", field="claims", line=raw.line_of("claims"), **loc)
    parsed_claims = tuple(_parse_claim(c, **loc) for c in claims)
    tolerance = _parse_tolerance(raw, **loc)

    out = []
    for combo in itertools.product(*[[(k, v, ln) for v in vals] for k, vals, ln in axes]):
        values = dict(base)
        vlines = dict(lines)
        for k, v, ln in combo:
            values[k] = v
            vlines[k] = ln
        if template:
            case_id = re.sub(r"{(\w+)}", lambda m: _fmt(values[m.group(1)]), cid)
            if not ID_RE.match(case_id):
                raise SpecError(f"the id template makes {_short(case_id, 80)}; ids may hold letters, digits "
                                "and _ . + - (and must start with a letter or digit)", field="id",
                                line=raw.line_of("id"), **dict(loc, case=case_id))
        else:
            case_id = ".".join([cid] + [f"{k}-{_fmt(v)}" for k, v, _ in combo])
        cloc = dict(loc, case=case_id)
        _check_length(case_id, MAX_ID_CHARS, "the id" + (", made by the template," if template else
                                                         ", with the matrix values appended,"),
                      field="id", line=raw.line_of("id"), **cloc)
        for key in ("input_size", "hidden_size"):
            if key not in values:
                raise SpecError(f"'{key}' is required (set it in the case, its matrix or the file's defaults)",
                                field=key, line=raw.line, **cloc)
        if values.get("layout") == "unbatched" and "batch" not in values:
            values["batch"] = 1
        full = {k: values.get(k, spec.default) for k, spec in CONFIG_FIELDS.items()}
        _cross_check(full, lambda k: vlines.get(k, raw.line), **cloc)
        config = Config(**full)
        _check_cost(config, line=raw.line, **cloc)
        out.append(Case(id=case_id, config=config, file=str(path), line=raw.line,
                        description=description, claims=parsed_claims, tolerance=tolerance,
                        matrix={k: v for k, v, _ in combo}))
    return out


def load_file(path: str | Path) -> CaseFile:
    """Load and validate one case file; raises :class:`SpecError` on the first problem, and nothing else."""
    path = Path(path)
    try:
        return _load_file(path)
    except RecursionError:   # the depth limits should make this unreachable; a located error regardless
        raise SpecError("the file is nested too deeply to check", file=path) from None


def _load_file(path: Path) -> CaseFile:
    data = _read_yaml(path)
    loc = {"file": path}
    if data is None:     # empty, or only comments
        raise SpecError("the file holds no cases and no divergences", line=1, **loc)
    if not isinstance(data, dict):
        raise SpecError("a case file must be a mapping with 'cases:' and/or 'divergences:'", line=1, **loc)
    for key in data:
        if key not in FILE_KEYS:
            raise _unknown(key, FILE_KEYS, line=data.line_of(key), **loc)
    if MARKER in data and (type(data[MARKER]) is not int or data[MARKER] != LANGUAGE_VERSION):
        raise SpecError(f"this version reads case language {LANGUAGE_VERSION}; the file says {_short(data[MARKER])}",
                        field=MARKER, line=data.line_of(MARKER), **loc)
    description = _optional_text(data, "description", **loc)

    defaults_raw = data.get("defaults")
    if defaults_raw is None:
        defaults_raw = _LineDict()
        defaults_raw.line, defaults_raw.key_lines = 1, {}
    if not isinstance(defaults_raw, dict):
        raise SpecError("defaults must be a mapping of config fields", field="defaults",
                        line=data.line_of("defaults"), **loc)
    defaults = {}
    for key, value in defaults_raw.items():
        if key not in CONFIG_FIELDS:
            raise _unknown(f"defaults.{key}", [f"defaults.{k}" for k in CONFIG_FIELDS],
                           line=defaults_raw.line_of(key), **loc)
        defaults[key] = _check_value(key, value, line=defaults_raw.line_of(key), **loc)
    default_lines = {k: defaults_raw.line_of(k) for k in defaults}

    raw_cases = data.get("cases", [])
    if not isinstance(raw_cases, list):
        raise SpecError("'cases' must be a list", field="cases", line=data.line_of("cases"), **loc)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for raw in raw_cases:
        if not isinstance(raw, dict):
            raise SpecError("each case must be a mapping with at least 'id', 'input_size', 'hidden_size'",
                            field="cases", line=data.line_of("cases"), **loc)
        for case in _expand(raw, defaults, default_lines, path, room=MAX_FILE_CASES - len(cases)):
            if case.id in seen:
                raise SpecError(f"duplicate case id (first defined at line {seen[case.id]})", field="id",
                                line=case.line, case=case.id, **loc)
            seen[case.id] = case.line
            cases.append(case)

    raw_divs = data.get("divergences", [])
    if not isinstance(raw_divs, list):
        raise SpecError("'divergences' must be a list", field="divergences",
                        line=data.line_of("divergences"), **loc)
    divergences = []
    seen_divs: dict[str, Divergence] = {}
    for raw in raw_divs:
        if not isinstance(raw, dict):
            raise SpecError("a divergence must be a mapping", field="divergences",
                            line=data.line_of("divergences"), **loc)
        div = parse_divergence(raw, path)
        if div.id in seen_divs:
            raise SpecError(f"duplicate divergence id (first defined at line {seen_divs[div.id].line})", field="id",
                            line=div.line, case=f"divergence {div.id}", **loc)
        seen_divs[div.id] = div
        divergences.append(div)
    if not cases and not divergences:
        raise SpecError("the file holds no cases and no divergences", line=1, **loc)
    return CaseFile(path=str(path), cases=cases, divergences=divergences, description=description)


def check_unique_ids(files: list[CaseFile]) -> None:
    """Refuse a case id defined in two of ``files`` (the files of one run): the error names the
    second definition's file and line, and the first's in its message."""
    first: dict[str, Case] = {}
    for case_file in files:
        for case in case_file.cases:
            if case.id in first:
                raise SpecError(f"duplicate case id: first defined at {first[case.id].location}",
                                file=case.file, line=case.line, case=case.id, field="id")
            first[case.id] = case


_MARKER_RE = re.compile(rf"^{MARKER}\s*:\s*['\"]?{LANGUAGE_VERSION}['\"]?\s*(#.*)?$", re.M)
_KEYS_RE = re.compile(r"^(cases|divergences)\s*:", re.M)


def _head(path: Path) -> str:
    """The first 64 KiB of ``path`` as text; "" for anything that is not a readable regular file (a
    FIFO or a device is never read, so it is simply not collected)."""
    try:
        with open_regular(path) as fh:
            return fh.read(65536).decode("utf-8-sig", errors="replace")   # the loader reports bad bytes
    except OSError:
        return ""


def is_marked(path: Path) -> bool:
    """Whether a YAML file says it is a case file of this suite: a top-level ``lstm-conformance: 1``
    line (in its first 64 KiB). Only such files are collected from directories, and only such
    ``divergences.yaml`` apply by their place; a file named on the command line needs no marker."""
    return path.suffix in (".yaml", ".yml") and bool(_MARKER_RE.search(_snapshot_head(path)))


def is_case_file(path: Path) -> bool:
    """Cheap test for a YAML file named explicitly: marked, or a mapping with top-level 'cases' or 'divergences'."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    head = _snapshot_head(path)
    return bool(_MARKER_RE.search(head) or _KEYS_RE.search(head))


def _snapshot_head(path: Path) -> str:
    key = snapshot_key(path)
    return SNAPSHOT[key][:65536] if key in SNAPSHOT else _head(path)
