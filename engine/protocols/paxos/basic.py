"""Single-decree Paxos, as in "Paxos Made Simple" (Lamport, 2001), §2.

One decree: every message carries `slot: 0`. A proposer with a value (from the config's
`proposals`, or a `propose` command) runs rounds until it learns that a value was chosen (when it
is a learner too) or until its own phase 2 reached a quorum:

- Phase 1(a) `become_preparing`: pick a ballot above every round seen, send Prepare to the acceptors.
- Phase 2(a) `become_accepting`: with promises from a phase-1 quorum (q1), propose the value of the
  highest-ballot proposal any of them accepted, or its own value when none did.
- A Nack (an acceptor promised a higher ballot) or a round that does not finish in
  `retry_timeout_ms` abandons the round: the proposer retries, at once or after a randomised
  exponential back-off (`backoff`). Without back-off two proposers can preempt each other forever
  (§2.4: "it's easy to construct a scenario in which two proposers each keep issuing a sequence of
  proposals with increasing numbers, none of which are ever chosen"); with it, one soon finishes.

The acceptor and learner are in `base.py`.
"""

from __future__ import annotations

from ...node import Context
from .ballot import as_ballot, as_json
from .base import ACCEPTING, IDLE, PREPARING, PaxosNode
from .config import LEARNER, PROPOSER

SLOT = 0
BACKOFF_DOUBLINGS_MAX = 4  # the back-off window stops growing at 16 x backoff_ms


class BasicPaxosNode(PaxosNode):
    def __init__(self, node_id, peers, config, rng, persistent=None):
        super().__init__(node_id, peers, config, rng, persistent)
        self.retry_us = int(config.retry_timeout_ms * 1000)
        self.backoff_us = int(config.backoff_ms * 1000)
        self.backoff = config.backoff
        self.value = config.proposals.get(node_id)  # what this proposer wants chosen
        self.proposed = None  # the value of the current round's Accept (phase 2)
        self.promises: dict[str, object] = {}  # acceptor -> its report: [ballot, value] or None
        self.accepts: set[str] = set()  # acceptors that accepted the current ballot
        self.attempts = 0  # rounds abandoned since the last success (sizes the back-off window)
        self.done = False  # this proposer knows its decree is decided

    # --- inputs -------------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """A proposer with a value starts at once (after a restart too: its learner, if any, has
        forgotten what was chosen, and §2.3 says a learner that needs to know "can have a
        proposer issue a proposal")."""
        if PROPOSER in self.roles and self.value is not None:
            self.become_preparing(ctx)

    def command(self, ctx: Context, command: dict) -> None:
        """`propose` {value}: propose this value from now on (a new round at once; if a value was
        already chosen, phase 1 finds it and the round proposes it again). `timeout`: abandon the
        current round and start the next one now."""
        if PROPOSER not in self.roles:
            return
        if command["do"] == "propose":
            self.value = command["value"]
            self.done = False
            self.attempts = 0
            self.become_preparing(ctx)
        elif command["do"] == "timeout" and self.value is not None:
            self.done = False
            self.become_preparing(ctx)

    def tick(self, ctx: Context, name: str) -> None:
        if name == "retry" and self.phase in (PREPARING, ACCEPTING):
            self.maybe_retry(ctx)  # the round did not finish in time (lost messages, crashes)
        elif name == "backoff" and not self.done:
            self.become_preparing(ctx)

    # --- proposer -------------------------------------------------------------------------------
    def become_preparing(self, ctx: Context) -> None:
        """§2.2 Phase 1(a): "A proposer selects a proposal number n and sends a prepare request
        with number n to a majority of acceptors" (here: to every acceptor; the first q1 promises
        count)."""
        ctx.cancel_timer("backoff")
        self.ballot = self.next_ballot()
        ctx.persist()  # max_round: a restarted proposer never reuses the ballot
        self.phase = PREPARING
        self.promises = {}
        self.accepts = set()
        self.proposed = None
        ctx.set_timer("retry", self.retry_us)
        self.bcast(ctx, self.acceptors, {"kind": "Prepare", "ballot": as_json(self.ballot), "slot": SLOT})

    def handle_promise(self, ctx: Context, src: str, m: dict) -> None:
        """§2.2 Phase 2(a) begins "if the proposer receives a response to its prepare requests
        (numbered n) from a majority of acceptors" (q1 of them, Flexible Paxos)."""
        if self.phase != PREPARING or as_ballot(m["ballot"]) != self.ballot:
            return  # a promise for an earlier round, or a duplicate after phase 1 ended
        self.promises[src] = m["accepted"].get(str(SLOT))
        if len(self.promises) >= self.q1:
            self.become_accepting(ctx)

    def choose_value(self):
        """§2.2 Phase 2(a): "v is the value of the highest-numbered proposal among the responses,
        or is any value if the responses reported no proposals" (P2c). The
        `ignore_promised_values` mutation always takes the proposer's own value."""
        best = None
        for src in sorted(self.promises):
            rep = self.promises[src]
            if rep is not None and (best is None or as_ballot(rep[0]) > as_ballot(best[0])):
                best = rep
        if best is None or self.m_ignore_promised:
            return self.value
        return best[1]

    def become_accepting(self, ctx: Context) -> None:
        """§2.2 Phase 2(a): send an accept request for (n, v) to the acceptors."""
        self.phase = ACCEPTING
        self.proposed = self.choose_value()
        self.bcast(ctx, self.acceptors, {"kind": "Accept", "ballot": as_json(self.ballot),
                                         "slot": SLOT, "value": self.proposed})

    def handle_accepted(self, ctx: Context, src: str, m: dict) -> None:
        """§2.3 for the learner (base); the proposer also counts acceptances of its own ballot: a
        phase-2 quorum means its proposal is chosen and it can stop."""
        if self.phase == ACCEPTING and as_ballot(m["ballot"]) == self.ballot:
            self.accepts.add(src)
            if len(self.accepts) >= self.phase2_needed:
                self.become_done(ctx)
        super().handle_accepted(ctx, src, m)

    def on_learned(self, ctx: Context, slot: int, value) -> None:
        if PROPOSER in self.roles:
            self.become_done(ctx)

    def become_done(self, ctx: Context) -> None:
        """The decree is decided: nothing more to propose."""
        self.done = True
        self.attempts = 0
        self.phase = IDLE
        ctx.cancel_timer("retry")
        ctx.cancel_timer("backoff")

    def handle_nack(self, ctx: Context, src: str, m: dict) -> None:
        """An acceptor promised a higher ballot: this round cannot succeed there. Jump above it
        (the next ballot is above every round seen) and retry."""
        self.note_round(as_ballot(m["promised"]))
        if self.phase in (PREPARING, ACCEPTING) and as_ballot(m["ballot"]) == self.ballot:
            self.maybe_retry(ctx)

    def on_promised(self, ctx: Context, b) -> None:
        """§2.2: "a proposer should abandon a proposal if some proposer has begun trying to issue a
        higher-numbered one"; this node's own acceptor just promised such a one."""
        if self.phase in (PREPARING, ACCEPTING) and b > self.ballot:
            self.maybe_retry(ctx)

    def maybe_retry(self, ctx: Context) -> None:
        """Abandon the round. §2.4: progress needs one distinguished proposer; short of electing
        one, a randomised exponential back-off makes it likely that one proposer's two phases run
        undisturbed. Without back-off the next round starts at once."""
        self.phase = IDLE
        ctx.cancel_timer("retry")
        if self.done or self.value is None:
            return
        self.attempts += 1
        if not self.backoff:
            self.become_preparing(ctx)
            return
        window = self.backoff_us << min(self.attempts - 1, BACKOFF_DOUBLINGS_MAX)
        ctx.set_timer("backoff", 1 + int(self.rng.random() * window))

    # --- what the outside sees ------------------------------------------------------------------
    def view(self, now_us: int) -> dict:
        v = {"kind": "paxos", "mode": "basic", "roles": list(self.roles), "role": self.role,
             "leader": False}
        if PROPOSER in self.roles:
            v.update(ballot=as_json(self.ballot), phase=self.phase, value=self.value,
                     proposed=self.proposed, promises=sorted(self.promises),
                     accepts=sorted(self.accepts), attempts=self.attempts, done=self.done)
        if "acceptor" in self.roles:
            v.update(promised=as_json(self.promised), accepted=self.accepted_view(0, 1))
        if LEARNER in self.roles:
            v["learned"] = {str(s): x for s, x in sorted(self.learned.items())}
        return v

    def digest_state(self):
        return self.base_digest() + [self.value, self.proposed, sorted(self.promises.items()),
                                     sorted(self.accepts), self.attempts, self.done]
