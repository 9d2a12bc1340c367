"""Order statistics shared by the metrics observers and the sweep summary."""

from __future__ import annotations

import math


def percentile(sorted_xs, q: float) -> float | None:
    """The q-th percentile (0..100) of ascending samples, interpolating linearly between the two
    nearest ranks: numpy.percentile's default ("linear", Hyndman and Fan's type 7)."""
    n = len(sorted_xs)
    if n == 0:
        return None
    pos = (n - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


__all__ = ["percentile"]
