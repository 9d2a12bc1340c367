"""Hashing for the hash-based algorithms: a stable 64-bit hash, a consistent-hash ring with
virtual nodes, and Maglev's lookup table. Pure functions of their inputs (no global state)."""

from __future__ import annotations

import bisect
import hashlib

MASK64 = (1 << 64) - 1


def hash64(s: str) -> int:
    """A stable 64-bit hash of `s` (BLAKE2b; Python's `hash()` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


def _two_hashes(s: str) -> tuple[int, int]:
    d = hashlib.blake2b(s.encode(), digest_size=16).digest()
    return int.from_bytes(d[:8], "big"), int.from_bytes(d[8:], "big")


class Ring:
    """Karger et al.'s consistent hashing (STOC 1997): each backend at `vnodes` points of a
    64-bit ring; a key belongs to the first point clockwise from its hash. When a backend leaves,
    only its own keys move (to their next point): about 1/N of them."""

    __slots__ = ("points", "owners")

    def __init__(self, backends, vnodes: int):
        pts = sorted((hash64(f"{b}#{v}"), b) for b in backends for v in range(vnodes))
        self.points = [p for p, _ in pts]
        self.owners = [b for _, b in pts]

    def index(self, h: int) -> int:
        """The position of the first point at or after hash `h` (wrapping)."""
        i = bisect.bisect_left(self.points, h)
        return i if i < len(self.points) else 0

    def owner(self, h: int) -> str:
        return self.owners[self.index(h)]

    def walk(self, h: int):
        """The distinct backends clockwise from `h`, nearest first."""
        seen = set()
        n = len(self.owners)
        i = self.index(h)
        for k in range(n):
            b = self.owners[(i + k) % n]
            if b not in seen:
                seen.add(b)
                yield b
                if len(seen) == n:
                    return


def maglev_table(backends, size: int) -> list[int]:
    """Maglev's lookup table (Eisenbud et al., NSDI 2016, §3.4, Pseudocode 1): each backend has a
    permutation of the `size` (prime) slots, offset + j x skip; backends take turns claiming their
    next free slot until the table is full. Entry i is the index of its backend in `backends`.

    Balance: backends claim one slot per turn, so their slot counts differ by at most one
    (floor or ceil of size / N) -- the bound the tests check."""
    n = len(backends)
    if n == 0:
        return []
    perms = []
    for b in backends:
        h1, h2 = _two_hashes(b)
        perms.append((h1 % size, h2 % (size - 1) + 1))
    nxt = [0] * n
    table = [-1] * size
    filled = 0
    while True:
        for i in range(n):
            offset, skip = perms[i]
            j = nxt[i]
            c = (offset + j * skip) % size
            while table[c] >= 0:
                j += 1
                c = (offset + j * skip) % size
            table[c] = i
            nxt[i] = j + 1
            filled += 1
            if filled == size:
                return table
