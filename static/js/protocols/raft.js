// Raft's look: role labels readable without colour, node badges, and the log panel.

const LOOKS = {
  leader: {cls: "leader", label: "★ LEADER", words: "leader"},
  candidate: {cls: "candidate", label: "? CANDIDATE", words: "candidate"},
  "pre-candidate": {cls: "candidate", label: "? PRE-VOTE", words: "pre-candidate"},
  follower: {cls: "follower", label: "FOLLOWER", words: "follower"},
  down: {cls: "down", label: "CRASHED", words: "crashed"},
};

export function look(n) {
  if (n.status === "paused") return {cls: LOOKS[n.role]?.cls || "follower", label: "⏸ PAUSED", words: `paused ${n.role}`};
  return LOOKS[n.role] || {cls: "follower", label: n.role.toUpperCase(), words: n.role};
}

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

export const menu = (id, n) => {
  const items = [];
  if (n.status === "down") items.push(["restart", `Restart ${id}`]);
  else {
    items.push(["crash", `Crash ${id}`]);
    items.push(n.status === "paused" ? ["resume", `Resume ${id}`] : ["pause", `Pause ${id} (stop the world)`]);
    items.push(["timeout", `Force election timeout`]);
    items.push(["write", `Client write to ${id}`]);
    items.push(["read", `Client read from ${id}`]);
    items.push(["transfer", `Transfer leadership to ${id}`]);
  }
  return items;
};

const ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);  // labels carry user-typed keys

function termColour(term) {
  // Adjacent terms get far-apart hues; lightness keeps black text readable.
  const h = (term * 137.508) % 360;
  return `hsl(${h.toFixed(0)} 70% 78%)`;
}

export function renderLog(el, state, projector) {
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
