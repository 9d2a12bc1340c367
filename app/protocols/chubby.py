"""How the browser sees Chubby (engine/protocols/chubby/): pills coloured by what they do (the
cell's Multi-Paxos phase 1 and phase 2, the master lease's heartbeats and LeaseAcks, sessions,
KeepAlives, lock calls, the fenced storage's writes), compact summaries of replicas (role, epoch,
master lease, sessions, held KeepAlives, the lock table), clients (session, local lease, jeopardy
and grace period, lock, sequencer) and the storage; Chubby told in words (Burrows, OSDI 2006).

Ballots are labelled as the Paxos page labels them (`round.owner`). The storage service and the
recipe actions are ZooKeeper's (app/protocols/coord.py); a Chubby write carries a sequencer, and
the storage compares its generation number.
"""

from __future__ import annotations

from typing import Any

from engine.protocols.chubby import topology as chubby_topology
from engine.protocols.chubby.config import LOCK
from engine.protocols.paxos.ballot import label as blabel

from .coord import CoordAdapter, storage_label


def dur(ms: float) -> str:
    """A duration in plain words: `450 ms`, `2 s`, `1.85 s`."""
    return f"{ms:.0f} ms" if ms < 1000 else f"{round(ms / 1000, 2):g} s"


def lock_short(lock: str | None) -> str:
    return (lock or "").rsplit("/", 1)[-1] or "?"


def seq_label(seq) -> str:
    """A sequencer `[lock, mode, generation]` as `lock:ex:1`."""
    if not seq:
        return "none"
    return f"{lock_short(seq[0])}:{str(seq[1])[:2]}:{seq[2]}"


class ChubbyAdapter(CoordAdapter):
    protocol = "chubby"
    server_key, client_key = "commit", "session_state"
    token_word, fence_word = "generation", "its sequencer is stale"
    title = "Chubby"
    options = {}  # the mutations are the page's switches (Mutations tab)
    intro = {
        "title": "A live Chubby cell",
        "paragraphs": (
            "Five replicas (the ring) run Multi-Paxos: one wins phase 1 (Prepare, Promise), gets "
            "its epoch chosen, and serves as master (\u2605) while a majority keeps renewing its "
            "master lease (heartbeats and LeaseAcks; the ring round the master is its lease). The "
            "lock table, the sessions and every lock grant go through the replicated log "
            "(phase 2: Accept, Accepted).",
            "Below, three application processes each hold a session: the master keeps their "
            "KeepAlive until their lease is nearly over, then answers it with a longer lease. The "
            "ring round a client is its local lease; when it runs out the session is in jeopardy "
            "(amber) and the ring turns red: the grace period, in which the client looks for a "
            "master. The processes take turns with the lock /ls/cell/lock and write to the "
            "storage st with their sequencer (the lock's generation number). Click a replica or a "
            "client to crash, pause, restart or cut it off, or run a recipe step.",
        ),
        "suggest": "crash the master (press R): the clients' sessions go into jeopardy, the "
                   "replicas wait out the master lease they promised, a new master of a new epoch "
                   "saves the sessions within their grace period, and the lock stays held.",
    }
    shortcuts = (("C", "the next idle client asks for the lock"),
                 ("R", "crash the master (restart it with a click)"))

    # --- hello and config ------------------------------------------------------------------------
    def hello(self, scenario) -> dict:
        cfg = scenario.config
        topo = chubby_topology(scenario)
        return {"servers": list(topo.of_kind("server")), "clients": list(topo.of_kind("client")),
                "storage": list(topo.of_kind("storage")), "lock": LOCK,
                "auto": cfg.auto, "master_lease_ms": cfg.master_lease_ms,
                "session_ms": cfg.session_lease_ms, "grace_ms": cfg.grace_period_ms,
                "lock_delay_ms": 0.0 if cfg.has("no_lock_delay") else cfg.lock_delay_ms,
                # the client's local lease: the master's timeout less a tenth (config.py)
                "local_ms": cfg.session_lease_ms * 0.9}

    def timers(self, config) -> dict[str, float]:
        """The timers that drive work per ms (a grace period, a lock-delay or a hold of 0 is a
        setting, not a hair trigger)."""
        return {name: getattr(config, name) for name in
                ("heartbeat_ms", "election_timeout_ms_min", "master_lease_ms", "session_lease_ms",
                 "retry_ms")}

    def compare_variants(self, config) -> dict[str, dict[str, Any]]:
        """Lock-delay on and off (§2.4), and a short and a long grace period (§2.8): the same
        clicks with each."""
        lease = config.session_lease_ms
        return {"lock-delay": {"mutations": tuple(m for m in config.mutations if m != "no_lock_delay")},
                "no-lock-delay": {"mutations": tuple(sorted({*config.mutations, "no_lock_delay"}))},
                "short-grace": {"grace_period_ms": lease},
                "long-grace": {"grace_period_ms": lease * 5}}

    def default_scenario(self, settings, seed: int) -> dict:
        """Five replicas (the paper's cell, §2.1), three clients taking turns with the lock and
        writing to the storage; the paper's timings shortened so a failover fits in seconds."""
        return {"protocol": "chubby", "nodes": 5, "seed": seed,
                "duration_ms": settings.live_duration_ms, "title": "A live Chubby cell",
                "config": {"clients": 3, "master_lease_ms": 400.0, "session_lease_ms": 600.0,
                           "grace_period_ms": 2000.0, "lock_delay_ms": 1000.0,
                           "hold_ms": 300.0, "think_ms_max": 600.0}}

    # --- the wire --------------------------------------------------------------------------------
    @staticmethod
    def msg_label(msg: dict) -> tuple[str, str]:
        """(label, class). Classes: p1, p2 (Multi-Paxos phases), lease (heartbeats, LeaseAck),
        session, keepalive, lock, expired, store, store-ok, store-bad."""
        k = msg.get("kind")
        b = msg.get("ballot")
        slot = msg.get("slot") or 0
        if k == "Prepare":
            return f"Prepare {blabel(b)}", "p1"
        if k == "Promise":
            acc = msg.get("accepted") or {}
            return f"Promise {blabel(b)}" + (f" (acc {len(acc)})" if acc else ""), "p1"
        if k == "Nack":
            if "lease_ms" in msg:
                return f"Nack: leased {msg['lease_ms']:.0f} ms", "p1"
            return f"Nack {blabel(msg.get('promised'))}", "p1"
        if k == "Accept":
            v = msg.get("value") or {}
            op = v.get("op") if isinstance(v, dict) else None
            what = {"epoch": f"epoch ({v.get('node')})", "open": f"open {v.get('session')}",
                    "acquire": f"acquire {v.get('client')}", "release": f"release {v.get('client')}",
                    "expire": f"expire {v.get('session')}", "close": f"close {v.get('session')}"
                    }.get(op, "no-op" if v == {} or v is None else str(op))
            return f"Accept s{slot} {what}", "p2"
        if k == "Accepted":
            return f"Accepted s{slot}", "p2"
        if k == "Heartbeat":
            return f"\u2665 lease {blabel(b)}", "lease"
        if k == "LeaseAck":
            return "LeaseAck", "lease"
        if k == "CatchUp":
            return f"CatchUp \u2265s{slot}", "lease"
        if k == "KeepAlive":
            return f"KeepAlive {msg.get('session')}", "keepalive"
        if k == "KeepAliveReply":
            return f"\u2665 lease to {msg.get('lease_until_ms', 0):.0f}", "keepalive"
        if k == "OpenSession":
            return f"open {msg.get('session')}", "session"
        if k == "SessionOpened":
            return f"opened {msg.get('session')} e{msg.get('epoch')}", "session"
        if k == "Redirect":
            return f"\u2192 master {msg.get('master') or '?'}", "session"
        if k == "CloseSession":
            return f"close {msg.get('session')}", "session"
        if k == "SessionClosed":
            return f"closed {msg.get('session')}", "session"
        if k == "SessionExpired":
            return f"EXPIRED {msg.get('session')}", "expired"
        if k in ("Acquire", "Release"):
            return f"{k} {lock_short(msg.get('lock'))}", "lock"
        if k == "Reply":
            if not msg.get("ok"):
                return f"err {msg.get('error')} (e{msg.get('epoch')})", "lock"
            if msg.get("op") == "acquire":
                return f"granted gen {msg.get('generation')}", "lock"
            return f"ok {msg.get('op')}", "lock"
        if k == "Write":
            return f"write seq {seq_label(msg.get('sequencer'))}", "store"
        return storage_label(msg) or (str(k), "other")

    # --- node summaries ------------------------------------------------------------------------
    def server_node(self, v: dict, down: bool) -> dict:
        promise = v["lease_promise"]
        return {
            "kind": "server", "role": "down" if down else v["role"], "epoch": v["epoch"],
            "phase": v["phase"], "leader": None if down else v["leader"],
            "ballot": v["ballot"], "commit": v["commit"],
            "promise_to": None if down else promise["to"],
            "promise_until": None if down else promise["until_ms"],
            "lease_end": None if down else v["master_lease_end_ms"],
            "sessions": v["sessions"], "session_leases": v["session_leases"],
            "held": v["held_keepalives"],
            # [lock, holder client, session, generation, lock-delay end, [waiting clients]]
            "locks": [[name, lk["holder"], lk["session"], lk["generation"],
                       lk["delay_until_ms"], lk["queue"]] for name, lk in v["locks"].items()],
        }

    def client_node(self, v: dict, down: bool) -> dict:
        return {"kind": "client", "role": "down" if down else v["role"],
                "session": v["session"], "session_state": "none" if down else v["session_state"],
                "connected_to": v["connected_to"], "master": v["master"], "epoch": v["epoch"],
                "local_end": v["local_lease_end_ms"], "grace_end": v["grace_end_ms"],
                "lock_phase": v["lock_phase"], "token": v["token"],
                "sequencer": v["sequencer"], "want": v["want"], "writes": v["writes"]}

    # --- words ---------------------------------------------------------------------------------
    def server_told(self, v: dict, down: bool) -> tuple:
        return ("down" if down else v["role"], v["epoch"])

    def client_told(self, v: dict, down: bool) -> tuple:
        """(role, session, session state, token, jeopardy start): the last so that a sentence
        told after the page's picture was rebuilt mid-jeopardy (a rewind, a reattach) still knows
        how long the client was in jeopardy (it began when the local lease ran out)."""
        since = v.get("local_lease_end_ms") if v["session_state"] == "jeopardy" else None
        return ("down" if down else v["role"], v["session"], v["session_state"], v["token"], since)

    def server_sentence(self, rec: dict, prev: dict) -> str | None:
        n, role, epoch = rec["node"], rec["role"], rec["epoch"]
        p = prev.get(n, ("replica", 0))
        prev[n] = (role, epoch)
        if role == "down":
            return None  # the fault record said it
        if p[0] == "down":
            return (f"{n} restarted with the log on disk; it has forgotten whom it promised a "
                    "master lease, so it helps elect nobody for one lease")
        if role == p[0]:
            return None
        if role == "master":
            return (f"{n} is master of epoch {epoch}: Multi-Paxos chose its epoch and a majority "
                    "granted it the master lease; it answers the clients")
        return f"{n} is no longer master: its master lease ran out or a higher ballot deposed it"

    def client_sentence(self, rec: dict, prev: dict) -> str | None:
        n, role, s, state, token = (rec["node"], rec["role"], rec["session"],
                                    rec["session_state"], rec["token"])
        p = prev.get(n, ("idle", None, "none", None, None))
        since = p[4] if len(p) > 4 else None
        if state == "jeopardy" and p[2] != "jeopardy":
            # It enters jeopardy now (its local lease ran out): kept here too, since a replay
            # folds only the state records into `prev`, not the session record that says so.
            since = rec["t"]
        if since is not None and state != "jeopardy":
            prev.setdefault(("_jeopardy", n), since)  # for the session record that follows
        prev[n] = (role, s, state, token, since if state == "jeopardy" else None)
        if role == "down" or p[0] == "down":
            return None
        if rec["holds_lock"] and p[0] != "holder":
            return (f"{n} now holds the lock (generation {token}): its sequencer ({LOCK}, "
                    f"exclusive, {token}) goes with every write to the storage")
        if p[0] == "holder" and not rec["holds_lock"]:
            if s != p[1]:
                return f"{n} no longer holds the lock: its session {p[1]} is gone"
            return f"{n} released the lock (generation {p[3]})"
        if role == "waiter" and p[0] == "idle" and state != "jeopardy":
            return f"{n} asks the master for the lock (a blocking Acquire: it waits in the queue)"
        return None

    def session_sentence(self, rec: dict, prev: dict) -> str:
        c, s, ev, server = rec["client"], rec["session"], rec["event"], rec["server"]
        key = ("_jeopardy", c)
        if ev == "open":
            return f"{c} opened session {s} with the master {server}"
        if ev == "jeopardy":
            prev[key] = rec["t"]
            return (f"{c}'s session {s} is in jeopardy: its local lease ran out with no KeepAlive "
                    "reply; it makes no calls and looks for a master, replica by replica, for its "
                    "grace period")
        since = prev.pop(key, None)
        if since is None:  # the picture was rebuilt during the jeopardy: the client's view says
            p = prev.get(c)
            since = p[4] if isinstance(p, tuple) and len(p) > 4 else None
        if ev in ("open", "close"):
            since = None
        spent = f" after {dur(rec['t'] - since)} in jeopardy" if since is not None else ""
        if ev == "reconnect":
            if since is None:
                return (f"{c}'s KeepAlive reached the new master {server}: session {s} goes on in "
                        "the new epoch, and calls in flight are sent again")
            return (f"{c}'s session {s} is saved{spent}: the master {server} answered its "
                    "KeepAlive within the grace period")
        if ev == "grace_end":
            return (f"{c}'s grace period ended{spent}: it takes its session {s} as lost, and the "
                    "lock with it; it opens a new session")
        if ev == "expire":
            return f"{c} learned from {server} that its session {s} had expired{spent}: it opens a new one"
        if ev == "close":
            return f"{c} closed its session {s}: its lock is freed at once, with no lock-delay"
        return f"{c}: session {s} {ev}"

    def txn_sentence(self, rec: dict, prev: dict) -> str | None:
        """A session's end is told once (every replica applies it); the clients' and replicas'
        own records tell the rest."""
        if rec["op"] != "expire" or not rec["ok"]:
            return None
        key = ("_ended", rec["session"])
        if prev.get(key):
            return None
        prev[key] = True
        s = rec["session"]
        who = s.split(".")[0]  # a session is named by its process: c1.3
        if not rec.get("freed"):
            return f"the master expired {who}'s session {s} (its lease ran out at the master): it held no lock"
        delay = rec["delay_until_ms"] - rec["at_ms"]
        if delay <= 0:
            return (f"the master expired {who}'s session {s}: its lock is free at once (no "
                    "lock-delay): a waiter may take it while it still acts on it")
        return (f"the master expired {who}'s session {s}: it did not release the lock, so nobody "
                f"may take it for the lock-delay ({dur(delay)}, until {rec['delay_until_ms']:.0f} ms)")

