// The page: one WebSocket, a state built from frames only, the canvas, the panels and controls.
// Frames and their fields are documented in docs/ws-protocol.md.

import {Canvas} from "./canvas.js";
import {getProtocol} from "./protocols/index.js";
import {SpaceTime} from "./spacetime.js";
import {loadUPlot} from "./uplot.js";
import {makeRoom} from "./room.js";
import {frameHook, initExperiments} from "./experiments.js";

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const body = document.body;
const SPEED_MIN = parseFloat(body.dataset.speedMin), SPEED_MAX = parseFloat(body.dataset.speedMax);

const state = {
  layout: {nodes: [], clients: []}, topology: {nodes: [], links: []}, nodes: {}, logs: {},
  flight: new Map(), flightRev: 0, net: null, inv: [],
  t: 0, recvAt: performance.now(), playing: true, speed: parseFloat(body.dataset.speedDefault),
  horizon: 0, end: 0, digest: "", extras: {}, session: null, secret: null, timeline: [],
  scenario: null, lesson: null, manual: false, waiting: new Set(), waitingRev: 0,
  mutations: {}, activeMutations: [], options: {}, frameMs: 50, quietMs: 50, logWindow: 200,
};
// The page module of the protocol (static/js/protocols/): an unknown one is an error on the page.
let proto = null;
let canvas = null;
let ws = null;
let fatal = false;
let pendingExport = false;
let partitionPick = null; // Set of node ids while the partition tool is on
let scrubbing = false;
let logDirty = true;
// Between a hello and its snapshot the page has no picture of the world (its nodes are not known
// yet): the side panel waits for the snapshot rather than drawing an empty one for that moment.
let pictured = false;
// Compare mode (hello.compare): the other worlds, each {state, canvas, svg, fig}; the page's own
// `state` and `canvas` are the first world. null with one world.
let compare = null;
let offered = {};  // hello.compare_variants: {name: config overrides}

// --- connection ---------------------------------------------------------------------------
// A page holds its session by id and secret (from the first hello). Neither goes in a URL: a
// reconnect opens /ws?attach=1 and sends them in its first frame (docs/ws-protocol.md).
function wsUrl() {
  const q = new URLSearchParams();
  if (room.viewer) q.set("room", room.code);  // an audience page: no session, no secret
  else if (state.session) q.set("attach", "1");
  else {
    for (const k of ["protocol", "scenario", "share", "speed", "compare"]) if (params.get(k)) q.set(k, params.get(k));
  }
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${q}`;
}

function protoError(e) {
  fatal = true;
  const n = document.querySelector("#notice");
  n.textContent = `${e.message}. Pick a protocol above.`;
  n.hidden = false;
  document.querySelector("#conn").textContent = "no protocol";
}

function connect() {
  if (!proto) return;
  const attaching = !!state.session;
  ws = new WebSocket(wsUrl());
  setConn("connecting…");
  ws.onopen = () => {
    // `t`: where this page was, so a session rebuilt on another worker goes on from there.
    // `pending`: the clicks this page saw whose recipe no frame has said is durable yet (`dur`):
    // a worker rebuilding the session from its recipe applies them too, so none is lost.
    // `seen`: the last frame it got (a recipe holding later ones is newer than this page, and
    // wins); `t` only once the page has a picture of this world (a snapshot after its hello).
    if (attaching) {
      const pending = undurable.flatMap((p) => p.acts);
      const a = {type: "attach", session: state.session, secret: state.secret, seen: lastSeq};
      if (pictured) a.t = state.t;
      if (pending.length > MAX_PENDING) {
        toast(`${pending.length} recent clicks were not yet saved by the server and are too many to send back; ` +
              "if this session was moved to another server, they are lost", true);
      } else if (pending.length) a.pending = pending;
      ws.send(JSON.stringify(a));
    }
    setConn("live");
  };
  ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    // 4001: another tab took this session over; 4000: closed for being idle (it is gone);
    // 4004: the server no longer has it (restarted, or it expired). Reconnecting on our own
    // would steal the session back (two tabs fighting over it) or silently start a new one:
    // say what happened and let the user choose. 4002: this page fell too far behind (a slow
    // link): the session is still there, so catch up with a fresh snapshot.
    if (ev.code === 4004) return room.viewer ? roomGone() : lost();
    if (ev.code === 4002) { fatal = false; setConn("catching up…"); return setTimeout(connect, 1000); }
    if (ev.code === 4001 || ev.code === 4000 || ev.code === 4003 || fatal) return stopped(ev.code);
    setConn("reconnecting…");
    setTimeout(connect, 1000);
  };
}

// The server lost the session (it restarted, or the session expired): say so, offer the last
// moment the page saw as a share link it builds itself, and reopen the lesson the page had.
async function lost() {
  const link = await lastShareLink().catch(() => null);
  const lesson = state.lesson && state.lesson.name;
  state.session = null; state.secret = null; fatal = false;
  params.delete("share");
  if (lesson) params.set("scenario", lesson); else params.delete("scenario");
  const n = $("#notice");
  clearTimeout(onError.timer);
  n.textContent = "The server restarted or this session expired: your run was lost. ";
  if (link) {
    const a = document.createElement("a");
    a.id = "lost-link"; a.href = link; a.textContent = `Open it again at ${fmtT(state.t)}`;
    n.append(a, document.createTextNode(lesson ? ` (reopened the lesson “${state.lesson.title}”)` : ""));
  }
  n.hidden = false;
  connect();
}

// A share payload built from what the frames said: the scenario (hello), the branch's actions
// (hello.actions, then events.acts) up to the moment shown, and the lesson. The same format as the
// server's (`1.` + base64url(zlib(JSON)), docs/ws-protocol.md).
async function sharePayload() {
  if (!state.scenario || typeof CompressionStream === "undefined") return null;
  const s = {...(compare ? compare.origin : state.scenario)};
  delete s.notes; delete s.suggest;
  s.actions = state.timeline.filter((a) => a.at <= state.t);
  const body = {s, t: state.t};
  if (state.lesson && state.lesson.name) body.l = state.lesson.name;
  if (compare) body.c = compare.variants;
  const z = new Blob([JSON.stringify(body)]).stream().pipeThrough(new CompressionStream("deflate"));
  const bytes = new Uint8Array(await new Response(z).arrayBuffer());
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return "1." + btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function lastShareLink() {
  const p = await sharePayload();
  if (!p) return null;
  const q = new URLSearchParams();
  if (body.classList.contains("projector")) q.set("projector", "1");
  if (state.protocol) q.set("protocol", state.protocol);  // the page's chooser and lessons
  q.set("share", p);
  return `${location.origin}${location.pathname}?${q}`;
}

function roomGone() {
  setConn("closed");
  const n = $("#notice");
  clearTimeout(onError.timer);
  n.textContent = `Room ${room.code} is closed (or the code is mistyped). `;
  const a = document.createElement("a");
  a.href = "/"; a.textContent = "Open a playground of your own";
  n.append(a);
  n.hidden = false;
}

function stopped(code) {
  setConn("closed");
  const n = $("#notice");
  clearTimeout(onError.timer);
  n.textContent = code === 4001
    ? "This session is now open in another tab or window. "
    : code === 4000 ? "This session was closed after a long time without input. "
    : "The connection was closed. ";
  const b = document.createElement("button");
  b.type = "button";
  b.id = "reconnect";
  b.textContent = code === 4001 ? "Use it here instead" : "Start over";
  b.addEventListener("click", () => {
    if (code !== 4001) { state.session = null; state.secret = null; }  // gone: ask for a new one
    fatal = false;
    n.hidden = true;
    connect();
  });
  n.append(b);
  n.hidden = false;
}

function send(obj, force = false) {
  if (room.intercept(obj, force)) return;
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj));
  else toast("not connected yet");
}
const act = (action) => send({type: "action", action});
// A seek forwards skips a stretch the space-time diagram cannot draw: it is told so.
let jumpPending = false;
let spaceFresh = true;
const spacetime = new SpaceTime(document.querySelector("#spacetime"), {
  onSeek: (t) => { control({do: "seek", t}); toast(`Went to ${fmtT(t)}: that message in flight`); },
});
const control = (c) => {
  if (c.do === "seek" && c.t > state.t) jumpPending = true;
  // Played to a pause point: the clock running on between frames stops there (displayTime).
  if (c.do === "play") state.playUntil = c.until ?? null;
  send({type: "control", ...c});
};

function setConn(s) { $("#conn").textContent = s; $("#conn").dataset.state = s; }

// --- frames ----------------------------------------------------------------------------------
// The clicks seen in frames (their `seq`) not yet covered by a frame's `dur` (docs/ws-protocol.md).
const MAX_PENDING = 256;
let undurable = [];
let lastSeq = 0;
function trackDurable(f) {
  if (room.viewer) return;
  lastSeq = f.seq;
  if (f.type === "hello") undurable = [];  // a hello's recipe is in the broker before it is sent
  else if (f.type === "events" && f.acts) {
    undurable.push({seq: f.seq, acts: f.acts});
    if (undurable.length > MAX_PENDING + 1) undurable.shift();  // (too many to send back anyway)
  }
  if (f.dur !== undefined) undurable = undurable.filter((p) => p.seq > f.dur);
}

function onFrame(f) {
  trackDurable(f);
  handleFrame(f);
  frameHook(f);  // the Experiments tab (static/js/experiments.js)
}

function handleFrame(f) {
  switch (f.type) {
    case "hello": return onHello(f);
    case "snapshot": return onSnapshot(f);
    case "events": return onEvents(f);
    case "error": return onError(f);
    case "share": return onShare(f);
    case "progress": return onProgress(f);
    case "room": return room.onFrame(f);
  }
}

// A replay (a shared link, an import, a long seek) runs on the server a slice at a time; until
// its snapshot arrives the page says how far it has got.
function onProgress(f) {
  const p = $("#progress");
  p.textContent = f.queued
    ? `waiting for a turn to replay (${f.queued} ahead)…`
    : `replaying to ${fmtT(f.to)} … ${Math.round(f.done * 100)}%`;
  p.hidden = false;
  state.playing = false;  // a replay always ends paused; the clock must not run meanwhile
  $("#canvas").dataset.replaying = "1";
}

function endProgress() {
  $("#progress").hidden = true;
  delete $("#canvas").dataset.replaying;
}

// Messages dropped as they were sent (a cut, a partition, loss) never fly: show each one for a
// moment beside its sender, struck through with a ×, then let it fade (the canvas fades pills
// that carry a reason). At most a dozen per frame, so a storm stays readable.
let dropSeq = 0;
function showDrops(st, drops, t) {
  for (const [from, to, label, why] of drops.slice(-12)) {
    const id = `drop${++dropSeq}`;
    st.flight.set(id, [id, from, to, t, t + 1e9, `× ${label}`, "other", why, performance.now()]);
    setTimeout(() => { st.flight.delete(id); st.flightRev++; }, 700);
  }
  st.flightRev++;
}

function onHello(f) {
  // Another world (a new session, lesson or scenario): no picture of it yet, so the previous
  // world's time and digest must not stand for this one's. A reattach to the same run keeps them.
  const same = f.session === state.session && JSON.stringify(f.scenario) === JSON.stringify(state.scenario)
    && ((f.lesson || {}).name || null) === ((state.lesson || {}).name || null);
  if (!same) {
    $("#canvas").setAttribute("data-digest", "");
    $("#canvas").setAttribute("data-time", "0");
    state.t = f.t;  // not the previous world's moment (a reattach before the snapshot sends none)
  }
  state.session = f.session;
  state.protocol = f.protocol;
  if (f.secret) state.secret = f.secret;
  state.timeline = f.actions || [];
  state.layout = f.layout;
  state.scenario = f.scenario;
  state.lesson = f.lesson;
  state.steps = f.steps || [];
  const sb = $("#steps");
  if (sb) delete sb.dataset.key;
  state.mutations = f.mutations;
  state.activeMutations = f.active_mutations;
  state.end = f.end;
  state.frameMs = f.limits.frame_interval_ms;
  state.quietMs = f.limits.quiet_frame_ms ?? state.frameMs;
  if (f.limits.log_window) state.logWindow = f.limits.log_window;
  state.extras = f.extras || {};
  state.options = f.options || {};
  state.topology = f.topology;
  state.nodes = {}; state.logs = {}; state.flight = new Map();
  pictured = false; logDirty = true;  // the panel is redrawn from the snapshot that follows
  state.waiting = new Set(); state.manual = false; state.waitingRev++;
  try { proto = getProtocol(f.protocol); } catch (e) { protoError(e); if (ws) ws.close(); return; }
  offered = f.compare_variants || {};
  setupCompare(f);
  canvas = new Canvas($("#canvas"), proto, handlersFor(state, () => canvas));
  canvas.layout(f.topology, f.layout.clients);
  spacetime.reset([...f.layout.nodes, ...f.layout.clients], proto.pills);
  // About a dozen message latencies on screen: arrows slope enough to read.
  const lat = ((f.scenario || {}).network || {}).latency_ms_max;
  if (lat > 0) spacetime.windowMs = Math.min(2000, Math.max(60, 12 * lat));
  spaceFresh = true;
  if (compare) for (const w of compare.worlds) w.canvas.layout(f.topology, f.layout.clients);
  $("#canvas").setAttribute("aria-label", `${f.title || f.protocol}: ${f.layout.nodes.length} nodes`);
  $("#btn-request").textContent = proto.requestLabel || "Client request";
  $("#log-panel").setAttribute("aria-label", proto.panelLabel || "State");
  renderLegend();
  renderWaiting();
  syncForms();
  const picker = $("#lesson-picker");
  const name = f.lesson ? f.lesson.name : "";
  if (picker.value !== name && [...picker.options].some((o) => o.value === name)) {
    picker.value = name;
    if (window.htmx) htmx.ajax("GET", `/fragments/lesson?scenario=${encodeURIComponent(name)}`, "#lesson");
  }
  $("#seed-label").textContent = `seed ${f.scenario.seed}`;
  $("#events").textContent = "";
}

function onSnapshot(f) {
  const replayed = jumpPending || $("#canvas").dataset.replaying === "1" || (spaceFresh && !!params.get("share"));
  spacetime.snapshot(f.t, f.flight, f.nodes, state.t, replayed && f.t > 0);
  jumpPending = false; spaceFresh = false;
  endProgress();
  setTime(f);
  state.playing = f.playing;
  state.speed = f.speed;
  state.horizon = f.horizon;
  state.end = f.end;
  ingestSnapshot(state, canvas, $("#canvas"), f);
  pictured = true;
  renderWaiting();
  if (compare) compare.worlds.forEach((w, i) => ingestSnapshot(w.state, w.canvas, w.svg, f.worlds[i]));
  renderInvariants();
  renderNetForm();
  renderCompareSummary();
  renderCompareChart(true);
  logDirty = true;
  // After a rewind, what the list told about later moments has not happened (yet) on this branch.
  for (const li of [...$("#events").children]) if (parseFloat(li.dataset.t) > f.t) li.remove();
  updateTimeBar();
  if (f.behind) setConn("falling behind: slow down");
}

// One world's part of a snapshot: the page's own world, or (compare mode) one of the others.
function ingestSnapshot(st, cv, svg, f) {
  st.digest = f.digest;
  st.nodes = {};
  for (const [id, n] of Object.entries(f.nodes)) st.nodes[id] = proto.ingest ? proto.ingest(st, id, n) : n;
  st.flight = new Map(f.flight.map((m) => [m[0], m]));
  st.flightRev++;
  st.manual = !!f.manual;
  st.waiting = new Set(f.waiting || []);
  st.waitingRev++;
  st.net = f.net;
  st.inv = f.inv;
  if (f.series && proto.applySeries) proto.applySeries(st, f.series);  // the observers' records
  if (cv) {
    cv.updateNodes(st, Object.keys(st.nodes));
    cv.updateNet(f.net);
  }
  svg.setAttribute("data-digest", f.digest);
}

function onEvents(f) {
  if (f.acts) {
    // A click: if the session had rewound, it forked there (the old future is gone).
    for (const a of f.acts) { state.timeline = state.timeline.filter((x) => x.at < a.at); state.timeline.push(a); }
  }
  const moved = f.t !== state.t;
  spacetime.events(f);
  setTime(f);
  ingestEvents(state, canvas, $("#canvas"), f, moved);
  if (f.nodes || f.deltas || f.series) logDirty = true;
  if (f.waiting) renderWaiting();
  if (f.ev) addEvents(f.ev, compare ? compare.names[0] : null);
  if (f.net) renderNetForm();
  let verdicts = !!f.inv;
  if (compare && f.worlds) {
    compare.worlds.forEach((w, i) => {
      const part = f.worlds[i] || {};
      ingestEvents(w.state, w.canvas, w.svg, part, moved);
      if (part.ev) addEvents(part.ev, compare.names[i + 1]);
      verdicts = verdicts || !!part.inv;
    });
  }
  if (verdicts) renderInvariants();
  if (compare && (f.nodes || f.deltas || f.inv || f.worlds)) renderCompareSummary();
  if (compare && (f.series || f.worlds)) renderCompareChart();
  state.horizon = Math.max(state.horizon, f.t);
  if (f.behind) setConn("falling behind: slow down");
  else if ($("#conn").dataset.state !== "live" && ws && ws.readyState === 1) setConn("live");
}

// One world's part of an events frame (what changed since the previous frame).
function ingestEvents(st, cv, svg, f, moved) {
  if (moved) svg.setAttribute("data-digest", "");
  if (f.add) for (const m of f.add) st.flight.set(m[0], m);
  if (f.del) {
    for (const [id, why] of f.del) {
      const m = st.flight.get(id);
      if (!m) continue;
      // A dropped message fades out where it died (m[7] = why, m[8] = when, wall clock).
      if (why) { m[7] = why; m[8] = performance.now(); setTimeout(() => { st.flight.delete(id); st.flightRev++; }, 700); }
      else st.flight.delete(id);
    }
  }
  if (f.add || f.del) st.flightRev++;
  if (f.drops) showDrops(st, f.drops, f.t === undefined ? state.t : f.t);
  if (f.nodes) {
    for (const [id, n] of Object.entries(f.nodes)) st.nodes[id] = n;
    if (cv) cv.updateNodes(st, Object.keys(f.nodes));
  }
  if (f.deltas && proto.applyDeltas) proto.applyDeltas(st, f.deltas);
  if (f.series && proto.applySeries) proto.applySeries(st, f.series);
  if (f.waiting) { st.manual = !!f.manual; st.waiting = new Set(f.waiting); st.waitingRev++; }
  if (f.net) { st.net = f.net; if (cv) cv.updateNet(f.net); }
  if (f.inv) st.inv = f.inv;
}

function setTime(f) {
  state.t = f.t;
  state.recvAt = performance.now();
  $("#canvas").setAttribute("data-time", String(f.t));
  if (compare) {
    for (const w of compare.worlds) {
      w.state.t = f.t;
      w.svg.setAttribute("data-time", String(f.t));
    }
  }
  renderSteps();
}

// --- a stepped lesson (hello.steps): the presenter walks the class through it -------------------
// Step i runs from the previous step's pause point to its own (`until_ms`; none: to the end).
// The current step is the first whose pause point is still ahead, or is where the run stands.
const EPS_MS = 1e-3;
function stepIndex() {
  const steps = state.steps || [];
  for (let i = 0; i < steps.length; i++) {
    const u = steps[i].until_ms;
    if (u == null || state.t <= u + EPS_MS) return i;
  }
  return steps.length - 1;
}

function renderSteps() {
  const steps = state.steps || [];
  const box = $("#steps");
  if (!box) return;
  box.hidden = steps.length === 0;
  if (!steps.length) return;
  const i = stepIndex(), st = steps[i];
  const key = `${i}|${state.playing}|${state.t >= (st.until_ms ?? Infinity) - EPS_MS}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.dataset.step = String(i + 1);
  $("#steps-count").textContent = `Step ${i + 1} of ${steps.length}`;
  $("#steps-caption").textContent = st.caption;
  const q = $("#steps-question");
  const atPause = st.until_ms != null && state.t >= st.until_ms - EPS_MS;
  q.hidden = !(st.question && atPause);
  q.textContent = st.question ? `Question for the class: ${st.question}` : "";
  $("#btn-step-prev").disabled = i === 0 && state.t <= EPS_MS;
  $("#btn-step-next").disabled = atPause && i === steps.length - 1;
}

function nextStep() {
  const steps = state.steps || [];
  if (!steps.length) return;
  let i = stepIndex();
  const u = steps[i].until_ms;
  if (u != null && state.t >= u - EPS_MS) i += 1;  // paused at this step's end: on to the next
  if (i >= steps.length) return toast("That was the last step.");
  const until = steps[i].until_ms;
  control(until == null ? {do: "play"} : {do: "play", until});
}

function prevStep() {
  const steps = state.steps || [];
  if (!steps.length) return;
  const i = stepIndex();
  const start = (j) => (j > 0 ? steps[j - 1].until_ms : 0);
  let j = i;
  if (state.t <= start(i) + EPS_MS && i > 0) j = i - 1;  // at this step's start: the one before
  control({do: "seek", t: start(j)});
}

function toggleBlank() {
  const b = $("#blank");
  b.hidden = !b.hidden;
}

function onError(f) {
  if (f.readonly) return room.readOnly();
  if (f.fatal) fatal = true;
  toast(f.message, true);
  const n = $("#notice");
  n.textContent = f.message;
  n.hidden = false;
  clearTimeout(onError.timer);
  onError.timer = setTimeout(() => { n.hidden = true; }, 8000);
}

function onShare(f) {
  if (pendingExport) {
    pendingExport = false;
    const a = document.createElement("a");
    const sel = $("#export-format");
    const fmt = sel ? sel.value : "ndjson";
    // Compare mode: the trace of the first world (each world alone is `f.worlds[i]`).
    a.href = `/api/trace?share=${encodeURIComponent(f.worlds ? f.worlds[0] : f.payload)}` + (fmt === "ndjson" ? "" : `&format=${fmt}`);
    a.download = "";
    document.body.appendChild(a); a.click(); a.remove();
    toast(`Exporting the run (${sel ? sel.selectedOptions[0].textContent : "NDJSON"})…`);
    return;
  }
  const q = new URLSearchParams();
  if (body.classList.contains("projector")) q.set("projector", "1");
  if (state.protocol) q.set("protocol", state.protocol);  // the page's chooser and lessons
  q.set("share", f.payload);
  const url = `${location.origin}${location.pathname}?${q}`;
  const box = $("#share-url");
  box.value = url;
  box.hidden = false;
  box.dataset.url = url;
  box.select();
  const what = compare ? `these ${compare.names.length} worlds` : "this run";
  const done = () => toast(`Link copied: it reproduces ${what} at t = ${fmtT(f.t)}`);
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).then(done, () => toast("Copy the link from the box"));
  else { try { document.execCommand("copy"); done(); } catch (e) { toast("Copy the link from the box"); } }
}

// --- panels ----------------------------------------------------------------------------------
function addEvents(list, world = null) {
  const ol = $("#events");
  const frag = document.createDocumentFragment();
  for (const [t, text] of list) {
    const li = document.createElement("li");
    li.dataset.t = String(t);
    li.innerHTML = `<span class="t mono">${fmtT(t)}</span> `;
    if (world) {  // compare mode: which world said it
      const w = document.createElement("span");
      w.className = "ev-world";
      w.textContent = world;
      li.append(w, " ");
    }
    li.append(text);
    frag.prepend(li);
  }
  ol.prepend(frag);
  while (ol.childElementCount > 200) ol.lastElementChild.remove();
}

function renderInvariants() {
  const ul = $("#invariants");
  ul.textContent = "";
  let bad = 0, unknown = 0;
  // Compare mode: every world's verdicts, under its variant's name.
  const groups = compare
    ? [[compare.names[0], state.inv], ...compare.worlds.map((w, i) => [compare.names[i + 1], w.state.inv])]
    : [[null, state.inv]];
  for (const [world, inv] of groups) {
    if (world) {
      const h = document.createElement("li");
      h.className = "inv-world";
      h.textContent = world;
      ul.appendChild(h);
    }
    for (const v of inv) {
      const li = document.createElement("li");
      if (world) li.dataset.world = world;
      li.dataset.invariant = v.name;
      li.dataset.ok = v.ok === null ? "unknown" : String(v.ok);
      const mark = v.ok === null ? "?" : v.ok ? "✓" : "✗";
      li.className = v.ok === null ? "unknown" : v.ok ? "ok" : "bad";
      li.innerHTML = `<span class="mark" aria-hidden="true">${mark}</span> <strong></strong><p class="why"></p>`;
      li.querySelector("strong").textContent = v.name + (v.ok === false ? " — BROKEN" : v.ok === null ? " — unknown" : " — holds");
      li.querySelector(".why").textContent = v.ok === false && v.violation
        ? `at ${fmtT(v.violation.t)}${v.violation.nodes.length ? " on " + v.violation.nodes.join(", ") : ""}: ${v.violation.detail}`
        : v.explains;
      if (v.ok === false) bad++;
      if (v.ok === null) unknown++;
      ul.appendChild(li);
    }
  }
  // The checkers that search (linearizability) run on demand: a button names them.
  const searches = state.inv.filter((v) => v.search).map((v) => v.name.toLowerCase());
  const chk = $("#btn-check");
  chk.hidden = !searches.length;
  if (searches.length) { chk.textContent = `Check ${searches.join(" and ")} now`; chk.setAttribute("aria-label", chk.textContent); }
  const b = $("#inv-badge");
  b.textContent = bad ? `${bad} broken` : unknown ? "?" : "ok";
  b.className = `badge ${bad ? "bad" : "ok"}`;
}

function renderLegend() {
  const lg = $("#legend");
  lg.textContent = "";
  const item = (cls, label) => {
    const s = document.createElement("span");
    s.className = `lg ${cls}`;
    s.append(document.createElement("i"), label);
    lg.append(s);
  };
  for (const [cls, label] of proto.legend) item(`role-${cls}`, label);
  if (proto.ringLabel) item("ring", proto.ringLabel);
  item("cutk", "cut (→ blocked way)");
  if (state.manual || state.waiting.size) item("waitk", "‖ waiting (manual delivery)");
}

// --- manual delivery: messages wait on their links until a click moves them -------------------
function renderWaiting() {
  const btn = $("#btn-manual");
  if ((btn.getAttribute("aria-pressed") === "true") !== state.manual && proto) renderLegend();
  btn.setAttribute("aria-pressed", String(state.manual));
  btn.textContent = state.manual ? "Manual delivery: on" : "Manual delivery";
  const bar = $("#waiting-bar"), list = $("#waiting-list");
  bar.hidden = !state.manual && !state.waiting.size;
  list.textContent = "";
  // A long queue keeps the canvas its size: the first few as buttons, the rest as a count
  // (their pills on the canvas can still be clicked).
  const cap = body.classList.contains("projector") ? 6 : 10;
  let shown = 0;
  for (const id of state.waiting) {
    if (++shown > cap) {
      const more = document.createElement("span");
      more.textContent = `… ${state.waiting.size - cap} more (click their pills)`;
      list.append(more);
      break;
    }
    const m = state.flight.get(id);
    const b = document.createElement("button");
    b.type = "button";
    b.className = "waiting-msg";
    b.dataset.msg = String(id);
    b.textContent = m ? `${m[5]} ${m[1]}→${m[2]}` : `#${id}`;
    b.setAttribute("aria-label", m ? `message ${id}: ${m[5]} from ${m[1]} to ${m[2]}, waiting` : `message ${id}, waiting`);
    b.addEventListener("click", (ev) => { ev.stopPropagation(); pillClick(id, ev); });
    list.append(b);
  }
  if (state.manual && !state.waiting.size) list.textContent = "nothing yet (messages stop here as they arrive)";
}

function pillClick(id, ev, st = state) {
  const m = st.flight.get(id);
  const what = m ? `${m[5]} · ${m[1]} → ${m[2]}` : `message ${id}`;
  if (!st.waiting.has(id)) return toast(`${what} is not waiting (switch manual delivery on first)`);
  openMenu(ev, `#${id} ${what}`, [
    [`Deliver now`, () => act({do: "deliver", id})],
    [`Drop`, () => act({do: "drop", id})],
    [`Duplicate`, () => act({do: "duplicate", id})],
  ]);
}

function toggleManual() { act({do: "manual", on: !state.manual}); }

function renderNetForm() {
  if (!state.net) return;
  const d = state.net.default;
  const set = (id, v) => { const e = $(id); if (document.activeElement !== e) e.value = v; };
  set("#lat-min", d.latency_ms[0]); set("#lat-max", d.latency_ms[1]);
  set("#loss", Math.round(d.loss * 100)); set("#dup", Math.round(d.duplicate * 100));
  $("#o-lat-min").textContent = d.latency_ms[0]; $("#o-lat-max").textContent = d.latency_ms[1];
  $("#o-loss").textContent = Math.round(d.loss * 100); $("#o-dup").textContent = Math.round(d.duplicate * 100);
}

function syncForms() {
  const n = state.layout.nodes.length;
  for (const r of document.querySelectorAll('input[name="nodes"]')) r.checked = parseInt(r.value) === n;
  for (const c of document.querySelectorAll('input[name="mutation"]')) c.checked = state.activeMutations.includes(c.value);
  const cfg = state.scenario ? state.scenario.config || {} : {};
  for (const c of document.querySelectorAll('input[name="ext"]')) {
    if (c.value === "workload") c.checked = !!(state.scenario && state.scenario.workload);
    else c.checked = !!cfg[c.value];
  }
}

function updateTimeBar() {
  $("#btn-play").textContent = state.playing ? "❚❚ Pause" : "▶ Play";
  $("#btn-play").setAttribute("aria-label", state.playing ? "Pause" : "Play");
  $("#btn-play").setAttribute("aria-pressed", String(state.playing));
  const sp = $("#speed");
  if (document.activeElement !== sp) sp.value = Math.log10(state.speed);
  $("#speed-label").textContent = fmtSpeed(state.speed);
}

function fmtT(ms) { return `${(ms / 1000).toFixed(3)} s`; }
function fmtSpeed(s) {
  if (s >= 1) return `${+s.toFixed(s >= 10 ? 0 : 1)}×`;
  return `1/${Math.round(1 / s)}×`;
}

function toast(msg, bad = false) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = `toast${bad ? " bad" : ""}`;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 6000 : 3000);
}

// --- the animation loop --------------------------------------------------------------------
function displayTime() {
  if (!state.playing) return state.t;
  // While nothing happens the server sends a frame only every `quiet_frame_ms`: the clock runs
  // on until then (and a little more, for a late frame), never further.
  const ahead = Math.min(performance.now() - state.recvAt, state.quietMs + state.frameMs * 2) * state.speed;
  const stop = Math.min(state.end ?? Infinity, state.playUntil > state.t ? state.playUntil : Infinity);
  return Math.min(state.t + ahead, stop);
}

let lastClock = 0;
function frame(ts) {
  if (canvas) {
    const now = displayTime();
    canvas.draw(state, now);
    // The moment the canvas's rings and pills were last drawn at (tests wait for it after a seek).
    const cv = $("#canvas"), drawn = String(now);
    if (cv.dataset.drawn !== drawn) cv.dataset.drawn = drawn;
    if (compare) for (const w of compare.worlds) w.canvas.draw(w.state, now);
    if (ts - lastClock > 100) {
      lastClock = ts;
      $("#clock").textContent = `t = ${fmtT(now)}`;
      const sc = $("#scrubber");
      sc.max = String(state.horizon);
      if (!scrubbing) sc.value = String(state.t);
      $("#horizon-label").textContent = `of ${(state.horizon / 1000).toFixed(1)} s`;
      updateTimeBar();
      if (logDirty && pictured) {
        logDirty = false;
        const panel = $("#log-panel");
        proto.renderPanel(panel, state, body.classList.contains("projector"));
        // The moment and picture it was drawn from (tests wait for them): the time, and a paused
        // moment's digest ("" while the run moves).
        panel.dataset.t = String(state.t);
        panel.dataset.digest = $("#canvas").dataset.digest || "";
      }
    }
    if (!$("#spacetime-panel").hidden) spacetime.draw(now, body.classList.contains("projector"));
  }
  window.__fps = (window.__fps || 0) + 1;
  requestAnimationFrame(frame);
}

// --- compare mode ----------------------------------------------------------------------------
// hello.compare: the same scenario under 2-4 variants, in lock step (docs/ws-protocol.md). The
// page's own `state` and #canvas are the first world; every other world gets a state built from
// its parts of the frames (`worlds`) and its own canvas. One set of time controls drives them
// all, and a click in any canvas is sent once: the server applies it in every world.
function handlersFor(st, cv) {
  return {
    nodeClick: (id, ev) => nodeClick(id, ev, st),
    linkClick: (a, b, ev, nearer) => linkClick(a, b, ev, nearer, cv()),
    linkMenu: (a, b, ev) => linkMenu(a, b, ev, cv()),
    pillClick: (id, ev) => pillClick(id, ev, st),
  };
}

function worldState(part) {
  return {
    layout: state.layout, topology: state.topology, nodes: {}, logs: {}, flight: new Map(), flightRev: 0,
    net: null, inv: [], t: state.t, digest: "", extras: part.extras || {}, scenario: part.scenario,
    manual: false, waiting: new Set(), waitingRev: 0, logWindow: state.logWindow, frameMs: state.frameMs,
    activeMutations: part.active_mutations || [], options: state.options,
  };
}

const variantWords = ([name, over]) => `${name}: ${Object.entries(over).map(([k, v]) => `${k} = ${v}`).join(", ")}`;

function setupCompare(f) {
  const grid = $("#worlds"), main = $("#canvas"), label0 = $("#world-label-0");
  if (compare) for (const w of compare.worlds) w.fig.remove();
  compare = null;
  const variants = f.compare ? f.compare.variants : [];
  body.classList.toggle("comparing", variants.length > 1);
  body.dataset.worlds = String(Math.max(1, variants.length));
  grid.dataset.count = String(Math.max(1, variants.length));
  label0.hidden = !variants.length;
  if (!variants.length) {
    delete main.dataset.variant;
    delete $("#log-panel").dataset.world;
    syncCompareUrl([]);
    renderCompareSummary();
    return;
  }
  compare = {names: variants.map((v) => v[0]), variants, origin: f.compare.origin, worlds: []};
  label0.textContent = variants[0][0];
  label0.title = variantWords(variants[0]);
  main.dataset.variant = variants[0][0];
  $("#log-panel").dataset.world = variants[0][0];  // the side panel shows the first world
  f.worlds.forEach((part, i) => {
    const v = variants[i + 1];
    const fig = document.createElement("figure");
    fig.className = "world";
    const cap = document.createElement("figcaption");
    cap.className = "world-label";
    cap.textContent = v[0];
    cap.title = variantWords(v);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    for (const k of ["viewBox", "preserveAspectRatio", "role"]) svg.setAttribute(k, main.getAttribute(k));
    svg.setAttribute("class", "world-canvas");
    svg.setAttribute("aria-label", `${f.title || f.protocol}, ${variantWords(v)}`);
    svg.dataset.variant = v[0];
    svg.dataset.time = "0";
    svg.dataset.digest = "";
    fig.append(cap, svg);
    grid.append(fig);
    const w = {state: worldState(part), svg, fig, canvas: null};
    w.canvas = new Canvas(svg, proto, handlersFor(w.state, () => w.canvas));
    compare.worlds.push(w);
  });
  syncCompareUrl(compare.names);
}

// The URL names the variants (`?compare=a,b`), so a reload opens the same worlds; a share link
// carries its own.
function syncCompareUrl(names) {
  const q = new URLSearchParams(location.search);
  if (names.length && !q.get("share")) q.set("compare", names.join(","));
  else q.delete("compare");
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

// The protocol module's optional `compareSeries(state)` -> {name: number}: one row per series, one
// column per world (a chart overlaying the worlds' series can read the same hook).
function renderCompareSummary() {
  const tbl = $("#compare-summary");
  if (!compare || !proto || !proto.compareSeries) { tbl.hidden = true; return; }
  const worlds = [state, ...compare.worlds.map((w) => w.state)];
  const values = worlds.map((st) => proto.compareSeries(st));
  const names = Object.keys(values[0]);
  tbl.textContent = "";
  const head = tbl.createTHead().insertRow();
  head.append(document.createElement("th"));
  for (const n of compare.names) { const th = document.createElement("th"); th.scope = "col"; th.textContent = n; head.append(th); }
  const tb = tbl.createTBody();
  for (const name of names) {
    const tr = tb.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = name;
    tr.append(th);
    values.forEach((v, i) => {
      const td = tr.insertCell();
      td.className = "mono";
      td.dataset.world = compare.names[i];
      td.dataset.series = name;
      const x = v[name];
      td.textContent = typeof x === "number" && Number.isFinite(x) ? String(+x.toFixed(3)) : "–";
    });
  }
  tbl.hidden = false;
}

// The module's optional `compareCurves(state)` -> {name: {t: [ms], v: [number]}}: the chosen curve
// of every world on one chart (uPlot, static/vendor/), one line per world, over simulated time.
const WORLD_COLOURS = ["#2f5fa7", "#c4161c", "#17803d", "#a05a00"];
let comparePlot = null, comparePlotKey = "", comparePlotAt = 0;

function renderCompareChart(force = false) {
  const box = $("#compare-chart");
  if (!compare || !proto || !proto.compareCurves) {
    box.hidden = true;
    if (comparePlot) { comparePlot.destroy(); comparePlot = null; comparePlotKey = ""; }
    return;
  }
  const now = performance.now();
  if (!force && now - comparePlotAt < 500) return;
  comparePlotAt = now;
  const worlds = [state, ...compare.worlds.map((w) => w.state)];
  const curves = worlds.map((st) => proto.compareCurves(st));
  const names = Object.keys(curves[0]);
  if (!names.length) { box.hidden = true; return; }
  box.hidden = false;
  const sel = $("#compare-curve");
  if (sel.options.length !== names.length) {
    const keep = sel.value;
    sel.textContent = "";
    for (const n of names) sel.append(new Option(n, n));
    sel.value = names.includes(keep) ? keep : names[0];
  }
  if (!loadUPlot(() => renderCompareChart(true))) return;
  const name = sel.value;
  // The worlds run in lock step, so their samples share times: align on the union of them.
  const ts = [...new Set(curves.flatMap((c) => (c[name] ? c[name].t : [])))].sort((a, b) => a - b);
  const cols = curves.map((c) => {
    const m = new Map();
    if (c[name]) c[name].t.forEach((t, i) => m.set(t, c[name].v[i]));
    return ts.map((t) => (m.has(t) ? m.get(t) : null));
  });
  const data = [ts.map((t) => t / 1000), ...cols];
  const plotEl = $("#compare-plot");
  const key = `${name}|${compare.names.join(",")}|${body.classList.contains("projector")}`;
  if (!comparePlot || comparePlotKey !== key) {
    if (comparePlot) comparePlot.destroy();
    plotEl.textContent = "";
    const big = body.classList.contains("projector");
    comparePlot = new window.uPlot({
      width: Math.max(260, plotEl.clientWidth || 480), height: big ? 160 : 110,
      scales: {x: {time: false}},
      axes: [{label: "simulated s"}, {label: name}],
      series: [{label: "t (s)"}, ...compare.names.map((n, i) => ({label: n, stroke: WORLD_COLOURS[i % 4], width: big ? 3 : 2, spanGaps: true}))],
    }, data, plotEl);
    comparePlotKey = key;
  } else comparePlot.setData(data);
  plotEl.dataset.points = String(ts.length);
}

function openCompare() {
  const d = $("#compare-dialog"), list = $("#compare-options");
  list.textContent = "";
  const chosen = new Set(compare ? compare.names : []);
  const names = Object.keys(offered);
  if (!names.length) return toast(`${proto ? proto.title : "This protocol"} offers no variants to compare`);
  for (const name of names) {
    const l = document.createElement("label");
    const c = document.createElement("input");
    c.type = "checkbox";
    c.name = "variant";
    c.value = name;
    c.checked = chosen.has(name);
    l.append(c, ` ${variantWords([name, offered[name]])}`);
    list.append(l);
  }
  $("#btn-compare-off").hidden = !compare;
  d.showModal();
}

function wireCompare() {
  $("#btn-compare").addEventListener("click", openCompare);
  $("#compare-curve").addEventListener("change", () => renderCompareChart(true));
  $("#btn-compare-go").addEventListener("click", () => {
    const names = [...document.querySelectorAll('#compare-options input[name="variant"]:checked')].map((c) => c.value);
    $("#compare-dialog").close();
    control({do: "compare", variants: names});
  });
  $("#btn-compare-off").addEventListener("click", () => { $("#compare-dialog").close(); control({do: "compare", variants: []}); });
  $("#btn-compare-cancel").addEventListener("click", () => $("#compare-dialog").close());
}

// --- clicks ----------------------------------------------------------------------------------
// A module's menu item or key gives {action} (sent as an ordinary action) or {say} (told only).
// A panel's control may also give {control} (a control frame: configure, say) or several actions.
function run(item) {
  if (!item) return;
  if (item.say) return toast(item.say);
  if (item.control) return control(item.control);
  const a = typeof item.action === "function" ? item.action() : item.action;
  if (Array.isArray(a)) a.forEach(act);
  else if (a) act(a);
}

function nodeClick(id, ev, st = state) {
  ev.stopPropagation();
  if (partitionPick) {
    if (partitionPick.has(id)) partitionPick.delete(id); else partitionPick.add(id);
    markPicked();
    return;
  }
  // The menu is built from the world clicked; what is chosen applies to every world.
  const n = st.nodes[id];
  if (!n) return;
  const items = proto.menu(id, n, st).map((it) => [it.label, () => run(it)]);
  // Every protocol: the timers the node has set can be fired now (recorded as a `fire` action).
  const words = proto.timerWords || ((t) => `${t} timer`);
  for (const timer of Object.keys(n.timers || {})) {
    items.push([`Fire ${words(timer)}`, () => act({do: "fire", node: id, timer})]);
  }
  openMenu(ev, proto.menuTitle ? proto.menuTitle(id, n) : id, items);
}

const HINT = "Click a node for its menu · a link to cut it, a cut link to heal it · Shift-click: one way";

function linkClick(a, b, ev, nearer, cv = canvas) {
  // A whole link is one click: cut it both ways, or heal it both ways when it is cut.
  // Shift/Alt/Ctrl/⌘-click acts on one direction only: the one leaving the nearer end.
  ev.stopPropagation();
  if (partitionPick) return;
  const cut = cv.linkEls[`${a}-${b}`].getAttribute("data-cut");
  const one = ev.shiftKey || ev.altKey || ev.ctrlKey || ev.metaKey;
  const other = nearer === a ? b : a;
  if (cut === "none") {
    if (one) act({do: "cut", from: nearer, to: other, both: false});
    else act({do: "cut", from: a, to: b, both: true});
  } else if (one && cut === "both") {
    act({do: "heal", from: nearer, to: other, both: false});
  } else {
    act({do: "heal", from: a, to: b, both: true});
  }
}

function linkMenu(a, b, ev, cv = canvas) {
  if (partitionPick) return;
  const cut = cv.linkEls[`${a}-${b}`].getAttribute("data-cut");
  const items = [];
  if (cut !== "both") items.push([`Cut both ways`, () => act({do: "cut", from: a, to: b, both: true})]);
  if (cut === "none" || cut === `${b}>${a}`) items.push([`Cut ${a} → ${b} only`, () => act({do: "cut", from: a, to: b, both: false})]);
  if (cut === "none" || cut === `${a}>${b}`) items.push([`Cut ${b} → ${a} only`, () => act({do: "cut", from: b, to: a, both: false})]);
  if (cut !== "none") {
    items.push([`Heal this link`, () => act({do: "heal", from: a, to: b, both: true})]);
    if (cut === "both") {
      items.push([`Heal ${a} → ${b} only`, () => act({do: "heal", from: a, to: b, both: false})]);
      items.push([`Heal ${b} → ${a} only`, () => act({do: "heal", from: b, to: a, both: false})]);
    }
  }
  items.push([`Heal all`, () => act({do: "heal"})]);
  openMenu(ev, `link ${a}-${b} · ${cut === "none" ? "connected" : cut === "both" ? "cut both ways" : "cut " + cut.replace(">", " → ")}`, items);
}

function openMenu(ev, title, items) {
  const m = $("#menu");
  m.innerHTML = "";
  const h = document.createElement("div");
  h.className = "menu-title";
  h.textContent = title;
  m.appendChild(h);
  for (const [label, fn] of items) {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "menuitem");
    b.textContent = label;
    b.addEventListener("click", (e) => { e.stopPropagation(); closeMenu(); fn(); });
    m.appendChild(b);
  }
  const stage = $(".stage").getBoundingClientRect();
  let x = ev.clientX, y = ev.clientY;
  if (!x && !y && ev.target && ev.target.getBoundingClientRect) {
    const r = ev.target.getBoundingClientRect(); x = r.left + r.width / 2; y = r.top + r.height / 2;
  }
  m.hidden = false;
  const mw = m.offsetWidth, mh = m.offsetHeight;
  m.style.left = `${Math.max(4, Math.min(x - stage.left + 8, stage.width - mw - 4))}px`;
  m.style.top = `${Math.max(4, Math.min(y - stage.top + 8, stage.height - mh - 4))}px`;
  const first = m.querySelector("button");
  if (first) first.focus();
}
function closeMenu() { $("#menu").hidden = true; }

function togglePartition() {
  const btn = $("#btn-partition");
  if (partitionPick) {
    const group = [...partitionPick];
    partitionPick = null;
    btn.setAttribute("aria-pressed", "false");
    btn.textContent = "Partition…";
    $("#tool-hint").textContent = HINT;
    markPicked();
    if (group.length && group.length < state.layout.nodes.length) act({do: "partition", groups: [group.sort()]});
    else toast("partition cancelled: pick some nodes, not all of them");
    return;
  }
  partitionPick = new Set();
  btn.setAttribute("aria-pressed", "true");
  btn.textContent = "Apply partition";
  $("#tool-hint").textContent = "Click nodes to put them in one group; the others form the second group. Then Apply (G).";
  markPicked();
}

function markPicked() {
  const all = [canvas, ...(compare ? compare.worlds.map((w) => w.canvas) : [])];
  for (const id of state.layout.nodes) {
    for (const cv of all) {
      const e = cv && cv.nodeEls[id];
      if (e) e.g.classList.toggle("picked", !!(partitionPick && partitionPick.has(id)));
    }
  }
}

function clientRequest() { if (proto && proto.request) run(proto.request(state)); }

function setProjector(on) {
  body.classList.toggle("projector", on);
  $("#btn-projector").setAttribute("aria-pressed", String(on));
  const q = new URLSearchParams(location.search);
  if (on) q.set("projector", "1"); else q.delete("projector");
  history.replaceState(null, "", `${location.pathname}?${q}`);
  logDirty = true;
  if (canvas) canvas.restyle();
  if (compare) for (const w of compare.worlds) w.canvas.restyle();
}

// --- wiring ----------------------------------------------------------------------------------
function throttle(fn, ms) {
  let last = 0, timer = null, lastArgs = null;
  return (...args) => {
    lastArgs = args;
    const now = performance.now();
    if (now - last >= ms) { last = now; fn(...args); }
    else if (!timer) timer = setTimeout(() => { timer = null; last = performance.now(); fn(...lastArgs); }, ms - (now - last));
  };
}

function wire() {
  $("#st-in").addEventListener("click", () => spacetime.zoom(0.5));
  $("#st-out").addEventListener("click", () => spacetime.zoom(2));
  $("#net-form").addEventListener("submit", (e) => e.preventDefault());
  $("#btn-play").addEventListener("click", () => control({do: state.playing ? "pause" : "play"}));
  $("#btn-step").addEventListener("click", () => control({do: "step"}));
  const sendSpeed = throttle((v) => control({do: "speed", value: v}), 120);
  $("#speed").addEventListener("input", (e) => {
    const v = Math.min(SPEED_MAX, Math.max(SPEED_MIN, Math.pow(10, parseFloat(e.target.value))));
    $("#speed-label").textContent = fmtSpeed(v);
    sendSpeed(+v.toPrecision(3));
  });
  const sc = $("#scrubber");
  const sendSeek = throttle((t) => control({do: "seek", t}), 80);
  sc.addEventListener("pointerdown", () => { scrubbing = true; });
  sc.addEventListener("input", () => { scrubbing = true; sendSeek(parseFloat(sc.value)); });
  sc.addEventListener("change", () => { scrubbing = false; sendSeek(parseFloat(sc.value)); });
  sc.addEventListener("pointerup", () => { scrubbing = false; });
  $("#btn-heal").addEventListener("click", () => act({do: "heal"}));
  $("#btn-partition").addEventListener("click", togglePartition);
  $("#btn-request").addEventListener("click", clientRequest);
  $("#btn-manual").addEventListener("click", toggleManual);
  $("#protocol-picker").addEventListener("change", (e) => {
    // Another protocol is another session: open it fresh (no share link, no lesson).
    const q = new URLSearchParams();
    if (body.classList.contains("projector")) q.set("projector", "1");
    if (params.get("speed")) q.set("speed", params.get("speed"));
    q.set("protocol", e.target.value);
    location.search = q.toString();
  });
  $("#btn-share").addEventListener("click", () => control({do: "share"}));
  $("#btn-step-next").addEventListener("click", nextStep);
  $("#btn-step-prev").addEventListener("click", prevStep);
  $("#blank").addEventListener("click", toggleBlank);
  $("#btn-export").addEventListener("click", () => { pendingExport = true; control({do: "share"}); });
  $("#btn-projector").addEventListener("click", () => setProjector(!body.classList.contains("projector")));
  $("#btn-help").addEventListener("click", () => $("#help").showModal());
  $("#btn-check").addEventListener("click", () => control({do: "check"}));
  $("#btn-reset").addEventListener("click", () => control({do: "reset"}));
  $("#btn-seed").addEventListener("click", () => control({do: "new_seed"}));
  $("#file-import").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const r = await fetch("/api/import", {method: "POST", body: await file.text(), headers: {"Content-Type": "application/x-ndjson"}});
    const j = await r.json();
    e.target.value = "";
    if (!r.ok) return onError({message: `import: ${j.error || r.statusText}`});
    control({do: "load", share: j.share});
    const where = j.ended ? `paused where the trace ends, t = ${fmtT(j.t)}` : `paused at its last record, t = ${fmtT(j.t)} (the trace has no end record)`;
    toast(`Imported ${j.records} records (seed ${j.seed}); ${where}. Drag the timeline back to replay.`);
  });
  $("#lesson-picker").addEventListener("change", (e) => {
    const name = e.target.value;
    const q = new URLSearchParams(location.search);
    q.delete("share");
    if (name) { q.set("scenario", name); control({do: "lesson", name}); }
    else { q.delete("scenario"); location.search = q.toString(); return; }
    history.replaceState(null, "", `${location.pathname}?${q}`);
  });
  const netSend = () => {
    let lo = parseFloat($("#lat-min").value), hi = parseFloat($("#lat-max").value);
    if (lo > hi) [lo, hi] = [hi, lo];
    act({do: "set_link", from: "*", to: "*", latency_ms: [lo, hi],
         loss: parseFloat($("#loss").value) / 100, duplicate: parseFloat($("#dup").value) / 100});
  };
  for (const id of ["lat-min", "lat-max", "loss", "dup"]) {
    const e = $(`#${id}`);
    e.addEventListener("input", () => { $(`#o-${id}`).textContent = e.value; });
    e.addEventListener("change", netSend);
  }
  document.addEventListener("change", (e) => {
    const t = e.target;
    if (t.name === "nodes") control({do: "configure", nodes: parseInt(t.value)});
    else if (t.name === "mutation") {
      control({do: "configure", mutations: [...document.querySelectorAll('input[name="mutation"]:checked')].map((c) => c.value)});
    } else if (t.name === "ext") {
      if (t.value === "workload") control({do: "configure", workload: t.checked});
      else control({do: "configure", options: {[t.value]: t.checked}});
    }
  });
  document.body.addEventListener("htmx:afterSwap", syncForms);
  $("#log-panel").addEventListener("click", (e) => { if (proto && proto.panelClick) run(proto.panelClick(e, state, $("#log-panel"))); });
  $("#log-panel").addEventListener("change", (e) => { if (proto && proto.panelChange) run(proto.panelChange(e, state)); });
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  document.addEventListener("click", (e) => { if (!$("#menu").contains(e.target)) closeMenu(); });
  document.addEventListener("keydown", onKey);
}

function showTab(name) {
  for (const t of document.querySelectorAll('[role="tab"]')) t.setAttribute("aria-selected", String(t.dataset.tab === name));
  for (const p of document.querySelectorAll(".panel.tab")) p.hidden = p.dataset.panel !== name;
}

function onKey(e) {
  const tag = (e.target.tagName || "").toLowerCase();
  if (["input", "select", "textarea"].includes(tag) && e.target.type !== "range" && e.target.type !== "checkbox" && e.target.type !== "radio") return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key;
  if (k === " " || k === "Spacebar") {
    if (tag === "button" && e.target.closest("#menu")) return;
    e.preventDefault(); control({do: state.playing ? "pause" : "play"});
  } else if (k === "PageDown" && state.steps && state.steps.length) { e.preventDefault(); nextStep(); }
  else if (k === "PageUp" && state.steps && state.steps.length) { e.preventDefault(); prevStep(); }
  else if (k === "b" || k === "B") { e.preventDefault(); toggleBlank(); }
  else if (k === ".") { e.preventDefault(); control({do: "step"}); }
  else if (k === "ArrowLeft" && tag !== "input") { e.preventDefault(); control({do: "seek", t: Math.max(0, state.t - 100)}); }
  else if (k === "ArrowRight" && tag !== "input") { e.preventDefault(); control({do: "seek", t: Math.min(state.horizon, state.t + 100)}); }
  else if (k === "+" || k === "=") control({do: "speed", value: Math.min(SPEED_MAX, +(state.speed * 2).toPrecision(3))});
  else if (k === "-" || k === "_") control({do: "speed", value: Math.max(SPEED_MIN, +(state.speed / 2).toPrecision(3))});
  else if (k === "h" || k === "H") act({do: "heal"});
  else if (k === "m" || k === "M") toggleManual();
  else if (k === "g" || k === "G") togglePartition();
  else if (k === "s" || k === "S") control({do: "share"});
  else if (k === "p" || k === "P") setProjector(!body.classList.contains("projector"));
  else if (k === "?") { const d = $("#help"); d.open ? d.close() : d.showModal(); }
  else if (proto && proto.keys && proto.keys[k.toLowerCase()] && k.length === 1) run(proto.keys[k.toLowerCase()](state));
  else if (k === "Escape") { closeMenu(); if (partitionPick) { partitionPick = null; markPicked(); $("#btn-partition").setAttribute("aria-pressed", "false"); $("#btn-partition").textContent = "Partition…"; } }
}

const room = makeRoom({send, toast, sharePayload, onShare, state});
wire();
wireCompare();
initExperiments({state, control, showTab, loadUPlot, fmtT});
if (params.get("projector") === "1") setProjector(true);
try { proto = getProtocol(body.dataset.protocol); } catch (e) { protoError(e); }
connect();
requestAnimationFrame(frame);
window.__playground = {state, send, sharePayload, spacetime, get canvas() { return canvas; }, get ws() { return ws; },
  get compare() { return compare; }};
