// Paxos's page module (basic and Multi-Paxos): acceptors show their promise and what they
// accepted, proposers their ballot and phase, the Multi-Paxos leader is starred; pills are
// coloured by their ballot's owner (app/protocols/paxos.py gives classes b1-<owner> for phase 1,
// b2-<owner> for phase 2); the side panel is the ballots panel (basic: acceptors x ballots, the
// chosen value highlighted the moment a quorum of acceptors accepted it, computed here from the
// acceptors' states, before any learner knows) or the slot log (Multi-Paxos). The contract is in
// static/js/protocols/index.js.

import {cellClick, esc} from "./cells.js";

export const title = "Paxos";

// One hue per ballot owner (n1..n9), far apart; light fills keep black ink readable.
// (No green: green is "chosen" in the panel.)
const OWNER = ["#2f5fa7", "#c0392b", "#8e44ad", "#c77700", "#16808c", "#a0336b", "#6b4f2a", "#5b6472", "#3d3db0"];
const FILL1 = ["#e1e9fb", "#fbe3e0", "#efe2f6", "#ffedcc", "#d9f1f3", "#f6dfea", "#efe6da", "#e9ebee", "#e3e3f8"];
const FILL2 = ["#b9ccf3", "#f4bdb6", "#dcc1ec", "#ffd38a", "#a9dfe5", "#ebb8cf", "#dcc8ad", "#cdd1d8", "#c4c4f0"];
const idx = (owner) => { const m = /^n(\d+)$/.exec(owner || ""); return m ? (Number(m[1]) - 1) % OWNER.length : -1; };
export const ownerColour = (owner) => { const i = idx(owner); return i < 0 ? "#444" : OWNER[i]; };

export const pills = {client: {fill: "#f1f2f4", stroke: "#59606b", ink: "#15181d"}};
for (let i = 0; i < OWNER.length; i++) {
  pills[`b1-n${i + 1}`] = {fill: FILL1[i], stroke: OWNER[i], ink: "#15181d"};
  pills[`b2-n${i + 1}`] = {fill: FILL2[i], stroke: OWNER[i], ink: "#15181d"};
}

const bl = (b) => (b ? `${b[0]}.${b[1]}` : "-");
const cmpB = (a, b) => (a[0] - b[0]) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
const isProposer = (n) => (n.roles || []).some((r) => r === "proposer" || r === "leader");
const isAcceptor = (n) => (n.roles || []).includes("acceptor");
const multi = (state) => state.extras.mode === "multi";

function acc0(n) { const a = n.accepted && n.accepted["0"]; return a || null; }

export function look(n) {
  const paused = n.status === "paused";
  let cls, label, words;
  if (n.status === "down") { cls = "down"; label = "CRASHED"; words = "crashed"; }
  else if (n.mode === "multi") {
    if (n.leader) { cls = "leader"; label = "★ LEADER"; words = "leader"; }
    else if (n.phase === "preparing") { cls = "candidate"; label = "? PHASE 1"; words = "preparing (phase 1)"; }
    else { cls = "follower"; label = "REPLICA"; words = "replica"; }
  } else {
    const learned = n.learned && n.learned["0"];
    if (learned) { cls = "leader"; label = `✓ ${learned[0]}`; words = `learned ${learned[0]}`; }
    else if (n.phase === "preparing") { cls = "candidate"; label = "PHASE 1"; words = "preparing (phase 1)"; }
    else if (n.phase === "accepting") { cls = "candidate"; label = "PHASE 2"; words = "accepting (phase 2)"; }
    else { cls = "follower"; label = isProposer(n) ? "IDLE" : (n.roles || ["?"]).join("+").toUpperCase(); words = "idle"; }
  }
  const active = n.mode !== "multi" || n.leader || n.phase === "preparing";  // a stale ballot says little
  // Basic Paxos: the badge under the node carries the promise, so the circle names the ballot.
  const sub = isProposer(n) && n.ballot && active ? `b ${bl(n.ballot)}`
    : isAcceptor(n) && (n.mode === "multi" || !isProposer(n)) ? `prom ${bl(n.promised)}` : "";
  if (paused) return {cls, label: "⏸ PAUSED", words: `paused, ${words}`, sub};
  return {cls, label, words: `${words}${sub ? ", " + sub : ""}`, sub};
}

export const dataset = (n) => ({
  phase: String(n.phase || ""), ballot: bl(n.ballot), promised: bl(n.promised),
  leader: String(!!n.leader), learned: n.learned && n.learned["0"] ? n.learned["0"][0] : "",
});

export function badge(n, state) {
  if (n.status === "down") return "crashed: promise kept on disk";
  if (n.mode === "multi") {
    if (n.leader) return `commit ${n.commit} · next s${n.next_slot}`;
    if (n.phase === "preparing") return `prom ${bl(n.promised)} · commit ${n.commit}`;
    return `commit ${n.commit} · leader ${n.leader_id || "?"}`;
  }
  const parts = [];
  if (isAcceptor(n)) {
    if (isProposer(n)) parts.push(`prom ${bl(n.promised)}`);
    const a = acc0(n);
    parts.push(a ? `acc ${bl(a[0])}=${a[1]}` : "acc -");
  } else if (isProposer(n)) parts.push(n.value != null ? `proposes ${n.value}` : "no value yet");
  return parts.join(" · ");
}

export const legend = [
  ["leader", "★ LEADER / ✓ LEARNED"], ["candidate", "PHASE 1 / PHASE 2"], ["follower", "IDLE / REPLICA"], ["down", "CRASHED ✕"],
];
export const ringLabel = "election / retry timer";

export function ring(n, state, now) {
  if (n.status !== "up") return null;
  if (n.mode === "multi") {
    if (n.deadline == null) return null;
    const tmax = (state.extras.timeout_ms || [150, 300])[1];
    return Math.max(0, Math.min(1, (n.deadline - now) / tmax));
  }
  const t = n.timers || {};
  const d = t.retry ?? t.backoff;
  if (d == null) return null;
  const tmax = (state.extras.timeout_ms || [150, 150])[1];
  return Math.max(0, Math.min(1, (d - now) / tmax));
}

export const timerWords = (name) => ({election: "election timer", heartbeat: "heartbeat timer",
  retry: "retry timer", backoff: "back-off timer"}[name] || `${name} timer`);

function leaderOf(state) {
  return state.layout.nodes.find((id) => state.nodes[id] && state.nodes[id].leader && state.nodes[id].status === "up");
}
const VALUES = ["x", "y", "z", "u", "v", "w"];
let valueNo = 0, writeValue = 1;
const nextValue = () => VALUES[valueNo % VALUES.length];

export const menuTitle = (id, n) => `${id} · ${look(n).words}`;

export function menu(id, n, state) {
  const items = [];
  if (n.status === "down") { items.push({label: `Restart ${id}`, action: {do: "restart", node: id}}); return items; }
  items.push({label: `Crash ${id}`, action: {do: "crash", node: id}});
  items.push(n.status === "paused" ? {label: `Resume ${id}`, action: {do: "resume", node: id}}
    : {label: `Pause ${id} (stop the world)`, action: {do: "pause", node: id}});
  const prop = isProposer(n);
  if (multi(state)) {
    items.push({label: "Time out now (start phase 1)", ...(n.leader ? {say: `${id} already leads`} : {action: {do: "timeout", node: id}})});
    items.push({label: `Client write to ${id}`, action: () => ({do: "request", node: id, op: "write", key: "k1", value: writeValue++})});
    items.push({label: `Client read from ${id}`, action: {do: "request", node: id, op: "read", key: "k1"}});
  } else if (prop) {
    items.push({label: `Propose a value (${nextValue()})`, action: () => ({do: "propose", node: id, value: VALUES[valueNo++ % VALUES.length]})});
    items.push({label: "Time out now (retry with a higher ballot)", action: {do: "timeout", node: id}});
  }
  return items;
}

export const requestLabel = "Client write";
export function request(state) {
  if (!multi(state)) return {say: "basic Paxos has no clients: click a proposer and choose Propose a value"};
  const l = leaderOf(state) || state.layout.nodes[0];
  return {action: {do: "request", node: l, op: "write", key: "k1", value: writeValue++}};
}

export const keys = {
  c: (state) => request(state),
  r: (state) => { const l = leaderOf(state); return l ? {action: {do: "crash", node: l}} : {say: "no leader right now"}; },
};

// --- what the panel knows: accepted/learned per node, and the history of promises and votes ----
// state.logs (reset by every hello) = {acc: {node: {slot: [b, label, key]}}, learned: {node:
// {slot: [label, key]}}, prom: {node: {"r.nX": [b, t]}}, votes: {slot: {"r.nX": {b, keys: {key:
// {label, who: {node: t}}}}}}, seen}. History is what the frames showed on this branch: a rewind
// forgets what came later; a long seek shows only the states it lands on.
function L(state) {
  const g = state.logs;
  if (!g.acc) Object.assign(g, {acc: {}, learned: {}, prom: {}, votes: {}, seen: 0});
  return g;
}

// `exact`: seen as it happened (a delta); a vote first seen in a snapshot after a jump happened
// at or before `t` (the panel then says "by").
function vote(g, node, slot, b, label, key, t, exact = true) {
  const s = g.votes[slot] || (g.votes[slot] = {});
  const k = bl(b);
  const e = s[k] || (s[k] = {b, keys: {}});
  const v = e.keys[key] || (e.keys[key] = {label, who: {}, late: {}});
  if (v.who[node] == null) { v.who[node] = t; if (!exact) v.late[node] = true; }
}

function promise(g, node, b, t) {
  const p = g.prom[node] || (g.prom[node] = {});
  const k = bl(b);
  if (!p[k]) p[k] = [b, t];
}

function forgetAfter(g, t) {
  for (const p of Object.values(g.prom)) for (const [k, [, tt]] of Object.entries(p)) if (tt > t) delete p[k];
  for (const s of Object.values(g.votes)) for (const [bk, e] of Object.entries(s)) {
    for (const [key, v] of Object.entries(e.keys)) {
      for (const [n, tt] of Object.entries(v.who)) if (tt > t) { delete v.who[n]; delete v.late[n]; }
      if (!Object.keys(v.who).length) delete e.keys[key];
    }
    if (!Object.keys(e.keys).length) delete s[bk];
  }
}

function trimSlots(g, keep) {
  const slots = Object.keys(g.votes).map(Number);
  if (slots.length <= keep) return;
  const hi = Math.max(...slots);
  for (const s of slots) if (s <= hi - keep) delete g.votes[s];
}

export function ingest(state, id, n) {
  const g = L(state);
  const t = state.t;
  if (g.seen > t) forgetAfter(g, t);
  g.seen = t;
  if (n.accepted) {
    g.acc[id] = n.accepted;
    for (const [s, [b, label, key]] of Object.entries(n.accepted)) vote(g, id, s, b, label, key, t, false);
    if (n.mode === "multi") { delete n.accepted; }
  }
  if (n.learned) { g.learned[id] = n.learned; if (n.mode === "multi") delete n.learned; }
  else if (n.status === "down") g.learned[id] = {};
  if (n.promised) promise(g, id, n.promised, t);
  trimSlots(g, 96);
  return n;
}

export function applyDeltas(state, d) {
  const g = L(state);
  const t = state.t;
  g.seen = Math.max(g.seen, t);
  for (const id of d.down || []) g.learned[id] = {};
  for (const [id, b] of d.prom || []) promise(g, id, b, t);
  for (const [id, slots] of d.acc || []) {
    const a = g.acc[id] || (g.acc[id] = {});
    for (const [s, [b, label, key]] of Object.entries(slots)) { a[s] = [b, label, key]; vote(g, id, s, b, label, key, t); }
  }
  for (const [id, slots] of d.learn || []) Object.assign(g.learned[id] || (g.learned[id] = {}), slots);
  trimSlots(g, 96);
}

// Chosen, per slot: a value a quorum (q2) of acceptors accepted in one ballot, and when the
// quorum formed (the q2-th vote). Several values in a slot: a safety violation, shown as such.
export function chosenOf(state, slot) {
  const g = L(state), q2 = state.extras.q2 || 2;
  const out = [];
  for (const e of Object.values(g.votes[slot] || {})) {
    for (const [key, v] of Object.entries(e.keys)) {
      const ws = Object.entries(v.who).sort((a, b) => a[1] - b[1]);
      if (ws.length < q2) continue;
      const [who, t] = ws[q2 - 1];
      const late = !!v.late[who];
      const c = out.find((x) => x.key === key);
      if (!c) out.push({key, label: v.label, b: e.b, t, late});
      else if (t < c.t) Object.assign(c, {b: e.b, t, late});
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

export const panelClick = cellClick;

const fmt = (t) => `${(t / 1000).toFixed(3)} s`;
const when = (c) => `${c.late ? "by" : "at"} ${fmt(c.t)}`;  // "by": first seen after a jump

export const panelLabel = "Ballots";

function header(state, what) {
  const x = state.extras;
  let h = `<p class="px-head" style="margin:0 0 4px;font-weight:600">${what} · q1=${x.q1} q2=${x.q2} of ${x.n} acceptors`;
  if (x.unsafe) h += ` <span class="badge bad px-unsafe" data-unsafe="1" role="alert" style="font-size:1em;padding:2px 8px">⚠ q1 + q2 ≤ n: UNSAFE (two quorums need not overlap)</span>`;
  return h + "</p>";
}

export function renderPanel(el, state, projector) {
  if (multi(state)) return renderSlots(el, state, projector);
  const g = L(state), ids = state.layout.nodes;
  const accs = (state.extras.acceptors || ids);
  // Columns: every ballot seen promised or voted (the latest few).
  const seen = new Map();
  for (const p of Object.values(g.prom)) for (const [k, [b]] of Object.entries(p)) seen.set(k, b);
  for (const [k, e] of Object.entries(g.votes[0] || {})) seen.set(k, e.b);
  const cols = [...seen.values()].sort(cmpB).slice(projector ? -5 : -7);
  const chosen = chosenOf(state, 0);
  const chosenAt = new Set(chosen.map((c) => bl(c.b)));
  let h = header(state, "Ballots");
  h += `<table class="logt px-ballots" aria-label="Ballots: one row per acceptor, one column per ballot"><thead><tr><th scope="col">acceptor</th>`;
  for (const b of cols) {
    const k = bl(b);
    const hot = chosenAt.has(k);
    h += `<th scope="col" data-ballot="${esc(k)}" style="color:${ownerColour(b[1])};font-size:1em;${hot ? "background:#dcf2e2;border-radius:4px" : ""}">${esc(k)}</th>`;
  }
  h += `<th scope="col">promised now</th></tr></thead><tbody>`;
  for (const id of accs) {
    const n = state.nodes[id] || {};
    h += `<tr data-acceptor="${id}" class="${n.status === "down" ? "down" : ""}"><th scope="row">${id}${n.status === "down" ? " ✕" : ""}</th>`;
    for (const b of cols) {
      const k = bl(b);
      const promised = !!(g.prom[id] && g.prom[id][k]);
      let acc = null;
      for (const [key, v] of Object.entries((g.votes[0] || {})[k]?.keys || {})) if (v.who[id] != null) acc = {key, label: v.label};
      const hot = acc && chosen.some((c) => c.key === acc.key && bl(c.b) === k);
      let txt = "", what = `${id}, ballot ${k}: `;
      if (acc) { txt = `✔ ${acc.label}`; what += `accepted ${acc.label}`; }
      else if (promised) { txt = "P"; what += "promised"; }
      else what += "nothing";
      const style = acc ? `background:${hot ? "#7fd39a" : FILL2[Math.max(0, idx(b[1]))]};font-weight:800;${hot ? "outline:3px solid #17803d;" : ""}`
        : promised ? `background:${FILL1[Math.max(0, idx(b[1]))]}` : "";
      h += `<td class="c px-cell${acc ? " committed" : promised ? " committed" : " empty"}" data-cell="${esc(`${id}@${k}`)}" data-what="${esc(what)}" style="min-width:46px;width:auto;padding:0 4px;${style}">${esc(txt)}</td>`;
    }
    h += `<td class="ni">${esc(bl(n.promised))}</td></tr>`;
  }
  h += "</tbody></table>";
  // The gap between chosen (a fact about acceptors) and learned (what learners found out).
  const learners = ids.filter((id) => (state.nodes[id]?.roles || []).includes("learner"));
  const knows = learners.filter((id) => g.learned[id] && g.learned[id]["0"]);
  if (!chosen.length) {
    h += `<p class="px-chosen" data-chosen="" style="font-weight:600">Nothing chosen yet: no ${state.extras.q2} acceptors accepted one ballot.</p>`;
  } else if (chosen.length === 1) {
    const c = chosen[0];
    h += `<p class="px-chosen" data-chosen="${esc(c.label)}" style="font-size:1.1em;font-weight:700;background:#dcf2e2;border-left:6px solid #17803d;padding:4px 8px;border-radius:4px">★ ${esc(c.label)} chosen ${when(c)} (ballot ${esc(bl(c.b))})`;
    h += knows.length ? ` · learned by ${knows.join(", ")}${knows.length < learners.length ? ` (not yet ${learners.filter((x) => !knows.includes(x)).join(", ")})` : ""}`
      : " · <em>no learner knows it yet</em>";
    h += "</p>";
  } else {
    h += `<p class="px-chosen" data-chosen="${esc(chosen.map((c) => c.label).join(","))}" style="font-size:1.1em;font-weight:800;color:#fff;background:#c4161c;padding:4px 8px;border-radius:4px">✗ TWO VALUES CHOSEN: ${chosen.map((c) => `${esc(c.label)} at ${esc(bl(c.b))} (${when(c)})`).join(" and ")}</p>`;
  }
  const wrong = ids.filter((id) => g.learned[id] && g.learned[id]["0"] && !chosen.some((c) => c.key === g.learned[id]["0"][1]));
  if (wrong.length) h += `<p class="px-wrong" data-wrong="${wrong.join(",")}" style="color:#c4161c;font-weight:800;font-size:1.1em">✗ ${wrong.map((id) => `${id} learned ${esc(g.learned[id]["0"][0])}`).join(", ")}: no quorum of acceptors accepted it</p>`;
  h += `<p class="logkey">P promised · ✔ v accepted v · green: a quorum accepted it (chosen) · column colour: the ballot's owner (pills too) · click a cell</p><p class="log-detail" aria-live="polite">${esc(state.logDetail || "")}</p>`;
  el.innerHTML = h;
}

const cellChar = (label) => (label === "no-op" ? "∅" : label.split(" ")[0]);

function renderSlots(el, state, projector) {
  const g = L(state), ids = state.layout.nodes;
  let hi = 0;
  for (const id of ids) {
    for (const s of Object.keys(g.acc[id] || {})) hi = Math.max(hi, Number(s) + 1);
    for (const s of Object.keys(g.learned[id] || {})) hi = Math.max(hi, Number(s) + 1);
  }
  const width = projector ? 10 : 14;
  const lo = Math.max(0, hi - width);
  const top = Math.max(hi, lo + width);
  const leader = leaderOf(state);
  let h = header(state, leader ? `Slot log · leader ${leader} (${bl(state.nodes[leader].ballot)})` : "Slot log · no leader");
  h += `<table class="logt px-slots" aria-label="Slot log: one row per server, one cell per slot"><thead><tr><th scope="col">slot</th>`;
  for (let s = lo; s < top; s++) h += `<th scope="col">${s}</th>`;
  h += `<th scope="col" class="ni">promised</th></tr></thead><tbody>`;
  // The cluster's truth first: chosen from the acceptors' accepted states.
  h += `<tr data-log-node="chosen"><th scope="row">chosen</th>`;
  for (let s = lo; s < top; s++) {
    const c = chosenOf(state, s);
    if (!c.length) { h += `<td class="c empty"></td>`; continue; }
    const two = c.length > 1;
    const what = esc(two ? `slot ${s}: TWO VALUES CHOSEN: ${c.map((x) => x.label).join(" and ")}` : `slot ${s}: ${c[0].label} chosen at ballot ${bl(c[0].b)}, ${when(c[0])}`);
    h += `<td class="c committed${c[0].label === "no-op" ? " px-noop" : ""}" data-slot="${s}" data-what="${what}" title="${what}" style="background:${two ? "#c4161c;color:#fff" : c[0].label === "no-op" ? "#d5d8dd" : "#7fd39a"}">${two ? "✗" : esc(cellChar(c[0].label))}</td>`;
  }
  h += `<td class="ni"></td></tr>`;
  for (const id of ids) {
    const n = state.nodes[id] || {};
    const star = n.leader ? " ★" : n.status === "down" ? " ✕" : "";
    h += `<tr data-log-node="${id}" class="${n.status === "down" ? "down" : ""}"><th scope="row">${id}${star}</th>`;
    const acc = g.acc[id] || {}, lrn = g.learned[id] || {};
    for (let s = lo; s < top; s++) {
      const a = acc[s], l = lrn[s];
      if (!a && !l) { h += `<td class="c empty"></td>`; continue; }
      const label = l ? l[0] : a[1];
      const what = esc(`${id} slot ${s}: ${l ? `chosen (learned) ${l[0]}` : `accepted ${a[1]}, not learned`}${a ? ` · accepted at ${bl(a[0])}${l && a[2] !== l[1] ? ` (${a[1]}, superseded)` : ""}` : ""}`);
      const bg = label === "no-op" ? "#d5d8dd" : a ? FILL2[Math.max(0, idx(a[0][1]))] : "#e6e8eb";
      h += `<td class="c${l ? " committed" : ""}${label === "no-op" ? " px-noop" : ""}" data-what="${what}" title="${what}" style="background:${bg}">${esc(cellChar(label))}</td>`;
    }
    h += `<td class="ni">${esc(bl(n.promised))}${n.status === "up" ? ` · c${n.commit}` : ""}</td></tr>`;
  }
  h += `</tbody></table><p class="logkey"><span class="k committed">solid</span> chosen (learned) · <span class="k">faded</span> accepted only · ∅ no-op fill · w/r/cas = the command · colour: the accepting ballot's owner · chosen row: a quorum of acceptors accepted it · click a cell</p><p class="log-detail" aria-live="polite">${esc(state.logDetail || "")}</p>`;
  el.innerHTML = h;
}
