"""Protocol adapters: how the web app shows one protocol (labels, node summaries, words).

The session, the frame stream and the canvas are protocol-agnostic; everything that knows what a
RequestVote is lives in one adapter per protocol, looked up by the scenario's `protocol` field.
Paxos, the coordination service and the load balancers add an adapter here and a renderer module in
`static/js/protocols/`.
"""

from __future__ import annotations

from .raft import RaftAdapter

ADAPTERS = {"raft": RaftAdapter}


def get_adapter(protocol: str):
    try:
        return ADAPTERS[protocol]()
    except KeyError:
        raise ValueError(f"protocol: unknown protocol {protocol!r} "
                         f"(known: {', '.join(sorted(ADAPTERS))})") from None
