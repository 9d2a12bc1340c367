"""An application process using Chubby: the client library's session, and a lock loop as its
behaviour. Burrows, OSDI 2006; sections cited per rule.

Session (§2.8):
- The process finds the master by asking replicas (a non-master answers with a Redirect naming the
  master it follows, §2.1) and opens a session through it.
- It keeps one KeepAlive at the master at all times: "The client initiates a new KeepAlive
  immediately after receiving the previous reply". The reply carries the master's new lease
  timeout; the client's *local lease* ends a margin before it ("a conservative approximation of
  the master's lease timeout").
- When its local lease runs out, the session is in *jeopardy*: the process stops issuing calls
  (it "blocks"), and looks for a master, trying each replica in turn. A KeepAlive exchanged within
  the *grace period* (§2.8: 45 s by default) saves the session (`reconnect`); a new master's first
  reply carries its new epoch (§2.12), and the calls in flight are sent again. If the grace period
  ends first (`grace_end`), the process takes the session as lost, and with it its lock; it opens
  a new one. A master may say sooner that the session expired (`expire`).

Locks (§2.1, §2.4): Acquire blocks at the master until the lock is granted; the reply carries the
lock's generation number, and the process hands the storage service a *sequencer* (lock name,
mode, generation) with each write. With `auto`, it loops: acquire, write, hold `hold_ms`, release,
think up to `think_ms_max`. A paused process keeps believing it holds the lock: the sequencer is
what stops its stale write.

Session ids are chosen by the process (`c1.3`: its third session); the count is on stable storage,
so a restarted process never reuses one.
"""

from __future__ import annotations

from ...node import Node
from .config import LOCK

NONE, OPENING, SAFE, JEOPARDY = "none", "opening", "safe", "jeopardy"
IDLE, ACQUIRING, HELD, RELEASING = "idle", "acquiring", "held", "releasing"
MODE = "exclusive"


class ChubbyClient(Node):
    kind = "client"

    def __init__(self, nid, topology, config, rng, persistent=None):
        super().__init__(nid, topology.of_kind("server"), config, rng)
        self.servers = topology.of_kind("server")
        storage = topology.of_kind("storage")
        self.storage = storage[0] if storage else None
        self.margin_us = config.local_margin_us()
        self.grace_us = int(config.grace_period_ms * 1000)
        self.retry_us = int(config.retry_ms * 1000)
        self.opened = persistent or 0  # sessions this process has opened (stable storage)
        self.session: str | None = None
        self.opening: str | None = None
        self.state = NONE
        self.epoch = 0
        self.master: str | None = None  # the replica it talks to
        self.local_end_us = 0
        self.grace_end_us = 0
        self.req = 0
        self.pending: tuple[int, str] | None = None  # (req, "Acquire" | "Release")
        self.want = False
        self.lock_phase = IDLE
        self.generation: int | None = None
        self.writes = 0
        self.hold_due = False  # the hold ended while the session was in jeopardy
        self.close_due = False  # asked to close the session, not yet sent
        self._told = None

    def persistent_state(self):
        return self.opened

    # --- what the outside sees --------------------------------------------------------------------
    def role(self) -> str:
        if self.lock_phase == HELD:
            return "holder"
        return "waiter" if self.lock_phase != IDLE else "idle"

    def connected_to(self) -> str | None:
        return self.master if self.state == SAFE else None

    def sequencer(self) -> list | None:
        """§2.4: "an opaque byte-string that describes the state of the lock immediately after
        acquisition": the lock's name, the mode it was acquired in, its generation number."""
        return [LOCK, MODE, self.generation] if self.generation is not None else None

    def take_state(self):
        told = (self.role(), self.connected_to(), self.session, self.lock_phase == HELD,
                self.generation, self.state, self.epoch)
        if told == self._told:
            return None
        self._told = told
        return {"role": told[0], "connected_to": told[1], "session": told[2],
                "holds_lock": told[3], "token": told[4], "session_state": told[5],
                "epoch": told[6]}

    def down_state(self):
        self._told = None
        return {"role": "down", "connected_to": None, "session": None, "holds_lock": False,
                "token": None, "session_state": NONE, "epoch": self.epoch}

    def view(self, now_us):
        return {"role": self.role(), "connected_to": self.connected_to(), "session": self.session,
                "session_state": self.state, "epoch": self.epoch, "master": self.master,
                "local_lease_end_ms": self.local_end_us / 1000 if self.session else None,
                "grace_end_ms": self.grace_end_us / 1000 if self.state == JEOPARDY else None,
                "lock": LOCK, "lock_phase": self.lock_phase, "token": self.generation,
                "sequencer": self.sequencer(), "want": self.want, "writes": self.writes}

    def digest_state(self):
        return [self.view(0), self.opened, self.opening, self.local_end_us, self.grace_end_us,
                self.req, self.pending, self.hold_due, self.close_due]

    def session_record(self, event: str, session: str | None = None) -> None:
        self.records.append({"type": "session", "session": session or self.session,
                             "client": self.id, "event": event, "server": self.master})

    # --- finding the master, opening a session -------------------------------------------------------
    def on_start(self, ctx):
        if self.config.auto:
            self.want = True
        self.master = self.rng.choice(self.servers)
        self.open_session(ctx)

    def open_session(self, ctx) -> None:
        self.opened += 1
        self.opening = f"{self.id}.{self.opened}"
        self.state = OPENING
        self.send_open(ctx)
        ctx.set_timer("retry", self.retry_us)

    def send_open(self, ctx) -> None:
        self.req += 1
        ctx.send(self.master, {"kind": "OpenSession", "session": self.opening, "req": self.req})

    def send_keepalive(self, ctx) -> None:
        ctx.send(self.master, {"kind": "KeepAlive", "session": self.session, "epoch": self.epoch})

    def next_replica(self) -> str:
        i = self.servers.index(self.master) if self.master in self.servers else -1
        return self.servers[(i + 1) % len(self.servers)]

    def hunt(self, ctx) -> None:
        """Opening, or in jeopardy: ask the current replica; the retry timer moves on."""
        if self.state == OPENING:
            self.send_open(ctx)
        elif self.state == JEOPARDY:
            self.send_keepalive(ctx)
        else:
            return
        ctx.set_timer("retry", self.retry_us)

    def on_timer(self, ctx, name):
        if name == "retry":
            if self.state in (OPENING, JEOPARDY):
                self.master = self.next_replica()
                self.hunt(ctx)
        elif name == "lease":
            self.enter_jeopardy(ctx)
        elif name == "grace":
            if self.state == JEOPARDY:
                self.session_record("grace_end")
                self.lose_session(ctx)
        elif name == "think":
            self.want = True
            if self.state == NONE:
                self.open_session(ctx)
            self.step(ctx)
        elif name == "hold":
            if self.lock_phase == HELD:
                self.hold_due = True
                self.step(ctx)

    # --- the session (§2.8) ---------------------------------------------------------------------------
    def set_local_lease(self, ctx, lease_until_ms: float) -> bool:
        """The local lease ends a margin before the master's timeout; False if that is past."""
        end = round(lease_until_ms * 1000) - self.margin_us
        if end <= ctx.now_us:
            return False
        self.local_end_us = end
        ctx.set_timer("lease", end - ctx.now_us)
        return True

    def enter_jeopardy(self, ctx) -> None:
        """§2.8: the local lease ran out: the session is in jeopardy; the grace period starts."""
        if self.state != SAFE:
            return
        self.state = JEOPARDY
        self.session_record("jeopardy")
        self.grace_end_us = ctx.now_us + self.grace_us
        ctx.set_timer("grace", self.grace_us)
        self.hunt(ctx)

    def lose_session(self, ctx) -> None:
        """The session is gone (expired at the master, or the grace period ended): its lock
        with it. A new session is opened."""
        self.session = None
        self.state = NONE
        self.pending = None
        ctx.cancel_timer("lease")
        ctx.cancel_timer("grace")
        if self.lock_phase == RELEASING or self.hold_due:
            self.released(ctx)
        elif self.lock_phase != IDLE:
            self.lock_phase = IDLE
            self.generation = None
        if self.close_due:  # it was to be closed anyway
            self.close_due = False
            return
        self.open_session(ctx)

    def on_message(self, ctx, src, m):
        k = m["kind"]
        if k == "WriteReply":
            if self.config.auto and self.lock_phase == HELD:
                ctx.set_timer("hold", int(self.config.hold_ms * 1000))
            return
        if k == "Redirect":
            self.redirected(ctx, src, m["master"])
        elif k == "SessionOpened":
            self.opened_session(ctx, src, m)
        elif k == "KeepAliveReply":
            self.kept_alive(ctx, src, m)
        elif k == "SessionExpired":
            if m["session"] != self.session:
                return
            if self.pending is not None and self.pending[1] == "CloseSession":
                self.closed(ctx)  # the master ended it on our asking
                return
            self.session_record("expire")
            self.lose_session(ctx)
        elif k == "Reply":
            self.replied(ctx, m)
        elif k == "SessionClosed":
            if m["session"] == self.session and self.pending and self.pending[1] == "CloseSession":
                self.closed(ctx)

    def redirected(self, ctx, src: str, hint: str | None) -> None:
        """§2.1: a replica named the master it follows: go there at once (with a KeepAlive if the
        session is open: a new master answers it at once with its epoch)."""
        if hint is None or hint == src or src != self.master:
            return
        self.master = hint
        if self.state == OPENING:
            self.send_open(ctx)
        elif self.session is not None:
            self.send_keepalive(ctx)

    def opened_session(self, ctx, src: str, m: dict) -> None:
        if self.state != OPENING or m["session"] != self.opening:
            return
        self.master = src
        self.session, self.opening = m["session"], None
        self.epoch = m["epoch"]
        ctx.cancel_timer("retry")
        self.state = SAFE
        self.session_record("open")
        if not self.set_local_lease(ctx, m["lease_until_ms"]):
            self.enter_jeopardy(ctx)
            return
        self.send_keepalive(ctx)
        self.step(ctx)

    def kept_alive(self, ctx, src: str, m: dict) -> None:
        """§2.8: a KeepAlive came back: the lease is extended; send the next one at once. Out of
        jeopardy, or from a new master (§2.12's fail-over), calls in flight are sent again."""
        if m["session"] != self.session or self.session is None:
            return
        self.master = src
        failover = m["epoch"] != self.epoch
        self.epoch = m["epoch"]
        if not self.set_local_lease(ctx, m["lease_until_ms"]):
            return  # an old reply (the process was paused): still in jeopardy, or soon
        if self.state == JEOPARDY or failover:
            if self.state == JEOPARDY:
                ctx.cancel_timer("grace")
                ctx.cancel_timer("retry")
                self.state = SAFE
            self.session_record("reconnect")
            if self.pending is not None:
                self.send_call(ctx)
        self.send_keepalive(ctx)
        self.step(ctx)

    # --- the lock (§2.1, §2.4) ----------------------------------------------------------------------
    def step(self, ctx) -> None:
        """The next call, when the session is safe and none is outstanding."""
        if self.state != SAFE or self.pending is not None:
            return
        if self.close_due:
            self.close_due = False
            self.call(ctx, "CloseSession")
            return
        if self.lock_phase == HELD and self.hold_due:
            self.hold_due = False
            self.lock_phase = RELEASING
        if self.lock_phase == IDLE and self.want:
            self.lock_phase = ACQUIRING
            self.call(ctx, "Acquire")
        elif self.lock_phase == ACQUIRING:
            self.call(ctx, "Acquire")
        elif self.lock_phase == RELEASING:
            self.call(ctx, "Release")

    def call(self, ctx, kind: str) -> None:
        self.req += 1
        self.pending = (self.req, kind)
        self.send_call(ctx)

    def send_call(self, ctx) -> None:
        req, kind = self.pending
        ctx.send(self.master, {"kind": kind, "session": self.session, "epoch": self.epoch,
                               "lock": LOCK, "req": req})

    def replied(self, ctx, m: dict) -> None:
        if self.pending is None or m["req"] != self.pending[0]:
            return
        if not m["ok"]:
            return  # an older epoch: sent again once a KeepAlive brings the new one
        kind = self.pending[1]
        self.pending = None
        if kind == "Acquire":
            self.lock_phase = HELD
            self.generation = m["generation"]
            if self.config.auto and not self.hold_due:
                self.write(ctx, f"{self.id}:{self.writes + 1}")
        else:
            self.released(ctx)
            return
        self.step(ctx)

    def closed(self, ctx) -> None:
        """§2.8: the session is closed; whatever it held is released. The process opens a new
        session when it wants the lock again (auto: after thinking)."""
        self.session_record("close")
        self.session = None
        self.state = NONE
        self.pending = None
        for t in ("lease", "grace", "hold"):
            ctx.cancel_timer(t)
        self.released(ctx)

    def released(self, ctx) -> None:
        self.lock_phase = IDLE
        self.generation = None
        self.want = False
        self.hold_due = False
        if self.config.auto:
            ctx.set_timer("think", int(self.rng.random() * self.config.think_ms_max * 1000) + 1)

    def write(self, ctx, value: str) -> None:
        """Write to the storage service with the sequencer (whatever this process believes it
        holds: a paused holder still believes it)."""
        if self.storage is None:
            return
        self.writes += 1
        ctx.send(self.storage, {"kind": "Write", "token": self.generation, "value": value,
                                "req": self.writes, "sequencer": self.sequencer()})

    # --- the user's actions -------------------------------------------------------------------------
    def on_command(self, ctx, command):
        do = command["do"]
        if do == "acquire":
            self.want = True
            if self.state == NONE:
                self.open_session(ctx)
            self.step(ctx)
        elif do == "release":
            self.want = False
            ctx.cancel_timer("think")
            if self.lock_phase == ACQUIRING and self.pending is None:
                self.lock_phase = IDLE  # not asked yet (blocked in jeopardy)
            elif self.lock_phase in (ACQUIRING, HELD):
                self.hold_due = True  # released as soon as it is held
                self.step(ctx)
        elif do == "write":
            self.write(ctx, command.get("value") or f"{self.id}:{self.writes + 1}")
        elif do == "close":
            if self.session is not None:
                self.close_due = True
                self.step(ctx)
