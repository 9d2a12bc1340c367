"""Build the compiled engine (engine/native.py) for the current sources, if it is not built yet.

    .venv/bin/python tools/build_native.py          (make runs it before `run` and `test`)

Compiles engine.native.MODULES with mypyc into `.native/<key>/` (the key: a hash of the Python
version and every engine source), removing older builds. Never fails the caller: without mypyc
or a C compiler, or if the build breaks, it says so in one line and the engine runs as Python.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ["PLAYGROUND_ENGINE"] = "pure"  # (the build reads the sources; it must not load a build)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import native  # noqa: E402


def build(key: str) -> str:
    from mypyc.build import mypycify
    from setuptools import setup

    paths = [str(ROOT / (m.replace(".", "/") + ".py")) for m in native.MODULES]
    with tempfile.TemporaryDirectory(prefix="native-", dir=native.BUILDS) as tmp:
        out = Path(tmp) / "lib"
        cwd = os.getcwd()
        os.chdir(ROOT)  # (mypyc names the modules by their paths from here)
        try:
            # Type errors in the modules not compiled (pydantic models, ...) are not ours to fix
            # here: mypy reads them for their types only.
            exts = mypycify(["--follow-imports=silent", "--disable-error-code=annotation-unchecked",
                             *[os.path.relpath(p) for p in paths]],
                            opt_level="3", group_name=native.GROUP, target_dir=str(Path(tmp) / "c"))
            warnings.simplefilter("ignore")  # (setuptools' notes on pyproject.toml)
            setup(name="engine-native", ext_modules=exts,
                  script_args=["-q", "build_ext", "--build-lib", str(out),
                               "--build-temp", str(Path(tmp) / "o")])
        finally:
            os.chdir(cwd)
        stage = Path(tmp) / "stage"
        stage.mkdir()
        for so in out.rglob("*.so"):  # flat: engine/sim.<abi>.so -> engine.sim.<abi>.so
            rel = so.relative_to(out)
            name = ".".join(rel.parent.parts + (rel.name,))
            shutil.move(str(so), stage / name)
        (stage / "ok").write_text("\n".join(native.MODULES) + "\n")
        dest = native.build_dir(key)
        shutil.rmtree(dest, ignore_errors=True)
        stage.rename(dest)
    return str(dest)


def main() -> int:
    key = native.source_key()
    if (native.build_dir(key) / "ok").exists():
        print(f"engine: compiled build up to date (.native/{key})")
        return 0
    try:
        import mypyc  # noqa: F401
    except ImportError:
        print("engine: mypyc not installed, the engine runs as pure Python")
        return 0
    native.BUILDS.mkdir(exist_ok=True)
    for old in native.BUILDS.iterdir():  # (older sources' builds: never loaded again)
        if old.is_dir() and not old.name.startswith("native-"):
            shutil.rmtree(old, ignore_errors=True)
    t0 = time.monotonic()
    try:
        dest = build(key)
    except BaseException as e:  # (mypyc exits on a type error; gcc may be missing)
        print(f"engine: the mypyc build failed ({type(e).__name__}: {e}); the engine runs as "
              f"pure Python", file=sys.stderr)
        return 0
    print(f"engine: compiled with mypyc in {time.monotonic() - t0:.0f} s ({os.path.relpath(dest)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
