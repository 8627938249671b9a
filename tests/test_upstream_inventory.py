"""The upstream inventory (``docs/upstream/``), the upstream cases (``cases/upstream/``) and the
README's table say the same thing: every expectation in the set names cases that exist and cite
its test, every upstream case carries some expectation, and the README's counts are the
inventory's."""

import collections
import re
from pathlib import Path

import pytest
import yaml

from conformance import spec

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("keras3", "tf-keras", "torch", "flax-linen", "flax-nnx")


def inventory(source: str) -> list[dict]:
    return yaml.safe_load((REPO / "docs" / "upstream" / f"{source}.yaml").read_text())["expectations"]


def in_set(entry: dict) -> list[str]:
    ids = entry.get("in_set") or []
    return [ids] if isinstance(ids, str) else list(ids)


@pytest.mark.parametrize("source", SOURCES)
def test_every_expectation_in_the_set_names_cases_that_cite_its_test(source):
    cases = {c.id: c for c in spec.load_file(REPO / "cases" / "upstream" / f"{source}.yaml").cases}
    for entry in inventory(source):
        for case_id in in_set(entry):
            assert case_id in cases, (entry["test"], case_id)
            case = cases[case_id]
            test_name = re.sub(r"\d+$", "", entry["test"].rsplit("::", 1)[-1])   # absl's parameter index
            cited = case.description + " ".join(c.source for c in case.claims)
            assert test_name in cited, (case_id, entry["test"])


@pytest.mark.parametrize("source", SOURCES)
def test_every_upstream_case_carries_an_expectation_and_claims_only_for_its_source(source):
    carried = {i for e in inventory(source) for i in in_set(e)}
    impls = {"keras3": "keras-*", "tf-keras": "tf-keras", "torch": "torch", "flax-linen": "flax-linen*",
             "flax-nnx": "flax-nnx*"}[source]
    for case in spec.load_file(REPO / "cases" / "upstream" / f"{source}.yaml").cases:
        assert case.id in carried, case.id
        assert all(claim.impl == (impls,) and claim.holds for claim in case.claims), case.id


@pytest.mark.parametrize("source", SOURCES)
def test_an_expectation_is_in_the_set_or_says_what_it_still_needs(source):
    for entry in inventory(source):
        assert bool(in_set(entry)) != bool(entry["needs"]), entry["test"]


def test_the_readme_table_counts_what_the_inventory_holds():
    readme = (REPO / "README.md").read_text()
    for source in SOURCES:
        entries = inventory(source)
        scope = [e for e in entries if not in_set(e) and any(str(n).startswith("out_of_scope") for n in e["needs"])]
        rest = [e for e in entries if not in_set(e) and e not in scope]
        needs = collections.Counter(n for e in rest for n in e["needs"])
        row = re.search(rf"^\| {re.escape(source)} \| (.*) \|$", readme, re.M)
        assert row, source
        cells = [c.strip() for c in row.group(1).split("|")]
        assert cells[:4] == [str(len(entries)), str(sum(1 for e in entries if in_set(e))), str(len(scope)),
                             str(len(rest))], source
        assert dict((k, int(v)) for k, v in (p.rsplit(" ", 1) for p in cells[4].split(", "))) == dict(needs), source
