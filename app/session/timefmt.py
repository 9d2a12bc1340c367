"""Simulated time in words, as the page shows it."""

from __future__ import annotations


def fmt_ms(ms: float) -> str:
    """Simulated time as m:ss.mmm (or s.mmm s under a minute), as the page shows it."""
    if ms < 60_000:
        return f"{ms / 1000:.3f} s"
    m, rest = divmod(ms, 60_000)
    return f"{int(m)}:{rest / 1000:06.3f}"
