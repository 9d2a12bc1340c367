"""Long runs of the load-balancing lab (`playground bench --long`): what a long session costs.

The lab's live scenario (three clients, one balancer, five backends) at 200 requests/s, the
browser's highest rate, played as a session plays it (a `World` taking its rewind checkpoints)
to 30 s, 5 min and 10 min of simulated time (`--quick`: 30 s, 2 min, 5 min). At each: the events
so far, a checkpoint's size and the CPU it takes (`Simulation.snapshot`, the best of five), the
digest's CPU, and the metric records the state holds. Then where live play stops (the events a
share link may replay, `max_replay_events`, in one world and in compare mode's four), the CPU a
share link of the longest run takes to replay (extrapolated from the measured rate), and a seek
from the end back to 1 min (restore the checkpoint before it, replay on: its CPU and events).

CPU times are `time.process_time` (this process only); the load average is printed beside them.
"""

from __future__ import annotations

import os
import time

from engine.protocols.lb.metrics import metrics_of
from engine.scenario import parse_scenario

from .protocols import get_adapter
from .session.world import World
from .settings import Settings

RATE_PER_S = 200


def _scenario(settings: Settings):
    data = get_adapter("lb").default_scenario(settings, 1)
    data["workload"]["rate_per_s"] = RATE_PER_S
    data["duration_ms"] = settings.max_replay_ms
    return parse_scenario(data)


def _cpu_ms(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return round(best * 1000, 3)


def run_long_lb_bench(quick: bool = False) -> dict:
    st = Settings()
    world = World(_scenario(st), st)
    marks = (30_000, 120_000, 300_000) if quick else (30_000, 300_000, 600_000)
    rows, cpu_s = [], 0.0
    for t in marks:
        while world.sim.now_ms < t:  # a second at a time, checkpoints as a session takes them
            t0 = time.process_time()
            world.advance(min(t, world.sim.now_ms + 1000))
            cpu_s += time.process_time() - t0
        sim = world.sim
        rows.append({"t_s": t / 1000, "events": sim.events, "run_cpu_s": round(cpu_s, 2),
                     "checkpoint_bytes": len(sim.snapshot()), "checkpoint_cpu_ms": _cpu_ms(sim.snapshot),
                     "digest_cpu_ms": _cpu_ms(sim.digest), "metric_records_kept": len(metrics_of(sim).out),
                     "checkpoints": len(world.checkpoints)})
    end = world.sim
    events_per_s = end.events / (end.now_ms / 1000)
    stop_events = 0.9 * st.max_replay_events  # where live play stops (app/session/runner.py)
    cpu_per_event = cpu_s / end.events
    # A seek from the end back to 1 min: the checkpoint before it, then the replay on to it.
    t0 = time.process_time()
    from_ms = world.rewind(60_000)
    before = world.sim.events
    world.advance(60_000)
    seek = {"to_s": 60, "from_checkpoint_s": round(from_ms / 1000, 3),
            "events": world.sim.events - before, "cpu_ms": round((time.process_time() - t0) * 1000, 1)}
    longest_s = min(stop_events / events_per_s, st.max_replay_ms / 1000)
    return {
        "scenario": f"the lab's live scenario at {RATE_PER_S} requests/s (5 backends, round robin)",
        "at": rows,
        "events_per_simulated_s": round(events_per_s, 1),
        "live_play_stops_at_s": {"one_world": round(longest_s, 1),
                                 "compare_4_worlds": round(min(stop_events / (4 * events_per_s),
                                                               st.max_replay_ms / 1000), 1)},
        "share_link_of_the_longest_run_cpu_s": round(longest_s * events_per_s * cpu_per_event, 1),
        "seek_back": seek,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


__all__ = ["run_long_lb_bench"]
