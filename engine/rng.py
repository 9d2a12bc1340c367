"""Named, seeded random streams.

Every source of randomness in a run draws from its own stream, derived from the run's seed and
the stream's name ("node:n1", "network", "nemesis", "client:c2"). Adding a stream, or drawing more
from one, never shifts another: the network's draws do not depend on how often n3's timer fired.
Nothing in `engine/` touches the global `random` module.
"""

from __future__ import annotations

import hashlib
import random


def stream(seed: int, name: str) -> random.Random:
    """A `random.Random` seeded from sha256(seed, name): stable across runs and Python versions."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
