# SPDX-License-Identifier: MIT
"""libarena: a large read-only dataset shared with worker processes, zero copy.

    import libarena

    arena = libarena.Arena(items)          # bytes-likes, numpy arrays or objects
    def get_item(arena, i):                # runs in the workers
        return arena[i]
    with libarena.Pool(get_item, arena, workers=5) as pool:
        for x in pool.imap(range(len(arena))):
            ...

Arena: a sealed memfd every worker maps read-only (no /dev/shm file, no
copy-on-write growth).  Pool: worker processes running a Python function on
item indices, in the shape of multiprocessing.Pool / concurrent.futures:
submit -> Future, map, imap (ordered), imap_unordered, ``with``; and
stream() for a producer thread and a consumer thread (put / get in order).  A worker
that dies is replaced and its task runs again; a task that keeps killing
workers fails alone (WorkerCrashed).  help(libarena.Arena), help(libarena.Pool).

Errors: libarena's error codes become IndexError, ValueError, TimeoutError,
MemoryError, FileNotFoundError etc., or these OSError subclasses:
ArenaError (base), CorruptArenaError, WorkerCrashed, TaskTimeout (also a
TimeoutError), ResultTooLarge.  An exception raised by a task is re-raised
with its type and message, and a RemoteTraceback (the worker's traceback) as
its __cause__; TaskError stands for one that could not be pickled.
ResultSpaceWarning: a wait that result views still alive keep from ending
(Pool(view_threshold=...)).
"""
from ._libarena import (  # noqa: F401
    Arena,
    ArenaError,
    CorruptArenaError,
    RemoteTraceback,
    ResultSpaceWarning,
    ResultTooLarge,
    TaskError,
    TaskTimeout,
    WorkerCrashed,
    strerror,
)
from ._pool import Future, Pool  # noqa: F401

__all__ = [
    "Arena", "Pool", "Future",
    "ArenaError", "CorruptArenaError", "WorkerCrashed", "TaskTimeout",
    "ResultTooLarge", "ResultSpaceWarning", "TaskError", "RemoteTraceback", "strerror",
]
__version__ = "1.0.0"
