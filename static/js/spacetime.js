// The live space-time (Lamport) diagram: one vertical line per node, time flowing down, each
// message an arrow from its send to its delivery, a lost message ending in a cross, a node's line
// dashed red while it is down and grey while it is paused. Generic: it reads only the frames'
// message tuples (snapshot `flight`, events `add`, `del`, `brief`) and node statuses, and the
// protocol module's pill colours. Clicking an arrow seeks the run to the middle of its flight,
// where the canvas shows that message on its link.

const MAX_MSGS = 6000;
const MIN_WINDOW_MS = 20, MAX_WINDOW_MS = 120_000;

export class SpaceTime {
  constructor(el, {onSeek, colours}) {
    this.el = el;
    this.ctx = el.getContext("2d");
    this.onSeek = onSeek;
    this.colours = colours || {};
    this.lanes = [];
    this.msgs = new Map();      // id -> {id, from, to, t0, due, end, label, cls, why}
    this.marks = [];            // [t, node, status] in time order
    this.status = {};           // node -> status last seen
    this.windowMs = 400;
    this.known = 0;             // history is complete from this time on (a forward seek skips)
    this.hits = [];             // [x0, y0, x1, y1, id] of the arrows drawn, canvas pixels
    this.drawnAt = -1;
    el.addEventListener("click", (e) => this.click(e));
    el.addEventListener("wheel", (e) => { e.preventDefault(); this.zoom(e.deltaY > 0 ? 1.25 : 0.8); }, {passive: false});
  }

  reset(lanes, colours) {
    this.lanes = lanes.slice();
    this.colours = colours || {};
    this.msgs.clear();
    this.marks = [];
    this.status = {};
    this.known = 0;
    this.drawnAt = -1;
  }

  zoom(f) {
    this.windowMs = Math.min(MAX_WINDOW_MS, Math.max(MIN_WINDOW_MS, this.windowMs * f));
    this.drawnAt = -1;
  }

  pill(m) {  // [id, from, to, sent, due, label, class]
    const [id, from, to, t0, due, label, cls] = m;
    const old = this.msgs.get(id);
    if (old && old.end == null) { old.due = due; return; }
    if (!old) this.msgs.set(id, {id, from, to, t0, due, end: null, label, cls, why: null});
  }

  ended(id, why, t) {
    const m = this.msgs.get(id);
    if (!m) return;
    m.end = t ?? m.due;
    m.why = why || null;
  }

  brief(row) {  // [id, from, to, sent, ended, label, class, why]
    const [id, from, to, t0, end, label, cls, why] = row;
    this.msgs.set(id, {id, from, to, t0, due: end, end, label, cls, why: why || null});
  }

  nodeStatus(t, id, status) {
    if (status == null || this.status[id] === status) return;
    this.status[id] = status;
    this.marks.push([t, id, status]);
  }

  trim() {
    if (this.msgs.size <= MAX_MSGS) return;
    const drop = this.msgs.size - MAX_MSGS;
    let i = 0;
    for (const k of this.msgs.keys()) { if (i++ >= drop) break; this.msgs.delete(k); }
    if (this.marks.length > 4 * MAX_MSGS) this.marks.splice(0, this.marks.length - 4 * MAX_MSGS);
  }

  // A snapshot: the whole picture at `t`. Backwards (a rewind), later history has not happened on
  // this branch; after a jump forwards (`jumped`: a seek, a share link), the stretch between is
  // unknown. A message the diagram thought in flight and the snapshot does not hold has ended,
  // when and how unknown: drawn faint.
  snapshot(t, flight, nodes, lastT, jumped) {
    if (t < lastT) {
      for (const [id, m] of this.msgs) {
        if (m.t0 > t) this.msgs.delete(id);
        else if (m.end != null && m.end > t) { m.end = null; m.why = null; }
      }
      this.marks = this.marks.filter((x) => x[0] <= t);
      this.status = {};
      for (const [, id, st] of this.marks) this.status[id] = st;
      if (this.known > t) this.known = 0;
    } else if (jumped) {
      this.known = Math.max(this.known, t);
    }
    const live = new Set(flight.map((m) => m[0]));
    for (const m of this.msgs.values()) {
      if (m.end == null && !live.has(m.id)) { m.end = Math.min(m.due, t); m.why = "?"; }
    }
    for (const m of flight) this.pill(m);
    for (const [id, n] of Object.entries(nodes)) this.nodeStatus(t, id, n.status);
    this.drawnAt = -1;
  }

  events(f) {
    if (f.add) for (const m of f.add) this.pill(m);
    if (f.del) for (const d of f.del) this.ended(d[0], d[1], d[2] ?? f.t);
    if (f.brief) for (const b of f.brief) this.brief(b);
    if (f.nodes) for (const [id, n] of Object.entries(f.nodes)) this.nodeStatus(f.t, id, n.status);
    this.trim();
    this.drawnAt = -1;
  }

  colour(cls) {
    const c = this.colours[cls];
    return c ? c.stroke : "#59616b";
  }

  draw(now, big) {
    const el = this.el;
    const dpr = window.devicePixelRatio || 1;
    const w = el.clientWidth, h = el.clientHeight;
    if (!w || !h) return;
    if (el.width !== Math.round(w * dpr) || el.height !== Math.round(h * dpr)) {
      el.width = Math.round(w * dpr); el.height = Math.round(h * dpr); this.drawnAt = -1;
    }
    if (this.drawnAt === now) return;
    this.drawnAt = now;
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const fs = big ? 16 : 11;
    const head = fs + 10, foot = fs + 6;
    const n = this.lanes.length || 1;
    const laneX = {};
    this.lanes.forEach((id, i) => { laneX[id] = (i + 0.5) * (w / n); });
    const top = now - this.windowMs;
    const y = (t) => head + ((t - top) / this.windowMs) * (h - head - foot);
    // lanes, with their status over time
    ctx.font = `600 ${fs}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const id of this.lanes) {
      const x = laneX[id];
      ctx.fillStyle = "#15181d";
      ctx.fillText(id, x, 2);
      const segs = [];
      let st = "up", from = top;
      for (const [t, node, s] of this.marks) {
        if (node !== id) continue;
        if (t <= top) { st = s; continue; }
        if (t > now) break;
        segs.push([from, t, st]); from = t; st = s;
      }
      segs.push([from, now, st]);
      for (const [a, b, s] of segs) {
        ctx.beginPath();
        ctx.setLineDash(s === "down" ? [6, 5] : []);
        ctx.strokeStyle = s === "down" ? "#c62828" : s === "paused" ? "#9aa1ab" : "#3b424b";
        ctx.lineWidth = big ? 3 : 2;
        ctx.moveTo(x, y(a)); ctx.lineTo(x, y(b)); ctx.stroke();
      }
      ctx.setLineDash([]);
      for (const [t, node, s] of this.marks) {  // a fault's moment, marked on the line
        if (node !== id || t < top || t > now) continue;
        ctx.fillStyle = s === "down" ? "#c62828" : s === "paused" ? "#6b7280" : "#17803d";
        ctx.fillRect(x - 7, y(t) - 2, 14, 4);
      }
    }
    if (top < 0) {  // before the run began
      ctx.fillStyle = "#f7f7f8";
      ctx.fillRect(0, head, w, Math.max(0, y(0) - head));
    }
    if (this.known > top && this.known > 0) {  // a jump: what happened before it is not drawn
      ctx.fillStyle = "#eceef1";
      const y0 = y(Math.max(0, top));
      ctx.fillRect(0, y0, w, Math.max(0, y(this.known) - y0));
      ctx.fillStyle = "#59616b";
      ctx.textBaseline = "bottom";
      ctx.fillText("(skipped: jumped here)", w / 2, y(this.known) - 2);
    }
    // messages, clipped to the time axis (never over the lane names)
    ctx.save();
    ctx.beginPath(); ctx.rect(0, head, w, h - head - foot + 2); ctx.clip();
    this.hits = [];
    ctx.font = `${fs - 1}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    for (const m of this.msgs.values()) {
      const end = m.end == null ? now : m.end;
      if (end < top || m.t0 > now) continue;
      const x0 = laneX[m.from], x1 = laneX[m.to];
      if (x0 == null || x1 == null) continue;
      const span = Math.max(1e-6, (m.due ?? end) - m.t0);
      const frac = m.end == null ? Math.min(1, (now - m.t0) / span) : (m.why ? Math.min(1, (m.end - m.t0) / span) : 1);
      const xe = x0 + (x1 - x0) * (m.why && m.why !== "?" && frac >= 1 ? 0.92 : frac);
      const ya = y(m.t0), yb = y(end);
      ctx.strokeStyle = this.colour(m.cls);
      ctx.lineWidth = big ? 2.5 : 1.5;
      ctx.globalAlpha = m.why === "?" ? 0.35 : 1;
      ctx.beginPath(); ctx.moveTo(x0, ya); ctx.lineTo(xe, yb); ctx.stroke();
      if (m.end != null && !m.why) {  // delivered: an arrowhead
        const ang = Math.atan2(yb - ya, xe - x0), a = big ? 9 : 6;
        ctx.beginPath();
        ctx.moveTo(xe, yb);
        ctx.lineTo(xe - a * Math.cos(ang - 0.45), yb - a * Math.sin(ang - 0.45));
        ctx.lineTo(xe - a * Math.cos(ang + 0.45), yb - a * Math.sin(ang + 0.45));
        ctx.closePath(); ctx.fillStyle = ctx.strokeStyle; ctx.fill();
      } else if (m.why && m.why !== "?") {  // lost: a cross where it died
        const c = big ? 7 : 5;
        ctx.strokeStyle = "#c62828"; ctx.lineWidth = big ? 3 : 2;
        ctx.beginPath(); ctx.moveTo(xe - c, yb - c); ctx.lineTo(xe + c, yb + c);
        ctx.moveTo(xe + c, yb - c); ctx.lineTo(xe - c, yb + c); ctx.stroke();
      }
      ctx.globalAlpha = 1;
      if (Math.abs(yb - ya) > 2.2 * fs && Math.abs(xe - x0) > 30) {
        ctx.fillStyle = "#15181d";
        ctx.fillText(m.label, (x0 + xe) / 2, (ya + yb) / 2 - fs * 0.6);
      }
      this.hits.push([x0, ya, xe, yb, m.id]);
    }
    ctx.restore();
    ctx.fillStyle = "#59616b";
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.font = `${fs - 1}px system-ui, sans-serif`;
    ctx.fillText(`${Math.round(this.windowMs)} ms shown · wheel to zoom · click an arrow to go there`, w - 4, h - 1);
    this.el.dataset.arrows = String(this.hits.length);
  }

  click(e) {
    const r = this.el.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    let best = null, bestD = 8;
    for (const [x0, y0, x1, y1, id] of this.hits) {
      const dx = x1 - x0, dy = y1 - y0;
      const L = dx * dx + dy * dy || 1;
      const u = Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / L));
      const d = Math.hypot(px - (x0 + u * dx), py - (y0 + u * dy));
      if (d < bestD) { bestD = d; best = id; }
    }
    if (best == null) return;
    const m = this.msgs.get(best);
    const end = m.end == null ? m.due : m.end;
    this.onSeek(Math.round(((m.t0 + end) / 2) * 1000) / 1000, m);
  }

  // For tests and screen readers: the arrows as data.
  arrows() {
    return [...this.msgs.values()].map((m) => ({id: m.id, from: m.from, to: m.to, t0: m.t0, end: m.end, why: m.why, label: m.label}));
  }
}
