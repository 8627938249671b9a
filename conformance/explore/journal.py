"""The explore journal: everything a session learns, one JSON line at a time, so that nothing is lost
(Ctrl-C, a kill, a full disk keep every line written before) and ``--resume DIR`` redoes nothing.

``DIR/explore.json`` holds the session's settings (seed, implementations, devices, shard, catalogue
files); ``DIR/journal.jsonl`` a line per configuration run (its index, fields, signatures, the
declarations that explained its runs, how long it took) and per finding shrunk or confirmed. Each
line is written whole and flushed; a torn last line (a kill mid-write) is ignored on reading.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..results import write_atomic

SETTINGS = "explore.json"
JOURNAL = "journal.jsonl"
MAX_LINE = 4 * 2**20          # a line longer than this in a journal from elsewhere is not read


class JournalError(ValueError):
    """A journal or settings file that cannot be read; the message names the file and the line."""


def write_settings(out: Path, settings: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / SETTINGS, json.dumps(settings, indent=1, sort_keys=True) + "\n")


def read_settings(out: Path) -> dict:
    path = out / SETTINGS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JournalError(f"{path}: not found: --resume needs a directory an explore wrote") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise JournalError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("seed"), int) or not isinstance(data.get("impls"), list):
        raise JournalError(f"{path}: not an explore settings file (seed and impls are missing)")
    return data


def _well_formed(entry) -> bool:
    if not isinstance(entry, dict):
        return False
    if entry.get("kind") == "config":
        sigs = entry.get("signatures")
        return (type(entry.get("index")) is int and entry["index"] >= 0 and isinstance(entry.get("values"), dict)
                and isinstance(sigs, dict) and all(isinstance(v, dict) and {"check", "kind", "impls"} <= set(v)
                                                   for v in sigs.values())
                and all(isinstance(entry.get(k, {}), dict) for k in ("known", "stale", "verdicts", "impl_seconds"))
                and isinstance(entry.get("seconds", 0.0), (int, float)))
    if entry.get("kind") == "finding":
        return isinstance(entry.get("signature"), str) and isinstance(entry.get("minimal", {}), dict)
    return False


class Journal:
    def __init__(self, out: Path):
        self.path = out / JOURNAL
        self.file = None

    def read(self) -> list[dict]:
        """Every whole line written so far (a torn or foreign last line is skipped, said by the caller)."""
        if not self.path.exists():
            return []
        entries = []
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if len(line) > MAX_LINE:
                    raise JournalError(f"{self.path}:{number}: a line of {len(line):,} bytes; not a journal line")
                try:
                    entry = json.loads(line)
                except ValueError:
                    if line.endswith(b"\n"):
                        raise JournalError(f"{self.path}:{number}: not JSON; the journal is damaged") from None
                    break                   # the last line, cut short by a kill: written again when resumed
                if not _well_formed(entry):
                    raise JournalError(f"{self.path}:{number}: not a journal entry (a config needs an index, values "
                                       "and signatures; a finding a signature)")
                entries.append(entry)
        return entries

    def append(self, entry: dict) -> None:
        if self.file is None:
            if self.path.exists():          # a torn last line from a killed session: cut it off
                with open(self.path, "r+b") as f:
                    data = f.read()
                    if data and not data.endswith(b"\n"):
                        f.truncate(data.rfind(b"\n") + 1)
            self.file = open(self.path, "a", encoding="utf-8")
        self.file.write(json.dumps(entry, sort_keys=True, allow_nan=False, default=str) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
