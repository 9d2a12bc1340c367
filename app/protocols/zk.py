"""How the browser sees ZooKeeper (engine/protocols/zk/): pills coloured by Zab's phase (election,
discovery, synchronisation, broadcast), client traffic, watch events and fenced storage writes;
compact summaries of servers (role, epoch, zxids, their data tree), clients (session, recipe
state, token) and the storage (newest token, recent writes); Zab and the recipes told in words.

A znode of the lock recipe is named `<client>-<attempt>-lock-<%010d>`; pills shorten it to
`c2·1` (client c2's node with sequence number 1, which is also its fencing token). The page's
tree panel shows the names whole.

A server's tree travels in its summary (a few znodes: the recipes' parents and one ephemeral
node per waiting client), so a frame carries the trees of the servers that changed.
"""

from __future__ import annotations

import re
from typing import Any

from engine.protocols.zk import topology as zk_topology

from .coord import CoordAdapter, storage_label

CLIENT_ID = re.compile(r"^c\d+$")
LOCK_NAME = re.compile(r"^(?:.*/)?(c\d+)-\d+-lock-(\d{10})$")

ELECT = ("Vote",)
DISCOVERY = ("CEPOCH", "NEWEPOCH", "ACKEPOCH")
SYNC = ("NEWLEADER", "ACKLD", "UPTODATE", "DIFF", "TRUNC", "SNAP")
BCAST = ("PROPOSE", "ACK", "COMMIT")
PINGS = ("PING", "PINGREPLY", "Ping", "Pong")


def sessions(prev: dict) -> dict[str, str]:
    """Session -> client, kept in `describe`'s dict: built from the clients' told states the first
    time (the dict is rebuilt from the views after a seek), then kept up by the records."""
    m = prev.get("_sessions")
    if m is None:
        m = prev["_sessions"] = {v[3]: n for n, v in sorted(prev.items())
                                 if CLIENT_ID.match(str(n)) and isinstance(v, tuple) and v[3]}
    return m


def zl(z) -> str:
    """A zxid `[epoch, counter]` as `e.c`."""
    return f"{z[0]}.{z[1]}" if z else "-"


def short(path: str | None) -> str:
    """A znode in a few characters: a lock node as `c2·1`, another by its last name."""
    if not path:
        return "?"
    m = LOCK_NAME.match(path)
    if m:
        return f"{m.group(1)}\u00b7{int(m.group(2))}"
    return path if path.count("/") <= 1 else path.rsplit("/", 1)[1]


def _req(r: dict) -> str:
    op, path = r.get("op"), r.get("path", "")
    if op == "create":
        flags = "".join(f for f, on in (("E", r.get("ephemeral")), ("S", r.get("sequential"))) if on)
        return f"create {path.rsplit('/', 1)[0] or '/'}" + (f" {flags}" if flags else "")
    if op in ("get", "exists", "children"):
        return f"{'ls' if op == 'children' else op} {short(path)}" + (" +w" if r.get("watch") else "")
    if op == "sync":
        return "sync"
    if op == "session_open":
        return "open session"
    if op == "close_session":
        return "close session"
    if op in ("set", "delete") and "version" in r:
        return f"{op} {short(path)} v{r['version']}"
    return f"{op} {short(path)}"


# ZooKeeper's error names (engine/protocols/zk/client.py's ERRORS) in a few words each.
ERROR_WORDS = {"NoNode": "no such node", "NodeExists": "the node already exists",
               "BadVersion": "its version is not the one asked", "NotEmpty": "it has children",
               "NoChildrenForEphemerals": "an ephemeral node has no children",
               "SessionExpired": "the session is gone", "SessionMoved": "the session moved to another server",
               "ConnectionLoss": "the connection was lost with the request in flight: it may or may not have happened"}
CALLS = {"create": "create", "delete": "delete", "set": "setData", "get": "getData",
         "get_children": "getChildren", "exists": "exists"}


def op_sentence(rec: dict) -> str:
    """A user's call (an `op` record) and its answer, in words."""
    c, op, path, server = rec["client"], rec["op"], rec.get("path"), rec["server"]
    at = f" (its state {zl(rec['zxid'])})" if rec.get("zxid") else ""
    asked = ""
    if "asked_version" in rec:
        v = rec["asked_version"]
        asked = " at any version" if v == -1 else f" at version {v}"
    how = " after sync" if rec.get("synced") else ""
    if not rec["ok"]:
        err = rec["err"]
        return (f"{c}'s {CALLS.get(op, op)} {path or ''}{asked}{how} failed on {server}: {err} "
                f"({ERROR_WORDS.get(err, err)})").replace("  ", " ")
    watch = ""
    if rec.get("watch"):
        watch = ", and left a one-time " + ("children watch" if op == "get_children" else "watch") + " on it"
    if op == "create":
        kind = " ephemeral" if rec.get("ephemeral") else ""
        kind += " sequential" if rec.get("sequential") else ""
        return (f"{c} created the{kind} node {rec['created']}"
                + (" (deleted when its session ends)" if rec.get("ephemeral") else "")
                + f" (zxid {zl(rec['zxid'])})")
    if op == "delete":
        return f"{c} deleted {path}{asked} (zxid {zl(rec['zxid'])})"
    if op == "set":
        return f"{c} set {path} to {rec.get('asked_data', '')!r}{asked}: now version {rec['version']} (zxid {zl(rec['zxid'])})"
    if op == "get":
        return f"{c} read {path} from {server}{at}{how}: {rec['data']!r}, version {rec['version']}{watch}"
    if op == "get_children":
        kids = ", ".join(short(k) for k in rec["children"]) or "no children"
        return f"{c} listed {path} on {server}{at}{how}: {kids}{watch}"
    if op == "exists":
        return (f"{c} asked {server}{at}{how} whether {path} exists: "
                + ("yes" if rec["exists"] else "no") + watch)
    return f"{c} {op} {path}: ok"


def op_action_words(rec: dict) -> str | None:
    """The client API's actions in words (None for another action)."""
    do, n, path = rec.get("do"), rec.get("node"), rec.get("path")
    v = rec.get("version", -1)
    at = "" if v == -1 else f" at version {v}"
    how = " after sync" if rec.get("sync") else ""
    watch = " and leave a watch" if rec.get("watch") else ""
    if do == "create":
        kind = "".join(f" {f}" for f in ("ephemeral", "sequential") if rec.get(f))
        return f"asked {n} to create the{kind} node {path}" + (f" with {rec['data']!r}" if rec.get("data") else "")
    if do == "delete":
        return f"asked {n} to delete {path}{at}"
    if do == "set":
        return f"asked {n} to set {path} to {rec.get('data', '')!r}{at}"
    if do == "get":
        return f"asked {n} to read {path}{how}{watch}"
    if do == "get_children":
        return f"asked {n} to list {path}'s children{how}{watch}"
    if do == "exists":
        return f"asked {n} whether {path} exists{how}{watch}"
    return None


class ZkAdapter(CoordAdapter):
    protocol = "zk"
    server_key, client_key = "phase", "connected_to"
    title = "ZooKeeper"
    options = {}  # the mutations are the page's switches (Mutations tab)
    intro = {
        "title": "A live ZooKeeper ensemble",
        "paragraphs": (
            "Three servers (the ring) run Zab: they elect a leader by votes on (epoch, last zxid, "
            "id), the leader picks a new epoch (discovery) and brings every follower up to date "
            "(synchronisation), then commits each write by PROPOSE, ACK, COMMIT. Pills are coloured "
            "by that phase. Under each server: its last zxid (epoch.counter), and \u2713 the last "
            "committed one when that lags behind.",
            "Below, three client processes take turns with a lock (the recipe: an ephemeral "
            "sequential node under /lock, a watch on the next lower node only) and write to the "
            "storage service st with their node's sequence number as a fencing token. The ring "
            "round a client is its session: it drains while its server hears nothing from it. "
            "The panel shows the data tree, the lock queue and the storage. Click a server or a "
            "client to crash, pause or restart it, or run a recipe step.",
        ),
        "suggest": "pause the lock holder (click it, Pause) past its session timeout: its lock "
                   "node vanishes, the next waiter's watch fires and it takes the lock.",
    }
    shortcuts = (("C", "the next idle client asks for the lock"),
                 ("R", "crash the leader (restart it with a click)"))

    # --- hello and config ------------------------------------------------------------------------
    def hello(self, scenario) -> dict:
        cfg = scenario.config
        topo = zk_topology(scenario)
        return {"servers": list(topo.of_kind("server")), "clients": list(topo.of_kind("client")),
                "storage": list(topo.of_kind("storage")),
                "recipe": cfg.recipe, "parent": {"election": "/election", "group": "/group"}.get(cfg.recipe, "/lock"),
                "tick_ms": cfg.tick_ms, "auto": cfg.auto,
                "session_ms": cfg.negotiate_timeout_ms(cfg.session_timeout_ms),
                "home": dict(cfg.home)}

    def timers(self, config) -> dict[str, float]:
        return {name: getattr(config, name) for name in ("tick_ms", "session_timeout_ms", "notify_ms")}

    def default_scenario(self, settings, seed: int) -> dict:
        """Three servers, three clients contending for the lock and writing to the storage (no
        key-value workload: the clients are the recipes' processes)."""
        return {"protocol": "zk", "nodes": 3, "seed": seed, "duration_ms": settings.live_duration_ms,
                "title": "A live ZooKeeper ensemble", "config": {"clients": 3}}

    # --- the wire --------------------------------------------------------------------------------
    @staticmethod
    def msg_label(msg: dict) -> tuple[str, str]:
        """(label, class). Classes: elect, disc, sync, bcast, ping, client, watch, store,
        store-ok, store-bad."""
        k = msg.get("kind")
        if k == "Vote":
            return f"vote {msg.get('leader')} {zl(msg.get('zxid'))} e{msg.get('epoch')}", "elect"
        if k == "CEPOCH":
            return f"CEPOCH e{msg.get('accepted_epoch')}", "disc"
        if k == "NEWEPOCH":
            return f"NEWEPOCH e{msg.get('epoch')}", "disc"
        if k == "ACKEPOCH":
            return f"ACKE {zl(msg.get('last_zxid'))}", "disc"
        if k == "NEWLEADER":
            return f"NEWLEADER e{msg.get('epoch')}", "sync"
        if k in ("DIFF", "SNAP"):
            return f"{k} +{len(msg.get('entries') or ())}", "sync"
        if k == "TRUNC":
            return f"TRUNC {zl(msg.get('zxid'))}", "sync"
        if k in ("ACKLD", "UPTODATE"):
            return f"{k} {zl(msg.get('zxid'))}", "sync"
        if k == "PROPOSE":
            t = msg.get("txn") or {}
            op = t.get("op")
            what = {"create": f"+{short(t.get('path'))}", "delete": f"\u2212{short(t.get('path'))}",
                    "set": f"set {short(t.get('path'))}", "session_open": "open",
                    "session_expire": f"expire {t.get('session')}",
                    "session_close": f"close {t.get('session')}"}.get(op, str(op))
            return f"PROPOSE {zl(msg.get('zxid'))} {what}", "bcast"
        if k in ("ACK", "COMMIT"):
            return f"{k} {zl(msg.get('zxid'))}", "bcast"
        if k in PINGS:
            return ("\u2665" if k in ("PING", "Ping") else "\u2665 ok"), "ping"
        if k == "Connect":
            return f"connect {msg.get('session') or 'new'}", "client"
        if k == "Connected":
            return f"session {msg.get('session')}", "client"
        if k == "Expired":
            if msg.get("closed"):
                return f"CLOSED {msg.get('session')}", "client"
            return f"EXPIRED {msg.get('session')}", "store-bad"
        if k == "Request":
            return _req(msg.get("req") or {}), "client"
        if k == "REQUEST":
            return f"fwd {_req(msg.get('req') or {})}", "client"
        if k == "Reply":
            if not msg.get("ok"):
                return f"err {msg.get('err')}", "client"
            op = msg.get("op")
            if op == "create":
                return f"ok {short(msg.get('path'))}", "client"
            if op == "close_session":
                return "ok closed", "client"
            if "version" in msg:
                return f"ok v{msg['version']}", "client"
            if "children" in msg:
                return f"ok [{len(msg['children'])}]", "client"
            if "exists" in msg:
                return f"ok {'exists' if msg['exists'] else 'no node'}", "client"
            return f"ok {op}", "client"
        if k in ("ERROR", "SYNC", "SYNCED", "OWNER"):
            return k.lower() if k != "ERROR" else f"err {msg.get('err')}", "client"
        if k == "Event":
            return f"\u26a1 {short(msg.get('path'))}", "watch"
        return storage_label(msg) or (str(k), "other")

    # --- node summaries ------------------------------------------------------------------------
    def server_node(self, v: dict, down: bool) -> dict:
        out: dict[str, Any] = {
            "kind": "server", "role": "down" if down else v["role"], "phase": v["phase"],
            "epoch": v["epoch"], "last": v["last_zxid"], "committed": v["committed_zxid"],
            "leader": None if down else v["leader"], "sessions": v["sessions"],
            "watches": v["watches"], "history": v["history"],
            # [path, data, version, owner or null, cversion]
            "tree": [[p, z["data"], z["version"], z.get("owner"), z["cversion"]]
                     for p, z in v["tree"].items() if p != "/"],
        }
        if "learners" in v:
            out["learners"] = v["learners"]
        return out

    def client_node(self, v: dict, down: bool) -> dict:
        out = {"kind": "client", "role": "down" if down else v["role"],
               "connected_to": v["connected_to"], "session": v["session"],
               "timeout_ms": v["timeout_ms"], "recipe": v["recipe"], "lock_node": v["lock_node"],
               "token": v["token"], "want": v["want"], "writes": v["writes"],
               "woken": v.get("woken", 0)}
        if v.get("closed"):
            out["closed"] = True  # the user closed its session: it no longer pings or reconnects
        recv = v["timers"].get("recv")
        # Last heard from its server: the receive timer is set to 2/3 of the timeout then.
        out["heard"] = None if recv is None else round(recv - v["timeout_ms"] * 2 / 3, 3)
        return out

    # --- words ---------------------------------------------------------------------------------
    def server_told(self, v: dict, down: bool) -> tuple:
        return ("down" if down else v["role"], v["phase"], v["epoch"])

    def client_told(self, v: dict, down: bool) -> tuple:
        return ("down" if down else v["role"], v["lock_node"], v["recipe"], v["session"])

    def other_sentence(self, rec: dict, prev: dict) -> str | None:
        t = rec["type"]
        if t == "op":
            return op_sentence(rec)
        if t == "watch":
            who = sessions(prev).get(rec["session"], rec["session"])
            if rec.get("user"):  # a watch of the user's own call, not the recipe's
                what = "children" if rec["kind"] == "children" else "data (or existence)"
                if rec["event"] == "set":
                    return f"{who} set a one-time watch on {rec['path']}'s {what}"
                return f"{who}'s watch on {rec['path']} fired: its {what} changed (the watch is gone now)"
            if rec["event"] == "set":
                if rec["kind"] == "children":
                    return f"{who} waits: it watches {rec['path']}'s children (every change wakes it)"
                return f"{who} waits: it watches {rec['path']} (the node just below its own)"
            return (f"{who}'s watch on {rec['path']} fired"
                    + (" (its children changed)" if rec["kind"] == "children" else ""))
        if t == "read":
            kids = ", ".join(short(c) for c in rec["children"]) or "no children"
            return f"{rec['client']} read {rec['path']} from {rec['server']} (its state {zl(rec['zxid'])}): {kids}"
        return super().other_sentence(rec, prev)

    def server_sentence(self, rec: dict, prev: dict) -> str | None:
        n, role, phase, epoch = rec["node"], rec["role"], rec["phase"], rec["epoch"]
        p = prev.get(n, ("looking", "election", 0))
        prev[n] = (role, phase, epoch)
        if role == "down":
            return None
        if p[0] == "down":
            return (f"{n} restarted with its history on disk (last zxid {zl(rec['last_zxid'])}) and "
                    "looks for a leader")
        if (role, phase) == (p[0], p[1]):
            return None
        if role == "looking":
            return f"{n} has no leader: it is looking (Fast Leader Election)"
        if role == "leading":
            if phase == "discovery":
                return f"{n} won the election and leads: discovery (CEPOCH from a quorum, NEWEPOCH)"
            if phase == "synchronization":
                return (f"{n} starts epoch {epoch}: it synchronises its followers (DIFF, TRUNC or "
                        "SNAP, then NEWLEADER)")
            if phase == "broadcast":
                return (f"{n} is established as leader of epoch {epoch} (a quorum sent ACKLD): it "
                        "commits writes by PROPOSE, ACK, COMMIT")
        if role == "following":
            if phase == "discovery":
                return f"{n} follows the elected leader (CEPOCH)"
            if phase == "synchronization":
                return f"{n} is being brought up to date by its leader"
            if phase == "broadcast":
                return f"{n} is up to date in epoch {epoch} (UPTODATE) and serves its clients"
        return None

    def client_sentence(self, rec: dict, prev: dict) -> str | None:
        n, role, node, recipe = rec["node"], rec["role"], rec["lock_node"], rec["recipe"]
        p = prev.get(n, ("idle", None, "idle", None))
        sessions(prev)  # (built before this client's session is forgotten)
        prev[n] = (role, node, recipe, rec["session"])
        if rec["session"]:
            sessions(prev)[rec["session"]] = n
        if role == "down" or p[0] == "down":
            return None  # the fault record said it; a restarted process starts idle
        election = role in ("active", "standby")
        if rec["holds_lock"] and p[0] not in ("holder", "active"):
            if election:
                return f"{n} is now the active process (its node {node} is the lowest under /election)"
            return f"{n} now holds the lock (its node {node} is the lowest): fencing token {rec['token']}"
        if p[0] in ("holder", "active") and not rec["holds_lock"]:
            if rec["session"] != p[3]:
                return f"{n} no longer holds the lock: its session {p[3]} is gone"
            if recipe == "release":
                return f"{n} releases the lock: it deletes its node {node}"
            return f"{n} is no longer active" if election else f"{n} no longer holds the lock"
        if node and node != p[1]:
            return f"{n} created its ephemeral sequential node {node}"
        if node is None and p[1] is not None and rec["session"] == p[3]:
            if p[2] == "release":
                return f"{n}'s node {p[1]} is deleted: the lock passes to the next in the queue"
            return f"{n}'s node {p[1]} is gone"
        return None

    def session_sentence(self, rec: dict, prev: dict) -> str:
        c, s, ev, server = rec["client"], rec["session"], rec["event"], rec["server"]
        if s:
            sessions(prev)[s] = c
        if ev == "open":
            return f"{c} opened session {s} on {server}"
        if ev == "disconnect":
            return (f"{c} heard nothing from {server}: disconnected (its session {s} lives on until "
                    "the leader expires it)")
        if ev == "reconnect":
            return f"{c} reconnected to {server} with its session {s}"
        if ev == "expire":
            return f"{c} learned from {server} that its session {s} had expired: it starts over"
        if ev == "close":
            return (f"{c} closed its session {s} (through {server}): its ephemeral nodes are gone "
                    "with it; it no longer pings, and opens a new session when next asked")
        return f"{c}: session {s} {ev}"

    def txn_sentence(self, rec: dict, prev: dict) -> str | None:
        """Only session expiry is told (once: every server commits it); the clients' and servers'
        own records tell the rest."""
        if rec["op"] not in ("session_expire", "session_close"):
            return None
        key = ("_ended", rec["session"])
        if prev.get(key):
            return None
        prev[key] = True
        who = sessions(prev).get(rec["session"])
        whose = f"{who}'s session {rec['session']}" if who else f"session {rec['session']}"
        gone = rec.get("deleted") or []
        verb = "expired" if rec["op"] == "session_expire" else "closed"
        return (f"{whose} {verb} (zxid {zl(rec['zxid'])}, committed on {rec['node']}): "
                + (f"its ephemeral node{'s' if len(gone) > 1 else ''} {', '.join(gone)} deleted in "
                   "the same transaction" if gone else "it had no ephemeral nodes"))

    def action_words(self, rec: dict) -> str | None:
        words = op_action_words(rec)
        if words:
            return words
        if rec.get("do") == "read":
            return f"asked {rec.get('node')} to read {rec.get('path', '/lock')}" + (" after sync" if rec.get("sync") else
                                                                                  " (from its own server)")
        return None
