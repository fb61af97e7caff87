# SPDX-License-Identifier: MIT
"""Pool: a user's Python function on arena items, in worker processes.

The shape is multiprocessing.Pool / concurrent.futures: ``submit`` returns a
future, ``map``, ``imap`` (ordered) and ``imap_unordered`` stream results with
a bounded number of tasks in flight, and ``with Pool(...) as pool:`` stops and
reaps the workers.  Whoever waits for a result reaps completions for everyone
(there is no result-handler thread): a waiting thread releases the GIL.
"""
import concurrent.futures
import itertools
import json
import os
import sys
import threading
import warnings
import weakref

from . import _libarena
from ._libarena import Arena

__all__ = ["Pool", "Future"]

_WAIT_NS = 50 * 1000 * 1000     # one reap's wait while others may reap too
_REAP_MAX = 256
# Each worker's result area: room for a few 4 MiB batches in flight.  Only
# the pages results are written to cost memory.
_RESULT_BYTES = 16 << 20
# After this long without progress, a wait that result views keep from ending
# is reported (ResultSpaceWarning); tests make it shorter.
_STALL_WARN_S = 5.0

_WORKER_BOOT = (
    "import sys, json; sys.path[:0] = json.loads(sys.argv[1]); "
    "from libarena._worker import main; sys.exit(main(sys.argv[2:]))"
)


_PENDING, _OK, _EXC, _CANCELLED = range(4)


class Future:
    """The result of one task, in the shape of concurrent.futures.Future:
    result(timeout=None), exception(timeout=None), done(), cancelled(),
    add_done_callback(fn); ``index`` is the item index.

    There is no helper thread: ``result()`` and ``exception()`` reap
    completions (for every future and iterator of the pool) while they wait,
    releasing the GIL.  So a future completes when someone waits on it or on
    another one of the pool (concurrent.futures.wait() would not reap).
    """

    __slots__ = ("_pool", "index", "_state", "_value", "_callbacks", "__weakref__")

    def __init__(self, pool, index):
        self._pool = pool
        self.index = index
        self._state = _PENDING
        self._value = None
        self._callbacks = None

    def __repr__(self):
        state = ("pending", "finished", "raised", "cancelled")[self._state]
        return "<libarena.Future item %d %s>" % (self.index, state)

    def _set(self, state, value):
        if self._state != _PENDING:
            return
        self._state, self._value = state, value
        cbs, self._callbacks = self._callbacks, None
        for fn in cbs or ():
            try:
                fn(self)
            except Exception:  # noqa: BLE001 - as concurrent.futures does
                import logging
                logging.getLogger("libarena").exception("exception calling callback for %r", self)

    def _deliver(self, ok, value):
        self._set(_OK if ok else _EXC, value)

    def _wait(self, timeout):
        pool = self._pool
        deadline = None if timeout is None else _now() + timeout
        while self._state == _PENDING and not pool._p.closed:
            if deadline is None:
                wait = _WAIT_NS
            else:
                left = deadline - _now()
                if left <= 0:
                    break
                wait = min(_WAIT_NS, int(left * 1e9))
            try:
                pool._pump(wait)
            except ValueError:
                if not pool._p.closed:
                    raise
                break                  # closed by another thread: cancelled

    def done(self):
        return self._state != _PENDING

    def running(self):
        """True while the task is submitted and not done (tasks start at once)."""
        return self._state == _PENDING

    def cancelled(self):
        return self._state == _CANCELLED

    def cancel(self):
        """A submitted task cannot be recalled: True only if already cancelled
        (by Pool.close(cancel=True))."""
        return self._state == _CANCELLED

    def result(self, timeout=None):
        if self._state == _PENDING:
            self._wait(timeout)
        state = self._state
        if state == _OK:
            return self._value
        if state == _EXC:
            raise self._value
        if state == _CANCELLED:
            raise concurrent.futures.CancelledError()
        raise TimeoutError("the task for item %d is not done" % self.index)

    def exception(self, timeout=None):
        if self._state == _PENDING:
            self._wait(timeout)
        state = self._state
        if state == _OK:
            return None
        if state == _EXC:
            return self._value
        if state == _CANCELLED:
            raise concurrent.futures.CancelledError()
        raise TimeoutError("the task for item %d is not done" % self.index)

    def add_done_callback(self, fn):
        """fn(future) when done (at once if done already), in the thread that
        reaps the completion."""
        if self._state != _PENDING:
            fn(self)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)


def _now():
    import time
    return time.monotonic()


def _python_threads():
    return threading.active_count()


def _main_path(what):
    """The parent's script, which spawned workers run to find what it
    defines; ValueError when there is none (an interactive session)."""
    main_path = getattr(sys.modules["__main__"], "__file__", None)
    if not main_path:
        raise ValueError("start_method='spawn' cannot import %s "
                         "defined in an interactive __main__" % what)
    return os.path.abspath(main_path)


def _spawn_argv(func):
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(
            "start_method='spawn' runs func in a new interpreter that imports it "
            "by name: use a module-level function, not %r" % (func,))
    main_path = _main_path("a function") if module == "__main__" else ""
    path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    return [os.fsencode(a) for a in (sys.executable, "-c", _WORKER_BOOT,
                                     json.dumps(path), module, qualname, main_path)]


def _cpus():
    """The CPUs this process may run on (its affinity mask: ``taskset`` and a
    container's cpuset count), as the C pool counts them."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Pool:
    """Worker processes that call ``func(arena, i)`` for item indices i and send
    back what it returns.

    - arena: the Arena the workers read (mapped, never copied).  None with
      ``size=n`` gives tasks 0..n-1 over no data (func uses what it inherited
      by fork, e.g. a Keras Sequence or a torch Dataset).
    - workers: processes (default: the CPUs of this process's affinity
      mask, ``len(os.sched_getaffinity(0))``); depth: tasks in flight
      (default max(10, 2 * workers), the seed's Queue(10) at least).
    - Results: bytes-likes and numpy arrays travel raw (no pickling) and are
      copied once, here, into memory of their own; other objects are
      pickled.  result_bytes is each worker's result area (default 16 MiB,
      only the pages written cost memory); a larger result raises
      ResultTooLarge.
    - view_threshold=N (default None: off) skips that copy for results of N
      bytes or more: they come back as read-only views (memoryview, or
      ndarray) of the worker's result area, which hold their space until
      they are released.  The area is a ring: a view kept for good (in a
      list of every result, say) stops its worker for good once the worker
      has written result_bytes after it, and the pool then waits for ever.
      Use views only when each is dropped before the next few are read; a
      wait that views keep from ending is reported after 5 s
      (ResultSpaceWarning, an exception under ``-W error``).
    - Errors: an exception raised by func is raised where that item's result
      is read, with the worker's traceback as its __cause__; a task that kills
      its worker max_attempts times raises WorkerCrashed (task_timeout
      seconds, when set, kills a hung task: TaskTimeout); other items go on.
    - start_method 'fork' (default) forks the workers now: build the arena and
      the pool before starting threads.  Forked workers start with the
      standard streams only: other files open in the parent are closed in
      them unless listed in keep_fds (fds or objects with fileno()).  'spawn' starts fresh interpreters
      that import func by name (module-level functions only; guard your
      script with ``if __name__ == "__main__":``): for parents that cannot
      fork safely (threads, CUDA, JAX).
    """

    def __init__(self, func, arena=None, *, workers=None, depth=None, max_attempts=3,
                 task_timeout=None, result_bytes=None, view_threshold=None,
                 start_method="fork", size=None, keep_fds=()):
        if arena is None:
            if size is None:
                raise TypeError("Pool needs an arena, or size= for tasks over no data")
            arena = Arena(itertools.repeat(b"", size), kind="bytes")
        elif size is not None:
            raise TypeError("size= is for pools without an arena")
        if not isinstance(arena, Arena):
            raise TypeError("arena must be a libarena.Arena, not %s" % type(arena).__name__)
        if workers is None:
            workers = _cpus()
        if workers < 1:
            raise ValueError("workers must be at least 1")
        depth = max(10, 2 * workers) if depth is None else depth
        if depth < 1:
            raise ValueError("depth must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        argv = None
        if start_method == "spawn":
            argv = _spawn_argv(func)
        elif start_method != "fork":
            raise ValueError("start_method must be 'fork' or 'spawn'")
        elif _python_threads() > 1:
            warnings.warn(
                "this process has %d threads: forking workers now may deadlock them "
                "(a lock held by another thread stays held in the worker); create the "
                "Pool before starting threads, or use start_method='spawn'"
                % _python_threads(), RuntimeWarning, stacklevel=2)
        timeout_ns = 0 if task_timeout is None else max(1, int(task_timeout * 1e9))
        if view_threshold is None:
            view_threshold = -1                 # never a view
        elif view_threshold < 1:
            raise ValueError("view_threshold must be None or at least 1")
        self.arena = arena
        self.depth = depth
        self._p = _libarena._Pool(arena, func, workers, depth, max_attempts,
                                  result_bytes or _RESULT_BYTES, timeout_ns, view_threshold,
                                  argv, list(keep_fds) or None,
                                  int(_STALL_WARN_S * 1e9))
        self._reap_lock = threading.Lock()   # one reaper at a time
        self._cv = threading.Condition(threading.Lock())
        self._sinks = {}                     # uid -> Future
        self._iters = weakref.WeakSet()      # live imap iterators

    # -- the engine: uids, submission, reaping ------------------------------

    def _take_uids(self, n):
        return self._p.take_uids(n)       # atomic under the GIL

    def _dispatch(self, batch):
        sinks = self._sinks
        for uid, _index, ok, value in batch:
            sink = sinks.pop(uid, None)
            if sink is not None:
                sink._deliver(ok, value)
                continue
            # A task of a live iterator reaped by someone else; else a
            # cancelled future or a dropped iterator: discarded.
            for it in list(self._iters):
                if it.owns(uid):
                    it.deliver(uid, ok, value)
                    break

    def _pump(self, timeout_ns):
        """Reaps one batch (waiting up to timeout_ns) and hands it out; when
        another thread is reaping, waits for it instead."""
        if self._reap_lock.acquire(blocking=False):
            try:
                batch = self._p.reap(_REAP_MAX, timeout_ns)
                if batch:
                    self._dispatch(batch)
            finally:
                self._reap_lock.release()
            if batch:
                with self._cv:
                    self._cv.notify_all()
            return batch
        with self._cv:
            self._cv.wait(min(timeout_ns, _WAIT_NS) / 1e9 if timeout_ns >= 0 else _WAIT_NS / 1e9)
        return []

    def _submit(self, indices, uid):
        """Submits every index (uids uid, uid+1, ...), reaping while full."""
        k, n = 0, len(indices)
        p = self._p
        while k < n:
            k += p.submit(indices[k:] if k else indices, uid + k, 0)
            if k == n:
                break
            # Full.  Take what is done without waiting (never block in reap
            # here: a consumer that comes to wait would find us holding its
            # completions), then wait a little for room, the GIL released.
            if not self._reap_lock.locked() and self._pump(0):
                continue
            k += p.submit(indices[k:], uid + k, 1_000_000)

    # -- the API --------------------------------------------------------------

    def submit(self, index):
        """Runs func(arena, index) in a worker; returns a Future."""
        index = int(index)
        f = Future(self, index)
        uid = self._take_uids(1)
        self._sinks[uid] = f
        try:
            self._submit((index,), uid)
        except BaseException:
            self._sinks.pop(uid, None)
            raise
        return f

    def imap(self, indices=None):
        """Results of func(arena, i) for each i of indices (default: every
        item), in order, with at most depth tasks in flight.  A task's
        exception is raised by next() for that item only: the iteration can
        go on.  A range of consecutive items is submitted as a range."""
        return self._iterate(indices, True, False)

    def imap_unordered(self, indices=None, *, with_index=False):
        """As imap, in completion order; with_index=True yields (i, result)."""
        return self._iterate(indices, False, with_index)

    def stream(self, *, with_index=False):
        """A stream for the seed's shape: a producer thread calls put(i)
        (blocking while depth tasks are in flight: the pool's depth is the
        seed's Queue(10)), a consumer thread calls get(timeout=None) for the
        results in put() order (a task's exception is raised for that item
        only).  with_index=True: get() returns (i, result)."""
        return self._iterate(..., True, with_index)

    def _iterate(self, indices, ordered, with_index):
        it = self._p.iterate(indices, ordered, with_index, self.depth, self._dispatch)
        self._iters.add(it)
        return it

    def map(self, indices=None):
        """list(imap(indices)); raises the first task exception after every
        task has run."""
        out, first = [], None
        it = self.imap(indices)
        while True:
            try:
                out.append(next(it))
            except StopIteration:
                break
            except Exception as e:   # noqa: BLE001 - delivered, re-raised below
                if first is None:
                    first = e
                out.append(None)
        if first is not None:
            raise first
        return out

    def worker_pids(self):
        """The workers' pids (0 for a slot whose worker is not running)."""
        return self._p.worker_pids()

    def stats(self):
        """Counters: submitted, completed, reaped, crashes, tasks_rerun, ..."""
        return self._p.stats()

    @property
    def closed(self):
        return self._p.closed

    def close(self, cancel=False):
        """Stops the workers and reaps them (no zombies).  Unless cancel,
        waits for the tasks of pending futures first; cancelled futures are
        marked so.  Result views alive keep their memory until released."""
        if self._p.closed:
            return
        try:
            if not cancel:
                while any(isinstance(s, Future) for s in list(self._sinks.values())):
                    self._pump(_WAIT_NS)
        finally:
            # Cancelled first: a thread waiting on one wakes up to that.
            for s in list(self._sinks.values()):
                s._set(_CANCELLED, None)
            self._sinks.clear()
            self._p.close()

    def terminate(self):
        """close(cancel=True)."""
        self.close(cancel=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(cancel=exc_type is not None)

    def __reduce__(self):
        raise TypeError("a Pool cannot be pickled")
