"""Raft, as in "In Search of an Understandable Consensus Algorithm (Extended Version)" (Ongaro and
Ousterhout, 2014), Figure 2, with the extensions of Ongaro's thesis (2014) named where used:
PreVote (§9.6), CheckQuorum (§6.2), leadership transfer (§3.10).

Indices are 1-based as in the paper; `self.log[i - 1]` is entry i, a `(term, command)` tuple, with
`command = None` for the no-op a leader appends on election (§8). The key-value state machine is
volatile: it is rebuilt by re-applying committed entries after a restart.

Per-role behaviour is a method swapped on role change (`_step`), as in etcd/raft.
"""

from __future__ import annotations

from ...node import Context, Node

FOLLOWER, CANDIDATE, LEADER, PRE_CANDIDATE = "follower", "candidate", "leader", "pre-candidate"
SESSION_MEMORY = 64  # responses remembered per client (at least; at most twice as many): clients
# have at most a few requests open


class RaftNode(Node):
    kind = "server"
    # Slots: a Raft server has more attributes than CPython 3.11 shares between instance dicts
    # (30), and beyond that every attribute access is a dict lookup; slots make them offsets.
    __slots__ = (
        "et_min_us", "et_max_us", "heartbeat_us", "max_entries", "pre_vote", "check_quorum",
        "overlap_vote_write", "self_vote_pending", "leader_parallel_write", "durable_index",
        "m_commit_previous_term", "m_vote_without_log_check", "m_forget_vote", "quorum",
        "current_term", "voted_for", "log", "commit_index", "last_applied", "kv", "sessions",
        "role", "leader_id", "election_deadline_us", "last_leader_contact_us", "votes",
        "next_index", "match_index", "last_sent_us", "recent_active", "pending", "transfer_to",
        "transfer_deadline_us", "_told", "_log_told_len", "_log_keep", "_step", "lagging", "lag_from",
    )

    def __init__(self, node_id, peers, config, rng, persistent=None):
        super().__init__(node_id, peers, config, rng)
        cfg = config
        self.et_min_us = int(cfg.election_timeout_ms_min * 1000)
        self.et_max_us = int(cfg.election_timeout_ms_max * 1000)
        self.heartbeat_us = int(cfg.heartbeat_ms * 1000)
        self.max_entries = cfg.max_entries_per_append
        self.pre_vote = cfg.pre_vote
        self.check_quorum = cfg.check_quorum
        self.overlap_vote_write = cfg.overlap_vote_write
        self.self_vote_pending = False  # our own vote is being written (overlap_vote_write)
        self.leader_parallel_write = cfg.leader_parallel_write
        self.durable_index = 0  # a leader's log known durable (leader_parallel_write)
        muts = set(cfg.mutations)
        self.m_commit_previous_term = "commit_previous_term" in muts
        self.m_vote_without_log_check = "vote_without_log_check" in muts
        self.m_forget_vote = "forget_vote_on_restart" in muts
        self.quorum = (len(peers) + 1) // 2 + 1

        # Persistent state on all servers (Figure 2), restored after a crash.
        if persistent is None:
            self.current_term = 0
            self.voted_for: str | None = None
            self.log: list[tuple] = []  # entries are never changed in place: shared, not copied
        else:
            self.current_term, self.voted_for, log = persistent
            self.log = [tuple(e) for e in log]
            if self.m_forget_vote:
                self.voted_for = None  # the mutation: votedFor was never on stable storage
        # Volatile state on all servers.
        self.commit_index = 0
        self.last_applied = 0
        self.kv: dict[str, object] = {}
        self.sessions: dict[str, dict] = {}  # client -> {serial: response} (§8)
        self.role = FOLLOWER
        self.leader_id: str | None = None
        self.election_deadline_us = 0
        self.last_leader_contact_us = -10**15  # for the leader-lease check (thesis §4.2.3)
        # Volatile state on candidates and leaders.
        self.votes: set[str] = set()
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.last_sent_us: dict[str, int] = {}  # when each follower was last sent AppendEntries
        self.recent_active: set[str] = set()
        self.pending: dict[int, tuple[str, int]] = {}  # log index -> (client, req) to answer
        self.transfer_to: str | None = None
        self.transfer_deadline_us = 0
        self.lagging: frozenset[str] = frozenset()  # followers sent no entries past lag_from (`lag`)
        self.lag_from = 0
        # What the trace has been told (so state records carry only changes).
        self._told: tuple | None = None
        self._log_told_len = len(self.log)
        self._log_keep = len(self.log)  # lowest prefix untouched since the last record
        self._step = self._step_follower

    # ------------------------------------------------------------------------------------------
    # helpers
    def last_index(self) -> int:
        return len(self.log)

    def term_at(self, index: int) -> int:
        return self.log[index - 1][0] if index >= 1 else 0

    def last_term(self) -> int:
        return self.log[-1][0] if self.log else 0

    def _truncate(self, keep: int) -> None:
        del self.log[keep:]
        if keep < self._log_keep:
            self._log_keep = keep

    def _reset_election_timer(self, ctx: Context) -> None:
        """§5.2: election timeouts are chosen randomly from a fixed interval, anew at each reset."""
        delay = self.et_min_us + int(self.rng.random() * (self.et_max_us - self.et_min_us))
        self.election_deadline_us = ctx.now_us + delay
        ctx.set_timer("election", delay)

    def persistent_state(self):
        return (self.current_term, self.voted_for, list(self.log))

    # ------------------------------------------------------------------------------------------
    # role changes
    def on_start(self, ctx: Context) -> None:
        self._reset_election_timer(ctx)

    def become_follower(self, ctx: Context, term: int, leader: str | None) -> None:
        """§5.1: a server that sees a higher term (or a current leader) reverts to follower."""
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
            ctx.persist()  # Figure 2: currentTerm is persistent state
        was_leader = self.role == LEADER
        self.role = FOLLOWER
        self.leader_id = leader
        self._step = self._step_follower
        self.votes = set()
        self.transfer_to = None
        if was_leader:
            ctx.cancel_timer("heartbeat")
            self.pending.clear()  # clients will time out: the outcome is unknown (info)
        if was_leader or self.election_deadline_us <= ctx.now_us:
            # Figure 2 resets a running timer only on AppendEntries from the current leader or on
            # granting a vote (both do it themselves); seeing a higher term does not, so that a
            # candidate with a stale log cannot keep pushing back the up-to-date servers' timers.
            self._reset_election_timer(ctx)

    def become_pre_candidate(self, ctx: Context) -> None:
        """Thesis §9.6 (PreVote): ask whether we could win before disturbing anyone's term."""
        self.role = PRE_CANDIDATE
        self._step = self._step_candidate
        self.leader_id = None
        self.votes = {self.id}
        self._reset_election_timer(ctx)
        self._broadcast_vote_request(ctx, pre_vote=True, transfer=False)

    def become_candidate(self, ctx: Context, transfer: bool = False) -> None:
        """§5.2: increment currentTerm, vote for self, reset the election timer, send RequestVote.

        By default the new term and the vote for itself are durable before RequestVote leaves
        (LogCabin's order: RaftConsensus::startNewElection writes them, holding its lock, before
        the peer threads send). With `overlap_vote_write` (thesis §9.3: "this time can be
        overlapped with the RequestVote messages (with this optimization, the candidate may not
        count its own vote towards leadership until the vote is durably recorded)") RequestVote
        leaves at once and the candidate's own vote counts only when `on_written` says so."""
        self.current_term += 1
        self.voted_for = self.id
        ctx.persist()
        self.role = CANDIDATE
        self._step = self._step_candidate
        self.leader_id = None
        self._reset_election_timer(ctx)
        self.self_vote_pending = self.overlap_vote_write and ctx.write_pending()
        if self.self_vote_pending:
            self.votes = set()
            self._broadcast_vote_request(ctx, pre_vote=False, transfer=transfer, now=True)
            return
        self.votes = {self.id}
        if len(self.votes) >= self.quorum:
            self.become_leader(ctx)
            return
        self._broadcast_vote_request(ctx, pre_vote=False, transfer=transfer)

    def on_written_vote(self, ctx: Context) -> None:
        """Thesis §9.3: a candidate's own vote counts once it is durably recorded (with
        `overlap_vote_write`; writes complete in order, so none pending means it is)."""
        if ctx.write_pending():
            return
        self.self_vote_pending = False
        if self.role != CANDIDATE:
            return  # stepped down meanwhile: the vote no longer matters
        self.votes.add(self.id)
        if len(self.votes) >= self.quorum:
            self.become_leader(ctx)

    def on_written(self, ctx: Context) -> None:
        """What a completed write means to us: a candidate's own vote counts (thesis §9.3); a
        leader's own match index advances (thesis §10.2.1)."""
        if self.self_vote_pending:
            self.on_written_vote(ctx)
        elif self.role == LEADER and self.leader_parallel_write and not ctx.write_pending():
            self.maybe_commit(ctx)

    def _broadcast_vote_request(self, ctx: Context, pre_vote: bool, transfer: bool,
                                now: bool = False) -> None:
        """§5.2: send RequestVote to every other server (a pre-vote asks about the next term
        without taking it, thesis §9.6; a transfer's request is marked, thesis §3.10). `now`:
        without waiting for our pending write (thesis §9.3, `overlap_vote_write`)."""
        msg = {"kind": "RequestVote", "term": self.current_term + (1 if pre_vote else 0),
               "candidate": self.id, "last_log_index": self.last_index(),
               "last_log_term": self.last_term()}
        if pre_vote:
            msg["pre_vote"] = True
        if transfer:
            msg["transfer"] = True
        send = ctx.send_now if now else ctx.send
        for p in self.peers:
            send(p, msg)

    def become_leader(self, ctx: Context) -> None:
        """§5.2/§5.3: initialise nextIndex and matchIndex; §8: append a no-op from this term."""
        self.role = LEADER
        self._step = self._step_leader
        self.leader_id = self.id
        ctx.cancel_timer("election")
        self.election_deadline_us = 0
        self.next_index = {p: self.last_index() + 1 for p in self.peers}
        self.match_index = {p: 0 for p in self.peers}
        self.last_sent_us = {}
        self.recent_active = set()
        self.lagging = frozenset()
        if self.leader_parallel_write:
            self.durable_index = 0 if ctx.write_pending() else self.last_index()
        self.log.append((self.current_term, None))
        ctx.persist()
        self.bcast_append(ctx)
        ctx.set_timer("heartbeat", self.heartbeat_us)
        if self.check_quorum:
            ctx.set_timer("check_quorum", self.et_min_us)
        self.maybe_commit(ctx)

    # ------------------------------------------------------------------------------------------
    # inputs
    def on_timer(self, ctx: Context, name: str) -> None:
        """Figure 2, Rules for Servers: the election timeout (§5.2), the leader's heartbeats, and
        the CheckQuorum period (thesis §6.2)."""
        if name == "election":
            self.handle_election_timeout(ctx)
        elif name == "heartbeat" and self.role == LEADER:
            self.send_heartbeats(ctx)
            if self.transfer_to and ctx.now_us >= self.transfer_deadline_us:
                self.transfer_to = None  # §3.10: abort a transfer that did not finish in time
        elif name == "check_quorum" and self.role == LEADER:
            self.handle_check_quorum(ctx)

    def handle_election_timeout(self, ctx: Context) -> None:
        """§5.2: a follower (or candidate) that hears nothing starts an election."""
        if self.role == LEADER:
            return
        if self.pre_vote:
            self.become_pre_candidate(ctx)
        else:
            self.become_candidate(ctx)

    def handle_check_quorum(self, ctx: Context) -> None:
        """Thesis §6.2: a leader steps down if it has not heard from a majority for a timeout."""
        active = len(self.recent_active) + 1
        self.recent_active = set()
        if active < self.quorum:
            self.become_follower(ctx, self.current_term, None)
        else:
            ctx.set_timer("check_quorum", self.et_min_us)

    def on_command(self, ctx: Context, command: dict) -> None:
        if command["do"] == "timeout":
            if self.role != LEADER:
                ctx.cancel_timer("election")
                self.handle_election_timeout(ctx)
        elif command["do"] == "transfer":
            self.start_transfer(ctx, command["to"])
        elif command["do"] == "heartbeat" and self.role == LEADER:
            self.bcast_append(ctx)  # §9.3: a synchronised broadcast, then the usual period
            ctx.set_timer("heartbeat", self.heartbeat_us)
        elif command["do"] == "lag" and self.role == LEADER:
            k = min(command["followers"], len(self.peers))  # at most every other server
            self.lagging = frozenset(self.peers[len(self.peers) - k:])
            self.lag_from = len(self.log)
            self.append_entry(ctx, None)

    def start_transfer(self, ctx: Context, target: str) -> None:
        """Thesis §3.10: stop taking requests, bring the target up to date, send TimeoutNow."""
        if self.role != LEADER or target not in self.peers:
            return
        self.transfer_to = target
        self.transfer_deadline_us = ctx.now_us + self.et_max_us
        if self.match_index[target] == self.last_index():
            ctx.send(target, {"kind": "TimeoutNow", "term": self.current_term})
        else:
            self.send_append(ctx, target)

    def on_message(self, ctx: Context, src: str, m: dict) -> None:
        """Figure 2, Rules for Servers, all servers: a higher term in any RPC makes us a follower of
        that term (§5.1); then the role's own step handles the message."""
        kind = m["kind"]
        if kind == "ClientRequest":
            self.handle_client_request(ctx, src, m)
            return
        term = m["term"]
        if kind == "RequestVote":
            if self._ignore_vote_request(ctx, m):
                return
            if m.get("pre_vote"):
                self.handle_request_vote(ctx, src, m)
                return
        if term > self.current_term:
            if kind == "RequestVoteResponse" and m.get("pre_vote") and m["granted"]:
                pass  # a granted pre-vote carries the future term; it does not move ours
            else:
                # §5.1: "If RPC request or response contains term T > currentTerm: set
                # currentTerm = T, convert to follower."
                leader = src if kind == "AppendEntries" else None
                self.become_follower(ctx, term, leader)
        self._step(ctx, src, m, kind)

    def _ignore_vote_request(self, ctx: Context, m: dict) -> bool:
        """Thesis §4.2.3: with CheckQuorum, a server that heard from a leader within the minimum
        election timeout ignores RequestVote (neither updates its term nor votes), unless the
        request comes from a leadership transfer."""
        if not self.check_quorum or m.get("transfer") or m["term"] <= self.current_term:
            return False
        if self.role == LEADER:
            return True
        return ctx.now_us - self.last_leader_contact_us < self.et_min_us and self.leader_id is not None

    # --- per-role steps ---------------------------------------------------------------------
    def _step_follower(self, ctx: Context, src: str, m: dict, kind: str) -> None:
        if kind == "AppendEntries":
            self.handle_append_entries(ctx, src, m)
        elif kind == "RequestVote":
            self.handle_request_vote(ctx, src, m)
        elif kind == "TimeoutNow":
            if m["term"] == self.current_term:
                self.become_candidate(ctx, transfer=True)

    def _step_candidate(self, ctx: Context, src: str, m: dict, kind: str) -> None:
        if kind == "AppendEntries":
            if m["term"] >= self.current_term:
                # §5.2: a candidate that hears from a leader of its term returns to follower.
                self.become_follower(ctx, m["term"], src)
                self.handle_append_entries(ctx, src, m)
            else:
                self.handle_append_entries(ctx, src, m)  # answers with our term: stale leader
        elif kind == "RequestVote":
            self.handle_request_vote(ctx, src, m)
        elif kind == "RequestVoteResponse":
            self.handle_vote_response(ctx, src, m)

    def _step_leader(self, ctx: Context, src: str, m: dict, kind: str) -> None:
        if kind == "AppendEntriesResponse":
            self.handle_append_response(ctx, src, m)
        elif kind == "RequestVote":
            self.handle_request_vote(ctx, src, m)
        elif kind == "AppendEntries" and m["term"] < self.current_term:
            self.handle_append_entries(ctx, src, m)

    # --- elections (§5.2, §5.4.1) -----------------------------------------------------------
    def log_up_to_date(self, last_term: int, last_index: int) -> bool:
        """§5.4.1: the candidate's log is at least as up-to-date as ours: compare the last
        entries' terms, then the lengths."""
        if last_term != self.last_term():
            return last_term > self.last_term()
        return last_index >= self.last_index()

    def handle_request_vote(self, ctx: Context, src: str, m: dict) -> None:
        """Figure 2, RequestVote RPC receiver implementation (and thesis §9.6 for pre-votes)."""
        pre = bool(m.get("pre_vote"))
        log_ok = self.m_vote_without_log_check or self.log_up_to_date(m["last_log_term"],
                                                                      m["last_log_index"])
        if pre:
            # Thesis §9.6: grant if the candidate's log is up to date and we have not heard from a
            # valid leader for at least a baseline (minimum) election timeout; its future term
            # must be ahead of ours. Our own term and vote are untouched.
            heard_from_leader = self.role == LEADER or (
                self.leader_id is not None
                and ctx.now_us - self.last_leader_contact_us < self.et_min_us)
            granted = m["term"] > self.current_term and log_ok and not heard_from_leader
            ctx.send(src, {"kind": "RequestVoteResponse", "term": m["term"] if granted else self.current_term,
                           "granted": granted, "pre_vote": True})
            return
        granted = (m["term"] == self.current_term
                   and self.voted_for in (None, m["candidate"])
                   and log_ok)
        if granted:
            self.voted_for = m["candidate"]
            ctx.persist()  # Figure 2: votedFor is on stable storage before the vote is answered
            self._reset_election_timer(ctx)  # §5.2: granting a vote resets the timer
        ctx.send(src, {"kind": "RequestVoteResponse", "term": self.current_term, "granted": granted})

    def handle_vote_response(self, ctx: Context, src: str, m: dict) -> None:
        """§5.2: votes from a majority make a candidate leader; a majority of pre-votes lets a
        pre-candidate start the real election (thesis §9.6). Responses from earlier rounds count
        for nothing."""
        pre = bool(m.get("pre_vote"))
        if pre != (self.role == PRE_CANDIDATE):
            return  # a response to an earlier phase
        if m["term"] != self.current_term + (1 if pre else 0):
            return  # a response from an earlier round
        if not m["granted"]:
            return
        self.votes.add(src)
        if self.self_vote_pending and not pre:
            return  # thesis §9.3: no leadership before our own term and vote are durable
        if len(self.votes) >= self.quorum:
            if pre:
                self.become_candidate(ctx)
            else:
                self.become_leader(ctx)

    # --- replication (§5.3) -----------------------------------------------------------------
    def send_append(self, ctx: Context, peer: str) -> None:
        """Send AppendEntries from nextIndex (empty when up to date: a heartbeat). The leader
        assumes delivery and advances nextIndex optimistically; a rejection moves it back."""
        prev = self.next_index[peer] - 1
        log = self.log
        if self.lagging and peer in self.lagging:  # the `lag` action: a bare heartbeat
            prev = min(prev, self.lag_from)
            entries = []
        else:
            entries = log[prev:prev + self.max_entries]
        send = ctx.send_now if self.leader_parallel_write else ctx.send  # thesis §10.2.1
        send(peer, {"kind": "AppendEntries", "term": self.current_term, "leader": self.id,
                        "prev_log_index": prev, "prev_log_term": log[prev - 1][0] if prev else 0,
                        "entries": entries, "leader_commit": self.commit_index})
        self.last_sent_us[peer] = ctx.now_us
        if entries:
            self.next_index[peer] = prev + len(entries) + 1

    def bcast_append(self, ctx: Context) -> None:
        for p in self.peers:
            self.send_append(ctx, p)

    def send_heartbeats(self, ctx: Context) -> None:
        """Figure 2, Leaders: "send initial empty AppendEntries RPCs (heartbeat) to each server;
        repeat during idle periods to prevent election timeouts". A follower sent AppendEntries
        (entries or not) within the last interval is not idle, so it is skipped, as in RaftScope,
        which re-arms each peer's heartbeat whenever it sends. Sending a little early costs nothing,
        so a tick also serves any follower due within the next quarter interval; each follower
        therefore hears from the leader at least every `heartbeat_ms`. The timer is re-armed for
        the earliest follower to fall due."""
        now = ctx.now_us
        hb = self.heartbeat_us
        last = self.last_sent_us
        soon = now + hb // 4
        for p in self.peers:
            if last.get(p, -hb) + hb <= soon:
                self.send_append(ctx, p)
        ctx.set_timer("heartbeat", max(1, min(last[p] for p in self.peers) + hb - now))

    def handle_append_entries(self, ctx: Context, src: str, m: dict) -> None:
        """Figure 2, AppendEntries RPC receiver implementation, with the conflict-term hint of §5.3
        ("the follower can include the term of the conflicting entry and the first index it stores
        for that term")."""
        term = self.current_term
        if m["term"] < term:  # 1. Reply false if term < currentTerm
            ctx.send(src, {"kind": "AppendEntriesResponse", "term": term, "success": False,
                           "match_index": 0})
            return
        self.leader_id = src
        self.last_leader_contact_us = ctx.now_us
        self._reset_election_timer(ctx)
        prev = m["prev_log_index"]
        log = self.log
        # 2. Reply false if log doesn't contain an entry at prevLogIndex whose term matches.
        if prev > len(log):
            ctx.send(src, {"kind": "AppendEntriesResponse", "term": term, "success": False,
                           "match_index": 0, "conflict_index": len(log) + 1, "conflict_term": None})
            return
        if prev >= 1 and log[prev - 1][0] != m["prev_log_term"]:
            ct = self.term_at(prev)
            first = prev
            while first > 1 and self.term_at(first - 1) == ct:
                first -= 1
            ctx.send(src, {"kind": "AppendEntriesResponse", "term": term, "success": False,
                           "match_index": 0, "conflict_index": first, "conflict_term": ct})
            return
        # 3. If an existing entry conflicts with a new one (same index, different terms), delete
        #    the existing entry and all that follow it. 4. Append any new entries not in the log.
        entries = m["entries"]
        if entries:
            index = prev
            changed = False
            for entry in entries:
                index += 1
                if index <= len(log):
                    if log[index - 1][0] == entry[0]:
                        continue
                    self._truncate(index - 1)
                log.append(tuple(entry))  # (the same object when it is a tuple already)
                changed = True
            if changed:
                ctx.persist()  # Figure 2: the log is on stable storage before the success reply
        last_new = prev + len(entries)
        # 5. If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new entry)
        if m["leader_commit"] > self.commit_index:
            new_commit = min(m["leader_commit"], last_new)
            if new_commit > self.commit_index:
                self.commit_index = new_commit
                self.apply_committed(ctx)
        ctx.send(src, {"kind": "AppendEntriesResponse", "term": term, "success": True,
                       "match_index": last_new})

    def handle_append_response(self, ctx: Context, src: str, m: dict) -> None:
        """Figure 2, Rules for Servers, leaders: on success update nextIndex and matchIndex for
        the follower (and see whether the commit index moves, §5.3/§5.4.2); if it fails because of
        a log inconsistency, move nextIndex back and retry (§5.3, with the conflict-term hint)."""
        if m["term"] != self.current_term:
            return
        if self.check_quorum:
            self.recent_active.add(src)  # thesis §6.2: heard from src in this period
        if m["success"]:
            match = m["match_index"]
            if match > self.match_index[src]:
                self.match_index[src] = match
                self.maybe_commit(ctx)  # only a higher matchIndex can move the commit index
            else:
                match = self.match_index[src]
            if self.next_index[src] <= match:
                self.next_index[src] = match + 1
            last = len(self.log)
            if self.transfer_to == src and match == last:
                ctx.send(src, {"kind": "TimeoutNow", "term": self.current_term})
            elif self.next_index[src] <= last and src not in self.lagging:
                self.send_append(ctx, src)  # still behind: keep catching it up
            return
        # Rejected: back off nextIndex using the conflict hint (§5.3), never below matchIndex + 1.
        ct = m.get("conflict_term")
        nxt = m.get("conflict_index", self.next_index[src] - 1)
        if ct is not None:
            last_of_term = 0
            for i in range(self.last_index(), 0, -1):
                t = self.term_at(i)
                if t == ct:
                    last_of_term = i
                    break
                if t < ct:
                    break
            if last_of_term:
                nxt = last_of_term + 1
        self.next_index[src] = max(self.match_index[src] + 1, min(nxt, self.last_index() + 1))
        self.send_append(ctx, src)

    def maybe_commit(self, ctx: Context) -> None:
        """§5.3/§5.4.2: commit the highest index N replicated on a majority, but only if
        log[N].term == currentTerm (Figure 8). The `commit_previous_term` mutation drops that
        last condition."""
        matches = list(self.match_index.values())
        if not self.leader_parallel_write:
            matches.append(len(self.log))
        else:  # thesis §10.2.1: "the leader uses its own match index" for what is durable
            if not ctx.write_pending():
                self.durable_index = len(self.log)
            matches.append(self.durable_index)
        matches.sort(reverse=True)
        n = matches[self.quorum - 1]
        if n <= self.commit_index:
            return
        if not self.m_commit_previous_term:
            while n > self.commit_index and self.term_at(n) != self.current_term:
                n -= 1
            if n <= self.commit_index:
                return
        self.commit_index = n
        self.apply_committed(ctx)

    # --- state machine and clients (§8) -----------------------------------------------------
    def apply_committed(self, ctx: Context) -> None:
        """Figure 2, all servers: if commitIndex > lastApplied, apply log[lastApplied + 1].
        §8: commands carry the client's serial number; the state machine remembers the latest one
        applied per client with its response, so a command delivered twice (a duplicated or retried
        request) is answered but not executed again."""
        while self.last_applied < self.commit_index:
            self.last_applied += 1
            cmd = self.log[self.last_applied - 1][1]
            if cmd is None:
                continue
            session = self.sessions.get(cmd["client"])
            if session is None:
                session = self.sessions[cmd["client"]] = {}
            done = session.get(cmd["req"])
            if done is not None:
                ok, value = done  # §8: a duplicate of an applied command is not executed again
            else:
                ok, value = self.apply(cmd)
                session[cmd["req"]] = (ok, value)
                if len(session) > 2 * SESSION_MEMORY:  # forget all but the newest SESSION_MEMORY
                    for req in sorted(session)[:SESSION_MEMORY]:
                        del session[req]
            waiting = self.pending.pop(self.last_applied, None)
            if waiting is not None and waiting == (cmd["client"], cmd["req"]):
                ctx.send(cmd["client"], {"kind": "ClientReply", "req": cmd["req"], "ok": ok,
                                         "value": value})

    def apply(self, cmd: dict) -> tuple[bool, object]:
        """The replicated state machine (§2): a key-value map with read, write and cas."""
        op, key, value = cmd["op"], cmd["key"], cmd["value"]
        if op == "read":
            return True, self.kv.get(key)
        if op == "write":
            self.kv[key] = value
            return True, value
        if self.kv.get(key) == value[0]:  # cas
            self.kv[key] = value[1]
            return True, value
        return False, self.kv.get(key)

    def handle_client_request(self, ctx: Context, src: str, m: dict) -> None:
        """§8: followers redirect clients to the leader; the leader appends the command (reads too,
        so every read is linearizable) and answers once the entry is applied."""
        if self.role != LEADER or self.transfer_to is not None:
            ctx.send(src, {"kind": "ClientReply", "req": m["req"], "ok": False,
                           "error": "not_leader", "leader": self.leader_id if self.role != LEADER else None})
            return
        cmd = {"client": m["client"], "req": m["req"], "op": m["op"], "key": m["key"],
               "value": m["value"]}
        self.pending[len(self.log) + 1] = (m["client"], m["req"])
        self.append_entry(ctx, cmd)

    def append_entry(self, ctx: Context, cmd: dict | None) -> None:
        """Figure 2, leaders: "If command received from client: append entry to local log", and
        ship it to every follower that is up to date (the others get it as they catch up)."""
        self.log.append((self.current_term, cmd))
        ctx.persist()
        last = len(self.log)
        for p in self.peers:
            if self.next_index[p] == last:  # up to date: ship the new entry now
                self.send_append(ctx, p)
        self.maybe_commit(ctx)

    # ------------------------------------------------------------------------------------------
    # what the outside sees
    def take_state(self) -> dict | None:
        told = (self.current_term, self.role if self.role != PRE_CANDIDATE else "follower",
                self.voted_for, self.commit_index)
        log_changed = self._log_keep < self._log_told_len or len(self.log) != self._log_told_len
        if told == self._told and not log_changed:
            return None
        self._told = told
        rec = {"term": told[0], "role": told[1], "voted_for": told[2], "commit": told[3]}
        if log_changed:
            keep = min(self._log_keep, self._log_told_len)
            rec["log"] = {"keep": keep, "append": self.log[keep:]}
            self._log_told_len = len(self.log)
            self._log_keep = len(self.log)
        return rec

    def down_state(self) -> dict:
        self._told = None
        return {"term": self.current_term, "role": "down", "voted_for": self.voted_for,
                "commit": self.commit_index}

    def view(self, now_us: int) -> dict:
        v = {
            "kind": "raft",
            "term": self.current_term,
            "role": self.role,
            "voted_for": self.voted_for,
            "leader": self.leader_id,
            "commit": self.commit_index,
            "applied": self.last_applied,
            "log": self.log,
            "kv": self.kv,
            "votes": sorted(self.votes),
            "election_deadline": self.election_deadline_us / 1000 if self.role != LEADER else None,
        }
        if self.role == LEADER:
            v["next_index"] = dict(sorted(self.next_index.items()))
            v["match_index"] = dict(sorted(self.match_index.items()))
            v["transfer_to"] = self.transfer_to
        return v

    def digest_state(self):
        return [self.current_term, self.role, self.voted_for, self.leader_id, self.commit_index,
                self.last_applied, self.log, sorted(self.kv.items()), sorted(self.votes),
                sorted(self.next_index.items()), sorted(self.match_index.items()),
                sorted(self.last_sent_us.items()), sorted(self.recent_active), sorted(self.pending.items()), self.transfer_to,
                self.last_leader_contact_us] + ([sorted(self.lagging), self.lag_from]
                                                if self.lagging else []) + (
                    ["self_vote_pending"] if self.self_vote_pending else []) + (
                    [self.durable_index] if self.leader_parallel_write else [])
