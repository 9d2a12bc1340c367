"""Compare mode (app/session/compare.py): 2-4 worlds of one scenario under named variants, in lock
step under one runner. Each world is exactly a standalone run of its own config with the same seed
and clicks; a click lands in every world or in none; one share link reproduces them all; bad input
is refused naming the field, disturbing nothing."""

from __future__ import annotations

import json
import time

from engine.sim import Simulation

from app import share
from app.session import Session, default_scenario
from app.settings import Settings

from .conftest import drain

PAIR = ["pre_vote-on", "timeout-150-160"]
OVERRIDES = {"pre_vote-on": {"pre_vote": True},
             "timeout-150-160": {"election_timeout_ms_min": 150, "election_timeout_ms_max": 160}}


def _settings(tmp_path, **kw) -> Settings:
    return Settings.from_env({}, scenarios_dir=tmp_path / "none", **kw)


def _session(st: Settings, seed: int = 3, protocol: str = "raft", variants=None) -> Session:
    s = Session("c", st, {}, default_scenario(st, seed=seed, protocol=protocol), variants=variants)
    s.outbox.clear()
    return s


def control(s: Session, slice_s: float = 10.0, **c) -> None:
    s.handle(json.dumps({"type": "control", **c}))
    finish(s, slice_s)


def act(s: Session, action: dict) -> None:
    s.handle(json.dumps({"type": "action", "action": action}))


def finish(s: Session, slice_s: float = 10.0) -> None:
    """Run the session's replay job (a seek, a load) to its end, as the runner would (in slices
    of `slice_s` of CPU; its cost bound is looked at between slices)."""
    for _ in range(100_000):
        if s.job is None:
            return
        s.run_job_slice(slice_s)
    raise AssertionError("the replay did not finish")


def of(s: Session, kind: str) -> list[dict]:
    return [f for f in s.outbox if f["type"] == kind]


def errors(s: Session) -> list[str]:
    return [f["message"] for f in of(s, "error")]


def digests(snap: dict) -> list[str]:
    return [snap["digest"]] + [w["digest"] for w in snap.get("worlds", [])]


def in_lock_step(s: Session) -> bool:
    return len({p.world.sim.now_ms for p in s.panes}) == 1


def script(s: Session) -> list[str]:
    """Pause, go to 400 ms, crash n1, go to 1.5 s: the digests of the last snapshot."""
    control(s, do="pause")
    control(s, do="seek", t=400.0)
    act(s, {"do": "crash", "node": "n1"})
    assert in_lock_step(s)
    control(s, do="seek", t=1500.0)
    assert not errors(s), errors(s)
    return digests(of(s, "snapshot")[-1])


def test_each_world_is_a_standalone_run_of_its_variant(tmp_path):
    st = _settings(tmp_path)
    s = _session(st)
    control(s, do="compare", variants=PAIR)
    hello = of(s, "hello")[-1]
    assert [v[0] for v in hello["compare"]["variants"]] == PAIR and len(hello["worlds"]) == 1
    assert hello["worlds"][0]["scenario"]["config"]["election_timeout_ms_max"] == 160
    assert hello["scenario"]["config"]["pre_vote"] is True
    got = script(s)
    assert len(got) == 2 and got[0] != got[1]
    for name, digest in zip(PAIR, got):
        sc = default_scenario(st, seed=3)
        mine = sc.with_(config={**sc.config.model_dump(mode="json"), **OVERRIDES[name]})
        alone = Session("a", st, {}, mine)
        assert len(alone.panes) == 1 and script(alone) == [digest], name
    # Each world's own single-world link replays, in the engine alone, to the same state.
    control(s, do="share")
    frame = of(s, "share")[-1]
    for payload, digest in zip(frame["worlds"], got):
        sc, t, _lesson = share.decode(payload)
        sim = Simulation(sc)
        sim.run_until(t)
        assert sim.digest() == digest


def test_seeking_back_then_forward_gives_the_same_digests(tmp_path):
    s = _session(_settings(tmp_path))
    control(s, do="compare", variants=PAIR)
    first = script(s)
    control(s, do="seek", t=700.0)
    back = digests(of(s, "snapshot")[-1])
    assert back != first and in_lock_step(s) and s.sim.now_ms == 700.0
    control(s, do="seek", t=1500.0)
    assert digests(of(s, "snapshot")[-1]) == first
    control(s, do="seek", t=0.0)  # before every checkpoint but the first, and before the click
    control(s, do="seek", t=1500.0)
    assert digests(of(s, "snapshot")[-1]) == first


def test_a_click_applies_in_every_world_at_the_same_moment(tmp_path):
    s = _session(_settings(tmp_path), variants=[(n, OVERRIDES[n]) for n in PAIR])
    control(s, do="pause")
    control(s, do="seek", t=300.0)
    s.outbox.clear()
    act(s, {"do": "crash", "node": "n2"})
    ev = of(s, "events")[0]
    assert ev["acts"] == [{"at": 300.001, "do": "crash", "node": "n2"}]
    assert ev["nodes"]["n2"]["status"] == "down"
    assert [w["nodes"]["n2"]["status"] for w in ev["worlds"]] == ["down"]
    assert "acts" not in ev["worlds"][0]  # told once, for every world
    snap = of(s, "snapshot")[-1]
    assert snap["nodes"]["n2"]["status"] == snap["worlds"][0]["nodes"]["n2"]["status"] == "down"
    assert [list(p.world.sim.actions) for p in s.panes][0] == list(s.panes[1].world.sim.actions)
    assert {p.world.sim.now_ms for p in s.panes} == {300.001}


def test_a_click_refused_by_one_world_lands_in_none(tmp_path):
    # At 120 ms the quick timeouts have started an election (its votes wait on their links); the
    # slow ones have not.
    s = _session(_settings(tmp_path), variants=[
        ("timeout-50-100", {"election_timeout_ms_min": 50, "election_timeout_ms_max": 100}),
        ("timeout-300-600", {"election_timeout_ms_min": 300, "election_timeout_ms_max": 600})])
    control(s, do="pause")
    act(s, {"do": "manual", "on": True})
    control(s, do="seek", t=120.0)
    waiting = [set(p.world.sim.waiting) for p in s.panes]
    only_first = sorted(waiting[0] - waiting[1])
    assert only_first, "the worlds' waiting messages should differ"
    before = [len(p.world.sim.actions) for p in s.panes]
    s.outbox.clear()
    act(s, {"do": "deliver", "id": only_first[0]})
    (msg,) = errors(s)
    assert msg.startswith("action.id:") and "timeout-300-600" in msg
    assert [len(p.world.sim.actions) for p in s.panes] == before and not of(s, "events")


def test_live_ticks_keep_the_worlds_in_lock_step_within_one_budget(tmp_path):
    # A tiny per-tick budget: the session falls behind, and every world still stops at one moment.
    st = _settings(tmp_path, max_events_per_tick=40)
    s = _session(st, variants=[("timeout-50-100", {"election_timeout_ms_min": 50,
                                                   "election_timeout_ms_max": 100}),
                               ("timeout-300-600", {"election_timeout_ms_min": 300,
                                                    "election_timeout_ms_max": 600})])
    s.speed = 10.0
    behind = 0
    for _ in range(40):
        s.sim_ref, s.wall_ref = s.sim.now_ms, time.monotonic() - 1.0  # 10 s of play are due
        before = s.events_total()
        s.tick(0.0)
        assert in_lock_step(s)
        behind += s.behind
        # The costlier world paces the tick with half the budget; the other follows it.
        assert s.events_total() - before <= 4 * 40
    assert behind > 30 and s.sim.now_ms > 0
    for f in of(s, "events"):
        assert len(f["worlds"]) == 1


def test_a_share_link_reproduces_every_world(tmp_path, make_client):
    st = _settings(tmp_path)
    s = _session(st)
    control(s, do="compare", variants=PAIR)
    want = script(s)
    control(s, do="share")
    payload = of(s, "share")[-1]["payload"]
    # The session's own `load`, and a fresh page opening the link.
    other = _session(st, seed=99)
    control(other, do="load", share=payload)
    assert [p.variant for p in other.panes] == PAIR
    assert digests(of(other, "snapshot")[-1]) == want
    c = make_client()
    with c.websocket_connect(f"/ws?share={payload}") as ws:
        hello = drain(ws, "hello")
        assert [v[0] for v in hello["compare"]["variants"]] == PAIR
        snap = drain(ws, "snapshot")
        assert digests(snap) == want and snap["t"] == 1500.0
    # A reader that knows nothing of compare mode opens the first scenario alone.
    sc, t, _ = share.decode(payload)
    assert t == 1500.0 and sc.config.pre_vote is False


def test_the_url_opens_compare_mode_and_refuses_bad_names(make_client):
    c = make_client()
    with c.websocket_connect("/ws?compare=pre_vote-on,timeout-50-100") as ws:
        hello = drain(ws, "hello")
        assert [v[0] for v in hello["compare"]["variants"]] == ["pre_vote-on", "timeout-50-100"]
        assert "pre_vote-on" in hello["compare_variants"]
        snap = drain(ws, "snapshot")
        assert len(snap["worlds"]) == 1
    with c.websocket_connect("/ws?compare=pre_vote-on,bogus") as ws:
        frames = [ws.receive_json() for _ in range(3)]
        msgs = [f["message"] for f in frames if f["type"] == "error"]
        assert msgs and msgs[0].startswith("compare[1]: unknown variant 'bogus' for raft")
        hello = next(f for f in frames if f["type"] == "hello")
        assert "compare" not in hello and "worlds" not in hello


def test_bad_compare_controls_name_the_field_and_disturb_nothing(tmp_path):
    s = _session(_settings(tmp_path))
    control(s, do="pause")
    control(s, do="seek", t=250.0)
    digest = s.sim.digest()
    cases = [
        ({"variants": ["pre_vote-on"]}, "control.variants: compare 2 to 4 variants (asked for 1"),
        ({"variants": ["pre_vote-on", "pre_vote-off", "timeout-50-100", "timeout-300-600",
                       "timeout-150-160"]}, "control.variants: compare 2 to 4 variants (asked for 5"),
        ({"variants": ["pre_vote-on", "nope"]}, "control.variants[1]: unknown variant 'nope' for raft"),
        ({"variants": ["pre_vote-on", "pre_vote-on"]}, "control.variants[1]: variant 'pre_vote-on' is listed twice"),
        ({"variants": ["pre_vote-on", 7]}, "control.variants.1: "),
        ({}, "control.variants: "),
    ]
    for fields, want in cases:
        s.outbox.clear()
        control(s, do="compare", **fields)
        (msg,) = errors(s)
        assert msg.startswith(want), (fields, msg)
        assert not of(s, "hello") and len(s.panes) == 1 and s.sim.digest() == digest
    # A damaged compare link names its field.
    sc = s.scenario
    bad = share.encode(sc, 0.0, variants=[("only-one", {})])
    s.outbox.clear()
    control(s, do="load", share=bad)
    assert errors(s)[0].startswith("share.c: compare 2 to 4 variants") and len(s.panes) == 1
    # An override the scenario refuses names the variant and the field.
    s.outbox.clear()
    control(s, do="load", share=share.encode(sc, 0.0, variants=[("a", {}), ("b", {"heartbeat_ms": -1})]))
    (msg,) = errors(s)
    assert msg.startswith("compare.b: config.heartbeat_ms") and s.sim.digest() == digest


def test_paxos_basic_beside_multi(tmp_path):
    s = _session(_settings(tmp_path), protocol="paxos")
    control(s, do="pause")
    s.outbox.clear()
    control(s, do="compare", variants=["basic", "multi"])
    (msg,) = errors(s)
    assert msg.startswith("compare.basic: workload: basic Paxos takes no workload")
    assert len(s.panes) == 1
    control(s, do="configure", workload=False)
    control(s, do="compare", variants=["basic", "multi"])
    assert [p.world.scenario.config.mode for p in s.panes] == ["basic", "multi"]
    control(s, do="seek", t=300.0)
    act(s, {"do": "crash", "node": "n3"})
    snap = of(s, "snapshot")[-1]
    assert snap["nodes"]["n3"]["status"] == snap["worlds"][0]["nodes"]["n3"]["status"] == "down"
    # Reset and a new seed keep the worlds; leaving compare mode is one world of the origin again.
    control(s, do="new_seed", seed=5)
    assert [p.variant for p in s.panes] == ["basic", "multi"] and s.sim.now_ms == 0
    control(s, do="compare", variants=[])
    assert len(s.panes) == 1 and s.scenario.config.mode == "multi"
    assert "worlds" not in of(s, "snapshot")[-1]


def test_caps_apply_to_the_worlds_sum(tmp_path):
    # Replay work: a seek one world can take, two cannot.
    st = _settings(tmp_path)
    probe = _session(st)
    control(probe, do="pause")
    control(probe, do="seek", t=8000.0)
    one = probe.sim.events
    st = _settings(tmp_path, max_replay_events=int(one * 1.4))
    alone = _session(st)
    control(alone, do="pause")
    control(alone, do="seek", t=8000.0)
    assert not errors(alone) and alone.sim.now_ms == 8000.0
    two = _session(st, variants=[(n, OVERRIDES[n]) for n in PAIR])
    control(two, do="pause")
    control(two, do="seek", t=8000.0, slice_s=0.001)
    (msg,) = errors(two)
    assert msg.startswith("t: replaying this seek to 8.000 s would take about") and \
        "PLAYGROUND_MAX_REPLAY_EVENTS" in msg
    assert in_lock_step(two) and two.sim.now_ms < 8000.0
    # Client operations: a link one world may replay, two may not; live play stops as early.
    st = _settings(tmp_path, max_replay_ops=20)  # the live workload: 1 operation a second
    s = _session(st, variants=[(n, OVERRIDES[n]) for n in PAIR])
    control(s, do="seek", t=9000.0)
    assert not errors(s)
    control(s, do="seek", t=15000.0)
    (msg,) = errors(s)
    assert msg.startswith("control.t: with workload.rate_per_s = 1 at most 10000 ms") and \
        "over 2 worlds" in msg
    assert s._shareable_end()[0] == 10000.0 and _session(st)._shareable_end()[0] == 20000.0


def test_a_single_world_session_frames_carry_no_compare_fields(tmp_path):
    s = _session(_settings(tmp_path))
    s.load(s.scenario, None)
    act(s, {"do": "crash", "node": "n1"})
    s.queue_snapshot()
    for f in s.outbox:
        assert "worlds" not in f and "compare" not in f, f["type"]
    assert of(s, "hello")[0]["compare_variants"]["timeout-50-100"] == {
        "election_timeout_ms_min": 50, "election_timeout_ms_max": 100}
