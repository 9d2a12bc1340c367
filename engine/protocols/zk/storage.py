"""The storage service the lock protects (Kleppmann, "How to do distributed locking", 2016): it
accepts a write only with a fencing token not older than the newest it has seen (the lock node's
sequence number; Chubby's sequencer's lock generation number, Burrows 2006, §2.4). With the
`no_fencing` mutation it accepts anything. Its newest token and value
are on stable storage."""

from __future__ import annotations

from ...node import Node

RECENT = 4  # writes the view keeps for the page (newest last)


class Storage(Node):
    kind = "storage"
    # Chubby's storage (chubby/__init__.py `ChubbyStorage`): the one lock whose sequencers it
    # takes, held in exclusive mode (§2.4: the server checks the sequencer is valid and "has the
    # appropriate mode"); ZooKeeper's tokens carry no name.
    guards: str | None = None

    def __init__(self, nid, topology, config, rng, persistent=None):
        super().__init__(nid, [], config, rng)
        p = persistent or {"token": None, "value": None, "accepted": 0, "rejected": 0}
        self.token, self.value = p["token"], p["value"]
        self.accepted, self.rejected = p["accepted"], p["rejected"]
        self.recent: list[list] = []  # the last RECENT writes, [client, token, accepted, value, newest
        # token after it] (volatile)
        self._told = None

    def persistent_state(self):
        return {"token": self.token, "value": self.value, "accepted": self.accepted,
                "rejected": self.rejected}

    def on_message(self, ctx, src, m):
        if m["kind"] != "Write":
            return
        token = m["token"]
        fault = self.sequencer_fault(m.get("sequencer"))
        fresh = fault is None and token is not None and (self.token is None or token >= self.token)
        ok = fresh or self.config.has("no_fencing")
        if ok:
            self.value = m["value"]
            self.accepted += 1
            if fresh:
                self.token = token
            ctx.persist()  # the write is durable before it is acknowledged
        else:
            self.rejected += 1
        self.recent = (self.recent + [[src, token, ok, m["value"], self.token]])[-RECENT:]
        rec = {"type": "write", "node": self.id, "client": src, "token": token, "accepted": ok,
               "value": m["value"], "newest": self.token}
        if "sequencer" in m:  # Chubby's: [lock, mode, generation]; the token is its generation
            rec["sequencer"] = m["sequencer"]
        if fault is not None and not ok:
            rec["why"] = fault
        self.records.append(rec)
        ctx.send(src, {"kind": "WriteReply", "req": m["req"], "accepted": ok})

    def sequencer_fault(self, seq) -> str | None:
        """Why a sequencer cannot fence this storage: another lock's, or not held exclusively
        (None: it may, if its generation is not older than the newest seen)."""
        if seq is None or self.guards is None:
            return None
        if seq[0] != self.guards:
            return f"its sequencer is for {seq[0]}, not {self.guards}"
        if seq[1] != "exclusive":
            return f"its sequencer holds {seq[0]} in {seq[1]} mode, not exclusive"
        return None

    def take_state(self):
        told = (self.token, self.value, self.rejected)
        if told == self._told:
            return None
        self._told = told
        return {"role": "storage", "token": told[0], "value": told[1], "rejected": told[2]}

    def down_state(self):
        self._told = None
        return {"role": "down", "token": self.token, "value": self.value, "rejected": self.rejected}

    def view(self, now_us):
        return {"role": "storage", "token": self.token, "value": self.value,
                "accepted": self.accepted, "rejected": self.rejected,
                "recent": [list(w) for w in self.recent]}
