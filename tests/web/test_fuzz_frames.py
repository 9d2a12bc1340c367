"""Fuzzing the inbound frames (issue 7): over 10,000 generated bad frames across every documented
frame type (wrong types, bad ids, huge numbers, deep nesting, long strings, over-size bytes, not
JSON at all). Each gets one short `error` frame; the session keeps running; and another session,
driven alongside, ends in exactly the state a session left alone reaches (nothing leaks across).

Timing ("frames stay on time") is the business of `playground bench --web`'s abuse phase, not of
a test: a test may not depend on the machine's speed.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.session import Session, default_scenario
from app.wire import CONTROLS

from .conftest import _settings

NUMBERS = ["speed", "step", "seek"]
_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


# Each strategy makes a frame that must be refused.
bad_controls = st.one_of(
    st.builds(lambda do, v: {"type": "control", "do": do, "value": v},
              st.just("speed"), st.one_of(st.booleans(), st.text(max_size=5), st.just(-1),
                                           st.just(0), st.just(1e300), st.lists(st.integers()))),
    st.builds(lambda v: {"type": "control", "do": "step", "count": v},
              st.one_of(st.booleans(), st.just(0), st.just(10**9), st.floats(0.5, 2.5),
                        st.text(max_size=3))),
    st.builds(lambda v: {"type": "control", "do": "seek", "t": v},
              st.one_of(st.booleans(), st.just(-5), st.just(1e30), st.text(max_size=3), st.none())),
    st.builds(lambda do: {"type": "control", "do": do},
              st.text(max_size=50).filter(lambda d: d not in CONTROLS)),
    st.builds(lambda do, k, v: {"type": "control", "do": do, k: v},
              st.sampled_from([c for c in CONTROLS if c not in ("new_seed",)]),
              st.text(min_size=1, max_size=20).filter(lambda k: k not in ("do", "type", "count", "t", "value", "seed", "name", "nodes", "mutations", "options", "workload", "share")),
              _junk),
    st.builds(lambda n: {"type": "control", "do": "lesson", "name": n},
              st.one_of(st.text(min_size=1, max_size=100).map(lambda x: "zz" + x), st.integers(), st.none())),
    st.builds(lambda sh: {"type": "control", "do": "load", "share": sh},
              st.one_of(st.text(min_size=1, max_size=200).map(lambda x: "9." + x),
                        st.just("1." + "A" * 5000), st.integers())),
    st.builds(lambda n: {"type": "control", "do": "configure", "nodes": n},
              st.one_of(st.just(0), st.just(99), st.booleans(), st.text(max_size=3), st.floats(1.5, 3.5))),
    st.builds(lambda s: {"type": "control", "do": "new_seed", "seed": s},
              st.one_of(st.just(-1), st.just(2**64), st.booleans(), st.text(max_size=3))),
)
bad_actions = st.one_of(
    st.builds(lambda do, node: {"type": "action", "action": {"do": do, "node": node}},
              st.sampled_from(["crash", "restart", "pause", "resume", "timeout"]),
              st.one_of(st.text(max_size=40).filter(lambda n: n not in ("n1", "n2", "n3", "n4", "n5")),
                        st.integers(), st.none(), st.lists(st.text()))),
    st.builds(lambda a: {"type": "action", "action": a}, st.one_of(_junk, st.just({}))
              .filter(lambda a: not (isinstance(a, dict) and a.get("do") in ("heal",)))),
    st.builds(lambda g: {"type": "action", "action": {"do": "partition", "groups": g}}, _junk),
    st.builds(lambda k: {"type": "action", "action": {"do": "request", "node": "n1", "op": "write",
                                                      "key": k, "value": 1}},
              st.text(min_size=33, max_size=200)),
    st.builds(lambda v: {"type": "action", "action": {"do": "request", "node": "n1", "op": "write",
                                                      "key": "k1", "value": v}},
              st.one_of(st.just(2**60), st.floats(), st.text(max_size=5), st.booleans())),
    st.builds(lambda at: {"type": "action", "action": {"do": "crash", "node": "n1", "extra": at}}, _junk),
)
bad_envelopes = st.one_of(
    st.builds(lambda t: {"type": t}, st.one_of(st.text(max_size=60).filter(lambda t: t not in ("action", "control", "attach")),
                                               st.integers(), st.none(), st.lists(st.integers()))),
    st.builds(lambda d: {"type": "action", "action": d}, st.one_of(st.integers(), st.text(), st.none())),
    st.builds(lambda v: v, st.one_of(st.lists(_junk, max_size=3), st.integers(), st.text(max_size=20))),
)


def _dumps(v) -> bytes:
    return json.dumps(v).encode()  # stdlib json: integers of any size, as a hostile client sends


FRAMES = st.one_of(bad_controls, bad_actions, bad_envelopes)
DEEP = st.integers(100, 3000).map(
    lambda n: b'{"type": "control", "do": "pause", "deep": ' + b"[" * n + b"1" + b"]" * n + b"}")
HUGE = st.integers(20, 400).map(
    lambda n: b'{"type": "control", "do": "speed", "value": 1' + b"0" * n + b"}")
RAW = st.one_of(
    FRAMES.map(_dumps), FRAMES.map(_dumps), FRAMES.map(_dumps),
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"{", b"[")),  # not a JSON object
    st.just(b'{"type": "control", "do": "pause", "pad": "' + b"x" * 70_000 + b'"}'),  # too large
    st.just(('{"type": "control", "do": "pause", "x": "' + "\u20ac" * 22_000 + '"}').encode()),
    DEEP, HUGE)
EXAMPLES = 10_000


def _session(tmp_path):
    st_ = _settings(tmp_path)
    return Session("f", st_, {}, default_scenario(st_, seed=11))


def test_ten_thousand_bad_frames_each_get_one_short_error(tmp_path):
    s = _session(tmp_path)
    s.playing = False
    other, alone = _session(tmp_path), _session(tmp_path)
    seen = []

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    @given(raw=RAW)
    def one(raw):
        s.outbox.clear()
        s.handle(raw)
        frames = list(s.outbox)
        errors = [f for f in frames if f["type"] == "error"]
        assert len(errors) == 1, (raw[:200], frames)
        assert len(errors[0]["message"]) <= 500 and not errors[0].get("fatal")
        assert not errors[0]["message"].startswith("internal error"), errors[0]["message"]
        other.advance(other.sim.now_ms + 2)  # the other session goes on, frame by frame
        seen.append(raw[:1])

    one()
    assert len(seen) >= EXAMPLES
    alone.advance(other.sim.now_ms)
    assert other.sim.digest() == alone.sim.digest()  # nothing leaked from one session to another
    # the fuzzed session still runs: it advances and answers a good frame
    s.advance(500)
    s.outbox.clear()
    s.handle('{"type": "control", "do": "pause"}')
    kinds = [f["type"] for f in s.outbox]
    assert kinds[-1] == "snapshot" and "error" not in kinds and s.sim.now_ms == 500
