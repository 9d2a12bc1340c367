"""The load balancer in a transcript's words: its messages and its `state`, `request` and
`metric` records."""

from __future__ import annotations

from ...workloads.open_loop import request_words
from .. import Words


def message_words(m: dict) -> str:
    k = m["kind"]
    if k == "ClientRequest":
        key = f" key={m['key']}" if m.get("key") is not None else ""
        return f"ClientRequest {m['client']}#{m['req']} cost={m['cost_ms']}{key}"
    if k == "Work":
        return f"Work t{m['tid']} {m['client']}#{m['req']} cost={m['cost_ms']}"
    if k == "Done":
        return f"Done t{m['tid']} {'ok' if m['ok'] else 'rejected'}"
    if k == "ClientReply":
        why = f" ({m['why']})" if m.get("why") else ""
        return f"ClientReply #{m['req']} {'ok' if m['ok'] else 'failed'}{why}"
    if k == "Probe":
        return f"Probe {m['seq']}"
    if k == "ProbeReply":
        return f"ProbeReply {m['seq']} {'ok' if m['ok'] else 'overloaded'}"
    return k


def state_words(rec: dict) -> str:
    n = rec["node"]
    if "algorithm" in rec:
        return (f"{n:>4} {rec['role']:<9} {rec['algorithm']} healthy={','.join(rec['healthy'])} "
                f"ejected={','.join(rec['ejected']) or '-'}")
    return (f"{n:>4} {rec['role']:<9} in_flight={rec['in_flight']} queue={rec['queue']} "
            f"speed={rec['speed']}{'' if rec['healthy'] else ' unhealthy'}")


def metric_words(rec: dict) -> str:
    lat = rec["latency_ms"]
    return (f"metric throughput={rec['throughput_per_s']}/s drops={rec['drops']} "
            f"p50={lat['p50']} p99={lat['p99']} ms")


LB_WORDS = Words(message=message_words,
                 records={"state": state_words, "request": request_words, "metric": metric_words})
