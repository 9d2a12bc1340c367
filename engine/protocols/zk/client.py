"""An application process using ZooKeeper: a session, and the recipes as its behaviour.

Session (Programmer's Guide, "ZooKeeper Sessions"): the client connects to one server, pings every
third of its session timeout, and counts itself disconnected when it hears nothing from that
server for two thirds of it (ZooKeeper's readTimeout), or when a request has gone unanswered that
long while pongs still come (the model's stand-in for TCP, see `heard`); then it tries another
server with the same session. Only a server can tell it the session expired, so a partitioned or paused client learns
of its expiry on reconnect.

Recipes (ZooKeeper Recipes and Solutions):
- Locks: create an ephemeral sequential `<parent>/<guid>-lock-`; getChildren without a watch; the
  lowest holds the lock; any other waiter sets an exists-watch on the next lower node only (no herd
  effect) and checks again when it fires. A create whose reply was lost is recovered by looking
  for the GUID among the children. The token for the storage is the node's sequence number.
- Leader election (active/standby): the same, under /election; the active is the lowest node and
  stays until its session ends.
- Group membership: each member creates the persistent /group if it is missing, then an ephemeral
  sequential `/group/<guid>-member-`, and lists the children with a watch; each time the watch
  fires (a member joined, left or lost its session: its ephemeral node is gone with it) it lists
  them again, with a new watch. Its view holds the membership as it last read it.

One request at a time (the client's operations take effect in the order it issued them).

The user's own calls (actions.py: create, delete, set, get, get_children, exists, and the older
`read`) queue ahead of the recipe's next step and are answered by an `op` record (`read` by a
`read` record). A write in flight when the connection is lost is told as ConnectionLoss (it may
or may not have happened, as ZooKeeper says); a read is asked again. `close` sends closeSession:
once the leader has committed it (the session's ephemerals deleted in the same transaction, its
watches fired), the session is gone; the client no longer pings or reconnects, and its next
`acquire` or call opens a new session.
"""

from __future__ import annotations

from ...node import Node
from .tree import ELECTION, GROUP, LOCK, seq_of

IDLE, CREATE, RECOVER, LIST, EXISTS, WAIT, HELD, RELEASE, PARENT = (
    "idle", "create", "recover", "list", "exists", "wait", "held", "release", "parent")


class ZkClient(Node):
    kind = "client"

    def __init__(self, nid, topology, config, rng, persistent=None):
        super().__init__(nid, topology.of_kind("server"), config, rng)
        self.servers = topology.of_kind("server")
        storage = topology.of_kind("storage")
        self.storage = storage[0] if storage else None
        self.parent = {"election": ELECTION, "group": GROUP}.get(config.recipe, LOCK)
        self.group = config.recipe == "group"
        self.suffix = "member" if self.group else "lock"
        self.members: list[str] = []  # group membership: the children as last listed
        self.server: str | None = None
        self.session: str | None = None
        self.timeout_ms = config.session_timeout_ms
        self.connected = False
        self.cxid = 0
        self.pending: tuple | None = None  # (cxid, purpose)
        self.asked_us = 0  # when the pending request was sent
        self.want = False
        self.phase = IDLE
        self.attempt = 0
        self.guid: str | None = None
        self.recover_synced = False  # the recovery's sync is answered (its listing may go)
        self.my_node: str | None = None
        self.token: int | None = None
        self.lock_zxid: list | None = None
        self.writes = 0
        self.herd = config.has("herd_watch")
        self.ops: list[dict] = []  # the user's calls (and `read`s), waiting for the line
        self.watches: dict[tuple[str, str], bool] = {}  # the user's watches set, not yet fired:
        # (path, kind) -> whether the node existed (an exists-watch on a missing node: False)
        self.seen = (0, 0)  # the last zxid heard of (SetWatches sends it)
        self.closed = False  # the user closed the session: no pings, no reconnecting
        self.woken = 0  # watch notifications received (the page counts the herd by them)
        self.parent_made = False  # group membership: /group exists (created or found)
        self._told = None

    # --- state ------------------------------------------------------------------------------------
    def take_state(self):
        told = (self.server if self.connected else None, self.session, self.phase == HELD,
                self.token, self.my_node, self.phase)
        if told == self._told:
            return None
        self._told = told
        st = {"role": self.role(), "connected_to": told[0], "session": told[1],
              "holds_lock": told[2], "token": told[3], "lock_node": told[4], "recipe": told[5]}
        if told[2]:
            st["lock_zxid"] = self.lock_zxid
        return st

    def down_state(self):
        self._told = None
        return {"role": "down", "connected_to": None, "session": None, "holds_lock": False,
                "token": None, "lock_node": None, "recipe": IDLE}

    def role(self) -> str:
        if self.group:
            return "member" if self.my_node and self.phase in (LIST, WAIT) else (
                "joining" if self.phase in (PARENT, CREATE, RECOVER) else "idle")
        held = self.phase == HELD
        if self.parent == ELECTION:
            return "active" if held else "standby"
        return "holder" if held else ("waiter" if self.phase != IDLE else "idle")

    def view(self, now_us):
        return {"role": self.role(), "connected_to": self.server if self.connected else None,
                "session": self.session, "timeout_ms": self.timeout_ms, "recipe": self.phase,
                "lock_node": self.my_node, "token": self.token, "want": self.want,
                "writes": self.writes, "woken": self.woken,
                **({"members": list(self.members)} if self.group else {}),
                **({"closed": True} if self.closed else {}),
                **({"ops": [dict(o) for o in self.ops]} if self.ops else {})}

    def session_record(self, event: str) -> None:
        self.records.append({"type": "session", "session": self.session, "client": self.id,
                             "event": event, "server": self.server})

    # --- connection -------------------------------------------------------------------------------
    def on_start(self, ctx):
        first = self.rng.choice(self.servers)
        self.connect(ctx, self.config.home.get(self.id, first))
        if self.config.auto:
            self.want = True

    def connect(self, ctx, server: str) -> None:
        self.server, self.connected = server, False
        ctx.send(server, {"kind": "Connect", "session": self.session,
                          "timeout_ms": self.config.session_timeout_ms})
        ctx.set_timer("recv", int(self.timeout_ms * 2 / 3 * 1000))

    def heard(self, ctx, m: dict) -> bool:
        """Word from the server: the connection is alive for another read timeout (two thirds of
        the session timeout, ZooKeeper's readTimeout). Returns False, having dropped the
        connection, when a request of ours has gone unanswered for the read timeout meanwhile.

        The model's network may lose a single message; ZooKeeper runs over TCP, which loses
        nothing while the connection lasts: a request whose segment is not delivered holds back
        everything the client sends after it (its pings too), the server hears nothing more, its
        pongs stop, and ClientCnxn's SendThread, having heard nothing for readTimeout, drops the
        connection and reconnects (ConnectionLoss for what was in flight). Here the pings behind
        a lost request still get through and are answered, so a message from the server, other
        than the request's reply, that comes once the request has waited the read timeout is
        taken as that silent connection: the client drops it then (`move`: writes fail with
        ConnectionLoss, reads are sent again after reconnecting), up to a ping interval later
        than ZooKeeper's client would. A connection that really goes silent times out as before."""
        read_us = int(self.timeout_ms * 2 / 3 * 1000)
        if (self.pending is not None and ctx.now_us - self.asked_us >= read_us
                and not (m["kind"] == "Reply" and m["cxid"] == self.pending[0])):
            self.move(ctx)
            return False
        ctx.set_timer("recv", read_us)
        return True

    def move(self, ctx) -> None:
        """No word from the server: disconnected (the pending request is lost); try another."""
        if self.connected:
            self.session_record("disconnect")
        self.connected = False
        self.lose_pending()
        ctx.cancel_timer("ping")
        others = [s for s in self.servers if s != self.server] or self.servers
        self.connect(ctx, self.config.home.get(self.id) or self.rng.choice(others))

    def on_timer(self, ctx, name):
        if name == "recv":
            self.move(ctx)
        elif name == "ping":
            if self.connected:
                ctx.send(self.server, {"kind": "Ping", "session": self.session})
                ctx.set_timer("ping", int(self.timeout_ms / 3 * 1000))
        elif name == "think":
            self.want = True
            self.step(ctx)
        elif name == "hold":
            if self.phase == HELD and self.parent == LOCK:
                self.phase = RELEASE
                self.step(ctx)
            elif self.phase == HELD:
                self.write(ctx, f"{self.id}:{self.writes + 1}")

    def on_message(self, ctx, src, m):
        k = m["kind"]
        if k == "WriteReply":
            if self.config.auto and self.phase == HELD:
                ctx.set_timer("hold", int(self.config.hold_ms * 1000))
            return
        if src != self.server or self.closed or not self.heard(ctx, m):
            return
        if k == "Connected":
            if m["session"] != self.session:
                self.session = m["session"]
                self.reset_recipe()
                self.session_record("open")
            else:
                self.session_record("reconnect")
                if self.watches:
                    self.set_watches(ctx)
            self.connected = True
            self.timeout_ms = m["timeout_ms"]
            ctx.set_timer("recv", int(self.timeout_ms * 2 / 3 * 1000))
            ctx.set_timer("ping", int(self.timeout_ms / 3 * 1000))
            self.resume(ctx)
        elif k == "Expired":
            if m["session"] != self.session:
                return
            if m.get("closed"):  # our closeSession, committed while we talked to another server
                self.become_closed(ctx)
                return
            self.session_record("expire")
            self.session = None
            self.reset_recipe()
            if self.fail_queued():  # it was to be closed: nothing is left to close, it stays closed
                self.become_closed(ctx, record=False)
                return
            self.move_to_same(ctx)
        elif k == "Reply":
            if self.pending is None or m["cxid"] != self.pending[0]:
                return
            self.saw(m.get("zxid"))
            purpose = self.pending[1]
            self.pending = None
            self.on_reply(ctx, purpose, m)
        elif k == "Event":
            p = m["path"]
            self.saw(m["zxid"])
            self.watches.pop((p, m["watch"]), None)
            if p != self.parent and not p.startswith(self.parent + "/"):
                return  # a watch of the user's own calls (the server's `watch` record tells it)
            self.woken += 1
            if self.phase == WAIT and self.pending is None:
                self.phase = LIST
                self.step(ctx)

    def saw(self, zxid) -> None:
        if zxid is not None and tuple(zxid) > self.seen:
            self.seen = tuple(zxid)

    def set_watches(self, ctx) -> None:
        """Reconnected with the same session: re-register the user's outstanding watches with
        the server, with the last zxid seen (ZooKeeper's ClientCnxn sends SetWatches on every
        reconnect; the server fires at once those whose node changed since). The recipe's own
        watch needs none: `resume` lists the queue again and sets a fresh one."""
        ctx.send(self.server, {"kind": "SetWatches", "session": self.session, "zxid": list(self.seen),
                               "watches": [[p, k, e] for (p, k), e in sorted(self.watches.items())]})

    def move_to_same(self, ctx) -> None:
        self.connected = False
        self.lose_pending()
        ctx.cancel_timer("ping")
        self.connect(ctx, self.server)

    # --- the recipe -------------------------------------------------------------------------------
    def reset_recipe(self) -> None:
        """A new session: whatever the old one held is gone."""
        self.phase = IDLE
        self.my_node = self.token = self.lock_zxid = None
        self.pending = None
        self.members = []
        self.watches = {}  # (the session's watches went with it)

    def resume(self, ctx) -> None:
        """Reconnected with the same session: redo what may have been lost with the connection.
        A create whose reply was lost is looked for by its GUID (the recipes page), after a
        `sync`: the server reconnected to may not have applied it yet, and a listing without it
        would make the client create a second node of its own."""
        if self.phase == CREATE and self.my_node is None:
            self.phase = RECOVER
        elif self.phase in (EXISTS, WAIT, RECOVER):
            self.phase = LIST if self.my_node else RECOVER
        if self.phase == RECOVER:
            self.recover_synced = False
        self.step(ctx)

    def request(self, ctx, purpose: str, req: dict) -> None:
        self.cxid += 1
        self.pending = (self.cxid, purpose)
        self.asked_us = ctx.now_us
        ctx.send(self.server, {"kind": "Request", "session": self.session, "cxid": self.cxid,
                               "req": req})

    def step(self, ctx) -> None:
        """Send the user's next call, or the recipe's next request, if there is one and nothing is
        outstanding. A closed session is opened anew first."""
        if self.closed:
            if self.want or self.ops:
                self.reopen(ctx)
            return
        if not self.connected or self.pending is not None:
            return
        if self.ops:
            op = self.ops[0]
            if op.get("sync"):
                op["sync"] = False
                op["synced"] = True
                self.request(ctx, "sync", {"op": "sync", "path": op["path"]})
            else:
                purpose = op["do"] if op["do"] in ("read", "close") else USER
                self.request(ctx, purpose, op_request(op))
            return
        ph = self.phase
        if ph == IDLE and self.want and self.group and not self.parent_made:
            self.phase = PARENT
            self.request(ctx, PARENT, {"op": "create", "path": self.parent})
        elif ph == PARENT:
            self.request(ctx, PARENT, {"op": "create", "path": self.parent})
        elif ph == IDLE and self.want:
            self.attempt += 1
            self.guid = f"{self.id}-{self.attempt}"
            self.phase = CREATE
            self.request(ctx, CREATE, {"op": "create", "path": f"{self.parent}/{self.guid}-{self.suffix}-",
                                       "ephemeral": True, "sequential": True})
        elif ph == CREATE:
            self.request(ctx, CREATE, {"op": "create", "path": f"{self.parent}/{self.guid}-{self.suffix}-",
                                       "ephemeral": True, "sequential": True})
        elif ph == RECOVER and not self.recover_synced:
            self.request(ctx, "recover_sync", {"op": "sync", "path": self.parent})
        elif ph in (RECOVER, LIST):
            self.request(ctx, ph, {"op": "children", "path": self.parent,
                                   "watch": (self.herd or self.group) and ph == LIST})
        elif ph == RELEASE:
            if self.my_node is None:
                self.released(ctx)
            else:
                self.request(ctx, RELEASE, {"op": "delete", "path": self.my_node})

    def on_reply(self, ctx, purpose: str, m: dict) -> None:
        if purpose == "read":
            path = self.ops.pop(0)["path"]
            self.records.append({"type": "read", "client": self.id, "server": self.server,
                                 "path": path, "children": m.get("children", []), "zxid": m["zxid"]})
        elif purpose == "close":
            if m["ok"]:
                self.become_closed(ctx)
                return
            self.answered(self.ops.pop(0), m)
            if m["err"] == "no_session":  # expired before the close got there: the handle is dead
                self.session_record("expire")
                self.session = None
                self.become_closed(ctx, record=False)  # (the calls queued after it: a new one)
                return
        elif purpose == USER:
            self.answered(self.ops.pop(0), m)
        elif purpose == PARENT:  # created, or there already: either way the group has its parent
            self.parent_made = True
            self.phase = IDLE
        elif purpose == CREATE:
            if not m["ok"]:
                self.phase = IDLE
            else:
                self.my_node = m["path"]
                self.phase = LIST
        elif purpose == "recover_sync":
            self.recover_synced = True
        elif purpose == RECOVER:
            mine = [c for c in m.get("children", ()) if c.startswith(f"{self.guid}-{self.suffix}-")]
            if mine:
                self.my_node = f"{self.parent}/{mine[0]}"
                self.phase = LIST
            else:
                self.phase = CREATE
        elif purpose == LIST:
            self.check_children(ctx, m)
            return
        elif purpose == EXISTS:
            self.phase = LIST if not m.get("exists") else WAIT
        elif purpose == RELEASE:
            self.released(ctx)
            return
        self.step(ctx)

    def check_children(self, ctx, m: dict) -> None:
        """The lowest sequence number holds the lock; the others watch their predecessor. (Only
        the recipe's nodes count: a child the user made by hand is not in the queue.)"""
        mark = f"-{self.suffix}-"
        names = sorted((c for c in m.get("children", ()) if mark in c and seq_of(c) is not None),
                       key=lambda c: (seq_of(c), c))
        mine = self.my_node.rsplit("/", 1)[1] if self.my_node else None
        if not m["ok"] or mine not in names:
            self.phase, self.my_node = IDLE, None  # our node is gone (the session ended)
            self.step(ctx)
            return
        if self.group:  # a member: the list as read, and a watch set for the next change
            self.members = names
            self.phase = WAIT
            return
        i = names.index(mine)
        if i == 0:
            self.become_holder(ctx, m["zxid"])
            return
        if self.herd:
            self.phase = WAIT
            return
        self.phase = EXISTS
        self.request(ctx, EXISTS, {"op": "exists", "path": f"{self.parent}/{names[i - 1]}",
                                   "watch": True})

    def become_holder(self, ctx, zxid) -> None:
        self.phase = HELD
        self.token = seq_of(self.my_node)
        self.lock_zxid = list(zxid)
        if self.config.auto:
            self.write(ctx, f"{self.id}:{self.writes + 1}")
            if self.parent == ELECTION:
                ctx.set_timer("hold", int(self.config.hold_ms * 1000))

    def released(self, ctx) -> None:
        self.phase = IDLE
        self.my_node = self.token = self.lock_zxid = None
        self.members = []
        self.want = False
        if self.config.auto:
            ctx.set_timer("think", int(self.rng.random() * self.config.think_ms_max * 1000) + 1)

    def write(self, ctx, value: str) -> None:
        """Write to the storage service with the fencing token (whatever this process believes it
        holds: a paused holder still believes it)."""
        if self.storage is None:
            return
        self.writes += 1
        ctx.send(self.storage, {"kind": "Write", "token": self.token, "value": value,
                                "req": self.writes})

    # --- the user's calls --------------------------------------------------------------------------
    def answered(self, op: dict, m: dict) -> None:
        """An `op` record: the user's call and what its server answered (ZooKeeper's error name
        when it was refused)."""
        rec = {"type": "op", "client": self.id, "server": self.server, "op": op["do"],
               "path": op.get("path"), "ok": bool(m["ok"]), "zxid": m["zxid"]}
        if not m["ok"]:
            rec["err"] = ERRORS.get(m["err"], m["err"])
        for k in ("data", "version", "children", "exists"):
            if k in m:
                rec[k] = m[k]
        if op["do"] == "create" and m["ok"]:
            rec["created"] = m["path"]
        for k in ("watch", "synced", "ephemeral", "sequential"):
            if op.get(k):
                rec[k] = True
        if op.get("watch") and m["ok"]:  # the server set it: remembered until it fires
            kind = "children" if op["do"] == "get_children" else "data"
            self.watches[(op["path"], kind)] = m.get("exists", True)
        if op["do"] in ("set", "delete"):
            rec["asked_version"] = op["version"]
        if op["do"] in ("create", "set"):
            rec["asked_data"] = op["data"]
        self.records.append(rec)

    def lose_pending(self) -> None:
        """The connection is gone with the request in flight: a write of the user's is told as
        ConnectionLoss (it may have happened); a read, a sync or a close is asked again."""
        if (self.pending is not None and self.pending[1] == USER
                and self.ops[0]["do"] in ("create", "delete", "set")):
            self.answered(self.ops.pop(0), {"ok": False, "err": "connection_loss", "zxid": None})
        elif self.pending is not None and self.ops and self.ops[0].pop("synced", False):
            self.ops[0]["sync"] = True  # a read after sync: asked again, its sync first
        self.pending = None

    def fail_queued(self) -> bool:
        """The session is gone (expired, or expired before our close got there): ZooKeeper's
        handle is dead and every call still outstanding on it fails with SessionExpired
        (ClientCnxn's cleanup). The calls queued before a close fail so; the close is done
        (nothing is left to close). Calls the user made after the close stay queued: they are for
        the next session. Returns whether a close was queued."""
        at = next((i for i, o in enumerate(self.ops) if o["do"] == "close"), None)
        ahead = self.ops[:at] if at is not None else self.ops
        self.ops = self.ops[at + 1:] if at is not None else []
        for op in ahead:
            self.answered(op, {"ok": False, "err": "no_session", "zxid": None})
        return at is not None

    def become_closed(self, ctx, record: bool = True) -> None:
        """closeSession done: the session is gone, with whatever the recipe held (its ephemeral
        node was deleted in the close's transaction). No pings, no reconnecting."""
        if record:
            self.session_record("close")
        if self.ops and self.ops[0]["do"] == "close":
            self.ops.pop(0)
        self.session, self.connected, self.closed = None, False, True
        self.pending = None
        for t in ("recv", "ping", "hold"):
            ctx.cancel_timer(t)
        self.reset_recipe()
        self.want = False
        if self.config.auto:
            ctx.set_timer("think", int(self.rng.random() * self.config.think_ms_max * 1000) + 1)
        elif self.ops:
            self.step(ctx)

    def reopen(self, ctx) -> None:
        """A closed client wants ZooKeeper again: a new session, on the server it last used."""
        self.closed = False
        self.connect(ctx, self.config.home.get(self.id) or self.server)

    def on_command(self, ctx, command):
        do = command["do"]
        if do == "acquire":
            self.want = True
            self.step(ctx)
        elif do == "release":
            self.want = False
            ctx.cancel_timer("think")
            if self.phase in (IDLE,):
                return
            self.phase = RELEASE
            self.step(ctx)
        elif do == "read":
            self.ops.append({"do": "read", "path": command["path"], "sync": command["sync"]})
            self.step(ctx)
        elif do == "close":
            if self.closed or any(o["do"] == "close" for o in self.ops):
                return  # closed already, or about to be
            if self.session is None and not self.connected:
                self.fail_queued()  # no session yet: the calls asked of it fail; stop connecting
                self.become_closed(ctx, record=False)
                return
            self.ops.append({"do": "close"})
            self.step(ctx)
        elif do in OP_NAMES:
            self.ops.append({k: v for k, v in command.items() if k != "node"})
            self.step(ctx)
        elif do == "write":
            self.write(ctx, command.get("value") or f"{self.id}:{self.writes + 1}")


USER = "user"  # the purpose of a request that is one of the user's calls
OP_NAMES = ("create", "delete", "set", "get", "get_children", "exists")
ERRORS = {"no_node": "NoNode", "node_exists": "NodeExists", "bad_version": "BadVersion",
          "not_empty": "NotEmpty", "no_children_for_ephemerals": "NoChildrenForEphemerals",
          "no_session": "SessionExpired", "session_moved": "SessionMoved",
          "connection_loss": "ConnectionLoss"}
"""The engine's error codes (tree.py's PrepareError, the server's) by ZooKeeper's names
(KeeperException.Code)."""


def op_request(op: dict) -> dict:
    """The request a queued call sends (a `read` as it always did: children, no watch)."""
    do, path = op["do"], op.get("path")
    if do == "read":
        return {"op": "children", "path": path}
    if do == "close":
        return {"op": "close_session"}
    if do == "create":
        return {"op": "create", "path": path, "data": op["data"], "ephemeral": op["ephemeral"],
                "sequential": op["sequential"]}
    if do in ("set", "delete"):
        req = {"op": do, "path": path, "version": op["version"]}
        if do == "set":
            req["data"] = op["data"]
        return req
    req = {"op": "children" if do == "get_children" else do, "path": path, "watch": op["watch"]}
    if op["watch"]:
        req["user"] = True  # (the server marks the watch as the user's, not the recipe's)
    return req
