"""A per-connection rate limit on inbound frames (a token bucket)."""

from __future__ import annotations

import time


class TokenBucket:
    """A per-connection rate limit on inbound frames: `rate` tokens per second, at most `burst`
    saved up. `told` is set once the page has been told it is over the limit."""

    __slots__ = ("rate", "burst", "tokens", "at", "told")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = time.monotonic()
        self.told = False

    def take(self, n: float = 1) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False
