# SPDX-License-Identifier: MIT
"""pybench, the seed's workload: 100,000 items ('test_string', [1, 3, 4]),
5 workers, depth 10, every way a Python user shares the sequence today.

copy, manager: the seed's program as written (its Sequence, Holder and
HolderManager, Pool(5), Queue(10), a consumer thread, apply_async).
pool: the same program with the sequence inherited by fork (a module global
set before Pool() starts): only indices travel, the best plain Pool can do.
pool-imap: that pool through Pool.imap (one thread; imap has no depth bound).
shm: every item pickled once into a multiprocessing.shared_memory segment
(inherited by fork) plus an offset table; a worker unpickles item i.
torch: torch.utils.data.DataLoader(num_workers=5, batch_size=None,
prefetch_factor=2: depth 10, persistent workers) over a map-style Dataset.

Task functions live at module level so that Pool pickles them by name.
"""
import multiprocessing as mp
import pickle
import struct

from pb_common import (CpuWatch, Result, Skipped, consume_ordered, now,
                       read_memory, seed_shape, timed_iter)

EXPECTED = ("test_string", [1, 3, 4])


# ---- the seed's own code -----------------------------------------------------

class Sequence():
    def __init__(self, my_list):
        self.my_list = my_list

    def __getitem__(self, item):
        return self.my_list[item]

    def __len__(self):
        return len(self.my_list)


def get_item(seq, idx):
    return seq[idx]


class Holder:
    def __init__(self, seq):
        self.seq = seq

    def __getitem__(self, item):
        return self.seq[item]

    def __len__(self):
        return len(self.seq)


def _holder_manager():
    from multiprocessing.managers import BaseManager, ListProxy

    class HolderManager(BaseManager):
        pass
    HolderManager.register("Holder", Holder, ListProxy)
    return HolderManager


def build_sequence(items):
    files = ["test_string"] * items
    huge_list = ((x, [1, 3, 4]) for x in files)
    return Sequence(list(huge_list))


def check_item(i, acc):
    # tuple(): a DataLoader's default_convert turns tuples into lists.
    return tuple(acc) == EXPECTED


# ---- what forked workers inherit ----------------------------------------------

_SEQ = None        # pool: the Sequence, inherited by fork
_SHM_BUF = None    # shm: the segment's buffer, inherited by fork
_SHM_OFF = None    # shm: offsets of the pickled items (count + 1 of them)


def get_item_inherited(idx):
    return _SEQ[idx]


def get_item_shm(idx):
    lo, hi = _SHM_OFF.unpack_from(_SHM_BUF, idx * 8)[0], \
        _SHM_OFF.unpack_from(_SHM_BUF, idx * 8 + 8)[0]
    return pickle.loads(_SHM_BUF[lo:hi])


def _warm(pool, func, args_of, n):
    for r in [pool.apply_async(func, args_of(i)) for i in range(n)]:
        r.get(timeout=60)


def _pool_mode(cfg, mode, what, make_args, func, ntasks, setup=None, teardown=None,
               seq_mapping=None, imap=False):
    """Runs the seed's shape (or imap) over a fresh fork Pool(workers)."""
    res = Result("seed", mode, what)
    ctx = mp.get_context("fork")
    t0 = now()
    server = setup() if setup else None
    args_of = make_args()
    pool = ctx.Pool(cfg.workers)
    try:
        _warm(pool, func, args_of, cfg.workers)
        res.setup_ns = now() - t0
        pids = [p.pid for p in pool._pool]
        cpu = CpuWatch(pids, server)
        if imap:
            submit = [0] * ntasks
            st = now()
            it = pool.imap(func, timed_iter(range(ntasks), submit), chunksize=1)
            consume_ordered(_Stalling(it), ntasks, check_item, res, submit, st)
        else:
            seed_shape(pool, func, args_of, ntasks, cfg.depth, check_item, res)
        cpu.stop(res)
        read_memory(res, pids, server, seq_mapping() if seq_mapping else None)
        res.ok = res.bad_items == 0
        if not res.ok:
            res.error = "%d wrong items" % res.bad_items
    finally:
        pool.terminate()
        pool.join()
        if teardown:
            teardown()
    return res


class _Stalling:
    """next() of an IMapIterator with the stall bound."""

    def __init__(self, it):
        self.it = it

    def __next__(self):
        return self.it.next(timeout=30)


def run_copy(cfg, seq):
    return _pool_mode(cfg, "copy", "seed: apply_async(get_item, (seq, i)) pickles seq per task",
                      lambda: (lambda i: (seq, i)), get_item, cfg.copy_tasks)


def run_manager(cfg, seq):
    box = {}

    def setup():
        box["m"] = _holder_manager()(ctx=mp.get_context("fork"))
        box["m"].start()
        box["holder"] = box["m"].Holder(seq)
        return box["m"]._process.pid

    def teardown():
        box["m"].shutdown()

    return _pool_mode(cfg, "manager",
                      "seed: HolderManager + ListProxy, apply_async(get_item, (holder, i))",
                      lambda: (lambda i: (box["holder"], i)), get_item, cfg.manager_tasks,
                      setup=setup, teardown=teardown)


def run_pool(cfg, seq, imap=False):
    global _SEQ
    _SEQ = seq

    def teardown():
        global _SEQ
        _SEQ = None
    if imap:
        return _pool_mode(cfg, "pool-imap",
                          "Pool.imap(get_item, range(n)), sequence inherited by fork",
                          lambda: (lambda i: (i,)), get_item_inherited, cfg.tasks,
                          teardown=teardown, imap=True)
    return _pool_mode(cfg, "pool",
                      "seed's shape, sequence inherited by fork, apply_async(get_item, (i,))",
                      lambda: (lambda i: (i,)), get_item_inherited, cfg.tasks, teardown=teardown)


def run_shm(cfg, seq):
    from multiprocessing import shared_memory
    box = {}

    def setup():
        global _SHM_BUF, _SHM_OFF
        off = struct.Struct("<Q")
        blobs = [pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL) for x in seq.my_list]
        n = len(blobs)
        pos = 8 * (n + 1)
        shm = shared_memory.SharedMemory(create=True, size=pos + sum(len(b) for b in blobs))
        buf = shm.buf
        for k, b in enumerate(blobs):
            off.pack_into(buf, 8 * k, pos)
            buf[pos:pos + len(b)] = b
            pos += len(b)
        off.pack_into(buf, 8 * n, pos)
        box["shm"] = shm
        _SHM_BUF, _SHM_OFF = buf, off
        return None

    def teardown():
        global _SHM_BUF, _SHM_OFF
        _SHM_BUF = _SHM_OFF = None
        if "shm" in box:
            box["shm"].close()
            box["shm"].unlink()

    # The segment is mapped from /dev/shm/<name>: that mapping's Pss is what
    # a worker pays for the dataset itself.
    return _pool_mode(cfg, "shm", "items pickled once into a shared_memory segment "
                      "(inherited by fork); a worker unpickles item i",
                      lambda: (lambda i: (i,)), get_item_shm, cfg.tasks,
                      setup=setup, teardown=teardown,
                      seq_mapping=lambda: "/dev/shm/" + box["shm"].name.lstrip("/"))


# ---- torch.utils.data.DataLoader ---------------------------------------------

def import_torch():
    """torch, or Skipped with the reason (a missing peer is not a failure)."""
    try:
        import torch
        import torch.utils.data  # noqa: F401
    except Exception as e:       # ImportError, or a broken install
        raise Skipped("torch not importable (%s: %s)" % (type(e).__name__, e))
    return torch


class TimedSampler:
    """Epoch 0 yields `warm` indices (workers start, outside the timed run),
    epoch 1 the n timed ones, stamping each index's submit time; a
    DataLoader pulls an index when it hands it to a worker."""

    def __init__(self, warm, n, stamps, batch=0, count=0):
        self.sizes = [warm, n]
        self.stamps = stamps
        self.batch = batch      # > 0: yield lists of this many item indices
        self.count = count      # items in the dataset (batch indices wrap)
        self.epoch = 0

    def __len__(self):
        return self.sizes[min(self.epoch, 1)]

    def __iter__(self):
        n = self.sizes[min(self.epoch, 1)]
        timed = self.epoch >= 1
        self.epoch += 1
        for k in range(n):
            if timed:
                self.stamps[k] = now()
            if self.batch:
                b = self.batch
                yield [(k * b + j) % self.count for j in range(b)]
            else:
                yield k


def dataloader_run(cfg, res, dataset, ntasks, check, batch=0, count=0, rss_every=0):
    """DataLoader(num_workers=workers, prefetch_factor=depth/workers,
    persistent_workers) over dataset; one warm-up epoch, one timed epoch.
    batch > 0: batch_sampler of that many items per task (default_collate
    stacks them in the worker, into shared memory)."""
    torch = import_torch()
    import warnings
    from torch.utils.data import DataLoader
    # "5 workers but 2 CPUs" is the point of the comparison, not news.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    submit = [0] * ntasks
    sampler = TimedSampler(cfg.workers, ntasks, submit, batch, count)
    prefetch = max(1, cfg.depth // cfg.workers)
    kw = dict(num_workers=cfg.workers, persistent_workers=True,
              prefetch_factor=prefetch, multiprocessing_context=mp.get_context("fork"),
              timeout=30)
    if batch:
        dl = DataLoader(dataset, batch_sampler=sampler, **kw)
    else:
        dl = DataLoader(dataset, batch_size=None, sampler=sampler, **kw)
    t0 = now()
    for _ in dl:        # warm-up epoch: the workers start
        pass
    res.setup_ns = now() - t0
    pids = [w.pid for w in dl._iterator._workers]   # persistent: kept
    cpu = CpuWatch(pids)
    st = now()
    it = iter(dl)       # the timed epoch: prefetching starts here
    consume_ordered(it, ntasks, check, res, submit, st, rss_every)
    cpu.stop(res)
    read_memory(res, pids)
    res.notes.append("torch %s" % torch.__version__)
    # Drain the epoch so the workers stop cleanly, then let them go.
    for _ in it:
        pass
    it._shutdown_workers()
    return res


class SeqDataset:
    """A map-style Dataset over the seed's Sequence (torch's Dataset is
    duck-typed for map-style use: __getitem__ and __len__)."""

    def __init__(self, seq):
        self.seq = seq

    def __getitem__(self, i):
        return self.seq[i]

    def __len__(self):
        return len(self.seq)


def run_torch(cfg, seq):
    res = Result("seed", "torch", "DataLoader(num_workers=%d, batch_size=None, prefetch_factor=%d, "
                 "persistent_workers) over a map-style Dataset"
                 % (cfg.workers, max(1, cfg.depth // cfg.workers)))
    dataloader_run(cfg, res, SeqDataset(seq), cfg.tasks, check_item)
    res.ok = res.bad_items == 0
    if not res.ok:
        res.error = "%d wrong items" % res.bad_items
    return res


# ---- the floor: the seed's shape with no pool at all --------------------------

class _Ready:
    """An AsyncResult that is already there."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def get(self, timeout=None):
        return self.value


class _NoPool:
    """apply_async that runs nothing: returns the item's pickle at once."""

    def __init__(self, blobs):
        self.blobs = blobs

    def apply_async(self, func, args):
        return _Ready(self.blobs[args[0] % len(self.blobs)])


def run_floor(cfg, seq):
    """What the seed's shape costs in Python before any transport: the
    producer puts each item's pickle in Queue(depth), the consumer thread
    takes it and unpickles it.  No pool can deliver below this in that shape."""
    res = Result("seed", "floor", "no pool: the producer puts item i's pickle in Queue(%d), "
                 "the consumer thread unpickles it" % cfg.depth)
    blobs = [pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL) for x in seq.my_list[:1024]]
    cpu = CpuWatch([])
    seed_shape(_NoPool(blobs), None, lambda i: (i,), cfg.tasks, cfg.depth,
               lambda i, b: check_item(i, pickle.loads(b)), res)
    cpu.stop(res)
    res.ok = res.bad_items == 0
    if not res.ok:
        res.error = "%d wrong items" % res.bad_items
    return res
