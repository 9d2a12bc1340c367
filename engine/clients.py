"""Kept for older imports: the key-value clients now live in `engine/workloads/kv.py`."""

from .workloads.kv import RETRY_US, USER_CLIENT, ClientNode  # noqa: F401
