"""The report as a maintainer sees it: the default case set's real report, opened in headless Chromium.

The page under test is the index.html the default run wrote (see the ``default_run`` fixture);
expected numbers come from that run's results.json. Screenshots of it, at 1280 and 1920 px, go to
docs/screenshots/ (the README shows them).
"""

import copy
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from conformance import report
from conformance.results import write

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "docs" / "screenshots"
WIDTHS = {1280: 800, 1920: 1080}          # viewport width -> height: a laptop, a desktop
NOT_DIFFERING = ("agree", "unsupported", "skipped")


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


PAGE = 200     # cases per page of the matrix (report.js)


def on_page(page, runs) -> list:
    """The runs of the cases the matrix's current page shows (the default set has more than a page)."""
    ids = set(page.evaluate("() => [...document.querySelectorAll('#matrix tbody tr[data-case]')]"
                            ".map(tr => tr.dataset.case)"))
    return [r for r in runs if r["case"] in ids]


def test_the_report_opens_with_no_errors_in_the_console(default_report):
    assert default_report.console_errors == [] and default_report.page_errors == []


def test_the_matrix_lists_every_case_of_the_results(default_report, default_run):
    runs = default_run["doc"]["runs"]
    assert shown_total(default_report) == len(cases_with(runs, lambda r: True)) > PAGE
    rows = default_report.locator("#matrix tbody tr[data-case]").count()
    assert rows == PAGE                                           # the first page of the matrix


def test_the_matrix_counts_every_verdict_as_the_results_do(default_report, default_run):
    expected = Counter(r["verdict"] for r in default_run["doc"]["runs"])
    shown = {el.get_attribute("data-verdict"): int(el.get_attribute("data-count"))
             for el in default_report.query_selector_all("#view-counts [data-verdict]")}
    assert shown == dict(expected)
    cells = Counter(el.get_attribute("data-verdict")
                    for el in default_report.query_selector_all("#matrix td.cell"))
    page_expected = Counter(r["verdict"] for r in on_page(default_report, default_run["doc"]["runs"]))
    assert {v: cells[v] for v in page_expected} == dict(page_expected)


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
    default_report.fill("#f-text", case)          # (the matrix shows the worst cases first, a page at a time)
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


# ---- what differs, where, why: a mark per check in every cell ----

def by_column(runs) -> dict:
    """{(case, impl@device): run} (case ids are unique in the default set)."""
    return {(r["case"], f"{r['impl']}@{r['device']}"): r for r in runs}


def declared_by(chk) -> str | None:
    return (chk.get("divergence") or {}).get("id") if chk["verdict"] != "agree" else None


MATRIX_MARKS = """() => {
  const cols = [...document.querySelectorAll('#matrix thead th')].map(th => th.dataset.col);
  const out = {};
  for (const tr of document.querySelectorAll('#matrix tbody tr[data-case]'))
    [...tr.children].forEach((td, i) => {
      if (i && td.dataset.run !== undefined) out[tr.dataset.case + ' ' + cols[i]] =
        [...td.querySelectorAll('.mk')].map(m => [m.dataset.check, m.dataset.verdict]);
    });
  return out;
}"""


def test_every_cell_has_a_mark_per_check_of_its_run_with_that_check_s_verdict(default_report, default_run):
    shown = default_report.evaluate(MATRIX_MARKS)
    runs = by_column(default_run["doc"]["runs"])
    assert len(shown) == len(on_page(default_report, default_run["doc"]["runs"]))
    for key, marks in shown.items():
        case, col = key.split(" ")
        assert dict(marks) == {name: chk["verdict"] for name, chk in runs[(case, col)]["checks"].items()}, key


def test_a_mark_reads_without_colour_a_bare_letter_when_its_check_agrees_and_a_symbol_per_verdict_otherwise(
        default_report):
    marks = default_report.evaluate("""() => [...document.querySelectorAll('#matrix .mk')]
        .map(m => [m.dataset.verdict, m.textContent])""")
    assert {len(text) for verdict, text in marks if verdict == "agree"} == {1}
    symbols = defaultdict(set)
    for verdict, text in marks:
        if verdict != "agree":
            symbols[verdict].add(text[1:])
    assert all(len(s) == 1 for s in symbols.values()) and len({next(iter(s)) for s in symbols.values()}) == len(symbols)
    assert "known-divergence" in symbols


def test_a_declared_check_s_mark_names_the_declaration_and_its_reason_on_hover(default_report, default_run):
    run = next(r for r in default_run["doc"]["runs"] if any(declared_by(c) for c in r["checks"].values()))
    name, chk = next((n, c) for n, c in run["checks"].items() if declared_by(c))
    mark = default_report.locator(f"#matrix tr[data-case='{run['case']}'] td.cell .mk[data-check='{name}']").nth(
        [c.get_attribute("data-col") for c in default_report.query_selector_all("#matrix thead th")][1:]
        .index(f"{run['impl']}@{run['device']}"))
    title = mark.get_attribute("title")
    assert chk["divergence"]["id"] in title and chk["divergence"]["reason"][:60] in title


def test_a_focused_cell_shows_its_declarations_and_reasons_in_a_tooltip(default_report, default_run):
    run = next(r for r in default_run["doc"]["runs"] if r["impl"] == "torch"
               and any(declared_by(c) for c in r["checks"].values()))
    decl = next(c["divergence"] for c in run["checks"].values() if declared_by(c))
    col = [th.get_attribute("data-col") for th in default_report.query_selector_all("#matrix thead th")].index("torch@cpu")
    cell = default_report.locator(f"#matrix tr[data-case='{run['case']}'] > td").nth(col)
    cell.focus()
    tip = default_report.locator("#tip")
    tip.wait_for(state="visible")
    assert decl["id"] in tip.text_content() and decl["reason"][:60] in tip.text_content()
    assert decl["id"] in cell.get_attribute("aria-label")
    assert cell.locator(".v").text_content() == run["verdict"]          # the overall verdict stays in view


def test_cells_are_reached_with_the_keyboard_and_enter_opens_the_case(default_report):
    default_report.focus("#f-mute")
    for _ in range(20):                                  # past the pager and the first case link
        default_report.keyboard.press("Tab")
        if default_report.evaluate("document.activeElement.matches('td.cell')"):
            break
    case = default_report.evaluate("document.activeElement.parentElement.dataset.case")
    default_report.keyboard.press("Enter")
    default_report.locator("#detail").wait_for(state="visible")
    assert case in default_report.locator("#detail h3").text_content()


# ---- muting a declaration ----

def header_count(page, col: str, verdict: str) -> int:
    return int(page.locator(f"#counts td[data-col='{col}'][data-verdict='{verdict}']").text_content())


def test_the_mute_list_offers_every_declaration_that_explains_a_run(default_report, default_run):
    offered = {o.text_content() for o in default_report.query_selector_all("#f-mute option")} - {"none"}
    assert offered == {declared_by(c) for r in default_run["doc"]["runs"] for c in r["checks"].values()} - {None}


def test_muting_torch_double_bias_moves_the_torch_runs_it_alone_explains_to_agree_in_the_header(
        default_report, default_run):
    torch = [r for r in default_run["doc"]["runs"] if r["impl"] == "torch"]
    only_that = sum(r["verdict"] == "known-divergence" and
                    {declared_by(c) for c in r["checks"].values() if c["verdict"] not in ("agree", "skipped")} == {"torch-double-bias"}
                    for r in torch)
    assert only_that > 0
    known, agree = header_count(default_report, "torch@cpu", "known-divergence"), header_count(default_report, "torch@cpu", "agree")
    default_report.select_option("#f-mute", label="torch-double-bias")
    assert header_count(default_report, "torch@cpu", "known-divergence") == known - only_that
    assert header_count(default_report, "torch@cpu", "agree") == agree + only_that


def test_muting_a_declaration_changes_the_shown_verdicts_and_counts_of_the_matrix(default_report, default_run):
    runs = default_run["doc"]["runs"]
    muted = sum(r["verdict"] == "known-divergence" and
                {declared_by(c) for c in r["checks"].values() if c["verdict"] not in ("agree", "skipped")} == {"torch-double-bias"}
                for r in runs)
    before = Counter(r["verdict"] for r in runs)
    default_report.select_option("#f-mute", label="torch-double-bias")
    shown = {el.get_attribute("data-verdict"): int(el.get_attribute("data-count"))
             for el in default_report.query_selector_all("#view-counts [data-verdict]")}
    assert shown["known-divergence"] == before["known-divergence"] - muted
    assert shown["agree"] == before["agree"] + muted
    cells = Counter(el.get_attribute("data-verdict") for el in default_report.query_selector_all("#matrix td.cell"))
    page = on_page(default_report, runs)
    page_muted = sum(r["verdict"] == "known-divergence" and
                     {declared_by(c) for c in r["checks"].values() if c["verdict"] not in ("agree", "skipped")} == {"torch-double-bias"}
                     for r in page)
    assert cells["known-divergence"] == sum(r["verdict"] == "known-divergence" for r in page) - page_muted > 0


# ---- the text filter ----

def searchable(r) -> str:
    """What the text filter reads of a run: its case id, file, reason, declarations and their reasons."""
    decls = [c["divergence"] for c in r["checks"].values() if declared_by(c)]
    return " ".join([r["case"], r["file"], r.get("reason") or ""] + [f"{d['id']} {d['reason']}" for d in decls]).lower()


def test_a_text_filter_finds_the_cases_a_declaration_explains(default_report, default_run):
    default_report.fill("#f-text", "keras-mask-repeats-last-output")
    expected = cases_with(default_run["doc"]["runs"], lambda r: "keras-mask-repeats-last-output" in searchable(r))
    assert shown_total(default_report) == len(expected) > 0


def test_a_text_filter_does_not_match_configuration_field_names_every_case_has(default_report, default_run):
    runs = default_run["doc"]["runs"]
    assert all("input_size" in r["config"] for r in runs)
    default_report.fill("#f-text", "input_size")
    expected = cases_with(runs, lambda r: "input_size" in searchable(r))
    assert shown_total(default_report) == len(expected) < len(cases_with(runs, lambda r: True))


# ---- native structure ----

def test_the_structure_view_is_linked_from_the_first_screen(default_report):
    default_report.click("#toc a[href='#structure-section']")
    assert default_report.locator("#structure tbody tr").count() > 0
    assert default_report.evaluate("document.querySelector('#structure-section').getBoundingClientRect().top") < 200


def test_the_structure_view_shows_each_implementation_s_returns_in_native_order_with_shapes_and_count(
        default_report, default_run):
    case = "bidirectional-state"
    default_report.fill("#f-text", case)                  # the view follows the matrix's filters
    lines = default_report.evaluate(f"""() => [...document.querySelectorAll("#structure tr[data-case='{case}']:not(.canonical)")]
        .map(tr => [...tr.querySelectorAll('td:not(.case)')].map(td => td.textContent))""")
    shown = {col: (structure, count) for cols, structure, count in lines for col in cols.split(", ")}
    for r in default_run["doc"]["runs"]:
        if r["case"] != case or r["verdict"] == "unsupported":
            continue
        structure, count = shown[f"{r['impl']}@{r['device']}"]
        tops = [x for x in r["native"]["returns"] if x["top"]]
        words = [f"{'out' if x['role'] == 'output' else x['role']} {'×'.join(map(str, x['shape']))}" for x in tops]
        at = 0
        for word in words:                               # each in turn, after the one before
            assert word in structure[at:], (r["impl"], structure, word)
            at = structure.index(word, at) + len(word)
        count_of = r["native"]["param_count"]                # none: the adapter counts nothing (shown as a dash)
        assert count.startswith("—" if count_of is None else str(count_of))


def test_the_structure_view_puts_implementations_that_return_the_same_on_one_line(default_report, default_run):
    case = "bidirectional-state"
    runs = [r for r in default_run["doc"]["runs"] if r["case"] == case and r["verdict"] != "unsupported"]
    distinct = {(report.native_structure(r["native"]["returns"]), r["native"]["param_count"]) for r in runs}
    default_report.fill("#f-text", case)
    assert default_report.locator(f"#structure tr[data-case='{case}']:not(.canonical)").count() == len(distinct)


# ---- a case's detail ----

PANEL_ORDER = ["diverge", "error", "stale", "known-divergence", "agree", "unsupported", "skipped"]


def most_divergent_case(runs) -> str:
    """The case whose runs differ most: failing runs, then declarations, then runs that do not agree."""
    by_case = defaultdict(list)
    for r in runs:
        by_case[r["case"]].append(r)

    def score(rs):
        return (sum(r["verdict"] in ("diverge", "error", "stale") for r in rs),
                len({declared_by(c) for r in rs for c in r["checks"].values()} - {None}),
                sum(r["verdict"] not in NOT_DIFFERING for r in rs), len({r["verdict"] for r in rs}))
    return max(sorted(by_case), key=lambda c: score(by_case[c]))


def open_case(page, case: str):
    page.fill("#f-text", case)
    page.click(f"#matrix tr[data-case='{case}'] a.case-link")
    page.locator("#detail").wait_for(state="visible")
    return page.locator("#detail")


def test_a_case_s_panels_are_ordered_most_severe_verdict_first(default_report, default_run):
    verdicts = defaultdict(set)
    for r in default_run["doc"]["runs"]:
        verdicts[r["case"]].add(r["verdict"])
    case = max(sorted(verdicts), key=lambda c: len(verdicts[c]))          # the case of the most verdicts
    detail = open_case(default_report, case)
    verdicts = [p.get_attribute("data-verdict") for p in detail.locator(".impl-panel[data-col]").all()]
    assert len(set(verdicts)) > 2
    assert verdicts == sorted(verdicts, key=PANEL_ORDER.index)


# ---- layout: nothing overlaps, nothing is cut off ----

LAYOUT_PROBLEMS = """(selectors) => {
  const problems = [];
  const vw = document.documentElement.clientWidth;
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +
    (e.dataset && e.dataset.col ? `[${e.dataset.col}]` : '') + ' "' + (e.textContent || '').trim().slice(0, 40) + '"';
  const inScroller = (e) => {
    for (let a = e.parentElement; a; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const roots = selectors.flatMap((s) => [...document.querySelectorAll(s)]).filter(shown);
  const all = roots.flatMap((r) => [r, ...r.querySelectorAll('*')]).filter(shown);
  for (const e of all) {
    const cs = getComputedStyle(e);
    if (!(e instanceof HTMLElement)) continue;
    // a box that hides what does not fit, with text that does not fit
    if ((['hidden', 'clip'].includes(cs.overflowX) || cs.textOverflow === 'ellipsis') && e.scrollWidth > e.clientWidth + 1)
      problems.push('clipped: ' + name(e));
    // a panel or a cell whose content runs out of it (drawn under its neighbour)
    if (e.matches('.impl-panel, td, th') && cs.overflowX === 'visible' && e.scrollWidth > e.clientWidth + 1)
      problems.push('content wider than its box: ' + name(e));
    // off the page sideways, unless in a box that is meant to scroll
    const r = e.getBoundingClientRect();
    if ((r.right > vw + 1 || r.left < -1) && !inScroller(e)) problems.push('outside the viewport: ' + name(e));
  }
  // sibling boxes that overlap: panels, the cells of a row, rows, filters
  const parents = roots.flatMap((r) => [r, ...r.querySelectorAll('.panels, tr, tbody, thead, form, nav, header, section')]);
  for (const p of parents) {
    const kids = [...p.children].filter(shown).filter((k) => getComputedStyle(k).position !== 'absolute')
      .map((k) => [k, k.getBoundingClientRect()]);
    for (let i = 0; i < kids.length; i++) for (let j = i + 1; j < kids.length; j++) {
      const [a, ra] = kids[i], [b, rb] = kids[j];
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 1 && h > 1) problems.push('overlap: ' + name(a) + ' / ' + name(b));
    }
  }
  // chart text inside its chart
  for (const t of roots.flatMap((r) => [...r.querySelectorAll('svg text')])) {
    const svg = t.ownerSVGElement, b = t.getBBox();
    if (b.x < -1 || b.y < -1 || b.x + b.width > svg.width.baseVal.value + 1 || b.y + b.height > svg.height.baseVal.value + 1)
      problems.push('cut off by its chart: ' + name(t));
  }
  if (document.documentElement.scrollWidth > vw + 1) problems.push('the page scrolls sideways');
  return problems;
}"""


def show_view(page, view: str, runs) -> list[str]:
    """Put ``view`` of the report on screen; the selectors of what it shows."""
    if view == "first-screen":
        return ["header", "#toc", "#matrix-section"]
    if view == "divergent-case":
        open_case(page, most_divergent_case(runs))
        return ["#detail"]
    if view == "structure":
        page.fill("#f-text", "")                  # every case
        page.click("#toc a[href='#structure-section']")
        return ["#structure-section"]
    page.click("#toc a[href='#params-section']")
    return ["#params-section"]


@pytest.mark.parametrize("view", ["first-screen", "divergent-case", "structure", "parameter-counts"])
@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_nothing_overlaps_or_is_cut_off(default_report, default_run, width, view):
    default_report.set_viewport_size({"width": width, "height": WIDTHS[width]})
    selectors = show_view(default_report, view, default_run["doc"]["runs"])
    assert default_report.evaluate(LAYOUT_PROBLEMS, selectors) == []


def test_the_first_screen_shows_the_counts_and_the_matrix_with_the_environment_closed(default_report):
    default_report.set_viewport_size({"width": 1280, "height": WIDTHS[1280]})
    assert default_report.locator("#environment").get_attribute("open") is None
    top = default_report.evaluate("(s) => document.querySelector(s).getBoundingClientRect().top", "#matrix tbody tr[data-case]")
    assert default_report.locator("#counts").is_visible() and top < WIDTHS[1280]


def test_a_report_of_one_run_says_one_case_and_one_run(page, real_results, tmp_path):
    path = write(tmp_path, real_results["runs"][:1])
    open_report(page, report.write_report([path], tmp_path / "index.html"))
    assert page.text_content("#shown").startswith("Showing case 1 of 1 ") and "; 1 run in view." in page.text_content("#shown")
    assert page.text_content("#summary-line").startswith("1 run of 1 case on 1 implementation column")


# ---- screenshots for the README, from the real default run ----

@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_screenshots_of_the_first_screen_a_divergent_case_and_the_structure_view(default_report, default_run, width):
    SHOTS.mkdir(parents=True, exist_ok=True)
    default_report.set_viewport_size({"width": width, "height": WIDTHS[width]})
    shots = []
    for view, name in (("first-screen", "first-screen"), ("divergent-case", "case-with-divergence"),
                       ("structure", "native-structure")):
        show_view(default_report, view, default_run["doc"]["runs"])
        default_report.wait_for_timeout(100)
        shots.append(SHOTS / f"{name}-{width}.png")
        default_report.screenshot(path=str(shots[-1]), full_page=False)
    for shot in shots:
        assert 10_000 < shot.stat().st_size < 1_000_000, shot
