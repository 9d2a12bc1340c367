"""The optional compiled engine: the hot modules below, built with mypyc (`make` runs
tools/build_native.py), loaded in place of their Python sources when a build of exactly these
sources exists. Without one (mypyc not installed, the build failed, or a source changed since),
the same modules run as plain Python: behaviour, records and digests are identical either way
(tests/engine/test_native.py compares them); only the speed differs.

A build lives in `.native/<key>/` at the repository's root, where the key is a hash of the
Python version and of every engine source file. Any edit to any file under engine/ changes the
key, so a stale build is never loaded: the engine runs as Python until `make` builds again.
`PLAYGROUND_ENGINE=pure` forces the Python modules (the comparison test runs both).

This module only chooses which implementation of the engine's modules gets imported, once, when
`engine` is first imported; no simulation reads it or any file.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

# What gets compiled: the kernel, its network and node interface, and the load balancer's hot
# path (the profile of `playground bench --lb`: the kernel's loop and sends, the open-loop
# client, the balancer, backends and the least-connections pick). The other protocols' nodes
# subclass the compiled `Node` as ordinary Python classes.
MODULES = ("engine.node", "engine.sim", "engine.network", "engine.protocols.lb.algorithms",
           "engine.protocols.lb.backend", "engine.protocols.lb.balancer",
           "engine.workloads.open_loop_client")

ENGINE = Path(__file__).resolve().parent
BUILDS = ENGINE.parent / ".native"
GROUP = "engine_native"  # the name of the shared library every compiled module lives in

# Set by `activate` (read by the bench's one-line "engine: ..." and the tests).
state = {"compiled": False, "why": "not looked for"}


def source_key(engine_dir: Path = ENGINE) -> str:
    """A hash of the Python version and every engine source (path and content)."""
    h = hashlib.sha256(sys.version.encode())
    for p in sorted(engine_dir.rglob("*.py")):
        h.update(str(p.relative_to(engine_dir)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def build_dir(key: str | None = None) -> Path:
    return BUILDS / (key or source_key())


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules (and their shared library) in one build directory."""

    def __init__(self, where: Path):
        self.files = {}
        for f in where.iterdir():  # file names: engine.sim.cpython-311-x86_64-linux-gnu.so
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if f.name.endswith(suffix):
                    self.files[f.name[:-len(suffix)]] = f
                    break

    def find_spec(self, fullname, path=None, target=None):
        f = self.files.get(fullname)
        if f is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(f))
        return importlib.util.spec_from_file_location(fullname, f, loader=loader)


def activate() -> None:
    """Put the build of these exact sources first on the import path, if there is one that
    loads; else leave the Python modules to be imported. Called once by engine/__init__.py."""
    if os.environ.get("PLAYGROUND_ENGINE", "") == "pure":
        state.update(compiled=False, why="PLAYGROUND_ENGINE=pure")
        return
    where = build_dir()
    if not (where / "ok").exists():
        state.update(compiled=False, why="no compiled build of these sources; make native builds one")
        return
    finder = _Finder(where)
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(f"{GROUP}__mypyc")  # the native code; the modules load lazily
    except Exception as e:  # (a build for another platform, a missing runtime library, ...)
        sys.meta_path.remove(finder)
        state.update(compiled=False, why=f"the compiled build did not load: {e}")
        return
    state.update(compiled=True, why=str(where))


def describe() -> str:
    """One line for benchmarks: which engine runs (the kernel's module, if it is imported yet)."""
    sim = sys.modules.get("engine.sim")
    if state["compiled"] and (sim is None or not str(getattr(sim, "__file__", "")).endswith(".py")):
        return "engine: compiled (mypyc)"
    return f"engine: pure Python ({state['why']})"
