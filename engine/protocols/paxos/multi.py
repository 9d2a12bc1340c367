"""Multi-Paxos: a replicated key-value log, as in "Paxos Made Simple" (Lamport, 2001), §3.

Every server is proposer, acceptor and learner. Slot s of the log is an instance of single-decree
Paxos; one promise covers every slot ("phase 1 for infinitely many instances", §3), so a leader
runs phase 1 once and then phase 2 per slot.

- Failure detection and leader election (§3: "the leader ... is selected as the distinguished
  proposer"; "a reliable algorithm for electing a proposer must use either randomness or real
  time"): a server that hears no Heartbeat or Accept from a leader for a randomised election
  timeout (drawn from its own RNG stream) starts phase 1 with a ballot above every round it has
  seen. A higher ballot anywhere (a Prepare it promises, an Accept, a Heartbeat, a Nack) makes a
  leader step aside.
- A new leader re-proposes, slot by slot, the value its phase-1 quorum reported at the highest
  ballot, and fills the gaps with no-ops (§3: "it must fill the gaps ... by proposing a special
  'no-op' command"), before serving new commands at the next free slots.
- Learners learn a slot when q2 acceptors accepted it in one ballot (§2.3). A lagging learner (a
  restarted one has forgotten everything: only acceptor state is on stable storage) sees the
  leader's `commit` in a Heartbeat and asks with CatchUp; the leader answers with the chosen
  values in a Heartbeat's `chosen`.
- Clients: the key-value service speaks Raft's client protocol (engine/workloads/kv.py): a non-leader
  answers `not_leader` with a hint; reads go through the log like writes, so the history is
  linearizable; a duplicated request (same client and serial) is answered from the session table
  and not executed twice (Raft §8).

Commands are `{"client", "req", "op", "key", "value"}`; a no-op is `None`.
"""

from __future__ import annotations

from ...kvstore import KVStore
from ...node import Context
from .ballot import Ballot, as_ballot, as_json, at_least
from .base import IDLE, LEADING, PREPARING, PaxosNode

VIEW_SLOTS = 32  # the page sees the last this many slots of each log


class MultiPaxosNode(PaxosNode):
    handlers = {**PaxosNode.handlers, "ClientRequest": "handle_client_request",
                "Heartbeat": "handle_heartbeat", "CatchUp": "handle_catch_up"}

    def __init__(self, node_id, peers, config, rng, persistent=None):
        super().__init__(node_id, peers, config, rng, persistent)
        self.et_min_us = int(config.election_timeout_ms_min * 1000)
        self.et_max_us = int(config.election_timeout_ms_max * 1000)
        self.heartbeat_us = int(config.heartbeat_ms * 1000)
        self.batch = config.max_slots_per_message
        # Learner and state machine (volatile).
        self.commit = 0  # invariant: slots 0 .. commit-1 are learned, slot `commit` is not
        self.applied = 0  # invariant: applied <= commit
        self.store = KVStore()  # the key-value map and the client sessions (Raft §8)
        # Proposer / leader (volatile).
        self.leader_id: str | None = None
        self.election_deadline_us = 0
        self.prepare_slot = 0  # phase 1 asked about slots >= this
        self.promises: dict[str, dict] = {}  # acceptor -> its report {slot: [ballot, value]}
        self.next_slot = 0  # the leader's next free slot
        self.proposals: dict[int, tuple[object, int]] = {}  # unlearned slot -> (value, sent at µs)
        self.acks: dict[int, set[str]] = {}  # slot -> acceptors that accepted it at our ballot
        self.pending: dict[int, tuple[str, int]] = {}  # slot -> (client, req) to answer

    # --- timers -------------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        self.reset_election_timer(ctx)

    def reset_election_timer(self, ctx: Context) -> None:
        """A randomised timeout, drawn anew at each reset (as Raft §5.2), so that one server
        usually times out first."""
        delay = self.et_min_us + int(self.rng.random() * (self.et_max_us - self.et_min_us))
        self.election_deadline_us = ctx.now_us + delay
        ctx.set_timer("election", delay)

    def tick(self, ctx: Context, name: str) -> None:
        if name == "election" and self.phase != LEADING:
            self.become_preparing(ctx)
        elif name == "heartbeat" and self.phase == LEADING:
            self.send_heartbeats(ctx)

    def command(self, ctx: Context, command: dict) -> None:
        """`timeout`: start phase 1 now (unless already leading)."""
        if command["do"] == "timeout" and self.phase != LEADING:
            ctx.cancel_timer("election")
            self.become_preparing(ctx)

    # --- role changes -------------------------------------------------------------------------
    def become_follower(self, ctx: Context, leader: str | None) -> None:
        """Step aside: a higher ballot exists. Clients waiting on this leader will time out (the
        outcome of their commands is unknown: `info`)."""
        was_leading = self.phase == LEADING
        self.phase = IDLE
        self.leader_id = leader
        self.promises = {}
        self.proposals = {}
        self.acks = {}
        self.pending.clear()
        if was_leading:
            ctx.cancel_timer("heartbeat")
        self.reset_election_timer(ctx)

    def become_preparing(self, ctx: Context) -> None:
        """§3 / §2.2 Phase 1(a) for every slot from the first one this node has not learned: one
        Prepare covers them all. The election timer doubles as the phase-1 timeout."""
        self.ballot = self.next_ballot()
        ctx.persist()  # max_round: a restarted proposer never reuses the ballot
        self.phase = PREPARING
        self.leader_id = None
        self.promises = {}
        self.prepare_slot = self.commit
        self.reset_election_timer(ctx)
        self.bcast(ctx, self.acceptors, {"kind": "Prepare", "ballot": as_json(self.ballot),
                                         "slot": self.prepare_slot})

    def handle_promise(self, ctx: Context, src: str, m: dict) -> None:
        """§2.2 Phase 1(b) replies; q1 of them make this node leader."""
        if self.phase != PREPARING or as_ballot(m["ballot"]) != self.ballot:
            return
        self.promises[src] = m["accepted"]
        if len(self.promises) >= self.q1:
            self.become_leader(ctx)

    def become_leader(self, ctx: Context) -> None:
        """§3: the new leader, having run phase 1 for every slot from `prepare_slot`, proposes in
        each slot up to the highest one reported the value of the highest-ballot proposal its
        quorum reported (P2c), and a no-op where none was reported (a gap). Slots it has learned
        meanwhile are chosen already and skipped. The `ignore_promised_values` mutation proposes
        a no-op everywhere instead."""
        self.phase = LEADING
        self.leader_id = self.id
        ctx.cancel_timer("election")
        self.election_deadline_us = 0
        best: dict[int, tuple[Ballot, object]] = {}
        for src in sorted(self.promises):
            for s, (b, v) in self.promises[src].items():
                s, b = int(s), as_ballot(b)
                if s not in best or b > best[s][0]:
                    best[s] = (b, v)
        self.promises = {}
        top = max(best, default=self.prepare_slot - 1)
        self.next_slot = max(top + 1, self.commit, max(self.learned, default=-1) + 1)
        for s in range(self.prepare_slot, top + 1):
            if s in self.learned:
                continue
            value = best[s][1] if s in best and not self.m_ignore_promised else None
            self.propose(ctx, s, value)
        self.send_heartbeats(ctx)

    def on_promised(self, ctx: Context, b: Ballot) -> None:
        """This node's acceptor promised someone else's higher ballot: its proposer steps aside
        (its own Accepts would be refused), and gives the candidate time (as a Raft vote does)."""
        if self.ballot is not None and b > self.ballot and self.phase != IDLE:
            self.become_follower(ctx, None)
        elif b[1] != self.id:
            self.reset_election_timer(ctx)

    def on_accept_from(self, ctx: Context, src: str, b: Ballot) -> None:
        """An Accept from another node is that node leading at ballot b: hear it as a heartbeat."""
        if src != self.id:
            self.hear_leader(ctx, b)

    def hear_leader(self, ctx: Context, b: Ballot) -> None:
        """A leader of ballot b (at least our promise) is alive: follow it, reset the timer."""
        if self.phase != IDLE and (self.ballot is None or b > self.ballot):
            self.become_follower(ctx, b[1])
            return
        if self.phase == IDLE:
            self.leader_id = b[1]
            self.reset_election_timer(ctx)

    def handle_nack(self, ctx: Context, src: str, m: dict) -> None:
        """A higher promise somewhere: our ballot is stale, so step aside (the node that holds the
        higher ballot leads or will time out; then someone starts phase 1 above it)."""
        higher = as_ballot(m["promised"])
        self.note_round(higher)
        if self.phase != IDLE and as_ballot(m["ballot"]) == self.ballot:
            self.become_follower(ctx, None)

    # --- the leader ---------------------------------------------------------------------------
    def propose(self, ctx: Context, slot: int, value) -> None:
        """§2.2 Phase 2(a) for one slot, at the leader's ballot."""
        self.proposals[slot] = (value, ctx.now_us)
        self.acks[slot] = set()
        self.bcast(ctx, self.acceptors, {"kind": "Accept", "ballot": as_json(self.ballot),
                                         "slot": slot, "value": value})

    def send_heartbeats(self, ctx: Context) -> None:
        """Every heartbeat_ms: tell every server this node leads (and how far the log is chosen);
        re-send the Accepts of slots still unchosen after an interval to the acceptors that did not
        answer (messages are lost)."""
        hb = self.heartbeat_message(ctx)
        for p in self.peers:
            ctx.send(p, hb)
        now = ctx.now_us
        stale = [s for s in sorted(self.proposals) if now - self.proposals[s][1] >= self.heartbeat_us]
        for s in stale[:self.batch]:
            value, _ = self.proposals[s]
            self.proposals[s] = (value, now)
            msg = {"kind": "Accept", "ballot": as_json(self.ballot), "slot": s, "value": value}
            for a in self.acceptors:
                if a not in self.acks[s]:
                    self.send(ctx, a, msg)
        ctx.set_timer("heartbeat", self.heartbeat_us)

    def heartbeat_message(self, ctx: Context) -> dict:
        """The Heartbeat every peer gets (a subclass may add to it: Chubby's master lease)."""
        return {"kind": "Heartbeat", "ballot": as_json(self.ballot), "commit": self.commit}

    def handle_client_request(self, ctx: Context, src: str, m: dict) -> None:
        """Raft §8's client protocol: a non-leader redirects (with a hint when it knows a leader);
        the leader answers a request it already executed from the session table, and otherwise
        proposes the command (reads too) in the next free slot and answers once it is applied."""
        if self.phase != LEADING:
            hint = self.leader_id if self.leader_id != self.id else None
            ctx.send(src, {"kind": "ClientReply", "req": m["req"], "ok": False,
                           "error": "not_leader", "leader": hint})
            return
        done = self.store.answered(m["client"], m["req"])
        if done is not None:
            ctx.send(src, {"kind": "ClientReply", "req": m["req"], "ok": done[0], "value": done[1]})
            return
        cmd = {"client": m["client"], "req": m["req"], "op": m["op"], "key": m["key"],
               "value": m["value"]}
        slot = self.next_slot
        self.next_slot += 1
        self.pending[slot] = (m["client"], m["req"])
        self.propose(ctx, slot, cmd)

    def handle_catch_up(self, ctx: Context, src: str, m: dict) -> None:
        """A lagging learner asks for the chosen values from `slot` on; the leader sends what it
        has learned there (a batch), in a Heartbeat's `chosen`."""
        if self.phase != LEADING or as_ballot(m["ballot"]) != self.ballot:
            return
        lo = m["slot"]
        chosen = {str(s): self.learned[s] for s in range(lo, min(self.commit, lo + self.batch))}
        ctx.send(src, {"kind": "Heartbeat", "ballot": as_json(self.ballot), "commit": self.commit,
                       "chosen": chosen})

    # --- followers ------------------------------------------------------------------------------
    def handle_heartbeat(self, ctx: Context, src: str, m: dict) -> None:
        """A leader's heartbeat at a ballot at least our promise: follow it. Below our promise: a
        Nack, so the stale leader steps aside. Chosen values it carries are learned; if the
        leader's log is chosen further than ours, ask for the rest (CatchUp)."""
        b = as_ballot(m["ballot"])
        self.note_round(b)
        if not at_least(b, self.promised):
            ctx.send(src, {"kind": "Nack", "ballot": m["ballot"], "slot": m["commit"],
                           "promised": as_json(self.promised)})
            return
        self.hear_leader(ctx, b)
        for s, v in m.get("chosen", {}).items():
            self.learn(ctx, int(s), v)
        if m["commit"] > self.commit and not m.get("chosen"):
            ctx.send(src, {"kind": "CatchUp", "ballot": m["ballot"], "slot": self.commit})

    # --- learning and the state machine -------------------------------------------------------
    def handle_accepted(self, ctx: Context, src: str, m: dict) -> None:
        """§2.3 (base); the leader also notes who accepted its own proposals (for re-sending)."""
        slot = m["slot"]
        if self.phase == LEADING and slot in self.acks and as_ballot(m["ballot"]) == self.ballot:
            self.acks[slot].add(src)
        super().handle_accepted(ctx, src, m)

    def on_learned(self, ctx: Context, slot: int, value) -> None:
        """A slot is chosen: the leader stops re-sending it; the prefix that is learned is
        applied."""
        self.proposals.pop(slot, None)
        self.acks.pop(slot, None)
        learned = self.learned
        while self.commit in learned:
            self.commit += 1
        if self.next_slot <= slot and self.phase == LEADING:
            self.next_slot = slot + 1
        self.apply_chosen(ctx)

    def apply_chosen(self, ctx: Context) -> None:
        """Apply the chosen prefix in slot order (§3: "executes ... in order"), each client command
        once (Raft §8 sessions); the leader answers the client that is waiting for the slot."""
        while self.applied < self.commit:
            slot = self.applied
            self.applied += 1
            cmd = self.learned[slot]
            if cmd is None:
                continue  # a no-op fills a gap
            self.execute(ctx, slot, cmd)

    def execute(self, ctx: Context, slot: int, cmd: dict) -> None:
        """Apply one chosen command to the state machine (the key-value store here; a subclass
        replicates another: Chubby's lock database). The leader answers the waiting client."""
        done = self.store.execute(cmd)
        waiting = self.pending.pop(slot, None)
        if waiting is not None and waiting == (cmd["client"], cmd["req"]):
            ctx.send(cmd["client"], {"kind": "ClientReply", "req": cmd["req"], "ok": done[0],
                                     "value": done[1]})

    # --- what the outside sees ------------------------------------------------------------------
    def window(self) -> tuple[int, int]:
        """The slots the page shows: the last VIEW_SLOTS up to the highest slot anyone here
        knows."""
        hi = max(self.next_slot, self.commit, max(self.accepted, default=-1) + 1,
                 max(self.learned, default=-1) + 1)
        return max(0, hi - VIEW_SLOTS), hi

    def view(self, now_us: int) -> dict:
        lo, hi = self.window()
        return {
            "kind": "paxos", "mode": "multi", "roles": self.trace_roles(), "role": self.role,
            "leader": self.phase == LEADING, "leader_id": self.leader_id,
            "ballot": as_json(self.ballot), "phase": self.phase, "promised": as_json(self.promised),
            "window": [lo, hi], "accepted": self.accepted_view(lo, hi),
            "learned": {str(s): v for s, v in sorted(self.learned.items()) if lo <= s < hi},
            "commit": self.commit, "applied": self.applied, "kv": dict(sorted(self.store.kv.items())),
            "next_slot": self.next_slot if self.phase == LEADING else None,
            "proposing": sorted(self.proposals),
            "election_deadline": self.election_deadline_us / 1000 if self.phase != LEADING else None,
        }

    def digest_state(self):
        return self.base_digest() + [
            self.commit, self.applied, self.store.digest(), self.leader_id,
            self.election_deadline_us, self.prepare_slot, sorted(self.promises.items()),
            self.next_slot, sorted([s, v[0], v[1]] for s, v in self.proposals.items()),
            sorted([s, sorted(a)] for s, a in self.acks.items()), sorted(self.pending.items())]

