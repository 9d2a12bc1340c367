// The Experiments tab: many runs of the page's scenario, and a search for a counterexample.
// It talks to the server over its own socket, /ws/lab (docs/ws-protocol.md, "The lab socket"),
// attached to the page's session by its id and secret; the runs happen in the server's worker
// processes. The page itself is only touched to open a run (a `load` control with the run's share
// payload), to show the Invariants tab, and to mark the events that led to a violation.
//
// app.js calls initExperiments(page) once, and frameHook(f) for every frame it handles.

const $ = (sel, root = document) => root.querySelector(sel);
const COLOURS = ["#2f5fa7", "#c4161c", "#17803d", "#a05a00"];
const LEAD_EVENTS = 8;  // events marked as leading to a violation

let page = null;       // {state, control, showTab, loadUPlot, fmtT}
let lab = null;        // the lab socket
let labFor = null;     // the session it is attached to
let ready = null;      // the server's `ready` frame: measures, mutations, params, caps
let exp = null;        // the experiment on screen: {kind, points, runs: [], total, measure}
let pendingViolation = null;  // a found counterexample being opened: {t, invariant}
let cdfPlot = null, histPlot = null, drawQueued = false;

export function initExperiments(p) {
  page = p;
  // Enter in a field runs the form's button instead of submitting (reloading) the page.
  for (const form of document.querySelectorAll(".lab form")) {
    form.addEventListener("submit", (e) => { e.preventDefault(); form.querySelector("button").click(); });
  }
  $("#lab-run").addEventListener("click", runTrials);
  $("#lab-cancel").addEventListener("click", () => sendLab({type: "cancel"}));
  $("#lab-search").addEventListener("click", runSearch);
  $("#lab-search-cancel").addEventListener("click", () => sendLab({type: "cancel"}));
  $("#lab-param").addEventListener("change", suggestValues);
  $("#lab-runs").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-index]");
    if (tr) openRun(exp.runs.find((r) => r.index === +tr.dataset.index));
  });
  const tab = document.querySelector('[role="tab"][data-tab="experiments"]');
  if (tab) tab.addEventListener("click", () => { ensureLab(); redraw(); });
  window.addEventListener("pagehide", () => { if (lab) lab.close(); });
  // While the tab is open, the state panel above gives it room (CSS: body.lab-open).
  const panel = $('[data-panel="experiments"]');
  new MutationObserver(() => {
    document.body.classList.toggle("lab-open", !panel.hidden);
    if (!panel.hidden) queueDraw();
  }).observe(panel, {attributes: true, attributeFilter: ["hidden"]});
  new ResizeObserver(() => queueDraw()).observe(panel);  // a resize, projector mode
}

// Every frame of the page's own socket: a new hello re-reads what the form offers; the snapshot
// that ends opening a counterexample marks the events that led to it.
export function frameHook(f) {
  if (f.type === "hello") {
    if (lab && labFor !== f.session) { lab.close(); lab = null; }
    if (lab && lab.readyState === 1) sendLab({type: "describe"});
    else if (isOpen()) ensureLab();
  } else if (f.type === "snapshot" && pendingViolation && Math.abs(f.t - pendingViolation.t) < 1e-6) {
    markViolation(pendingViolation);
    pendingViolation = null;
  }
}

function isOpen() { return !$('[data-panel="experiments"]').hidden; }

function ensureLab() {
  const st = page.state;
  if (lab || !st.session || !st.secret) return;
  labFor = st.session;
  const sock = lab = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/lab`);
  sock.onopen = () => sock.send(JSON.stringify({type: "attach", session: st.session, secret: st.secret}));
  sock.onmessage = (e) => { if (lab === sock) onLab(JSON.parse(e.data)); };
  sock.onclose = () => { if (lab === sock) { lab = null; setBusy(false); } };
}

function sendLab(obj) {
  if (lab && lab.readyState === 1) lab.send(JSON.stringify(obj));
  else say("Not connected to the lab yet; open the tab again in a moment.", true);
}

function onLab(f) {
  switch (f.type) {
    case "ready": return onReady(f);
    case "started": return onStarted(f);
    case "row": return onRow(f);
    case "progress": return onProgress(f);
    case "done": return onDone(f);
    case "error": setBusy(false); return say(f.message, true);
  }
}

// --- the form ----------------------------------------------------------------------------------
function onReady(f) {
  ready = f;
  const box = $('[data-panel="experiments"]');
  box.dataset.ready = "1";
  fill($("#lab-measure"), f.measures.map((m) => [m.name, m.name + (m.unit ? ` (${m.unit})` : ""), m.doc]));
  fill($("#lab-param"), [["", "(none: seeds only)"], ...f.params.map((p) => [p, p])]);
  fill($("#lab-mutation"), Object.entries(f.mutations).map(([n, s]) => [n, n, s]));
  const trials = $("#lab-trials");
  trials.max = String(f.limits.max_trials);
  if (+trials.value > f.limits.max_trials) trials.value = String(f.limits.max_trials);
  $("#lab-limits").textContent = `Each run ${fmtMs(f.duration_ms)} of simulated time; at most ` +
    `${f.limits.max_trials} trials per value, ${f.limits.max_values} values; ${f.limits.workers} worker ` +
    `process${f.limits.workers > 1 ? "es" : ""} on the server.`;
  $("#lab-search-limits").textContent = `At most ${f.limits.search_max_runs} random runs, ` +
    `${f.limits.search_max_states.toLocaleString()} explored states, ${f.limits.search_budget_s} s.`;
  $("#lab-none").hidden = f.measures.length > 0;
  $("#lab-search-box").hidden = !Object.keys(f.mutations).length;
  if (!$("#lab-values").value) suggestValues();  // keep what the user typed
}

function fill(sel, items) {
  const keep = sel.value;
  sel.textContent = "";
  for (const [value, text, title] of items) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text;
    if (title) o.title = title;
    sel.appendChild(o);
  }
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

// A parameter's current value, and a few around it, as a starting point.
function suggestValues() {
  const p = $("#lab-param").value, vals = $("#lab-values");
  vals.disabled = !p;
  if (!p) { vals.value = ""; return; }
  const v = ready && ready.values[p];
  if (typeof v === "number") vals.value = p === "nodes" ? `3,5` : `${v},${+(v * 2).toPrecision(3)}`;
}

function parseValues(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s).map((s) => {
    try { return JSON.parse(s); } catch (e) { return s; }
  });
}

function runTrials() {
  ensureLab();
  const param = $("#lab-param").value || null;
  const req = {type: "trials", measure: $("#lab-measure").value, trials: parseInt($("#lab-trials").value, 10)};
  if (param) { req.param = param; req.values = parseValues($("#lab-values").value); }
  sendLab(req);
}

function runSearch() {
  ensureLab();
  sendLab({type: "search", mutation: $("#lab-mutation").value, strategy: $("#lab-strategy").value});
}

function setBusy(on, kind = null) {
  $("#lab-run").disabled = on; $("#lab-search").disabled = on;
  $("#lab-cancel").hidden = !(on && kind === "trials");
  $("#lab-search-cancel").hidden = !(on && kind === "search");
  $('[data-panel="experiments"]').dataset.busy = on ? kind : "";
}

function say(text, bad = false, where = "#lab-status") {
  const s = $(where);
  s.textContent = text;
  s.classList.toggle("bad", bad);
}

// --- trials ------------------------------------------------------------------------------------
function onStarted(f) {
  setBusy(true, f.kind);
  if (f.kind === "search") {
    say(`Searching for a break of ${f.mutation} (${f.strategies.join(", then ")})…`, false, "#lab-search-status");
    $("#lab-search-bar").value = 0; $("#lab-search-bar").hidden = false;
    return;
  }
  exp = {kind: "trials", points: f.points, param: f.param, measure: f.measure, total: f.total, runs: [], done: null};
  $("#lab-bar").max = f.total; $("#lab-bar").value = 0; $("#lab-bar").hidden = false;
  $("#lab-results").hidden = false;
  $("#lab-runs tbody").textContent = "";
  $("#lab-runs thead").innerHTML = `<tr><th>seed</th>${f.points.length > 1 ? `<th>${esc(shortName(f.param))}</th>` : ""}` +
    `<th>${esc(f.measure)}</th><th></th><th></th></tr>`;
  $("#lab-summary tbody").textContent = "";
  say(`Running ${f.total} trials of ${f.measure}${f.param ? ` over ${f.param} = ${f.points.join(", ")}` : ""}…`);
  if (cdfPlot) { cdfPlot.destroy(); cdfPlot = null; }
  if (histPlot) { histPlot.destroy(); histPlot = null; }
  redraw();
}

function onRow(f) {
  if (!exp) return;
  exp.runs.push(f);
  const tr = document.createElement("tr");
  tr.dataset.index = String(f.index);
  tr.tabIndex = 0;
  tr.title = "Open this run in the page";
  const series = exp.points.length > 1 ? `<td class="sw" style="--c:${colour(f.point)}">${esc(f.point)}</td>` : "";
  tr.innerHTML = `<td class="mono">${f.seed}</td>${series}<td class="mono num">${fmt(f.value)}</td>` +
    `<td>${f.violations ? `<span class="badge bad">${f.violations} broken</span>` : ""}</td><td><button type="button" class="lab-open">Open</button></td>`;
  $("#lab-runs tbody").appendChild(tr);
  queueDraw();
  queueSummary();
}

function onProgress(f) {
  if (f.kind === "search") {
    const what = f.queued ? "waiting for a worker…" :
      `${f.strategy}: ${f.explored.toLocaleString()} ${f.strategy === "random" ? "runs" : "states"} so far, ${f.elapsed_s} s`;
    say(what, false, "#lab-search-status");
    if (!f.queued && ready) {
      const cap = f.strategy === "random" ? ready.limits.search_max_runs : ready.limits.search_max_states;
      $("#lab-search-bar").value = Math.min(1, f.explored / cap);
    }
    return;
  }
  if (f.queued) return say("Waiting for a worker (other experiments are running)…");
  $("#lab-bar").value = f.done;
  say(`${f.done} of ${f.total} runs`);
}

function onDone(f) {
  setBusy(false);
  if (f.kind === "search") return searchDone(f);
  if (!exp) return;
  exp.done = f;
  $("#lab-bar").value = f.runs;
  const broken = f.summary.reduce((a, s) => a + s.violations, 0);
  say(`${f.cancelled ? "Cancelled: " : ""}${f.runs} of ${f.total} runs in ${f.wall_s} s` +
      (broken ? `; ${broken} broke an invariant` : "") + (f.error ? ` — ${f.error}` : ""), !!f.error);
  renderSummary(f);
  redraw();
}

// While rows arrive: the same figures over the runs so far (the server's, at the end, replace them).
let summaryQueued = false;
function queueSummary() {
  if (summaryQueued) return;
  summaryQueued = true;
  setTimeout(() => {
    summaryQueued = false;
    if (!exp || exp.done) return;
    renderSummary({summary: exp.points.map((p) => {
      const rs = exp.runs.filter((r) => r.point === p);
      const xs = rs.map((r) => r.value).filter((v) => typeof v === "number").sort((a, b) => a - b);
      return {count: xs.length, missing: rs.length - xs.length, median: pct(xs, 50), p90: pct(xs, 90),
              p99: pct(xs, 99), max: xs.length ? xs[xs.length - 1] : null, violations: 0};
    })});
  }, 200);
}

// Linear interpolation between closest ranks (numpy's default, as engine/stats.py).
function pct(xs, q) {
  if (!xs.length) return null;
  const k = (xs.length - 1) * q / 100, lo = Math.floor(k), hi = Math.ceil(k);
  return xs[lo] + (xs[hi] - xs[lo]) * (k - lo);
}

function renderSummary(f) {
  const tb = $("#lab-summary tbody");
  tb.textContent = "";
  f.summary.forEach((s, i) => {
    const tr = document.createElement("tr");
    const name = exp.points[i] || "all runs";
    tr.innerHTML = `<th class="sw" style="--c:${COLOURS[i % 4]}" title="${esc(exp.param || "")}">${esc(exp.param ? `${shortName(exp.param)} = ${name}` : name)}</th>` +
      [s.count, s.median, s.p90, s.p99, s.max].map((v) => `<td class="mono num">${fmt(v)}</td>`).join("") +
      `<td class="mono num">${s.missing || ""}</td>`;
    tb.appendChild(tr);
  });
}

function shortName(param) { return param.split(".").pop(); }
function colour(point) { return COLOURS[Math.max(0, exp.points.indexOf(point)) % 4]; }
function fmt(v) { return v === null || v === undefined ? "–" : typeof v === "number" ? (+v.toFixed(3)).toLocaleString() : String(v); }
function fmtMs(ms) { return ms >= 1000 ? `${+(ms / 1000).toFixed(2)} s` : `${ms} ms`; }
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]); }

// --- the charts (uPlot): a CDF and a histogram, one line per parameter value ------------------
function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  setTimeout(() => { drawQueued = false; redraw(); }, 150);
}

// Per point: the runs with a value, sorted by it.
function seriesRuns() {
  return exp.points.map((p) => exp.runs.filter((r) => r.point === p && typeof r.value === "number")
    .sort((a, b) => a.value - b.value));
}

function redraw() {
  if (!exp || !isOpen() || !exp.runs.length) return;
  if (!page.loadUPlot(redraw)) return;
  const per = seriesRuns();
  const xs = [...new Set(per.flat().map((r) => r.value))].sort((a, b) => a - b);
  if (!xs.length) return;
  // CDF: at each value seen, the fraction of that series' runs at or below it.
  const cdf = [xs, ...per.map((runs) => {
    let k = 0;
    return xs.map((x) => { while (k < runs.length && runs[k].value <= x) k++; return runs.length ? k / runs.length : null; });
  })];
  // Histogram: 20 bins over the range, counts per series.
  const lo = xs[0], hi = xs[xs.length - 1], nb = 20, w = (hi - lo) / nb || 1;
  const edges = Array.from({length: nb}, (_, i) => lo + i * w);
  const hist = [edges, ...per.map((runs) => {
    const c = new Array(nb).fill(0);
    for (const r of runs) c[Math.min(nb - 1, Math.floor((r.value - lo) / w))]++;
    return c;
  })];
  const box = $("#lab-charts");
  const width = Math.max(240, box.clientWidth - 8);
  const height = Math.max(120, Math.min(200, Math.round(width * 0.36)));
  const key = `${exp.points.length}|${width}`;
  const names = exp.points.map((p) => exp.param ? `${shortName(exp.param)} = ${p}` : exp.measure);
  if (!cdfPlot || cdfPlot._key !== key) {
    if (cdfPlot) cdfPlot.destroy();
    if (histPlot) histPlot.destroy();
    const stepped = window.uPlot.paths.stepped({align: 1});
    const series = (fill) => [{label: exp.measure}, ...names.map((n, i) => ({
      label: n, stroke: COLOURS[i % 4], width: 2, paths: stepped, points: {show: false},
      fill: fill ? COLOURS[i % 4] + "33" : undefined}))];
    cdfPlot = new window.uPlot({width, height, title: `CDF of ${exp.measure} (click a point to open its run)`,
      scales: {x: {time: false}, y: {range: [0, 1]}}, series: series(false),
      axes: [{label: exp.measure}, {label: "fraction"}], legend: {live: false, show: exp.points.length > 1},
      cursor: {drag: {x: false, y: false}}}, cdf, $("#lab-cdf"));
    cdfPlot._key = key;
    cdfPlot.over.addEventListener("click", () => clickCdf(cdfPlot));
    histPlot = new window.uPlot({width, height, title: `histogram of ${exp.measure}`,
      scales: {x: {time: false}}, series: series(true),
      axes: [{label: exp.measure}, {label: "runs"}], legend: {show: false},
      cursor: {drag: {x: false, y: false}}}, hist, $("#lab-hist"));
    histPlot._key = key;
  } else {
    cdfPlot.setData(cdf);
    histPlot.setData(hist);
  }
  $("#lab-charts").dataset.runs = String(per.flat().length);
}

// A click on the CDF: the run of the nearest series' step under the cursor.
function clickCdf(u) {
  const idx = u.cursor.idx;
  if (idx === null || idx === undefined || u.cursor.left < 0) return;
  const x = u.data[0][idx], yPos = u.posToVal(u.cursor.top, "y");
  const per = seriesRuns();
  let best = null;
  per.forEach((runs, s) => {
    const y = u.data[s + 1][idx];
    if (y === null || !runs.length) return;
    const d = Math.abs(y - yPos);
    if (best === null || d < best.d) best = {d, runs};
  });
  if (!best) return;
  const run = best.runs.reduce((a, r) => (Math.abs(r.value - x) < Math.abs(a.value - x) ? r : a));
  openRun(run);
}

function openRun(run) {
  if (!run) return;
  const payload = new URL(run.share, location.origin).searchParams.get("share");
  page.control({do: "load", share: payload});
  for (const tr of document.querySelectorAll("#lab-runs tr.opened")) tr.classList.remove("opened");
  const tr = $(`#lab-runs tr[data-index="${run.index}"]`);
  if (tr) tr.classList.add("opened");
  $("#lab-opened").textContent = `Opened seed ${run.seed}${run.point ? ` (${exp.param} = ${run.point})` : ""}: ` +
    `${exp.measure} = ${fmt(run.value)}, paused ${run.violations ? "at its first violation" : "at its end"}.`;
}

// --- find a counterexample -----------------------------------------------------------------------
function searchDone(f) {
  $("#lab-search-bar").hidden = true;
  const tried = (f.tried || []).map((t) => `${t.strategy}: ${t.explored.toLocaleString()} ${t.unit}${t.stopped ? " (time cap)" : ""}`).join("; ");
  if (f.cancelled) return say(`Cancelled. ${tried}`, false, "#lab-search-status");
  if (f.error) return say(f.error, true, "#lab-search-status");
  if (!f.found) {
    return say(`Not found: no invariant broke with ${f.mutation} on. Explored ${tried || "nothing"}. ` +
               "Try the other strategy, a smaller cluster, or more runs.", false, "#lab-search-status");
  }
  say(`Found: ${f.invariant} broken at ${page.fmtT(f.t)} (${f.strategy}, after ${f.explored.toLocaleString()} ${f.unit}; ` +
      `${f.scenario.actions.length} actions). Opened below, paused at the violation.`, false, "#lab-search-status");
  $('[data-panel="experiments"]').dataset.found = f.invariant;
  pendingViolation = {t: f.t, invariant: f.invariant, detail: f.violation && f.violation.detail};
  page.control({do: "load", share: f.share});
}

// The page has replayed to the violation: mark the last events before it, show the invariant.
function markViolation(v) {
  const lis = [...document.querySelectorAll("#events li")].filter((li) => parseFloat(li.dataset.t) <= v.t + 1e-9);
  lis.slice(0, LEAD_EVENTS).forEach((li, i) => { li.classList.add("lead"); if (i === 0) li.classList.add("lead-last"); });
  page.showTab("invariants");
  const inv = [...document.querySelectorAll("#invariants li")].find((li) => li.dataset.invariant === v.invariant);
  if (inv) { inv.classList.add("lab-broken"); inv.scrollIntoView({block: "nearest"}); }
  const note = $("#lab-lead-note");
  note.textContent = `The ${Math.min(LEAD_EVENTS, lis.length)} events before the violation are marked in the Events tab.`;
}
