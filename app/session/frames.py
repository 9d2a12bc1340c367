"""Building the frames a session sends: `hello`, `snapshot`, `events` (docs/ws-protocol.md).

Protocol-agnostic: what a node's summary holds, a pill's label, a record's sentence and a
protocol's state deltas come from the adapter (`app/protocols/`). What the page has been told
(pills shown, each node's last-told state, the waiting messages, the verdicts) lives here, beside
the observer that feeds it: one set per world, in that world's `Pane`. The session reads them
through the focused pane (`self.pane`), so the same code builds any world's part of a frame.

Compare mode (several worlds in unison): a frame's own fields are the first world's, exactly as
a single world's frame, and `worlds` lists the others' parts in order (their fields without the
shared `type`, `t`, `w`, `playing`, `speed`, `horizon`, `end`, `behind`, `acts`). A single world's
frames carry no `worlds`.
"""

from __future__ import annotations

from typing import Any


class Pane:
    """One world and what the frames told the page about it (one per world; compare mode holds
    several). `observer` is bound once: `unsubscribe` compares by identity."""

    __slots__ = ("world", "variant", "pending_recs", "shown", "msg_to", "told", "violation_count",
                 "lin", "waiting_told", "lin_told", "job", "cost", "observer", "disk_told",
                 "writers", "written_told")

    def __init__(self, world, variant: str | None = None):
        self.world = world
        self.variant = variant  # the compare variant's name (None: a single world)
        self.pending_recs: list[dict] = []
        self.shown: set[int] = set()
        self.msg_to: dict[int, str] = {}
        self.told: dict[str, Any] = {}
        self.violation_count = 0
        self.lin = None
        self.waiting_told: tuple[bool, list[int]] = (False, [])
        self.lin_told: bool | None = True  # the linearizability result the page was last told
        self.job = None  # this world's part of the session's replay job (app/session/replay.py)
        self.cost = 0  # events its last tick took (the costliest paces the next tick)
        self.observer = self.on_record
        self.disk_told: dict[str, bool] = {}  # the disk indicator each node was last shown with
        self.writers: list = []  # observers that write records (metrics)
        self.written_told: list[int] = []  # how many of each one's records the page was sent

    def on_record(self, rec: dict) -> None:
        self.pending_recs.append(rec)


class _PaneAttr:
    """A session attribute that belongs to the focused world's `Pane` (`session.pane`)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return getattr(obj.pane, self.name)

    def __set__(self, obj, value) -> None:
        setattr(obj.pane, self.name, value)


# The fields every world of a compare session shares (the frame's own, told once).
_SHARED = frozenset(("type", "t", "w", "seq", "playing", "speed", "horizon", "end", "behind", "acts",
                     "session", "secret", "protocol", "title", "layout", "topology", "lesson",
                     "mutations", "options", "invariants", "limits", "compare", "compare_variants"))


def _part(frame: dict) -> dict:
    """A world's part of a compare frame: its frame less the shared fields."""
    return {k: v for k, v in frame.items() if k not in _SHARED}


class FramesMixin:
    # What the page was told about a world belongs to that world's pane: read through the focused
    # one (`self.pane`, see `Session._each`).
    world = _PaneAttr("world")
    pending_recs = _PaneAttr("pending_recs")
    shown = _PaneAttr("shown")
    msg_to = _PaneAttr("msg_to")
    told = _PaneAttr("told")
    violation_count = _PaneAttr("violation_count")
    lin = _PaneAttr("lin")
    job = _PaneAttr("job")
    _waiting_told = _PaneAttr("waiting_told")
    _lin_told = _PaneAttr("lin_told")
    _observer = _PaneAttr("observer")
    disk_told = _PaneAttr("disk_told")
    writers = _PaneAttr("writers")
    written_told = _PaneAttr("written_told")

    # --- the outbox ------------------------------------------------------------------------------
    def _queue(self, frame: dict) -> None:
        """Queue a frame, stamped with the simulated time it describes (now, not at flush). A page
        with more than `max_outbox_bytes` waiting, even after snapshots collapsed, is too far
        behind: its connection is closed (`fall_behind`)."""
        frame.setdefault("t", self.sim.now_ms)
        self.outbox.append(frame)
        cap = self.settings.max_outbox_bytes
        if self.outbox.bytes > cap and self.ws is not None:
            # Snapshots already collapse as they are queued: this much waiting even so means the
            # page is hopelessly behind (dropping frames here could lose its latest picture).
            self.fall_behind(f"{self.outbox.bytes} bytes of frames waiting, the limit is {cap}")

    def queue_error(self, message: str, fatal: bool = False) -> None:
        if len(message) > 500:  # never echo a long input back (each part is quoted short already)
            message = message[:497] + "\u2026"
        frame: dict[str, Any] = {"type": "error", "message": message}
        if fatal:
            frame["fatal"] = True
        self._queue(frame)

    # --- observing the world ---------------------------------------------------------------------
    def _attach(self, messages: bool = True) -> None:
        """(Re)subscribe to the simulation: observers are not part of snapshots."""
        sim = self.sim
        self.pending_recs: list[dict] = []
        sim.subscribe(self._observer, messages=messages)
        self.shown: set[int] = set()
        self.msg_to = {mid: f[1] for mid, f in sim.flight.items()}
        self.told: dict[str, Any] = {nid: self.adapter.told(v) for nid, v in sim.views().items()}
        self.violation_count = self._violation_count()
        # The on-demand searches (linearizability): flagged by the checker, never by name.
        self.lin = next((c for c in sim.checkers if c.search), None)
        self._waiting_told: tuple[bool, list[int]] = (False, [])
        self.disk_told = {}
        # Observers that write records (metrics): what of theirs the page has been sent.
        self.writers = [c for c in sim.checkers if c.writes]
        self.written_told = [c.written for c in self.writers]

    def _violation_count(self) -> int:
        return sum(len(c.violations) for c in self.sim.checkers)

    # --- pieces ----------------------------------------------------------------------------------
    def _node(self, v: dict, full: bool, log_window: int) -> dict:
        """A node's summary: the adapter's, plus the kernel's status and the timers it has set
        (name -> deadline ms), which the page offers to fire."""
        out = self.adapter.node(v, full, log_window)
        out["status"] = v["status"]
        out["timers"] = dict(v["timers"]) if v["status"] == "up" else {}
        if "disk" in v:  # with a storage latency: a write in flight (engine/storage.py)
            out["disk"] = v["disk"]
        return out

    def _invariants(self) -> list[dict]:
        out = []
        for c in self.sim.checkers:
            if not c.shown:
                continue
            ok: bool | None = not c.violations
            if c.search and ok and c.result is None:
                ok = None  # the search gave up: unknown
            v = c.violations[0] if c.violations else None
            item = {"name": c.name, "ok": ok, "explains": c.explains,
                    "violation": ({"t": v["t"], "nodes": v["nodes"], "detail": v["detail"]}
                                  if v else None), "count": len(c.violations)}
            if c.search:
                item["search"] = True
            out.append(item)
        return out

    def _net(self) -> dict:
        """The network's view, and the state of every drawn link (the topology's)."""
        net = self.sim.network
        v = net.view()
        v["cut"] = {f"{a}-{b}": net.cut_state(a, b) for a, b in self.sim.topology.links}
        return v

    def _pill(self, mid: int, f: tuple) -> list:
        src, dst, msg, t0, t1 = f
        label, cls = self.adapter.msg_label(msg)
        return [mid, src, dst, t0 / 1000, t1 / 1000, label, cls]

    def _written(self, full: bool) -> Any:
        """The writing observers' records for the page, through the adapter (`series`): all
        they hold in a snapshot (their latest: the state keeps a bounded history), those since
        the last frame otherwise."""
        if not self.writers:
            return None
        recs: list[dict] = []
        for i, c in enumerate(self.writers):
            recs += c.out if full else c.written_since(self.written_told[i])
            self.written_told[i] = c.written
        if not recs and not full:
            return None
        return self.adapter.series(recs, full)

    def _waiting(self) -> tuple[bool, list[int]]:
        sim = self.sim
        return (sim.manual, list(sim.waiting))

    # --- frames ----------------------------------------------------------------------------------
    def queue_hello(self) -> None:
        frame = self._hello()
        # What compare mode can put side by side (the adapter's named config overrides).
        frame["compare_variants"] = self.adapter.compare_variants(self.origin.config)
        if len(self.panes) > 1:
            origin = {k: v for k, v in self.origin.to_dict().items() if k != "actions"}
            frame["compare"] = {"origin": origin,
                                "variants": [[name, over] for name, over in self.variants]}
            # Each world's scenario (its variant applied) and what its adapter adds; the branch's
            # actions are the same in every world.
            frame["worlds"] = [{k: v for k, v in _part(self._hello()).items() if k != "actions"}
                               for _ in self._each(first=1)]
        self._queue(frame)

    def _hello(self) -> dict:
        sc = self.scenario
        sim = self.sim
        lf = self.lessons.get(self.lesson) if self.lesson else None
        topo = sim.topology
        return {
            "type": "hello",
            "session": self.id,
            "secret": self.secret,
            "protocol": sc.protocol,
            "title": self.adapter.title,
            "scenario": self.base.to_dict(),
            # The branch's actions (a page can rebuild a share link from these, `acts` in
            # `events` and the frames' `t`, even after the server has lost the session).
            "actions": list(self.timeline),
            "layout": {"nodes": sim.servers, "clients": list(sim.clients)},
            "topology": {"nodes": [list(n) for n in topo.nodes], "links": [list(x) for x in topo.links]},
            "lesson": ({"name": lf.name, "title": lf.title, "notes": lf.notes, "suggest": lf.suggest}
                       if lf else ({"name": self.lesson, "title": sc.title or self.lesson,
                                    "notes": "", "suggest": ""} if self.lesson else None)),
            # A stepped lesson's steps ({caption, until_ms?, question?}); the page walks them.
            "steps": [st.model_dump(exclude_none=True) for st in self.base.steps],
            "mutations": dict(self.protocol.mutations),
            "active_mutations": list(getattr(sc.config, "mutations", ())),
            "options": dict(self.adapter.options),
            "invariants": [[n, e] for n, e in self.protocol.invariants],
            "extras": self.adapter.hello(sc),
            "end": sc.duration_ms,
            "limits": {"min_speed": self.settings.min_speed, "max_speed": self.settings.max_speed,
                       "max_nodes": self.settings.max_nodes,
                       "frame_interval_ms": self.settings.frame_interval_ms,
                       "quiet_frame_ms": self.settings.frame_interval_ms * self.settings.quiet_frame_every,
                       "log_window": self.settings.log_window},
        }

    def queue_snapshot(self) -> None:
        sim = self.sim
        self.queue_events()  # whatever happened before belongs to the previous picture
        # This snapshot is the whole picture: the state frames still waiting are redundant.
        self.outbox.collapse(self.settings.words_per_frame, backed_up_only=True)
        self._snapshot_pending = True
        frame = self._snapshot()
        if len(self.panes) > 1:
            frame["worlds"] = [_part(self._snapshot()) for _ in self._each(first=1)]
        self._queue(frame)

    def _snapshot(self) -> dict:
        """The focused world's snapshot (what the page is told of it is now all of it)."""
        sim = self.sim
        lw = self.settings.log_window
        nodes = {nid: self._node(v, True, lw) for nid, v in sim.views().items()}
        self.shown = set(sim.flight)
        self._waiting_told = self._waiting()
        series = self._written(True)
        return {
            **({"series": series} if series is not None else {}),
            "type": "snapshot", "t": sim.now_ms, "digest": sim.digest(), "playing": self.playing,
            "speed": self.speed, "horizon": self.horizon, "end": self.scenario.duration_ms,
            "nodes": nodes,
            "flight": [self._pill(mid, f) for mid, f in sorted(sim.flight.items())],
            "manual": sim.manual, "waiting": list(sim.waiting),
            "net": self._net(), "inv": self._invariants(), "actions": len(sim.actions),
            "events": sim.events, "behind": self.behind,
        }

    def queue_events(self, due_wall_ms: float | None = None) -> None:
        """Turn the records since the last frame into an `events` frame (in compare mode, one
        frame for every world's records)."""
        if len(self.panes) == 1:
            frame = self._events(due_wall_ms)
            if frame is None:
                return
            # A tick's frame that says only t and w (and no newer durability to tell: `dur`
            # rides on the next frame sent, app/session/runner.py flush).
            if due_wall_ms is not None and len(frame) == 3 and self.durable_seq <= self.dur_told:
                self.quiet_ticks += 1
                if self.quiet_ticks < self.settings.quiet_frame_every:
                    return
            self.quiet_ticks = 0
            self._queue(frame)
            return
        quiet = due_wall_ms is None and not self.new_acts and not any(
            p.pending_recs for p in self.panes)
        if quiet:
            return
        frame = self._events(due_wall_ms, force=True)
        frame["worlds"] = [_part(self._events(None, force=True)) for _ in self._each(first=1)]
        self._queue(frame)

    def _events(self, due_wall_ms: float | None, force: bool = False) -> dict | None:
        """The focused world's `events` frame, or None when there is nothing to say."""
        recs = self.pending_recs
        if not recs and due_wall_ms is None and not self.new_acts and not force:
            return None
        sim = self.sim
        flight = sim.flight
        adapter = self.adapter
        dirty: set[str] = set()
        sent: dict[int, dict] = {}
        gone: list[list] = []
        drops: list[list] = []
        ended: dict[int, tuple[float, str | None]] = {}  # sent this frame and already gone
        deltas: dict[str, list] = {}
        words: list[list] = []
        net_changed = False
        msg_to = self.msg_to
        for r in recs:
            kind = r["type"]
            if kind == "send":
                mid = r["id"]
                sent[mid] = r
                msg_to[mid] = r["to"]
            elif kind == "deliver":
                mid = r["id"]
                to = msg_to.pop(mid, None)
                if to is not None:
                    dirty.add(to)
                if mid in self.shown:
                    self.shown.discard(mid)
                    gone.append([mid, None, r["t"]])
                elif mid in sent:
                    ended[mid] = (r["t"], None)
            elif kind == "drop":
                mid = r["id"]
                msg_to.pop(mid, None)
                if mid in self.shown:
                    self.shown.discard(mid)
                    gone.append([mid, r["why"], r["t"]])
                elif mid in sent:
                    ended[mid] = (r["t"], r["why"])
                if mid in sent and mid not in flight and mid not in self.shown:
                    s = sent[mid]
                    drops.append([s["from"], s["to"], adapter.msg_label(s["msg"])[0], r["why"]])
            else:
                if kind == "state":
                    dirty.add(r["node"])
                    for key, item in adapter.deltas(r):
                        deltas.setdefault(key, []).append(item)
                elif kind == "fault":
                    if r.get("node") in self.told:
                        dirty.add(r["node"])
                    if r["do"] in ("partition", "cut", "heal", "set_link"):
                        net_changed = True
                text = adapter.describe(r, self.told)
                if text:
                    words.append([r["t"], text])
        self.pending_recs = []
        frame: dict[str, Any] = {"type": "events", "t": sim.now_ms}
        if due_wall_ms is not None:
            frame["w"] = round(due_wall_ms, 1)
        add = []
        for mid in sent:
            f = flight.get(mid)
            if f is not None:
                self.shown.add(mid)
                add.append(self._pill(mid, f))
        if add:
            frame["add"] = add
        if gone:
            frame["del"] = gone
        if drops:
            frame["drops"] = drops[-50:]
        if ended:
            # Messages that lived and ended between two frames (never drawn as pills), for the
            # space-time diagram: [id, from, to, sent, ended, label, class, why | null].
            brief = []
            for mid, (t_end, why) in list(ended.items())[-self.settings.brief_per_frame:]:
                s = sent[mid]
                label, cls = adapter.msg_label(s["msg"])
                brief.append([mid, s["from"], s["to"], s["t"], t_end, label, cls, why])
            frame["brief"] = brief
        if sim.disk is not None:  # a write began or ended: no record says so, the indicator does
            for nid in sim.servers:
                busy = sim.disk_busy(nid)
                if self.disk_told.get(nid, False) != busy:
                    self.disk_told[nid] = busy
                    dirty.add(nid)
        if dirty:
            servers = sim.servers
            frame["nodes"] = {n: self._node(sim.view_of(n), False, 0) for n in sorted(dirty) if n in servers}
        if deltas:
            frame["deltas"] = deltas
        if words:
            cap = self.settings.words_per_frame
            if len(words) > cap:
                skipped = len(words) - cap
                words = words[-cap:]
                words.insert(0, [words[0][0], f"\u2026 {skipped} more events (slow down to read them)"])
            frame["ev"] = words
        if net_changed:
            frame["net"] = self._net()
        if self.writers:
            series = self._written(False)
            if series is not None:
                frame["series"] = series
        if self.new_acts:
            frame["acts"] = self.new_acts
            self.new_acts = []
        if sim.manual or sim.waiting or self._waiting_told[0] or self._waiting_told[1]:
            w = self._waiting()
            if w != self._waiting_told:  # manual delivery: which messages wait on their links
                self._waiting_told = w
                frame["manual"], frame["waiting"] = w
        # Checkers only find violations in records they observe: count them only after records.
        vc = self._violation_count() if recs else self.violation_count
        lin_state = None if self.lin is None else self.lin.result
        if vc != self.violation_count or lin_state != self._lin_told:
            self.violation_count = vc
            self._lin_told = lin_state
            frame["inv"] = self._invariants()
        if self.behind:
            frame["behind"] = True
        return frame
