"""The Chubby playground's actions: ZooKeeper's recipe actions (engine/protocols/zk/actions.py),
aimed at a client process c1.. alike:

    acquire (`node`)            the process asks for the lock (a blocking Acquire, §2.1)
    release (`node`)            it releases the lock (or gives it back as soon as it gets it)
    write (`node`, `value`?)    it writes to the storage service with its sequencer (§2.4)

and Chubby's own:

    close (`node`)              it closes its session (§2.8): its lock is freed at once, with no
                                lock-delay; an `acquire` later opens a new session
"""

from __future__ import annotations

from ..zk.actions import Acquire, Close, Release, Write

# (Close is ZooKeeper's closeSession action too; a Chubby client holds it back while its session
# is in jeopardy.)
CHUBBY_ACTIONS = (Acquire, Release, Write, Close)
