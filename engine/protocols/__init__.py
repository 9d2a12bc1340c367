"""Protocol registry: each protocol names how to build a server node and its checkers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Protocol:
    name: str
    make_server: Callable[..., Any]
    make_checkers: Callable[[int, list[str]], list]
    invariants: tuple[tuple[str, str], ...]  # (name, one-sentence explanation)


def get_protocol(name: str) -> Protocol:
    if name == "raft":
        from .raft import PROTOCOL

        return PROTOCOL
    raise ValueError(f"unknown protocol {name!r}")
