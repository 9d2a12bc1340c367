"""The replicated key-value state machine the consensus protocols serve (Raft, Multi-Paxos, and
later ZAB): read, write and cas on keys, with client sessions so that a command delivered twice is
executed once (Raft, §8: "the state machine tracks the latest serial number processed for each
client, along with the associated response").

Commands are `{"client", "req", "op", "key", "value"}`; `value` is the written value, or
`[expected, new]` for cas. Pure data: no I/O, no randomness.
"""

from __future__ import annotations

SESSION_MEMORY = 64  # responses remembered per client (at least; at most twice as many): clients
# have at most a few requests open


class KVStore:
    __slots__ = ("kv", "sessions")

    def __init__(self):
        self.kv: dict[str, object] = {}
        self.sessions: dict[str, dict[int, tuple[bool, object]]] = {}  # client -> serial -> response

    def answered(self, client: str, req: int) -> tuple[bool, object] | None:
        """The response to a command already executed, or None."""
        session = self.sessions.get(client)
        return None if session is None else session.get(req)

    def execute(self, cmd: dict) -> tuple[bool, object]:
        """Execute a command once: a duplicate (same client and serial) gets the first response."""
        session = self.sessions.get(cmd["client"])
        if session is None:
            session = self.sessions[cmd["client"]] = {}
        done = session.get(cmd["req"])
        if done is None:
            done = session[cmd["req"]] = self.apply(cmd)
            if len(session) > 2 * SESSION_MEMORY:  # forget all but the newest SESSION_MEMORY
                for req in sorted(session)[:SESSION_MEMORY]:
                    del session[req]
        return done

    def apply(self, cmd: dict) -> tuple[bool, object]:
        """One command on the map: (ok, value). A read returns the value; a failed cas the
        current value."""
        op, key, value = cmd["op"], cmd["key"], cmd["value"]
        kv = self.kv
        if op == "read":
            return True, kv.get(key)
        if op == "write":
            kv[key] = value
            return True, value
        if kv.get(key) == value[0]:  # cas
            kv[key] = value[1]
            return True, value
        return False, kv.get(key)

    def digest(self) -> list:
        return [sorted(self.kv.items()), sorted([c, sorted(s.items())] for c, s in self.sessions.items())]
