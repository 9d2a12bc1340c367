"""The session runner's pacing: ticks on a fixed grid per session, phases spread, late ticks caught up."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from app.session import Session, default_scenario
from app.sessions import SessionManager
from app.settings import Settings


class _Socket:
    def __init__(self):
        self.frames: list[dict] = []

    async def send_text(self, text: str) -> None:
        self.frames.append(orjson.loads(text))


def _run(settings: Settings, block_s: float) -> list[float]:
    """Run one live session for a while, stalling the event loop once for `block_s`; answer the
    due times (`w`, wall ms) of its tick frames."""
    s = Session("t", settings, {}, default_scenario(settings, seed=1))
    ws = _Socket()

    async def main():
        s.ws = ws
        task = asyncio.ensure_future(s.run())
        await asyncio.sleep(0.15)
        time.sleep(block_s)  # a stall (a long tick elsewhere, a GC pause): deliberate, in a test
        await asyncio.sleep(0.15)
        s.closed = True
        s.kick()
        await task

    asyncio.run(main())
    return [f["w"] for f in ws.frames if f["type"] == "events" and "w" in f]


def test_late_ticks_are_caught_up_so_no_frame_is_lost(tmp_path):
    st = Settings.from_env({}, scenarios_dir=tmp_path, frame_interval_ms=20, frame_catch_up=20,
                            quiet_frame_every=1)  # every tick sends its frame
    ws = _run(st, block_s=0.1)  # five intervals
    gaps = [round((b - a) / 20, 2) for a, b in zip(ws, ws[1:])]
    assert len(ws) >= 12 and set(gaps) == {1.0}, gaps  # every tick of the grid was sent


def test_far_behind_the_runner_skips_ahead_on_the_same_grid(tmp_path):
    st = Settings.from_env({}, scenarios_dir=tmp_path, frame_interval_ms=20, frame_catch_up=1,
                            quiet_frame_every=1)
    ws = _run(st, block_s=0.15)
    gaps = [(b - a) / 20 for a, b in zip(ws, ws[1:])]
    assert all(abs(g - round(g)) < 0.01 and round(g) >= 1 for g in gaps), gaps  # phase kept
    assert max(gaps) > 2  # and some ticks were skipped rather than sent in a burst


def test_the_manager_spreads_session_phases_over_the_interval(tmp_path):
    st = Settings.from_env({}, scenarios_dir=tmp_path, frame_interval_ms=50, live_duration_ms=1000)
    m = SessionManager(st, {})
    phases = sorted(m.create(default_scenario(st, seed=i), None, None).phase_s for i in range(40))
    assert all(0 <= p < 0.05 for p in phases)
    gaps = [b - a for a, b in zip(phases, phases[1:])] + [phases[0] + 0.05 - phases[-1]]
    assert max(gaps) < 3 * 0.05 / 40  # evenly spread: no big hole, so no burst elsewhere


def tick_until_paused(s, limit: int = 5000) -> None:
    """Tick until live play stops (a tick's CPU budget is wall time: on a busy machine one tick
    may not get as far as it is due)."""
    for _ in range(limit):
        s.sim_ref, s.wall_ref = s.sim.now_ms, time.monotonic() - 100.0  # always far behind
        s.tick(0.0)
        if not s.playing:
            return
    raise AssertionError(f"still playing after {limit} ticks, at {s.sim.now_ms} ms")


def test_live_play_stops_at_the_longest_shareable_run(tmp_path):
    st = Settings.from_env({}, scenarios_dir=tmp_path, max_replay_ms=300)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.outbox.clear()
    s.playing = True
    s.speed = 10.0
    s.sim_ref, s.wall_ref = 0.0, time.monotonic() - 1.0  # a second of wall time at 10x is due
    tick_until_paused(s)
    assert s.sim.now_ms == 300 and s.playing is False
    errors = [f["message"] for f in s.outbox if f["type"] == "error"]
    assert errors and "longest run that can be shared" in errors[0]


def test_play_until_pauses_exactly_at_the_point_without_an_error(tmp_path):
    from app.wire import BadInput, Play
    st = Settings.from_env({}, scenarios_dir=tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.playing = False
    s._apply(Play(do="play", until=420.5))
    s.outbox.clear()
    s.speed = 10.0
    s.sim_ref, s.wall_ref = 0.0, time.monotonic() - 1.0  # 10 s of simulated time are due
    tick_until_paused(s)
    assert s.sim.now_ms == 420.5 and s.playing is False and s.pause_at is None
    assert not [f for f in s.outbox if f["type"] == "error"]
    assert [f for f in s.outbox if f["type"] == "snapshot"][-1]["t"] == 420.5
    # A pause point already passed is refused, by name; the session is as it was.
    with pytest.raises(BadInput, match=r"control.until: 100 ms is not after now \(420.5 ms\)"):
        s._apply(Play(do="play", until=100))
    assert s.playing is False and s.sim.now_ms == 420.5


def test_a_quiet_tick_sends_its_empty_frame_only_every_quiet_frame_every_ticks(tmp_path):
    """Nothing to say (no record, no click): every fifth tick's frame is sent, the clock's word;
    anything to say goes out at the tick it happens, and the count starts again."""
    st = Settings.from_env({}, scenarios_dir=tmp_path, quiet_frame_every=5)
    s = Session("q", st, {}, default_scenario(st, seed=1))
    s.outbox.take()
    s.pending_recs = []
    s.queue_events(1000.0)  # (the count starts with the session)
    sent = []
    for i in range(1, 21):
        s.queue_events(1000.0 + 50 * i)
        sent += [(i, f) for f, _ in s.outbox.take()]
    assert [i for i, _ in sent] == [4, 9, 14, 19]
    assert all(set(f) == {"type", "t", "w"} for _, f in sent)
    s.pending_recs = [{"type": "fault", "t": 1.0, "do": "heal"}]  # something happened
    s.queue_events(2100.0)
    (f, _), = s.outbox.take()
    assert f["type"] == "events" and len(f) > 3
    for i in range(1, 5):  # the quiet count starts again after a frame with words
        s.queue_events(2100.0 + 50 * i)
        assert not s.outbox, i
    s.queue_events(2350.0)
    assert [f["w"] for f, _ in s.outbox.take()] == [2350.0]


def test_a_quiet_tick_with_newer_durability_to_tell_sends_its_frame():
    """A recipe made durable (app/rooms.py) is told on the next frame sent (`dur`): a quiet tick
    does not hold that back."""
    st = Settings.from_env({}, quiet_frame_every=5)
    s = Session("d", st, {}, default_scenario(st, seed=1))
    s.pending_recs = []
    s.queue_events(1000.0)
    s.outbox.take()
    s.queue_events(1050.0)
    assert not s.outbox  # quiet: held back
    s.durable_seq = s.dur_told + 3
    s.queue_events(1100.0)
    assert [f["w"] for f, _ in s.outbox.take()] == [1100.0]
