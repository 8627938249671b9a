"""The report as a maintainer sees it: the default case set's real report, opened in headless Chromium.

The page under test is the index.html the default run wrote (see the ``default_run`` fixture);
expected numbers come from that run's results.json. Screenshots go to reports/screenshots/.
"""

import copy
from collections import Counter
from pathlib import Path

import pytest

from conformance import report
from conformance.results import write

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "reports" / "screenshots"


def open_report(page, path: Path):
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("html[data-ready='1']")
    return page


@pytest.fixture
def default_report(page, default_run):
    return open_report(page, default_run["out"] / "index.html")


def cases_with(runs, pred) -> set:
    return {(r["file"], r["case"]) for r in runs if pred(r)}


def shown_total(page) -> int:
    return int(page.text_content("#shown").split(" of ")[1].split(" ")[0].rstrip(")"))


def test_the_report_opens_with_no_errors_in_the_console(default_report):
    assert default_report.console_errors == [] and default_report.page_errors == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    default_report.screenshot(path=str(SHOTS / "report-matrix.png"))
    assert (SHOTS / "report-matrix.png").stat().st_size > 10_000


def test_the_matrix_lists_every_case_of_the_results(default_report, default_run):
    runs = default_run["doc"]["runs"]
    assert shown_total(default_report) == len(cases_with(runs, lambda r: True))
    rows = default_report.locator("#matrix tbody tr[data-case]").count()
    assert rows == len(cases_with(runs, lambda r: True))          # fewer than one page of 200


def test_the_matrix_counts_every_verdict_as_the_results_do(default_report, default_run):
    expected = Counter(r["verdict"] for r in default_run["doc"]["runs"])
    shown = {el.get_attribute("data-verdict"): int(el.get_attribute("data-count"))
             for el in default_report.query_selector_all("#view-counts [data-verdict]")}
    assert shown == dict(expected)
    cells = Counter(el.get_attribute("data-verdict")
                    for el in default_report.query_selector_all("#matrix td.cell"))
    assert {v: cells[v] for v in expected} == dict(expected)


def test_the_header_counts_each_column_per_verdict(default_report, default_run):
    for col, counts in default_run["doc"]["summary"].items():
        for verdict, n in counts.items():
            cell = default_report.locator(f"#counts td[data-col='{col}'][data-verdict='{verdict}']")
            assert cell.text_content() == str(n)


def test_a_verdict_filter_keeps_the_cases_with_that_verdict(default_report, default_run):
    default_report.select_option("#f-verdict", "unsupported")
    expected = cases_with(default_run["doc"]["runs"], lambda r: r["verdict"] == "unsupported")
    assert shown_total(default_report) == len(expected)
    for row in default_report.query_selector_all("#matrix tbody tr[data-case]"):
        assert row.query_selector("td.cell[data-verdict='unsupported']") is not None


def test_an_impl_filter_leaves_that_implementation_s_column(default_report):
    default_report.select_option("#f-impl", "torch")
    heads = [th.text_content() for th in default_report.query_selector_all("#matrix thead th")]
    assert heads[1:] == ["torch@cpu"]


def test_a_check_filter_shows_that_check_s_verdicts(default_report, default_run):
    default_report.select_option("#f-check", "param_count")
    default_report.select_option("#f-verdict", "known-divergence")
    expected = cases_with(default_run["doc"]["runs"],
                          lambda r: r["checks"].get("param_count", {}).get("verdict") == "known-divergence")
    assert shown_total(default_report) == len(expected)


def test_the_divergences_only_view_hides_cases_where_every_run_agrees(default_report, default_run):
    default_report.check("#f-divergent")
    divergent = cases_with(default_run["doc"]["runs"],
                           lambda r: r["verdict"] not in ("agree", "unsupported", "skipped"))
    assert shown_total(default_report) == len(divergent)


def test_a_text_filter_finds_cases_by_id(default_report, default_run):
    default_report.fill("#f-text", "merge-ave")
    expected = cases_with(default_run["doc"]["runs"], lambda r: "merge-ave" in r["case"])
    assert shown_total(default_report) == len(expected) > 0


def test_sorting_by_a_column_puts_its_most_severe_verdicts_first_in_each_file(default_report):
    default_report.click("#matrix thead th[data-col='torch@cpu']")
    groups = default_report.evaluate("""() => {
      const col = [...document.querySelectorAll('#matrix thead th')].findIndex(th => th.dataset.col === 'torch@cpu');
      const groups = [];
      for (const tr of document.querySelectorAll('#matrix tbody tr')) {
        if (tr.classList.contains('group')) groups.push([]);
        else groups[groups.length - 1].push(tr.children[col].dataset.verdict);
      }
      return groups;
    }""")
    severity = {"error": 5, "diverge": 4, "stale": 3, "known-divergence": 2, "agree": 1, "unsupported": 0,
                "skipped": 0, "none": -1}
    assert len(groups) > 1
    for verdicts in groups:
        ranks = [severity[v] for v in verdicts]
        assert ranks == sorted(ranks, reverse=True)


def test_a_case_opens_with_its_reference_and_a_panel_per_implementation(default_report, default_run):
    case = "bidirectional-state"
    default_report.click(f"#matrix tr[data-case='{case}'] a.case-link")
    detail = default_report.locator("#detail")
    detail.wait_for(state="visible")
    runs = [r for r in default_run["doc"]["runs"] if r["case"] == case]
    panels = detail.locator(".impl-panel[data-col]")
    assert panels.count() == len(runs)
    torch = detail.locator(".impl-panel[data-col='torch@cpu']")
    assert "torch-double-bias" in torch.text_content()                        # the declared reason
    assert "(2, 2, 4)" in torch.text_content()                                  # h_n as torch returns it
    assert "canonical reference" in detail.text_content()
    assert "torch.nn.LSTM(3, 4" in torch.locator("pre.repro").text_content()  # the copy-pastable repro
    default_report.screenshot(path=str(SHOTS / "report-case.png"), full_page=False)
    assert default_report.console_errors == []


def test_strings_from_results_show_as_text_and_run_nothing(page, default_run, tmp_path):
    doc = copy.deepcopy(default_run["doc"])
    hostile = "<script>alert(1)</script>"
    r = doc["runs"][0]
    r["case"], r["reason"] = hostile, '<img src=x onerror="alert(2)">'
    for run in doc["runs"]:
        for chk in run["checks"].values():
            if chk["divergence"]:
                chk["divergence"] = {**chk["divergence"], "link": "javascript:alert(3)"}
    path = write(tmp_path, doc["runs"])
    out = report.write_report([path], tmp_path / "index.html")
    open_report(page, out)
    page.fill("#f-text", "script")
    assert page.locator("#matrix a.case-link").first.text_content() == hostile
    page.locator("#matrix a.case-link").first.click()
    page.locator("#detail").wait_for(state="visible")
    assert page.dialogs == [] and page.console_errors == [] and page.page_errors == []
    assert page.locator("a[href^='javascript:']").count() == 0
