"""The load-balancing benchmark (`playground bench --lb`): one million requests through 10
backends with least connections (Poisson arrivals, exponential cost of mean 10 ms, one request at
a time per backend, 70% utilisation; 10-15 ms links), with the trace off and on; then the same
system modelled in SimPy (the `bench` extra), for the ratio. Each run is timed by the wall clock
and by the process's CPU time (`time.process_time`), which a loaded machine disturbs less; the
figures to compare are `requests_per_cpu_s`.

Each request in the engine is six kernel events (its arrival, four deliveries: client ->
balancer -> backend -> balancer -> client, and its completion) plus the client's and balancer's
timeout bookkeeping, the algorithm's pick and its records. The SimPy model is one process per
request doing the same four hops and the service, with a least-connections pick and bounded
queues, but no timeouts, records or checkers: it is the least a SimPy model of this system does.
"""

from __future__ import annotations

import io
import os
import random
import resource
import time
import tracemalloc

from ...native import describe
from ...scenario import parse_scenario
from ...sim import Simulation
from ...trace import TraceWriter

BACKENDS, MEAN_COST_MS, UTILISATION = 10, 10.0, 0.7
RATE_PER_S = UTILISATION * BACKENDS * 1000 / MEAN_COST_MS  # 700 requests/s


def scenario(requests: int, seed: int = 1):
    return parse_scenario({
        "protocol": "lb", "nodes": BACKENDS, "seed": seed,
        "duration_ms": requests / RATE_PER_S * 1000,
        "config": {"algorithm": "least_connections"},
        "workload": {"kind": "open_loop", "rate_per_s": RATE_PER_S,
                     "cost": {"dist": "exponential", "mean_ms": MEAN_COST_MS}}})


def run_engine(requests: int, trace: bool = False, checkers: bool = False) -> dict:
    sc = scenario(requests)
    sim = Simulation(sc, checkers=checkers)
    sink = None
    if trace:
        sink = open(os.devnull, "wb")
        sim.subscribe(TraceWriter(io.BufferedWriter(sink, 1 << 16), sc))
    c0, t0 = time.process_time(), time.perf_counter()
    sim.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if sink:
        sink.close()
    arrived = sum(sim.nodes[c].next_req - 1 for c in sim.clients)
    return {"requests": arrived, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "requests_per_s": round(arrived / wall), "requests_per_cpu_s": round(arrived / cpu),
            "events": sim.events, "speedup_x": round(sc.duration_ms / 1000 / wall, 1),
            "digest": sim.digest()}


def run_simpy(requests: int, seed: int = 1) -> dict | None:
    try:
        import simpy
    except ImportError:
        return None
    rnd = random.Random(seed)
    env = simpy.Environment()
    servers = [simpy.Resource(env, capacity=1) for _ in range(BACKENDS)]
    in_flight = [0] * BACKENDS
    done = [0]

    def hop():
        return env.timeout(0.010 + rnd.random() * 0.005)

    def request(cost):
        yield hop()  # client -> balancer
        low = min(in_flight)
        ties = [i for i, n in enumerate(in_flight) if n == low]
        b = ties[int(rnd.random() * len(ties))]
        in_flight[b] += 1
        yield hop()  # balancer -> backend
        srv = servers[b]
        if len(srv.queue) < 16:
            with srv.request() as req:
                yield req
                yield env.timeout(cost)
        yield hop()  # backend -> balancer
        in_flight[b] -= 1
        yield hop()  # balancer -> client
        done[0] += 1

    def arrivals():
        for _ in range(requests):
            yield env.timeout(rnd.expovariate(RATE_PER_S))
            env.process(request(rnd.expovariate(1000 / MEAN_COST_MS)))

    env.process(arrivals())
    c0, t0 = time.process_time(), time.perf_counter()
    env.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"requests": requests, "completed": done[0], "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "requests_per_s": round(requests / wall),
            "requests_per_cpu_s": round(requests / cpu)}


def peak_memory_mb(requests: int) -> float:
    tracemalloc.start()
    run_engine(requests)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return round(peak / 2**20, 1)


def run_lb_bench(requests: int = 1_000_000) -> dict:
    out: dict = {"engine": describe().removeprefix("engine: "), "requests": requests, "backends": BACKENDS,
                 "algorithm": "least_connections",
                 "rate_per_s": RATE_PER_S, "utilisation": UTILISATION}
    out["trace_off_checkers_off"] = run_engine(requests)
    out["trace_off_checkers_on"] = run_engine(requests, checkers=True)
    out["trace_on_checkers_on"] = run_engine(requests, trace=True, checkers=True)
    out["peak_traced_memory_mb_100k_requests"] = peak_memory_mb(min(requests, 100_000))
    sp = run_simpy(requests)
    out["simpy"] = sp if sp is not None else "not installed (pip install '.[bench]')"
    if sp is not None:
        off = out["trace_off_checkers_off"]
        out["engine_vs_simpy_x"] = round(sp["wall_s"] / off["wall_s"], 2)
        out["engine_vs_simpy_cpu_x"] = round(sp["cpu_s"] / off["cpu_s"], 2)
        out["checkers_on_vs_simpy_cpu_x"] = round(
            sp["cpu_s"] / out["trace_off_checkers_on"]["cpu_s"], 2)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out
