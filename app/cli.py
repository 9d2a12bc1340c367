"""The `playground` command: simulate, check, serve, bench.

    playground simulate SCENARIO.json [--seed N] [--trace FILE] [--transcript FILE|-]
                                                                  run headless, print a JSON summary
    playground check TRACE.ndjson                                 re-run every checker on a trace
    playground export TRACE.ndjson --format shiviz|jepsen|porcupine [-o FILE]
                                                                  the trace in another tool's format
    playground serve [--host H] [--port P] [--workers N]          the browser playground
    playground sweep SCENARIO.json --seeds 0..999 [--nodes 3,5] [--set NAME=V1,V2] [--measure M]
                     [--workers N | --scheduler tcp://HOST:8786] [--out results.jsonl]
                                                                  a grid of runs, a table and a summary
    playground search SCENARIO.json --mutation NAME [--strategy random|explore] [--budget-s N]
                                                                  find a counterexample (JSON)
    playground bench [--quick] [--lb] [--long] [--sweep] [--search] [--web ...] [--rooms ...]   speed figures
    playground bench --scale [--sessions 1000] ...   private sessions on 2 workers + Redis, a worker killed
    playground bench --soak [--minutes 30] ...       500 sessions and a 300-viewer room, memory each minute
    playground bench --figure16 [--trials N] [--workers N] [--out DIR]   docs/figure16.md
    playground bench --figure16 --variants [--trials N]   what the published points depend on

`simulate`, `check` and `sweep` exit 3 when a safety check fails, 2 on bad input; `search` exits 0
when it found a counterexample, 1 when it did not within its budget, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson

EXIT_BAD_INPUT = 2
WS_MAX_BYTES = 1 << 20
EXIT_UNSAFE = 3
FIGURE16_OUT = "docs/figure16"


def _print(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _fail(msg: str) -> int:
    sys.stderr.write(f"playground: {msg}\n")
    return EXIT_BAD_INPUT


def cmd_simulate(args) -> int:
    from engine.run import run_scenario
    from engine.scenario import ScenarioError, parse_scenario

    try:
        with open(args.scenario, "rb") as f:
            raw = f.read()
    except OSError as e:
        return _fail(f"cannot read scenario {args.scenario!r}: {e.strerror}")
    try:
        scn = parse_scenario(raw)
        changes = {}
        if args.seed is not None:
            changes["seed"] = args.seed
        if args.nodes is not None:
            changes["nodes"] = args.nodes
        if args.duration_ms is not None:
            changes["duration_ms"] = args.duration_ms
        if changes:
            scn = scn.with_(**changes)
    except ScenarioError as e:
        return _fail(f"{args.scenario}: {e}")
    observers = []
    text_out = None
    if args.transcript:
        from engine.transcript import line

        text_out = sys.stdout if args.transcript == "-" else open(args.transcript, "w")

        def write_line(rec):
            s = line(rec, scn.protocol)
            if s is not None:
                text_out.write(s + "\n")

        observers.append(write_line)
    trace_file = None
    if args.trace:
        try:
            trace_file = open(args.trace, "wb")
        except OSError as e:
            return _fail(f"cannot write trace {args.trace!r}: {e.strerror}")
    try:
        summary = run_scenario(scn, trace=trace_file, observers=observers)
    finally:
        if trace_file:
            trace_file.close()
        if text_out is not None and text_out is not sys.stdout:
            text_out.close()
    _print(summary)
    return EXIT_UNSAFE if summary["violations"] or summary["linearizable"] is False else 0


def cmd_check(args) -> int:
    from engine.trace import TraceError, check_records, read_trace

    try:
        f = open(args.trace, "rb")
    except OSError as e:
        return _fail(f"cannot read trace {args.trace!r}: {e.strerror}")
    t0 = time.perf_counter()
    try:
        with f:
            head, records = read_trace(f)
            summary = check_records(head, records)
    except TraceError as e:
        return _fail(f"{args.trace}: {e}")
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    summary["seed"] = head["seed"]
    _print(summary)
    return EXIT_UNSAFE if summary["violations"] or summary["linearizable"] is False else 0


def cmd_export(args) -> int:
    from engine.export import FORMATS, ExportError, export
    from engine.trace import TraceError, read_trace

    if args.format not in FORMATS:
        return _fail(f"--format: {args.format!r} is not one of {', '.join(sorted(FORMATS))}")
    try:
        f = open(args.trace, "rb")
    except OSError as e:
        return _fail(f"cannot read trace {args.trace!r}: {e.strerror}")
    out = sys.stdout.buffer if args.out in (None, "-") else None
    try:
        with f:
            head, records = read_trace(f)
            chunks = list(export(args.format, head, records)) if out is None else \
                export(args.format, head, records)
            if out is None:
                with open(args.out, "wb") as w:
                    w.writelines(chunks)
            else:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
    except (TraceError, ExportError) as e:
        return _fail(f"{args.trace}: {e}")
    except BrokenPipeError:
        raise
    except OSError as e:
        return _fail(f"cannot write {args.out!r}: {e.strerror}")
    return 0


def cmd_serve(args) -> int:
    import os

    import uvicorn

    if args.workers < 1:
        return _fail("--workers: at least 1")
    if args.workers > 1 and not os.environ.get("PLAYGROUND_BROKER"):
        # Each worker holds its own sessions: a page whose reconnect lands on another worker
        # finds its session gone, and a room is followed only on the worker that hosts it.
        sys.stderr.write("playground: --workers without PLAYGROUND_BROKER=redis://...: each worker "
                         "keeps its sessions and rooms to itself\n")
    # ws_max_size: refuse big inbound frames in the protocol layer too (the session's own
    # limit, PLAYGROUND_MAX_FRAME_BYTES, then names the problem for anything under it).
    uvicorn.run("app.main:app", host=args.host, port=args.port, ws_per_message_deflate=False,
                ws_max_size=WS_MAX_BYTES, log_level=args.log_level, workers=args.workers)
    return 0


def cmd_search(args) -> int:
    from app.searchcli import run_search

    return run_search(args, _print, _fail)


def cmd_bench(args, rest: list[str]) -> int:
    if args.search:
        from app.searchcli import run_search_bench

        _print(run_search_bench(quick=args.quick))
        return 0
    if args.rooms:
        from app import roombench

        return roombench.main(rest)
    if args.scale or args.soak:
        from app import scalebench, soakbench

        # `--out` is also --figure16's option, so the bench parser took it: hand it on.
        out = ["--out", args.out] if args.out != FIGURE16_OUT else []
        return (scalebench if args.scale else soakbench).main(rest + out)
    if args.web:
        from app import webbench

        return webbench.main(rest)
    if args.sweep:
        from app.sweepbench import run_sweep_bench

        _print(run_sweep_bench(quick=args.quick))
        return 0
    if args.figure16:
        return cmd_figure16(args)
    if args.long:
        from app.longbench import run_long_lb_bench

        _print(run_long_lb_bench(quick=args.quick))
        return 0
    if args.lb:
        from engine.bench import run_lb_bench
        from engine.native import describe

        print(describe(), file=sys.stderr)  # compiled (mypyc) or pure Python: which one is timed
        load = round(os.getloadavg()[0], 2)  # (the machine's load beside every timing)
        res = run_lb_bench(100_000 if args.quick else 1_000_000)
        _print({"load_average_1m_before": load, **res,
                "load_average_1m_after": round(os.getloadavg()[0], 2)})
        return 0
    from engine.bench import run_bench

    _print(run_bench(quick=args.quick))
    return 0


def cmd_figure16(args) -> int:
    """A paper's figure reproduced (engine.bench.run_figure16; docs/figure16.md): the table beside
    the published points, and the CDFs as JSON, CSV and SVG in `--out`."""
    import csv

    from engine.bench import run_figure16

    root = Path(__file__).resolve().parent.parent / "scenarios"
    t0 = time.perf_counter()
    if args.variants:
        from engine.bench import run_figure16_variants

        rows = run_figure16_variants(lambda name: orjson.loads((root / f"{name}.json").read_bytes()),
                            args.trials, workers=args.workers)
        _print({"trials": args.trials, "workers": args.workers,
                "wall_s": round(time.perf_counter() - t0, 1), "variants": rows})
        return 0
    res = run_figure16(lambda name: orjson.loads((root / f"{name}.json").read_bytes()),
                       args.trials, workers=args.workers)
    wall = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figure16.json").write_bytes(orjson.dumps(
        {"trials": args.trials, "workers": args.workers, "wall_s": wall,
         "broadcast_ms": res["broadcast_ms"], "table": res["table"], "values": res["values"]},
        option=orjson.OPT_INDENT_2))
    with open(out / "figure16.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(res["csv"])
    (out / "figure16.svg").write_text(res["svg"])
    _print({"trials": args.trials, "workers": args.workers, "wall_s": wall, "out": str(out),
            "broadcast_ms": res["broadcast_ms"], "table": res["table"]})
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="playground", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="run a scenario headless and print a JSON summary")
    s.add_argument("scenario", help="scenario JSON file (see scenarios/)")
    s.add_argument("--seed", type=int, help="override the scenario's seed")
    s.add_argument("--nodes", type=int, help="override the number of nodes")
    s.add_argument("--duration-ms", type=float, help="override the simulated duration")
    s.add_argument("--trace", help="write the NDJSON trace to this file")
    s.add_argument("--transcript", help="write a readable transcript, one line per record, to this "
                   "file ('-' for stdout, before the summary)")
    c = sub.add_parser("check", help="re-run every checker on an NDJSON trace")
    c.add_argument("trace")
    x = sub.add_parser("export", help="a trace as a ShiViz log or a Jepsen/Porcupine history")
    x.add_argument("trace")
    x.add_argument("--format", required=True, help="shiviz, jepsen (EDN) or porcupine (JSON)")
    x.add_argument("-o", "--out", help="write here instead of stdout")
    v = sub.add_parser("serve", help="start the browser playground")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--log-level", default="info")
    v.add_argument("--workers", type=int, default=1,
                   help="uvicorn worker processes (with PLAYGROUND_BROKER=redis://... they share "
                        "rooms and sessions' recipes)")
    from app.sweep import add_arguments as sweep_arguments

    sweep_arguments(sub.add_parser("sweep", help="run a scenario over a grid of seeds, node "
                                   "counts and values; a JSONL table, a CSV and a summary"))
    b = sub.add_parser("bench", help="speed figures (engine; --web for the server and page)")
    b.add_argument("--quick", action="store_true", help="shorter runs")
    b.add_argument("--web", action="store_true", help="server load and page benchmarks")
    b.add_argument("--rooms", action="store_true",
                   help="one room, many viewers, two workers and Redis (--viewers N)")
    b.add_argument("--scale", action="store_true",
                   help="private sessions on two workers and Redis, then one worker killed "
                        "(--sessions N; see app/scalebench.py)")
    b.add_argument("--soak", action="store_true",
                   help="sessions and a room for --minutes N, memory every minute "
                        "(app/soakbench.py)")
    b.add_argument("--lb", action="store_true",
                   help="load balancing: a million requests, least connections, and SimPy")
    b.add_argument("--long", action="store_true",
                   help="a long load-balancing session: checkpoint size and digest over 10 minutes")
    b.add_argument("--sweep", action="store_true",
                   help="sweep throughput: 1 and 2 worker processes, a local Dask cluster of 2")
    b.add_argument("--figure16", action="store_true",
                   help="Figure 16 of docs/figure16.md: downtime CDFs beside the paper's points")
    b.add_argument("--trials", type=int, default=1000, help="--figure16: trials per line")
    b.add_argument("--workers", type=int, default=2, help="--figure16: worker processes")
    b.add_argument("--out", default=FIGURE16_OUT,
                   help="--figure16: where the data goes; --scale, --soak: the JSON file")
    b.add_argument("--variants", action="store_true",
                   help="--figure16: the published points under other networks, disks and rules")
    b.add_argument("--search", action="store_true",
                   help="counterexample search: every mutation of every protocol")
    _add_search_parser(sub)
    return p


def _add_search_parser(sub) -> None:
    from app.searchcli import add_arguments

    add_arguments(sub.add_parser("search", help="search for a run that breaks an invariant with a "
                                 "mutation on; print the counterexample as JSON"))


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `playground simulate ... --transcript - | head`
        sys.stderr.close()
        return 141


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not (args.command == "bench" and (args.web or args.rooms or args.scale or args.soak)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "simulate":
        return cmd_simulate(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "export":
        return cmd_export(args)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "sweep":
        from app.sweep import cmd_sweep

        return cmd_sweep(args)
    if args.command == "search":
        return cmd_search(args)
    return cmd_bench(args, rest)


if __name__ == "__main__":
    sys.exit(main())
