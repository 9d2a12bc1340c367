"""Classroom rooms: a presenter's session followed, frame for frame, by an audience on any worker.

    RoomService   one per worker (`app.state.rooms`): opens rooms, lets viewers join, keeps the
                  sessions' recipes in the broker, rebuilds a session from its recipe
    Relay         hooked on a session (`Session.relay`, called by the runner before each frame
                  goes out, with the bytes it was serialised to once)
    HostedRoom    a room whose presenter's session lives on this worker
    Audience      this worker's viewers of one room (wherever its presenter is)
    Viewer        one viewer's connection: its own bounded outbox

What goes through the broker (app/broker/):

    pg:room:CODE          key: {"session", "worker", "protocol"}: the room exists, and who hosts it
    pg:room:CODE:hello    key: the room's latest `hello` (without the session id and secret)
    pg:room:CODE:out      channel: b"F" + a frame's body (serialised once by the presenter's
                          session; published in order from a background task, a pipelined batch
                          per round trip), or b"C" + JSON for the viewers' workers (grants, closing)
    pg:room:CODE:in       channel: JSON from the viewers' workers (counts, snapshot requests,
                          raised hands, a granted viewer's input)
    pg:recipe:SID         key: the session's recipe (scenario, the branch's actions, the moment,
                          speed, lesson, the secret's hash, its room): a shared broker only;
                          the recipes of one loop turn go in one pipelined batch (KeyWriter)
    pg:rooms-of:ADDR      key: the codes of the rooms a client address opened (a shared broker:
                          the per-address cap counts every worker's rooms, less the closed ones)

A viewer's page is read-only: its actions and controls do nothing to the room (the first one is
answered by one `error` saying so). A viewer given control by the presenter gets a secret of its
own (held by its worker, checked by the presenter's worker on every input it forwards), revoked
when the presenter takes control back. A viewer whose outbox holds more than
`room_viewer_outbox_bytes` is dropped to the latest snapshot: its waiting frames are discarded
and it gets the next snapshot (the presenter's session is asked for one); nothing is queued
without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import weakref
from typing import Any

import orjson

from engine.scenario import ScenarioError, parse_scenario

from .broker import Broker, BrokerDown
from .broker.writer import KeyWriter
from .limits import check_replay, check_scenario, quote
from .outbox import Outbox, wire, wire_bytes
from .session import TokenBucket
from .settings import Settings
from .transport import close_or_abort, raw_frames

log = logging.getLogger("playground.rooms")

# Room codes: six characters a class can read off a projector and type without confusing any
# two (no 0/O, 1/I/L); 31^6, about 887 million codes.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LEN = 6

# The frames a room's audience sees (errors, share answers and the like are the presenter's own).
BROADCAST = frozenset(("hello", "snapshot", "events", "progress", "room"))
ROOM_CONTROLS = ("room_open", "room_close", "room_grant", "room_revoke")

# Frames a room's host keeps waiting for a slow broker before it drops them for a snapshot
# (about 6 s of ticks at 20 frames/s).
MAX_PUBLISH_BACKLOG = 128

READ_ONLY = ("room: you are following room {code}: your clicks and controls do nothing to it "
             "(only the presenter's do). Take a copy to try it on your own.")


class RoomError(Exception):
    """A room request was refused; the message (naming the setting or the field) is shown."""


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))


def normalize_code(text: str | None) -> str | None:
    """A typed code, upper-cased, spaces and dashes removed; None when it cannot be a room code."""
    if not isinstance(text, str):
        return None
    code = text.upper().replace("-", "").replace(" ", "")
    if len(code) != CODE_LEN or any(c not in ALPHABET for c in code):
        return None
    return code


def _k_room(code: str) -> str:
    return f"pg:room:{code}"


def _k_hello(code: str) -> str:
    return f"pg:room:{code}:hello"


def _ch_out(code: str) -> str:
    return f"pg:room:{code}:out"


def _ch_in(code: str) -> str:
    return f"pg:room:{code}:in"


def _k_rooms_of(client: str) -> str:
    return f"pg:rooms-of:{client}"


def _k_recipe(sid: str) -> str:
    return f"pg:recipe:{sid}"


def add_acts(actions: list, acts: list) -> None:
    """The branch's actions after an `events` frame's clicks: a click after a rewind forks the
    branch (the future it had is gone), as the page does with them."""
    for a in acts:
        actions[:] = [x for x in actions if x["at"] < a["at"]]
        actions.append(a)


def hello_with_acts(hello: tuple[dict, bytes], acts: list) -> tuple[dict, bytes]:
    """A room's hello brought up to date with clicks made since it was sent, for late joiners
    (so that their "Take a copy" has every click)."""
    frame = dict(hello[0])
    frame["actions"] = list(frame.get("actions", ()))
    add_acts(frame["actions"], acts)
    return frame, orjson.dumps(frame)


def _retrieved(fut: asyncio.Future) -> None:
    """A background write's outcome: a failure is the broker's, which the watchdog reports."""
    if not fut.cancelled():
        fut.exception()


def broker_down_message(why: str | None) -> str:
    return (f"broker: this server lost its broker ({why}); this page keeps working, but rooms "
            "and recovery on another worker are off until it is back")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# How a frame's change to its session's recipe is written (Relay._update).
WAIT, LATER = "wait", "later"


class Relay:
    """What a session's runner calls before each frame goes out (see `RunnerMixin.relay`).

    Keeps the session's recipe up to date from the frames themselves (the same information the
    page rebuilds a share link from: `hello.scenario` and `hello.actions`, each `events.acts`, the
    frames' `t`, and the snapshot's `playing` and `speed`), and writes it to the broker when a
    click or a control changed it. A new world (`hello`) or a change of playing or speed is in
    the broker before the page sees that frame. A click goes out at once and its recipe follows:
    the page keeps the clicks it has seen until a frame's `dur` (the recipe is durable up to that
    `seq`) covers them, and a reattach carries those still pending, which a rebuild applies on top
    of the recipe (`RoomService.rebuild`): a click the page has seen is never lost, and never
    waits for Redis. Then hands the frame to the session's room, if it has one. Never raises."""

    def __init__(self, service: "RoomService", session, recipes: bool):
        self.service = service
        # Weakly: the session holds its relay, and a cycle through it would keep a closed
        # session (its world, checkpoints and simulation) until a full collection, which the GC
        # keeper makes rare for objects older than `gc_freeze_every_s` (app/sessions.py).
        self._session = weakref.ref(session)
        self.room: HostedRoom | None = None
        self.recipe: dict | None = {} if recipes else None
        self.hello: tuple[dict, bytes] | None = None  # the last hello sent (a room opened later needs it)
        self.told_down = False
        # Who writes this recipe: this worker, and this copy of the session (a page that comes
        # back after its session was reaped gets a new copy, on this worker or another).
        self.writer = f"{service.worker}.{secrets.token_hex(4)}"

    @property
    def session(self):
        """The session (None once it is gone: a recipe write can finish after it)."""
        return self._session()

    async def __call__(self, frame: dict, body: bytes) -> None:
        try:
            if frame["type"] == "hello":
                self.hello = (frame, body)
            if self.recipe is not None:
                s = self.session  # (alive: its runner calls)
                seq = s.seq + 1  # this frame's (the runner stamps it after the relay)
                change = self._update(frame)
                if change is not None:
                    self.recipe["seq"] = seq  # the last frame it holds (a rebuild compares the page's)
                if change == WAIT:
                    await self.service.store_recipe(self)
                    self._durable(s, seq)
                elif change == LATER:
                    self._store_later(seq)
            room = self.room
            if room is not None and frame["type"] in BROADCAST:
                await room.publish_frame(frame, body)
        except BrokerDown as e:
            self.broker_down(str(e))
        except Exception:  # pragma: no cover - the relay must never stop the stream
            log.exception("session %s: relay failed", self.session.id)

    def broker_down(self, why: str) -> None:
        if not self.told_down and self.session is not None:
            self.told_down = True
            self.session.queue_error(broker_down_message(why))

    def _update(self, f: dict) -> str | None:
        """Bring the recipe up to date with a frame; whether the frame waits for it (WAIT: a new
        world, or playing / speed changed: the page could not tell a rebuild those), goes at
        once and the recipe follows (LATER: clicks and moments, which the page keeps until the
        recipe holding them is durable and sends back on a reattach), or nothing changed."""
        r = self.recipe
        kind = f["type"]
        if kind == "hello":
            lesson = f.get("lesson") or {}
            r.update(sc=f["scenario"], actions=list(f["actions"]), lesson=lesson.get("name"),
                     t=f["t"])
            return WAIT
        if kind == "events" and f.get("acts"):
            add_acts(r.setdefault("actions", []), f["acts"])
            r["t"] = f["t"]
            return LATER
        if kind == "snapshot":
            if (r.get("playing"), r.get("speed")) != (f["playing"], f["speed"]):
                r["t"], r["playing"], r["speed"] = f["t"], f["playing"], f["speed"]
                return WAIT
            if r.get("t") != f["t"]:
                r["t"] = f["t"]
                return LATER
        return None

    def _store_later(self, seq: int) -> None:
        """The recipe to the broker with the next batch; the frame `seq` does not wait for it."""
        try:
            fut = self.service.recipes.set_nowait(_k_recipe(self.session.id), self.recipe_bytes())
        except BrokerDown as e:
            self.broker_down(str(e))
            return
        fut.add_done_callback(lambda f: self._stored(seq, f))

    def _stored(self, seq: int, fut: asyncio.Future) -> None:
        s = self.session
        if fut.cancelled() or s is None:
            return
        e = fut.exception()
        if e is None:
            self._durable(s, seq)
            return
        if isinstance(e, BrokerDown):
            self.broker_down(str(e))
        else:  # pragma: no cover - the writer only fails with BrokerDown
            log.error("session %s: a recipe write failed: %r", s.id, e)
        s.kick()

    def _durable(self, s, seq: int) -> None:
        """The recipe holds everything up to frame `seq`: the page is told with the next frame."""
        if seq > s.durable_seq:
            s.durable_seq = seq

    def recipe_bytes(self) -> bytes:
        s = self.session
        # The writer first: a reaper deletes the recipe only if it still starts with its own.
        return orjson.dumps({"w": self.writer, **self.recipe, "v": 1,
                             "secret": secret_hash(s.secret), "client": s.client,
                             "room": self.room.code if self.room is not None else None})


class HostedRoom:
    """A room whose presenter's session is on this worker."""

    def __init__(self, service: "RoomService", code: str, session, client: str | None):
        self.service = service
        self.code = code
        self.session = session
        self.client = client
        self.counts: dict[str, tuple[int, float]] = {}  # worker -> (its viewers, when told)
        self.viewers = 0
        self.control: tuple[str, str] | None = None  # (viewer id, its secret)
        self.hands: dict[str, float] = {}  # viewers asking for control -> since when
        self.bucket = TokenBucket(service.settings.ws_rate_per_s, service.settings.ws_burst)
        self._told: tuple | None = None
        self.hello: tuple[dict, bytes] | None = None  # the audience's, kept up to date with clicks
        self._unsub = None
        self._task: asyncio.Task | None = None
        self._out = Outbox()  # frames waiting to be published (a shared broker)
        self._publisher: asyncio.Task | None = None
        self.closed = False

    async def start(self) -> None:
        b = self.service.broker
        await b.set(_k_room(self.code), orjson.dumps({"session": self.session.id,
                                                      "worker": self.service.worker,
                                                      "protocol": self.session.scenario.protocol}),
                    self.service.ttl_s)
        self._unsub = await b.subscribe(_ch_in(self.code), self.on_input)
        self._task = asyncio.ensure_future(self._loop())

    # --- frames out --------------------------------------------------------------------------------
    async def publish_frame(self, frame: dict, body: bytes) -> None:
        b = self.service.broker
        if frame["type"] == "hello":
            # The audience never gets the session's id and secret; it learns which room it is in.
            f = {k: v for k, v in frame.items() if k not in ("session", "secret")}
            f["room"] = {"code": self.code}
            body = orjson.dumps(f)
            self.hello = (f, body)
            # Through the keys' writer, as the clicks' updates below: one order for this key.
            await self.service.recipes.set(_k_hello(self.code), body)
        elif frame["type"] == "events" and frame.get("acts") and self.hello is not None:
            # Late joiners' hello with the click: with the next batch of keys (the presenter's
            # frame does not wait for it; a joiner before it is in gets the click in the frames).
            self.hello = hello_with_acts(self.hello, frame["acts"])
            try:
                fut = self.service.recipes.set_nowait(_k_hello(self.code), self.hello[1])
                fut.add_done_callback(_retrieved)
            except BrokerDown:
                pass  # the watchdog tells the pages; the key is written when the broker is back
        if not b.ok:
            return  # the watchdog tells the pages; waiting on a dead broker would stall the stream
        if not b.shared:
            await b.publish(_ch_out(self.code), b"F" + body)  # in-process: nothing to wait for
            return
        # A networked broker's round trip must not hold up the presenter's runner (its next tick,
        # its own page): frames wait here, in order, and go out in one round trip per batch.
        if len(self._out) >= MAX_PUBLISH_BACKLOG:
            # The broker is this far behind: the state frames waiting (since the last hello) are
            # dropped, their words and clicks kept in one small events frame, as a slow page's
            # outbox does (app/outbox.py; hello, error and every other kind are kept), and the
            # audience gets a fresh snapshot instead (the session queues one; it is published
            # after this frame).
            self._out.collapse(self.service.settings.words_per_frame)
            s = self.session
            if s.job is None and not s._snapshot_pending:
                s.queue_snapshot()
        self._out.push(frame, body)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.ensure_future(self._publish_out())

    async def _publish_out(self) -> None:
        b = self.service.broker
        while self._out and not self.closed:
            batch = [b"F" + body for _, body in self._out.take()]
            try:
                await b.publish_many(_ch_out(self.code), batch)
            except BrokerDown:
                pass  # lost, as pub/sub loses them: the viewers ask for a snapshot when it is back

    def status(self) -> dict:
        return {"type": "room", "code": self.code, "path": f"/room/{self.code}",
                "viewers": self.viewers, "control": self.control[0] if self.control else None,
                "hands": sorted(self.hands, key=self.hands.get),
                "max_viewers": self.service.settings.max_room_viewers}

    def tell(self, force: bool = False) -> None:
        """Queue the room's status for the presenter (and, through the relay, its audience)."""
        st = self.status()
        key = (st["viewers"], st["control"], tuple(st["hands"]))
        if force or key != self._told:
            self._told = key
            self.session._queue(st)
            self.session.kick()

    def _control(self, msg: dict) -> None:
        self.service.spawn(self.service.broker.publish(_ch_out(self.code), b"C" + orjson.dumps(msg)))

    # --- input from the viewers' workers -----------------------------------------------------------
    def on_input(self, data: bytes) -> None:
        try:
            m = orjson.loads(data)
            kind = m["k"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        s = self.session
        if self.closed or s.closed:
            return
        now = time.monotonic()
        if kind == "count":
            self.counts[str(m["w"])] = (int(m["n"]), now)
            self._recount(now)
        elif kind == "resync":
            # The viewers' workers already coalesce their requests (`Audience.resync`); a
            # snapshot still waiting to be sent answers any number of them.
            if s.ws is not None:
                if s.job is None and not s._snapshot_pending:
                    s.queue_snapshot()
                self.tell(force=True)
        elif kind == "hand":
            vid = str(m["v"])[:32]
            if len(self.hands) < 50 and (self.control is None or self.control[0] != vid):
                self.hands.setdefault(vid, now)
                self.tell()
        elif kind == "bye":
            vid = str(m["v"])
            self.hands.pop(vid, None)
            if self.control is not None and self.control[0] == vid:
                self.control = None
            self.tell()
        elif kind == "input":
            c = self.control
            vid, secret = str(m.get("v")), m.get("s")
            if (c is None or c[0] != vid or not isinstance(secret, str)
                    or not hmac.compare_digest(secret.encode(), c[1].encode())):
                self._control({"to": vid, "grant": None})  # its secret is no longer good
                return
            s.handle(m.get("d") or "", self.bucket)

    def _recount(self, now: float) -> None:
        stale = 3 * self.service.settings.room_count_every_s
        for w, (_, at) in list(self.counts.items()):
            if now - at > stale:  # that worker is gone: its viewers with it
                del self.counts[w]
        self.viewers = sum(n for n, _ in self.counts.values())
        self.tell()

    # --- the presenter's room controls -------------------------------------------------------------
    def grant(self, vid: str) -> None:
        if vid not in self.hands and (self.control is None or self.control[0] != vid):
            raise RoomError(f"control.viewer: {quote(vid)} has not asked for control (asking: "
                            f"{', '.join(self.hands) or 'nobody'})")
        if self.control is not None:
            self.revoke()
        secret = secrets.token_urlsafe(18)
        self.control = (vid, secret)
        self.hands.pop(vid, None)
        self._control({"to": vid, "grant": secret})
        self.tell()

    def revoke(self) -> None:
        if self.control is not None:
            self._control({"to": self.control[0], "grant": None})
            self.control = None
        self.tell()

    async def _loop(self) -> None:
        """Refresh the room's key, forget workers that stopped counting, and end the room with its
        session (or stand down when another worker has rebuilt the session and hosts it now)."""
        every = self.service.settings.room_count_every_s
        while not self.closed:
            await asyncio.sleep(every)
            if self.session.closed:
                await self.service.close_room(self)
                return
            b, ttl = self.service.broker, self.service.ttl_s
            try:
                raw = await b.get(_k_room(self.code))
                owner = orjson.loads(raw) if raw else None
                if owner is not None and owner.get("worker") != self.service.worker:
                    await self.service.close_room(self, stand_down=True)
                    return
                if raw is None:  # expired while the broker was away: say it again
                    await b.set(_k_room(self.code), orjson.dumps(
                        {"session": self.session.id, "worker": self.service.worker,
                         "protocol": self.session.scenario.protocol}), ttl)
                else:
                    await b.expire(_k_room(self.code), ttl)
                # A quiet room's late joiners still need its hello.
                if not await b.expire(_k_hello(self.code), ttl) and self.hello is not None:
                    await b.set(_k_hello(self.code), self.hello[1], ttl)
            except BrokerDown:
                pass
            self._recount(time.monotonic())


class Viewer:
    """One viewer's connection: its own outbox (bounded), its own `seq`, one sending task.

    Under uvicorn (`raw`, app/transport.py) a frame is written to the viewer's socket at once,
    from the broker's callback, with no task wake-up and no ASGI send: the shared body, this
    viewer's `seq` and a frame header, one `transport.write`. Only while that socket's buffer is
    over its high-water mark (the page is not reading) do frames wait in the outbox, where
    snapshots collapse them and the byte cap drops the viewer to the latest snapshot, and the
    task writes them once the socket drains. Elsewhere (tests' clients) the task sends each frame
    with `send_text`."""

    def __init__(self, audience: "Audience", ws, client: str | None):
        self.audience = audience
        self.id = secrets.token_hex(3)
        self.ws = ws
        self.raw = raw_frames(ws)
        self.client = client
        self.outbox = Outbox()
        self.seq = 0
        self.synced = False  # has it had a snapshot since its hello (events before one are useless)
        self.secret: str | None = None  # given by the presenter with control
        self.told_readonly = False
        self.dropped = 0  # times it fell behind and was dropped to the latest snapshot
        self.closed = False
        self.bucket = TokenBucket(audience.service.settings.ws_rate_per_s,
                                  audience.service.settings.ws_burst)
        self._wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.sending_since: float | None = None  # while a send waits on the socket

    def stalled(self, now: float, limit_s: float) -> bool:
        return self.sending_since is not None and now - self.sending_since > limit_s

    def push(self, frame: dict, body: bytes) -> None:
        kind = frame["type"]
        box = self.outbox
        st = self.audience.service.settings
        if kind == "hello":
            box.clear()  # a new world: nothing before it matters
            self.synced = False
        elif kind == "snapshot":
            box.collapse(st.words_per_frame, backed_up_only=True)
            self.synced = True
        elif not self.synced and kind in ("events", "progress"):
            return
        raw = self.raw
        if raw is not None and not box and self.sending_since is None and raw.writable.is_set():
            self.seq += 1  # the common case: nothing waiting, the socket takes it now
            raw.write(wire_bytes(body, self.seq))
            return
        box.push(frame, body)
        if box.bytes > st.room_viewer_outbox_bytes:
            # This viewer does not keep up: drop it to the latest snapshot.
            hello = [(f, b) for f, b in box.take() if f["type"] == "hello"][-1:]
            for f, b in hello:
                box.push(f, b)
            self.synced = False
            self.dropped += 1
            self.audience.resync()
        self._send()

    def say(self, frame: dict) -> None:
        """A frame for this viewer alone (serialised here: rare)."""
        frame.setdefault("t", 0)
        self.outbox.append(frame)
        self._send()

    def _send(self) -> None:
        raw = self.raw
        if raw is not None and self.sending_since is None and raw.writable.is_set():
            self._write_raw()
        else:
            self._wake.set()

    def _write_raw(self) -> None:
        raw = self.raw
        for _, body in self.outbox.take():
            self.seq += 1
            if not raw.write(wire_bytes(body, self.seq)):
                return  # closing: the route's loop ends the viewer

    async def run(self) -> None:
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                raw = self.raw
                if raw is not None:
                    if not raw.writable.is_set():  # the page is not reading: wait for it
                        self.sending_since = time.monotonic()
                        await raw.writable.wait()
                        self.sending_since = None
                    self._write_raw()
                    continue
                for _, body in self.outbox.take():
                    self.seq += 1
                    self.sending_since = time.monotonic()
                    await self.ws.send_text(wire(body, self.seq))
                    self.sending_since = None
        except Exception:
            pass  # the socket went away; the route's loop ends the viewer


class Audience:
    """This worker's viewers of one room: one subscription to the room's frames, shared by all."""

    def __init__(self, service: "RoomService", code: str):
        self.service = service
        self.code = code
        self.viewers: dict[str, Viewer] = {}
        self.hello: tuple[dict, bytes] | None = None
        self.status: dict | None = None
        self.reported = 0  # the viewer count this worker last told the host
        self._unsub = None
        self._task: asyncio.Task | None = None
        self._resync_at = 0.0
        self._resync_later: asyncio.TimerHandle | None = None
        self.ready: asyncio.Future | None = None  # `start` done: subscribed, the hello read
        self._count_later: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._unsub = await self.service.broker.subscribe(_ch_out(self.code), self.on_message)
        raw = await self.service.broker.get(_k_hello(self.code))
        if raw and self.hello is None:
            self.hello = (orjson.loads(raw), raw)
        self._task = asyncio.ensure_future(self._loop())

    def known_total(self) -> int:
        """Everyone following, as far as this worker knows: the host's last total, with this
        worker's own viewers counted as they are now rather than as last told."""
        told = self.status["viewers"] if self.status else 0
        return max(0, told - self.reported) + len(self.viewers)

    def on_message(self, data: bytes) -> None:
        kind, body = data[:1], data[1:]
        if kind == b"F":
            frame = orjson.loads(body)  # once per worker, whatever the number of viewers
            if frame["type"] == "hello":
                self.hello = (frame, body)
            elif frame["type"] == "events" and frame.get("acts") and self.hello is not None:
                self.hello = hello_with_acts(self.hello, frame["acts"])
            elif frame["type"] == "room":
                self.status = frame
            for v in list(self.viewers.values()):
                v.push(frame, body)
        elif kind == b"C":
            msg = orjson.loads(body)
            if msg.get("closed"):
                for v in list(self.viewers.values()):
                    v.say({"type": "error", "fatal": True, "room_closed": True,
                           "message": f"room: the presenter closed room {self.code}; take a copy "
                                      "to keep going on your own"})
                if self.service.audiences.get(self.code) is self:
                    del self.service.audiences[self.code]  # a new viewer is told there is no room
                self.service.spawn(self.stop())
                return
            v = self.viewers.get(msg.get("to"))
            if v is not None and "grant" in msg:
                v.secret = msg["grant"]
                v.say({"type": "room", "code": self.code, "you": v.id,
                       "granted": v.secret is not None})

    def resync(self) -> None:
        """Ask the presenter's session for a snapshot. Requests within 0.25 s of the last one
        share the next (one is sent then), so many viewers joining at once cost one."""
        if self._resync_later is not None:
            return
        wait = self._resync_at + 0.25 - time.monotonic()
        if wait > 0:
            self._resync_later = asyncio.get_running_loop().call_later(wait, self._resync_now)
        else:
            self._resync_now()

    def _resync_now(self) -> None:
        self._resync_later = None
        self._resync_at = time.monotonic()
        self.send_in({"k": "resync"})

    def send_in(self, msg: dict) -> None:
        self.service.spawn(self.service.broker.publish(_ch_in(self.code), orjson.dumps(msg)))

    def count(self, now: bool = False) -> None:
        """Tell the host how many follow here: at once, or (joins and leaves) within 0.1 s, one
        message for however many came and went meanwhile."""
        if not now:
            if self._count_later is None:
                self._count_later = asyncio.get_running_loop().call_later(0.1, self.count, True)
            return
        self._count_later = None
        self.reported = len(self.viewers)
        self.send_in({"k": "count", "w": self.service.worker, "n": self.reported})

    async def _loop(self) -> None:
        every = self.service.settings.room_count_every_s
        while True:
            await asyncio.sleep(every)
            if not self.viewers:
                await self.service.end_audience(self)
                return
            self.count(now=True)
            self.close_stalled(time.monotonic())

    def close_stalled(self, now: float) -> list[Viewer]:
        """A viewer whose one send has waited over `send_stall_s` reads nothing: its connection
        is closed (4002), as a session's is; its outbox was bounded all along."""
        limit = self.service.settings.send_stall_s
        gone = [v for v in self.viewers.values() if v.stalled(now, limit)]
        for v in gone:
            v.closed = True
            if v.task is not None:
                v.task.cancel()
            self.service.spawn(close_or_abort(v.ws, 4002, f"too far behind: one frame has waited "
                                                          f"over {limit:g} s to be sent"))
        return gone

    async def stop(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        unsub, self._unsub = self._unsub, None  # (it refers back to this audience)
        if unsub is not None:
            try:
                await unsub()
            except BrokerDown:
                pass


async def _play_when_replayed(s, poll_s: float = 0.05) -> None:
    """A rebuilt session that was playing plays on once its replay has ended (its snapshot, with
    the digest of that moment, has gone out paused first)."""
    while s.job is not None and not s.closed:
        await asyncio.sleep(poll_s)
    while s._snapshot_pending and s.ws is not None and not s.closed:
        await asyncio.sleep(poll_s)
    if not s.closed and not s.playing and s.sim.now_ms < s.scenario.duration_ms:
        s.playing = True
        s._resync_refs()
        s.queue_snapshot()
        s.kick()


class RoomService:
    def __init__(self, settings: Settings, broker: Broker, manager):
        self.settings = settings
        self.broker = broker
        self.manager = manager
        self.worker = secrets.token_hex(4)
        self.hosted: dict[str, HostedRoom] = {}
        self.audiences: dict[str, Audience] = {}
        self.ttl_s = settings.idle_timeout_s + settings.detached_grace_s
        self._tasks: set[asyncio.Task] = set()
        self._joins: dict[str, TokenBucket] = {}  # room joins per client address
        self.recipes = KeyWriter(broker, self.ttl_s)  # the recipes' group commit
        broker.on_health(self._health_changed)
        if manager is not None and broker.shared:
            manager.on_reaped = self.forget_recipe

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        for room in list(self.hosted.values()):
            await self.close_room(room, stand_down=True)
        for a in list(self.audiences.values()):
            await a.stop()
        await self.broker.close()

    def forget_recipe(self, session) -> None:
        """A session this worker reaped (its tab closed past the grace, or idle too long) or
        dropped for a newcomer is gone: its recipe goes from the broker now rather than at the
        end of its TTL (31 minutes: a busy link's closed sessions would pile up in Redis for that
        long), unless another copy of the session has written it since (its page came back and
        a worker, this one or another, rebuilt it: the recipe then begins with that copy's
        `w`). (A write of this copy's still on its way can land after the delete: that recipe
        then waits out its TTL, as before.)"""
        relay = session.relay
        if relay is None or relay.recipe is None:
            return
        mine = b'{"w":' + orjson.dumps(relay.writer) + b","  # how its recipe_bytes begin
        self.spawn(self.broker.delete_if_starts(_k_recipe(session.id), mine))

    def spawn(self, coro) -> None:
        """Run a broker operation in the background (from a callback); failures are health news."""
        async def run():
            try:
                await coro
            except BrokerDown:
                pass
        t = asyncio.ensure_future(run())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _health_changed(self, ok: bool, error: str | None) -> None:
        """Tell every page on this worker that depends on the broker, both ways."""
        if ok:
            msg = "broker: the broker is reachable again; rooms and recovery are back"
        else:
            msg = broker_down_message(error)
        for s in list(self.manager.sessions.values()):
            if s.relay is not None and s.ws is not None:
                s.relay.told_down = not ok
                s.queue_error(msg)
                s.kick()
        for a in self.audiences.values():
            for v in a.viewers.values():
                v.say({"type": "error", "message": msg})
        if ok:
            for a in self.audiences.values():
                a.resync()  # frames published meanwhile were lost: a fresh picture

    # --- sessions ----------------------------------------------------------------------------------
    def track(self, session) -> None:
        """A session this worker runs gets its relay (with a shared broker, its recipe is kept there)."""
        if session.relay is None:
            session.relay = Relay(self, session, recipes=self.broker.shared)

    async def store_recipe(self, relay: Relay) -> None:
        """The session's recipe into the broker, with every other session's written this loop turn
        (one round trip, `KeyWriter`); returns once it is there. BrokerDown when the broker is
        down: the recipe is then written as soon as it is back (never skipped)."""
        await self.recipes.set(_k_recipe(relay.session.id), relay.recipe_bytes())

    async def rebuild(self, sid: str, secret: str, page_t: float | None, client: str | None,
                      pending: list[dict] | None = None, seen: int | None = None):
        """The session `sid` from its recipe (its worker is gone): the same id, secret, branch and
        moment (its replay ends paused there, and one that was playing then plays on).

        The page's part (its attach frame): `seen`, the last frame `seq` it got; `pending`, the
        clicks it saw that no `dur` covered; `page_t`, the moment it showed. When the recipe holds
        no frame the page has not seen (its `seq` is not after `seen`), the pending clicks go on
        top, in order, as the page applied them (those the recipe already holds change nothing),
        at the page's moment. When the recipe is newer than the page (the page missed frames
        Redis had), it is rebuilt as the recipe says. Pending clicks that do not fit the session
        are dropped, and the page told which. None when there is no recipe (or no shared
        broker); RoomError when the secret is not the session's."""
        if not self.broker.shared:
            return None
        raw = await self.recipes.get(_k_recipe(sid))  # batched with the other rebuilds' reads
        if raw is None:
            return None
        r = orjson.loads(raw)
        if not hmac.compare_digest(secret_hash(secret), str(r.get("secret"))):
            raise RoomError("attach.secret: not this session's secret; only the page that opened "
                            "a session may reattach to it")
        st = self.settings
        page_is_current = seen is None or int(r.get("seq") or 0) <= seen
        t = float(r.get("t") or 0.0)
        if page_is_current and page_t is not None:
            # The page's moment: a click or a seek it saw may be later (or earlier) than the
            # recipe's moment, which follows the frames.
            t = min(float(page_t), st.max_replay_ms)
        base = parse_scenario({**r["sc"], "actions": r.get("actions", [])})
        sc, dropped = base, None
        if pending and page_is_current:
            actions = list(r.get("actions", []))
            add_acts(actions, pending)
            t_with = min(max(t, max(a["at"] for a in pending)), st.max_replay_ms)
            try:
                sc = parse_scenario({**r["sc"], "actions": actions})
                check_scenario(sc, st)
                check_replay(sc, t_with, st)
                t = t_with
            except ScenarioError as e:
                sc, dropped = base, f"{len(pending)} click(s) this page kept ({e})"
        s = self.manager.create(sc, r.get("lesson"), r.get("speed"), until_ms=t, playing=False,
                                client=client, sid=sid)
        if dropped:
            s.queue_error(f"attach.pending: {dropped} could not be applied; the session is back as "
                          "the server last saved it")
        s.secret = secret
        self.track(s)
        if r.get("playing"):
            self.spawn(_play_when_replayed(s))
        if r.get("room"):
            await self._host(r["room"], s, client)
        log.info("session %s rebuilt from its recipe at %.3f ms", sid, t)
        return s

    # --- hosting -----------------------------------------------------------------------------------
    def room_of(self, session) -> HostedRoom | None:
        relay = session.relay
        return relay.room if relay is not None else None

    async def open_room(self, session, client: str | None) -> HostedRoom:
        room = self.room_of(session)
        if room is not None:
            room.tell(force=True)
            return room
        st = self.settings
        if not self.broker.ok:
            raise RoomError(f"room: the broker is not reachable ({self.broker.error}); try again "
                            "when it is back")
        mine = {r.code for r in self.hosted.values() if r.client == client and client is not None}
        if self.broker.shared:
            mine |= set(await self._rooms_of(client))  # every worker's, not only this one's
        if len(mine) >= st.max_rooms_per_client:
            raise RoomError(f"room: this address already has {len(mine)} rooms open, the limit per "
                            f"address (PLAYGROUND_MAX_ROOMS_PER_CLIENT = {st.max_rooms_per_client}); "
                            "close one first")
        for _ in range(8):
            code = new_code()
            if code not in self.hosted and await self.broker.get(_k_room(code)) is None:
                break
        else:  # pragma: no cover - 887 million codes
            raise RoomError("room: no free room code; try again")
        room = await self._host(code, session, client)
        if self.broker.shared and client is not None:
            await self.broker.set(_k_rooms_of(client), orjson.dumps(sorted(mine | {code})),
                                  self.ttl_s)
        # Late joiners need the world: the last hello goes to the broker now (the presenter's page
        # keeps its picture), and a snapshot (a replay in progress ends with one) and the status to
        # everyone.
        hello = session.relay.hello
        if hello is not None:
            await room.publish_frame(*hello)
        if session.job is None and not session._snapshot_pending:
            session.queue_snapshot()
        room.tell(force=True)
        return room

    async def _rooms_of(self, client: str | None) -> list[str]:
        """The codes of the rooms `client` (an address) has open on any worker sharing the broker:
        the list its last room opening wrote, less the rooms closed or gone since."""
        if client is None:
            return []
        raw = await self.broker.get(_k_rooms_of(client))
        codes = orjson.loads(raw) if raw else []
        if not codes:
            return []
        alive = await self.broker.get_many([_k_room(c) for c in codes])
        return [c for c, a in zip(codes, alive) if a is not None]

    async def _host(self, code: str, session, client: str | None) -> HostedRoom:
        self.track(session)
        room = HostedRoom(self, code, session, client)
        session.relay.room = room
        self.hosted[code] = room
        await room.start()
        return room

    async def close_room(self, room: HostedRoom, stand_down: bool = False) -> None:
        """End the room (`stand_down`: only stop hosting it here, another worker does now)."""
        if room.closed:
            return
        room.closed = True
        if self.hosted.get(room.code) is room:
            del self.hosted[room.code]
        relay = room.session.relay
        if relay is not None and relay.room is room:
            relay.room = None
        if room._task is not None and room._task is not asyncio.current_task():
            room._task.cancel()
        unsub, room._unsub = room._unsub, None  # (it refers back to the room, which holds its session)
        try:
            if unsub is not None:
                await unsub()
            if not stand_down:
                await self.broker.publish(_ch_out(room.code), b"C" + orjson.dumps({"closed": True}))
                await self.broker.delete(_k_room(room.code))
                await self.broker.delete(_k_hello(room.code))
        except BrokerDown:
            pass

    def intercept(self, session, data: str | bytes) -> bool:
        """A presenter's room control (`room_open`, `room_close`, `room_grant`, `room_revoke`)?
        Handled here (True), or left to the session (False). Errors become `error` frames."""
        probe = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if '"room_' not in probe:
            return False
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not (isinstance(msg, dict) and msg.get("type") == "control"
                and msg.get("do") in ROOM_CONTROLS):
            return False
        self.spawn(self._room_control(session, msg))
        return True

    async def _room_control(self, session, msg: dict) -> None:
        do = msg["do"]
        allowed = {"type", "do", "viewer"} if do == "room_grant" else {"type", "do"}
        try:
            extra = sorted(set(msg) - allowed)
            if extra:
                raise RoomError(f"control.{quote(extra[0], 40)}: unknown field")
            room = self.room_of(session)
            if do == "room_open":
                await self.open_room(session, session.client)
            elif room is None:
                raise RoomError(f"control.{do}: this session has no room open (send room_open first)")
            elif do == "room_close":
                await self.close_room(room)
                session._queue({"type": "room", "code": None, "closed": True})
            elif do == "room_grant":
                vid = msg.get("viewer")
                if not isinstance(vid, str):
                    raise RoomError("control.viewer: the id of a viewer who asked for control")
                room.grant(vid)
            else:
                room.revoke()
        except (RoomError, BrokerDown) as e:
            session.queue_error(str(e))
        except ScenarioError as e:  # pragma: no cover - queue_hello never fails on a running world
            session.queue_error(str(e))
        session.kick()

    # --- following ---------------------------------------------------------------------------------
    async def join(self, code: str, ws, client: str | None) -> Viewer:
        st = self.settings
        if client is not None:
            # Joins count like new sessions (one address cannot try codes in bulk).
            if len(self._joins) > 10_000:
                for addr, b in list(self._joins.items()):
                    b.take(0)
                    if b.tokens >= b.burst:
                        del self._joins[addr]
            bucket = self._joins.get(client)
            if bucket is None:
                bucket = self._joins[client] = TokenBucket(st.new_sessions_per_client_per_s,
                                                           st.new_sessions_per_client_burst)
            if not bucket.take():
                raise RoomError(f"room: this address joined more than "
                                f"{st.new_sessions_per_client_burst} rooms at once "
                                f"(PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST, then "
                                f"{st.new_sessions_per_client_per_s:g} a second); wait a moment")
        a = self.audiences.get(code)
        # A room this worker already follows exists (its closing would have ended the audience):
        # only the first viewer on a worker asks the broker.
        if a is None or a.ready is None or not a.ready.done() or a.ready.exception() is not None:
            if await self.broker.get(_k_room(code)) is None:
                raise LookupError(code)
            a = self.audiences.get(code)
        if a is None:
            a = self.audiences[code] = Audience(self, code)
            a.ready = asyncio.ensure_future(a.start())
        try:
            await asyncio.shield(a.ready)  # viewers joining together wait for one subscription
        except BaseException:
            if self.audiences.get(code) is a and not a.viewers:
                del self.audiences[code]
            raise
        cap = self.settings.max_room_viewers
        if a.known_total() >= cap:
            raise RoomError(f"room: room {code} has {a.known_total()} people following, the limit "
                            f"(PLAYGROUND_MAX_ROOM_VIEWERS = {cap}); ask the presenter for a share "
                            "link instead")
        v = Viewer(a, ws, client)
        a.viewers[v.id] = v
        if a.hello is not None:
            v.push(*a.hello)
        v.say({"type": "room", "code": code, "you": v.id, "granted": False,
               **({k: a.status[k] for k in ("viewers", "control", "hands")} if a.status else {})})
        v.task = asyncio.ensure_future(v.run())
        a.count()
        a.resync()
        return v

    def viewer_input(self, v: Viewer, data: str | bytes) -> None:
        """A viewer's frame: read-only unless the presenter gave it control."""
        a = v.audience
        if not v.bucket.take(1):
            return
        try:
            msg = orjson.loads(data) if len(data) <= self.settings.max_frame_bytes else None
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            v.say({"type": "error", "message": "frame: not a JSON object (or too large)"})
            return
        do = msg.get("do") if msg.get("type") == "control" else None
        if do == "snapshot":
            a.resync()
            return
        if do == "room_hand":
            a.send_in({"k": "hand", "v": v.id})
            return
        if v.secret is not None and do not in ROOM_CONTROLS:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            a.send_in({"k": "input", "v": v.id, "s": v.secret, "d": text})
            return
        if not v.told_readonly:
            v.told_readonly = True
            v.say({"type": "error", "readonly": True, "message": READ_ONLY.format(code=a.code)})

    async def leave(self, v: Viewer) -> None:
        v.closed = True
        v._wake.set()
        if v.task is not None and not v.task.done():
            v.task.cancel()  # it may wait on a socket that never drains (a peer reading nothing)
        if v.sending_since is not None:
            # One send is stuck: a closed page's socket whose buffer never empties would be kept
            # open by the server's graceful close; abort it instead (close_or_abort).
            self.spawn(close_or_abort(v.ws, 4002, "gone"))
        a = v.audience
        a.viewers.pop(v.id, None)
        a.send_in({"k": "bye", "v": v.id})
        a.count()

    async def end_audience(self, a: Audience) -> None:
        if self.audiences.get(a.code) is a and not a.viewers:
            del self.audiences[a.code]
            await a.stop()

    def local_viewers(self) -> int:
        return sum(len(a.viewers) for a in self.audiences.values())


__all__ = ["ALPHABET", "Audience", "HostedRoom", "Relay", "RoomError", "RoomService", "Viewer",
           "new_code", "normalize_code"]
