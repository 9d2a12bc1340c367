"""A session's outgoing frames: serialised once when queued, bounded in bytes, snapshots collapsed.

The runner is the only writer to the socket; everything else queues frames here. A frame is
serialised (orjson) the moment it is queued, without its `seq`, which is stamped on at send time
(`wire(seq)`), so the outbox always knows how many bytes it holds and frames are never re-encoded.

A page that cannot keep up (a slow link, a tab in the background, or a client that sends but never
reads) must not make the server hold its frames without bound:

- **Snapshots collapse.** A `snapshot` is the whole picture, so queuing one makes every state frame
  queued before it (since the last `hello`) redundant: earlier snapshots, `events` and `progress`
  frames are dropped, except for their lines of words (`ev`, kept in order and capped) and the
  clicks they report (`acts`, all kept), which go in one small `events` frame just before the new
  snapshot. `hello`, `error`, `share` and every
  other kind are never dropped.
- **A byte cap.** `over(cap)` tells the session when, even after collapsing, more than `cap` bytes
  are waiting; the session then closes the connection (code 4002, "too far behind").
"""

from __future__ import annotations

from typing import Iterator

import orjson

BACKED_UP_BYTES = 64 * 1024

# Kinds a snapshot makes redundant (the page rebuilds its whole picture from the snapshot).
_SUPERSEDED = frozenset(("snapshot", "events", "progress"))


class Outbox:
    __slots__ = ("_items", "bytes")

    def __init__(self) -> None:
        self._items: list[tuple[dict, bytes]] = []
        self.bytes = 0

    # --- the list a test or the session reads -----------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        return (f for f, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [f for f, _ in self._items[i]]
        return self._items[i][0]

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    # --- queuing -----------------------------------------------------------------------------------
    def append(self, frame: dict) -> None:
        """Queue a frame (it must not change after this: it is serialised now)."""
        body = orjson.dumps(frame)
        self._items.append((frame, body))
        self.bytes += len(body)

    def push(self, frame: dict, body: bytes) -> None:
        """Queue a frame already serialised as `body` (a room's frames are serialised once, by the
        presenter's session, and the same bytes go to every viewer)."""
        self._items.append((frame, body))
        self.bytes += len(body)

    def collapse(self, words_cap: int, backed_up_only: bool = False) -> None:
        """Drop the state frames a snapshot about to be queued makes redundant (see the module
        docstring), keeping their words in one `events` frame of at most `words_cap` lines.

        With `backed_up_only`, only when the page is behind: an earlier snapshot or progress frame
        is still waiting, or more than `BACKED_UP_BYTES` are. (A click's `events` frame and the
        snapshot after it, queued together and sent at once, stay as they are.)"""
        items = self._items
        start = 0
        for i in range(len(items) - 1, -1, -1):
            if items[i][0]["type"] == "hello":
                start = i + 1
                break
        tail = items[start:]
        if backed_up_only and self.bytes <= BACKED_UP_BYTES and not any(
                f["type"] in ("snapshot", "progress") for f, _ in tail):
            return
        if not any(f["type"] in _SUPERSEDED for f, _ in tail):
            return
        kept = items[:start]
        words: list = []
        acts: list = []
        t = None
        for f, body in items[start:]:
            if f["type"] in _SUPERSEDED:
                if f.get("ev") or f.get("acts"):
                    words.extend(f.get("ev", ()))
                    acts.extend(f.get("acts", ()))
                    t = f["t"]
            else:
                kept.append((f, body))
        self._items = kept
        self.bytes = sum(len(b) for _, b in kept)
        if words or acts:
            frame: dict = {"type": "events", "t": t}
            if len(words) > words_cap:
                skipped = len(words) - words_cap
                words = words[-words_cap:]
                words.insert(0, [words[0][0], f"\u2026 {skipped} more events (slow down to read them)"])
            if words:
                frame["ev"] = words
            if acts:
                frame["acts"] = acts
            self.append(frame)

    def take(self) -> list[tuple[dict, bytes]]:
        """Everything queued, oldest first; the outbox is empty afterwards."""
        items, self._items = self._items, []
        self.bytes = 0
        return items

    def over(self, cap: int) -> bool:
        return self.bytes > cap


def wire(body: bytes, seq: int, dur: int | None = None) -> str:
    """The frame as sent: `seq` first, then the fields serialised when it was queued. With `dur`,
    the session's page is also told that its recipe is durable up to that `seq` (app/rooms.py)."""
    if dur is not None:
        return '{"seq":%d,"dur":%d,%s' % (seq, dur, body[1:].decode())
    return '{"seq":%d,%s' % (seq, body[1:].decode())


def wire_bytes(body: bytes, seq: int, dur: int | None = None) -> bytes:
    """`wire` as UTF-8 bytes, without decoding `body` (the raw write paths write bytes)."""
    if dur is not None:
        return b'{"seq":%d,"dur":%d,%b' % (seq, dur, memoryview(body)[1:])
    return b'{"seq":%d,%b' % (seq, memoryview(body)[1:])


__all__ = ["Outbox", "wire", "wire_bytes"]
