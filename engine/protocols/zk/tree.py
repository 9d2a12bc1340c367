"""The ZooKeeper data tree ("ZooKeeper: Wait-free coordination for Internet-scale systems", Hunt et
al., 2010, §2.1; the ZooKeeper Programmer's Guide, "ZooKeeper Data Model").

Znodes hold data, a version (bumped by every set), children, and a per-parent counter `cversion`
that names sequential children (`%010d` suffix, "Sequence Nodes -- Unique Naming"). An ephemeral
znode belongs to a session (`ephemeral_owner`) and is deleted when that session ends.

The tree changes only by applying transactions, in zxid order; a transaction is a plain dict the
leader builds (`prepare`, against the tree with every proposed transaction applied, as ZooKeeper's
PrepRequestProcessor does with its outstanding changes) and every server applies (`apply`) when it
commits. `apply` never fails: preconditions were checked when the transaction was prepared.

Zxids are tuples `(epoch, counter)`; transactions are never changed after they are built (they are
shared by the leader's history, its messages and every follower's history).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROOT = "/"
LOCK = "/lock"  # the lock recipe's parent (a persistent znode present from the start)
ELECTION = "/election"  # the leader-election recipe's parent
GROUP = "/group"  # the group-membership recipe's parent (its members create it when missing)
INITIAL = (LOCK, ELECTION)


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return ROOT if i <= 0 else path[:i]


def seq_of(name: str) -> int | None:
    """The sequence number of a sequential znode's name (its last 10 digits), else None."""
    tail = name[-10:]
    return int(tail) if len(name) >= 10 and tail.isdigit() else None


@dataclass
class Znode:
    data: str = ""
    version: int = 0
    ephemeral_owner: str | None = None
    children: set[str] = field(default_factory=set)
    cversion: int = 0  # the counter naming sequential children (bumped by every child create)
    mzxid: tuple = (0, 0)  # the zxid that last created or set it (ZooKeeper's Stat.mzxid)
    pzxid: tuple = (0, 0)  # the zxid that last created or deleted a child (Stat.pzxid)


class PrepareError(Exception):
    """A request's precondition fails (ZooKeeper's error codes): `code` is the reply's error."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class DataTree:
    """Znodes by path, and which session owns which ephemerals. Sessions are known from their
    `session_open` transaction until their `session_expire` or `session_close`."""

    def __init__(self, initial=None):
        """The tree before any transaction: / with /lock and /election, and the config's
        `initial_tree` ({path: {data, cversion}}, each parent before its children)."""
        self.nodes: dict[str, Znode] = {ROOT: Znode()}
        self.sessions: dict[str, float] = {}  # session -> negotiated timeout (ms)
        self.ephemerals: dict[str, set[str]] = {}  # session -> paths
        self.last_zxid: tuple[int, int] = (0, 0)
        self._zxid: tuple[int, int] = (0, 0)  # (the transaction being applied)
        for p in INITIAL:
            self.nodes[p] = Znode()
            self.nodes[ROOT].children.add(p)
        for p in sorted(initial or (), key=lambda p: (p.count("/"), p)):
            z = initial[p]
            self.nodes.setdefault(p, Znode())
            self.nodes[p].data, self.nodes[p].cversion = z.data, z.cversion
            self.nodes[parent_of(p)].children.add(p)

    # --- reads ----------------------------------------------------------------------------------
    def get(self, path: str) -> Znode | None:
        return self.nodes.get(path)

    def children(self, path: str) -> list[str]:
        """Child names (not paths), sorted."""
        z = self.nodes.get(path)
        return sorted(c.rsplit("/", 1)[1] for c in z.children) if z else []

    # --- the leader: build a transaction, checking preconditions ----------------------------------
    def prepare(self, req: dict, session: str) -> dict:
        """The transaction for a client's write `req` (op create|delete|set, path, ...), checked
        against this tree. Raises PrepareError("no_node"|"node_exists"|"bad_version"|
        "not_empty"|"no_children_for_ephemerals"|"no_session")."""
        op, path = req["op"], req["path"]
        if session not in self.sessions:
            raise PrepareError("no_session")
        if op == "create":
            par = self.nodes.get(parent_of(path))
            if par is None:
                raise PrepareError("no_node")
            if par.ephemeral_owner is not None:  # ephemeral nodes have no children
                raise PrepareError("no_children_for_ephemerals")
            seq = None
            if req.get("sequential"):
                seq = par.cversion
                path = f"{path}{seq:010d}"
            if path in self.nodes:
                raise PrepareError("node_exists")
            txn = {"op": "create", "path": path, "data": req.get("data", "")}
            if req.get("ephemeral"):
                txn["ephemeral_owner"] = session
            if seq is not None:
                txn["seq"] = seq
            return txn
        z = self.nodes.get(path)
        if z is None:
            raise PrepareError("no_node")
        version = req.get("version", -1)
        if version != -1 and version != z.version:
            raise PrepareError("bad_version")
        if op == "delete":
            if z.children:
                raise PrepareError("not_empty")
            return {"op": "delete", "path": path}
        if op == "set":
            return {"op": "set", "path": path, "data": req.get("data", ""), "version": z.version + 1}
        raise PrepareError("bad_op")

    def expire_txn(self, session: str, op: str = "session_expire") -> dict:
        """The transaction ending a session: it deletes the session's ephemerals in the same step
        (Programmer's Guide, "Ephemeral Nodes")."""
        return {"op": op, "session": session, "deleted": sorted(self.ephemerals.get(session, ()))}

    # --- every server: apply a committed transaction --------------------------------------------
    def apply(self, zxid: tuple[int, int], txn: dict) -> list[tuple[str, str]]:
        """Apply one committed transaction. Returns what changed, for watches (Programmer's Guide,
        "Semantics of Watches"): (path, "data") for a created, deleted or set znode,
        (parent, "children") for its parent, and (path, "children") for a deleted one (a delete
        triggers the node's children watches too)."""
        self.last_zxid = zxid
        op = txn["op"]
        changed: list[tuple[str, str]] = []
        self._zxid = zxid = tuple(zxid)
        if op == "session_open":
            self.sessions[txn["session"]] = txn["timeout_ms"]
        elif op in ("session_expire", "session_close"):
            s = txn["session"]
            for path in txn["deleted"]:
                changed += self._delete(path)
            self.sessions.pop(s, None)
            self.ephemerals.pop(s, None)
        elif op == "create":
            path = txn["path"]
            par = self.nodes[parent_of(path)]
            par.children.add(path)
            par.cversion += 1
            par.pzxid = zxid
            owner = txn.get("ephemeral_owner")
            self.nodes[path] = Znode(data=txn["data"], ephemeral_owner=owner, mzxid=zxid, pzxid=zxid)
            if owner is not None:
                self.ephemerals.setdefault(owner, set()).add(path)
            changed += [(path, "data"), (parent_of(path), "children")]
        elif op == "delete":
            changed += self._delete(txn["path"])
        elif op == "set":
            z = self.nodes[txn["path"]]
            z.data, z.version, z.mzxid = txn["data"], txn["version"], zxid
            changed.append((txn["path"], "data"))
        return changed

    def _delete(self, path: str) -> list[tuple[str, str]]:
        z = self.nodes.pop(path, None)
        if z is None:
            return []
        par = self.nodes[parent_of(path)]
        par.children.discard(path)
        par.pzxid = self._zxid
        if z.ephemeral_owner is not None:
            self.ephemerals.get(z.ephemeral_owner, set()).discard(path)
        return [(path, "data"), (parent_of(path), "children"), (path, "children")]

    def view(self) -> dict:
        """The tree for the page: {path: {data, version, owner?, children}} (sorted)."""
        out = {}
        for p in sorted(self.nodes):
            z = self.nodes[p]
            d = {"data": z.data, "version": z.version, "cversion": z.cversion}
            if z.ephemeral_owner is not None:
                d["owner"] = z.ephemeral_owner
            out[p] = d
        return out
