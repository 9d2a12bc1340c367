"""Long runs of the load-balancing lab: its state does not grow with its requests
(`ProtocolSpec.ops_grow_state` is False), so live play is not stopped by the operations cap that
protocols with client histories keep; it is bounded by the events a replay may take, with a
sentence naming that limit. Share links and seeks of a long run reproduce it exactly; a seek
replays from a checkpoint; the state (and so each checkpoint) stays the same size as the run
goes on. Simulated time is driven by ticks that are always far behind (no wall-clock luck)."""

from __future__ import annotations

import json

import pytest

from app.limits import check_replay, check_scenario, decode_share
from app.protocols import get_adapter
from app.session import Session, default_scenario
from app.settings import Settings
from engine.protocols.lb.metrics import HISTORY, metrics_of
from engine.scenario import ScenarioError, parse_scenario
from engine.sim import Simulation
from engine.trace import Tap

from .test_runner import tick_until_paused

RATE = 200  # requests/s: the browser's highest


def _settings(tmp_path, **kw) -> Settings:
    return Settings.from_env({}, scenarios_dir=tmp_path / "none", **kw)


def lb_scenario(st: Settings, seed: int = 1, rate: float = RATE, **metrics):
    data = get_adapter("lb").default_scenario(st, seed)
    data["workload"]["rate_per_s"] = rate
    data["config"]["metrics"].update(metrics)
    return parse_scenario(data)


def play_to(s: Session, t_ms: float) -> None:
    """Play live until the session pauses: at `t_ms` (a pause point), or earlier at a limit."""
    s.handle(json.dumps({"type": "control", "do": "play", "until": t_ms}))
    tick_until_paused(s, limit=20_000)


def finish(s: Session) -> None:
    for _ in range(100_000):
        if s.job is None:
            return
        s.run_job_slice(10.0)
    raise AssertionError("the replay did not finish")


def errors(s: Session) -> list[str]:
    return [f["message"] for f in s.outbox if f["type"] == "error"]


def test_an_lb_session_plays_past_the_old_cap_and_its_link_and_seeks_reproduce_it(tmp_path):
    st = _settings(tmp_path)
    old_cap_ms = st.max_replay_ops / RATE * 1000  # where the operations cap stopped it: 25 s
    s = Session("t", st, {}, lb_scenario(st))
    s.outbox.clear()
    assert s._shareable_end() == (st.max_replay_ms, f"at most 60:00.000 of simulated time")
    play_to(s, 10_000.0)
    s.handle(json.dumps({"type": "action",
                         "action": {"do": "algorithm", "node": "lb1", "algorithm": "least_connections"}}))
    end = old_cap_ms + 10_000.0
    play_to(s, end)
    assert s.sim.now_ms == end and not errors(s), errors(s)
    # Its share link is accepted and reproduces the run exactly (the switch included).
    sc, t, _ = decode_share(s.share_payload(), st)
    assert t == end and len(sc.actions) == 1
    check_replay(sc, t, st)
    again = Session("u", st, {}, sc, until_ms=t)
    finish(again)
    assert again.sim.now_ms == end and again.sim.digest() == s.sim.digest()
    # A seek far back goes from the checkpoint before it, not from the start; forward again
    # lands on the same state.
    digest_at_end = s.sim.digest()
    before = max(c[0] for c in s.world.checkpoints if c[0] <= 31_000.0)
    # (Taken at ticks every 2 s or so, thinned past PLAYGROUND_MAX_CHECKPOINT_BYTES: not the start.)
    assert before > 0
    s.handle(json.dumps({"type": "control", "do": "seek", "t": 31_000.0}))
    assert s.job is not None and s.job.from_ms == before
    finish(s)
    s.handle(json.dumps({"type": "control", "do": "seek", "t": end}))
    finish(s)
    assert s.sim.digest() == digest_at_end and not errors(s)


def test_live_lb_play_stops_at_the_events_a_replay_may_take_with_the_limit_named(tmp_path):
    st = _settings(tmp_path, max_replay_events=20_000)
    s = Session("t", st, {}, lb_scenario(st))
    s.outbox.clear()
    play_to(s, 3_600_000.0)
    assert 0.9 * 20_000 <= s.events_total() < 20_000 + st.max_events_per_tick
    (msg,) = errors(s)
    assert msg.startswith("time: this session has processed") and \
        "about the most a share link may replay (PLAYGROUND_MAX_REPLAY_EVENTS = 20,000)" in msg


def test_raft_still_stops_at_its_operations_cap_with_the_same_sentence(tmp_path):
    st = _settings(tmp_path, max_replay_ops=10)  # the live workload: 1 op/s, so 10 s
    raft = default_scenario(st, seed=1)
    with pytest.raises(ScenarioError, match=r"t: with workload.rate_per_s = 1 at most 10000 ms can "
                                            r"be replayed \(10 client operations; asked for 600000 ms\)"):
        check_replay(raft, 600_000, st)
    s = Session("t", st, {}, raft)
    assert s._shareable_end() == (10_000.0, "at most 10 client operations at 1 per second")
    # The same cap, the same moment: a load-balancing world goes on (its state is bounded).
    check_replay(lb_scenario(st), 600_000, st)
    check_replay(lb_scenario(st), 600_000, st, worlds=4)


def test_the_lb_state_stays_the_same_size_and_a_trace_still_gets_every_metric_record(tmp_path):
    # A short metrics interval fills the history quickly: 400 records by 20 s, 1200 by 60 s.
    st = _settings(tmp_path)
    sc = lb_scenario(st, rate=40, interval_ms=50, window_ms=500).with_(duration_ms=60_000)
    sim = Simulation(sc)
    traced: list[dict] = []
    sim.subscribe(Tap(sim, traced.append))
    sim.run_until(20_000)
    m = metrics_of(sim)
    early = len(sim.snapshot())
    assert m.written in (399, 400) and len(m.out) <= HISTORY + 1  # (20 s is written at the next record)
    sim.run_until(60_000)
    late = len(sim.snapshot())
    assert m.written in (1199, 1200) and len(m.out) <= HISTORY + 1
    assert abs(late - early) < 0.03 * early, (early, late)  # flat: not three times the records
    # The trace (a reader after every record) missed none of the records the state forgot.
    ts = [r["t"] for r in traced if r["type"] == "metric"]
    assert ts == [50.0 * i for i in range(1, len(ts) + 1)] and len(ts) >= 1199
    assert [r["t"] for r in m.out] == ts[-len(m.out):]
    # A rewound copy carries its history and its count on.
    back = Simulation.restore(sim.snapshot())
    assert metrics_of(back).written == m.written and metrics_of(back).out == m.out


def test_a_long_latency_window_is_refused_in_the_browser(tmp_path):
    st = _settings(tmp_path)
    check_scenario(lb_scenario(st, window_ms=st.max_window_ms), st)
    with pytest.raises(ScenarioError, match=r"scenario.config.metrics.window_ms: at most 60000 ms "
                                            r"in the browser \(asked for 3600000\)"):
        check_scenario(lb_scenario(st, window_ms=3_600_000), st)
