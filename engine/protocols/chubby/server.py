"""A Chubby replica: Multi-Paxos (engine/protocols/paxos/multi.py) with a master lease, and the
master's sessions, KeepAlives and lock queue on top. Burrows, "The Chubby lock service for
loosely-coupled distributed systems" (OSDI 2006); sections cited per rule.

Composition: `ChubbyServer` is a `MultiPaxosNode`. Paxos elects the master and replicates the
database (db.py) slot by slot; this class adds only what Chubby adds:

- The master lease (§2.1: "the replicas promise not to elect a different master for an interval
  of a few seconds known as the master lease. The master lease is periodically renewed by the
  replicas provided the master continues to win a majority of the vote"). Every heartbeat carries
  the time it was sent; a replica that follows it promises, from the moment it hears it, not to
  answer another node's Prepare for `master_lease_ms`, and says so (LeaseAck). The master holds
  its lease until a majority's acknowledged heartbeat time plus the lease (counted from sending,
  so it ends no later than any promise it rests on), and steps down when it runs out. A restarted
  replica has forgotten its promises: it answers no Prepare for one lease after restarting.
- Mastership (§2.12): a new Paxos leader first gets its own "epoch" command chosen ("it first
  picks a new client epoch number"); it serves ("master" in the trace) once that is applied and its
  lease holds. Calls carrying an older epoch are refused; a KeepAlive with an older epoch is the
  client resuming its session with the new master, answered at once with the new epoch.
- Sessions (§2.8): a session's lease is the master's (volatile); a KeepAlive is held "until the
  client's previous lease interval is close to expiring", then answered with the lease extended by
  `session_lease_ms`. A session whose lease runs out is expired through the log (the `expire`
  command), freeing its locks with lock-delay (§2.4). A new master gives every session of the
  database a fresh full lease from the moment it starts to serve: at least what its predecessor
  may have granted, since that one's master lease ended before this one's began (§2.12: "the
  master ... conservatively assumes ... the maximum that the previous master may have been
  using").
- Locks (§2.1, §2.4): acquire is blocking; the master queues the waiters (volatile: after a
  failover the clients ask again) and proposes an `acquire` for the first one when the lock is
  free and its lock-delay is over.

Non-master replicas answer client calls with a Redirect naming the master they follow (§2.1:
"Non-master replicas respond ... by returning the identity of the master").
"""

from __future__ import annotations

from ...node import Context
from ...quorum import committed_index, majority
from ..paxos.ballot import as_ballot, as_json, at_least
from ..paxos.base import LEADING
from ..paxos.multi import MultiPaxosNode
from .config import ChubbyConfig
from .db import ChubbyDB

MASTER, REPLICA = "master", "replica"


class ChubbyServer(MultiPaxosNode):
    kind = "server"
    handlers = {**{k: v for k, v in MultiPaxosNode.handlers.items() if k != "ClientRequest"},
                "LeaseAck": "handle_lease_ack", "OpenSession": "handle_open",
                "KeepAlive": "handle_keepalive", "Acquire": "handle_acquire",
                "Release": "handle_release", "CloseSession": "handle_close"}

    def __init__(self, nid, topology, config: ChubbyConfig, rng, persistent=None):
        super().__init__(nid, topology.neighbours(nid), config.paxos(), rng, persistent)
        self.cell = config
        self.db = ChubbyDB()
        self.master_lease_us = int(config.master_lease_ms * 1000)
        self.session_lease_us = config.session_lease_us()
        self.early_us = config.keepalive_early_us()
        self.lock_delay_ms = 0.0 if config.has("no_lock_delay") else config.lock_delay_ms
        self.restarted = persistent is not None
        # The replica's lease promise (volatile): no Prepare but `lease_to`'s until then.
        self.lease_to: str | None = None
        self.lease_until_us = 0
        # The master (volatile; cleared on stepping down).
        self.serving = False
        self.master_epoch = 0
        self.established = False  # its own epoch command is applied
        self.lease_acks: dict[str, int] = {}  # server -> newest heartbeat time it acknowledged
        self.lease_end_us = 0
        self.session_end: dict[str, int] = {}  # session -> the master's lease timeout (µs)
        self.held: dict[str, str] = {}  # session -> client whose KeepAlive is held
        self.waiters: dict[str, list[tuple[str, str, int]]] = {}  # lock -> [(session, client, req)]
        self.granting: set[str] = set()  # locks with an acquire proposed and not yet applied
        self.expiring: set[str] = set()
        self._told_chubby = None

    # --- inputs: the master's lease is checked before anything else ----------------------------
    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        if self.restarted:
            self.lease_until_us = ctx.now_us + self.master_lease_us

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        self.check_lease(ctx)
        super().on_message(ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        self.check_lease(ctx)
        super().on_timer(ctx, name)

    def on_command(self, ctx: Context, command: dict) -> None:
        self.check_lease(ctx)
        super().on_command(ctx, command)

    def check_lease(self, ctx: Context) -> None:
        """§2.1: a master whose lease ran out is master no more (it steps down; a new election,
        which may pick it again, gives a new epoch)."""
        if self.phase == LEADING and self.lease_end_us and ctx.now_us >= self.lease_end_us:
            self.become_follower(ctx, None)

    def tick(self, ctx: Context, name: str) -> None:
        if name == "election" and self.phase != LEADING and self.under_lease(ctx, self.id):
            self.reset_election_timer(ctx)  # promised not to elect anyone else yet (§2.1)
        elif name == "leases":
            self.tend_sessions(ctx)
        elif name != "master_lease":  # that one only wakes check_lease
            super().tick(ctx, name)

    def under_lease(self, ctx: Context, candidate: str) -> bool:
        return ctx.now_us < self.lease_until_us and candidate != self.lease_to

    # --- the master lease (§2.1) ----------------------------------------------------------------
    def handle_prepare(self, ctx: Context, src: str, m: dict) -> None:
        """§2.1: while its lease promise holds, a replica does not help elect another master: a
        Prepare from anyone but the lease holder is refused with a Nack saying how long the lease
        has to run (the candidate waits that long before trying again)."""
        if self.under_lease(ctx, as_ballot(m["ballot"])[1]):
            self.send(ctx, src, {"kind": "Nack", "ballot": m["ballot"], "slot": m["slot"],
                                 "promised": as_json(self.promised),
                                 "lease_ms": (self.lease_until_us - ctx.now_us) / 1000})
            return
        super().handle_prepare(ctx, src, m)

    def handle_nack(self, ctx: Context, src: str, m: dict) -> None:
        """Multi-Paxos: a higher promise somewhere makes a proposer step aside. Refused for a
        lease, a candidate stays quiet until the lease has run out. A master deposed by a higher
        promise (a candidate's that failed: the lease kept the others from joining it) stands
        again at once, with a ballot above it, while the replicas' lease promise is still its."""
        leading = self.phase == LEADING
        super().handle_nack(ctx, src, m)
        if "lease_ms" in m and self.phase != LEADING:
            delay = (int(m["lease_ms"] * 1000) + self.et_min_us
                     + int(self.rng.random() * (self.et_max_us - self.et_min_us)))
            self.election_deadline_us = ctx.now_us + delay
            ctx.set_timer("election", delay)
        elif leading and self.phase != LEADING and not self.under_lease(ctx, self.id):
            ctx.cancel_timer("election")
            self.become_preparing(ctx)

    def heartbeat_message(self, ctx: Context) -> dict:
        """The heartbeat carries when it was sent; the master counts its own promise then."""
        hb = super().heartbeat_message(ctx)
        hb["sent_us"] = ctx.now_us
        self.grant_lease(ctx, self.id)
        self.lease_acks[self.id] = ctx.now_us
        self.renew_lease(ctx)
        return hb

    def grant_lease(self, ctx: Context, master: str) -> None:
        self.lease_to = master
        self.lease_until_us = ctx.now_us + self.master_lease_us

    def handle_heartbeat(self, ctx: Context, src: str, m: dict) -> None:
        """Multi-Paxos's heartbeat (follow the leader, learn what it chose); a replica that
        follows it renews the master's lease (§2.1) and acknowledges."""
        super().handle_heartbeat(ctx, src, m)
        b = as_ballot(m["ballot"])
        if at_least(b, self.promised) and "sent_us" in m:
            self.grant_lease(ctx, src)
            ctx.send(src, {"kind": "LeaseAck", "ballot": m["ballot"], "sent_us": m["sent_us"]})

    def handle_lease_ack(self, ctx: Context, src: str, m: dict) -> None:
        if self.phase != LEADING or as_ballot(m["ballot"]) != self.ballot:
            return
        if m["sent_us"] > self.lease_acks.get(src, -1):
            self.lease_acks[src] = m["sent_us"]
            self.renew_lease(ctx)

    def renew_lease(self, ctx: Context) -> None:
        """The lease runs from the newest heartbeat a majority acknowledged (etcd's
        CommittedIndex over send times)."""
        start = committed_index(self.lease_acks.values(), majority(len(self.servers)))
        if not start or start + self.master_lease_us <= self.lease_end_us:
            return
        self.lease_end_us = start + self.master_lease_us
        ctx.set_timer("master_lease", max(1, self.lease_end_us - ctx.now_us))
        self.maybe_serve(ctx)

    # --- mastership (§2.12) ---------------------------------------------------------------------
    def become_leader(self, ctx: Context) -> None:
        """Multi-Paxos leadership (phase 1 won, reported values re-proposed), then §2.12 step 1:
        pick a new epoch, through the log."""
        self.lease_acks = {}
        self.lease_end_us = 0
        super().become_leader(ctx)
        self.propose_cmd(ctx, {"op": "epoch", "node": self.id, "ballot": as_json(self.ballot)})

    def maybe_serve(self, ctx: Context) -> None:
        """Serve once the epoch is ours and the lease holds; every session of the database gets a
        fresh lease from now (§2.12: leases extended to the most the predecessor may have used)."""
        if self.serving or not self.established or ctx.now_us >= self.lease_end_us:
            return
        self.serving = True
        self.master_epoch = self.db.epoch
        end = ctx.now_us + self.session_lease_us
        self.session_end = {s: end for s in sorted(self.db.sessions)}
        self.tend_sessions(ctx)

    def become_follower(self, ctx: Context, leader: str | None) -> None:
        """Step aside (Multi-Paxos); the master's volatile state goes with it."""
        super().become_follower(ctx, leader)
        if self.serving or self.established or self.lease_end_us:
            for t in ("master_lease", "leases"):
                ctx.cancel_timer(t)
        self.serving = self.established = False
        self.lease_acks = {}
        self.lease_end_us = 0
        self.session_end, self.held, self.waiters = {}, {}, {}
        self.granting, self.expiring = set(), set()

    def propose_cmd(self, ctx: Context, cmd: dict, answer: tuple[str, int] | None = None) -> None:
        slot = self.next_slot
        self.next_slot += 1
        if answer is not None:
            self.pending[slot] = answer
        self.propose(ctx, slot, cmd)

    # --- applying the log ----------------------------------------------------------------------
    def execute(self, ctx: Context, slot: int, cmd: dict) -> None:
        """Apply a chosen command to the database (every replica, in slot order), tell the trace,
        and, on the master, answer the client and move the lock queue on."""
        out = self.db.apply(cmd)
        rec = {"type": "txn", "node": self.id, "slot": slot, "op": cmd["op"], "ok": out["ok"]}
        for k in ("session", "client", "lock", "at_ms", "delay_until_ms"):
            if k in cmd:
                rec[k] = cmd[k]
        for k in ("generation", "epoch", "freed"):
            if k in out:
                rec[k] = out[k]
        if cmd["op"] == "epoch":
            rec["master"] = cmd["node"]
        self.records.append(rec)
        op = cmd["op"]
        answer = self.pending.pop(slot, None)
        if op == "epoch":
            if (cmd["node"] == self.id and self.phase == LEADING
                    and cmd["ballot"] == as_json(self.ballot)):
                self.established = True
                self.maybe_serve(ctx)
            return
        if not self.serving:
            return
        s = cmd["session"]
        if op == "open":
            self.session_end.setdefault(s, ctx.now_us + self.session_lease_us)
            if answer is not None:
                self.reply_opened(ctx, answer[0], s, answer[1])
        elif op == "acquire":
            lock = cmd["lock"]
            self.granting.discard(lock)
            if out["ok"]:
                if answer is not None:
                    ctx.send(answer[0], {"kind": "Reply", "req": answer[1], "ok": True,
                                         "op": "acquire", "lock": lock,
                                         "generation": out["generation"]})
            elif answer is not None and s in self.db.sessions:
                self.waiters.setdefault(lock, []).insert(0, (s, answer[0], answer[1]))
            self.maybe_grant(ctx, lock)
        elif op == "release":
            if answer is not None:
                ctx.send(answer[0], {"kind": "Reply", "req": answer[1], "ok": True,
                                     "op": "release", "lock": cmd["lock"]})
            self.maybe_grant(ctx, cmd["lock"])
        else:  # expire, close
            if answer is not None:
                ctx.send(answer[0], {"kind": "SessionClosed", "session": s, "req": answer[1]})
            self.expiring.discard(s)
            self.session_end.pop(s, None)
            self.held.pop(s, None)
            for lock in out["freed"]:
                self.maybe_grant(ctx, lock)
        self.tend_sessions(ctx)

    # --- the lock queue (§2.1, §2.4) -------------------------------------------------------------
    def maybe_grant(self, ctx: Context, lock: str) -> None:
        """Propose the first live waiter's acquire when the lock is free and past lock-delay."""
        if not self.serving or lock in self.granting:
            return
        queue = self.waiters.get(lock, [])
        queue[:] = [w for w in queue if w[0] in self.db.sessions and w[0] not in self.expiring]
        if not queue or not self.db.free_at(lock, ctx.now_us / 1000):
            return
        s, client, req = queue.pop(0)
        self.granting.add(lock)
        self.propose_cmd(ctx, {"op": "acquire", "session": s, "client": client, "lock": lock,
                               "req": req, "at_ms": ctx.now_us / 1000}, (client, req))

    # --- sessions (§2.8) -------------------------------------------------------------------------
    def tend_sessions(self, ctx: Context) -> None:
        """Answer the held KeepAlives whose lease is close to its end (extending it), expire the
        sessions whose lease ran out, grant locks whose lock-delay is over; then sleep until the
        next of these is due."""
        if not self.serving:
            return
        now = ctx.now_us
        nxt = None
        for s in sorted(self.session_end):
            if s in self.expiring:
                continue
            end = self.session_end[s]
            if s in self.held and now >= end - self.early_us:
                self.extend(ctx, s, self.held.pop(s))
                end = self.session_end[s]
            if s not in self.held and now >= end:
                self.expire(ctx, s)
                continue
            due = end - self.early_us if s in self.held else end
            nxt = due if nxt is None else min(nxt, due)
        for lock in sorted(self.waiters):
            if not self.waiters[lock]:
                continue
            until_us = int(self.db.lock(lock).delay_until_ms * 1000)
            if until_us > now:
                nxt = until_us if nxt is None else min(nxt, until_us)
            else:
                self.maybe_grant(ctx, lock)
        if nxt is None:
            ctx.cancel_timer("leases")
        else:
            ctx.set_timer("leases", max(1, nxt - now))

    def extend(self, ctx: Context, s: str, client: str) -> None:
        """§2.8: the KeepAlive returns with the new lease timeout."""
        end = self.session_end[s] = ctx.now_us + self.session_lease_us
        ctx.send(client, {"kind": "KeepAliveReply", "session": s, "epoch": self.master_epoch,
                          "lease_until_ms": end / 1000})

    def expire(self, ctx: Context, s: str) -> None:
        """§2.8: the session's lease ran out at the master: the session ends (through the log);
        a lock it holds is free only after lock-delay (§2.4). What it holds is decided when the
        expiry is applied, not when it is proposed: an acquire of this session's still in the
        log ahead of it (granted while its lease ran out) is held by then, and gets the delay
        too (the database applies `delay_until_ms` to the locks the session holds then)."""
        self.expiring.add(s)
        at_ms = ctx.now_us / 1000
        self.propose_cmd(ctx, {"op": "expire", "session": s, "at_ms": at_ms,
                               "delay_until_ms": at_ms + self.lock_delay_ms})

    def reply_opened(self, ctx: Context, client: str, s: str, req: int) -> None:
        ctx.send(client, {"kind": "SessionOpened", "session": s, "req": req,
                          "epoch": self.master_epoch,
                          "lease_until_ms": self.session_end[s] / 1000})

    # --- client calls ----------------------------------------------------------------------------
    def refuse(self, ctx: Context, src: str, m: dict) -> bool:
        """Calls reach only the master (others redirect), in its epoch, for an open session."""
        if not self.serving:
            hint = self.leader_id if self.leader_id != self.id else None
            ctx.send(src, {"kind": "Redirect", "master": hint})
            return True
        s = m["session"]
        if s not in self.db.sessions or s in self.expiring:
            ctx.send(src, {"kind": "SessionExpired", "session": s})
            return True
        if m["epoch"] != self.master_epoch and m["kind"] != "KeepAlive":
            ctx.send(src, {"kind": "Reply", "req": m["req"], "ok": False, "error": "epoch",
                           "epoch": self.master_epoch})
            return True
        return False

    def handle_open(self, ctx: Context, src: str, m: dict) -> None:
        """A client opens a session (its id chosen by the client, unique per process): through
        the log; a repeated open of an open session is answered at once."""
        if not self.serving:
            self.refuse(ctx, src, m)
            return
        s = m["session"]
        if s in self.db.sessions:
            self.session_end.setdefault(s, ctx.now_us + self.session_lease_us)
            self.reply_opened(ctx, src, s, m["req"])
            self.tend_sessions(ctx)
            return
        self.propose_cmd(ctx, {"op": "open", "session": s, "client": src, "req": m["req"]},
                         (src, m["req"]))

    def handle_keepalive(self, ctx: Context, src: str, m: dict) -> None:
        """§2.8: held until the lease is close to its end. From an older epoch it is the client
        finding the new master after a failover (§2.12): answered at once, with the new epoch."""
        if self.refuse(ctx, src, m):
            return
        s = m["session"]
        if m["epoch"] != self.master_epoch:
            self.held.pop(s, None)
            self.extend(ctx, s, src)
        else:
            self.held[s] = src
        self.tend_sessions(ctx)

    def handle_acquire(self, ctx: Context, src: str, m: dict) -> None:
        """§2.1: a blocking acquire: answered when the lock is this session's (at once if it is
        already)."""
        if self.refuse(ctx, src, m):
            return
        s, lock = m["session"], m["lock"]
        lk = self.db.locks.get(lock)
        if lk is not None and lk.holder == s:
            ctx.send(src, {"kind": "Reply", "req": m["req"], "ok": True, "op": "acquire",
                           "lock": lock, "generation": lk.generation})
            return
        queue = self.waiters.setdefault(lock, [])
        queue[:] = [w for w in queue if w[0] != s]
        queue.append((s, src, m["req"]))
        self.maybe_grant(ctx, lock)
        self.tend_sessions(ctx)

    def handle_release(self, ctx: Context, src: str, m: dict) -> None:
        """Release (through the log); from a session not holding it, it only leaves the queue."""
        if self.refuse(ctx, src, m):
            return
        s, lock = m["session"], m["lock"]
        self.waiters[lock] = [w for w in self.waiters.get(lock, []) if w[0] != s]
        lk = self.db.locks.get(lock)
        if lk is None or lk.holder != s:
            ctx.send(src, {"kind": "Reply", "req": m["req"], "ok": True, "op": "release",
                           "lock": lock})
            return
        self.propose_cmd(ctx, {"op": "release", "session": s, "client": src, "lock": lock,
                               "req": m["req"]}, (src, m["req"]))

    def handle_close(self, ctx: Context, src: str, m: dict) -> None:
        """§2.8: the client ends its session (through the log); its locks are freed with no
        lock-delay, as if released."""
        if self.refuse(ctx, src, m):
            return
        s = m["session"]
        self.held.pop(s, None)
        self.expiring.add(s)  # no more KeepAlives or calls for it
        self.propose_cmd(ctx, {"op": "close", "session": s, "client": src, "req": m["req"]},
                         (src, m["req"]))

    # --- what the outside sees ------------------------------------------------------------------
    @property
    def role(self) -> str:
        return MASTER if self.serving else REPLICA

    def epoch(self) -> int:
        return self.master_epoch if self.serving else self.db.epoch

    def take_state(self) -> dict | None:
        told = (self.role, self.epoch(), self.commit, as_json(self.ballot))
        if told == self._told_chubby:
            return None
        self._told_chubby = told
        return {"role": told[0], "epoch": told[1], "commit": told[2], "ballot": told[3]}

    def down_state(self) -> dict:
        self._told_chubby = None
        return {"role": "down", "epoch": self.db.epoch, "commit": self.commit,
                "ballot": as_json(self.ballot)}

    def view(self, now_us: int) -> dict:
        locks = {}
        for name, lk in sorted(self.db.locks.items()):
            locks[name] = {"holder": lk.client, "session": lk.holder, "generation": lk.generation,
                           "delay_until_ms": lk.delay_until_ms,
                           "queue": [c for _, c, _ in self.waiters.get(name, [])]}
        return {
            "kind": "chubby", "role": self.role, "epoch": self.epoch(), "phase": self.phase,
            "leader": self.leader_id, "ballot": as_json(self.ballot),
            "promised": as_json(self.promised), "commit": self.commit, "applied": self.applied,
            "lease_promise": {"to": self.lease_to, "until_ms": self.lease_until_us / 1000},
            "master_lease_end_ms": self.lease_end_us / 1000 if self.phase == LEADING else None,
            "sessions": sorted(self.db.sessions),
            "session_leases": {s: e / 1000 for s, e in sorted(self.session_end.items())},
            "held_keepalives": sorted(self.held),
            "locks": locks,
        }

    def digest_state(self):
        return super().digest_state() + [
            self.db.digest(), self.lease_to, self.lease_until_us, self.serving, self.master_epoch,
            self.established, sorted(self.lease_acks.items()), self.lease_end_us,
            sorted(self.session_end.items()), sorted(self.held.items()),
            sorted([k, v] for k, v in self.waiters.items()), sorted(self.granting),
            sorted(self.expiring)]
