// What the coordination-service pages share (ZooKeeper's zk.js; Chubby's page can import the same):
// the layout (the ensemble or cell in a ring, the application processes in a row below, the
// storage service beside them), the session ring of a client, the fault items of every node's
// menu, the client's recipe items, and the storage section of the side panel. Node summaries are
// expected to carry `kind` ("server" | "client" | "storage", app/protocols/<p>.py), clients
// `heard` (ms, last heard from their server) and `timeout_ms`, storage `token`, `value`,
// `accepted`, `rejected` and `recent` ([[client, token, accepted, value, newest token after it], ...], newest last).

import {esc} from "./cells.js";

// --- layout --------------------------------------------------------------------------------------
// The SVG's viewBox is -420..420 x -405..405 (templates/index.html). Servers on a ring in the upper
// left, the storage service at the upper right, the clients in a row along the bottom.
export function layout(topology) {
  const ids = (kind) => topology.nodes.filter((x) => x[1] === kind).map((x) => x[0]);
  const servers = ids("server"), clients = ids("client"), storage = ids("storage");
  const n = servers.length, pos = {};
  const R = n <= 3 ? 170 : n <= 5 ? 200 : 205, cx = -110, cy = -140;
  servers.forEach((id, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos[id] = [cx + R * Math.cos(a), cy + R * Math.sin(a)];
  });
  storage.forEach((id, i) => { pos[id] = [320, -140 + 170 * i]; });
  const k = clients.length;
  const span = 700, gap = k > 1 ? span / (k - 1) : 0;
  clients.forEach((id, i) => { pos[id] = [k > 1 ? -span / 2 + gap * i : 0, 272]; });
  let nodeR = n <= 3 ? 72 : n <= 5 ? 58 : 46;
  if (k > 1) nodeR = Math.min(nodeR, Math.floor(gap * 0.42));
  return {pos, nodeR: Math.max(22, nodeR)};
}

export const kindOf = (n) => (n && n.kind) || "server";

// --- the session ring: full while the server hears from the client, draining to empty at the
// session timeout (where the leader would expire the session). A paused client's ring drains too:
// it cannot ping, and it does not know.
export function sessionRing(n, now) {
  if (kindOf(n) !== "client" || n.status === "down" || n.heard == null || !n.session) return null;
  const t = n.timeout_ms || 1;
  return Math.max(0, Math.min(1, (n.heard + t - now) / t));
}

// The ids of the nodes of one kind, in the layout's order.
export const idsOf = (state, kind) => state.layout.nodes.filter((id) => state.nodes[id] && kindOf(state.nodes[id]) === kind);

// The toolbar's button and the C key: the first idle client asks for the lock.
export const requestLabel = "A client takes the lock";
export function request(state) {
  const c = idsOf(state, "client").find((id) => { const n = state.nodes[id]; return n.status === "up" && n.role === "idle" && !n.want; });
  return c ? {action: {do: "acquire", node: c}} : {say: "every client already holds or waits for the lock"};
}

// --- menus -----------------------------------------------------------------------------------
// Crash or restart, pause (stop the world) or resume, and cut the node off from every other node.
export function faultItems(id, n) {
  if (n.status === "down") return [{label: `Restart ${id}`, action: {do: "restart", node: id}}];
  return [
    {label: `Crash ${id}`, action: {do: "crash", node: id}},
    n.status === "paused" ? {label: `Resume ${id}`, action: {do: "resume", node: id}}
      : {label: `Pause ${id} (stop the world)`, action: {do: "pause", node: id}},
    {label: `Partition ${id} away from everyone`, action: {do: "partition", groups: [[id]]}},
  ];
}

// A client's recipe steps as the engine's actions (acquire, release, write), each refused with a
// reason when it would do nothing. `holds`/`queued` say where the client is in the recipe;
// `tokenWord` names what its write carries.
let writeNo = 0;
export function recipeItems(id, n, {holds, queued, lockWord = "the lock", tokenWord = "token"}) {
  const items = [];
  if (n.status === "down") return items;
  const paused = n.status === "paused" ? {say: `${id} is paused: resume it first`} : null;
  items.push({label: `Acquire ${lockWord}`, ...(paused || (holds ? {say: `${id} already holds ${lockWord}`}
    : queued ? {say: `${id} is already queued for ${lockWord}`} : {action: {do: "acquire", node: id}}))});
  items.push({label: `Release ${lockWord}`, ...(paused || (holds || queued ? {action: {do: "release", node: id}}
    : {say: `${id} neither holds nor waits for ${lockWord}`}))});
  items.push({label: `Write to the storage (${tokenWord} ${n.token ?? "none"})`,
    ...(paused || {action: () => ({do: "write", node: id, value: `${id}-w${++writeNo}`})})});
  return items;
}

// --- pills ---------------------------------------------------------------------------------------
// The pill colours both pages draw from (each names its own classes), and the storage's pills.
const ink = "#15181d";
export const PILL = {
  amber: {fill: "#ffe7b8", stroke: "#c77700", ink}, purple: {fill: "#efe2f6", stroke: "#8e44ad", ink},
  teal: {fill: "#d9f1f3", stroke: "#16808c", ink}, green: {fill: "#d9f0df", stroke: "#17803d", ink},
  grey: {fill: "#f1f2f4", stroke: "#9aa1ab", ink: "#3a3f47"}, blue: {fill: "#e1e9fb", stroke: "#2f5fa7", ink},
  yellow: {fill: "#fff3b0", stroke: "#a07800", ink}, brown: {fill: "#efe6da", stroke: "#6b4f2a", ink},
  red: {fill: "#c4161c", stroke: "#7a0c10", ink: "#ffffff"},
};
export const storagePills = {store: PILL.brown, "store-ok": PILL.green, "store-bad": PILL.red};

// --- the storage section of the panel ----------------------------------------------------------
// `token` names what the storage compares (ZooKeeper: a token; Chubby: a sequencer's generation).
export function storageHtml(id, st, projector, {token: tw = "token"} = {}) {
  if (!st) return "";
  const down = st.status === "down";
  let h = `<div class="co-storage" data-storage="${esc(id)}" data-token="${esc(st.token ?? "")}" data-value="${esc(st.value ?? "")}"`
    + ` style="border:2px solid #6b4f2a;border-radius:8px;padding:4px 8px;margin-top:6px">`;
  h += `<p style="margin:0;font-weight:700">${projector ? "" : "Storage "}${esc(id)}${down ? " ✕ crashed" : ""}: newest ${tw} `
    + `<span class="co-token" style="font-size:1.25em">${esc(st.token ?? "none")}</span> · value `
    + `<span class="co-value mono" style="font-size:1.1em">${esc(st.value ?? "none")}</span>`
    + (projector ? ` · ✗${st.rejected}` : ` <span class="muted" style="font-weight:400">· ${st.accepted} accepted, ${st.rejected} rejected</span>`) + `</p>`;
  const recent = (st.recent || []).slice(projector ? -2 : -4).reverse();
  if (recent.length) {
    h += `<ul class="co-writes" style="list-style:none;margin:2px 0 0;padding:0">`;
    for (const [c, token, ok, value, newest] of recent) {
      const stale = ok && newest != null && token != null && token < newest;
      const style = ok ? (stale ? "color:#fff;background:#c4161c;font-weight:800" : "color:#17803d")
        : "color:#fff;background:#c4161c;font-weight:800";
      const mark = ok ? (stale ? `⚠ accepted a stale ${tw}` : "✓ accepted") : `✗ REJECTED (stale ${tw})`;
      h += `<li class="co-write" data-accepted="${ok}" data-stale="${!ok || stale}" style="${style};padding:1px 6px;border-radius:4px;margin:1px 0">`
        + `${mark}: ${esc(c)} wrote <span class="mono">${esc(value)}</span> with ${tw} ${esc(token ?? "none")}</li>`;
    }
    h += "</ul>";
  }
  return h + "</div>";
}
