"""Every knob of the web app in one typed place, read from PLAYGROUND_* environment variables.

    PLAYGROUND_MAX_SESSIONS=200 PLAYGROUND_FRAME_INTERVAL_MS=50 playground serve

pydantic-settings is not a dependency, so `Settings.from_env` does the small amount of work itself:
each field may be overridden by `PLAYGROUND_<FIELD NAME IN UPPER CASE>`; pydantic converts and
validates the text, and a bad value fails at start-up with the variable's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Caps, each reported to the browser in a sentence when hit.
    max_sessions: int = Field(1000, ge=1)
    max_nodes: int = Field(9, ge=1, le=51)
    max_actions: int = Field(5000, ge=1)  # live clicks recorded per session
    max_frame_bytes: int = Field(65536, ge=256)  # inbound WebSocket frames, in bytes (UTF-8)
    # Outbound: frames waiting for one page, in bytes, after snapshots collapsed; beyond it (or
    # with one frame stuck for `send_stall_s`) the page is too far behind: closed with 4002.
    max_outbox_bytes: int = Field(4 << 20, ge=65536)
    send_stall_s: float = Field(15, gt=0)
    max_sessions_per_client: int = Field(64, ge=1)  # sessions one client address may hold
    # New sessions one address may open: a sustained rate and a burst (a class behind one NAT
    # opening the page together fits in the burst); beyond it, refused with 1013 and a sentence.
    new_sessions_per_client_per_s: float = Field(5, gt=0)
    new_sessions_per_client_burst: int = Field(40, ge=1)
    # Pages from these origins (comma-separated, e.g. "https://slides.example.org") may open the
    # WebSocket besides this server's own pages; "*" allows any.
    allowed_origins: str = ""
    # Who may embed the page in a frame (CSP frame-ancestors): "'none'" (and X-Frame-Options:
    # DENY), "'self'", or a list of origins for slides, e.g. "'self' https://slides.example.org".
    frame_ancestors: str = "'none'"
    api_docs: bool = False  # serve /docs and /openapi.json (off: the page needs neither)
    attach_timeout_s: float = Field(10, gt=0)  # a reattaching page's first frame must come by then
    # Inbound frames per connection: a token bucket (sustained rate, burst); controls that rebuild
    # the world (load, reset, configure, new_seed, lesson) cost `ws_heavy_cost` frames.
    ws_rate_per_s: float = Field(50, gt=0)
    ws_burst: int = Field(100, ge=1)
    ws_heavy_cost: int = Field(10, ge=1)
    max_concurrent_exports: int = Field(4, ge=1)  # GET /api/trace at once; beyond: 503
    max_concurrent_imports: int = Field(4, ge=1)  # POST /api/import at once; beyond: 503
    max_import_header_bytes: int = Field(1 << 20, ge=1024)  # an imported trace's first line
    max_share_chars: int = Field(16384, ge=256)
    max_replay_ms: float = Field(3_600_000, gt=0)  # how far a share link or a seek may replay
    # Client operations a replay may go through, for protocols whose state (and so every
    # checkpoint and digest, which hold the loop) grows with them (`ProtocolSpec.ops_grow_state`:
    # client histories); 5000 keep a checkpoint near 10 ms. A protocol whose state stays bounded
    # is bounded by `max_replay_events` alone.
    max_replay_ops: int = Field(5_000, ge=1)
    max_import_bytes: int = Field(20_000_000, ge=1024)
    max_share_decoded_bytes: int = Field(1 << 20, ge=1024)  # a share payload, unzipped
    # What a scenario may ask for in the browser (see app/limits.py; the engine allows more).
    max_workload_clients: int = Field(10, ge=0)
    max_workload_rate_per_s: float = Field(200, ge=0)
    max_workload_keys: int = Field(10, ge=1)
    min_nemesis_interval_ms: float = Field(100, ge=0)
    min_timer_ms: float = Field(5, ge=0)  # every protocol timer its adapter names (`timers`)
    max_window_ms: float = Field(60_000, gt=0)  # every sliding window its adapter names (`windows`)
    # Sessions.
    idle_timeout_s: float = Field(1800, gt=0)  # no input from an attached browser for this long
    detached_grace_s: float = Field(60, ge=0)  # a closed tab's session survives this long (reload)
    reap_interval_s: float = Field(5, gt=0)
    # Pacing.
    frame_interval_ms: float = Field(50, gt=0)  # 20 frames per second
    # While a session plays and nothing happens (no record, no click, no change to tell), only
    # every `quiet_frame_every`-th tick sends its (empty) frame, which keeps the page's clock true;
    # the page runs the clock on in between (docs/ws-protocol.md). 1: a frame every tick.
    quiet_frame_every: int = Field(5, ge=1)
    frame_catch_up: int = Field(3, ge=0)  # late ticks sent back to back before the runner skips ahead
    max_events_per_tick: int = Field(20_000, ge=1)  # events per session per frame, at most
    tick_budget_ms: float = Field(4, gt=0)  # CPU per session per frame while playing, at most
    replay_slice_ms: float = Field(5, gt=0)  # CPU per slice of a replay/seek before yielding
    max_concurrent_replays: int = Field(2, ge=1)  # sessions replaying at once; others queue
    # A replay's CPU turn: after this much, a replay that others are waiting behind goes to the
    # back of the queue (the one that has had least CPU goes first), so a heavy link never keeps
    # a light one waiting for more than about a turn per slot.
    replay_quantum_ms: float = Field(250, gt=0)
    # A replay (share link, seek, import, export) may process at most this many events (messages,
    # timers, actions): it is estimated from its first slice and enforced while it runs.
    max_replay_events: int = Field(3_000_000, ge=1000)
    default_speed: float = Field(0.01, gt=0)  # simulated ms per wall ms (RaftScope's 100x slowdown)
    min_speed: float = Field(0.001, gt=0)
    max_speed: float = Field(10.0, gt=0)
    checkpoint_every_ms: float = Field(2000, gt=0)  # simulated time between rewind checkpoints
    max_checkpoints: int = Field(48, ge=2)
    # A world's checkpoints in all, in bytes: past it they are thinned as past `max_checkpoints`
    # (a rewind then replays further, in slices). Without it a session's checkpoints grow with its
    # state to 48 pickles (6-7 MB for a Raft lesson after 96 s of simulated time).
    max_checkpoint_bytes: int = Field(1 << 20, ge=65536)
    checkpoint_max_ms: float = Field(10, gt=0)  # a checkpoint slower than this spaces them out
    lin_check_every_s: float = Field(2.0, gt=0)  # wall time between linearizability searches
    lin_check_budget: int = Field(200_000, ge=1000)
    log_window: int = Field(200, ge=10)  # log entries per node sent to the browser
    words_per_frame: int = Field(60, ge=1)
    brief_per_frame: int = Field(200, ge=0)  # messages sent and gone between frames, told (`brief`)
    # The live cluster a fresh page gets (a gentle workload keeps log replication visible).
    default_nodes: int = Field(5, ge=1, le=51)
    workload_clients: int = Field(1, ge=0)
    workload_rate_per_s: float = Field(1.0, ge=0)
    live_duration_ms: float = Field(86_400_000, gt=0)
    # Rooms (app/rooms.py) and the broker (app/broker/): "" is the in-process broker (one
    # worker); redis://host:port/0 shares rooms and session recipes between workers and machines.
    broker: str = ""
    max_room_viewers: int = Field(500, ge=1)  # people following one room (every worker together)
    max_rooms_per_client: int = Field(4, ge=1)  # rooms one client address may have open
    # A viewer with more than this many bytes of room frames waiting is dropped to the latest
    # snapshot (its waiting frames are thrown away and it gets the next full picture).
    room_viewer_outbox_bytes: int = Field(1 << 20, ge=65536)
    room_count_every_s: float = Field(2.0, gt=0)  # how often each worker tells its viewer count
    scenarios_dir: Path = ROOT / "scenarios"
    # The Experiments tab (app/lab.py, /ws/lab): worker processes server-wide (a trials batch or
    # a search holds one while it runs; others wait their turn), trials per parameter value, each
    # run's simulated length, and a counterexample search's budgets (runs, states, wall clock).
    lab_workers: int = Field(2, ge=1, le=64)
    max_trials: int = Field(200, ge=1)
    max_trial_ms: float = Field(60_000, gt=0)
    search_max_runs: int = Field(300, ge=1)
    search_max_states: int = Field(100_000, ge=1)
    search_budget_s: float = Field(30, gt=0)
    search_grace_s: float = Field(15, ge=0)  # past the budget: the process start, the last run
    # The collector's long pauses (app/sessions.py `keep_gc`): every `gc_freeze_every_s` the
    # objects that survived a collection are moved out of its sight (a full collection then scans
    # only what is newer; sooner once `gc_freeze_new_sessions` sessions are new), and every
    # `gc_full_every_s` everything is collected once (what was frozen and became garbage since
    # is freed then), or sooner, once the connections ended and
    # sessions closed since the last full pass (each leaves frozen cyclic garbage: a simulation,
    # a server's protocol objects) reach `gc_full_churn_fraction` of those open, and at least
    # `gc_full_churn_min` (CPython's own rule for its oldest generation, a quarter, applied to
    # what the sessions hold). 0 turns it off.
    gc_freeze_every_s: float = Field(30, ge=0)
    gc_freeze_new_sessions: int = Field(25, ge=1)
    gc_full_every_s: float = Field(600, gt=0)
    gc_full_churn_fraction: float = Field(0.25, gt=0)
    gc_full_churn_min: int = Field(32, ge=1)
    # Benchmarks only: record server-side frame lateness, readable at GET /api/stats.
    bench_stats: bool = False

    def origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",")
                         if o.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        data = {}
        for name in cls.model_fields:
            key = f"PLAYGROUND_{name.upper()}"
            if key in env:
                data[name] = env[key]
        data.update(overrides)
        try:
            return cls(**data)
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "?"
            raise ValueError(f"PLAYGROUND_{field.upper()}: {err['msg']}") from None
