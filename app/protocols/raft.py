"""How the browser sees Raft: pill labels, compact node summaries, and events told in words."""

from __future__ import annotations

from typing import Any

from .base import Adapter
from .kv import client_msg_label, client_sentence, op_label, request_words

KV_PER_TICK = 20  # keys of a node's store in a per-tick summary (snapshots carry them all)


class RaftAdapter(Adapter):
    protocol = "raft"
    title = "Raft"
    roles = ("follower", "pre-candidate", "candidate", "leader", "down")
    options = {
        "pre_vote": "Candidates first ask whether they could win, so a node that was cut off does "
                    "not disrupt the cluster when it comes back (thesis \u00a79.6).",
        "check_quorum": "A leader that has not heard from a majority steps down (thesis \u00a76.2).",
        "overlap_vote_write": "With a storage latency: a candidate sends RequestVote while it "
                              "writes its vote, and counts that vote once it is on disk (thesis "
                              "\u00a79.3).",
        "leader_parallel_write": "With a storage latency: the leader replicates while it writes "
                                 "its log; its own entries count once on disk (thesis \u00a710.2.1).",
    }
    intro = {
        "title": "A live Raft cluster",
        "paragraphs": (
            "Five servers elect a leader and replicate a log. Each circle is a server: its colour "
            "and its label give its role, the number is its term, the ring drains as its election "
            "timer runs.",
            "Click a server to crash, restart or pause it, force an election, or send it a client "
            "request. Click a link to cut it and click it again to heal it (Shift-click: one "
            "direction only). Drag the timeline back to rewind; acting after a rewind forks "
            "history.",
        ),
        "suggest": "crash the leader (press R) and watch the others elect a new one in a higher term.",
    }
    shortcuts = (("C", "send a client write to the leader"),
                 ("R", "crash the leader (restart it with a click)"))

    def hello(self, scenario) -> dict:
        """The election timeout range: the page's timer rings drain over its upper end."""
        cfg = scenario.config
        return {"timeout_ms": [cfg.election_timeout_ms_min, cfg.election_timeout_ms_max]}

    # Election timeout ranges (ms): the default, faster and slower, and one so narrow that
    # candidates often time out together and split the vote (Raft paper §5.2, thesis §9.3).
    TIMEOUTS = ((150, 300), (50, 100), (300, 600), (150, 160))

    def compare_variants(self, config) -> dict[str, dict[str, Any]]:
        """Pre-vote and check-quorum on and off, and the election timeout ranges of `TIMEOUTS`."""
        out = super().compare_variants(config)
        for lo, hi in self.TIMEOUTS:
            out[f"timeout-{lo}-{hi}"] = {"election_timeout_ms_min": lo, "election_timeout_ms_max": hi}
        return out

    def timers(self, config) -> dict[str, float]:
        return {name: getattr(config, name)
                for name in ("heartbeat_ms", "election_timeout_ms_min", "client_timeout_ms")}

    def told(self, v: dict) -> tuple:
        """(role, term, voted_for, commit) as `describe` last told them."""
        role = "down" if v["status"] == "down" else ("follower" if v["role"] == "pre-candidate" else v["role"])
        return (role, v["term"], v["voted_for"], v["commit"])

    def deltas(self, rec: dict) -> list[tuple[str, Any]]:
        """A log change: `["log", [node, keep, [entry, ...]]]` (keep the first `keep` entries,
        then append)."""
        lg = rec.get("log")
        if lg is None:
            return []
        return [("log", [rec["node"], lg["keep"], [self.entry(e) for e in lg["append"]]])]

    # --- the wire --------------------------------------------------------------------------------
    @staticmethod
    def msg_label(msg: dict) -> tuple[str, str]:
        """(label, class) of a message pill. Classes: vote, append, reply, client, other."""
        k = msg.get("kind")
        if k == "RequestVote":
            return ("PreVote?" if msg.get("pre_vote") else f"Vote? t{msg.get('term')}"), "vote"
        if k == "RequestVoteResponse":
            return ("vote \u2713" if msg.get("granted") else "vote \u2717"), "vote-reply"
        if k == "AppendEntries":
            n = len(msg.get("entries") or ())
            return (f"AE +{n}" if n else "AE \u2665"), "append"
        if k == "AppendEntriesResponse":
            return (f"ok {msg.get('match_index')}" if msg.get("success") else "AE \u2717"), "append-reply"
        if k == "TimeoutNow":
            return "TimeoutNow", "vote"
        return client_msg_label(msg) or (str(k), "other")

    @staticmethod
    def entry(e: list) -> list:
        """[term, short label] for one log entry; the no-op a new leader appends is labelled so."""
        cmd = e[1]
        if cmd is None:
            return [e[0], "no-op"]
        return [e[0], op_label(cmd.get("op"), cmd.get("key"), cmd.get("value"))]

    def node(self, v: dict, full: bool, log_window: int) -> dict:
        """A node's summary for the canvas and the log panel (the log only when `full`)."""
        out = {
            "role": "down" if v["status"] == "down" else v["role"],
            "status": v["status"],
            "term": v["term"],
            "vote": v["voted_for"],
            "leader": v["leader"],
            "commit": v["commit"],
            "applied": v["applied"],
            "votes": v["votes"],
            "deadline": v["election_deadline"] if v["status"] != "down" else None,
            "len": len(v["log"]),
        }
        # A copy: frames are serialised later, and the engine's dict keeps changing meanwhile.
        kv = v["kv"]
        if full or len(kv) <= KV_PER_TICK:
            out["kv"] = dict(kv)
        else:  # per-tick summaries stay small: the first keys and how many more (snapshots: all)
            keys = sorted(kv)[:KV_PER_TICK]
            out["kv"] = {k: kv[k] for k in keys}
            out["kv_more"] = len(kv) - KV_PER_TICK
        if "next_index" in v and v["status"] != "down":
            out["next"] = v["next_index"]
            out["match"] = v["match_index"]
        if full:
            log = v["log"]
            base = max(0, len(log) - log_window)
            out["log_base"] = base
            out["log"] = [self.entry(e) for e in log[base:]]
        return out

    # --- words ---------------------------------------------------------------------------------
    def describe(self, rec: dict, prev: dict) -> str | None:
        """One sentence for a record worth telling, or None. `prev` holds each node's last
        (role, term, voted_for, commit) as told, and is updated here."""
        t = rec["type"]
        if t == "state":
            n = rec["node"]
            role, term, vote, commit = rec["role"], rec["term"], rec["voted_for"], rec["commit"]
            p_role, p_term, p_vote, p_commit = prev.get(n, ("follower", 0, None, 0))
            prev[n] = (role, term, vote, commit)
            if role == "down":
                return None  # the fault record already said it
            if p_role == "down":
                return f"{n} restarted as a follower in term {term} (its log survived, its commit index did not)"
            if role != p_role:
                if role == "leader":
                    return f"{n} became leader in term {term}"
                if role == "candidate":
                    return f"{n} timed out and became a candidate in term {term}"
                if p_role == "leader":
                    return f"{n} stepped down to follower in term {term}"
                if p_role == "candidate":
                    return f"{n} gave up its candidacy: follower in term {term}"
            if vote != p_vote and vote is not None and vote != n and term == rec["term"]:
                return f"{n} voted for {vote} in term {term}"
            if role == "leader" and commit > p_commit:
                return f"{n} (leader) committed up to index {commit}"
            if term > p_term and role == p_role:
                return f"{n} moved to term {term}"
            return None
        if t == "fault":
            return self.fault_sentence(rec)
        if t == "client":
            return client_sentence(rec)
        return None

    def fault_words(self, rec: dict) -> str:
        do = rec.get("do")
        if do == "timeout":
            return f"forced an election timeout on {rec['node']}"
        if do == "request":
            return request_words(rec)
        if do == "transfer":
            return f"asked {rec['node']} to transfer leadership to {rec['to']}"
        return super().fault_words(rec)
