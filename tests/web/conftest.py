from __future__ import annotations

import contextlib
import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

LESSON = {"title": "A demo lesson", "notes": "Three servers.", "suggest": "Try crashing n1.",
          "nodes": 3, "seed": 4, "duration_ms": 10000,
          "actions": [{"at": 500, "do": "crash", "node": "n1"}]}


def _settings(tmp_path, **kw):
    kw.setdefault("scenarios_dir", tmp_path / "none")
    kw.setdefault("reap_interval_s", 3600)
    return Settings.from_env({}, **kw)


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(**kw):
        c = TestClient(create_app(_settings(tmp_path, **kw)))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def client_with_lessons(make_client, tmp_path):
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "demo.json").write_text(json.dumps(LESSON))
    (d / "broken.json").write_text(json.dumps({"nodes": 3, "bogus": 1}))
    return make_client(scenarios_dir=d)


def drain(ws, kind: str, limit: int = 2000) -> dict:
    """Receive frames until one of `kind` arrives (frames in between are skipped)."""
    for _ in range(limit):
        f = ws.receive_json()
        if f["type"] == kind:
            return f
    raise AssertionError(f"no {kind} frame in {limit} frames")


def settle(ws) -> dict:
    """Consume every frame already queued (a deliberate bad frame marks the end), then return a
    fresh snapshot."""
    ws.send_text('{"type": "sync-marker"}')
    while True:
        f = ws.receive_json()
        if f["type"] == "error" and "sync-marker" in f["message"]:
            break
    ws.send_json({"type": "control", "do": "snapshot"})
    return drain(ws, "snapshot")


@contextlib.contextmanager
def reattach(client, hello: dict):
    """A second connection to the session `hello` opened, proving its secret in the first frame."""
    with client.websocket_connect("/ws?attach=1") as ws:
        ws.send_json({"type": "attach", "session": hello["session"], "secret": hello["secret"]})
        yield ws


def last_of(frames, kind):
    return [f for f in frames if f["type"] == kind][-1]


@contextlib.contextmanager
def open_paused(client, seed: int = 1, run_ms: float = 0):
    """A session on a fixed seed, paused at `run_ms`; yields (ws, snapshot)."""
    with client.websocket_connect("/ws") as ws:
        hello = drain(ws, "hello")
        ws.send_json({"type": "control", "do": "pause"})
        ws.send_json({"type": "control", "do": "new_seed", "seed": seed})
        drain(ws, "hello")
        ws.send_json({"type": "control", "do": "pause"})
        ws.send_json({"type": "control", "do": "seek", "t": run_ms})
        snap = settle(ws)
        assert snap["t"] == run_ms and not snap["playing"]
        snap["session"] = hello["session"]
        snap["secret"] = hello["secret"]
        yield ws, snap
