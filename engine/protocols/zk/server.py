"""A ZooKeeper server running Zab (Junqueira, Reed and Serafini, "Zab: High-performance broadcast
for primary-backup systems", DSN 2011; the Zab TLA+ spec in apache/zookeeper
zookeeper-specifications, whose action names the handlers cite).

Phases, as in the spec: Election (Fast Leader Election, votes on (epoch, last zxid, server id)),
Discovery (CEPOCH, NEWEPOCH, ACKEPOCH: the leader picks an epoch above every accepted epoch of a
quorum), Synchronization (DIFF, TRUNC or SNAP brings each follower's history to the leader's, then
NEWLEADER and ACKLD; a quorum of ACKLD establishes the leader, which commits its initial history and
sends UPTODATE, the spec's COMMITLD), Broadcast (PROPOSE, ACK, COMMIT in zxid order).

Stable storage: `accepted_epoch`, `current_epoch` and the history (every logged proposal). What is
committed is volatile (the spec's `lastCommitted` is reset by Restart) and is learned again.

Clients: a server in Broadcast serves the clients connected to it: reads from its own committed
tree (possibly stale), writes forwarded to the leader, `sync` through the leader. The leader tracks
session deadlines (touched by pings, which followers pass on in their PINGREPLY) and expires a
silent session with a replicated `session_expire` transaction that deletes its ephemerals.

Per-role behaviour is a step function swapped on role change (etcd-raft's shape):
`step_looking`, `step_following`, `step_leading`.
"""

from __future__ import annotations

from ...node import Node
from ...quorum import majority
from .tree import DataTree, PrepareError
from .zab import ZERO, Channel, sid, vote_key, zx

LOOKING, FOLLOWING, LEADING = "looking", "following", "leading"
ELECTION, DISCOVERY, SYNCHRONIZATION, BROADCAST = "election", "discovery", "synchronization", "broadcast"
READS = ("get", "exists", "children")
WRITES = ("create", "delete", "set", "close_session")
CLIENT_KINDS = ("Connect", "Ping", "Request", "SetWatches")


class Learner:
    """The leader's side of one follower's connection (ZooKeeper's LearnerHandler). `stage`:
    cepoch (CEPOCH in), acke (ACKEPOCH in), synced (NEWLEADER sent), active (ACKLD in)."""

    def __init__(self, conn: int, accepted_epoch: int, now_us: int):
        self.chan = Channel(conn)
        self.stage = "cepoch"
        self.accepted_epoch = accepted_epoch
        self.current_epoch = 0
        self.last_zxid = ZERO
        self.heard_us = now_us


class ZabServer(Node):
    kind = "server"

    def __init__(self, nid, topology, config, rng, persistent=None):
        super().__init__(nid, topology.of_kind("server"), config, rng)
        self.ensemble = [n for n in topology.of_kind("server")]
        self.others = [n for n in self.ensemble if n != nid]
        self.quorum = majority(len(self.ensemble))
        p = persistent or {"accepted_epoch": 0, "current_epoch": 0, "history": []}
        self.accepted_epoch = p["accepted_epoch"]
        self.current_epoch = p["current_epoch"]
        self.history: list[tuple] = list(p["history"])  # [(zxid, txn)], zxid order
        self.committed = 0  # how many history entries are committed (volatile)
        self.tree = DataTree(self.config.initial_tree)
        self.role = LOOKING
        self.phase = ELECTION
        self.leader: str | None = None
        self.round = 0
        self.vote = (nid, self.last_zxid(), self.current_epoch)
        self.votes: dict[str, tuple] = {}
        self.outside: dict[str, tuple] = {}
        self.conns: dict[str, list] = {}  # session -> [client, last heard (us), last cxid]
        self.opening: dict[str, int] = {}  # client -> cxid of its pending session open
        self.touched: dict[str, None] = {}
        self.watches: dict[tuple[str, str], dict[str, None]] = {}  # (path, kind) -> sessions
        self._reset_roles()
        self._told = None
        self.step = self.step_looking

    def _reset_roles(self) -> None:
        self.chan: Channel | None = None  # a follower's connection to its leader
        self.learners: dict[str, Learner] = {}
        self.new_epoch: int | None = None
        self.established = False
        self.acks: dict[tuple, set[str]] = {}
        self.tip: DataTree | None = None
        self.counter = 0
        self.deadlines: dict[str, int] = {}  # the leader's session tracker: session -> deadline
        self.syncs: list[tuple] = []  # (zxid, origin, client, cxid) waiting for that commit
        self.owners: dict[str, str] = {}  # the leader's view: session -> the server it is on
        self.started_us = 0

    # --- stable storage, state --------------------------------------------------------------------
    def persistent_state(self):
        return {"accepted_epoch": self.accepted_epoch, "current_epoch": self.current_epoch,
                "history": list(self.history)}

    def last_zxid(self):
        return self.history[-1][0] if self.history else ZERO

    def committed_zxid(self):
        return self.history[self.committed - 1][0] if self.committed else ZERO

    def take_state(self):
        told = (self.role, self.phase, self.current_epoch, self.last_zxid(), self.committed_zxid())
        if told == self._told:
            return None
        self._told = told
        return {"role": told[0], "phase": told[1], "epoch": told[2], "last_zxid": list(told[3]),
                "committed_zxid": list(told[4])}

    def down_state(self):
        self._told = None
        return {"role": "down", "phase": ELECTION, "epoch": self.current_epoch,
                "last_zxid": list(self.last_zxid()), "committed_zxid": list(self.committed_zxid())}

    def view(self, now_us):
        v = {"role": self.role, "phase": self.phase, "epoch": self.current_epoch,
             "accepted_epoch": self.accepted_epoch, "last_zxid": list(self.last_zxid()),
             "committed_zxid": list(self.committed_zxid()), "leader": self.leader,
             "vote": [self.vote[0], list(self.vote[1]), self.vote[2]], "round": self.round,
             "history": len(self.history), "sessions": sorted(self.conns),
             "watches": sorted([p, k, len(s)] for (p, k), s in self.watches.items() if s),
             "tree": self.tree.view()}
        if self.role == LEADING:
            v["learners"] = {f: l.stage for f, l in sorted(self.learners.items())}
        return v

    def digest_state(self):
        d = self.view(0)
        d["history"] = [[list(z), t] for z, t in self.history]
        return d

    # --- inputs -----------------------------------------------------------------------------------
    def on_start(self, ctx):
        self.become_looking(ctx)

    def on_message(self, ctx, src, msg):
        k = msg["kind"]
        if k == "Vote":
            self.handle_vote(ctx, src, msg)
        elif k in CLIENT_KINDS:
            self.handle_client(ctx, src, msg)
        else:
            self.step(ctx, src, msg)

    def on_timer(self, ctx, name):
        if name == "notify":
            self.bcast_vote(ctx)
        elif name == "finalize":
            self.maybe_decide(ctx)
        elif name == "tick":
            self.handle_tick(ctx)
        elif name == "leader_timeout":
            self.become_looking(ctx)

    # --- Election (Fast Leader Election) ----------------------------------------------------------
    def become_looking(self, ctx) -> None:
        """Back to Election (spec: FollowerTimeout, LeaderTimeout; a restart): forget the leader,
        the connections and the clients; a new round with a vote for itself."""
        self.role, self.phase, self.leader = LOOKING, ELECTION, None
        self._reset_roles()
        self.conns.clear()
        self.opening.clear()
        self.touched.clear()
        self.watches.clear()
        for t in ("tick", "leader_timeout", "finalize"):
            ctx.cancel_timer(t)
        self.step = self.step_looking
        self.round += 1
        self.vote = (self.id, self.last_zxid(), self.current_epoch)
        self.votes = {self.id: self.vote}
        self.outside = {}
        self.bcast_vote(ctx)

    def _vote_msg(self) -> dict:
        leader, zxid, epoch = self.vote
        return {"kind": "Vote", "leader": leader, "zxid": list(zxid), "epoch": epoch,
                "round": self.round, "state": self.role}

    def bcast_vote(self, ctx) -> None:
        if self.role != LOOKING:
            return
        msg = self._vote_msg()
        for p in self.others:
            ctx.send(p, msg)
        span = int(self.config.notify_ms * 1000)
        ctx.set_timer("notify", span + int(self.rng.random() * span))

    def handle_vote(self, ctx, src, m) -> None:
        """FastLeaderElection.lookForLeader, one notification at a time."""
        theirs = (m["leader"], zx(m["zxid"]), m["epoch"])
        if self.role != LOOKING:
            if m["state"] == LOOKING:  # tell a looking peer who leads
                ctx.send(src, self._vote_msg())
            return
        if m["state"] == LOOKING:
            if m["round"] > self.round:
                self.round = m["round"]
                mine = (self.id, self.last_zxid(), self.current_epoch)
                self.vote = max(theirs, mine, key=vote_key)
                self.votes = {self.id: self.vote}
                self.bcast_vote(ctx)
            elif m["round"] < self.round:
                ctx.send(src, self._vote_msg())
                return
            elif vote_key(theirs) > vote_key(self.vote):
                self.vote = theirs
                self.votes[self.id] = theirs
                self.bcast_vote(ctx)
            self.votes[src] = theirs
            agree = sum(1 for v in self.votes.values() if v[0] == self.vote[0])
            if agree >= self.quorum:
                ctx.set_timer("finalize", int(self.config.finalize_wait_ms * 1000))
            return
        # From a server already following or leading: join an established leader once a quorum
        # outside the election names it and the leader itself says it leads (checkLeader).
        self.outside[src] = (theirs, m["state"])
        leader = theirs[0]
        named = sum(1 for v, _ in self.outside.values() if v[0] == leader)
        leading = leader == self.id or self.outside.get(leader, (None, None))[1] == LEADING
        if named >= self.quorum - (1 if leader != self.id else 0) and leading and leader != self.id:
            self.vote = theirs
            self.decide(ctx, leader)

    def maybe_decide(self, ctx) -> None:
        """finalizeWait passed with no better vote: the quorum's choice stands."""
        if self.role != LOOKING:
            return
        agree = sum(1 for v in self.votes.values() if v[0] == self.vote[0])
        if agree >= self.quorum:
            self.decide(ctx, self.vote[0])

    def decide(self, ctx, leader: str) -> None:
        ctx.cancel_timer("notify")
        ctx.cancel_timer("finalize")
        if leader == self.id:
            self.become_leader(ctx)
        else:
            self.become_follower(ctx, leader)

    # --- Discovery and Synchronization, the follower ----------------------------------------------
    def become_follower(self, ctx, leader: str) -> None:
        """Spec: ConnectAndFollowerSendCEPOCH. A new connection (random conn id from the node's
        RNG), CEPOCH with the accepted epoch, re-sent each tick until NEWEPOCH comes."""
        self.role, self.phase, self.leader = FOLLOWING, DISCOVERY, leader
        self.step = self.step_following
        self.chan = Channel(self.rng.getrandbits(32))
        self._cepoch = self.chan.stamp({"kind": "CEPOCH", "accepted_epoch": self.accepted_epoch})
        ctx.send(leader, self._cepoch)
        self.started_us = ctx.now_us
        ctx.set_timer("tick", self.config.tick_us())
        self.arm_leader_timeout(ctx, self.config.init_limit_ticks)

    def arm_leader_timeout(self, ctx, ticks: int) -> None:
        """A follower that hears nothing in order from its leader for `ticks` ticks (randomised
        up to twice that) goes back to Election."""
        span = ticks * self.config.tick_us()
        ctx.set_timer("leader_timeout", span + int(self.rng.random() * span))

    def to_leader(self, ctx, msg: dict) -> None:
        ctx.send(self.leader, self.chan.stamp(msg))

    def step_looking(self, ctx, src, msg) -> None:
        """Looking: only votes count (they are handled before the step function)."""

    def step_following(self, ctx, src, msg) -> None:
        if src != self.leader or msg.get("conn") != self.chan.conn:
            return
        for m in self.chan.accept(msg):
            if self.role != FOLLOWING:
                return
            limit = self.config.sync_limit_ticks if self.phase == BROADCAST else self.config.init_limit_ticks
            self.arm_leader_timeout(ctx, limit)
            getattr(self, "handle_" + m["kind"].lower())(ctx, m)

    def handle_newepoch(self, ctx, m) -> None:
        """Spec: FollowerProcessNEWEPOCH. An epoch below the accepted one means a stale leader."""
        if m["epoch"] < self.accepted_epoch:
            self.become_looking(ctx)
            return
        self.accepted_epoch = m["epoch"]
        ctx.persist()  # Zab: acceptedEpoch is on stable storage before ACKEPOCH
        self.to_leader(ctx, {"kind": "ACKEPOCH", "current_epoch": self.current_epoch,
                             "last_zxid": list(self.last_zxid())})

    def handle_diff(self, ctx, m) -> None:
        """Spec: FollowerProcessSyncMessage. DIFF: the missing entries after our last zxid."""
        self.phase = SYNCHRONIZATION
        self.history.extend((zx(z), t) for z, t in m["entries"])
        ctx.persist()

    def handle_trunc(self, ctx, m) -> None:
        """TRUNC: drop the entries after `zxid` (never committed: the leader lacks them)."""
        self.phase = SYNCHRONIZATION
        t = zx(m["zxid"])
        self.history = [e for e in self.history if e[0] <= t]
        self.history.extend((zx(z), x) for z, x in m["entries"])
        ctx.persist()
        self._recheck_committed()

    def handle_snap(self, ctx, m) -> None:
        """SNAP: the leader's whole history (our tree is rebuilt if ours was not its prefix)."""
        self.phase = SYNCHRONIZATION
        new = [(zx(z), t) for z, t in m["entries"]]
        self.history = new
        ctx.persist()
        self._recheck_committed()

    def _recheck_committed(self) -> None:
        if self.committed > len(self.history) or (
                self.committed and self.history[self.committed - 1][0] != self.tree.last_zxid):
            self.committed = 0
            self.tree = DataTree(self.config.initial_tree)

    def handle_newleader(self, ctx, m) -> None:
        """Spec: FollowerProcessNEWLEADER: adopt the epoch, acknowledge with ACKLD."""
        self.current_epoch = m["epoch"]
        ctx.persist()  # Zab: currentEpoch is on stable storage before ACKLD
        self.to_leader(ctx, {"kind": "ACKLD", "zxid": [m["epoch"], 0]})

    def handle_uptodate(self, ctx, m) -> None:
        """Spec: FollowerProcessCOMMITLD: commit up to the leader's committed zxid and serve."""
        self.phase = BROADCAST
        self.commit_to(ctx, zx(m["zxid"]))

    def handle_propose(self, ctx, m) -> None:
        """Spec: FollowerProcessPROPOSE: log (stable storage) and ACK."""
        z = zx(m["zxid"])
        if z > self.last_zxid():
            self.history.append((z, m["txn"]))
            ctx.persist()  # logged before the ACK leaves
        self.to_leader(ctx, {"kind": "ACK", "zxid": m["zxid"]})

    def handle_commit(self, ctx, m) -> None:
        """Spec: FollowerProcessCOMMIT."""
        self.commit_to(ctx, zx(m["zxid"]))

    def handle_ping(self, ctx, m) -> None:
        self.to_leader(ctx, {"kind": "PINGREPLY", "sessions": list(self.touched)})
        self.touched = {}

    def handle_error(self, ctx, m) -> None:
        """A write the leader refused; this server is its origin and answers the client."""
        ctx.send(m["client"], {"kind": "Reply", "cxid": m["cxid"], "ok": False, "err": m["err"],
                               "zxid": list(self.tree.last_zxid)})

    def handle_synced(self, ctx, m) -> None:
        ctx.send(m["client"], {"kind": "Reply", "cxid": m["cxid"], "ok": True, "op": "sync",
                               "zxid": list(self.tree.last_zxid)})

    # --- Discovery and Synchronization, the leader ------------------------------------------------
    def become_leader(self, ctx) -> None:
        """The elected leader waits for CEPOCH from a quorum (spec: LeaderProcessCEPOCH)."""
        self.role, self.phase, self.leader = LEADING, DISCOVERY, self.id
        self.step = self.step_leading
        self.started_us = ctx.now_us
        ctx.set_timer("tick", self.config.tick_us())

    def to(self, ctx, f: str, msg: dict) -> None:
        ctx.send(f, self.learners[f].chan.stamp(msg))

    def step_leading(self, ctx, src, msg) -> None:
        if msg["kind"] == "CEPOCH" and msg["seq"] == 1:
            l = self.learners.get(src)
            if l is None or l.chan.conn != msg["conn"]:
                self.learners[src] = Learner(msg["conn"], msg["accepted_epoch"], ctx.now_us)
        l = self.learners.get(src)
        if l is None or msg.get("conn") != l.chan.conn:
            return
        for m in l.chan.accept(msg):
            if self.role != LEADING or self.learners.get(src) is not l:
                return
            l.heard_us = ctx.now_us
            getattr(self, "lead_" + m["kind"].lower())(ctx, src, l, m)

    def lead_cepoch(self, ctx, f, l, m) -> None:
        if self.new_epoch is not None:
            self.to(ctx, f, {"kind": "NEWEPOCH", "epoch": self.new_epoch})
            return
        joined = [x for x in sorted(self.learners) if self.learners[x].stage == "cepoch"]
        if len(joined) + 1 >= self.quorum:
            self.new_epoch = max([self.accepted_epoch] + [self.learners[x].accepted_epoch
                                                          for x in joined]) + 1
            self.accepted_epoch = self.new_epoch
            ctx.persist()
            for x in joined:
                self.to(ctx, x, {"kind": "NEWEPOCH", "epoch": self.new_epoch})

    def lead_ackepoch(self, ctx, f, l, m) -> None:
        """Spec: LeaderProcessACKEPOCH. A follower with a more recent history than ours means we
        should not lead (ZooKeeper's "follower is ahead of the leader")."""
        l.current_epoch, l.last_zxid = m["current_epoch"], zx(m["last_zxid"])
        if (l.current_epoch, l.last_zxid) > (self.current_epoch, self.last_zxid()):
            self.become_looking(ctx)
            return
        l.stage = "acke"
        if self.phase != DISCOVERY:
            self.sync_learner(ctx, f, l)
            return
        acked = [x for x in sorted(self.learners) if self.learners[x].stage == "acke"]
        if len(acked) + 1 >= self.quorum:
            self.current_epoch = self.new_epoch
            ctx.persist()
            self.phase = SYNCHRONIZATION
            self.tip = self._replay(len(self.history))
            for x in acked:
                self.sync_learner(ctx, x, self.learners[x])

    def _replay(self, n: int) -> DataTree:
        t = DataTree(self.config.initial_tree)
        for z, txn in self.history[:n]:
            t.apply(z, txn)
        return t

    def sync_learner(self, ctx, f, l) -> None:
        """Spec: LeaderSyncFollower. DIFF when the follower's last zxid is in our history (and not
        too far behind), TRUNC when it is ahead of our last, else SNAP; then NEWLEADER."""
        last = l.last_zxid
        zs = [z for z, _ in self.history]
        mine = self.last_zxid()
        wire = lambda es: [[list(z), t] for z, t in es]
        if last == ZERO or last in zs:
            i = zs.index(last) + 1 if last != ZERO else 0
            if len(zs) - i <= self.config.diff_limit:
                self.to(ctx, f, {"kind": "DIFF", "entries": wire(self.history[i:])})
            else:
                self.to(ctx, f, {"kind": "SNAP", "entries": wire(self.history)})
        elif last > mine:
            self.to(ctx, f, {"kind": "TRUNC", "zxid": list(mine), "entries": []})
        else:
            self.to(ctx, f, {"kind": "SNAP", "entries": wire(self.history)})
        self.to(ctx, f, {"kind": "NEWLEADER", "epoch": self.current_epoch})
        l.stage = "synced"

    def lead_ackld(self, ctx, f, l, m) -> None:
        """Spec: LeaderProcessACKLD. A quorum of ACKLD establishes the leader: its initial history
        is committed and UPTODATE (COMMITLD) tells the followers."""
        l.stage = "active"
        if self.established:
            self.to(ctx, f, {"kind": "UPTODATE", "zxid": list(self.committed_zxid())})
            return
        active = [x for x in sorted(self.learners) if self.learners[x].stage == "active"]
        if len(active) + 1 < self.quorum:
            return
        self.established = True
        self.phase = BROADCAST
        self.counter = 0
        self.commit_to(ctx, self.last_zxid())
        for x in active:
            self.to(ctx, x, {"kind": "UPTODATE", "zxid": list(self.committed_zxid())})
        for s in sorted(self.tree.sessions):  # every session gets a fresh deadline
            self.deadlines[s] = ctx.now_us + int(self.tree.sessions[s] * 1000)

    # --- Broadcast, the leader --------------------------------------------------------------------
    def _receivers(self) -> list[str]:
        stages = ("active",) if self.config.has("propose_to_acked_only") else ("synced", "active")
        return [x for x in sorted(self.learners) if self.learners[x].stage in stages]

    def propose(self, ctx, txn: dict) -> tuple:
        """Spec: LeaderProcessRequest: the next zxid of the epoch, logged, sent to the followers."""
        self.counter += 1
        z = (self.current_epoch, self.counter)
        if txn["op"] == "session_open":
            txn["session"] = f"s{z[0]}.{z[1]}"
        self.history.append((z, txn))
        ctx.persist()
        self.tip.apply(z, txn)
        self.acks[z] = {self.id}
        msg = {"kind": "PROPOSE", "zxid": list(z), "txn": txn}
        for x in self._receivers():
            self.to(ctx, x, dict(msg))
        self.maybe_commit(ctx)
        return z

    def lead_ack(self, ctx, f, l, m) -> None:
        """Spec: LeaderProcessACK."""
        acks = self.acks.get(zx(m["zxid"]))
        if acks is not None:
            acks.add(f)
            self.maybe_commit(ctx)

    def maybe_commit(self, ctx) -> None:
        """Commit, in zxid order, each proposal a quorum (the leader included) has logged
        (spec: LeaderProcessACK, "committed only after a quorum acked": Integrity)."""
        while self.committed < len(self.history):
            z = self.history[self.committed][0]
            if len(self.acks.get(z, ())) < self.quorum:
                return
            self.acks.pop(z, None)
            self.commit_to(ctx, z)
            msg = {"kind": "COMMIT", "zxid": list(z)}
            for x in self._receivers():
                self.to(ctx, x, dict(msg))
        self._answer_syncs(ctx)

    def lead_pingreply(self, ctx, f, l, m) -> None:
        for s in m["sessions"]:
            self.touch(ctx, s)

    def lead_request(self, ctx, f, l, m) -> None:
        self.handle_write(ctx, m["origin"], m["client"], m["session"], m["cxid"], m["req"])

    def lead_owner(self, ctx, f, l, m) -> None:
        """A session moved to follower `f` (ZooKeeper's revalidation): later writes of that session
        from anywhere else are refused (session_moved), so a write sent through the old server
        cannot overtake the client's newer ones (LocalPrimaryOrder)."""
        self.owners[m["session"]] = f

    def lead_sync(self, ctx, f, l, m) -> None:
        self.syncs.append((self.last_zxid(), f, m["client"], m["cxid"]))
        self._answer_syncs(ctx)

    def _answer_syncs(self, ctx) -> None:
        c = self.committed_zxid()
        keep = []
        for z, origin, client, cxid in self.syncs:
            if z > c:
                keep.append((z, origin, client, cxid))
            elif origin == self.id:
                ctx.send(client, {"kind": "Reply", "cxid": cxid, "ok": True, "op": "sync",
                                  "zxid": list(self.tree.last_zxid)})
            elif origin in self.learners:
                self.to(ctx, origin, {"kind": "SYNCED", "client": client, "cxid": cxid})
        self.syncs = keep

    def handle_write(self, ctx, origin, client, session, cxid, req) -> None:
        """A write from a client of `origin` (the leader itself or a follower): prepared against
        the tip (every proposal applied), proposed, or refused with ZooKeeper's error code."""
        if not self.established:
            return
        base = {"origin": origin, "client": client, "cxid": cxid}
        if req["op"] == "session_open":
            timeout = self.config.negotiate_timeout_ms(req["timeout_ms"])
            self.propose(ctx, {"op": "session_open", "timeout_ms": timeout, **base})
            return
        try:
            if self.owners.get(session, origin) != origin:
                raise PrepareError("session_moved")
            if req["op"] == "close_session":
                txn = self.close_txn(session)
            else:
                txn = self.tip.prepare(req, session)
        except PrepareError as e:
            err = {"kind": "ERROR", "client": client, "cxid": cxid, "err": e.code}
            if origin == self.id:
                self.handle_error(ctx, err)
            elif origin in self.learners:
                self.to(ctx, origin, err)
            return
        txn.update(base, session=session)
        self.propose(ctx, txn)

    def close_txn(self, session: str) -> dict:
        """closeSession (Programmer's Guide, "ZooKeeper Sessions"): a replicated `session_close`
        that deletes the session's ephemerals in the same step, as an expiry does; the session's
        deadline goes with it (nothing is left to expire)."""
        if session not in self.tip.sessions:
            raise PrepareError("no_session")
        self.deadlines.pop(session, None)
        return self.tip.expire_txn(session, "session_close")

    def touch(self, ctx, s: str) -> None:
        if s in self.deadlines and s in self.tree.sessions:
            self.deadlines[s] = ctx.now_us + int(self.tree.sessions[s] * 1000)

    # --- ticks: pings, failure detection, session expiry -----------------------------------------
    def handle_tick(self, ctx) -> None:
        tick = self.config.tick_us()
        ctx.set_timer("tick", tick)
        now = ctx.now_us
        if self.role == FOLLOWING:
            if self.phase == DISCOVERY and self.chan.next == 1:
                ctx.send(self.leader, self._cepoch)  # the same CEPOCH: a retransmission
        elif self.role == LEADING:
            limit = self.config.sync_limit_ticks * tick
            for f in sorted(self.learners):
                if now - self.learners[f].heard_us > (limit if self.established else self.config.init_limit_ticks * tick):
                    del self.learners[f]
            if not self.established:
                if now - self.started_us > self.config.init_limit_ticks * tick:
                    self.become_looking(ctx)
                return
            live = [f for f in self.learners if self.learners[f].stage == "active"]
            if len(live) + 1 < self.quorum:
                self.become_looking(ctx)  # LeaderTimeout: lost its quorum
                return
            for f in sorted(self.learners):
                if self.learners[f].stage in ("synced", "active"):
                    self.to(ctx, f, {"kind": "PING"})
            for s in list(self.touched):
                self.touch(ctx, s)
            self.touched = {}
            for s in sorted(self.deadlines):
                if self.deadlines[s] < now:
                    del self.deadlines[s]
                    self.propose(ctx, self.tip.expire_txn(s))
        self.check_connections(ctx)

    def check_connections(self, ctx) -> None:
        """Drop a client connection silent for its whole session timeout (its watches go too).
        With `expire_without_quorum`, expire the session here and now, alone."""
        now = ctx.now_us
        for s in sorted(self.conns):
            client, heard, _ = self.conns[s]
            timeout = int(self.tree.sessions.get(s, 0) * 1000)
            if now - heard <= timeout:
                continue
            del self.conns[s]
            for key in list(self.watches):
                self.watches[key].pop(s, None)
            if self.config.has("expire_without_quorum") and s in self.tree.sessions:
                c = self.committed_zxid()
                z = (c[0], c[1] + 1)
                txn = self.tree.expire_txn(s)
                self.apply_txn(ctx, z, txn)

    # --- committing and applying ------------------------------------------------------------------
    def commit_to(self, ctx, z) -> None:
        """Commit every logged entry up to zxid `z`, in order, applying each to the tree."""
        while self.committed < len(self.history) and self.history[self.committed][0] <= z:
            zxid, txn = self.history[self.committed]
            self.committed += 1
            self.apply_txn(ctx, zxid, txn)

    def apply_txn(self, ctx, z, txn) -> None:
        changed = self.tree.apply(z, txn)
        rec = {"type": "txn", "node": self.id, "zxid": list(z), "op": txn["op"]}
        for k in ("path", "ephemeral_owner", "seq", "session", "cxid", "deleted", "client"):
            if k in txn:
                rec[k] = txn[k]
        self.records.append(rec)
        op = txn["op"]
        if self.role == LEADING:
            if op == "session_open":
                self.deadlines[txn["session"]] = ctx.now_us + int(txn["timeout_ms"] * 1000)
                self.owners[txn["session"]] = txn["origin"]
            elif op in ("session_expire", "session_close"):
                self.deadlines.pop(txn["session"], None)
                self.owners.pop(txn["session"], None)
        self.fire_watches(ctx, z, changed)
        mine = txn.get("origin") == self.id and self.phase == BROADCAST
        if op in ("session_expire", "session_close"):
            conn = self.conns.pop(txn["session"], None)
            for key in list(self.watches):
                self.watches[key].pop(txn["session"], None)
            if conn is not None and not (op == "session_close" and mine):
                gone = {"kind": "Expired", "session": txn["session"]}
                if op == "session_close":
                    gone["closed"] = True  # (the client closed it, through another server)
                ctx.send(conn[0], gone)
        if not mine:
            return
        client = txn["client"]
        if op == "session_open":
            if self.opening.pop(client, None) is None:
                return
            self.conns[txn["session"]] = [client, ctx.now_us, 0]
            ctx.send(client, {"kind": "Connected", "session": txn["session"],
                              "timeout_ms": txn["timeout_ms"], "zxid": list(z)})
        elif op in ("create", "delete", "set"):
            reply = {"kind": "Reply", "cxid": txn["cxid"], "ok": True, "op": op,
                     "path": txn["path"], "zxid": list(z)}
            if op == "set":
                reply["version"] = txn["version"]
            ctx.send(client, reply)
        elif op == "session_close":
            ctx.send(client, {"kind": "Reply", "cxid": txn["cxid"], "ok": True,
                              "op": "close_session", "zxid": list(z)})

    def fire_watches(self, ctx, z, changed) -> None:
        """One-time watches (Programmer's Guide, "ZooKeeper Watches"): fired once, then gone; the
        client hears the event before any reply that shows the new data."""
        for path, kind in changed:
            sessions = self.watches.pop((path, kind), None)
            if not sessions:
                continue
            for s in sorted(sessions):
                conn = self.conns.get(s)
                rec = {"type": "watch", "node": self.id, "session": s, "path": path,
                       "kind": kind, "event": "fire", "zxid": list(z)}
                if sessions[s]:
                    rec["user"] = True
                self.records.append(rec)
                if conn is not None:
                    ctx.send(conn[0], {"kind": "Event", "session": s, "path": path, "watch": kind,
                                       "zxid": list(z)})

    # --- clients ----------------------------------------------------------------------------------
    def handle_client(self, ctx, src, m) -> None:
        """A client's Connect, Ping or Request. Only a server in Broadcast serves clients."""
        if self.phase != BROADCAST:
            return
        k = m["kind"]
        s = m.get("session")
        if k == "Connect":
            if s is None:
                self.opening[src] = 0
                req = {"op": "session_open", "timeout_ms": m["timeout_ms"]}
                self._forward_write(ctx, src, None, 0, req)
            elif s in self.tree.sessions:
                if self.role == LEADING:
                    self.owners[s] = self.id
                else:
                    self.to_leader(ctx, {"kind": "OWNER", "session": s})
                self.conns[s] = [src, ctx.now_us, 0]
                self.touched[s] = None
                ctx.send(src, {"kind": "Connected", "session": s,
                               "timeout_ms": self.tree.sessions[s], "zxid": list(self.tree.last_zxid)})
            else:
                ctx.send(src, {"kind": "Expired", "session": s})
            return
        conn = self.conns.get(s)
        if conn is None or conn[0] != src:
            return  # not connected here: the client will time out and reconnect
        conn[1] = ctx.now_us
        self.touched[s] = None
        if k == "Ping":
            ctx.send(src, {"kind": "Pong", "session": s})
            return
        if k == "SetWatches":
            self.set_watches(ctx, src, s, tuple(m["zxid"]), m["watches"])
            return
        req, cxid = m["req"], m["cxid"]
        if cxid <= conn[2]:
            return  # a duplicate from the network: each request is handled once
        conn[2] = cxid
        op = req["op"]
        if op in READS:
            self.serve_read(ctx, src, s, cxid, req)
        elif op == "sync":
            if self.role == LEADING:
                self.lead_sync(ctx, self.id, None, {"client": src, "cxid": cxid})
            else:
                self.to_leader(ctx, {"kind": "SYNC", "client": src, "cxid": cxid})
        elif op in WRITES:
            self._forward_write(ctx, src, s, cxid, req)

    def set_watches(self, ctx, client, s, seen, watches) -> None:
        """SetWatches (ZooKeeper's ClientCnxn sends it on every reconnect; DataTree.setWatches
        answers it): the client's outstanding watches, with the last zxid it saw. A watch whose
        node changed since then fires at once (a data watch: the node gone or set/created after
        `seen`; an exists-watch on a missing node: the node there now; a children watch: the node
        gone or a child created or deleted after `seen`); the others are registered here. Its
        `watch` records carry `reconnect`."""
        last = list(self.tree.last_zxid)
        for path, kind, existed in watches:
            z = self.tree.get(path)
            if kind == "children":
                fired = z is None or z.pzxid > seen
            elif existed:
                fired = z is None or z.mzxid > seen
            else:
                fired = z is not None
            rec = {"type": "watch", "node": self.id, "session": s, "path": path, "kind": kind,
                   "event": "set", "zxid": list(seen), "user": True, "reconnect": True}
            watchers = self.watches.get((path, kind), {})
            if not fired:
                if s not in watchers:
                    self.watches.setdefault((path, kind), {})[s] = True
                    self.records.append({**rec, "zxid": last})
                continue
            if s in watchers:  # (set here already, before the client moved away and back)
                del watchers[s]
            else:
                self.records.append(rec)
            at = list(z.pzxid if kind == "children" else z.mzxid) if z is not None else last
            self.records.append({**rec, "event": "fire", "zxid": at})
            ctx.send(client, {"kind": "Event", "session": s, "path": path, "watch": kind, "zxid": at})

    def _forward_write(self, ctx, client, session, cxid, req) -> None:
        if self.role == LEADING:
            self.handle_write(ctx, self.id, client, session, cxid, req)
        else:
            self.to_leader(ctx, {"kind": "REQUEST", "origin": self.id, "client": client,
                                 "session": session, "cxid": cxid, "req": req})

    def serve_read(self, ctx, client, s, cxid, req) -> None:
        """Reads come from this server's committed tree: possibly stale (sync first to be fresh)."""
        path, op = req["path"], req["op"]
        z = self.tree.get(path)
        reply = {"kind": "Reply", "cxid": cxid, "ok": True, "op": op, "path": path,
                 "zxid": list(self.tree.last_zxid)}
        if op == "children":
            if z is None:
                reply.update(ok=False, err="no_node")
            else:
                reply["children"] = self.tree.children(path)
        elif op == "exists":
            reply["exists"] = z is not None
        elif z is None:
            reply.update(ok=False, err="no_node")
        else:
            reply.update(data=z.data, version=z.version)
        if req.get("watch") and (z is not None or op == "exists"):
            kind = "children" if op == "children" else "data"
            # A watch the user's own call set (not the recipe's) is marked: the herd checker
            # counts only the recipe's. One watch per session and path, whoever asked.
            watchers = self.watches.setdefault((path, kind), {})
            user = bool(req.get("user")) and watchers.get(s, True) is True
            watchers[s] = True if user else None
            rec = {"type": "watch", "node": self.id, "session": s, "path": path,
                   "kind": kind, "event": "set", "zxid": list(self.tree.last_zxid)}
            if user:
                rec["user"] = True
            self.records.append(rec)
        ctx.send(client, reply)
