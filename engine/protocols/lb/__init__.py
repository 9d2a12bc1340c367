"""Load balancing: clients (the open-loop workload), one balancer or two (`lb1`, `lb2`, each
with its own view), and backends `b1..bN`. The balancer (balancer.py) runs one of the algorithms
(algorithms.py, hashing.py) with health checks, outlier ejection and retries; backends
(backend.py) serve with a concurrency limit, a speed and a bounded queue; `slow` and `algorithm`
(actions.py); the invariants (checkers.py); the metrics observer (metrics.py); the sweep measures
(measures.py); the config (config.py); words.

    "topology": {"backends": 10, "balancers": 2}     or "nodes": 10 (backends, one balancer)
"""

from __future__ import annotations

from .. import ProtocolSpec, Topology
from .actions import SetAlgorithm, Slow
from .backend import Backend
from .balancer import Balancer
from .checkers import LB_INVARIANTS, make_lb_checkers
from .config import MUTATIONS, LbConfig
from .measures import LB_MEASURES
from .metrics import LbMetrics
from .words import LB_WORDS


def lb_topology(scenario) -> Topology:
    shape = scenario.topology if scenario.topology is not None else {"backends": scenario.nodes}
    unknown = sorted(set(shape) - {"backends", "balancers"})
    if unknown:
        raise ValueError(f"topology.{unknown[0]}: unknown field (a load balancer's topology has "
                         f"'backends' and 'balancers')")
    n, m = shape.get("backends", 3), shape.get("balancers", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 20:
        raise ValueError("topology.backends: a number of backends from 1 to 20")
    if m not in (1, 2) or isinstance(m, bool):
        raise ValueError("topology.balancers: 1 or 2")
    if len(scenario.config.backends) > n:
        raise ValueError(f"config.backends: {len(scenario.config.backends)} entries for {n} backends")
    lbs = [f"lb{i}" for i in range(1, m + 1)]
    backends = [f"b{i}" for i in range(1, n + 1)]
    return Topology(tuple((x, "balancer") for x in lbs) + tuple((b, "backend") for b in backends),
                    tuple((x, b) for x in lbs for b in backends), entry=tuple(lbs))


def make_checkers(seed, topology, config) -> list:
    return make_lb_checkers(seed, topology, config) + [
        LbMetrics(seed, topology.ids, topology.of_kind("backend"), config)]


def busiest_backend(world) -> list[str]:
    """The up backend with the most work (what the nemesis likes to crash or pause)."""
    up = [b for b in world.topology.of_kind("backend") if world.status[b] == "up"]
    return sorted(up, key=lambda b: -len(world.nodes[b].serving) - len(world.nodes[b].queue))[:1]


PROTOCOL = ProtocolSpec(
    name="lb",
    config_model=LbConfig,
    topology=lb_topology,
    node_factories={"balancer": Balancer, "backend": Backend},
    make_checkers=make_checkers,
    invariants=LB_INVARIANTS,
    actions=(Slow, SetAlgorithm),
    mutations=MUTATIONS,
    words=LB_WORDS,
    nemesis_targets={"backend": busiest_backend},
    record_types=("request",),
    workloads=("open_loop",),
    measures=LB_MEASURES,
    ops_grow_state=False,  # metrics.py keeps a bounded history; requests are forgotten when done
)
