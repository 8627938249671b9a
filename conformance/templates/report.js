// The report's interactive part: matrix (a verdict and a mark per check in every cell), filters,
// muting a declaration, sorting, case details, native structures, parameter and claim tables,
// rendered one page at a time from the gzip-compressed data embedded in #report-data.
// Every string from results is set as text (textContent or an attribute), never parsed as markup.
"use strict";
(function () {
  const PAGE = 200;
  const SEVERITY = {error: 5, diverge: 4, stale: 3, "known-divergence": 2, agree: 1, unsupported: 0, skipped: 0};
  // a case's implementation panels, most in need of a look first
  const PANEL_ORDER = {diverge: 0, error: 1, stale: 2, "known-divergence": 3, agree: 4, unsupported: 5, skipped: 6};
  // the checks in the order their marks appear, each with its letter; a check not listed here gets its initial
  const CHECK_ORDER = ["accepts", "output_shape", "state_shapes", "state_order", "dtype", "param_count", "values", "padding", "claims"];
  const LETTER = {accepts: "A", output_shape: "O", state_shapes: "S", state_order: "R", dtype: "D", param_count: "P", values: "V", padding: "M",
                  claims: "C"};
  // a mark is its check's letter and, unless the check agrees, a symbol for the verdict (readable without colour)
  const SYMBOL = {agree: "", "known-divergence": "≈", diverge: "✗", stale: "?", error: "!", unsupported: "–", skipped: "–"};
  const KNOWN = "known-divergence";
  let D;                                  // the decompressed data
  let grid;                               // grid[case][col] = run index, or undefined
  let checkOrder;                         // the checks present, in mark order
  let effective = null;                   // overall verdict per run with the muted declaration's checks agreeing
  let searchTexts, searchHit = null;      // declarations ("id reason") then texts; which contain the filter text
  const state = {verdict: "", impl: "", device: "", check: "", text: "", divergent: false, mute: -1,
                 sort: {by: "case", col: -1, dir: 1}, page: 0, spage: 0};
  const pl = (n, word, words) => `${n} ${n === 1 ? word : words || word + "s"}`;

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  // a column name that may wrap after its - and @ (a header no wider than its cells)
  const breakable = (text) => text.split(/(?<=[-@])/).flatMap((part, i) => i ? [h("wbr"), part] : [part]);
  const verdictBadge = (v) => h("span", {class: "v v-" + (v || "none"), text: v || "—"});
  const shape = (s) => s === null || s === undefined ? "—" : "(" + s.join(", ") + ")";
  const safeUrl = (u) => typeof u === "string" && /^https?:\/\//.test(u) ? u : null;
  const fmt = (x) => x === null || x === undefined ? "—" : typeof x === "object" ? JSON.stringify(x) : String(x);
  // a measured number to p significant digits; anything else (null, or "NaN" / "Infinity" as
  // results.json writes non-finite numbers) as it is
  const num = (x, p) => typeof x === "number" ? x.toPrecision(p) : fmt(x);

  async function decode() {
    const el = document.getElementById("report-data");
    const raw = atob(el.textContent.trim());
    const bin = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bin[i] = raw.charCodeAt(i);
    const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
    const text = await new Response(stream).text();
    performance.mark("report-decompressed");
    const data = JSON.parse(text);
    performance.mark("report-parsed");
    return data;
  }

  // ---- matrix ----
  function visibleCols() {
    return D.cols.map((c, i) => i).filter((i) =>
      (!state.impl || D.cols[i].impl === state.impl) && (!state.device || D.cols[i].device === state.device));
  }
  // a check's verdict as shown: agree when the muted declaration explains it
  function checkVerdict(run, name) {
    const v = run[3][name];
    if (v === undefined) return null;
    const m = run[5] && run[5][name];
    return state.mute >= 0 && m && m[0] === state.mute && (v === KNOWN || v === "stale") ? "agree" : v;
  }
  function worst(verdicts) {
    let w = "agree";
    for (const v of verdicts) if ((SEVERITY[v] ?? 0) > SEVERITY[w]) w = v;
    return w;
  }
  // every run's overall verdict with the muted declaration's checks agreeing: only runs with a muted
  // check change, and only when their verdict came from their checks (not an error of the run itself)
  function computeEffective() {
    if (state.mute < 0) { effective = null; return; }
    effective = D.runs.map((run) => {
      const marks = run[5] || {};
      if (!Object.values(marks).some((m) => m[0] === state.mute)) return run[2];
      const own = Object.values(run[3]);
      if (!own.includes(run[2])) return run[2];
      return worst(Object.keys(run[3]).map((name) => checkVerdict(run, name)));
    });
  }
  const overall = (runIdx) => effective ? effective[runIdx] : D.runs[runIdx][2];
  function shownVerdict(runIdx) {
    if (runIdx === undefined) return null;
    return state.check ? checkVerdict(D.runs[runIdx], state.check) : overall(runIdx);
  }
  function rowMatches(ci, cols) {
    const c = D.cases[ci];
    if (state.text && !c.base.includes(state.text) && !c.refs.some((i) => searchHit[i])) return false;
    let any = false, verdictHit = !state.verdict, divergent = !state.divergent;
    for (const col of cols) {
      const v = shownVerdict(grid[ci][col]);
      if (v === null) continue;
      any = true;
      if (v === state.verdict) verdictHit = true;
      if (v !== "agree" && v !== "unsupported" && v !== "skipped") divergent = true;
    }
    return any && verdictHit && divergent;
  }
  function sortedRows(cols) {
    const rows = [];
    for (let ci = 0; ci < D.cases.length; ci++) if (rowMatches(ci, cols)) rows.push(ci);
    const s = state.sort;
    const key = s.by === "col"
      ? (ci) => SEVERITY[shownVerdict(grid[ci][s.col])] ?? -1
      : (ci) => D.cases[ci].id;
    rows.sort((a, b) => {
      const fa = D.cases[a].file, fb = D.cases[b].file;
      if (fa !== fb) return fa - fb;                 // grouped by case file, in file order
      const ka = key(a), kb = key(b);
      return (ka < kb ? -1 : ka > kb ? 1 : a - b) * s.dir;
    });
    return rows;
  }
  function pager(container, total, page, onPage, size) {
    container.replaceChildren();
    const pages = Math.max(1, Math.ceil(total / (size || PAGE)));
    if (pages === 1) return;
    const go = (p) => () => onPage(Math.min(pages - 1, Math.max(0, p)));
    container.append(
      h("button", {type: "button", onclick: go(0), disabled: page === 0 ? "" : null, text: "« first"}),
      h("button", {type: "button", onclick: go(page - 1), disabled: page === 0 ? "" : null, text: "‹ previous"}),
      h("span", {class: "page-no", text: ` page ${page + 1} of ${pages} `}),
      h("button", {type: "button", onclick: go(page + 1), disabled: page >= pages - 1 ? "" : null, text: "next ›"}),
      h("button", {type: "button", onclick: go(pages - 1), disabled: page >= pages - 1 ? "" : null, text: "last »"}));
  }
  function renderMatrix() {
    const cols = visibleCols();
    const rows = sortedRows(cols);
    const counts = {};
    let nRuns = 0;
    for (const ci of rows) for (const col of cols) {
      const v = shownVerdict(grid[ci][col]);
      if (v === null) continue;
      nRuns++;
      if (!state.verdict || v === state.verdict) counts[v] = (counts[v] || 0) + 1;
    }
    state.page = Math.min(state.page, Math.max(0, Math.ceil(rows.length / PAGE) - 1));
    const start = state.page * PAGE, slice = rows.slice(start, start + PAGE);
    document.getElementById("shown").textContent = !rows.length ? `No case matches (of ${pl(D.cases.length, "case")}).`
      : (slice.length === 1 ? `Showing case ${start + 1} of ${rows.length}` : `Showing cases ${start + 1}–${start + slice.length} of ${rows.length}`)
        + ` (of ${D.cases.length}); ${pl(nRuns, "run")} in view.`;
    document.getElementById("view-counts").replaceChildren(
      ...D.verdicts.filter((v) => counts[v]).map((v) =>
        h("span", {class: "v v-" + v, "data-verdict": v, "data-count": counts[v], text: `${v}: ${counts[v]}`}), " "));

    const thead = document.querySelector("#matrix thead"), tbody = document.querySelector("#matrix tbody");
    const sortCls = (by, col) => state.sort.by === by && (by !== "col" || state.sort.col === col)
      ? (state.sort.dir > 0 ? "sorted-asc" : "sorted-desc") : null;
    thead.replaceChildren(h("tr", {},
      h("th", {class: sortCls("case"), title: "sort by case id", onclick: () => setSort("case", -1)}, "case"),
      cols.map((col) => h("th", {class: sortCls("col", col), "data-col": D.cols[col].key,
                                 title: `sort by verdict (${D.cols[col].device_name})`,
                                 onclick: () => setSort("col", col)}, breakable(D.cols[col].key)))));
    const body = [];
    let lastFile = -1;
    for (const ci of slice) {
      const c = D.cases[ci];
      if (c.file !== lastFile) {
        lastFile = c.file;
        body.push(h("tr", {class: "group"}, h("th", {colspan: cols.length + 1, text: D.files[c.file]})));
      }
      body.push(h("tr", {"data-case": c.id},
        h("td", {}, h("a", {class: "case-link", href: "#case-" + ci, text: c.id})),
        cols.map((col) => cell(ci, col))));
    }
    tbody.replaceChildren(...body);
    pager(document.getElementById("matrix-pager"), rows.length, state.page, (p) => { state.page = p; renderMatrix(); });
    renderStructure(rows, cols);
  }
  // what a check's mark says on hover: its verdict, and the declaration and its reason, or why it differs
  function markText(run, name, v) {
    const m = run[5] && run[5][name];
    let text = `${name}: ${v}`;
    if (v !== run[3][name]) text += ` (${run[3][name]}, muted)`;
    if (m && m[0] >= 0) text += ` — declared by ${D.decls[m[0]].id}: ${D.decls[m[0]].reason || ""}`;
    if (m && m[1] >= 0) text += ` — ${D.texts[m[1]]}`;
    return text;
  }
  function cell(ci, col) {
    const ri = grid[ci][col];
    const v = shownVerdict(ri);
    const dim = state.verdict && v !== state.verdict;
    if (ri === undefined) return h("td", {class: "cell none" + (dim ? " dim" : ""), "data-verdict": "none"}, verdictBadge(null));
    const run = D.runs[ri];
    const open = () => { location.hash = "#case-" + ci; };
    const marks = [], lines = [];
    let agreeing = 0;
    for (const name of checkOrder) {
      const cv = checkVerdict(run, name);
      if (cv === null) continue;
      const text = markText(run, name, cv);
      if (cv === "agree" && cv === run[3][name]) agreeing++;
      else lines.push(text);
      const mk = document.createElement("span");          // (many per page: built without h())
      mk.className = "mk v-" + cv + (name === state.check ? " selected" : "");
      mk.dataset.check = name;
      mk.dataset.verdict = cv;
      mk.title = text;
      mk.textContent = (LETTER[name] || name[0].toUpperCase()) + SYMBOL[cv];
      marks.push(mk);
    }
    const ov = overall(ri);
    const summary = [`${D.cols[col].key}: ${ov}` + (ov !== run[2] ? ` (${run[2]} with ${D.decls[state.mute].id})` : ""),
                     ...(run[6] >= 0 ? [D.texts[run[6]]] : []), ...lines,
                     ...(agreeing ? [lines.length ? `${pl(agreeing, "other check")} agree` : `${pl(agreeing, "check")}: all agree`] : [])].join("\n");
    return h("td", {class: "cell" + (dim ? " dim" : ""), "data-verdict": v || "none", "data-run": ri, tabindex: "0",
                    title: summary, "aria-label": summary, onclick: open,
                    onkeydown: (e) => { if (e.key === "Enter") open(); }},
      verdictBadge(v), marks.length ? h("span", {class: "marks"}, marks) : null);
  }
  function setSort(by, col) {
    const s = state.sort;
    if (s.by === by && s.col === col) s.dir = -s.dir;
    else { s.by = by; s.col = col; s.dir = by === "col" ? -1 : 1; }
    renderMatrix();
  }

  // ---- case detail ----
  function kvTable(obj) {
    return h("table", {class: "kv"}, Object.entries(obj || {}).map(([k, v]) =>
      h("tr", {}, h("th", {text: k}), h("td", {text: fmt(v)}))));
  }
  function table(head, rows, attrs) {
    return h("table", attrs || {}, h("thead", {}, h("tr", {}, head.map((x) => h("th", {text: x})))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((x) => x instanceof Node ? h("td", {}, x) : h("td", {text: fmt(x)}))))));
  }
  function divergenceNode(d) {
    if (!d) return "";
    const url = safeUrl(d.link);
    return h("span", {}, h("strong", {text: d.id}), ": " + (d.reason || "") + " ",
      url ? h("a", {href: url, rel: "noreferrer", text: d.link}) : (d.link || ""));
  }
  function checkDetails(name, chk) {
    const d = chk.details || {};
    const list = (x) => Array.isArray(x) ? x : [];
    try {
      if (chk.verdict === "skipped" && typeof d.reason === "string") return `skipped: ${d.reason}`;
      if (name === "output_shape" || name === "state_shapes") return `observed ${fmt(d.observed)}, expected ${fmt(d.expected)}` +
        (d.unrequested ? " (returned although the case did not ask for states: compared all the same)" : "");
      if (name === "accepts") return `${fmt(d.native)} (canonical: ${fmt(d.canonical)})`;
      if (name === "dtype") return `returned ${list(d.observed).map(fmt).join(", ")}, case ${fmt(d.expected)}` +
        (list(d.wrong).length ? ` — ${list(d.wrong).map(fmt).join("; ")}` : "");
      if (name === "state_order") return list(d.problems).map(fmt).join("; ") || "states are (h, c); top h is the output's final step";
      if (name === "param_count") return `native ${fmt(d.observed)}, canonical ${fmt(d.canonical)}, documented ${fmt(d.documented)}` +
        (d.problem ? ` — ${d.problem}` : "");
      if (name === "claims") { const n = list(d.claims).length; return `${n} claim${n === 1 ? "" : "s"}, below`; }
      if (name === "values") return list(d.tensors).map((t) => `${fmt(t.tensor)}: max abs ${num(t.max_abs, 2)}` +
        (t.ok ? "" : " ✗")).join("; ") + ` (atol ${fmt(d.atol)}, rtol ${fmt(d.rtol)})` + (d.first ? ` — first differs at ${d.first}` : "");
      if (name === "padding") return `padded steps hold ${fmt(d.behaviour)} (${fmt(d.padded_steps)} steps; canonical: zeros)`;
    } catch (e) {
      // details of a shape this script does not know (a results file from elsewhere): shown as they are
    }
    return fmt(d);
  }
  function panel(runIdx) {
    const run = D.runs[runIdx], col = D.cols[run[1]];
    const r = JSON.parse(run[4]);
    const native = r.native || {}, canon = r.canonical || {};
    const parts = [h("h4", {}, col.key + " ", verdictBadge(run[2]))];
    parts.push(h("div", {class: "versions", text: Object.entries(r.versions || {}).map(([k, v]) => `${k} ${v}`).join(" · ") +
      (r.device_name ? ` · ${r.device_name}` : "")}));
    if (r.reason) parts.push(h("p", {class: "reason", text: r.reason}));
    if (r.traceback) parts.push(h("details", {}, h("summary", {text: "traceback"}), h("pre", {text: r.traceback})));
    // what differs and why first; then what the framework returned, its canonical form, how it was built
    if (r.checks && Object.keys(r.checks).length) {
      parts.push(h("h5", {text: "checks"}));
      // a check per row (name and verdict, then its details); a declaration on a row of its own, full width
      parts.push(h("table", {class: "checks"}, h("thead", {}, h("tr", {}, h("th", {text: "check, verdict"}), h("th", {text: "details"}))),
        h("tbody", {}, Object.entries(r.checks).flatMap(([name, chk]) => [
          h("tr", {"data-check": name, "data-verdict": chk.verdict}, h("td", {}, h("code", {text: name}), " ", verdictBadge(chk.verdict)),
            h("td", {text: checkDetails(name, chk)})),
          chk.divergence ? h("tr", {class: "declared"}, h("td", {colspan: "2"}, "declared divergence: ", divergenceNode(chk.divergence))) : null]))));
      const claims = ((r.checks.claims || {}).details || {}).claims;
      if (Array.isArray(claims) && claims.length) {
        parts.push(h("h5", {text: "claims"}));
        parts.push(table(["source", "says", "claimed", "real", "true?", "verdict"], claims.map((c) =>
          [c.source, c.says || "", c.claimed, c.real, c.true ? "true" : "FALSE", verdictBadge(c.verdict)])));
      }
    }
    if ((native.returns || []).length) {
      parts.push(h("h5", {text: "native returns, in native order"}));
      if (run[7] >= 0) parts.push(h("p", {}, h("code", {class: "structure", text: D.texts[run[7]]})));
      parts.push(table(["path", "role", "shape", "dtype", "layer/direction"], native.returns.map((x) =>
        [x.path || "(the return value)", x.role, shape(x.shape), x.dtype,
         [x.layer, x.direction].filter((y) => y !== null && y !== undefined).join("/") + (x.top === false ? " (lower layer)" : "")])));
    }
    if (r.checks && Object.keys(r.checks).length) {
      parts.push(h("h5", {text: "canonical form"}));
      parts.push(kvTable({output: shape(canon.output_shape),
                          states: canon.state_shapes ? canon.state_shapes.map((p) => `(${shape(p[0])}, ${shape(p[1])})`).join(" ") : "—"}));
    }
    if (native.construct) parts.push(h("p", {}, "construct: ", h("code", {text: native.construct})));
    if ((native.params || []).length) {
      parts.push(h("details", {class: "native-params"}, h("summary", {text: `native parameters: ${fmt(native.param_count)}`}),
        table(["name", "shape"], native.params.map((p) => [p.name, shape(p.shape)]))));
    }
    if ((native.normalization || []).length) {
      parts.push(h("h5", {text: "normalization"}));
      parts.push(h("ol", {}, native.normalization.map((n) => h("li", {text: n}))));
    }
    if (native.repro) {
      const pre = h("pre", {class: "repro", text: native.repro});
      parts.push(h("h5", {}, "repro ", h("button", {type: "button", class: "copy", onclick: (e) => copy(pre, e.target), text: "copy"})));
      parts.push(pre);
    }
    if (r.timings && typeof r.timings.total_s === "number") parts.push(h("p", {class: "timing", text: `run took ${(r.timings.total_s * 1000).toFixed(1)} ms`}));
    return h("div", {class: "impl-panel", "data-col": col.key, "data-verdict": run[2]}, parts);
  }
  function copy(pre, button) {
    const done = () => { button.textContent = "copied"; };
    const select = () => { const range = document.createRange(); range.selectNodeContents(pre);
      const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range); button.textContent = "selected: press Ctrl+C"; };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(pre.textContent).then(done, select);
    else select();
  }
  function renderDetail() {
    const el = document.getElementById("detail");
    const m = /^#case-(\d+)$/.exec(location.hash);
    if (!m || !D.cases[+m[1]]) { el.hidden = true; el.replaceChildren(); return; }
    const ci = +m[1], c = D.cases[ci], ref = c.reference || {};
    const order = (ri) => PANEL_ORDER[D.runs[ri][2]] ?? 7;
    const runs = D.cols.map((col, i) => grid[ci][i]).filter((x) => x !== undefined)
      .sort((a, b) => order(a) - order(b) || D.runs[a][1] - D.runs[b][1]);
    el.replaceChildren(
      h("h3", {}, "case ", h("code", {text: c.id}), " ", h("small", {text: `${D.files[c.file]}:${c.line ?? ""}`}),
        " ", h("button", {type: "button", onclick: () => { location.hash = "#matrix-section"; }, text: "close"})),
      // the configuration in a few lines, then the canonical reference beside every implementation,
      // the most severe verdict first (diverge, error, stale, known-divergence, agree, unsupported)
      h("p", {class: "config"}, h("strong", {text: "configuration: "}),
        Object.entries(c.config || {}).flatMap(([k, v], i) => [i ? " · " : "", h("span", {class: "kv-item"}, h("span", {class: "k", text: k}), " " + fmt(v))])),
      h("div", {class: "panels"},
        h("div", {class: "impl-panel reference"}, h("h4", {text: "canonical reference"}),
          kvTable({"input (native layout)": shape(ref.input_shape), output: shape(ref.output_shape),
                   states: ref.state_shapes ? ref.state_shapes.map((p, i) => `${(ref.state_labels || [])[i] || i}: (h ${shape(p[0])}, c ${shape(p[1])})`).join("; ") : "— (no return_state)",
                   "parameter count": ref.param_count}),
          table(["canonical tensor", "shape"], (ref.params || []).map((p) => [p[0], shape(p[1])]))),
        runs.map(panel)));
    el.hidden = false;
    el.scrollIntoView();
  }

  // ---- native structure: what each implementation returns, per case ----
  const dims = (s) => Array.isArray(s) ? (s.length ? s.join("×") : "scalar") : "—";
  function canonicalLine(ref) {
    const states = Array.isArray(ref.state_shapes) && ref.state_shapes.length
      ? `; states ${ref.state_shapes.length === 1 ? "" : ref.state_shapes.length + " × "}(h ${dims(ref.state_shapes[0][0])}, c ${dims(ref.state_shapes[0][1])})`
      : "";
    return `out ${dims(ref.output_shape)}${states}`;
  }
  const SPAGE = 50;                       // cases per page of the structure view (a few lines each)
  function renderStructure(rows, cols) {
    state.spage = Math.min(state.spage, Math.max(0, Math.ceil(rows.length / SPAGE) - 1));
    const visible = new Set(cols);
    const body = [];
    for (const ci of rows.slice(state.spage * SPAGE, (state.spage + 1) * SPAGE)) {
      const c = D.cases[ci], ref = c.reference || {}, canonical = ref.param_count;
      const groups = new Map();            // the same structure and count: one line
      for (let col = 0; col < D.cols.length; col++) {
        const ri = grid[ci][col];
        if (ri === undefined || !visible.has(col)) continue;
        const run = D.runs[ri];
        const key = run[7] >= 0 ? `${run[7]}|${run[8]}` : `none|${run[2]}`;
        if (!groups.has(key)) groups.set(key, {runs: [], run});
        groups.get(key).runs.push(ri);
      }
      const lines = [...groups.values()];
      const link = h("td", {class: "case", rowspan: String(lines.length + 1)},
                     h("a", {class: "case-link", href: "#case-" + ci, text: c.id}));
      body.push(h("tr", {class: "canonical", "data-case": c.id}, link, h("td", {text: "canonical"}),
                  h("td", {}, h("code", {text: canonicalLine(ref)})), h("td", {text: fmt(canonical)})));
      for (const g of lines) {
        const run = g.run, count = run[8];
        const delta = typeof count === "number" && typeof canonical === "number" ? count - canonical : null;
        body.push(h("tr", {"data-case": c.id, "data-verdict": run[2]},
          h("td", {class: "impls", text: g.runs.map((ri) => D.cols[D.runs[ri][1]].key).join(", ")}),
          h("td", {}, run[7] >= 0 ? h("code", {text: D.texts[run[7]]}) : verdictBadge(run[2])),
          h("td", {}, fmt(count), delta ? h("span", {class: "diffpos", text: ` (${delta > 0 ? "+" : ""}${delta})`}) : "")));
      }
    }
    document.querySelector("#structure thead").replaceChildren(h("tr", {},
      ["case", "implementations", "native return, in native order", "parameters"].map((x) => h("th", {text: x}))));
    document.querySelector("#structure tbody").replaceChildren(...body);
    pager(document.getElementById("structure-pager"), rows.length, state.spage, (p) => { state.spage = p; renderStructure(rows, cols); }, SPAGE);
  }

  // ---- header counts: they follow a muted declaration ----
  function renderCounts() {
    const counts = D.cols.map(() => ({}));
    D.runs.forEach((r, i) => { const v = overall(i); counts[r[1]][v] = (counts[r[1]][v] || 0) + 1; });
    for (const td of document.querySelectorAll("#counts td[data-col][data-verdict]")) {
      const col = D.cols.findIndex((c) => c.key === td.dataset.col);
      if (col >= 0) td.textContent = String(counts[col][td.dataset.verdict] || 0);
    }
    const note = document.getElementById("counts-muted");
    note.hidden = state.mute < 0;
    note.textContent = state.mute < 0 ? "" : `(with ${D.decls[state.mute].id} muted: the checks it explains count as agree)`;
  }

  // ---- the tooltip a focused cell shows (hover shows the title) ----
  function showTip(target) {
    const tip = document.getElementById("tip");
    tip.textContent = target.getAttribute("title");
    tip.hidden = false;
    const r = target.getBoundingClientRect();
    const left = Math.max(4, Math.min(r.left, document.documentElement.clientWidth - tip.offsetWidth - 4));
    tip.style.left = `${left + scrollX}px`;
    tip.style.top = `${r.bottom + scrollY + 4}px`;
  }

  // ---- parameter counts and claims: paged tables ----
  function pagedTable(id, pagerId, head, rows, build) {
    let page = 0;
    const draw = () => {
      const t = document.getElementById(id);
      if (!t) return;
      t.querySelector("thead").replaceChildren(h("tr", {}, head.map((x) => h("th", {text: x}))));
      t.querySelector("tbody").replaceChildren(...rows.slice(page * PAGE, (page + 1) * PAGE).map(build));
      pager(document.getElementById(pagerId), rows.length, page, (p) => { page = p; draw(); });
    };
    draw();
  }
  function renderParams() {
    const cols = D.cols.map((c, i) => i).filter((i) => D.params.some((p) => p.counts[i]));
    const fields = D.params.length ? Object.keys(D.params[0].config) : [];
    pagedTable("params", "params-pager", [...fields, "canonical", ...cols.map((i) => D.cols[i].key)], D.params, (p) =>
      h("tr", {}, fields.map((f) => h("td", {text: fmt(p.config[f])})), h("td", {text: fmt(p.canonical)}),
        cols.map((i) => {
          const x = p.counts[i];
          if (!x) return h("td", {class: "v-none", text: "—"});
          const known = typeof x[0] === "number" && typeof p.canonical === "number";   // a count may be null
          const delta = known ? x[0] - p.canonical : 0;
          return h("td", {title: `documented formula gives ${fmt(x[1])}; param_count: ${x[2]}`, "data-verdict": x[2]},
            fmt(x[0]) + " ", known ? h("span", {class: delta ? "diffpos" : "diffzero", text: `(${delta > 0 ? "+" : ""}${delta})`}) : "",
            x[0] !== x[1] ? h("strong", {text: ` ≠ documented ${fmt(x[1])}`}) : "");
        })));
  }
  function renderClaims() {
    pagedTable("claims", "claims-pager", ["case", "column", "source", "says", "claimed", "real", "true?", "verdict"], D.claims, (c) =>
      h("tr", {}, h("td", {}, h("a", {href: "#case-" + c[0], text: D.cases[c[0]].id})), h("td", {text: D.cols[c[1]].key}),
        h("td", {text: fmt(c[2])}), h("td", {text: c[3] || ""}), h("td", {}, h("code", {text: fmt(c[4])})),
        h("td", {}, h("code", {text: fmt(c[5])})), h("td", {text: c[6] ? "true" : "FALSE"}), h("td", {}, verdictBadge(c[7]))));
  }

  // ---- wiring ----
  function fillSelect(id, values) {
    const sel = document.getElementById(id);
    for (const v of values) sel.append(h("option", {value: v, text: v}));
  }
  function init() {
    D.decls = D.decls || [];
    D.texts = D.texts || [];
    grid = D.cases.map(() => []);
    D.runs.forEach((r, i) => { grid[r[0]][r[1]] = i; });
    checkOrder = [...CHECK_ORDER.filter((c) => D.checks.includes(c)), ...D.checks.filter((c) => !CHECK_ORDER.includes(c))];
    document.getElementById("legend-checks").textContent =
      checkOrder.map((c) => `${LETTER[c] || c[0].toUpperCase()} ${c}`).join(" · ");
    // free-text search covers the case id, its file, and the declarations and reasons of its runs
    // (not its configuration: every case has the same field names)
    searchTexts = [...D.decls.map((d) => `${d.id} ${d.reason || ""}`), ...D.texts].map((t) => t.toLowerCase());
    const refs = D.cases.map(() => new Set());
    D.runs.forEach((r) => {
      if (r[6] >= 0) refs[r[0]].add(D.decls.length + r[6]);
      for (const [di, ti] of Object.values(r[5] || {})) {
        if (di >= 0) refs[r[0]].add(di);
        if (ti >= 0) refs[r[0]].add(D.decls.length + ti);
      }
    });
    D.cases.forEach((c, ci) => { c.base = `${c.id} ${D.files[c.file]}`.toLowerCase(); c.refs = [...refs[ci]]; });
    fillSelect("f-verdict", D.verdicts.filter((v) => D.runs.some((r) => r[2] === v || Object.values(r[3]).includes(v))));
    fillSelect("f-impl", [...new Set(D.cols.map((c) => c.impl))]);
    fillSelect("f-device", [...new Set(D.cols.map((c) => c.device))]);
    fillSelect("f-check", D.checks);
    const on = (id, ev, f) => document.getElementById(id).addEventListener(ev, (e) => { f(e.target); state.page = 0; state.spage = 0; renderMatrix(); });
    on("f-verdict", "change", (t) => { state.verdict = t.value; });
    on("f-impl", "change", (t) => { state.impl = t.value; });
    on("f-device", "change", (t) => { state.device = t.value; });
    on("f-check", "change", (t) => { state.check = t.value; });
    on("f-text", "input", (t) => {
      state.text = t.value.trim().toLowerCase();
      searchHit = state.text ? searchTexts.map((x) => x.includes(state.text)) : null;
    });
    on("f-divergent", "change", (t) => { state.divergent = t.checked; });
    const mute = document.getElementById("f-mute");
    D.decls.forEach((d, i) => mute.append(h("option", {value: String(i), text: d.id})));
    on("f-mute", "change", (t) => { state.mute = t.value === "" ? -1 : +t.value; computeEffective(); renderCounts(); });
    const tbody = document.querySelector("#matrix tbody");
    tbody.addEventListener("focusin", (e) => { if (e.target.matches("td.cell[title]")) showTip(e.target); });
    tbody.addEventListener("focusout", () => { document.getElementById("tip").hidden = true; });
    renderMatrix();
    renderParams();
    renderClaims();
    window.addEventListener("hashchange", renderDetail);
    renderDetail();
  }
  decode().then((data) => {
    D = data;
    init();
    performance.mark("report-ready");
    document.documentElement.dataset.ready = "1";
  }, (err) => {
    const el = document.getElementById("load-error");
    el.hidden = false;
    el.textContent = "This report's data could not be read: " + err + ". A browser with DecompressionStream " +
      "(Chromium 80+, Firefox 113+, Safari 16.4+) is needed.";
    document.documentElement.dataset.ready = "error";
  });
})();
