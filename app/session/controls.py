"""What the page sends: each inbound frame validated (app/wire.py) and applied to the session.

Bad input becomes an `error` frame naming the field; the session keeps running. Controls that
rebuild the world (`HEAVY`) cost more against the connection's rate limit.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from engine.scenario import ScenarioError

from ..limits import decode_share_link, quote
from ..protocols import live_workload
from ..wire import (ActionIn, BadInput, Check, Compare, Configure, Lesson, Load, NewSeed, Pause, Play,
                    Reset, Resync, Seek, Share, Speed, Step, parse_inbound)
from .compare import resolve_variants
from .ratelimit import TokenBucket

log = logging.getLogger("playground.session")

# Controls that rebuild the world: they count `ws_heavy_cost` frames against the rate limit.
HEAVY = (Load, Reset, Configure, NewSeed, Lesson, Compare)


class ControlsMixin:
    # --- input -----------------------------------------------------------------------------------
    def handle(self, text: str | bytes, bucket: TokenBucket | None = None) -> None:
        """One inbound frame. Bad input becomes an `error` frame; the session keeps running."""
        self.last_input = time.monotonic()
        msg = None
        try:
            if bucket is not None and not bucket.take(1):
                self._rate_limited(bucket)
                return
            msg = parse_inbound(text, self.settings.max_frame_bytes)
            if (bucket is not None and isinstance(msg, HEAVY)
                    and not bucket.take(self.settings.ws_heavy_cost - 1)):
                self._rate_limited(bucket)
                return
            if bucket is not None:
                bucket.told = False  # within the limit again: the next excess is told again
            self._apply(msg)
        except (BadInput, ScenarioError) as e:
            self.queue_error(str(e))
        except Exception as e:  # a bug must neither drop the connection nor pause the session
            what = "frame" if msg is None else (
                "action" if isinstance(msg, ActionIn) else f"control.{getattr(msg, 'do', '?')}")
            log.exception("session %s: internal error handling %s", self.id, what)
            self.queue_error(f"internal error handling {what}: {e!r}")
        self.kick()

    def _rate_limited(self, bucket: TokenBucket) -> None:
        """Over the per-connection rate: the frame is dropped, and the page told once."""
        if not bucket.told:
            bucket.told = True
            s = self.settings
            self.queue_error(f"rate: more than {s.ws_rate_per_s:g} frames per second (bursts of "
                             f"{s.ws_burst}; loading and resetting count {s.ws_heavy_cost}); frames "
                             "are dropped until the rate falls")
            self.kick()

    def _apply(self, msg: Any) -> None:
        s = self.settings
        if self.job is not None and self._apply_during_job(msg):
            return
        if isinstance(msg, ActionIn):
            t_in = time.monotonic()
            self.act(msg.action)
            if self.click_stats is not None:
                self.clicks_at.append(t_in)
            self.queue_events()  # the click's effect goes out now, not at the next tick
            if not self.playing:
                self.queue_snapshot()
            return
        if isinstance(msg, Play):
            if self.sim.now_ms >= self.scenario.duration_ms:
                raise BadInput(f"control.play: the scenario ends at {self.scenario.duration_ms:g} ms; "
                               "rewind or reset first")
            if msg.until is not None and msg.until <= self.sim.now_ms:
                raise BadInput(f"control.until: {msg.until:g} ms is not after now "
                               f"({self.sim.now_ms:g} ms)")
            self.pause_at = msg.until
            self.playing = True
            self._resync_refs()
            self.queue_snapshot()
        elif isinstance(msg, Pause):
            self.pause_at = None
            self.playing = False
            self.queue_events()
            self.queue_snapshot()
        elif isinstance(msg, Step):
            self.queue_events()
            self.step(msg.count)
            self.queue_events()
            self.queue_snapshot()
        elif isinstance(msg, Speed):
            if not (s.min_speed <= msg.value <= s.max_speed):
                raise BadInput(f"control.value: speed must be between {s.min_speed:g} and "
                               f"{s.max_speed:g} (1 = real time), not {msg.value:g}")
            self.speed = msg.value
            self._resync_refs()
            self.queue_snapshot()
        elif isinstance(msg, Seek):
            self.pause_at = None
            self.seek(msg.t)  # a job: its snapshot follows when it is done
        elif isinstance(msg, Reset):
            self.load(self.origin, self.lesson, playing=self.playing, variants=self.variants)
        elif isinstance(msg, NewSeed):
            seed = msg.seed if msg.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
            self.load(self.origin.with_(seed=seed, actions=[]), self.lesson, playing=self.playing,
                      variants=self.variants)
        elif isinstance(msg, Lesson):
            lf = self.lessons.get(msg.name)
            if lf is None:
                raise BadInput(f"control.name: no lesson {msg.name!r} (known: "
                               f"{', '.join(sorted(self.lessons)) or 'none'})")
            self.load(lf.scenario, lf.name, playing=True)  # one world: a lesson is its own story
        elif isinstance(msg, Configure):
            self._configure(msg)
        elif isinstance(msg, Compare):
            self._compare(msg)
        elif isinstance(msg, Load):
            sc, t, lesson, variants = decode_share_link(msg.share, s)
            self.load(sc, lesson, until_ms=t, playing=False, variants=variants)
        elif isinstance(msg, Share):
            frame = {"type": "share", "payload": self.share_payload()}
            if len(self.panes) > 1:
                frame["worlds"] = self.world_payloads()  # each world alone, as a single-world link
            self._queue(frame)
        elif isinstance(msg, Resync):
            if not self._snapshot_pending:  # repeated requests collapse into the pending one
                self.queue_snapshot()
        elif isinstance(msg, Check):
            self._check_linearizability(force=True)
            self.queue_snapshot()

    def _apply_during_job(self, msg: Any) -> bool:
        """Input that arrives while a replay runs. True when handled here.

        A seek supersedes the replay's target; pause stops the replay where it has got to; a
        speed change just applies; a snapshot request is answered by the snapshot that ends the
        replay; reset, new seed, lesson, configure and load start over (dropping the replay).
        Clicks, play, step, share and check are refused with an error saying why."""
        if isinstance(msg, Seek):
            self.seek(msg.t)
            return True
        if isinstance(msg, Pause):
            self._finish_job()
            return True
        if isinstance(msg, Speed):
            s = self.settings
            if not (s.min_speed <= msg.value <= s.max_speed):
                return False  # the usual error
            self.speed = msg.value
            return True
        if isinstance(msg, Resync):
            return True
        if isinstance(msg, (Reset, NewSeed, Lesson, Configure, Load, Compare)):
            return False  # `load` drops the job (only once the new scenario passed its checks)
        what = "action" if isinstance(msg, ActionIn) else f"control.{msg.do}"
        raise self._busy(what)

    def _configure(self, msg: Configure) -> None:
        """Rebuild the world with another shape: node count, mutations, the protocol's own
        switches (`options`, validated by the adapter), background clients."""
        sc = self.origin  # in compare mode the variants go on top of the new shape
        changes: dict[str, Any] = {"actions": []}
        if msg.nodes is not None:
            cap = self.adapter.node_cap(self.settings)
            if msg.nodes > cap:
                raise BadInput(f"control.nodes: at most {cap} nodes per session")
            changes["nodes"] = msg.nodes
        cfg = sc.config.model_dump(mode="json")
        if msg.mutations is not None:
            known = self.protocol.mutations
            bad = [m for m in msg.mutations if m not in known]
            if bad:
                raise BadInput(f"control.mutations: unknown mutation {quote(bad[0])} "
                               f"(known: {', '.join(sorted(known)) or 'none'})")
            cfg["mutations"] = sorted(set(msg.mutations))
        changes["config"] = cfg
        if msg.workload is not None:
            changes["workload"] = (live_workload(self.settings) if msg.workload else None)
        if msg.options:
            data = sc.to_dict()
            data = {k: changes.get(k, data.get(k)) for k in ("config", "nodes", "topology", "workload")}
            changes.update(self.adapter.reshape(data, msg.options))
        self.load(sc.with_(**changes), self.lesson, playing=self.playing, variants=self.variants)

    def _compare(self, msg: Compare) -> None:
        """Enter compare mode (2-4 variant names), change its variants, or leave it (none): the
        run so far (its actions, up to now) is replayed in every world, which ends paused here."""
        variants = resolve_variants(self.adapter, self.origin.config, list(msg.variants),
                                    "control.variants")
        now = self.sim.now_ms
        sc = self.origin.with_(actions=list(self.sim.actions))
        self.load(sc, self.lesson, until_ms=now, playing=self.playing, variants=variants)
