# SPDX-License-Identifier: MIT
"""Pool: results of every kind, ordering, futures, the seed's shape, errors."""
import concurrent.futures
import gc
import os
import queue
import threading
import warnings

import numpy as np
import pytest

import libarena
import tasks

SEED = [("test_string_%d" % i, [1, 3, 4]) for i in range(20000)]


@pytest.fixture(scope="module")
def seed_arena():
    with libarena.Arena(SEED) as a:
        yield a


def test_imap_ordered_and_unordered(seed_arena, no_leaks):
    with libarena.Pool(tasks.get_item, seed_arena, workers=3) as p:
        assert list(p.imap()) == SEED
        got = list(p.imap_unordered(range(0, 20000, 7), with_index=True))
        assert sorted(got) == [(i, SEED[i]) for i in range(0, 20000, 7)]
        assert sorted(p.imap_unordered(range(10))) == sorted(SEED[:10])
        assert p.map([5, 1, 5]) == [SEED[5], SEED[1], SEED[5]]
        s = p.stats()
        assert s["submitted"] == s["completed"] == s["reaped"]


def test_default_workers_follow_the_affinity_mask(seed_arena, no_leaks):
    """As many workers as this process may use CPUs (taskset, a cpuset), not
    as the machine has: os.cpu_count() gave 2 here under a one-CPU mask."""
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mask)})
    try:
        with libarena.Pool(tasks.get_item, seed_arena) as p:
            assert len(p.worker_pids()) == 1
            assert p.map([3]) == [SEED[3]]
    finally:
        os.sched_setaffinity(0, mask)


def test_results_of_every_kind(no_leaks):
    arena = libarena.Arena([b"x"] * 10)
    big = np.arange(300000, dtype=np.float64).reshape(1000, 300)

    def task(a, i):
        return [b"raw bytes", bytearray(b"ba"), memoryview(b"mv"), np.arange(5, dtype=">u2"),
                big, {"obj": i}, None, b"B" * 200000, np.array(["a", "bc"]),
                np.array([object()], dtype=object).shape][i]

    with libarena.Pool(task, arena, workers=2, view_threshold=65536, result_bytes=8 << 20) as p:
        r = p.map(range(10))
        assert r[0] == b"raw bytes" and r[1] == b"ba" and r[2] == b"mv"
        assert isinstance(r[0], bytes)
        assert np.array_equal(r[3], np.arange(5, dtype=">u2")) and r[3].dtype == ">u2"
        assert r[3].flags.writeable                       # small: a copy
        assert np.array_equal(r[4], big) and not r[4].flags.writeable   # large: a view
        assert r[5] == {"obj": 5} and r[6] is None
        assert isinstance(r[7], memoryview) and r[7].readonly and bytes(r[7]) == b"B" * 200000
        assert list(r[8]) == ["a", "bc"] and r[9] == (1,)
        del r
        gc.collect()


def test_large_results_are_views_holding_space(no_leaks):
    """Views hold their result space: with a 1 MiB area per worker and 256 KiB
    results, a consumer keeping every view would stall the worker; releasing
    them as it goes lets 100 results through one worker."""
    arena = libarena.Arena([b""] * 100)

    def task(a, i):
        return np.full(1 << 15, i, dtype=np.int64)        # 256 KiB

    with libarena.Pool(task, arena, workers=1, result_bytes=1 << 20,
                       view_threshold=65536) as p:
        total = 0
        for i, x in enumerate(p.imap()):
            assert not x.flags.writeable and x[0] == i and x[-1] == i
            total += int(x[0])
        assert total == sum(range(100))


def test_results_are_copies_by_default(no_leaks):
    """The default keeps nothing of the workers' result areas: a list of every
    result (here 20 MiB of them through 1 MiB areas) fills, and each result is
    memory of its own (bytes, writable arrays)."""
    arena = libarena.Arena([b""] * 200)

    def task(a, i):
        return bytes([i % 256]) * 100000 if i % 2 else np.full(12500, i, dtype=np.int64)

    with libarena.Pool(task, arena, workers=2, result_bytes=1 << 20) as p:
        out = list(p.imap())
        assert len(out) == 200
        for i, r in enumerate(out):
            if i % 2:
                assert type(r) is bytes and r == bytes([i % 256]) * 100000
            else:
                assert r.flags.writeable and r.shape == (12500,) and r[0] == r[-1] == i
        assert p.stats()["completed"] == 200
    with pytest.raises(ValueError):
        libarena.Pool(task, arena, view_threshold=0)


def test_views_kept_for_good_are_reported(no_leaks, monkeypatch):
    """Views kept for good stop their worker once its area wraps around to
    them; the wait says why (ResultSpaceWarning, here an exception), and goes
    on once they are dropped."""
    monkeypatch.setattr(libarena._pool, "_STALL_WARN_S", 0.3)
    arena = libarena.Arena([b""] * 12)

    def task(a, i):
        return np.full(1 << 15, i, dtype=np.int64)        # 256 KiB

    with libarena.Pool(task, arena, workers=1, result_bytes=1 << 20,
                       view_threshold=65536) as p:
        it = p.imap()
        kept = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", libarena.ResultSpaceWarning)
            with pytest.raises(libarena.ResultSpaceWarning) as e:
                for x in it:
                    kept.append(x)
        msg = str(e.value)
        assert "worker 0 waits for result space" in msg and "view_threshold=None" in msg
        assert 1 <= len(kept) <= 4                          # a 1 MiB area
        assert [int(x[0]) for x in kept] == list(range(len(kept)))
        n = len(kept)
        del kept, x
        gc.collect()
        rest = [int(x[0]) for x in it]                      # the same iterator goes on
        assert rest == list(range(n, 12))


def test_a_view_kept_for_a_while_gets_the_whole_area(no_leaks, monkeypatch):
    """With views on, a view kept while later ones are read and dropped stops
    its worker only once the worker has gone round its whole area to it (the
    docstring's promise), not after the run at the area's start: the library
    restarts a worker's results there early unless told that results may be
    kept (ARENA_POOL_HOLD_RESULTS, which views set).  Without it this run
    stalled about 20 results after the kept one."""
    monkeypatch.setattr(libarena._pool, "_STALL_WARN_S", 0.3)
    arena = libarena.Arena([b""] * 400)

    def task(a, i):
        return bytes([i % 256]) * 2000

    with libarena.Pool(task, arena, workers=1, result_bytes=1 << 20,
                       view_threshold=1000) as p:
        with warnings.catch_warnings():
            warnings.simplefilter("error", libarena.ResultSpaceWarning)
            kept = prev = None
            for i, x in enumerate(p.imap()):
                assert isinstance(x, memoryview) and bytes(x) == bytes([i % 256]) * 2000
                if i == 20:
                    kept = x            # about 40 KiB into the area, kept to the end
                prev = x                # each view lives until the next is read
        assert i == 399 and bytes(kept) == bytes([20]) * 2000
        del kept, prev, x
        gc.collect()


def test_result_views_outlive_close(no_leaks):
    arena = libarena.Arena([b""] * 4)
    p = libarena.Pool(tasks.bytes_of, arena, workers=2, view_threshold=1000)
    views = p.map(range(1, 4))
    assert all(isinstance(v, memoryview) for v in views)
    p.close()
    assert p.closed
    assert [bytes(v) for v in views] == [bytes([i]) * (i * 1000) for i in range(1, 4)]
    arr = np.frombuffer(views[2], dtype=np.uint8)
    del views
    gc.collect()
    assert int(arr.sum()) == 3 * 3000                       # still mapped
    del arr
    gc.collect()
    with pytest.raises(ValueError):
        p.submit(0)


def test_futures(seed_arena, no_leaks):
    with libarena.Pool(tasks.get_item, seed_arena, workers=2, depth=4) as p:
        fs = [p.submit(i) for i in range(50)]              # more than depth: submit reaps
        assert [f.result() for f in reversed(fs)] == SEED[:50][::-1]
        assert fs[3].index == 3 and fs[3].done() and fs[3].exception() is None
        with pytest.raises(IndexError):
            p.submit(len(SEED))
        with pytest.raises(IndexError):
            p.submit(-1)


def test_seed_shape_end_to_end(seed_arena, no_leaks):
    """The seed's program: a producer thread submitting, a Queue(10), a
    consumer thread reading the results in order."""
    with libarena.Pool(tasks.get_item, seed_arena, workers=5, depth=10) as p:
        q = queue.Queue(10)
        out = []

        def producer():
            for i in range(len(seed_arena)):
                q.put(p.submit(i))
            q.put(None)

        def consumer():
            while (f := q.get()) is not None:
                out.append(f.result())

        ts = [threading.Thread(target=producer), threading.Thread(target=consumer)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert out == SEED


def test_task_exception_for_that_item_only(no_leaks):
    arena = libarena.Arena([b""] * 20)
    with libarena.Pool(tasks.raise_on_7, arena, workers=2) as p:
        it = p.imap()
        got = [next(it) for _ in range(7)]
        with pytest.raises(KeyError) as e:
            next(it)
        got += list(it)                                     # the iteration goes on
        assert got == [i for i in range(20) if i != 7]
        assert isinstance(e.value.__cause__, libarena.RemoteTraceback)
        text = str(e.value.__cause__)
        assert "raise_on_7" in text and "KeyError" in text and "tasks.py" in text
        assert any("item 7" in n for n in e.value.__notes__)
        f = p.submit(7)
        assert isinstance(f.exception(), KeyError)
        with pytest.raises(KeyError):
            p.map(range(10))


def test_unpicklable_exception(no_leaks):
    class Local(Exception):
        pass

    def task(a, i):
        raise Local("local %d" % i)

    with libarena.Pool(task, libarena.Arena([b""]), workers=1) as p:
        with pytest.raises(libarena.TaskError) as e:
            p.submit(0).result()
        assert "Local" in str(e.value) and "local 0" in str(e.value)
        assert "local 0" in str(e.value.__cause__)


def test_result_too_large(no_leaks):
    def task(a, i):
        return b"x" * (3 << 20) if i == 1 else i

    with libarena.Pool(task, libarena.Arena([b""] * 3), workers=1, result_bytes=1 << 20) as p:
        it = p.imap()
        assert next(it) == 0
        with pytest.raises(libarena.ResultTooLarge) as e:
            next(it)
        assert isinstance(e.value, OSError) and "item 1" in str(e.value)
        assert next(it) == 2


def test_closure_and_size_only_pool(no_leaks):
    data = {i: i * i for i in range(100)}                   # inherited by fork
    with libarena.Pool(lambda a, i: data[i], size=100, workers=2) as p:
        assert p.map() == [i * i for i in range(100)]


def test_bad_arguments():
    a = libarena.Arena([b""])
    with pytest.raises(TypeError):
        libarena.Pool(tasks.double)
    with pytest.raises(TypeError):
        libarena.Pool(tasks.double, [b"not an arena"])
    with pytest.raises(ValueError):
        libarena.Pool(tasks.double, a, workers=0)
    with pytest.raises(ValueError):
        libarena.Pool(tasks.double, a, start_method="forkserver")
    with pytest.raises(ValueError):
        libarena.Pool(lambda a, i: i, a, start_method="spawn")
    closed = libarena.Arena([b""])
    closed.close()
    with pytest.raises(ValueError):
        libarena.Pool(tasks.double, closed)


def test_closed_pool_and_cancel(no_leaks):
    a = libarena.Arena([b""] * 10)
    p = libarena.Pool(tasks.sleep_long, a, workers=1)
    fs = [p.submit(i) for i in range(3)]
    p.close(cancel=True)
    assert all(f.cancelled() for f in fs)
    with pytest.raises(ValueError):
        p.submit(0)
    with pytest.raises(ValueError):
        list(p.imap())
    p.close()                                              # twice is fine


def test_imap_sources_and_mixing(seed_arena, no_leaks):
    """Indices from a generator, a list, a range; an iterator dropped half-way;
    futures and two iterators sharing the pool (each one's completions reach
    it whoever reaps them)."""
    with libarena.Pool(tasks.pid_of, seed_arena, workers=2, depth=6) as p:
        assert [i for i, _ in p.imap(x for x in [9, 3, 3, 0])] == [9, 3, 3, 0]
        assert [i for i, _ in p.imap(range(100, 90, -1))] == list(range(100, 90, -1))
        assert [i for i, _ in p.imap(range(5, 5))] == []
        it = p.imap(range(1000))
        assert next(it)[0] == 0
        del it                                              # dropped with tasks in flight
        a = p.imap(range(300))
        b = p.imap_unordered(range(300, 600), with_index=True)
        fs = [p.submit(i) for i in range(600, 620)]         # these reap for everyone
        got_a = [x[0] for x in a]
        got_b = sorted(i for i, _ in b)
        assert got_a == list(range(300))
        assert got_b == list(range(300, 600))
        assert [f.result()[0] for f in fs] == list(range(600, 620))
        with pytest.raises(IndexError):
            list(p.imap([1, 2, len(seed_arena)]))
        with pytest.raises(IndexError):
            p.imap(range(len(seed_arena) + 1))
        with pytest.raises(TypeError):                      # read ahead: raised early
            list(p.imap(x for x in [4, "five", 6]))
        assert [x[0] for x in p.map(range(3))] == [0, 1, 2]


def test_arena_closed_under_a_running_pool(no_leaks):
    a = libarena.Arena([b"abc"] * 10)
    fd = a.fileno()
    with libarena.Pool(lambda arena, i: bytes(arena[i]), a, workers=1) as p:
        a.close()                                  # the pool still maps it
        assert a.closed
        assert p.map() == [b"abc"] * 10
        os.fstat(fd)
    with pytest.raises(OSError):
        os.fstat(fd)                               # closed with the pool


def test_stream_seed_shape(seed_arena, no_leaks):
    """The seed's shape on a stream: a producer thread put()s, a consumer
    thread get()s in order; the pool's depth is the Queue(10)."""
    with libarena.Pool(tasks.get_item, seed_arena, workers=5, depth=10) as p:
        s = p.stream()
        out = []

        def consumer():
            for _ in range(len(seed_arena)):
                out.append(s.get())

        t = threading.Thread(target=consumer)
        t.start()
        for i in range(len(seed_arena)):
            s.put(i)
        t.join()
        assert out == SEED
        assert s.pending == 0


def test_stream_one_thread_errors_and_timeout(no_leaks):
    with libarena.Pool(tasks.raise_on_7, libarena.Arena([b""] * 40), workers=2, depth=4) as p:
        s = p.stream(with_index=True)
        got = []
        for i in range(40):
            s.put(i)                            # the pool is full from 4 on: put reaps
            if s.pending == 8:                  # the window (2 x depth): get some
                while s.pending > 2:
                    try:
                        got.append(s.get())
                    except KeyError:
                        got.append("err")
        while s.pending:
            try:
                got.append(s.get())
            except KeyError:
                got.append("err")
        assert got == [(i, i) if i != 7 else "err" for i in range(40)]
        with pytest.raises(TimeoutError):
            s.get(timeout=0.05)                 # nothing put
        with pytest.raises(IndexError):
            s.put(40)
        with pytest.raises(TypeError):
            p.imap().put(1)


def test_close_from_another_thread_while_waiting(no_leaks):
    """close() while another thread waits inside the pool: that thread gets
    ValueError, nothing crashes."""
    p = libarena.Pool(tasks.sleep_long, libarena.Arena([b""] * 2), workers=1)
    f = p.submit(0)
    errors = []

    def waiter():
        try:
            f.result()
        except BaseException as e:   # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    import time
    time.sleep(0.3)
    p.close(cancel=True)
    t.join(timeout=30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], (ValueError, concurrent.futures.CancelledError))


def _mapping_of(addr):
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line.split(None, 5)[5].strip() if len(line.split()) > 5 else ""
    return None


def test_large_results_not_copied(no_leaks):
    """With view_threshold, a large array result is read where the worker
    wrote it: the consumer's ndarray points into the channel's shared
    mapping, not into its heap; by default it is a copy in the heap."""
    def task(a, i):
        return np.full((1024, 1024), i, dtype=np.float32)   # 4 MiB

    with libarena.Pool(task, size=1, workers=1) as p:
        x = p.submit(0).result()
        assert not _mapping_of(x.ctypes.data).startswith("/memfd:arena-channel")
        assert x.flags.owndata and x.flags.writeable and x[-1, -1] == 0
    with libarena.Pool(task, size=3, workers=1, view_threshold=65536) as p:
        for i, x in enumerate(p.imap()):
            assert _mapping_of(x.ctypes.data).startswith("/memfd:arena-channel")
            assert not x.flags.owndata and not x.flags.writeable
            assert x[0, 0] == i and x[-1, -1] == i
        small = p.submit(0).result()[:2, :2].copy()
        assert small.sum() == 0


def test_task_system_exit_is_a_task_error(no_leaks):
    import sys as _sys

    def task(a, i):
        _sys.exit(3)

    with libarena.Pool(task, size=1, workers=1) as p:
        with pytest.raises(libarena.TaskError) as e:
            p.submit(0).result()
        assert "SystemExit" in str(e.value)
        assert p.stats()["crashes"] == 0
