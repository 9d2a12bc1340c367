// Chubby's page module: the cell's replicas in a ring (the master ★ with its master lease as the
// ring round it; a replica's ring is the lease it promised, during which it helps elect nobody
// else), the client processes below with their session rings (the local lease; in jeopardy the
// client turns amber and its ring red, draining over the grace period), the storage service beside
// them; pills coloured by what they do (app/protocols/chubby.py gives the classes); menus that
// crash, pause, restart or partition any node and run a client's recipe steps (acquire, release,
// write with its sequencer, close the session); and the side panel: the cell (master, epoch,
// lease), the lock table (holder, generation, waiters, the lock-delay countdown after a holder's
// session was lost), the sessions (state, local lease, grace period, the held KeepAlive) and the
// storage with its newest generation and the stale writes it rejected, in red. The layout, menus
// and storage box are shared with ZooKeeper's page (coord.js). The contract is in index.js.

import {cellClick, esc} from "./cells.js";
import {PILL, faultItems, idsOf, kindOf, layout as coordLayout, recipeItems, request, storageHtml, storagePills} from "./coord.js";

export const title = "Chubby";
export const layout = (topology) => coordLayout(topology);

const AMBER = "#c77700", RED = "#c4161c";
const FILL = {idle: "#5b6472", waiter: "#2f5fa7", holder: "#17803d", jeopardy: AMBER, storage: "#6b4f2a", down: "#c9cdd3"};
const secs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.max(0, ms).toFixed(0)} ms`);
const lockShort = (l) => (l || "").split("/").pop();

export function look(n) {
  const k = kindOf(n);
  const paused = n.status === "paused";
  let cls, label, words, sub, fill;
  if (k === "server") {
    if (n.role === "down") { cls = "down"; label = "CRASHED"; words = "crashed"; }
    else if (n.role === "master") { cls = "leader"; label = "★ MASTER"; words = "master"; }
    else if (n.phase === "leading") { cls = "candidate"; label = "★ EPOCH?"; words = "won phase 1: waiting for its epoch to be chosen and its master lease"; }
    else if (n.phase === "preparing") { cls = "candidate"; label = "? PREPARE"; words = "running phase 1 (Prepare) to become master"; }
    else { cls = "follower"; label = "REPLICA"; words = n.leader ? `replica, follows ${n.leader}` : "replica, no master known"; }
    sub = `epoch ${n.epoch}`;
  } else if (k === "client") {
    const r = n.role, st = n.session_state;
    cls = r === "down" ? "down" : "client";
    fill = r === "down" ? FILL.down : st === "jeopardy" ? FILL.jeopardy : FILL[r] || FILL.idle;
    if (r === "down") { label = "CRASHED"; words = "crashed"; }
    else if (st === "jeopardy") { label = "⚠ JEOPARDY"; words = `session ${n.session} in jeopardy (grace period)${r === "holder" ? ", believes it holds the lock" : ""}`; }
    else if (st !== "safe") { label = st === "opening" ? "OPENING" : "NO SESSION"; words = st === "opening" ? "opening a session" : "no session"; }
    else { label = {holder: "HOLDS LOCK", waiter: "WAITING", idle: "IDLE"}[r] || r.toUpperCase(); words = r === "holder" ? `holds the lock, generation ${n.token}` : r; }
    sub = r === "down" ? "" : r === "holder" && n.token != null ? `gen ${n.token}` : n.session || "no session";
  } else {
    cls = n.role === "down" ? "down" : "storage"; fill = n.role === "down" ? FILL.down : FILL.storage;
    label = n.role === "down" ? "CRASHED" : "STORAGE"; words = `storage, newest generation ${n.token ?? "none"}`;
    sub = `gen ${n.token ?? "-"}`;
  }
  if (paused) return {cls, fill, label: "⏸ PAUSED", words: `paused (stop the world), ${words}`, sub};
  return {cls, fill, label, words: `${words}${sub && k === "server" ? ", " + sub : ""}`, sub};
}

export const dataset = (n) => {
  const k = kindOf(n);
  if (k === "server") return {kind: k, phase: n.phase || "", epoch: String(n.epoch ?? "")};
  if (k === "client") return {kind: k, holds: String(n.role === "holder"), token: String(n.token ?? ""),
    session: n.session || "", "session-state": n.session_state || "none"};
  return {kind: k, token: String(n.token ?? ""), value: n.value ?? ""};
};

export function badge(n, state) {
  const k = kindOf(n), t = state.t;
  if (n.status === "down") return k === "server" ? "crashed: log kept on disk" : "crashed";
  if (k === "server") {
    if (n.role === "master") return `lease ${secs((n.lease_end ?? t) - t)} · ${n.held.length} held`;
    if (n.promise_until > t) return n.promise_to ? `promised ${n.promise_to} ${secs(n.promise_until - t)}` : `restarted: no votes ${secs(n.promise_until - t)}`;
    return `slot ${n.commit}`;
  }
  if (k === "storage") return `value ${n.value ?? "none"}${n.rejected ? ` · ✗${n.rejected}` : ""}`;
  if (n.session_state === "jeopardy") return n.grace_end != null ? `grace ${secs(n.grace_end - t)} left` : "in jeopardy";
  if (n.role === "holder" && n.status === "paused") return "⚠ believes it holds";
  if (n.session_state !== "safe") return n.session_state === "opening" ? "looking for the master" : "no session";
  return `${n.session} on ${n.connected_to}`;
}

export const legend = [
  ["leader", "★ MASTER / HOLDS LOCK"], ["candidate", "ELECTING / ⚠ JEOPARDY"], ["follower", "REPLICA / WAITING"], ["down", "CRASHED ✕"],
];
export const ringLabel = "lease: the master's lease, a replica's promise, a client's local lease (red: its grace period)";

// The rings. A client's: its local lease while the session is safe, the grace period (red) in
// jeopardy. The master's: its master lease. A replica's: the lease it promised (it helps elect
// nobody else until it ends).
export function ring(n, state, now) {
  if (n.status === "down") return null;
  const x = state.extras || {};
  const frac = (end, len) => (end == null || !len ? null : Math.max(0, Math.min(1, (end - now) / len)));
  const k = kindOf(n);
  if (k === "client") {
    if (n.session_state === "jeopardy") return frac(n.grace_end, x.grace_ms);
    if (n.session_state === "safe") return frac(n.local_end, x.local_ms);
    return null;
  }
  if (k === "server") return n.role === "master" ? frac(n.lease_end, x.master_lease_ms) : frac(n.promise_until, x.master_lease_ms);
  return null;
}

// The ring's colour says which lease it is (set inline: the master's ring is otherwise hidden).
export function decorate(els, state) {
  for (const [id, e] of Object.entries(els)) {
    const n = state.nodes[id];
    if (!n || !e.ring) continue;
    const k = kindOf(n);
    let c = "";
    if (n.status !== "down") {
      if (k === "client") c = n.session_state === "jeopardy" ? RED : "#17803d";
      else if (k === "server") c = n.role === "master" ? "#0f5a2a" : "#7d8591";
    }
    if (e._ringC !== c) { e.ring.style.stroke = c; e._ringC = c; }
    e.g.setAttribute("data-ring", k === "client" ? (n.session_state === "jeopardy" ? "grace" : n.session_state === "safe" ? "lease" : "none") : k === "server" && n.role === "master" ? "master-lease" : "");
  }
}

// Pills: Multi-Paxos phase 1 and 2, the master lease, sessions, KeepAlives, locks, storage.
export const pills = {p1: PILL.amber, p2: PILL.green, lease: PILL.grey, session: PILL.purple, keepalive: PILL.teal,
  lock: PILL.blue, expired: PILL.red, ...storagePills};

export const timerWords = (name) => ({election: "election timer", heartbeat: "heartbeat timer", master_lease: "master lease end",
  leases: "session lease check", retry: "retry timer (next replica)", lease: "local lease end (jeopardy)",
  grace: "grace period end", think: "think timer", hold: "hold timer"}[name] || `${name} timer`);

const masterOf = (state) => idsOf(state, "server").find((id) => state.nodes[id].role === "master" && state.nodes[id].status === "up");

export const menuTitle = (id, n) => `${id} · ${look(n).words}`;

export function menu(id, n, state) {
  const items = faultItems(id, n);
  if (kindOf(n) !== "client" || n.status === "down") return items;
  const holds = n.role === "holder";
  items.push(...recipeItems(id, n, {holds, queued: n.role === "waiter", tokenWord: "sequencer, generation"}));
  items.push({label: "Close its session", ...(n.status === "paused" ? {say: `${id} is paused: resume it first`}
    : n.session ? {action: {do: "close", node: id}} : {say: `${id} has no session`})});
  return items;
}

// The toolbar's button and the C key (coord.js): the first idle client asks for the lock.
export {request, requestLabel} from "./coord.js";

export const keys = {
  c: (state) => request(state),
  r: (state) => { const m = masterOf(state); return m ? {action: {do: "crash", node: m}} : {say: "no master right now"}; },
};

export const panelClick = (e, state, el) => cellClick(e, state, el);

// --- the panel ---------------------------------------------------------------------------------
export const panelLabel = "Cell, lock table, sessions and storage";

// The lock table shown: the master's (the queue lives only there), else the replica that applied most.
function tableServer(state) {
  const m = masterOf(state);
  if (m) return m;
  const up = idsOf(state, "server").filter((s) => state.nodes[s].status !== "down");
  return up.sort((a, b) => (state.nodes[b].commit || 0) - (state.nodes[a].commit || 0))[0] || null;
}

export function renderPanel(el, state, projector) {
  const t = state.t, x = state.extras || {};
  const m = masterOf(state);
  const clients = idsOf(state, "client");
  let h = `<p class="ch-cell" data-master="${esc(m || "")}" style="margin:0 0 4px;font-weight:700">`;
  if (m) {
    const n = state.nodes[m];
    h += `Master <span style="color:#17803d">★ ${esc(m)}</span>, epoch ${esc(n.epoch)} · lease ${secs((n.lease_end ?? t) - t)}`;
  } else {
    const promised = idsOf(state, "server").map((s) => state.nodes[s]).filter((n) => n.status !== "down" && n.promise_to && n.promise_until > t);
    h += `<span style="color:#fff;background:${AMBER};border-radius:4px;padding:0 6px">No master</span>`;
    if (promised.length && !projector) {
      const until = Math.max(...promised.map((n) => n.promise_until));
      h += ` <span class="muted" style="font-weight:400">${promised.length} replica${promised.length > 1 ? "s" : ""} still keep${promised.length > 1 ? "" : "s"} a lease promise (${secs(until - t)} left): no election before it ends</span>`;
    }
  }
  h += `</p>`;

  // The lock table.
  const sid = tableServer(state);
  const locks = (sid && state.nodes[sid].locks) || [];
  const rows = locks.length ? locks : [[x.lock || "/ls/cell/lock", null, null, 0, 0, []]];
  h += `<table class="logt ch-locks" aria-label="The lock table${sid ? ` (as ${esc(sid)} has it)` : ""}" style="font-size:1em"><thead><tr>`
    + `<th scope="col">lock</th><th scope="col">holder</th><th scope="col">gen</th><th scope="col">waiting</th><th scope="col">lock-delay</th></tr></thead><tbody>`;
  for (const [name, holder, session, gen, delayUntil, queue] of rows) {
    const delay = delayUntil > t && !holder;
    const dtxt = delay ? (projector ? `free in ${secs(delayUntil - t)}` : `free in ${secs(delayUntil - t)}`) : delayUntil > t ? `until ${delayUntil.toFixed(0)} ms` : "";
    h += `<tr data-lock="${esc(name)}" data-holder="${esc(holder || "")}" data-generation="${esc(gen)}" data-delay="${delay}">`
      + `<td class="mono" data-what="${esc(`${name}: a coarse-grained advisory lock in the replicated database; its generation number counts every grant`)}" style="cursor:pointer">${esc(projector ? lockShort(name) : name)}</td>`
      + `<td style="white-space:nowrap;${holder ? "background:#dcf2e2;font-weight:800" : ""}">${holder ? `${esc(holder)}${projector ? "" : ` <span class="muted" style="font-weight:400">(${esc(session)})</span>`}` : `<span class="muted">free</span>`}</td>`
      + `<td><strong>${esc(gen)}</strong></td>`
      + `<td>${esc((queue || []).join(" → ") || (m ? "" : "(asked again after failover)"))}</td>`
      + `<td class="ch-delay" style="white-space:nowrap;${delay ? `background:${AMBER};color:#fff;font-weight:800;border-radius:4px;padding:0 4px` : ""}">${esc(dtxt)}</td></tr>`;
  }
  h += `</tbody></table>`;

  // Sessions: what each client believes, and what the master has for it.
  const mn = m ? state.nodes[m] : null;
  h += `<table class="logt ch-sessions" aria-label="Sessions" style="font-size:1em;margin-top:4px"><thead><tr>`
    + `<th scope="col">client</th><th scope="col">session</th><th scope="col">state</th><th scope="col">lease left</th>${projector ? "" : `<th scope="col" title="the session's lease at the master; KA held: its KeepAlive waits there">master's lease</th>`}<th scope="col">sequencer</th></tr></thead><tbody>`;
  for (const c of clients) {
    const n = state.nodes[c];
    const st = n.status === "down" ? "down" : n.session_state;
    const left = st === "jeopardy" ? `grace ${secs((n.grace_end ?? t) - t)}` : st === "safe" && n.local_end != null ? secs(n.local_end - t) : "";
    const style = st === "jeopardy" ? `background:${AMBER};color:#fff;font-weight:800` : st === "safe" ? "color:#17803d;font-weight:700" : "";
    const lstyle = st === "jeopardy" ? `color:${RED};font-weight:800` : "";
    let at = "";
    if (mn && n.session) {
      const end = mn.session_leases[n.session];
      at = mn.sessions.includes(n.session) ? `${end != null ? secs(end - t) : "open"}${mn.held.includes(n.session) ? " · KA held" : ""}` : "expired";
    } else if (n.session) at = "no master";
    const seq = n.sequencer ? `gen ${esc(n.sequencer[2])}` : "";
    h += `<tr data-client="${esc(c)}" data-state="${esc(st)}"><td><strong>${esc(c)}</strong>${n.status === "paused" ? " ⏸" : ""}</td><td class="mono">${esc(n.session || "none")}</td>`
      + `<td style="${style};border-radius:4px;padding:0 4px;white-space:nowrap">${esc(st === "jeopardy" ? "⚠ jeopardy" : st)}</td><td style="${lstyle};white-space:nowrap">${esc(left)}</td>`
      + (projector ? "" : `<td class="muted" style="white-space:nowrap">${esc(at)}</td>`) + `<td style="white-space:nowrap">${seq}</td></tr>`;
  }
  h += `</tbody></table>`;

  for (const s of idsOf(state, "storage")) h += storageHtml(s, state.nodes[s], projector, {token: "generation"});
  if (!projector) h += `<p class="logkey">local lease: the client's guess of its session's lease at the master (a margin shorter) · jeopardy: that ran out, no calls until a KeepAlive returns within the grace period · lock-delay: a lock whose holder's session was lost stays free for a while · click a lock</p>`;
  h += `<p class="log-detail" aria-live="polite">${esc(state.logDetail || "")}</p>`;
  el.innerHTML = h;
}

// Compare mode's per-world numbers (static/js/protocols/index.js, `compareSeries`).
export function compareSeries(state) {
  const of = (kind) => idsOf(state, kind).map((id) => state.nodes[id]);
  const servers = of("server"), clients = of("client"), st = of("storage")[0] || {};
  const lock = (servers.find((n) => n.role === "master") || servers[0] || {}).locks?.[0];
  return {
    "master epoch": Math.max(0, ...servers.map((n) => n.epoch || 0)),
    "clients in jeopardy": clients.filter((n) => n.session_state === "jeopardy").length,
    "lock generation": lock ? lock[3] : 0,
    "stale writes rejected": st.rejected || 0,
  };
}
