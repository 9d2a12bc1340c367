// The canvas: a pure function from the client-side state (built from frames only) to pictures.
// Protocol-agnostic: nodes where the protocol module's layout puts them (a circle by default),
// clients in the middle, the links the topology draws (hello.topology.links), messages as
// labelled pills placed by their send/arrive times (or dots, when the module draws them so: `dot`). What a node looks like, its label, badge and
// timer ring, and the pill palette come from the protocol module (static/js/protocols/).
// Messages waiting on their links (manual delivery) are drawn at their destination's end with a
// dashed outline, and can be clicked (`handlers.pillClick`).
//
// Two layers. The SVG holds what changes a few times a second and what people and tests click
// and read (nodes, links, their data-* hooks). Message pills move every animation frame, so they
// are drawn on a <canvas> laid exactly over the SVG (same viewBox mapping), above the nodes so a
// label is never hidden; each distinct pill (label, class, size) is rendered once to a sprite
// and then only copied, so a frame costs one drawImage per message and no DOM or text work.

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
    this.handlers = handlers; // {nodeClick(id, ev), linkClick(a, b, ev, nearer), linkMenu(a, b, ev), pillClick(id, ev)}
    this.pillHits = []; // [x0, y0, x1, y1, id] of the waiting pills drawn, in SVG units
    this.pos = {};
    this.nodeEls = {};
    this.linkEls = {};
    this.sprites = new Map(); // "label|cls|dropped" -> {img, w, h} at the current scale
    this.pillsDrawn = 0;
    this.layer = null;
    this._drawKey = "";
  }

  layout(topology, clients) {
    // topology: {nodes: [[id, kind], ...], links: [[a, b], ...]} as the hello frame sends it.
    const svg = this.svg;
    svg.textContent = "";
    this.pos = {};
    this.nodeEls = {};
    this.linkEls = {};
    this._mountLayer();
    const nodes = topology.nodes.map((x) => x[0]);
    const placed = this.proto.layout ? this.proto.layout(topology, clients) : circleLayout(nodes);
    this.nodeR = placed.nodeR;
    for (const id of nodes) this.pos[id] = placed.pos[id];
    clients.forEach((id) => { this.pos[id] = placed.pos[id] || [0, 0]; });
    if (!svg._pillClicks) {
      // A click on a waiting pill (drawn on the layer above, which lets clicks through) goes to
      // the pill, before any link or node under it.
      svg._pillClicks = true;
      svg.addEventListener("click", (ev) => {
        const c = svg._canvas, id = c && c.pillAt(ev);
        if (id != null) { ev.stopPropagation(); ev.preventDefault(); c.handlers.pillClick(id, ev); }
      }, true);
    }
    svg._canvas = this;
    const defs = el("defs", {}, svg);
    const mk = el("marker", {id: "cut-arrow", viewBox: "0 0 10 10", refX: "5", refY: "5",
      markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse"}, defs);
    el("path", {d: "M0,0 L10,5 L0,10 z", class: "cut-arrow"}, mk);
    this.gLinks = el("g", {class: "links"}, svg);
    this.gClients = el("g", {class: "clients"}, svg);
    this.gNodes = el("g", {class: "nodes"}, svg);
    // Links: the topology's, each a visible wire plus a wide transparent hit area.
    for (const [a, b] of topology.links) {
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
    if (clients.length && clients.every((id) => placed.pos[id])) {
      // The layout placed each client: one small box each, where its messages start.
      for (const id of clients) {
        const [x, y] = placed.pos[id];
        const g = el("g", {class: "client", "data-client": id, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`}, this.gClients);
        el("rect", {x: -40, y: -22, width: 80, height: 44, rx: 10}, g);
        const t = el("text", {y: 8}, g);
        t.textContent = id;
      }
    } else if (clients.length) {
      const g = el("g", {class: "client", transform: "translate(0,0)"}, this.gClients);
      el("rect", {x: -58, y: -24, width: 116, height: 48, rx: 10}, g);
      const t = el("text", {y: 8}, g);
      t.textContent = "clients";
    }
    const C = 2 * Math.PI * (this.nodeR + 11);
    this.ringC = C;
    for (const id of nodes) {
      const [x, y] = this.pos[id];
      const g = el("g", {class: "node", "data-node": id, "data-role": "", "data-status": "up", transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, tabindex: "0",
        role: "button", "aria-label": `${id}`, style: `--s:${(this.nodeR / 76).toFixed(3)}`}, this.gNodes);
      el("circle", {class: "ring-bg", r: this.nodeR + 11}, g);
      const ring = el("circle", {class: "ring", r: this.nodeR + 11, "stroke-dasharray": C.toFixed(1),
        "stroke-dashoffset": "0", transform: "rotate(-90)"}, g);
      el("circle", {class: "body", r: this.nodeR}, g);
      const tid = el("text", {class: "nid", y: -this.nodeR * 0.30}, g);
      tid.textContent = id;
      const trole = el("text", {class: "nrole", y: this.nodeR * 0.14}, g);
      const tsub = el("text", {class: "nsub", y: this.nodeR * 0.52}, g);
      const cross = el("g", {class: "cross"}, g);
      const k = this.nodeR * 0.72;
      el("line", {x1: -k, y1: -k, x2: k, y2: k}, cross);
      el("line", {x1: -k, y1: k, x2: k, y2: -k}, cross);
      const badge = el("text", {class: "nbadge", y: this.nodeR + 40}, g);
      // The disk indicator: shown while the node has a write to stable storage in flight.
      const r = this.nodeR, disk = el("g", {class: "disk", transform: `translate(${(r * 0.78).toFixed(1)},${(-r * 0.78).toFixed(1)})`}, g);
      const w = r * 0.36, h = r * 0.40, ry = r * 0.09;
      el("path", {d: `M${-w / 2},${-h / 2} v${h} a${w / 2},${ry} 0 0 0 ${w},0 v${-h}`}, disk);
      el("ellipse", {cx: 0, cy: -h / 2, rx: w / 2, ry}, disk);
      el("title", {}, disk).textContent = "writing to stable storage";
      g.addEventListener("click", (ev) => this.handlers.nodeClick(id, ev));
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); ev.stopPropagation(); this.handlers.nodeClick(id, ev); }
      });
      this.nodeEls[id] = {g, ring, trole, tsub, badge};
    }
  }

  _svgPoint(ev) {
    const pt = this.svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    const m = this.svg.getScreenCTM();
    return m ? pt.matrixTransform(m.inverse()) : null;
  }

  pillAt(ev) {
    // The waiting pill under a click (the last drawn is on top), or null.
    if (!this.pillHits.length || (!ev.clientX && !ev.clientY)) return null;
    const p = this._svgPoint(ev);
    if (!p) return null;
    for (let i = this.pillHits.length - 1; i >= 0; i--) {
      const [x0, y0, x1, y1, id] = this.pillHits[i];
      if (p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1) return id;
    }
    return null;
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
      for (const [k, v] of Object.entries(P.dataset ? P.dataset(n) : {})) e.g.setAttribute(`data-${k}`, v);
      e.g.setAttribute("data-status", n.status);
      e.g.setAttribute("class", `node role-${look.cls}${n.status !== "up" ? " st-" + n.status : ""}${n.disk ? " disk-busy" : ""}`);
      if (look.fill) e.g.querySelector(".body").style.fill = look.fill;
      e.trole.textContent = look.label;
      e.trole.classList.toggle("long", look.label.length > 9); // a long label must fit the circle
      e.tsub.textContent = look.sub || "";
      const badge = P.badge(n, state);
      e.badge.textContent = badge;
      e.g.setAttribute("aria-label", `${id}: ${look.words}. ${badge}. Press Enter for actions.`);
    }
    // A module may draw more on its nodes (a queue bar, an "ejected" mark): it gets every node's
    // elements, since one node's change can change how another is drawn.
    if (P.decorate) P.decorate(this.nodeEls, state, this.nodeR);
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

  // --- the pill layer ----------------------------------------------------------------------
  _mountLayer() {
    if (this.layer) { this._fit(); return; }
    // One layer per SVG, reused when the cluster is rebuilt (a new Canvas on every hello).
    const svg = this.svg;
    let c = svg.nextElementSibling;
    if (!c || !c.classList.contains("pill-layer")) {
      c = document.createElement("canvas");
      c.className = "pill-layer";
      c.setAttribute("aria-hidden", "true");
      svg.insertAdjacentElement("afterend", c);
    }
    this.layer = c;
    this.ctx = c.getContext("2d");
    if (svg._pillObserver) svg._pillObserver.disconnect();
    svg._pillObserver = new ResizeObserver(() => this._fit());
    svg._pillObserver.observe(svg);
    this._fit();
  }

  _fit() {
    // Lay the canvas over the SVG's box and find the SVG's viewBox -> pixel mapping
    // (preserveAspectRatio xMidYMid meet on a viewBox centred on 0,0).
    const svg = this.svg, c = this.layer;
    const r = svg.getBoundingClientRect();
    const host = c.offsetParent || document.body, hr = host.getBoundingClientRect();
    const w = r.width, h = r.height;
    const dpr = window.devicePixelRatio || 1;
    c.style.left = `${r.left - hr.left - host.clientLeft}px`;
    c.style.top = `${r.top - hr.top - host.clientTop}px`;
    c.style.width = `${w}px`;
    c.style.height = `${h}px`;
    c.width = Math.max(1, Math.round(w * dpr));
    c.height = Math.max(1, Math.round(h * dpr));
    const vb = svg.viewBox.baseVal;
    const k = Math.min(w / vb.width, h / vb.height) * dpr; // device pixels per SVG unit
    this.k = k;
    this.ox = c.width / 2 - (vb.x + vb.width / 2) * k;
    this.oy = c.height / 2 - (vb.y + vb.height / 2) * k;
    const look = document.body.classList.contains("projector") ? "p" : "n";
    const key = `${k.toFixed(3)}|${look}`;
    if (key !== this._spriteKey) { this.sprites.clear(); this._spriteKey = key; }
    this._drawKey = ""; // force a redraw
  }

  restyle() {
    // Projector mode changed the look (and maybe the layout): new sprites, new mapping.
    this._spriteKey = "";
    this._fit();
  }

  _sprite(label, cls, dropped) {
    // dropped: "" | "dropped" (struck through, dashed red) | "waiting" (manual delivery: a thick
    // dashed outline and a ‖ mark, so it reads without colour)
    const key = `${label}|${cls}|${dropped}`;
    let s = this.sprites.get(key);
    if (s) return s;
    if (this.sprites.size > 400) this.sprites.clear(); // labels are few; never grow without bound
    const projector = document.body.classList.contains("projector");
    const st = dropped === "dropped" ? PILL.dropped : (this.proto.pills?.[cls] || PILL[cls] || PILL.other);
    const waiting = dropped === "waiting";
    const k = this.k;
    const font = `700 ${(projector ? 25 : 19) * k}px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif`;
    const line = (projector ? 3.5 : 2) * k;
    const ph = projector ? 42 : 36;
    const m = this._measure || (this._measure = document.createElement("canvas").getContext("2d"));
    m.font = font;
    if (waiting) label = `‖ ${label}`;
    const tw = m.measureText(label).width;
    const h = Math.ceil(ph * k + line), w = Math.ceil(Math.max(64 * k, tw + 26 * k) + line);
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    const g = c.getContext("2d");
    const r = (h - line) / 2;
    g.beginPath();
    g.roundRect(line / 2, line / 2, w - line, h - line, r);
    g.fillStyle = st.fill; g.fill();
    g.lineWidth = waiting ? line * 1.8 : line; g.strokeStyle = waiting ? "#15181d" : st.stroke;
    if (dropped) g.setLineDash(waiting ? [6 * k, 3 * k] : [4 * k, 3 * k]);
    g.stroke();
    g.font = font; g.fillStyle = st.ink; g.textAlign = "center"; g.textBaseline = "middle";
    g.fillText(label, w / 2, h / 2 + k);
    if (dropped === "dropped") { // struck through: readable without colour
      g.setLineDash([]); g.lineWidth = 2 * k; g.strokeStyle = st.ink;
      g.beginPath(); g.moveTo(w / 2 - tw / 2, h / 2 + k); g.lineTo(w / 2 + tw / 2, h / 2 + k); g.stroke();
    }
    s = {img: c, w, h};
    this.sprites.set(key, s);
    return s;
  }

  // --- per animation frame -----------------------------------------------------------------
  draw(state, now) {
    // Timer rings: how full is the protocol module's to say (Raft: draining to the election deadline).
    const P = this.proto;
    for (const id in this.nodeEls) {
      const n = state.nodes[id], e = this.nodeEls[id];
      if (!n) continue;
      const frac = (P.ring && P.ring(n, state, now)) || 0;
      const off = (this.ringC * (1 - frac)).toFixed(0);
      if (e._off !== off) { e.ring.setAttribute("stroke-dashoffset", off); e._off = off; }
    }
    this.drawPills(state, now);
  }

  drawPills(state, now) {
    // Nothing moved (paused, nothing dropped): keep the picture.
    const key = `${now}|${state.flightRev}|${state.flight.size}|${state.waitingRev}`;
    if (key === this._drawKey && !this._fading) return;
    this._drawKey = key;
    const g = this.ctx, k = this.k, ox = this.ox, oy = this.oy;
    g.clearRect(0, 0, this.layer.width, this.layer.height);
    const R = this.nodeR + 14, wall = performance.now();
    let drawn = 0, fading = false;
    const waiting = state.waiting, hits = [];
    const dots = this.proto.dot;
    for (const m of state.flight.values()) {
      const a = this.pos[m[1]], b = this.pos[m[2]];
      if (!a || !b) continue;
      const w = waiting && waiting.has(m[0]);
      // A module may draw its messages as dots ({r, fill, stroke}); waiting ones stay pills, to be
      // read and clicked.
      const d = dots && !w ? dots(m, state, now) : null;
      if (d) { this._dot(g, m, a, b, d, now, wall); drawn++; if (m[7]) fading = true; continue; }
      const sp = this._sprite(m[5], m[6], m[7] ? "dropped" : w ? "waiting" : "");
      const span = m[4] - m[3];
      let f = w ? 1 : span > 0 ? (now - m[3]) / span : 1;
      f = f < 0 ? 0 : f > 1 ? 1 : f;
      const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
      const ux = dx / len, uy = dy / len;
      // Start and stop clear of the node circles (by the pill's own extent along the link), but
      // always travel at least a third of the link (short links on a crowded ring).
      const ext = 0.5 * (Math.abs(ux) * sp.w + Math.abs(uy) * sp.h) / k;
      const cap = len / 3;
      const ra = Math.min(cap, (this.nodeEls[m[1]] ? R : 60) + ext);
      const rb = Math.min(cap, (this.nodeEls[m[2]] ? R : 60) + ext);
      const x = a[0] + ux * ra + (len - ra - rb) * f * ux - uy * 20;
      const y = a[1] + uy * ra + (len - ra - rb) * f * uy + ux * 20;
      // Fade in as it leaves, out as it arrives; a dropped pill fades away where it died.
      // (Over a node's badge a half-faded pill lets both be read.)
      let alpha = w ? 1 : f < 0.15 ? 0.3 + 0.7 * (f / 0.15) : f > 0.85 ? 0.3 + 0.7 * ((1 - f) / 0.15) : 1;
      if (w) { const hw = sp.w / 2 / k, hh = sp.h / 2 / k; hits.push([x - hw, y - hh, x + hw, y + hh, m[0]]); }
      if (m[7]) {
        const dt = m[8] ? wall - m[8] : 0;
        alpha = Math.max(0, 1 - dt / 700);
        fading = true;
      }
      g.globalAlpha = alpha;
      g.drawImage(sp.img, Math.round(ox + x * k - sp.w / 2), Math.round(oy + y * k - sp.h / 2));
      drawn++;
    }
    g.globalAlpha = 1;
    this.pillHits = hits;
    this.dotsDrawn = dots ? drawn : 0;
    this._fading = fading;
    this.pillsDrawn = drawn;
  }
}

Canvas.prototype._dot = function (g, m, a, b, d, now, wall) {
  // One message as a dot along its link, clear of the node circles, fading as it arrives.
  const k = this.k, span = m[4] - m[3];
  let f = span > 0 ? (now - m[3]) / span : 1;
  f = f < 0 ? 0 : f > 1 ? 1 : f;
  const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
  const ux = dx / len, uy = dy / len, R = this.nodeR + 14;
  const ra = Math.min(len / 3, this.nodeEls[m[1]] ? R : 44), rb = Math.min(len / 3, this.nodeEls[m[2]] ? R : 44);
  const off = d.offset || 0;
  const x = a[0] + ux * ra + (len - ra - rb) * f * ux - uy * off, y = a[1] + uy * ra + (len - ra - rb) * f * uy + ux * off;
  g.globalAlpha = m[7] ? Math.max(0, 1 - (m[8] ? wall - m[8] : 0) / 700) : f > 0.9 ? 0.4 + 0.6 * ((1 - f) / 0.1) : 1;
  g.beginPath();
  g.arc(this.ox + x * k, this.oy + y * k, d.r * k, 0, 2 * Math.PI);
  g.fillStyle = d.fill; g.fill();
  if (d.stroke) { g.lineWidth = (d.line || 2) * k; g.strokeStyle = d.stroke; g.stroke(); }
};

// Nodes on a circle, sized by how many there are (the default layout).
export function circleLayout(nodes) {
  const n = nodes.length, pos = {};
  nodes.forEach((id, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos[id] = [RING_R * Math.cos(a), RING_R * Math.sin(a)];
  });
  return {pos, nodeR: n <= 3 ? 80 : n <= 5 ? 76 : n <= 7 ? 64 : 54};
}

// Pill colours every protocol shares; a module's `pills` add its message classes.
const PILL = {
  other: {fill: "#ffffff", stroke: "#444444", ink: "#15181d"},
  dropped: {fill: "#fde2e2", stroke: "#d0202b", ink: "#b0101b"},
};
