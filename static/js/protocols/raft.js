// Raft's page module: role looks readable without colour, node badges, timer rings, pill palette,
// node menus (as action objects), keyboard shortcuts, and the log panel. The contract every
// protocol module follows is in static/js/protocols/index.js.

import {cellClick, esc} from "./cells.js";

export const title = "Raft";

const LOOKS = {
  leader: {cls: "leader", label: "★ LEADER", words: "leader"},
  candidate: {cls: "candidate", label: "? CANDIDATE", words: "candidate"},
  "pre-candidate": {cls: "candidate", label: "? PRE-VOTE", words: "pre-candidate"},
  follower: {cls: "follower", label: "FOLLOWER", words: "follower"},
  down: {cls: "down", label: "CRASHED", words: "crashed"},
};

export function look(n) {
  const sub = `term ${n.term}`;
  if (n.status === "paused") return {cls: LOOKS[n.role]?.cls || "follower", label: "⏸ PAUSED", words: `paused ${n.role}, term ${n.term}`, sub};
  const l = LOOKS[n.role] || {cls: "follower", label: n.role.toUpperCase(), words: n.role};
  return {...l, words: `${l.words}, term ${n.term}`, sub};
}

// Extra data-* attributes on a node's element (tests and tools read them).
export const dataset = (n) => ({term: String(n.term)});

export function badge(n, state) {
  const total = state.layout.nodes.length;
  const short = total > 5;  // crowded circles get shorter badges
  if (n.status === "down") return short ? "crashed" : "crashed: log kept on disk";
  if (n.role === "leader") return short ? `commit ${n.commit}` : `commit ${n.commit} · log ${n.len}`;
  if (n.role === "candidate" || n.role === "pre-candidate")
    return `votes ${n.votes.length}/${Math.floor(total / 2) + 1}${short ? "" : " needed"}`;
  if (short) return `log ${n.len}`;
  return n.vote ? `voted ${n.vote} · log ${n.len}` : `log ${n.len}`;
}

export const legend = [
  ["leader", "★ LEADER"], ["candidate", "? CANDIDATE"], ["follower", "FOLLOWER"], ["down", "CRASHED ✕"],
];
export const ringLabel = "election timer";

// The election timer's ring drains toward its deadline, over the longest timeout (hello.extras).
export function ring(n, state, now) {
  if (n.deadline == null || n.status !== "up") return null;
  const tmax = (state.extras.timeout_ms || [150, 300])[1];
  return Math.max(0, Math.min(1, (n.deadline - now) / tmax));
}

// Pill colours by the class the adapter gives each message (app/protocols/raft.py).
export const pills = {
  vote: {fill: "#ffe7b8", stroke: "#c77700", ink: "#15181d"},
  "vote-reply": {fill: "#fff3d6", stroke: "#c77700", ink: "#15181d"},
  append: {fill: "#d9f0df", stroke: "#17803d", ink: "#15181d"},
  "append-reply": {fill: "#eef8f0", stroke: "#17803d", ink: "#15181d"},
  client: {fill: "#e1e9fb", stroke: "#2f5fa7", ink: "#15181d"},
};

export const timerWords = (name) => ({election: "election timer", heartbeat: "heartbeat timer",
  check_quorum: "check-quorum timer"}[name] || `${name} timer`);

function leaderOf(state) {
  return state.layout.nodes.find((id) => state.nodes[id] && state.nodes[id].role === "leader" && state.nodes[id].status === "up");
}
let writeValue = 1;

export const menuTitle = (id, n) => `${id} · ${look(n).words}`;

// A node's menu: items {label, action} (sent as an action) or {label, say} (told, nothing sent).
export function menu(id, n, state) {
  const items = [];
  if (n.status === "down") items.push({label: `Restart ${id}`, action: {do: "restart", node: id}});
  else {
    items.push({label: `Crash ${id}`, action: {do: "crash", node: id}});
    items.push(n.status === "paused" ? {label: `Resume ${id}`, action: {do: "resume", node: id}}
      : {label: `Pause ${id} (stop the world)`, action: {do: "pause", node: id}});
    items.push({label: "Force election timeout", action: {do: "timeout", node: id}});
    items.push({label: `Client write to ${id}`, action: () => ({do: "request", node: id, op: "write", key: "k1", value: writeValue++})});
    items.push({label: `Client read from ${id}`, action: {do: "request", node: id, op: "read", key: "k1"}});
    const l = leaderOf(state);
    items.push({label: `Transfer leadership to ${id}`,
      ...(!l ? {say: "there is no leader to transfer from"} : l === id ? {say: `${id} is already the leader`}
        : {action: {do: "transfer", node: l, to: id}})});
  }
  return items;
}

// The toolbar's client button and the C key: a write to the leader (or the first server).
export const requestLabel = "Client write";
export function request(state) {
  const l = leaderOf(state) || state.layout.nodes[0];
  return {action: {do: "request", node: l, op: "write", key: "k1", value: writeValue++}};
}

// The protocol's own keys (the help dialog lists them, from the adapter's `shortcuts`).
export const keys = {
  c: (state) => request(state),
  r: (state) => { const l = leaderOf(state); return l ? {action: {do: "crash", node: l}} : {say: "no leader right now"}; },
};

// Snapshot nodes carry the whole log window; `events` frames carry log changes as deltas.
export function ingest(state, id, n) {
  state.logs[id] = {base: n.log_base, entries: n.log};
  delete n.log; delete n.log_base;
  return n;
}

export function applyDeltas(state, deltas) {
  for (const [id, keep, entries] of deltas.log || []) {
    const lg = state.logs[id] || (state.logs[id] = {base: 0, entries: []});
    const k = Math.max(0, keep - lg.base);
    lg.entries.length = Math.min(lg.entries.length, k);
    lg.entries.push(...entries);
    const extra = lg.entries.length - state.logWindow;
    if (extra > 0) { lg.entries.splice(0, extra); lg.base += extra; }
  }
}

// Compare mode's per-world numbers (static/js/protocols/index.js, `compareSeries`).
export function compareSeries(state) {
  const ns = Object.values(state.nodes);
  const up = ns.filter((n) => n.status === "up");
  return {
    "highest term": Math.max(0, ...ns.map((n) => n.term || 0)),
    "leaders now": up.filter((n) => n.role === "leader").length,
    "highest commit index": Math.max(0, ...ns.map((n) => n.commit || 0)),
    "servers up": up.length,
  };
}

// A log cell's entry, on click or tap (not only in a hover tooltip: projectors and touch screens).
export const panelClick = cellClick;


function termColour(term) {
  // Adjacent terms get far-apart hues; lightness keeps black text readable.
  const h = (term * 137.508) % 360;
  return `hsl(${h.toFixed(0)} 70% 78%)`;
}

export const panelLabel = "Logs";

export function renderPanel(el, state, projector) {
  const ids = state.layout.nodes;
  // With a stale leader on the minority side there can be two: show the one of the highest term.
  let leaderId = null;
  for (const id of ids) {
    const n = state.nodes[id];
    if (n && n.role === "leader" && n.status === "up" && (!leaderId || n.term > state.nodes[leaderId].term)) leaderId = id;
  }
  const leader = leaderId ? state.nodes[leaderId] : null;
  let maxLen = 0;
  for (const id of ids) maxLen = Math.max(maxLen, (state.logs[id]?.base || 0) + (state.logs[id]?.entries.length || 0));
  const width = projector ? 10 : 16;
  const lo = Math.max(1, maxLen - width + 1);
  const hi = Math.max(width, maxLen);
  let h = `<table class="logt" aria-label="Logs: one row per server, one cell per index"><thead><tr><th scope="col">index</th>`;
  for (let i = lo; i <= hi; i++) h += `<th scope="col">${i}</th>`;
  h += `<th scope="col" class="ni">${leader ? `${leaderId}: next / match` : "no leader"}</th></tr></thead><tbody>`;
  for (const id of ids) {
    const n = state.nodes[id] || {};
    const lg = state.logs[id] || {base: 0, entries: []};
    const star = n.role === "leader" ? " ★" : n.status === "down" ? " ✕" : "";
    h += `<tr data-log-node="${id}" class="${n.status === "down" ? "down" : ""}"><th scope="row">${id}${star}</th>`;
    const match = leader && leader.match ? leader.match[id] : undefined;
    const next = leader && leader.next ? leader.next[id] : undefined;
    for (let i = lo; i <= hi; i++) {
      const e = i - 1 - lg.base >= 0 ? lg.entries[i - 1 - lg.base] : undefined;
      let cls = "c";
      if (i === n.commit) cls += " commit";
      if (i <= n.commit) cls += " committed";
      if (match !== undefined && i === match) cls += " match";
      if (next !== undefined && i === next) cls += " next";
      if (e) {
        const what = esc(`${id} index ${i}, term ${e[0]}: ${e[1]}`);
        h += `<td class="${cls}" style="background:${termColour(e[0])}" title="${what}" data-what="${what}">${e[0]}</td>`;
      } else {
        h += `<td class="${cls} empty"></td>`;
      }
    }
    let ni = "";
    if (leader && id !== leaderId && next !== undefined) ni = `next ${next} · match ${match}`;
    else if (id === leaderId) ni = `commit ${n.commit}`;
    h += `<td class="ni">${ni}</td></tr>`;
  }
  h += `</tbody></table><p class="logkey"><span class="k committed">solid</span> committed · <span class="k">faded</span> not yet · <span class="k commit">▌</span> commit index · <span class="k match">▔</span> matchIndex · <span class="k next">◦</span> nextIndex · number = term · click a cell for its entry</p><p class="log-detail" aria-live="polite">${esc(state.logDetail || "")}</p>`;
  el.innerHTML = h;
}
