"""Splitting one session's runs across machines (``--shard I/N``), and putting the shards together.

A run's shard depends only on its own key (case file as results name it, case id, implementation,
device): a SHA-256 of that key, modulo N. So adding a case moves no other run to another shard, and
every machine computes the same split without talking to the others.

Each shard's results.json says which shard it is (``shard``: index, count, the session's ``group``
and how many runs the whole session collected before the split). :func:`combine` puts the shards of
one group back into one results document, with ``shards`` saying which arrived and which did not;
``conformance report`` does that before rendering, and writes the combined results.json beside the
report so that ``conformance diff`` can compare it with an unsharded run.
"""

from __future__ import annotations

import hashlib
import json
import re

MAX_SHARDS = 10_000
_SHARD_RE = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


class ShardError(ValueError):
    pass


def parse_option(value: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> ``(I, N)``; raises pytest.UsageError naming the option for anything else."""
    if value is None:
        return None
    import pytest

    m = _SHARD_RE.match(value)
    if not m:
        raise pytest.UsageError(f"--shard {value!r}: must be I/N, e.g. 1/4 (shard I of N, counted from 1)")
    i, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= MAX_SHARDS or not 1 <= i <= n:
        raise pytest.UsageError(f"--shard {value!r}: need 1 <= I <= N <= {MAX_SHARDS:,}")
    return i, n


def shard_of(key: tuple[str, str, str, str], count: int) -> int:
    """The shard (1..count) of the run named ``key`` (file, case, impl, device)."""
    digest = hashlib.sha256("\0".join(key).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def group_of(selection: dict) -> str:
    """Names a session's selection (implementations, devices, case files, -k, framework versions):
    the shards of one session share it, those of another release or selection do not."""
    return hashlib.sha256(json.dumps(selection, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _label(path: str, doc: dict) -> str:
    s = doc["shard"]
    return f"{path} (shard {s['index']}/{s['count']})"


def combine(sources: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """``sources`` (path, results document) with the shards of each group put together into one
    document each (in the place of the group's first shard); other documents are left as they are.
    Raises :class:`ShardError` for shards that cannot be one session: the same shard twice, a run
    in the wrong shard, different counts in one group."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    out: list[tuple[str, dict] | str] = []
    for path, doc in sources:
        s = doc.get("shard")
        if not isinstance(s, dict):
            out.append((path, doc))
            continue
        if s["group"] not in groups:
            groups[s["group"]] = []
            out.append(s["group"])
        groups[s["group"]].append((path, doc))
    return [_combine(groups[x]) if isinstance(x, str) else x for x in out]


def _combine(members: list[tuple[str, dict]]) -> tuple[str, dict]:
    count = members[0][1]["shard"]["count"]
    seen: dict[int, str] = {}
    for path, doc in members:
        s = doc["shard"]
        if s["count"] != count:
            raise ShardError(f"{_label(path, doc)} and {_label(*members[0])}: one session split two ways")
        if s["index"] > count:
            raise ShardError(f"{_label(path, doc)}: there is no shard {s['index']} of {count}")
        if s["index"] in seen:
            raise ShardError(f"{_label(path, doc)}: shard {s['index']}/{count} given twice "
                             f"(also {seen[s['index']]})")
        seen[s["index"]] = path
        for r in doc["runs"]:
            key = (r["file"], r["case"], r["impl"], r["device"])
            if shard_of(key, count) != s["index"]:
                raise ShardError(f"{_label(path, doc)}: run {r['case']} on {r['impl']}@{r['device']} "
                                 f"belongs to shard {shard_of(key, count)}/{count}, not this one")
    arrived = sorted(seen)
    missing = [i for i in range(1, count + 1) if i not in seen]
    docs = [doc for _, doc in sorted(members, key=lambda m: m[1]["shard"]["index"])]
    notes = [f"shard {d['shard']['index']}/{count}: {d['partial']['reason']}" for d in docs if d.get("partial")]
    if missing:
        notes.insert(0, f"shard{'s' if len(missing) > 1 else ''} {', '.join(f'{i}/{count}' for i in missing)} "
                        "did not arrive")
    combined = merged(docs, notes, expected=docs[0]["shard"].get("collected"), every_part=not missing)
    combined["shards"] = {"count": count, "group": docs[0]["shard"]["group"], "arrived": arrived,
                          "missing": missing, "complete": not missing, "files": [seen[i] for i in arrived]}
    label = members[0][0] if len(members) == 1 else f"{len(members)} shards of {count}"
    return label, combined


def merged(docs: list[dict], notes: list[str], expected: int | None = None, every_part: bool = True) -> dict:
    """One results document holding the runs of ``docs`` (no run in two of them), partial with
    ``notes`` as its reason when there are any (the parts' own partial reasons, parts that did not
    arrive); a declaration is unused when it is unused in every part (and ``every_part``: all are here)."""
    from .results import environment, summarize

    runs = sorted((r for d in docs for r in d["runs"]), key=lambda r: (r["file"], r["case"], r["impl"], r["device"]))
    partial = list(notes)
    unused_ids = set.intersection(*({u["id"] for u in d.get("unused_divergences", [])} for d in docs)) \
        if every_part and docs else set()
    unused = {u["id"]: u for d in docs for u in d.get("unused_divergences", []) if u["id"] in unused_ids}
    errors = {(e["file"], e["message"]): e for d in docs for e in d.get("collection_errors", [])}
    catalogues = {(c["path"], c["layer"]): c for d in docs for c in d.get("catalogues", [])}
    fresh = environment(runs)            # (its python, platform and machine are this process's: not taken)
    env = {**docs[0].get("environment", {}), "versions": fresh["versions"], "devices": fresh["devices"]}
    doc = {
        **docs[0],
        "created": max(d.get("created", "") for d in docs),
        "partial": None if not partial else {"reason": "; ".join(partial), "finished": len(runs), "expected": expected},
        "environment": env,
        "summary": summarize(runs),
        "unused_divergences": list(unused.values()),
        "collection_errors": list(errors.values()),
        "catalogues": list(catalogues.values()),
        "runs": runs,
    }
    doc.pop("shard", None)
    return doc


def union(sources: list[tuple[str, dict]]) -> dict | None:
    """One results document of every source's runs (the jobs of a CI matrix: implementations, devices,
    shards), or None when two sources hold the same run (two framework releases of one
    implementation: those only sit side by side in a report)."""
    keys: set = set()
    for _, doc in sources:
        for r in doc["runs"]:
            key = (r["file"], r["case"], r["impl"], r["device"])
            if key in keys:
                return None
            keys.add(key)
    if len(sources) == 1:
        return sources[0][1]
    notes = [f"{path}: {doc['partial']['reason']}" for path, doc in sources if doc.get("partial")]
    doc = merged([d for _, d in sources], notes)
    groups = [d["shards"] for _, d in sources if d.get("shards")]
    if len(groups) == 1:
        doc["shards"] = groups[0]
    return doc
