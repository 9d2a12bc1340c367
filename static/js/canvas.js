// The canvas: a pure function from the client-side state (built from frames only) to SVG.
// Protocol-agnostic: nodes on a circle, clients in the middle, faint links between every pair,
// messages as labelled pills placed by their send/arrive times. What a role looks like and what
// a node's badge says come from the protocol module (static/js/protocols/).

const NS = "http://www.w3.org/2000/svg";
const RING_R = 300;

function el(tag, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export class Canvas {
  constructor(svg, proto, handlers) {
    this.svg = svg;
    this.proto = proto;
    this.handlers = handlers; // {nodeClick(id, ev), linkClick(a, b, ev), linkMenu(a, b, ev)}
    this.pos = {};
    this.nodeEls = {};
    this.linkEls = {};
    this.pillPool = [];
    this.pillsInUse = new Map();
    this.dropMarks = [];
  }

  layout(nodes, clients) {
    const svg = this.svg;
    svg.textContent = "";
    this.pos = {};
    this.nodeEls = {};
    this.linkEls = {};
    this.pillPool = [];
    this.pillsInUse = new Map();
    const n = nodes.length;
    this.nodeR = n <= 3 ? 80 : n <= 5 ? 76 : n <= 7 ? 64 : 54;
    nodes.forEach((id, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
      this.pos[id] = [RING_R * Math.cos(a), RING_R * Math.sin(a)];
    });
    clients.forEach((id) => { this.pos[id] = [0, 0]; });
    const defs = el("defs", {}, svg);
    const mk = el("marker", {id: "cut-arrow", viewBox: "0 0 10 10", refX: "5", refY: "5",
      markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse"}, defs);
    el("path", {d: "M0,0 L10,5 L0,10 z", class: "cut-arrow"}, mk);
    this.gLinks = el("g", {class: "links"}, svg);
    this.gClients = el("g", {class: "clients"}, svg);
    this.gPills = el("g", {class: "pills"}, svg);
    this.gNodes = el("g", {class: "nodes"}, svg);
    // Links: every pair, a visible wire plus a wide transparent hit area.
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const a = nodes[i], b = nodes[j];
        const [x1, y1] = this.pos[a], [x2, y2] = this.pos[b];
        const g = el("g", {class: "link", "data-link": `${a}-${b}`, "data-cut": "none",
          role: "button", "aria-label": `link ${a}-${b}: click to cut`}, this.gLinks);
        el("line", {class: "wire", x1, y1, x2, y2}, g);
        const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
        const dx = (x2 - x1), dy = (y2 - y1), len = Math.hypot(dx, dy);
        const ux = dx / len, uy = dy / len;
        el("line", {class: "dir ab", x1: mx - ux * 24, y1: my - uy * 24, x2: mx + ux * 24, y2: my + uy * 24,
          "marker-end": "url(#cut-arrow)"}, g);
        el("line", {class: "dir ba", x1: mx + ux * 24, y1: my + uy * 24, x2: mx - ux * 24, y2: my - uy * 24,
          "marker-end": "url(#cut-arrow)"}, g);
        el("line", {class: "hit", x1, y1, x2, y2}, g);
        g.addEventListener("click", (ev) => this.handlers.linkClick(a, b, ev, this._nearer(a, b, ev)));
        g.addEventListener("contextmenu", (ev) => { ev.preventDefault(); this.handlers.linkMenu(a, b, ev); });
        this.linkEls[`${a}-${b}`] = g;
      }
    }
    if (clients.length) {
      const g = el("g", {class: "client", transform: "translate(0,0)"}, this.gClients);
      el("rect", {x: -58, y: -24, width: 116, height: 48, rx: 10}, g);
      const t = el("text", {y: 8}, g);
      t.textContent = "clients";
    }
    const C = 2 * Math.PI * (this.nodeR + 11);
    this.ringC = C;
    for (const id of nodes) {
      const [x, y] = this.pos[id];
      const g = el("g", {class: "node", "data-node": id, "data-role": "follower", "data-term": "0",
        "data-status": "up", transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, tabindex: "0",
        role: "button", "aria-label": `${id}`, style: `--s:${(this.nodeR / 76).toFixed(3)}`}, this.gNodes);
      el("circle", {class: "ring-bg", r: this.nodeR + 11}, g);
      const ring = el("circle", {class: "ring", r: this.nodeR + 11, "stroke-dasharray": C.toFixed(1),
        "stroke-dashoffset": "0", transform: "rotate(-90)"}, g);
      el("circle", {class: "body", r: this.nodeR}, g);
      const tid = el("text", {class: "nid", y: -this.nodeR * 0.30}, g);
      tid.textContent = id;
      const trole = el("text", {class: "nrole", y: this.nodeR * 0.14}, g);
      const tterm = el("text", {class: "nterm", y: this.nodeR * 0.52}, g);
      const cross = el("g", {class: "cross"}, g);
      const k = this.nodeR * 0.72;
      el("line", {x1: -k, y1: -k, x2: k, y2: k}, cross);
      el("line", {x1: -k, y1: k, x2: k, y2: -k}, cross);
      const badge = el("text", {class: "nbadge", y: this.nodeR + 40}, g);
      g.addEventListener("click", (ev) => this.handlers.nodeClick(id, ev));
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); ev.stopPropagation(); this.handlers.nodeClick(id, ev); }
      });
      this.nodeEls[id] = {g, ring, trole, tterm, badge};
    }
  }

  _nearer(a, b, ev) {
    // Which endpoint the click was nearer to (a one-way cut goes from there).
    const pt = this.svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    const m = this.svg.getScreenCTM();
    if (!m) return a;
    const p = pt.matrixTransform(m.inverse());
    const da = Math.hypot(p.x - this.pos[a][0], p.y - this.pos[a][1]);
    const db = Math.hypot(p.x - this.pos[b][0], p.y - this.pos[b][1]);
    return da <= db ? a : b;
  }

  // --- state that changes with frames ----------------------------------------------------------
  updateNodes(state, ids) {
    const P = this.proto;
    for (const id of ids) {
      const n = state.nodes[id], e = this.nodeEls[id];
      if (!n || !e) continue;
      const look = P.look(n);
      e.g.setAttribute("data-role", n.role);
      e.g.setAttribute("data-term", String(n.term));
      e.g.setAttribute("data-status", n.status);
      e.g.setAttribute("class", `node role-${look.cls}${n.status !== "up" ? " st-" + n.status : ""}`);
      e.trole.textContent = look.label;
      e.tterm.textContent = `term ${n.term}`;
      e.badge.textContent = P.badge(n, state);
      e.g.setAttribute("aria-label", `${id}: ${look.words}, term ${n.term}. ${P.badge(n, state)}. Press Enter for actions.`);
    }
  }

  updateNet(net) {
    if (!net || !net.cut) return;
    for (const [key, st] of Object.entries(net.cut)) {
      const g = this.linkEls[key];
      if (!g) continue;
      const [a, b] = key.split("-");
      g.setAttribute("data-cut", st);
      let cls = "link";
      if (st === "both") cls += " cut both";
      else if (st === `${a}>${b}`) cls += " cut ab";
      else if (st === `${b}>${a}`) cls += " cut ba";
      g.setAttribute("class", cls);
      const words = st === "none" ? "connected; click to cut" : st === "both" ? "cut both ways; click to heal"
        : `cut one way (${st.replace(">", " to ")}); click to heal`;
      g.setAttribute("aria-label", `link ${a}-${b}: ${words}`);
    }
  }

  // --- per animation frame -----------------------------------------------------------------
  _pill() {
    let p = this.pillPool.pop();
    if (!p) {
      const g = el("g", {class: "pill"}, this.gPills);
      const r = el("rect", {x: -56, y: -18, width: 112, height: 36, rx: 18}, g);
      const t = el("text", {y: 7}, g);
      p = {g, r, t, label: "", cls: ""};
    }
    p.g.style.display = "";
    return p;
  }

  draw(state, now) {
    // Timer rings drain toward the election deadline.
    const tmax = state.timeoutMax || 300;
    for (const id in this.nodeEls) {
      const n = state.nodes[id], e = this.nodeEls[id];
      if (!n) continue;
      let frac = 0;
      if (n.deadline != null && n.status === "up") frac = Math.max(0, Math.min(1, (n.deadline - now) / tmax));
      const off = (this.ringC * (1 - frac)).toFixed(1);
      if (e._off !== off) { e.ring.setAttribute("stroke-dashoffset", off); e._off = off; }
    }
    // Pills.
    const seen = new Set();
    const R = this.nodeR + 14;
    for (const [id, m] of state.flight) {
      const a = this.pos[m[1]], b = this.pos[m[2]];
      if (!a || !b) continue;
      seen.add(id);
      let p = this.pillsInUse.get(id);
      if (!p) { p = this._pill(); this.pillsInUse.set(id, p); }
      if (p.label !== m[5]) { p.t.textContent = m[5]; p.label = m[5]; }
      const cls = `pill ${m[6]}${m[7] ? " dropped" : ""}`;
      if (p.cls !== cls) { p.g.setAttribute("class", cls); p.cls = cls; }
      const span = m[4] - m[3];
      let f = span > 0 ? (now - m[3]) / span : 1;
      f = f < 0 ? 0 : f > 1 ? 1 : f;
      const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
      const ux = dx / len, uy = dy / len;
      const ra = m[1].startsWith("n") ? R : 60, rb = m[2].startsWith("n") ? R : 60;
      const x = a[0] + ux * ra + (len - ra - rb) * f * ux - uy * 20;
      const y = a[1] + uy * ra + (len - ra - rb) * f * uy + ux * 20;
      p.g.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)})`);
    }
    for (const [id, p] of this.pillsInUse) {
      if (!seen.has(id)) {
        p.g.style.display = "none";
        this.pillsInUse.delete(id);
        this.pillPool.push(p);
      }
    }
  }
}
