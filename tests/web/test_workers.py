"""Across worker processes sharing one Redis: rooms followed from another worker, a killed
worker's session rebuilt elsewhere at the same digest, and a worker telling of a lost broker.

Each worker is a real `uvicorn app.main:app` process (as `playground serve --workers N` or N
machines would run it) and Redis a real redis-server on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.serving import free_port, redis_command, start_redis, start_server, stop_server

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (make test installs it)")


def _env(redis_url: str) -> dict:
    env = dict(os.environ)
    env.update(PLAYGROUND_BROKER=redis_url, PLAYGROUND_ROOM_COUNT_EVERY_S="0.5",
               PLAYGROUND_REAP_INTERVAL_S="3600")
    return env


@contextlib.contextmanager
def two_workers(**extra_env):
    """One Redis and two workers A and B (their settings `extra_env` besides `_env`); yields
    (redis_url, port_a, port_b) and stops them all."""
    rport = free_port()
    redis = start_redis(rport)
    url = f"redis://127.0.0.1:{rport}/0"
    ports, procs = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(start_server(port, {**_env(url), **extra_env}))
            ports.append(port)
        yield url, ports[0], ports[1]
    finally:
        for p in procs:
            stop_server(p)
        stop_server(redis)


@pytest.fixture(scope="module")
def cluster():
    """One Redis and two workers A and B; yields (redis_url, port_a, port_b)."""
    with two_workers() as c:
        yield c


def recv_until(ws, pred, timeout=15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no such frame in time")
        f = json.loads(ws.recv(timeout=left))
        if pred(f):
            return f


def kind(k, **fields):
    return lambda f: f["type"] == k and all(f.get(a) == b for a, b in fields.items())


class Page:
    """A socket read as the page reads it for its recipe's durability (static/js/app.js): the
    clicks of `events` frames kept until a frame's `dur` covers their `seq` (`pending`, sent
    back on a reattach); a `hello` clears them."""

    def __init__(self, ws):
        self.ws = ws
        self.undurable: list[tuple[int, list]] = []
        self.durs: list[int] = []
        self.seen = 0  # the seq of the last frame read

    def recv(self, timeout=None) -> str:
        text = self.ws.recv(timeout=timeout)
        f = json.loads(text)
        self.seen = f["seq"]
        if f["type"] == "hello":
            self.undurable = []
        elif f["type"] == "events" and f.get("acts"):
            self.undurable.append((f["seq"], f["acts"]))
        if "dur" in f:
            self.durs.append(f["dur"])
            self.undurable = [(q, a) for q, a in self.undurable if q > f["dur"]]
        return text

    @property
    def pending(self) -> list:
        return [a for _, acts in self.undurable for a in acts]

    def send(self, text) -> None:
        self.ws.send(text)

    def close(self) -> None:
        self.ws.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.ws.close()


def paused_session(port: int, seed: int, t: float):
    ws = Page(connect(f"ws://127.0.0.1:{port}/ws", max_size=None))
    hello = recv_until(ws, kind("hello"))
    ws.send(json.dumps({"type": "control", "do": "pause"}))
    ws.send(json.dumps({"type": "control", "do": "new_seed", "seed": seed}))
    recv_until(ws, kind("hello"))
    ws.send(json.dumps({"type": "control", "do": "pause"}))
    ws.send(json.dumps({"type": "control", "do": "seek", "t": t}))
    snap = recv_until(ws, lambda f: f["type"] == "snapshot" and f["t"] == t and not f["playing"])
    return ws, hello, snap


def click(ws, action: dict, n_actions: int) -> dict:
    ws.send(json.dumps({"type": "action", "action": action}))
    return recv_until(ws, lambda f: f["type"] == "snapshot" and f["actions"] == n_actions)


def test_a_room_opened_on_one_worker_is_followed_from_another(cluster):
    _, a, b = cluster
    p, _, snap = paused_session(a, seed=7, t=300)
    with p:
        p.send(json.dumps({"type": "control", "do": "room_open"}))
        code = recv_until(p, kind("room"))["code"]
        with connect(f"ws://127.0.0.1:{b}/ws?room={code}", max_size=None) as v:
            hello = recv_until(v, kind("hello"))
            assert "secret" not in hello and hello["room"]["code"] == code
            assert recv_until(v, kind("snapshot"))["digest"] == snap["digest"]
            assert recv_until(p, lambda f: f["type"] == "room" and f["viewers"] == 1)
            mine = click(p, {"do": "crash", "node": "n2"}, 1)
            theirs = recv_until(v, lambda f: f["type"] == "snapshot" and f["actions"] == 1)
            assert (theirs["t"], theirs["digest"]) == (mine["t"], mine["digest"])
            # The viewer's click, on the other worker, is refused and changes nothing.
            v.send(json.dumps({"type": "action", "action": {"do": "crash", "node": "n3"}}))
            assert recv_until(v, kind("error"))["readonly"] is True
            p.send(json.dumps({"type": "control", "do": "snapshot"}))
            again = recv_until(p, kind("snapshot"))
            assert again["digest"] == mine["digest"] and again["actions"] == 1


@contextlib.contextmanager
def doomed_worker(redis_url: str):
    """A worker of its own for a test to kill: yields (its port, kill)."""
    port = free_port()
    proc = start_server(port, _env(redis_url))

    def kill():
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    try:
        yield port, kill
    finally:
        if proc.poll() is None:
            stop_server(proc)


def reattach(port: int, hello: dict, t: float, pending: list | None = None, seen: int | None = None):
    """As the page reattaches: its session, secret, moment, the clicks still pending and the
    last frame it read."""
    ws = connect(f"ws://127.0.0.1:{port}/ws?attach=1", max_size=None)
    a = {"type": "attach", "session": hello["session"], "secret": hello["secret"], "t": t}
    if pending:
        a["pending"] = pending
    if seen is not None:
        a["seen"] = seen
    ws.send(json.dumps(a))
    return ws


def test_a_killed_workers_session_is_rebuilt_by_another_at_the_same_digest(cluster):
    url, a, _ = cluster
    with doomed_worker(url) as (port, kill):
        ws, hello, _ = paused_session(port, seed=11, t=400)
        click(ws, {"do": "crash", "node": "n1"}, 1)
        ws.send(json.dumps({"type": "control", "do": "seek", "t": 900}))
        recv_until(ws, lambda f: f["type"] == "snapshot" and f["t"] == 900)
        last = click(ws, {"do": "partition", "groups": [["n2", "n3"]]}, 2)
        kill()
        ws.close()
    with reattach(a, hello, last["t"], ws.pending, ws.seen) as again:
        h = recv_until(again, kind("hello"))
        assert h["session"] == hello["session"] and len(h["actions"]) == 2
        back = recv_until(again, kind("snapshot"))
        assert (back["t"], back["digest"], back["actions"]) == (last["t"], last["digest"], 2)
    # A playing session comes back at the moment its page showed, then plays on.
    with doomed_worker(url) as (port, kill):
        ws, hello, _ = paused_session(port, seed=12, t=200)
        click(ws, {"do": "crash", "node": "n3"}, 1)
        ws.send(json.dumps({"type": "control", "do": "speed", "value": 1}))
        ws.send(json.dumps({"type": "control", "do": "play"}))
        seen = recv_until(ws, lambda f: f["type"] == "events" and f["t"] > 600)
        kill()
        ws.close()
    with reattach(a, hello, seen["t"], ws.pending, ws.seen) as again:
        back = recv_until(again, kind("snapshot"))
        assert back["t"] == seen["t"] and back["actions"] == 1 and back["playing"] is False
        assert recv_until(again, kind("snapshot"))["playing"] is True
        assert recv_until(again, lambda f: f["type"] == "events" and f["t"] > seen["t"])
    # A wrong secret gets nothing from the recipe.
    with connect(f"ws://127.0.0.1:{a}/ws?attach=1") as thief:
        thief.send(json.dumps({"type": "attach", "session": hello["session"], "secret": "x" * 24}))
        assert "attach.secret" in recv_until(thief, kind("error"))["message"]


def _healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def test_healthz_and_the_pages_say_when_redis_is_gone():
    rport = free_port()
    redis = start_redis(rport)
    port = free_port()
    worker = start_server(port, _env(f"redis://127.0.0.1:{rport}/0"))
    try:
        assert _healthz(port)["broker"] == {"kind": "redis", "ok": True, "error": None}
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            recv_until(ws, kind("snapshot"))
            stop_server(redis)
            h = _healthz(port)
            assert h["ok"] is True and h["broker"]["ok"] is False and h["broker"]["error"]
            told = recv_until(ws, lambda f: f["type"] == "error" and f["message"].startswith("broker:"))
            assert "lost its broker" in told["message"] and not told.get("fatal")
            ws.send(json.dumps({"type": "control", "do": "room_open"}))
            assert "broker is not reachable" in recv_until(
                ws, lambda f: f["type"] == "error" and "room" in f["message"])["message"]
    finally:
        stop_server(worker)
        if redis.poll() is None:
            stop_server(redis)


def test_rooms_per_address_are_counted_across_workers():
    """The per-address cap counts the rooms an address has open on every worker sharing the
    broker: with a cap of 2, one room on A and one on B, a third on either is refused with the
    cap named; closing one makes room again."""
    with two_workers(PLAYGROUND_MAX_ROOMS_PER_CLIENT="2") as (_, a, b):
        pages = []
        try:
            for port in (a, b):
                ws, _, _ = paused_session(port, seed=3, t=100)
                pages.append(ws)
                ws.send(json.dumps({"type": "control", "do": "room_open"}))
                recv_until(ws, kind("room"))
            for port in (a, b):
                ws, _, _ = paused_session(port, seed=4, t=100)
                pages.append(ws)
                ws.send(json.dumps({"type": "control", "do": "room_open"}))
                err = recv_until(ws, lambda f: f["type"] in ("error", "room"))
                assert err["type"] == "error", err
                assert "already has 2 rooms open" in err["message"], err
                assert "PLAYGROUND_MAX_ROOMS_PER_CLIENT = 2" in err["message"], err
            pages[1].send(json.dumps({"type": "control", "do": "room_close"}))  # B's room
            deadline = time.monotonic() + 15
            while True:
                pages[2].send(json.dumps({"type": "control", "do": "room_open"}))
                f = recv_until(pages[2], lambda f: f["type"] in ("error", "room"))
                if f["type"] == "room" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert f["type"] == "room", f
        finally:
            for ws in pages:
                ws.close()


def test_a_click_redis_has_not_written_yet_is_not_lost_with_its_worker():
    # The frame with a click goes out before its recipe is in Redis; the page keeps the click
    # until a frame's `dur` covers it, and a rebuild on another worker applies it. Redis is made
    # to hold every write (CLIENT PAUSE WRITE) from before the click until the worker is dead,
    # so the recipe surely lacks the click: the page's copy is what brings it back.
    with two_workers() as (url, a, b):
        with doomed_worker(url) as (port, kill):
            ws, hello, _ = paused_session(port, seed=5, t=300)
            first = click(ws, {"do": "crash", "node": "n2"}, 1)
            deadline = time.monotonic() + 60  # (a bound for a broken build, not a timing)
            while ws.undurable:  # the first click's recipe: durable, and the page told so
                assert time.monotonic() < deadline, "no frame ever said the first click's recipe is in Redis"
                time.sleep(0.05)  # (within the connection's input rate)
                ws.send(json.dumps({"type": "control", "do": "snapshot"}))
                recv_until(ws, kind("snapshot"))
            assert ws.durs and first["actions"] == 1
            assert redis_command(url, "CLIENT", "PAUSE", "60000", "WRITE") == b"+OK\r\n"
            try:
                ws.send(json.dumps({"type": "action", "action": {"do": "restart", "node": "n2"}}))
                ev = recv_until(ws, lambda f: f["type"] == "events" and f.get("acts"))
                last = recv_until(ws, lambda f: f["type"] == "snapshot" and f["actions"] == 2)
                assert [x["do"] for x in ws.pending] == ["restart"] and ev["acts"] == ws.pending
                kill()
                ws.close()
            finally:
                assert redis_command(url, "CLIENT", "UNPAUSE") == b"+OK\r\n"
        recipe = json.loads(redis_command(url, "GET", f"pg:recipe:{hello['session']}").split(b"\r\n", 1)[1])
        assert [x["do"] for x in recipe["actions"]] == ["crash"]  # Redis never had the second
        with reattach(a, hello, last["t"], ws.pending, ws.seen) as again:
            h = recv_until(again, kind("hello"))
            assert [x["do"] for x in h["actions"]] == ["crash", "restart"]
            back = recv_until(again, kind("snapshot"))
            assert (back["t"], back["digest"], back["actions"]) == (last["t"], last["digest"], 2)
        # A pending click without a time is refused, naming what was wrong; one that does not
        # fit the session is dropped (the page told which), the session back as Redis has it.
        with reattach(a, hello, last["t"], [{"at": "soon", "do": "crash", "node": "n1"}]) as bad:
            err = recv_until(bad, kind("error"))
            assert "pending" in err["message"] and "at" in err["message"]
        # (On worker B, which has not got the session: worker A has it, rebuilt, from above.)
        with reattach(b, hello, last["t"], [{"at": last["t"] + 1, "do": "crash", "node": "n9"}]) as odd:
            err = recv_until(odd, lambda f: f["type"] == "error")
            assert err["message"].startswith("attach.pending: 1 click(s)") and "n9" in err["message"]
            assert not err.get("fatal")
            back = recv_until(odd, kind("snapshot"))
            assert (back["t"], back["digest"], back["actions"]) == (last["t"], last["digest"], 2)


def _recipe(url: str, sid: str) -> dict | None:
    raw = redis_command(url, "GET", f"pg:recipe:{sid}")
    return None if raw.startswith(b"$-1") else json.loads(raw.split(b"\r\n", 1)[1])


def test_a_recipe_newer_than_the_page_wins_over_the_pages_moment_and_clicks():
    # The page stops reading (its frames wait in its socket's buffer), the worker goes on: a seek
    # and a click reach Redis, then the worker dies. The page's attach names the last frame it
    # read: the recipe holds later ones, so the session comes back as the server last had it,
    # not at the page's older moment with its clicks laid on the newer branch.
    with two_workers() as (url, a, _):
        with doomed_worker(url) as (port, kill):
            ws, hello, _ = paused_session(port, seed=6, t=300)
            first = click(ws, {"do": "crash", "node": "n2"}, 1)
            seen, pending = ws.seen, ws.pending
            ws.ws.send(json.dumps({"type": "control", "do": "seek", "t": 250}))
            ws.ws.send(json.dumps({"type": "action", "action": {"do": "crash", "node": "n3"}}))
            last = None
            while last is None:  # the server's frames, read past the page's tracking
                f = json.loads(ws.ws.recv(timeout=15))
                if f["type"] == "snapshot" and f["actions"] == 1 and f["t"] > 250:
                    last = f
            deadline = time.monotonic() + 60  # (a bound for a broken build, not a timing)
            while True:  # Redis has that moment
                r = _recipe(url, hello["session"])
                if r and r.get("t") == last["t"] and r.get("seq", 0) > seen:
                    break
                assert time.monotonic() < deadline, f"the recipe never reached {last['t']}: {r}"
                time.sleep(0.02)
            kill()
            ws.close()
        with reattach(a, hello, first["t"], pending, seen) as again:
            h = recv_until(again, kind("hello"))
            assert [x["node"] for x in h["actions"]] == ["n3"]  # the fork: crash n2 is gone
            back = recv_until(again, kind("snapshot"))
            assert (back["t"], back["digest"], back["actions"]) == (last["t"], last["digest"], 1)
