"""The fault injector ("nemesis"), driven by its own RNG stream.

Every `interval_ms` it either starts a fault or ends the one it started, alternating (Jepsen's
start/stop rhythm): crash then restart a node, partition (random halves, or isolate the target) then
heal, cut one link one way then heal, a burst of loss and duplication then back to normal, pause
then resume a node. At `heal_ms` everything heals: links, crashed nodes, paused nodes, and no new
fault starts. It speaks the generic fault vocabulary (`engine/faults.py`).

The target is what the protocol says the nemesis may aim at (`ProtocolSpec.nemesis_targets`, the
first one; a consensus protocol's is typically its current primary): a function of the world returning node ids, of which it takes the
first. Half the crashes and pauses, and 40% of the partitions, aim at it when there is one. It reads
that and the nodes' status, nothing else.
"""

from __future__ import annotations

from .faults import Cut, Heal, NodeAction, Partition, SetLink

LOSS_BURST = 0.3
DUP_BURST = 0.1


class NemesisDriver:
    def __init__(self, cfg, rng, servers: list[str], base_loss: float = 0.0,
                 base_duplicate: float = 0.0, target=None):
        self.cfg = cfg
        self.target = target  # world -> [node ids] (a module-level function: it is snapshotted)
        self.base_loss = base_loss
        self.base_duplicate = base_duplicate
        self.rng = rng
        self.servers = servers
        self.interval_us = int(cfg.interval_ms * 1000)
        self.heal_us = int(cfg.heal_ms * 1000)
        self.active: list = []  # actions that undo the current fault
        self.healed = False

    def next_tick_us(self, now_us: int) -> int | None:
        if self.healed:
            return None
        nxt = now_us + self.interval_us
        return min(nxt, self.heal_us) if now_us < self.heal_us else None

    def tick(self, now_us: int, world) -> list:
        if now_us >= self.heal_us:
            self.healed = True
            return self._final_heal(world)
        if self.active:
            undo, self.active = self.active, []
            return undo
        if not self.cfg.faults:
            return []
        fault = self.rng.choice(self.cfg.faults)
        return getattr(self, f"_start_{fault}")(world)

    def _aim(self, world) -> str | None:
        picks = self.target(world) if self.target is not None else ()
        return picks[0] if picks else None

    def _pick_node(self, world) -> str:
        aim = self._aim(world)
        if aim and self.rng.random() < 0.5:
            return aim
        return self.rng.choice(self.servers)

    def _start_crash(self, world):
        n = self._pick_node(world)
        self.active = [NodeAction(do="restart", node=n)]
        return [NodeAction(do="crash", node=n)]

    def _start_pause(self, world):
        n = self._pick_node(world)
        self.active = [NodeAction(do="resume", node=n)]
        return [NodeAction(do="pause", node=n)]

    def _start_partition(self, world):
        aim = self._aim(world)
        if aim and self.rng.random() < 0.4:
            groups = [[aim], [n for n in self.servers if n != aim]]
        else:
            shuffled = list(self.servers)
            self.rng.shuffle(shuffled)
            k = max(1, len(shuffled) // 2)
            groups = [sorted(shuffled[:k]), sorted(shuffled[k:])]
        self.active = [Heal(do="heal")]
        return [Partition(do="partition", groups=tuple(tuple(g) for g in groups if g))]

    def _start_cut(self, world):
        if len(self.servers) < 2:
            return []
        a, b = self.rng.sample(self.servers, 2)
        self.active = [Heal(do="heal")]
        return [Cut(**{"do": "cut", "from": a, "to": b, "both": False})]

    def _start_loss(self, world):
        self.active = [self._links(self.base_loss, self.base_duplicate)]
        return [self._links(LOSS_BURST, DUP_BURST)]

    @staticmethod
    def _links(loss: float, duplicate: float) -> SetLink:
        """A set_link on every link ("*" to "*"): a burst, or back to the scenario's defaults."""
        return SetLink(**{"do": "set_link", "from": "*", "to": "*", "loss": loss,
                          "duplicate": duplicate})

    def _final_heal(self, world) -> list:
        out = [Heal(do="heal"), self._links(self.base_loss, self.base_duplicate)]
        for n in self.servers:
            st = world.status[n]
            if st == "down":
                out.append(NodeAction(do="restart", node=n))
            elif st == "paused":
                out.append(NodeAction(do="resume", node=n))
        return out
