// ZooKeeper's page module: the ensemble in a ring (Zab roles: LOOKING, FOLLOWER, LEADER and their
// phase), the client processes below with their session rings, the storage service beside them;
// pills coloured by Zab's phase (app/protocols/zk.py gives the classes); menus that crash, pause,
// restart or partition any node and run a client's recipe steps; and the side panel: one
// server's data tree (ephemeral nodes marked by their owner's session, sequential suffixes
// visible, watches as markers), the lock queue in order with who watches whom, the count of watch
// notifications, and the storage with its newest token and the writes it rejected (in red).
// The pieces a Chubby page would share are in coord.js. The contract is in index.js.

import {cellClick, esc} from "./cells.js";
import {PILL, faultItems, idsOf, kindOf, layout as coordLayout, recipeItems, request, sessionRing, storageHtml, storagePills} from "./coord.js";

export const title = "ZooKeeper";
export const layout = (topology) => coordLayout(topology);

const zl = (z) => (z ? `${z[0]}.${z[1]}` : "-");
const LOCK_NAME = /^(c\d+)-\d+-lock-(\d{10})$/;
// A lock node's short name, as the pills give it: c2·1 (client c2, sequence number 1).
const shortName = (name) => { const m = LOCK_NAME.exec(name || ""); return m ? `${m[1]}·${Number(m[2])}` : name; };
const seqOf = (name) => { const m = /(\d{10})$/.exec(name || ""); return m ? Number(m[1]) : null; };
const RECIPE_PATHS = ["/lock", "/election", "/group"];
const FILL = {idle: "#5b6472", waiter: "#2f5fa7", holder: "#17803d", standby: "#2f5fa7", active: "#17803d",
  storage: "#6b4f2a", down: "#c9cdd3"};

export function look(n) {
  const k = kindOf(n);
  const paused = n.status === "paused";
  let cls, label, words, sub, fill;
  if (k === "server") {
    const settled = n.phase === "broadcast";
    if (n.role === "down") { cls = "down"; label = "CRASHED"; words = "crashed"; }
    else if (n.role === "leading") { cls = settled ? "leader" : "candidate"; label = settled ? "★ LEADER" : `★ ${n.phase === "discovery" ? "DISCOVERY" : "SYNC"}`; words = `leader (${n.phase})`; }
    else if (n.role === "following") { cls = settled ? "follower" : "candidate"; label = settled ? "FOLLOWER" : "SYNCING"; words = `follower of ${n.leader} (${n.phase})`; }
    else { cls = "candidate"; label = "? LOOKING"; words = "looking for a leader"; }
    sub = `epoch ${n.epoch}`;
  } else if (k === "client") {
    const r = n.role;
    fill = FILL[r] || FILL.idle;
    cls = r === "down" ? "down" : "client";
    const releasing = n.recipe === "release" && r !== "down";
    label = releasing ? "RELEASING" : {holder: "HOLDS LOCK", waiter: "WAITING", idle: "IDLE", active: "★ ACTIVE", standby: "STANDBY", member: "MEMBER", joining: "JOINING", down: "CRASHED"}[r] || r.toUpperCase();
    words = r === "holder" ? `holds the lock, token ${n.token}` : releasing ? "releasing the lock" : r === "down" ? "crashed" : `${r}${n.lock_node ? ", queued" : ""}`;
    sub = r === "down" ? "" : n.token != null && (r === "holder" || r === "active") ? `token ${n.token}` : n.session || (n.closed ? "closed" : "no session");
  } else {
    cls = n.role === "down" ? "down" : "storage"; fill = n.role === "down" ? FILL.down : FILL.storage;
    label = n.role === "down" ? "CRASHED" : "STORAGE"; words = `storage, newest token ${n.token ?? "none"}`;
    sub = `token ${n.token ?? "-"}`;
  }
  if (paused) return {cls, fill, label: "⏸ PAUSED", words: `paused (stop the world), ${words}`, sub};
  return {cls, fill, label, words: `${words}${sub && k === "server" ? ", " + sub : ""}`, sub};
}

export const dataset = (n) => {
  const k = kindOf(n);
  if (k === "server") return {kind: k, phase: n.phase || "", epoch: String(n.epoch ?? "")};
  if (k === "client") return {kind: k, holds: String(n.role === "holder" || n.role === "active"), token: String(n.token ?? ""),
    session: n.session || "", lockNode: n.lock_node || ""};
  return {kind: k, token: String(n.token ?? ""), value: n.value ?? ""};
};

export function badge(n, state) {
  const k = kindOf(n);
  if (n.status === "down") return k === "server" ? "crashed: history kept on disk" : "crashed";
  if (k === "server") return zl(n.last) === zl(n.committed) ? `zxid ${zl(n.last)}` : `zxid ${zl(n.last)} · ✓ ${zl(n.committed)}`;
  if (k === "storage") return `value ${n.value ?? "none"}${n.rejected ? ` · ✗${n.rejected}` : ""}`;
  const on = n.connected_to ? `on ${n.connected_to}` : "disconnected";
  const holds = n.role === "holder" || n.role === "active";
  if (holds && (n.status === "paused" || !n.connected_to)) return "⚠ believes it holds";
  if (n.closed) return "session closed";
  return n.session ? `${on} · ${n.session}` : on;
}

export const legend = [
  ["leader", "★ LEADER / HOLDS LOCK"], ["candidate", "? LOOKING / SYNCING"], ["follower", "FOLLOWER / WAITING"], ["down", "CRASHED ✕"],
];
export const ringLabel = "client's session (drains while its server hears nothing)";
export const ring = (n, state, now) => sessionRing(n, now);

// Pills by Zab phase, the clients' traffic, watch events and the storage (app/protocols/zk.py).
export const pills = {elect: PILL.amber, disc: PILL.purple, sync: PILL.teal, bcast: PILL.green, ping: PILL.grey,
  client: PILL.blue, watch: PILL.yellow, ...storagePills};

export const timerWords = (name) => ({notify: "vote re-send timer", finalize: "finalize-wait timer", tick: "tick",
  leader_timeout: "leader timeout", recv: "receive timeout (disconnect)", ping: "session ping timer",
  think: "think timer", hold: "hold timer"}[name] || `${name} timer`);

const leaderOf = (state) => idsOf(state, "server").find((id) => state.nodes[id].role === "leading" && state.nodes[id].phase === "broadcast" && state.nodes[id].status === "up");
const election = (state) => state.extras.recipe === "election";
const group = (state) => state.extras.recipe === "group";

export const menuTitle = (id, n) => `${id} · ${look(n).words}`;

export function menu(id, n, state) {
  const items = faultItems(id, n);
  if (kindOf(n) !== "client" || n.status === "down") return items;
  const holds = n.role === "holder" || n.role === "active";
  items.push(...recipeItems(id, n, {holds, queued: !!n.lock_node || (n.want && !holds),
    lockWord: election(state) ? "leadership" : "the lock"}));
  const path = state.extras.parent || "/lock";
  items.push({label: `Read ${path} from its server (may be stale)`, action: {do: "read", node: id, path}});
  items.push({label: `Read ${path} after sync (fresh)`, action: {do: "read", node: id, path, sync: true}});
  items.push(...dataItems(id, n, state));
  items.push({label: `Close ${id}'s session`, ...(n.status === "paused" ? {say: `${id} is paused: resume it first`}
    : n.session ? {action: {do: "close", node: id}} : {say: `${id} has no session${n.closed ? " (closed: its next call opens one)" : ""}`})});
  return items;
}

// The client API on one plain znode, /data, as the client's own server has it (its version there:
// a server behind the leader offers an old one, and the set comes back BadVersion).
const DATA = "/data";
let dataNo = 0;
function dataItems(id, n, state) {
  if (n.status === "paused") return [];
  const srv = state.nodes[n.connected_to] || state.nodes[leaderOf(state)] || {};
  const z = (srv.tree || []).find(([p]) => p === DATA);
  if (!z) {
    return [{label: `Create ${DATA}`, action: () => ({do: "create", node: id, path: DATA, data: `${id}-v${++dataNo}`})},
      {label: `Exists ${DATA} + watch (fires when it is made)`, action: {do: "exists", node: id, path: DATA, watch: true}}];
  }
  const version = z[2];
  return [{label: `Set ${DATA} (version ${version})`, action: () => ({do: "set", node: id, path: DATA, data: `${id}-v${++dataNo}`, version})},
    {label: `Get ${DATA} + watch`, action: {do: "get", node: id, path: DATA, watch: true}},
    {label: `Delete ${DATA} (version ${version})`, action: {do: "delete", node: id, path: DATA, version}}];
}

// The toolbar's button and the C key (coord.js): the first idle client asks for the lock.
export {request, requestLabel} from "./coord.js";

export const keys = {
  c: (state) => request(state),
  r: (state) => { const l = leaderOf(state); return l ? {action: {do: "crash", node: l}} : {say: "no established leader right now"}; },
};

export const panelClick = (e, state, el) => {
  const b = e.target.closest("[data-tree-of]");
  if (b) { state.logs.treeOf = b.dataset.treeOf; render(el, state, !!document.body.classList.contains("projector")); return; }
  cellClick(e, state, el);
};

// --- the panel ---------------------------------------------------------------------------------
export const panelLabel = "Data tree, lock queue and storage";

// Whose session is it: the client whose summary names it.
function ownerOf(state, session) {
  return idsOf(state, "client").find((c) => state.nodes[c].session === session) || null;
}

// The tree shown: the server the user picked, else the established leader, else the most advanced.
function treeServer(state) {
  const servers = idsOf(state, "server");
  const pick = state.logs.treeOf;
  if (pick && state.nodes[pick]) return pick;
  const l = leaderOf(state);
  if (l) return l;
  const up = servers.filter((s) => state.nodes[s].status !== "down");
  const cmp = (a, b) => { const x = state.nodes[a].committed || [0, 0], y = state.nodes[b].committed || [0, 0]; return (y[0] - x[0]) || (y[1] - x[1]); };
  return up.sort(cmp)[0] || servers[0];
}

// Watches per path on every server that is up ([path, kind, count] in each server's summary).
function watchesByPath(state) {
  const out = {};
  for (const s of idsOf(state, "server")) {
    const n = state.nodes[s];
    if (!n || n.status === "down") continue;
    for (const [p, kind, count] of n.watches || []) {
      const w = out[p] || (out[p] = {data: 0, children: 0});
      w[kind] = (w[kind] || 0) + count;
    }
  }
  return out;
}

export function renderPanel(el, state, projector) { render(el, state, projector); }

function render(el, state, projector) {
  const sid = treeServer(state);
  const srv = state.nodes[sid] || {};
  const lead = leaderOf(state);
  const parent = state.extras.parent || "/lock";
  const tree = srv.tree || [];
  const watches = watchesByPath(state);
  const clients = idsOf(state, "client");
  let h = `<div class="zk-head" style="display:flex;flex-wrap:wrap;gap:4px;align-items:center;margin-bottom:4px">`
    + `<strong style="margin-right:4px">Data tree of</strong>`;
  for (const s of idsOf(state, "server")) {
    const n = state.nodes[s] || {};
    const on = s === sid;
    h += `<button type="button" data-tree-of="${s}" aria-pressed="${on}" style="min-height:28px;padding:1px 8px${on ? "" : ""}">${s}${s === lead ? " ★" : ""}${n.status === "down" ? " ✕" : ""}</button>`;
  }
  const lc = lead ? state.nodes[lead].committed : null;
  const behind = lc && srv.committed && (srv.committed[0] !== lc[0] || srv.committed[1] !== lc[1]) && sid !== lead;
  h += `<span class="muted">${projector ? "✓" : "committed "}${zl(srv.committed)}</span>`;
  if (behind) h += ` <span class="zk-behind" style="color:#fff;background:#c77700;border-radius:4px;padding:0 6px;font-weight:700">behind the leader's ${zl(lc)}${projector ? "" : ": reads here are stale"}</span>`;
  if (srv.status === "down") h += ` <span class="muted">(crashed: its tree is rebuilt on restart)</span>`;
  h += `</div>`;

  // The tree: the recipe's parent and its children in sequence order (the lock queue).
  const kids = tree.filter(([p]) => p.startsWith(parent + "/")).map(([p, data, version, owner]) => ({p, name: p.slice(parent.length + 1), data, version, owner}))
    .sort((a, b) => (seqOf(a.name) ?? 0) - (seqOf(b.name) ?? 0) || (a.name < b.name ? -1 : 1));
  const others = tree.filter(([p]) => p !== parent && !p.startsWith(parent + "/")).map(([p]) => p);
  const pw = watches[parent];
  h += `<table class="logt zk-tree" aria-label="The lock queue: ${esc(parent)}'s children in sequence order" style="font-size:1em"><thead><tr>`
    + `${projector ? "" : `<th scope="col">#</th>`}<th scope="col">znode (suffix)</th><th scope="col">owner</th><th scope="col">◎ watch</th><th scope="col">queue</th></tr></thead><tbody>`;
  const herd = pw && pw.children ? (projector ? `◎ ${pw.children} (herd)`
    : `◎ ${pw.children} watch${pw.children > 1 ? "es" : ""} on its children: any change wakes ${pw.children > 1 ? "them all" : "it"}`) : "";
  h += `<tr class="zk-parent" data-znode="${esc(parent)}">${projector ? "" : "<td></td>"}<td class="mono" data-what="${esc(`${parent}: persistent, the recipe's parent${others.length ? "; the tree also holds " + others.join(", ") : ""}`)}" style="cursor:pointer"><strong>${esc(parent)}</strong></td><td class="muted">${projector ? "" : "persistent"}</td>`
    + `<td class="zk-watch" data-watch="${esc(parent)}" colspan="2" style="${herd ? "white-space:nowrap;background:#fff3b0;font-weight:800;border:2px solid #a07800;border-radius:6px;padding:0 4px" : ""}">${esc(herd)}</td></tr>`;
  if (!kids.length) h += `<tr><td colspan="${projector ? 4 : 5}" class="muted">no children: nobody ${group(state) ? "is a member" : election(state) ? "stands for active" : "holds or waits for the lock"}</td></tr>`;
  kids.forEach((k, i) => {
    const who = ownerOf(state, k.owner);
    const m = LOCK_NAME.exec(k.name);
    const nameHtml = m ? `<span style="font-size:0.85em">${esc(k.name.slice(0, -10))}</span><strong>${esc(k.name.slice(-10))}</strong>` : esc(k.name);
    const w = watches[k.p];
    const watcher = kids[i + 1] ? ownerOf(state, kids[i + 1].owner) : null;
    const wtxt = w && w.data ? `◎ ${w.data}${watcher ? ` (${watcher})` : ""}` : "";
    const queue = group(state) ? "member" : i === 0 ? (election(state) ? "★ active" : "holds") : `after ${shortName(kids[i - 1].name)}`;
    const what = `${k.p}: ephemeral of session ${k.owner}${who ? ` (${who})` : ""}, sequence ${seqOf(k.name)}, version ${k.version}${i === 0 ? "; lowest: it holds the lock" : `; watches ${kids[i - 1].p}`}`;
    h += `<tr data-znode="${esc(k.p)}" data-owner="${esc(k.owner || "")}" data-client="${esc(who || "")}"${i === 0 ? ' data-head="1"' : ""}>`
      + (projector ? "" : `<td class="ni">${seqOf(k.name) ?? ""}</td>`)
      + `<td class="mono" data-what="${esc(what)}" style="cursor:pointer;white-space:nowrap;${i === 0 ? "background:#dcf2e2;font-weight:700;" : ""}padding:0 4px">${nameHtml}</td>`
      + `<td style="white-space:nowrap">${esc(k.owner || "persistent")}${who ? ` <strong>${esc(who)}</strong>` : ""}</td>`
      + `<td class="zk-watch" data-watch="${esc(k.p)}" style="${wtxt ? "background:#fff3b0;font-weight:700;border-radius:4px;padding:0 4px" : ""}">${esc(wtxt)}</td>`
      + `<td style="white-space:nowrap;${i === 0 ? "font-weight:800;color:#17803d" : ""}">${esc(queue)}</td></tr>`;
  });
  h += `</tbody></table>`;

  // The znodes the clients' own calls made (outside the recipes' parents): data, version, watches.
  const plain = tree.filter(([p]) => !RECIPE_PATHS.some((r) => p === r || p.startsWith(r + "/")));
  if (plain.length) {
    h += `<p class="zk-plain" style="margin:2px 0">${projector ? "" : "<strong>Other znodes:</strong> "}`;
    h += plain.map(([p, data, version, owner]) => {
      const w = watches[p] || {};
      const marks = (w.data ? ` ◎${w.data}` : "") + (w.children ? ` ◎${w.children} children` : "");
      return `<span data-znode="${esc(p)}" data-version="${version}" class="mono" style="white-space:nowrap;padding:0 4px;border-radius:4px;${marks ? "background:#fff3b0;" : ""}">`
        + `${esc(p)} = ${esc(JSON.stringify(data))} v${version}${owner ? ` (ephemeral of ${esc(owner)})` : ""}${esc(marks)}</span>`;
    }).join(" ");
    h += `</p>`;
  }

  // What each client believes, and the watch notifications it has received (the herd count).
  const woken = clients.reduce((s, c) => s + (state.nodes[c].woken || 0), 0);
  h += `<p class="zk-woken" data-woken="${woken}" style="margin:2px 0;font-weight:700">Watch notifications so far: ${woken}`
    + (woken && !projector ? ` <span class="muted" style="font-weight:400">(${clients.filter((c) => state.nodes[c].woken).map((c) => `${c} ×${state.nodes[c].woken}`).join(", ")})</span>` : "") + `</p>`;

  for (const s of idsOf(state, "storage")) h += storageHtml(s, state.nodes[s], projector);
  if (!projector) h += `<p class="logkey">bold digits: the sequential suffix (the fencing token) · ◎ a watch · owner: the session whose end deletes the node · click a znode</p>`;
  h += `<p class="log-detail" aria-live="polite">${esc(state.logDetail || "")}</p>`;
  el.innerHTML = h;
}
