// The load-balancing lab's page module: clients on the left, the balancer(s) in the middle,
// backends on the right; requests as dots coloured by their age (green when young, red near
// their timeout); each backend with its in-flight count, a queue bar and a utilisation ring;
// backends that are down, ejected or failing health checks drawn out; the side panel holds the
// lab's controls and its live charts (uPlot, static/vendor/). app/protocols/lb.py says what the
// frames carry (pill labels name the request, `series` the metrics observer's records). The
// contract is in static/js/protocols/index.js.
//
// No module state: everything a page (or each of several panels on one page) needs lives in
// the `state` it is given (`state.logs.lb`, reset by every hello) or on its own DOM elements.

import {loadUPlot} from "../uplot.js";
import {esc} from "./cells.js";

export const title = "Load balancing";

const SHORT = {round_robin: "RR", weighted_round_robin: "WRR", random: "RAND", weighted_random: "W-RAND",
  least_connections: "LC", weighted_least_connections: "WLC", power_of_d: "P2C",
  consistent_hash: "RING", maglev: "MAGLEV", peak_ewma: "EWMA"};
const HUES = ["#2f5fa7", "#c0392b", "#17803d", "#c77700", "#8e44ad", "#16808c", "#a0336b", "#6b4f2a",
  "#3d3db0", "#5b6472"];
export const backendColour = (id) => HUES[(parseInt(String(id).slice(1), 10) - 1) % HUES.length] || "#444";

function L(state) {
  const g = state.logs;
  if (!g.lb) g.lb = {born: new Map(), tids: new Map(), series: null, rev: 0, charts: null};
  return g.lb;
}

const isBackend = (n) => n && n.kind === "backend";
const isBalancer = (n) => n && n.kind === "balancer";
const balancers = (state) => state.extras.balancers || state.layout.nodes.filter((id) => isBalancer(state.nodes[id]));
const backends = (state) => state.extras.backends || state.layout.nodes.filter((id) => isBackend(state.nodes[id]));

// Why a backend is out of service, as the balancers see it: "down" (crashed), "ejected" (passive
// outlier detection), "unhealthy" (failed active checks), or "" (in service).
export function outOf(id, state) {
  const n = state.nodes[id];
  if (!n || n.status === "down") return "down";
  let why = "";
  for (const lb of balancers(state)) {
    const v = state.nodes[lb];
    if (!v || v.status === "down") continue;
    if ((v.ejected || []).includes(id)) return "ejected";
    if (!(v.healthy || []).includes(id)) why = "unhealthy";
  }
  return why;
}

function factor(id, n, state) {
  const base = (state.extras.base_speed || {})[id] || 1;
  return n.speed != null ? n.speed / base : 1;
}
const fmtFactor = (f) => (Math.abs(f - 1) < 1e-9 ? "" : `×${+f.toPrecision(2)}`);

// --- the nodes -------------------------------------------------------------------------------
export function look(n) {
  if (isBalancer(n)) {
    const sub = SHORT[n.algorithm] || n.algorithm || "";
    if (n.status === "down") return {cls: "down", label: "CRASHED", words: "balancer, crashed", sub};
    if (n.status === "paused") return {cls: "candidate", label: "⏸ PAUSED", words: "balancer, paused", sub};
    return {cls: "leader", label: "BALANCER", words: `balancer running ${n.algorithm}`, sub, fill: "#2f5fa7"};
  }
  if (isBackend(n)) {
    if (n.status === "down") return {cls: "down", label: "CRASHED", words: "backend, crashed", sub: ""};
    const busy = `${n.in_flight}/${n.concurrency}`;
    const full = n.queue_limit ? n.queue / n.queue_limit : 0;
    // Green while requests need not wait, amber as a queue builds, red when it is full.
    const fill = full >= 1 ? "#b3261e" : full > 0.5 ? "#c05600" : n.queue > 0 ? "#8a6d00" : "#2f7d4a";
    const sub = n.speed != null && n.speed !== 1 ? `speed ${+n.speed.toPrecision(2)}` : "";
    if (n.status === "paused") return {cls: "candidate", label: "⏸ PAUSED", words: `backend, paused, ${busy} busy`, sub};
    return {cls: "follower", label: `${busy} busy`, words: `backend, ${busy} in service, ${n.queue} queued`, sub, fill};
  }
  return {cls: "follower", label: String(n.role || "?").toUpperCase(), words: String(n.role || "?"), sub: ""};
}

export const dataset = (n) => (isBackend(n)
  ? {kind: "backend", inFlight: String(n.in_flight ?? ""), queue: String(n.queue ?? ""), speed: String(n.speed ?? ""),
     served: String(n.served ?? "")}
  : {kind: String(n.kind || ""), algorithm: String(n.algorithm || "")});

export function badge(n, state) {
  if (isBalancer(n)) {
    if (n.status === "down") return "crashed: clients get no answer";
    const tries = n.tries ? `${n.tries} tries out` : "idle";
    return n.retrying ? `${tries} · ${n.retrying} retrying` : tries;
  }
  if (!isBackend(n)) return "";
  if (n.status === "down") return "crashed";
  return `q ${n.queue}/${n.queue_limit} · ✓${n.served}${n.rejected ? ` ✗${n.rejected}` : ""}`;
}

export const legend = [["follower", "BALANCER"], ["leader", "BACKEND: busy/slots (amber, red: queue filling)"],
  ["candidate", "• request: green young → red near its timeout"], ["down", "CRASHED ✕ · dashed red: EJECTED / UNHEALTHY"]];
export const ringLabel = "utilisation (last interval)";

export function ring(n, state) {
  if (!isBackend(n) || n.status !== "up") return null;
  const s = L(state).series;
  const id = n._id;
  const u = s && id && s.util[id] ? s.util[id][s.util[id].length - 1] : null;
  return u == null ? null : Math.max(0, Math.min(1, u));
}

export const timerWords = (name) => ({serve: "service timer (next completion)", probe: "health-check timer",
  probe_timeout: "probe timeout", try: "try timeout"}[name] || `${name} timer`);

export function ingest(state, id, n) {
  n._id = id;
  return n;
}

// The queue bar, and the mark that says a backend is out of service (also as data-out).
export function decorate(els, state, nodeR) {
  for (const [id, e] of Object.entries(els)) {
    const n = state.nodes[id];
    if (!n) continue;
    n._id = id;
    if (!isBackend(n)) continue;
    let d = e.g.querySelector("g.lb-deco");
    if (!d) {
      d = document.createElementNS("http://www.w3.org/2000/svg", "g");
      d.setAttribute("class", "lb-deco");
      d.innerHTML = `<rect class="lb-qbg" x="${-nodeR}" y="${nodeR + 17}" width="${2 * nodeR}" height="9" rx="3" fill="#e6e8eb" stroke="#8d939c"/>` +
        `<rect class="lb-q" x="${-nodeR}" y="${nodeR + 17}" width="0" height="9" rx="3" fill="#c77700"/>` +
        `<circle class="lb-out" r="${nodeR + 6}" fill="none" stroke="#c4161c" stroke-width="5" stroke-dasharray="10 7" display="none"/>` +
        `<g class="lb-stamp" display="none"><rect x="${-nodeR - 10}" y="${-13}" width="${2 * nodeR + 20}" height="26" rx="5" fill="#fff" stroke="#c4161c" stroke-width="3"/>` +
        `<text class="lb-outt" y="7" text-anchor="middle" font-weight="800" style="fill:#c4161c;font-size:${Math.max(13, nodeR * 0.36).toFixed(0)}px"></text></g>`;
      e.g.appendChild(d);
    }
    const frac = n.queue_limit ? Math.min(1, (n.queue || 0) / n.queue_limit) : 0;
    const q = d.querySelector(".lb-q");
    q.setAttribute("width", (2 * nodeR * frac).toFixed(1));
    q.setAttribute("fill", frac >= 1 ? "#c4161c" : frac > 0.5 ? "#c77700" : "#d9a400");
    const why = outOf(id, state);
    e.g.setAttribute("data-out", why);
    const out = why && why !== "down";
    d.querySelector(".lb-out").setAttribute("display", out ? "inline" : "none");
    d.querySelector(".lb-stamp").setAttribute("display", out ? "inline" : "none");
    const t = d.querySelector(".lb-outt");
    t.textContent = why === "ejected" ? "EJECTED" : why === "unhealthy" ? "UNHEALTHY" : "";
    e.g.querySelector(".body").style.opacity = out ? "0.45" : "";  // faded, the stamp on top
  }
}

// Clients left, balancers in the middle, backends right in columns of at most five.
export function layout(topology, clients) {
  const pos = {};
  const lbs = topology.nodes.filter((x) => x[1] === "balancer").map((x) => x[0]);
  const bs = topology.nodes.filter((x) => x[1] === "backend").map((x) => x[0]);
  const spread = (ids, x, h) => ids.forEach((id, i) => { pos[id] = [x, ids.length === 1 ? 0 : -h / 2 + (h * i) / (ids.length - 1)]; });
  spread(clients, -360, Math.min(600, 150 * (clients.length - 1)));
  spread(lbs, -150, 300);
  const cols = Math.max(1, Math.ceil(bs.length / 5)), rows = Math.ceil(bs.length / cols);
  // (Sized by the grid: a badge and a queue bar fit under each circle.)
  const nodeR = cols >= 3 ? 30 : rows <= 3 ? 54 : 46;
  const x0 = cols === 1 ? 240 : 90, x1 = 355;
  bs.forEach((id, i) => {
    const c = Math.floor(i / rows), r = i % rows;
    const x = cols === 1 ? x0 : x0 + ((x1 - x0) * c) / (cols - 1);
    const h = 600;
    const y = rows === 1 ? 0 : -h / 2 + (h * r) / (rows - 1);
    pos[id] = [x, y];
  });
  return {pos, nodeR};
}

// --- the messages: dots coloured by their request's age ----------------------------------------
export const pills = {
  req: {fill: "#dff1e4", stroke: "#17803d", ink: "#15181d"}, work: {fill: "#e1e9fb", stroke: "#2f5fa7", ink: "#15181d"},
  done: {fill: "#eef8f0", stroke: "#17803d", ink: "#15181d"}, reply: {fill: "#eef8f0", stroke: "#17803d", ink: "#15181d"},
  fail: {fill: "#fbe3e0", stroke: "#c4161c", ink: "#15181d"}, probe: {fill: "#f1f2f4", stroke: "#59606b", ink: "#15181d"},
};

// Age to colour: green (0) to red (the request's timeout), on a log scale so the first tens of
// milliseconds, where most requests live, are told apart.
export function ageColour(ageMs, timeoutMs) {
  const f = Math.max(0, Math.min(1, Math.log1p(Math.max(0, ageMs) / 10) / Math.log1p(timeoutMs / 10)));
  return `hsl(${Math.round(120 * (1 - f))}, 78%, ${Math.round(40 + 6 * f)}%)`;
}

function requestOf(m, g) {
  const label = m[5], cls = m[6];
  if (cls === "req") return label.split(" ")[0];
  if (cls === "work") { const [key, tid] = label.split("·"); if (tid && !g.tids.has(tid)) g.tids.set(tid, key); return key; }
  if (cls === "done" || cls === "fail" && label.startsWith("t")) return g.tids.get(label.split(" ")[0]) || null;
  if (cls === "reply" || cls === "fail") return `${m[2]}${label.split(" ")[0]}`;  // "#5" to client m[2]
  return null;
}

export function dot(m, state, now) {
  const g = L(state);
  const cls = m[6];
  if (cls === "probe") return {r: 4, fill: "#9aa1ab"};
  const key = requestOf(m, g);
  let born = key ? g.born.get(key) : undefined;
  if (key && born === undefined) {
    born = m[3];
    g.born.set(key, born);
    if (g.born.size > 4000) forgetOld(g, now - 4 * (state.extras.timeout_ms || 1000));
  }
  const age = now - (born ?? m[3]);
  const fill = ageColour(age, state.extras.timeout_ms || 1000);
  if (cls === "fail") return {r: 8, fill, stroke: "#15181d", line: 3};
  return {r: cls === "work" || cls === "req" ? 7 : 6, fill, stroke: cls === "done" || cls === "reply" ? "#15181d" : null, line: 1.2};
}

function forgetOld(g, before) {
  for (const [k, t] of g.born) { if (t >= before) break; g.born.delete(k); }
  if (g.tids.size > 4000) { let n = g.tids.size - 2000; for (const k of g.tids.keys()) { if (n-- <= 0) break; g.tids.delete(k); } }
}

// --- menus and keys -----------------------------------------------------------------------------
export const menuTitle = (id, n) => `${id} · ${look(n).words}`;

export function menu(id, n, state) {
  const items = [];
  if (n.status === "down") { items.push({label: `Restart ${id} (empty, at its configured speed)`, action: {do: "restart", node: id}}); return items; }
  items.push({label: `Crash ${id}`, action: {do: "crash", node: id}});
  items.push(n.status === "paused" ? {label: `Resume ${id}`, action: {do: "resume", node: id}}
    : {label: `Pause ${id} (it stops answering, probes too)`, action: {do: "pause", node: id}});
  if (isBackend(n)) {
    const f = factor(id, n, state);
    items.push({label: `Slow ${id} to ×0.5`, ...(Math.abs(f - 0.5) < 1e-9 ? {say: `${id} already runs at ×0.5`} : {action: {do: "slow", node: id, factor: 0.5}})});
    items.push({label: `Slow ${id} to ×0.1`, ...(Math.abs(f - 0.1) < 1e-9 ? {say: `${id} already runs at ×0.1`} : {action: {do: "slow", node: id, factor: 0.1}})});
    items.push({label: `Restore ${id}'s speed`, ...(Math.abs(f - 1) < 1e-9 ? {say: `${id} runs at its configured speed`} : {action: {do: "slow", node: id, factor: 1}})});
  }
  return items;
}

export const requestLabel = "Client request";
export const request = () => ({say: "the clients send requests on their own (an open loop): change the rate in the panel"});

function algorithmActions(state, name) {
  return balancers(state).map((lb) => ({do: "algorithm", node: lb, algorithm: name}));
}

export const keys = {
  a: (state) => {
    const names = (state.extras.algorithms || []).map((a) => a[0]);
    const lb = balancers(state).map((x) => state.nodes[x]).find((v) => v && v.status === "up");
    if (!lb || !names.length) return {say: "no balancer is running"};
    return {action: algorithmActions(state, names[(names.indexOf(lb.algorithm) + 1) % names.length])};
  },
  x: (state) => {
    const up = backends(state).filter((id) => state.nodes[id] && state.nodes[id].status === "up");
    if (!up.length) return {say: "every backend is down"};
    const load = (id) => (state.nodes[id].in_flight || 0) + (state.nodes[id].queue || 0);
    const b = up.reduce((a, c) => (load(c) > load(a) ? c : a), up[0]);
    return {action: {do: "crash", node: b}};
  },
};

// --- the series (metrics) -------------------------------------------------------------------------
// The charts are a sliding window of the latest `hello.extras.history` intervals: what the world
// keeps (engine/protocols/lb/metrics.py HISTORY), so a snapshot after a reload or a seek shows
// exactly what live play showed.
function dropOldest(s, n) {
  for (const k of Object.keys(s)) {
    if (Array.isArray(s[k])) s[k] = s[k].slice(n);
    else if (s[k] && typeof s[k] === "object" && k !== "hist") for (const b of Object.keys(s[k])) s[k][b] = s[k][b].slice(n);
  }
}

export function applySeries(state, s) {
  const g = L(state);
  g.rev++;
  if (s.full || !g.series) { g.series = structuredClone(s); return; }
  const cur = g.series;
  for (const [k, v] of Object.entries(s)) {
    if (k === "full") continue;
    if (k === "hist") { if (v) cur.hist = v; continue; }
    if (Array.isArray(v)) cur[k] = (cur[k] || []).concat(v);
    else if (v && typeof v === "object") {
      const n0 = cur.t.length - s.t.length;
      for (const [b, xs] of Object.entries(v)) {
        const have = cur[k][b] || (cur[k][b] = new Array(Math.max(0, n0)).fill(null));
        cur[k][b] = have.concat(xs);
      }
    }
  }
  const keep = state.extras.history || 240;
  if (cur.t.length > keep) dropOldest(cur, cur.t.length - keep);
}

// --- the panel: controls, numbers, charts ------------------------------------------------------------
export const panelLabel = "Load-balancing controls and charts";

const CONTROLS = [
  ["rate_per_s", "Rate", 1, 200, 1, "req/s"], ["cost_spread", "Cost σ", 0, 3, 0.25, ""],
  ["nodes", "Backends", 1, 20, 1, ""], ["slow_fleet", "Slow half", 0.1, 1, 0.05, "× speed"],
];

function controlValue(state, name) {
  const x = state.extras, sc = state.scenario || {};
  if (name === "rate_per_s") return x.rate_per_s;
  if (name === "cost_spread") return x.cost && x.cost.dist === "lognormal" ? x.cost.spread : 0;
  if (name === "nodes") return backends(state).length;
  if (name === "slow_fleet") {
    const sp = Object.values(x.base_speed || {});
    return sp.length ? Math.min(...sp, 1) : 1;
  }
  return sc[name];
}

function buildControls(state) {
  const x = state.extras;
  let h = `<form class="lb-controls" data-lb-controls="1" style="display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:0 10px;margin:0 0 2px;font-size:0.88em">`;
  h += `<label style="grid-column:1/-1;font-weight:600">Algorithm <select name="lb-algorithm" aria-label="Balancing algorithm (switches from now on)" style="max-width:55%">`;
  for (const [name, t, words] of x.algorithms || []) h += `<option value="${esc(name)}" title="${esc(words)}">${esc(t)}</option>`;
  h += `</select> <span class="muted" style="font-weight:400">switches from now on</span></label>`;
  for (const [name, label, lo, hi, step, unit] of CONTROLS) {
    h += `<label style="display:flex;flex-direction:column;white-space:nowrap">${esc(label)} <output data-out-for="${name}" style="font-weight:700"></output>`;
    h += `<input type="range" name="lb-${name}" min="${lo}" max="${hi}" step="${step}" aria-label="${esc(label)} (restarts the run)" data-unit="${unit}"></label>`;
  }
  h += `<span style="grid-column:1/-1"><label><input type="checkbox" name="lb-health"> health checks</label> · `;
  h += `<label><input type="checkbox" name="lb-outlier"> outlier ejection</label> · <label>retries <select name="lb-retries">`;
  for (let i = 0; i <= 3; i++) h += `<option value="${i}">${i}</option>`;
  h += `</select></label> · <label><input type="checkbox" name="lb-retry_budget"> retry budget</label> <span class="muted">· sliders and boxes restart the run</span></span></form>`;
  return h;
}

function syncControls(root, state) {
  const x = state.extras;
  const set = (sel, fn) => { const e = root.querySelector(sel); if (e && document.activeElement !== e) fn(e); };
  const lb = balancers(state).map((id) => state.nodes[id]).find((v) => v && v.algorithm);
  set('select[name="lb-algorithm"]', (e) => { e.value = lb ? lb.algorithm : x.algorithm; });
  for (const [name, , , , , unit] of CONTROLS) {
    const v = controlValue(state, name);
    set(`input[name="lb-${name}"]`, (e) => { e.value = String(v); });
    const o = root.querySelector(`output[data-out-for="${name}"]`);
    const e = root.querySelector(`input[name="lb-${name}"]`);
    const dist = x.cost ? x.cost.dist : "";
    const DIST = {exponential: "exp.", constant: "const.", uniform: "uniform", pareto: "Pareto"};
    if (o && e) o.textContent = name === "cost_spread" && dist !== "lognormal" ? (DIST[dist] || dist)
      : `${e.value}${unit ? " " + unit : ""}`;
  }
  set('input[name="lb-health"]', (e) => { e.checked = !!x.health; });
  set('input[name="lb-outlier"]', (e) => { e.checked = !!x.outlier; });
  set('select[name="lb-retries"]', (e) => { e.value = String(x.retries || 0); });
  set('input[name="lb-retry_budget"]', (e) => { e.checked = !!x.retry_budget; });
}

export function panelChange(ev, state) {
  const t = ev.target, name = (t.name || "").replace(/^lb-/, "");
  if (!t.name || !t.name.startsWith("lb-")) return null;
  if (name === "algorithm") return {action: algorithmActions(state, t.value)};
  if (name === "nodes") return {control: {do: "configure", nodes: parseInt(t.value, 10)}};
  const v = t.type === "checkbox" ? t.checked : t.tagName === "SELECT" ? parseInt(t.value, 10) : parseFloat(t.value);
  return {control: {do: "configure", options: {[name]: v}}};
}

export function panelClick() { return null; }

const fmtMs = (v) => (v == null ? "–" : v >= 100 ? `${Math.round(v)}` : `${+v.toFixed(1)}`);

function summary(state) {
  const s = L(state).series;
  if (!s || !s.t.length) return `<p class="lb-summary muted" data-p99="">No measurements yet (every ${state.extras.metrics_interval_ms} ms of simulated time).</p>`;
  const i = s.t.length - 1, iv = state.extras.metrics_interval_ms || 1000;
  const dropsPerS = (s.drops[i] * 1000) / iv;
  return `<p class="lb-summary" data-t="${s.t[i]}" data-p50="${s.p50[i] ?? ""}" data-p99="${s.p99[i] ?? ""}" data-p999="${s.p999[i] ?? ""}" style="margin:2px 0 4px;font-weight:600">` +
    `at ${(s.t[i] / 1000).toFixed(2)} s: p50 ${fmtMs(s.p50[i])} · p95 ${fmtMs(s.p95[i])} · p99 <span style="color:#c4161c">${fmtMs(s.p99[i])}</span> · p99.9 ${fmtMs(s.p999[i])} ms` +
    ` · ${Math.round(s.tput[i])} served/s · <span style="color:${dropsPerS ? "#c4161c" : "inherit"}">${+dropsPerS.toFixed(1)} dropped/s</span>` +
    `${s.retries[i] ? ` · ${s.retries[i]} retries` : ""}</p>`;
}


const EDGE_LABEL = (edges, i) => (!edges || !edges.length ? "" : i === 0 ? `<${edges[0]}` : i >= edges.length ? `≥${edges[edges.length - 1]}` : `${edges[i - 1]}`);

function chartData(state, which) {
  const s = L(state).series;
  const t = s ? s.t.map((x) => x / 1000) : [];
  if (which === "lat") return [t, s ? s.p50 : [], s ? s.p95 : [], s ? s.p99 : [], s ? s.p999 : []];
  if (which === "load") return [t, ...backends(state).map((b) => (s && s.util[b] ? s.util[b].map((u) => (u == null ? null : u * 100)) : []))];
  if (which === "drops") {
    const iv = (state.extras.metrics_interval_ms || 1000) / 1000;
    return [t, s ? s.tput : [], s ? s.drops.map((d) => d / iv) : [], s ? s.retries.map((d) => d / iv) : []];
  }
  const h = s && s.hist;
  const counts = h ? h.counts : [];
  return [counts.map((_, i) => i), counts];
}

function makeCharts(root, state, projector) {
  const uPlot = window.uPlot;
  const w = Math.max(200, Math.floor((root.clientWidth - 16) / 2) - 6);
  const hgt = projector ? 126 : 112;
  const font = projector ? "bold 15px system-ui, sans-serif" : "11px system-ui, sans-serif";
  const wide = projector ? 3 : 1.6;
  const axes = (yLabel, xv) => [{font, size: projector ? 34 : 26, ...(xv ? {values: xv} : {})}, {font, size: projector ? 56 : 44, label: yLabel, labelFont: font, labelSize: projector ? 22 : 16}];
  const base = (titleText, yLabel, series, extra = {}) => ({
    title: titleText, width: w, height: hgt, scales: {x: {time: false}, ...(extra.scales || {})},
    legend: {show: !projector, live: false}, cursor: {show: false}, series: [{label: "t (s)"}, ...series],
    axes: axes(yLabel, extra.xv), ...(extra.opts || {}),
  });
  const pct = [["p50", "#17803d"], ["p95", "#c77700"], ["p99", "#c4161c"], ["p99.9", "#6b1010"]];
  const charts = {};
  const box = (name) => { const d = document.createElement("div"); d.className = `lb-chart lb-chart-${name}`; d.dataset.chart = name; root.appendChild(d); return d; };
  charts.lat = new uPlot(base("Latency percentiles (ms, log)", "ms", pct.map(([label, stroke]) => ({label, stroke, width: wide, spanGaps: true})),
    {scales: {y: {distr: 3}}}), chartData(state, "lat"), box("lat"));
  charts.load = new uPlot(base("Utilisation per backend (%)", "%", backends(state).map((b) => ({label: b, stroke: backendColour(b), width: wide * 0.8})),
    {scales: {y: {range: [0, 100]}}}), chartData(state, "load"), box("load"));
  charts.drops = new uPlot(base("Served, dropped, retried (per s)", "/s", [
    {label: "served", stroke: "#2f5fa7", width: wide}, {label: "dropped", stroke: "#c4161c", width: wide, fill: "rgba(196,22,28,0.15)"},
    {label: "retries", stroke: "#8e44ad", width: wide, dash: [6, 4]}]), chartData(state, "drops"), box("drops"));
  const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({size: [0.85, 60]}) : undefined;
  const edges = () => (L(state).series && L(state).series.hist ? L(state).series.hist.edges_ms : []);
  charts.hist = new uPlot(base("Latency histogram (ms, last window)", "requests", [{label: "requests", stroke: "#2f5fa7", fill: "rgba(47,95,167,0.55)", paths: bars, points: {show: false}}],
    {scales: {x: {time: false, range: (u, lo, hi) => [-0.5, Math.max(hi, 1) + 0.5]}}, xv: (u, ticks) => ticks.map((i) => (Number.isInteger(i) ? EDGE_LABEL(edges(), i) : ""))}),
  chartData(state, "hist"), box("hist"));
  for (const c of Object.values(charts)) {  // titles and legends small: the numbers are the point
    const t = c.root.querySelector(".u-title");
    if (t) { t.style.fontSize = projector ? "17px" : "12.5px"; t.style.lineHeight = "1.2"; }
    const lg = c.root.querySelector(".u-legend");
    if (lg) { lg.style.fontSize = "11px"; lg.style.lineHeight = "1.1"; }
  }
  return charts;
}

export function renderPanel(el, state, projector) {
  const g = L(state);
  el.style.maxHeight = "74%";  // the charts are this page's main panel
  let root = el.querySelector(":scope > .lb-panel");
  if (!root || root.dataset.session !== String(state.session) || root.dataset.projector !== String(!!projector)
      || root.dataset.backends !== String(backends(state).length)) {
    if (root && root._charts) for (const c of Object.values(root._charts)) c.destroy();
    g.charts = null;
    el.textContent = "";
    root = document.createElement("div");
    root.className = "lb-panel";
    root.dataset.session = String(state.session);
    root.dataset.projector = String(!!projector);
    root.dataset.backends = String(backends(state).length);
    root.innerHTML = buildControls(state) + `<div class="lb-sum"></div><div class="lb-charts" style="display:flex;flex-wrap:wrap;gap:4px 8px"></div>`;
    if (projector) {  // for an audience: the algorithm, the numbers and the charts (P for the rest)
      for (const e of root.querySelectorAll(".lb-controls > label:not(:first-child), .lb-controls > span")) e.style.display = "none";
    }
    el.appendChild(root);
  }
  syncControls(root, state);
  root.querySelector(".lb-sum").innerHTML = summary(state);
  const box = root.querySelector(".lb-charts");
  if (!window.uPlot) {
    if (!box.textContent) box.textContent = "loading the charts…";
    loadUPlot(() => renderPanel(el, state, document.body.classList.contains("projector")));
    return;
  }
  if (!g.charts) {
    // (A hello resets state.logs: the charts drawn for the previous one are let go here.)
    if (root._charts) for (const c of Object.values(root._charts)) c.destroy();
    box.textContent = "";
    g.charts = root._charts = makeCharts(box, state, projector);
    g.drawn = g.rev;
    return;
  }
  if (g.drawn !== g.rev) {
    g.drawn = g.rev;
    for (const [name, c] of Object.entries(g.charts)) c.setData(chartData(state, name));
  }
}

// --- compare mode (static/js/protocols/index.js): each world's numbers and curves -------------------
const last = (xs) => (xs && xs.length ? xs[xs.length - 1] : null);

export function compareSeries(state) {
  const s = L(state).series;
  const iv = (state.extras.metrics_interval_ms || 1000) / 1000;
  const util = s && s.util ? Object.values(s.util).map(last).filter((u) => u != null) : [];
  return {
    "p50 ms": s ? last(s.p50) : null,
    "p99 ms": s ? last(s.p99) : null,
    "p99.9 ms": s ? last(s.p999) : null,
    "served/s": s ? last(s.tput) : null,
    "dropped/s": s && s.drops.length ? last(s.drops) / iv : null,
    "busiest backend %": util.length ? Math.max(...util) * 100 : null,
  };
}

// Curves over simulated time (ms) for the overlay chart: one line per world.
export function compareCurves(state) {
  const s = L(state).series;
  if (!s) return {};
  const iv = (state.extras.metrics_interval_ms || 1000) / 1000;
  return {
    "p99 ms": {t: s.t, v: s.p99}, "p50 ms": {t: s.t, v: s.p50}, "p99.9 ms": {t: s.t, v: s.p999},
    "served/s": {t: s.t, v: s.tput}, "dropped/s": {t: s.t, v: s.drops.map((d) => d / iv)},
  };
}
