"""The explore loop: draw a configuration, run it on every selected implementation and device
through the same workers, checks, reference and catalogue as ``conformance run``, group what
disagrees by signature, shrink each new signature to a minimal configuration, confirm it on the bare
framework, journal everything.

One configuration's runs go to the implementations' workers side by side (``jobs`` threads, each
waiting on another implementation's process), so two cores run two frameworks at once.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import results, spec
from ..catalogue import builtin_catalogue, in_scope
from ..runner import WorkerPool
from . import confirm, journal, shrink, signature, space

DEFAULT_SHRINK_TRIES = 48


@dataclass
class Settings:
    seed: int
    impls: list[str]
    devices: list[str]
    max_configs: int | None = None
    time_s: float | None = None
    shard: tuple[int, int] | None = None
    divergences: list[str] = field(default_factory=list)
    builtin: bool = True
    shrink_tries: int = DEFAULT_SHRINK_TRIES
    confirm: bool = True
    jobs: int = 2
    run_timeout: float = 120.0
    shape_only: bool = False      # every configuration shape-only (results.execute(shape_only=True)): a fast first pass

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shard"] = list(self.shard) if self.shard else None
        return d

    # What a resumed session must share with the one it continues (the rest it may change).
    FIXED = ("seed", "impls", "devices", "shard", "divergences", "builtin", "shape_only")


def indices(settings: Settings):
    """The configuration indices this session draws, in order: every one, or its shard's."""
    i = 0
    while True:
        if settings.shard is None or i % settings.shard[1] == settings.shard[0] - 1:
            yield i
        i += 1


def parse_where(text: str) -> tuple[str, str]:
    impl, _, device = text.partition("@")
    return impl, device or "cpu"


class Explorer:
    def __init__(self, out: Path, settings: Settings, say=None, resume: bool = False):
        self.out, self.settings = Path(out), settings
        self.say = say or (lambda line, final=False: print(line, file=sys.stderr))
        self.journal = journal.Journal(self.out)
        self.pool = WorkerPool(run_timeout=settings.run_timeout)
        self.decls = self._catalogue()
        self.configs: dict[int, dict] = {}      # index -> its journal entry
        self.findings: dict[str, dict] = {}     # signature -> finding entry (journal "finding" lines, merged)
        self.stopped = "running"
        self.explore_s = self.shrink_s = self.confirm_s = 0.0
        if resume:
            self._replay(self.journal.read())

    # ---- setup ----
    def _catalogue(self) -> list[spec.Divergence]:
        layers = []
        if self.settings.builtin:
            layers.append(spec.load_file(builtin_catalogue()).divergences)
        layers += [spec.load_file(p).divergences for p in self.settings.divergences]
        return in_scope(layers)

    def _replay(self, entries: list[dict]) -> None:
        for e in entries:
            if e["kind"] == "config":
                self.configs[e["index"]] = e
                self.explore_s += e.get("seconds", 0.0)
                for sig in e.get("signatures", {}):
                    self._count(sig, e)
            else:
                self.findings.setdefault(e["signature"], {}).update({k: v for k, v in e.items() if k != "kind"})
                self.shrink_s += e.get("shrink", {}).get("seconds", 0.0)
                self.confirm_s += e.get("confirm_seconds", 0.0)

    def _count(self, sig: str, entry: dict) -> dict:
        f = self.findings.setdefault(sig, {"signature": sig, **entry["signatures"][sig], "configs": 0,
                                           "examples": [], "first": entry["index"], "original": entry["values"]})
        f["configs"] = f.get("configs", 0) + 1
        if len(f.setdefault("examples", [])) < 10:
            f["examples"].append(entry["index"])
        return f

    # ---- runs ----
    def run_values(self, values: dict, where: list[tuple[str, str]], case_id: str, executor) -> list[dict]:
        case = spec.Case(id=case_id, config=spec.config_of(values), file="explore")
        futures = [executor.submit(self._one, case, impl, device) for impl, device in where]
        return [f.result() for f in futures]

    def _one(self, case: spec.Case, impl: str, device: str) -> dict:
        try:
            return results.execute(case, impl, device, self.pool, self.decls, shape_only=self.settings.shape_only)
        except Exception as exc:  # noqa: BLE001 - the run keeps a record, as in conformance run
            return results.failed_record(case, impl, device, exc)

    def everywhere(self) -> list[tuple[str, str]]:
        return [(i, d) for i in self.settings.impls for d in self.settings.devices]

    # ---- the loop ----
    def explore(self) -> str:
        s = self.settings
        journal.write_settings(self.out, {**s.to_dict(), "tool": "lstm-conformance explore"})
        start = time.monotonic()
        deadline = None if s.time_s is None else start + s.time_s
        executor = ThreadPoolExecutor(max_workers=max(1, s.jobs))
        try:
            self._finish_pending(executor, deadline)
            for index in indices(s):
                if s.max_configs is not None and len(self.configs) >= s.max_configs:
                    self.stopped = "max-configs"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.stopped = "time"
                    break
                if index in self.configs:
                    continue
                self._explore_one(index, executor, deadline)
                self._progress(start, deadline)
        except KeyboardInterrupt:
            self.stopped = "interrupted"
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            self.pool.close()
            self.journal.close()
        return self.stopped

    def _explore_one(self, index: int, executor, deadline) -> None:
        values = space.draw(self.settings.seed, index)
        t0 = time.monotonic()
        records = self.run_values(values, self.everywhere(), f"explore-{self.settings.seed}-{index}", executor)
        seconds = time.monotonic() - t0
        self.explore_s += seconds
        sigs = signature.signatures(records)
        entry = {"kind": "config", "index": index, "values": values, "signatures": sigs,
                 "known": signature.known(records), "stale": signature.known(records, "stale"), "seconds": round(seconds, 3),
                 "verdicts": {signature.where(r): r["verdict"] for r in records},
                 "impl_seconds": {signature.where(r): round(r["timings"].get("roundtrip_s", 0.0), 3)
                                  for r in records if r.get("timings")}}
        self.journal.append(entry)
        self.configs[index] = entry
        for sig in sigs:
            f = self._count(sig, entry)
            if "minimal" not in f:
                self.say(f"explore: new finding in configuration {index}: {sig}")
                self._shrink(f, executor, deadline)
                self._confirm(f, executor, deadline)

    def _finish_pending(self, executor, deadline) -> None:
        """A resumed session first finishes what the last one left: shrinks and confirmations."""
        for f in list(self.findings.values()):
            if not f.get("shrink", {}).get("finished"):
                self._shrink(f, executor, deadline)
            if "confirm" not in f:
                self._confirm(f, executor, deadline)

    def _shrink(self, f: dict, executor, deadline) -> None:
        where = [parse_where(w) for w in f["impls"]]
        start_from = f.get("minimal", f["original"])
        t0 = time.monotonic()
        counter = [0]

        def still_shows(values: dict) -> bool:
            counter[0] += 1
            recs = self.run_values(values, where, f"shrink-{counter[0]}", executor)
            return signature.shows(recs, f)

        budget = self.settings.shrink_tries - f.get("shrink", {}).get("tries", 0)
        minimal, tries, finished = shrink.shrink(start_from, still_shows, max(0, budget), deadline)
        seconds = time.monotonic() - t0 + f.get("shrink", {}).get("seconds", 0.0)
        self.shrink_s += time.monotonic() - t0
        f["minimal"] = minimal
        f["shrink"] = {"tries": tries + f.get("shrink", {}).get("tries", 0), "seconds": round(seconds, 3),
                       "finished": finished or budget <= tries, "from": list(space.size_of(f["original"])),
                       "to": list(space.size_of(minimal))}
        self.journal.append({"kind": "finding", "signature": f["signature"], "minimal": minimal,
                             "shrink": f["shrink"]})

    def _confirm(self, f: dict, executor, deadline) -> None:
        """The minimal configuration on every implementation (which agree, the native facts), and each
        involved implementation's repro snippet run on the bare framework."""
        if deadline is not None and time.monotonic() >= deadline:
            return
        t0 = time.monotonic()
        case_id = signature.slug(f["signature"])
        records = self.run_values(f["minimal"], self.everywhere(), case_id, executor)
        involved = set(f["impls"])
        facts, agree, unsupported = {}, [], []
        for rec in records:
            w = signature.where(rec)
            chk = (rec.get("checks") or {}).get(f["check"])
            if w in involved:
                facts[w] = {"verdict": rec["verdict"], "reason": rec["reason"], "check": chk,
                            "native": rec["native"], "canonical": rec["canonical"], "versions": rec["versions"],
                            "fault": rec["fault"]}
            elif rec["verdict"] in ("unsupported", "skipped"):
                unsupported.append(w)
            elif chk is None or chk["verdict"] in ("agree", "known-divergence"):
                agree.append(w)
        checked = {}
        if self.settings.confirm:
            for w in sorted(involved):
                impl, device = parse_where(w)
                rec = next((r for r in records if signature.where(r) == w), None)
                snippet = rec["native"].get("repro") if rec else ""
                if not snippet or device != "cpu":
                    checked[w] = {"confirmed": False, "why": "no repro snippet" if not snippet
                                  else "snippets run on CPU only", "printed": ""}
                    continue
                printed = confirm.run_snippets(impl, [snippet])[0]
                checked[w] = confirm.verdict(rec, printed)
        seconds = time.monotonic() - t0
        self.confirm_s += seconds
        f.update(facts=facts, agree=agree, unsupported=unsupported, confirm=checked,
                 confirm_seconds=round(seconds, 3), reference=records[0]["reference"] if records else None)
        self.journal.append({"kind": "finding", "signature": f["signature"], "facts": facts, "agree": agree,
                             "unsupported": unsupported, "confirm": checked, "confirm_seconds": f["confirm_seconds"],
                             "reference": f["reference"]})

    def _progress(self, start: float, deadline) -> None:
        done = len(self.configs)
        minutes = max(time.monotonic() - start, 1e-9) / 60
        rate = done / minutes
        left = "" if deadline is None else f", {max(0, deadline - time.monotonic()) / 60:.1f} min left"
        cap = f"/{self.settings.max_configs}" if self.settings.max_configs else ""
        self.say(f"explore: {done}{cap} configurations, {len(self.findings)} findings, "
                 f"{rate:.1f} configurations/min{left}")

    # ---- what the session found ----
    def throughput(self) -> dict:
        per_impl: dict[str, float] = {}
        for e in self.configs.values():
            for w, sec in e.get("impl_seconds", {}).items():
                per_impl[w] = per_impl.get(w, 0.0) + sec
        total = self.explore_s + self.shrink_s + self.confirm_s
        n = len(self.configs)
        return {"configs": n, "explore_s": round(self.explore_s, 3), "shrink_s": round(self.shrink_s, 3),
                "confirm_s": round(self.confirm_s, 3),
                "configs_per_min": round(n / (total / 60), 2) if total > 0 else None,
                "shrink_share": round(self.shrink_s / total, 3) if total > 0 else None,
                "impl_s": {w: round(v, 3) for w, v in sorted(per_impl.items())},
                "impl_configs_per_min": {w: (round(n / (v / 60), 1) if v > 0 else None)
                                         for w, v in sorted(per_impl.items())}}

    def known(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.configs.values():
            for d, n in e.get("known", {}).items():
                out[d] = out.get(d, 0) + n
        return dict(sorted(out.items()))

    def stale(self) -> dict[str, dict]:
        """Declarations that said a run differs when it did not: in how many configurations, which."""
        out: dict[str, dict] = {}
        for index, e in sorted(self.configs.items()):
            for d in e.get("stale", {}):
                s = out.setdefault(d, {"configs": 0, "examples": []})
                s["configs"] += 1
                if len(s["examples"]) < 10:
                    s["examples"].append(index)
        return out

    def unused(self) -> list[dict]:
        used = self.known()
        return [{"id": d.id, "file": results.display_path(d.file, Path.cwd()), "line": d.line}
                for d in self.decls if d.id not in used]
