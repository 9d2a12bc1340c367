"""The deterministic simulation engine (docs/engine.md)."""

from . import native as _native

_native.activate()
