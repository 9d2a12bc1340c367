"""What every Paxos node shares: the acceptor, the learner, local delivery and the trace's state.

"Paxos Made Simple" (Lamport, 2001) names three roles: proposers, acceptors and learners (§2.1).
A node may play several; then the messages between its own roles never touch the network: a
message to itself is queued in `_inbox` and handled right after the input that caused it, in order,
inside the same kernel step (as Raft counts its own vote at once).

Acceptor state (`promised`, and `accepted` per slot) and the highest round this node's proposer
ever used are on stable storage (§2.5: "an acceptor must remember this information even if it
fails and then restarts"; "each proposer remembers (in stable storage) the highest-numbered
proposal it has tried to issue"). Everything else is volatile: a restart builds a fresh node from
`persistent_state()`.

Single-decree Paxos is slot 0 of the same structures; Multi-Paxos uses every slot, with one
promise covering all of them (§3: phase 1 is run once for infinitely many instances).
"""

from __future__ import annotations

from typing import Any

from ...node import Context, Node
from .ballot import Ballot, above, as_ballot, as_json, at_least
from .config import ACCEPTOR, LEARNER, PROPOSER, PaxosConfig

IDLE, PREPARING, ACCEPTING, LEADING = "idle", "preparing", "accepting", "leading"


class PaxosNode(Node):
    kind = "server"
    # message kind -> handler method (subclasses extend it)
    handlers = {"Prepare": "handle_prepare", "Accept": "handle_accept", "Accepted": "handle_accepted",
                "Promise": "handle_promise", "Nack": "handle_nack"}

    def __init__(self, node_id: str, peers: list[str], config: PaxosConfig, rng, persistent=None):
        super().__init__(node_id, peers, config, rng)
        servers = sorted([node_id, *peers])
        self.servers = servers
        self.roles = config.roles_of(node_id)
        self.acceptors = config.members(servers, ACCEPTOR)
        self.learners = config.members(servers, LEARNER)
        q = config.quorums(servers)
        self.q1, self.q2 = q.q1, q.q2
        muts = set(config.mutations)
        self.m_accept_lower = "accept_lower_ballot" in muts
        self.m_ignore_promised = "ignore_promised_values" in muts
        # Phase 2's count (proposer and learners alike): the mutations lower it.
        self.phase2_needed = self.q2
        if "quorum_minus_one" in muts:
            self.phase2_needed = max(1, self.q2 - 1)
        if "learn_without_majority" in muts:
            self.learn_needed = 1
        else:
            self.learn_needed = self.phase2_needed

        # Stable storage (§2.5). Invariant (P1a, unless `accept_lower_ballot`): every accepted
        # ballot is at most `promised`, and `promised` never decreases.
        if persistent is None:
            self.promised: Ballot | None = None
            self.accepted: dict[int, tuple[Ballot, Any]] = {}  # slot -> (ballot, value)
            self.max_round = 0
        else:
            promised, accepted, self.max_round = persistent
            self.promised = as_ballot(promised)
            self.accepted = {s: (as_ballot(b), v) for s, (b, v) in accepted.items()}
        # Learner (volatile). Invariant: a slot is in `votes` only while it is not learned.
        self.votes: dict[int, dict[Ballot, dict[str, Any]]] = {}  # slot -> ballot -> acceptor -> value
        self.learned: dict[int, Any] = {}
        # Proposer (volatile, apart from max_round).
        self.ballot: Ballot | None = None
        self.phase = IDLE
        self._inbox: list[dict] = []  # messages to this node's own roles, not yet handled
        # What the trace has been told: state records carry only the slots that changed.
        self._told: tuple | None = None
        # (A restarted acceptor's state is the one it had: like a Raft log, it is not re-reported.)
        self._accepted_changed: set[int] = set()
        self._learned_changed: set[int] = set()

    # --- plumbing -------------------------------------------------------------------------------
    def persistent_state(self):
        return (as_json(self.promised), {s: (as_json(b), v) for s, (b, v) in self.accepted.items()},
                self.max_round)

    def send(self, ctx: Context, to: str, msg: dict) -> None:
        """Send over the network, or to this node's own roles through the inbox."""
        if to == self.id:
            self._inbox.append(msg)
        else:
            ctx.send(to, msg)

    def bcast(self, ctx: Context, targets: list[str], msg: dict) -> None:
        for t in targets:
            self.send(ctx, t, msg)

    def _drain(self, ctx: Context) -> None:
        """Handle the messages this node sent itself, in the order sent (FIFO)."""
        inbox = self._inbox
        while inbox:
            self.step(ctx, self.id, inbox.pop(0))

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        self.step(ctx, src, msg)
        self._drain(ctx)

    def on_timer(self, ctx: Context, name: str) -> None:
        self.tick(ctx, name)
        self._drain(ctx)

    def on_command(self, ctx: Context, command: dict) -> None:
        self.command(ctx, command)
        self._drain(ctx)

    def step(self, ctx: Context, src: str, m: dict) -> None:
        """One message, to the handler its kind names (unknown kinds are ignored)."""
        name = self.handlers.get(m["kind"])
        if name is not None:
            getattr(self, name)(ctx, src, m)

    def tick(self, ctx: Context, name: str) -> None:
        """A timer fired (subclasses)."""

    def command(self, ctx: Context, command: dict) -> None:
        """A user command (subclasses)."""

    def note_round(self, b: Ballot | None) -> None:
        """Remember the highest round seen, so the next ballot is above it (§2.5)."""
        if b is not None and b[0] > self.max_round:
            self.max_round = b[0]

    def next_ballot(self) -> Ballot:
        """§2.5: a proposer "begins phase 1 with a higher-numbered proposal than any it has already
        used"; above every round it has seen too, so one attempt can overtake a rival. max_round is
        on stable storage, so a restarted proposer never reuses a ballot (which could carry
        another value: Voting.tla's OneValuePerBallot)."""
        self.note_round(self.promised)
        self.max_round += 1
        return (self.max_round, self.id)

    # --- acceptor (§2.2 Phase 1(b), Phase 2(b)) --------------------------------------------------
    def promise_report(self, from_slot: int) -> dict:
        """What a Promise carries: every accepted (ballot, value) at slots >= from_slot."""
        return {str(s): [as_json(b), v] for s, (b, v) in sorted(self.accepted.items()) if s >= from_slot}

    def handle_prepare(self, ctx: Context, src: str, m: dict) -> None:
        """§2.2 Phase 1(b): "If an acceptor receives a prepare request with number n greater than
        that of any prepare request to which it has already responded, then it responds to the
        request with a promise not to accept any more proposals numbered less than n and with the
        highest-numbered proposal (if any) that it has accepted." A prepare equal to the promise (a
        duplicate) is answered again: the same promise. Otherwise a Nack names the higher promise,
        so the proposer can jump ahead."""
        if ACCEPTOR not in self.roles:
            return
        b = as_ballot(m["ballot"])
        if not self.maybe_promise(ctx, src, m, b, keep_promise=True):
            return
        self.send(ctx, src, {"kind": "Promise", "ballot": m["ballot"], "slot": m["slot"],
                             "accepted": self.promise_report(m["slot"])})

    def handle_accept(self, ctx: Context, src: str, m: dict) -> None:
        """§2.2 Phase 2(b): "If an acceptor receives an accept request for a proposal numbered n,
        it accepts the proposal unless it has already responded to a prepare request having a
        number greater than n." Accepting n also promises n (Lamport's Paxos.tla, Phase2b). The
        acceptance goes to every learner (§2.3) and to the proposer. Invariant (without
        `accept_lower_ballot`): accepted[slot].ballot <= promised."""
        if ACCEPTOR not in self.roles:
            return
        b = as_ballot(m["ballot"])
        if not self.maybe_promise(ctx, src, m, b, keep_promise=not self.m_accept_lower):
            return
        slot = m["slot"]
        if self.accepted.get(slot) != (b, m["value"]):
            self.accepted[slot] = (b, m["value"])
            self._accepted_changed.add(slot)
            ctx.persist()  # §2.2 (and "Paxos Made Live" §3): accepted before Accepted leaves
        self.on_accept_from(ctx, src, b)
        reply = {"kind": "Accepted", "ballot": m["ballot"], "slot": slot, "value": m["value"]}
        self.bcast(ctx, self.learners, reply)
        if b[1] not in self.learners:
            self.send(ctx, b[1], reply)  # a proposer that is not a learner still hears

    def maybe_promise(self, ctx: Context, src: str, m: dict, b: Ballot, keep_promise: bool) -> bool:
        """The acceptor's common rule for a Prepare or Accept of ballot b: below the promise it is
        refused with a Nack naming the promise (unless `keep_promise` is off: the
        `accept_lower_ballot` mutation); above it, b becomes the promise. Returns whether to go
        on."""
        self.note_round(b)
        if not at_least(b, self.promised):
            if keep_promise:
                self.send(ctx, src, {"kind": "Nack", "ballot": m["ballot"], "slot": m["slot"],
                                     "promised": as_json(self.promised)})
                return False
            return True
        if above(b, self.promised):
            self.promised = b
            ctx.persist()  # the promise is on stable storage before the Promise leaves
            self.on_promised(ctx, b)
        return True

    def on_promised(self, ctx: Context, b: Ballot) -> None:
        """This node's acceptor promised a higher ballot (subclasses: a proposer steps aside)."""

    def on_accept_from(self, ctx: Context, src: str, b: Ballot) -> None:
        """This node's acceptor accepted a proposal of ballot b (subclasses: hear the leader)."""

    # --- learner (§2.3) ---------------------------------------------------------------------------
    def handle_accepted(self, ctx: Context, src: str, m: dict) -> None:
        """§2.3: "the obvious algorithm is to have each acceptor, whenever it accepts a proposal,
        respond to all learners, sending them the proposal." A learner learns a value when a
        quorum (q2) of acceptors accepted it in one ballot. Votes from different ballots are
        never added up."""
        slot = m["slot"]
        if LEARNER not in self.roles or slot in self.learned:
            return
        b = as_ballot(m["ballot"])
        by_ballot = self.votes.setdefault(slot, {})
        voters = by_ballot.setdefault(b, {})
        voters[src] = m["value"]
        if len(voters) >= self.learn_needed:
            self.learn(ctx, slot, m["value"])

    def learn(self, ctx: Context, slot: int, value) -> None:
        """Record a learned value (and forget the slot's votes)."""
        if slot in self.learned:
            return
        self.learned[slot] = value
        self._learned_changed.add(slot)
        self.votes.pop(slot, None)
        self.on_learned(ctx, slot, value)

    def on_learned(self, ctx: Context, slot: int, value) -> None:
        """Subclasses: a proposer stops, a replica applies."""

    # --- proposer hooks -------------------------------------------------------------------------
    def handle_promise(self, ctx: Context, src: str, m: dict) -> None:
        """§2.2 Phase 1(b) reply (subclasses)."""

    def handle_nack(self, ctx: Context, src: str, m: dict) -> None:
        """A rejection naming a higher promise (subclasses)."""

    # --- what the outside sees ------------------------------------------------------------------
    def trace_roles(self) -> list[str]:
        return [("leader" if r == PROPOSER and self.phase == LEADING else r) for r in self.roles]

    @property
    def role(self) -> str:
        """One word for the kernel's `roles()` (the nemesis aims at "leader")."""
        return "leader" if self.phase == LEADING else self.roles[0]

    def take_state(self) -> dict | None:
        roles = self.trace_roles()
        told = (tuple(roles), self.ballot, self.phase, self.promised)
        if told == self._told and not self._accepted_changed and not self._learned_changed:
            return None
        self._told = told
        rec: dict = {"role": roles[0] if len(roles) == 1 else roles}
        if PROPOSER in self.roles:
            rec["ballot"] = as_json(self.ballot)
            rec["phase"] = self.phase
        if ACCEPTOR in self.roles:
            rec["promised"] = as_json(self.promised)
            if self._accepted_changed:
                acc = self.accepted
                rec["accepted"] = {str(s): [as_json(acc[s][0]), acc[s][1]]
                                   for s in sorted(self._accepted_changed)}
                self._accepted_changed = set()
        if LEARNER in self.roles and self._learned_changed:
            rec["learned"] = {str(s): self.learned[s] for s in sorted(self._learned_changed)}
            self._learned_changed = set()
        return rec

    def down_state(self) -> dict:
        self._told = None
        rec: dict = {"role": "down"}
        if ACCEPTOR in self.roles:
            rec["promised"] = as_json(self.promised)
        return rec

    def accepted_view(self, lo: int, hi: int) -> dict:
        return {str(s): [as_json(b), v] for s, (b, v) in sorted(self.accepted.items()) if lo <= s < hi}

    def base_digest(self) -> list:
        return [self.roles, as_json(self.promised), self.accepted_view(0, 1 << 62), self.max_round,
                [[s, sorted([as_json(b), sorted(vs)] for b, vs in by.items())]
                 for s, by in sorted(self.votes.items())],
                sorted([str(s), v] for s, v in self.learned.items()), as_json(self.ballot), self.phase]
