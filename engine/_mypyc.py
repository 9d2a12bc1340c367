"""`mypyc_attr`, the class decorator mypyc reads (engine/native.py), or a no-op without it.

Every compiled class says `@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)`:
`serializable` so that worlds pickle (snapshots, rewind, checkpoints) as they do in Python, and
`allow_interpreted_subclasses` because without it mypyc (2.x) does not run `__init__` of a
serializable class at all; it also lets the protocols' Python nodes subclass the compiled `Node`.

Compiled, annotations are enforced and a value annotated `float` is made a float (an int 10
becomes 10.0, and then reads 10.0 in a record): in the compiled modules, a value that may be
either and reaches a record or a digest is annotated `float | int` or `Any`, not `float`.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:
    try:
        from mypy_extensions import mypyc_attr
    except ImportError:  # (the build tools are not installed: nothing reads the decorator)
        def mypyc_attr(*_a, **_k):
            return lambda cls: cls

__all__ = ["mypyc_attr"]
