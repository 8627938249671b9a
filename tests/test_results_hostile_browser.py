"""Reports of results from elsewhere, opened in headless Chromium (the ``page`` fixture in
conftest.py; skipped without Chromium): what validation accepts, the page shows, with no error in
the page. The runs are real torch runs (``real_results``)."""

import copy

from conformance import report
from conformance.results import write


def open_case(page, html, case: str):
    page.goto(html.resolve().as_uri())
    page.wait_for_selector("html[data-ready='1']")
    page.fill("#f-text", case)
    page.click(f"#matrix tr[data-case='{case}'] a.case-link")
    page.locator("#detail").wait_for(state="visible")
    return page.locator("#detail")


def test_a_report_of_nan_and_infinity_measurements_opens_and_shows_them(page, real_results, tmp_path):
    runs = copy.deepcopy(real_results["runs"])
    run = next(r for r in runs if "values" in r["checks"])
    tensors = run["checks"]["values"]["details"]["tensors"]
    tensors[0]["max_abs"], tensors[0]["max_rel"] = float("nan"), float("inf")   # as a framework returning NaN
    tensors[-1]["max_abs"] = float("-inf")
    run["timings"]["total_s"] = float("nan")
    html = report.write_report([write(tmp_path, runs)], tmp_path / "index.html")
    detail = open_case(page, html, run["case"])
    text = detail.text_content()
    assert f"{tensors[0]['tensor']}: max abs NaN" in text and f"{tensors[-1]['tensor']}: max abs -Infinity" in text
    assert page.page_errors == [] and page.console_errors == []


def test_a_report_of_null_parameter_counts_opens_and_shows_them_as_missing(page, real_results, tmp_path):
    runs = copy.deepcopy(real_results["runs"])
    for r in runs:
        if "param_count" in r["checks"]:
            r["checks"]["param_count"]["details"].update(observed=None, documented=None)
    case = next(r for r in runs if "param_count" in r["checks"])["case"]
    html = report.write_report([write(tmp_path, runs)], tmp_path / "index.html")
    detail = open_case(page, html, case)
    assert "native —, canonical" in detail.text_content()
    cells = page.locator("#params tbody td[data-verdict]")
    assert cells.count() > 0 and cells.first.text_content().startswith("— ")
    assert page.page_errors == [] and page.console_errors == []


def test_a_report_of_check_details_in_an_unknown_shape_opens_and_shows_them_as_data(page, real_results, tmp_path):
    runs = copy.deepcopy(real_results["runs"])
    run = next(r for r in runs if "claims" in r["checks"])
    run["checks"]["claims"]["details"] = {}                                 # a claims check without its claims
    run["checks"]["newer_check"] = {"verdict": "agree", "details": {"tensors": None, "x": [1, {"y": None}]},
                                    "divergence": None}
    html = report.write_report([write(tmp_path, runs)], tmp_path / "index.html")
    text = open_case(page, html, run["case"]).text_content()
    assert '{"tensors":null,"x":[1,{"y":null}]}' in text and "0 claims, below" in text
    assert page.page_errors == [] and page.console_errors == []
