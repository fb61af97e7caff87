# SPDX-License-Identifier: MIT
"""pybench, the Keras/PyTorch workload: a task builds a 4 MiB batch (a
float32 array of shape (64, 16384)) by stacking 64 items of 64 KiB from the
dataset, and the consumer takes the batches in order.

Item k is a float32 vector of 16,384 elements all equal to k; batch b stacks
items (64 b + j) mod count, j = 0..63.  The consumer checks column 0 of each
batch (it does not read the rest: what it would do with a batch is not the
transport's cost) and samples its own RSS every 100 batches.

pool: Keras' shape (apply_async, Queue(10), consumer thread), items
inherited by fork, the batch pickled back through the Pool's pipe.
shm-slots: the best plain Python can do: the worker stacks into one of
depth + 2 slots of a shared_memory segment and returns the slot's number;
the consumer reads the slot in place (a numpy view, no copy) and hands it
back.
torch: DataLoader(batch_size=64 via a batch sampler, num_workers=5,
prefetch_factor=2, persistent workers): default_collate stacks the items in
the worker straight into shared memory (its no-extra-copy path).
"""
import multiprocessing as mp
import queue
import threading

from pb_common import (CpuWatch, Result, RssSampler, STALL_S, latencies, now,
                       read_memory, seed_shape)
from pb_seed import dataloader_run

ITEM_ELEMS = 16384          # 64 KiB of float32
BATCH_ITEMS = 64            # 4 MiB a batch
RSS_EVERY = 100   # at most; --batches / 10 for short runs


def rss_every(n):
    return max(1, min(RSS_EVERY, n // 10))

_ITEMS = None       # the dataset (a list of arrays), inherited by fork
_SLOTS = None       # shm-slots: the segment's buffer, inherited by fork


def build_items(count):
    import numpy as np
    return [np.full(ITEM_ELEMS, k, dtype=np.float32) for k in range(count)]


def batch_indices(b, count):
    return [(b * BATCH_ITEMS + j) % count for j in range(BATCH_ITEMS)]


def make_checker(count):
    import numpy as np
    cols = {}

    def check(b, batch):
        key = b % count
        want = cols.get(key)
        if want is None:
            want = cols[key] = np.array(batch_indices(b, count), dtype=np.float32)
        a = np.asarray(batch)
        return a.shape == (BATCH_ITEMS, ITEM_ELEMS) and bool((a[:, 0] == want).all())
    return check


def build_batch(b):
    import numpy as np
    n = len(_ITEMS)
    return np.stack([_ITEMS[i] for i in batch_indices(b, n)])


def build_batch_into_slot(b, slot):
    import numpy as np
    n = len(_ITEMS)
    out = np.ndarray((BATCH_ITEMS, ITEM_ELEMS), np.float32, buffer=_SLOTS,
                     offset=slot * BATCH_ITEMS * ITEM_ELEMS * 4)
    np.stack([_ITEMS[i] for i in batch_indices(b, n)], out=out)
    del out
    return slot


def _result(mode, what):
    return Result("batches", mode, what)


def _finish(res):
    res.ok = res.bad_items == 0
    if not res.ok:
        res.error = "%d wrong batches" % res.bad_items
    return res


def run_pool(cfg, items):
    """Keras' OrderedEnqueuer shape: apply_async + Queue(depth) + consumer."""
    global _ITEMS
    _ITEMS = items
    res = _result("pool", "Keras' shape: apply_async(build_batch, (b,)), Queue(%d), consumer "
                  "thread; items inherited by fork, batch pickled back" % cfg.depth)
    check = make_checker(len(items))
    rss = RssSampler(cfg.batches, rss_every(cfg.batches))

    def checked(b, batch):
        ok = check(b, batch)
        rss.sample(b)
        return ok
    t0 = now()
    pool = mp.get_context("fork").Pool(cfg.workers)
    try:
        for r in [pool.apply_async(build_batch, (b,)) for b in range(cfg.workers)]:
            r.get(timeout=60)
        res.setup_ns = now() - t0
        pids = [p.pid for p in pool._pool]
        cpu = CpuWatch(pids)
        seed_shape(pool, build_batch, lambda b: (b,), cfg.batches, cfg.depth, checked, res)
        cpu.stop(res)
        read_memory(res, pids)
        rss.store(res)
    finally:
        pool.terminate()
        pool.join()
        _ITEMS = None
    return _finish(res)


def run_shm_slots(cfg, items):
    """Workers stack into shared_memory slots; the consumer reads in place."""
    import numpy as np
    from multiprocessing import shared_memory
    global _ITEMS, _SLOTS
    nslots = cfg.depth + 2
    slot_bytes = BATCH_ITEMS * ITEM_ELEMS * 4
    res = _result("shm-slots", "%d slots of a shared_memory segment: the worker stacks into a "
                  "free slot, the consumer reads it in place and frees it" % nslots)
    check = make_checker(len(items))
    shm = shared_memory.SharedMemory(create=True, size=nslots * slot_bytes)
    _ITEMS, _SLOTS = items, shm.buf
    free = queue.Queue()
    for s in range(nslots):
        free.put(s)
    qu = queue.Queue(cfg.depth)
    n = cfg.batches
    submit, done, failure = [0] * n, [0] * n, []
    rss = RssSampler(n, rss_every(n))

    def consume():
        try:
            bad = 0
            for b in range(n):
                slot = qu.get().get(timeout=STALL_S)
                done[b] = now()
                view = np.ndarray((BATCH_ITEMS, ITEM_ELEMS), np.float32, buffer=shm.buf,
                                  offset=slot * slot_bytes)
                if not check(b, view):
                    bad += 1
                del view         # a live view would make shm.close() fail
                free.put(slot)
                rss.sample(b)
            res.bad_items = bad
        except BaseException as e:
            failure.append(e)
            free.put(-1)

    t0 = now()
    pool = mp.get_context("fork").Pool(cfg.workers)
    try:
        warm = [pool.apply_async(build_batch_into_slot, (b, b % nslots))
                for b in range(cfg.workers)]
        for r in warm:
            r.get(timeout=60)
        res.setup_ns = now() - t0
        pids = [p.pid for p in pool._pool]
        cpu = CpuWatch(pids)
        th = threading.Thread(target=consume, daemon=True)
        th.start()
        st = now()
        for b in range(n):
            submit[b] = now()
            slot = free.get(timeout=STALL_S)
            if slot < 0 or failure:
                break
            qu.put(pool.apply_async(build_batch_into_slot, (b, slot)), timeout=STALL_S)
        th.join()
        end = now()
        if failure:
            raise failure[0]
        res.tasks, res.total_ns = n, end - st
        res.lat = latencies(submit, done, n)
        cpu.stop(res)
        read_memory(res, pids)
        rss.store(res)
    finally:
        pool.terminate()
        pool.join()
        _ITEMS = _SLOTS = None
        shm.close()
        shm.unlink()
    return _finish(res)


class ItemDataset:
    """A map-style Dataset of the items (numpy arrays, inherited by fork)."""

    def __init__(self, items):
        self.items = items

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


def run_torch(cfg, items):
    res = _result("torch", "DataLoader(batch of %d items, num_workers=%d, prefetch_factor=%d, "
                  "persistent_workers): default_collate stacks into shared memory"
                  % (BATCH_ITEMS, cfg.workers, max(1, cfg.depth // cfg.workers)))
    dataloader_run(cfg, res, ItemDataset(items), cfg.batches, make_checker(len(items)),
                   batch=BATCH_ITEMS, count=len(items), rss_every=rss_every(cfg.batches))
    return _finish(res)
