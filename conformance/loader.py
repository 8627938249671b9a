"""Safe YAML loading of case files and catalogues: located errors, bounded cost, and the marker.

Loading uses PyYAML's ``SafeLoader`` (no arbitrary tags, nothing from the file is executed) with
a few additions: every mapping remembers the line of each key, duplicate keys are an error instead
of silently winning, and keys must be strings. The loader only ever raises
:class:`SpecError`, and it bounds what a file can cost before building it (see :mod:`conformance.limits`).

A case file says it is one with a top-level ``lstm-conformance: 1`` line (:func:`is_marked`).
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, kind_of, quoted, short
from .limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

MARKER, LANGUAGE_VERSION = "lstm-conformance", 1   # `lstm-conformance: 1`: the file is a case file of ours


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
            raise SpecError(f"invalid YAML: cannot read {short(value)} as {node.tag.rsplit(':', 1)[-1]} "
                            f"({type(exc).__name__}: {short(str(exc), 100)})", line=_node_line(node)) from None


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
            raise SpecError(f"keys must be strings; got {short(key)} ({kind_of(key)}); "
                            "quote it if it is meant as text", line=_node_line(key_node))
        if key in result:
            raise SpecError(f"duplicate key {quoted(key, 100)}", line=_node_line(key_node), field=key)
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


def read_yaml(path: Path) -> Any:
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

