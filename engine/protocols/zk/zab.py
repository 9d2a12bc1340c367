"""Zab's small pieces: zxids, votes, and FIFO channels.

A zxid is `(epoch, counter)`, ordered as a tuple (Zab paper, Junqueira, Reed and Serafini 2011,
§III: "zxid ... epoch and counter"). A vote in Fast Leader Election is `(leader, zxid, epoch)`,
ordered by (epoch, zxid, server id) (ZooKeeper's `FastLeaderElection.totalOrderPredicate`).

Zab assumes FIFO channels between the leader and each follower (the paper's §II: "TCP"); the
simulated network is not FIFO and may lose or duplicate messages. A `Channel` gives each
connection (identified by a random `conn` drawn from the node's RNG when the follower connects)
sequence numbers: the receiver handles messages strictly in order, drops duplicates and holds those
that arrive early. A lost message leaves a gap that nothing fills: the receiver stops hearing from
the other side and its failure detector breaks the connection, as a TCP reset would.
"""

from __future__ import annotations

Zxid = tuple[int, int]
ZERO: Zxid = (0, 0)


def sid(node: str) -> int:
    """A server's number: "n3" -> 3 (the server id that breaks ties between votes)."""
    return int(node[1:])


def vote_key(vote: tuple) -> tuple:
    """Order votes (leader, zxid, epoch) as totalOrderPredicate does: epoch, then zxid, then id."""
    leader, zxid, epoch = vote
    return (epoch, tuple(zxid), sid(leader))


def zx(z) -> Zxid:
    """A zxid from a message or record (JSON lists become tuples)."""
    return (z[0], z[1])


class Channel:
    """One end of a FIFO connection: `out` numbers what this end sends, `next` is the sequence
    number it expects, `early` holds what arrived ahead of it.

    Invariant: every key of `early` is greater than `next`."""

    def __init__(self, conn: int):
        self.conn = conn
        self.out = 0
        self.next = 1
        self.early: dict[int, dict] = {}

    def stamp(self, msg: dict) -> dict:
        """Number a message before it is sent (it is never changed after)."""
        self.out += 1
        msg["conn"] = self.conn
        msg["seq"] = self.out
        return msg

    def accept(self, msg: dict) -> list[dict]:
        """The messages now deliverable in order (possibly none), given one that arrived."""
        s = msg["seq"]
        if s < self.next or s in self.early:
            return []  # a duplicate
        if s > self.next:
            self.early[s] = msg
            return []
        out = [msg]
        self.next += 1
        early = self.early
        while self.next in early:
            out.append(early.pop(self.next))
            self.next += 1
        return out
