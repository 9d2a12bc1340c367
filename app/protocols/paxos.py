"""How the browser sees Paxos (basic and Multi-Paxos): pills labelled with ballots and coloured by
the ballot's owner, compact node summaries, acceptor/learner changes as deltas, words.

A pill's class is `b1-<owner>` (phase 1: Prepare, Promise, Nack, Heartbeat, CatchUp) or
`b2-<owner>` (phase 2: Accept, Accepted), where the owner is the node whose ballot the message
carries, never its sender (BeatPaxos: colouring by sender confuses); client messages are `client`.

Values travel to the page as `[label, key]`: a short label (`x`, `w k1=3`, `no-op`) and a key
that tells equal values apart (the page decides "chosen" by comparing keys).
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.protocols.paxos.ballot import label as blabel

from .base import Adapter
from .kv import client_msg_label, client_sentence, op_label, request_words

KV_PER_TICK = 20


def vshort(v: Any) -> str:
    """A value in a few characters: `x`, `7`, `no-op`, `w k1=3`."""
    if v is None:
        return "no-op"
    if isinstance(v, dict) and "op" in v:
        return op_label(v.get("op"), v.get("key"), v.get("value"))
    s = v if isinstance(v, str) else orjson.dumps(v).decode()
    return s if len(s) <= 16 else s[:15] + "\u2026"


def vkey(v: Any) -> str:
    """Equal values, equal keys (a command by its client and request number)."""
    if v is None:
        return "noop"
    if isinstance(v, dict) and "client" in v:
        return f"c:{v.get('client')}:{v.get('req')}"
    return "v:" + orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()[:80]


def vpair(v: Any) -> list:
    return [vshort(v), vkey(v)]


def _owner(b) -> str:
    return b[1] if isinstance(b, (list, tuple)) and len(b) == 2 else "none"


class PaxosAdapter(Adapter):
    protocol = "paxos"
    title = "Paxos"
    options = {
        "backoff": "Basic Paxos: a proposer whose round failed waits a random, doubling time before "
                   "it retries, so two proposers stop pre-empting each other (switch it off to "
                   "watch them livelock).",
    }
    intro = {
        "title": "A live Multi-Paxos cluster",
        "paragraphs": (
            "Three servers each play proposer, acceptor and learner, and replicate a key-value log. "
            "The leader (\u2605) ran phase 1 once for every slot and now runs phase 2 per slot: "
            "Accept to the acceptors, Accepted back to the learners. Each pill names its ballot "
            "(round.owner) and is coloured by that ballot's owner.",
            "Under each server: its promised ballot and what it accepted. The panel above shows "
            "every server's slot log: solid cells are chosen, faded ones only accepted, no-op "
            "fills are marked. Click a server to crash, pause or time it out, or send a client "
            "write. Open a lesson above for single-decree Paxos and its ballots panel.",
        ),
        "suggest": "crash the leader (press R) and watch another server win phase 1 with a higher "
                   "ballot and fill the gaps with no-ops.",
    }
    shortcuts = (("C", "send a client write to the leader (Multi-Paxos)"),
                 ("R", "crash the leader (restart it with a click)"))

    # --- hello and config ------------------------------------------------------------------------
    def hello(self, scenario) -> dict:
        cfg = scenario.config
        servers = list(scenario.node_ids)
        q = cfg.quorums(servers)
        acceptors = cfg.members(servers, "acceptor")
        roles = {s: list(cfg.roles_of(s)) for s in servers}
        return {"mode": cfg.mode, "q1": q.q1, "q2": q.q2, "n": len(acceptors),
                "unsafe": q.q1 + q.q2 <= len(acceptors), "acceptors": acceptors, "roles": roles,
                "backoff": cfg.backoff,
                "timeout_ms": ([cfg.election_timeout_ms_min, cfg.election_timeout_ms_max]
                               if cfg.mode == "multi" else [cfg.retry_timeout_ms, cfg.retry_timeout_ms])}

    def compare_variants(self, config) -> dict[str, dict[str, Any]]:
        """Single-decree Paxos beside Multi-Paxos (Lamport, "Paxos Made Simple" §2 and §3):
        one election per value against one leader for every slot; and the back-off switch.
        (Basic Paxos takes no key-value clients: switch them off to compare the two.)"""
        return {"basic": {"mode": "basic"}, "multi": {"mode": "multi"},
                **super().compare_variants(config)}

    def default_scenario(self, settings, seed: int) -> dict:
        """Multi-Paxos with the key-value clients: a live service with a leader, as Raft's free
        play is (single-decree Paxos decides one value and then has nothing to do; its lessons
        show it step by step)."""
        data = super().default_scenario(settings, seed)
        data["nodes"] = 3  # Accepted goes to every learner: 3 servers keep the wire readable
        data["config"] = {"mode": "multi"}
        data["title"] = "A live Multi-Paxos cluster"
        return data

    # --- the wire --------------------------------------------------------------------------------
    @staticmethod
    def msg_label(msg: dict) -> tuple[str, str]:
        k = msg.get("kind")
        b = msg.get("ballot")
        own = _owner(b)
        slot = msg.get("slot") or 0
        where = f" s{slot}" if slot else ""
        if k == "Prepare":
            return f"Prepare {blabel(b)}" + (f" \u2265s{slot}" if slot else ""), f"b1-{own}"
        if k == "Promise":
            acc = msg.get("accepted") or {}
            if not acc:
                return f"Promise {blabel(b)}", f"b1-{own}"
            if len(acc) == 1:
                (s, (ab, v)), = acc.items()
                at = "" if s == "0" else f"s{s} "
                return f"Promise {blabel(b)} (acc {at}{blabel(ab)}={vshort(v)})", f"b1-{own}"
            return f"Promise {blabel(b)} (acc {len(acc)} slots)", f"b1-{own}"
        if k == "Nack":
            p = msg.get("promised")
            return f"Nack {blabel(p)}", f"b1-{_owner(p)}"
        if k == "Accepted" and slot:  # Multi-Paxos: the Accept showed the value
            return f"Accepted {blabel(b)}{where}", f"b2-{own}"
        if k in ("Accept", "Accepted"):
            return f"{k} {blabel(b)}{where}={vshort(msg.get('value'))}", f"b2-{own}"
        if k == "Heartbeat":
            return f"\u2665 {blabel(b)} c{msg.get('commit')}", f"b1-{own}"
        if k == "CatchUp":
            return f"CatchUp \u2265s{slot}", f"b1-{own}"
        return client_msg_label(msg) or (str(k), "other")

    # --- node summaries ------------------------------------------------------------------------
    def node(self, v: dict, full: bool, log_window: int) -> dict:
        down = v["status"] == "down"
        out: dict[str, Any] = {
            "mode": v.get("mode"), "roles": v.get("roles"),
            "role": "down" if down else v.get("role"), "status": v["status"],
            "leader": bool(v.get("leader")) and not down,
        }
        for f in ("ballot", "phase", "promised", "leader_id", "commit", "applied", "next_slot",
                  "attempts", "done"):
            if f in v:
                out[f] = v[f]
        if "value" in v:
            out["value"] = None if v["value"] is None else vshort(v["value"])
        if v.get("mode") == "multi":
            out["deadline"] = None if down else v.get("election_deadline")
            kv = v.get("kv") or {}
            keys = sorted(kv)[:KV_PER_TICK] if not full else sorted(kv)
            out["kv"] = {k: kv[k] for k in keys}
            if len(kv) > len(keys):
                out["kv_more"] = len(kv) - len(keys)
        # Accepted and learned: basic Paxos has one slot, always sent; Multi-Paxos sends its
        # window in snapshots and its changes as deltas.
        if v.get("mode") != "multi" or full:
            if "accepted" in v:
                out["accepted"] = {s: [b, *vpair(x)] for s, (b, x) in v["accepted"].items()}
            if "learned" in v:
                out["learned"] = {s: vpair(x) for s, x in v["learned"].items()}
            if "window" in v:
                out["window"] = v["window"]
        return out

    def deltas(self, rec: dict) -> list[tuple[str, Any]]:
        """`acc`: [node, {slot: [ballot, label, key]}] (accepted changed), `learn`: [node, {slot:
        [label, key]}], `prom`: [node, ballot] (every acceptor record: the ballots panel's
        history), `down`: node (a crash forgets what it learned)."""
        n = rec["node"]
        out: list[tuple[str, Any]] = []
        if rec.get("role") == "down":
            out.append(("down", n))
        if "promised" in rec and rec["promised"] is not None:
            out.append(("prom", [n, rec["promised"]]))
        if rec.get("accepted"):
            out.append(("acc", [n, {s: [b, *vpair(x)] for s, (b, x) in rec["accepted"].items()}]))
        if rec.get("learned"):
            out.append(("learn", [n, {s: vpair(x) for s, x in rec["learned"].items()}]))
        return out

    # --- words ---------------------------------------------------------------------------------
    def told(self, v: dict) -> tuple:
        role = "down" if v["status"] == "down" else v.get("role")
        return (role, v.get("phase"), blabel(v.get("ballot")), blabel(v.get("promised")))

    def describe(self, rec: dict, prev: dict) -> str | None:
        t = rec["type"]
        if t == "state":
            n = rec["node"]
            role = rec["role"]
            role = "down" if role == "down" else ("leader" if "leader" in (role if isinstance(role, list) else [role])
                                                  else (role[0] if isinstance(role, list) else role))
            phase = rec.get("phase")
            ballot = blabel(rec.get("ballot"))
            p = prev.get(n, (None, None, "-", "-"))
            prev[n] = (role, phase, ballot, blabel(rec.get("promised")))
            if role == "down":
                return None
            if p[0] == "down":
                return f"{n} restarted (its promise and accepted values survived on disk)"
            if rec.get("learned"):
                items = list(rec["learned"].items())
                if len(items) == 1:
                    s, x = items[0]
                    return f"{n} learned {vshort(x)}" + ("" if s == "0" else f" in slot {s}")
                return f"{n} learned slots {items[0][0]}..{items[-1][0]}"
            if role == "leader" and p[0] != "leader":
                return f"{n} won phase 1 with ballot {ballot} and leads"
            if p[0] == "leader" and role != "leader":
                return f"{n} stopped leading"
            if phase != p[1] and phase == "preparing":
                return f"{n} started phase 1 with ballot {ballot} (Prepare)"
            if phase != p[1] and phase == "accepting":
                return f"{n} has a quorum of promises for {ballot}: phase 2 (Accept)"
            return None
        return client_sentence(rec) if t == "client" else super().describe(rec, prev)

    def fault_words(self, rec: dict) -> str:
        do = rec.get("do")
        if do == "propose":
            return f"asked {rec['node']} to propose {vshort(rec.get('value'))}"
        if do == "timeout":
            return f"timed out {rec['node']}: it starts phase 1 with a higher ballot"
        if do == "request":
            return request_words(rec)
        return super().fault_words(rec)
