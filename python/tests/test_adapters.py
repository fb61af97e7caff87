# SPDX-License-Identifier: MIT
"""The adapters (libarena.adapters) as a Keras or PyTorch user meets them,
and what the tools they use today do in the same situations.

A worker killed in the middle of an epoch:
  - a Keras-like enqueuer (multiprocessing.Pool, apply_async, a bounded
    queue of AsyncResults, get() without a timeout, as Keras does): the lost
    item never arrives -- training hangs (keras#11461);
  - torch.utils.data.DataLoader: the whole epoch fails with RuntimeError;
  - libarena.adapters.Enqueuer: the item is computed again, exactly once,
    and the epoch goes on, in order.
"""
import mmap
import multiprocessing as mp
import os
import queue
import signal
import threading
import time

import pytest

# Generous bounds: these tests must pass on a loaded 2-CPU machine.  None is
# a speed assertion; each one bounds a wait that would otherwise be a hang.
WAIT_S = 60


class SharedInts:
    """n C ints in an anonymous shared mapping, inherited by forked workers
    (no /dev/shm file, unlike multiprocessing.Array)."""

    def __init__(self, n):
        self._map = mmap.mmap(-1, 4 * max(1, n))
        self._ints = memoryview(self._map).cast("i")

    def __getitem__(self, i):
        return self._ints[i]

    def __setitem__(self, i, v):
        self._ints[i] = v

    def __len__(self):
        return len(self._ints)

    def __iter__(self):
        return iter(self._ints.tolist())


class Probe:
    """A map-style dataset (the shape of a Keras Sequence or a torch
    Dataset): item i is (i, i * i).  Counts every computation of every
    index in shared memory; the victim index, while armed, reports its pid
    and sleeps until it is killed."""

    def __init__(self, n, victim=-1):
        self.n = n
        self.victim = victim
        self.calls = SharedInts(n)          # inherited by fork
        self.flags = SharedInts(2)          # armed, the victim's pid
        self.flags[0] = 1 if victim >= 0 else 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.calls[i] += 1
        if i == self.victim and self.flags[0]:
            self.flags[1] = os.getpid()
            time.sleep(3600)            # the test kills this worker
        return (i, i * i)

    def kill_victim(self):
        """Waits for the victim's worker to be inside item victim, disarms
        the item (its recomputation returns normally) and SIGKILLs it."""
        deadline = time.monotonic() + WAIT_S
        while self.flags[1] == 0:
            assert time.monotonic() < deadline, "the victim item never started"
            time.sleep(0.005)
        pid = self.flags[1]
        self.flags[0] = 0
        os.kill(pid, signal.SIGKILL)
        return pid


def bounded(fn):
    """fn() in a thread, failing the test if it takes more than WAIT_S: a
    lost item would otherwise hang the test instead of failing it."""
    out = []
    th = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    th.start()
    th.join(WAIT_S)
    assert not th.is_alive(), "no result after %d s: the item was lost" % WAIT_S
    assert out, "the consumer raised (see the thread's traceback)"
    return out[0]


# ---- what users have today --------------------------------------------------

_DATASET = None


def _get_index(i):
    """Keras' get_index: the dataset is a global inherited by the Pool."""
    return _DATASET[i]


def test_keras_like_enqueuer_loses_the_item_of_a_killed_worker():
    """Keras' OrderedEnqueuer shape: the AsyncResult of the killed worker's
    task never becomes ready.  Keras calls value.get() without a timeout,
    so it waits for ever; here every later item arrives and the victim's
    still does not: lost, not slow."""
    global _DATASET
    n, victim, depth = 40, 7, 10
    _DATASET = ds = Probe(n, victim)
    pool = mp.get_context("fork").Pool(3)
    try:
        futures = queue.Queue(depth)
        results = [pool.apply_async(_get_index, (i,)) for i in range(n)]
        for r in results[:depth]:
            futures.put(r)
        pid = ds.kill_victim()
        for i in range(n):
            if i != victim:
                assert results[i].get(timeout=WAIT_S) == (i, i * i)
        # Every other item is done, the pool replaced the dead worker (its
        # maintenance thread looks every 0.1 s), and the victim's result is
        # still missing: nothing will ever fill it.
        deadline = time.monotonic() + WAIT_S
        while pid in [p.pid for p in pool._pool]:
            assert time.monotonic() < deadline, "the pool never replaced the dead worker"
            time.sleep(0.01)
        with pytest.raises(mp.TimeoutError):
            results[victim].get(timeout=2)
        assert ds.calls[victim] == 1, "Pool never runs the lost task again"
    finally:
        pool.terminate()
        pool.join()
        _DATASET = None


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_torch_dataloader_fails_the_epoch_when_a_worker_is_killed():
    torch_data = pytest.importorskip("torch.utils.data")
    n, victim = 40, 7
    ds = Probe(n, victim)
    dl = torch_data.DataLoader(ds, batch_size=None, num_workers=3, prefetch_factor=2,
                               multiprocessing_context=mp.get_context("fork"))
    got = []
    # The DataLoader hands index `victim` to a worker only as the epoch
    # advances: kill from a thread while this one consumes.
    killer = threading.Thread(target=ds.kill_victim, daemon=True)
    killer.start()
    it = iter(dl)
    with pytest.raises(RuntimeError, match="(?i)worker"):
        for item in it:
            got.append(tuple(item))
    killer.join(WAIT_S)
    # What came before the victim arrived; the epoch ends there.
    assert [g[0] for g in got] == list(range(len(got))) and len(got) <= victim
    del it


# ---- libarena.adapters ------------------------------------------------------

def _adapters():
    return pytest.importorskip("libarena.adapters")


def test_enqueuer_recomputes_the_item_of_a_killed_worker_once():
    """The same kill as above: the epoch goes on, in order; the victim item
    is computed twice (the killed attempt and one more), every other item
    once."""
    ad = _adapters()
    n, victim = 40, 7
    ds = Probe(n, victim)
    with ad.Enqueuer(ds, workers=3, depth=10) as enq:
        killer = threading.Thread(target=ds.kill_victim, daemon=True)
        killer.start()
        got = bounded(lambda: list(enq))
        killer.join(WAIT_S)
        assert not killer.is_alive()
        assert got == [(i, i * i) for i in range(n)]
        assert ds.calls[victim] == 2
        assert [ds.calls[i] for i in range(n) if i != victim] == [1] * (n - 1)
        st = enq.stats()
        assert st["crashes"] == 1 and st["tasks_rerun"] == 1
        # The next epoch runs on the pool as it is now (the replacement in).
        assert list(enq) == got


def test_enqueuer_orders_shuffles_per_epoch_and_keeps_its_workers():
    ad = _adapters()
    n = 50
    ds = Probe(n)
    ends = []
    ds.on_epoch_end = lambda: ends.append(len(ends))
    with ad.Enqueuer(ds, workers=2, depth=4, shuffle=True, seed=7) as enq:
        pids = sorted(enq.worker_pids())
        orders = []
        for e in range(3):
            got = [x[0] for x in enq.epoch()]
            assert got == enq.order(e)
            assert sorted(got) == list(range(n))
            orders.append(got)
        assert len({tuple(o) for o in orders}) == 3, "a new order each epoch"
        assert ends == [0, 1, 2], "on_epoch_end after each complete epoch"
        assert sorted(enq.worker_pids()) == pids, "the same workers for every epoch"
        assert [ds.calls[i] for i in range(n)] == [3] * n
    # Same seed, same orders.
    with ad.Enqueuer(list(range(n)), workers=1, shuffle=True, seed=7) as again:
        assert [list(again.epoch()) for _ in range(3)] == orders


class _Watch:
    """Item i records the largest index started so far."""

    def __init__(self, n):
        self.n = n
        self.top = SharedInts(1)
        self.top[0] = -1

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i > self.top[0]:
            self.top[0] = i
        return i


def test_enqueuer_keeps_at_most_depth_items_in_flight():
    ad = _adapters()
    n, depth = 200, 5
    ds = _Watch(n)
    with ad.Enqueuer(ds, workers=3, depth=depth) as enq:
        for j, x in enumerate(enq):
            assert x == j
            # Items j+1 .. j+depth at most have been handed out.
            assert ds.top[0] <= j + depth, (j, ds.top[0])


class _Boom:
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 3:
            raise ValueError("bad item 3")
        return i


def test_enqueuer_raises_an_item_error_where_the_item_would_be():
    ad = _adapters()
    with ad.Enqueuer(_Boom(), workers=2) as enq:
        got = []
        with pytest.raises(ValueError, match="bad item 3"):
            for x in enq:
                got.append(x)
        assert got == [0, 1, 2]
        # The workers are still there: the next epoch starts.
        it = enq.epoch()
        assert next(it) == 0


class _Arrays:
    """Keras-like batches: (x, y) with x a 1 MiB float32 array."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        np = pytest.importorskip("numpy")
        return np.full((256, 1024), i, dtype=np.float32), i


def _channel_ranges():
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            if "memfd:arena-channel" in line:
                lo, hi = line.split(None, 1)[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


def test_enqueuer_arrays_arrive_without_a_copy_with_zero_copy():
    ad = _adapters()
    pytest.importorskip("numpy")
    with ad.Enqueuer(_Arrays(), workers=2, zero_copy=True) as enq:
        ranges = _channel_ranges()
        for i, (x, y) in enumerate(enq):
            assert y == i and x.shape == (256, 1024) and (x == i).all()
            lo = x.__array_interface__["data"][0]
            assert not x.flags.writeable and not x.flags.owndata
            assert any(a <= lo and lo + x.nbytes <= b for a, b in ranges), \
                "the array lies in the pool's result space"


def test_enqueuer_kept_items_do_not_stall_the_workers():
    """By default each result is copied once and its space freed: a
    consumer that keeps every item (12 MiB here) through result areas of
    2 MiB still gets them all; the arrays are its own, writable."""
    ad = _adapters()
    pytest.importorskip("numpy")
    with ad.Enqueuer(_Arrays(), workers=2, result_bytes=2 << 20) as enq:
        kept = bounded(lambda: list(enq))
        assert [y for _, y in kept] == list(range(12))
        ranges = _channel_ranges()
        for x, y in kept:
            assert (x == y).all() and x.flags.writeable
            lo = x.__array_interface__["data"][0]
            assert not any(a <= lo < b for a, b in ranges)


def test_pack_round_trip():
    ad = _adapters()
    np = pytest.importorskip("numpy")
    obj = {"x": np.arange(100000, dtype=np.int64).reshape(100, 1000), "y": [1, "a", None],
           "z": np.zeros(3, dtype=np.float16)}
    back = ad.unpack(ad.pack(obj))
    assert (back["x"] == obj["x"]).all() and back["x"].dtype == np.int64
    assert back["y"] == obj["y"] and back["z"].dtype == np.float16
    assert ad.unpack(ad.pack((1, "two"))) == (1, "two")
    with pytest.raises(ValueError):
        ad.unpack(b"garbage bytes here")


class _TorchLike:
    """A torch map-style Dataset: (tensor, label)."""

    def __len__(self):
        return 100

    def __getitem__(self, i):
        import torch
        return torch.full((3, 8, 8), float(i)), i


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_dataloader_matches_torch_and_survives_a_killed_worker():
    ad = _adapters()
    torch = pytest.importorskip("torch")
    ds = _TorchLike()
    theirs = [(x.clone(), y.clone()) for x, y in torch.utils.data.DataLoader(ds, batch_size=16)]
    with ad.DataLoader(ds, batch_size=16, num_workers=2) as dl:
        ours = list(dl)
        assert len(ours) == len(theirs) == len(dl) == 7
        for (a, b), (c, d) in zip(ours, theirs):
            assert isinstance(a, torch.Tensor) and torch.equal(a, c) and torch.equal(b, d)
        del ours
    # Shuffled epochs: every item once per epoch, a new order each time.
    with ad.DataLoader(ds, batch_size=10, shuffle=True, num_workers=2, seed=3) as dl:
        epochs = [torch.cat([y for _, y in dl]).tolist() for _ in range(2)]
        assert all(sorted(e) == list(range(100)) for e in epochs)
        assert epochs[0] != epochs[1]
    # A worker killed while building a batch: that batch is built again.
    probe = Probe(64, victim=21)
    with ad.DataLoader(probe, batch_size=8, num_workers=2) as dl:
        killer = threading.Thread(target=probe.kill_victim, daemon=True)
        killer.start()
        got = bounded(lambda: [tuple(x.tolist()) for x, _ in dl])
        killer.join(WAIT_S)
        assert [i for b in got for i in b] == list(range(64))
        # The task is the batch (items 16..23): what the killed attempt had
        # computed (16..21) is computed once more, the rest once.
        assert list(probe.calls) == [2 if 16 <= i <= 21 else 1 for i in range(64)]
