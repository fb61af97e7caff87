# SPDX-License-Identifier: MIT
"""pybench, the libarena rows: the same programs on the libarena module.

seed workload:
  arena        the seed's shape on libarena: the list goes into
               libarena.Arena (each item pickled once, at build time), Pool(5)
               becomes libarena.Pool(get_item, arena, workers=5, depth=10).
               The seed's get_item runs in the workers (it unpickles item i
               from the arena; its result is pickled back); the producer
               put()s each index into pool.stream() (blocking while 10 are in
               flight: the seed's Queue(10)), a consumer thread get()s the
               results in order and so unpickles each.
  arena-futures the seed's own code on libarena: apply_async(get_item,
               (seq, i)) becomes submit(i), the futures go through a
               Queue(10) to the consumer thread.
  arena-bytes  arena-futures over an arena of the items' pickles (kind
               'bytes'): get_item returns the stored bytes (raw, no pickling
               in the worker) and the consumer unpickles them.
  arena-imap   Pool.imap over the 'pickle' arena: one thread, ordered, depth 10.
batches: the task stacks 64 arena items (zero-copy read-only arrays) into a
  4 MiB batch; the consumer receives a read-only view of the worker's result
  space (no copy) and drops it after checking.  No copy is verified for
  every batch: its data pointer lies inside the pool's channel mapping
  (memfd:arena-channel in /proc/self/maps), the array owns no data and is
  read-only.
memory: the 1,000,000 objects in an arena (the list dropped before the
  workers start), the same 5 forked readers as the list's (pb_memory), each
  reading every item; start time of a 5-worker libarena.Pool over a 1 MiB
  and a 1 GiB arena, until its first result.
"""
import gc
import pickle

from pb_common import (STALL_S, CpuWatch, Result, RssSampler, Skipped, latencies,
                       now, producer_consumer, queue_shape, read_memory)

# The arena's memfd is named so that its mapping can be found in smaps.
SEED_NAME = "pybench-seed"
CHANNEL_MAPPING = "memfd:arena-channel"


def check_available():
    try:
        import libarena
    except ImportError as e:
        raise Skipped("libarena module not importable (%s)" % e)
    for attr in ("Arena", "Pool"):
        if not hasattr(libarena, attr):
            raise Skipped("libarena module without %s" % attr)


def _lib():
    import libarena
    return libarena


# ---- the seed workload -------------------------------------------------------

def get_item(seq, idx):
    """The seed's get_item, unchanged (here seq is the arena)."""
    return seq[idx]


def _loads_check(i, acc):
    from pb_seed import check_item
    return check_item(i, pickle.loads(acc))


def _warm(pool, n):
    """n first tasks, each result dropped as it arrives: a future keeps its
    result alive, and a live result view holds its worker's result space
    (n 4 MiB results held at once may not fit in one worker's area, and
    the pool may give every task to one worker: that would wait for ever)."""
    for x in pool.imap(range(n)):
        del x


def _seed_pool(cfg, arena, what, mode, body):
    res = Result("seed", mode, what)
    lib = _lib()
    t0 = now()
    pool = lib.Pool(get_item, arena, workers=cfg.workers, depth=cfg.depth)
    try:
        _warm(pool, cfg.workers)
        res.setup_ns = now() - t0 + res.setup_ns
        pids = [p for p in pool.worker_pids() if p]
        cpu = CpuWatch(pids)
        body(pool, res)
        cpu.stop(res)
        read_memory(res, pids, seq_mapping="memfd:" + SEED_NAME)
        st = pool.stats()
        res.notes.append("pool stats: %s" % {k: st[k] for k in sorted(st)
                                             if k in ("crashes", "tasks_rerun", "futex_waits",
                                                      "futex_wakes")})
        res.ok = res.bad_items == 0
        if not res.ok:
            res.error = "%d wrong items" % res.bad_items
    finally:
        pool.close(cancel=True)
        arena.close()
    return res


def _seed_shape(pool, ntasks, depth, check, res):
    """The seed's program: producer submits, Queue(depth) of futures, a
    consumer thread takes them in order."""
    queue_shape(ntasks, depth, pool.submit, lambda f: f.result(timeout=STALL_S), check, res)


def _build_seed_arena(seq, kind):
    lib = _lib()
    t0 = now()
    if kind == "pickle":
        arena = lib.Arena(seq.my_list, kind="pickle", name=SEED_NAME)
    else:
        arena = lib.Arena((pickle.dumps(x, protocol=5) for x in seq.my_list), kind="bytes",
                          name=SEED_NAME)
    return arena, now() - t0


def _stream_shape(pool, ntasks, check, res):
    """The seed's shape with the module's stream: the producer put()s item
    indices (blocking while depth tasks are in flight: the pool's depth is
    the seed's Queue(10)), a consumer thread get()s the results in order."""
    s = pool.stream()
    producer_consumer(ntasks, lambda i, failure: s.put(i),
                      lambda: s.get(timeout=STALL_S), check, res)


def run_seed(cfg, seq):
    from pb_seed import check_item
    arena, build_ns = _build_seed_arena(seq, "pickle")
    if not hasattr(lib_pool_type(), "stream"):
        arena.close()
        raise Skipped("this libarena module has no Pool.stream")

    def body(pool, res):
        res.setup_ns = build_ns
        _stream_shape(pool, cfg.tasks, check_item, res)
    return _seed_pool(cfg, arena, "the seed's shape on libarena: Arena(list), Pool(get_item, arena, "
                      "workers=%d, depth=%d); the producer put()s i into pool.stream(), a "
                      "consumer thread get()s and unpickles" % (cfg.workers, cfg.depth),
                      "arena", body)


def lib_pool_type():
    return _lib().Pool


def run_seed_futures(cfg, seq):
    from pb_seed import check_item
    arena, build_ns = _build_seed_arena(seq, "pickle")

    def body(pool, res):
        res.setup_ns = build_ns
        _seed_shape(pool, cfg.tasks, cfg.depth, check_item, res)
    return _seed_pool(cfg, arena, "the seed's own code on libarena: submit(i) futures into "
                      "Queue(%d), a consumer thread waits for each" % cfg.depth,
                      "arena-futures", body)


def run_seed_bytes(cfg, seq):
    arena, build_ns = _build_seed_arena(seq, "bytes")

    def body(pool, res):
        res.setup_ns = build_ns
        _seed_shape(pool, cfg.tasks, cfg.depth, _loads_check, res)
    return _seed_pool(cfg, arena, "as arena over the items' pickles (kind 'bytes'): get_item "
                      "returns the stored bytes, the consumer unpickles", "arena-bytes", body)


def run_seed_imap(cfg, seq):
    from pb_seed import check_item
    arena, build_ns = _build_seed_arena(seq, "pickle")

    def body(pool, res):
        res.setup_ns = build_ns
        n = cfg.tasks
        done, bad = [0] * n, 0
        st = now()
        # range(n) as a user writes it (the module submits a range of
        # consecutive items as a range): no per-task submit time is seen, so
        # the latency columns stay empty.
        for i, acc in enumerate(pool.imap(range(n))):
            done[i] = now()
            if not check_item(i, acc):
                bad += 1
        end = now()
        res.tasks, res.total_ns, res.bad_items = n, end - st, bad
    return _seed_pool(cfg, arena, "Pool.imap(range(n)) over the 'pickle' arena, one thread, "
                      "depth %d" % cfg.depth, "arena-imap", body)


# ---- the batches workload ----------------------------------------------------

def build_batch(arena, b):
    import numpy as np
    from pb_batches import batch_indices
    return np.stack([arena[i] for i in batch_indices(b, len(arena))])


def channel_ranges():
    """Address ranges of this process's mappings of pool channels."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            if CHANNEL_MAPPING in line:
                lo, hi = line.split(None, 1)[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


def in_place(a, ranges):
    """True when ndarray a is a read-only view whose bytes all lie in one of
    the channel mappings: the consumer did not copy it."""
    lo = a.__array_interface__["data"][0]
    hi = lo + a.nbytes
    return (not a.flags.owndata and not a.flags.writeable
            and any(r0 <= lo and hi <= r1 for r0, r1 in ranges))


def run_batches(cfg, items):
    from pb_batches import BATCH_ITEMS, ITEM_ELEMS, make_checker, rss_every
    lib = _lib()
    res = Result("batches", "arena", "Pool(build_batch, Arena(items)): the task stacks 64 "
                 "zero-copy arena items, the consumer gets a read-only view of the result "
                 "space (imap, depth %d)" % cfg.depth)
    batch_bytes = BATCH_ITEMS * ITEM_ELEMS * 4
    t0 = now()
    arena = lib.Arena(items, kind="ndarray", name="pybench-batches")
    check = make_checker(len(items))
    n = cfg.batches
    rss = RssSampler(n, rss_every(n))
    # Room for a few batches a worker: a worker whose area is full waits for
    # the consumer to drop a view, like a full queue.
    # view_threshold: zero-copy is opt-in (each batch is dropped at once).
    pool = lib.Pool(build_batch, arena, workers=cfg.workers, depth=cfg.depth,
                    result_bytes=4 * (batch_bytes + 65536), view_threshold=65536)
    try:
        _warm(pool, cfg.workers)
        res.setup_ns = now() - t0
        ranges = channel_ranges()
        pids = [p for p in pool.worker_pids() if p]
        cpu = CpuWatch(pids)
        submit, done = [0] * n, [0] * n
        bad = copied = 0
        st = now()
        for b, batch in enumerate(pool.imap(_stamped(range(n), submit))):
            done[b] = now()
            if not check(b, batch):
                bad += 1
            if not in_place(batch, ranges):
                copied += 1
            del batch
            rss.sample(b)
        end = now()
        res.tasks, res.total_ns, res.bad_items = n, end - st, bad
        res.lat = latencies(submit, done, n)
        cpu.stop(res)
        read_memory(res, pids, seq_mapping="memfd:pybench-batches")
        rss.store(res)
        res.notes.append("no-copy: %s (%d of %d batches read in place: data inside the pool's "
                         "channel mapping %s, read-only, owning no data)"
                         % ("yes" if copied == 0 else "NO", n - copied, n, CHANNEL_MAPPING))
        res.ok = bad == 0 and copied == 0
        if not res.ok:
            res.error = "%d wrong batches, %d copied" % (bad, copied)
    finally:
        pool.close(cancel=True)
        arena.close()
    return res


def _stamped(indices, stamps):
    """imap pulls indices as it submits them: each pull is a submit time."""
    for k, i in enumerate(indices):
        stamps[k] = now()
        yield i


# ---- memory: read every item; start time -------------------------------------

def run_read_all(cfg):
    """The read-all experiment over an arena: the same harness as the list's
    (pb_memory.read_all: 5 forked workers, one task each), the dataset an
    Arena of the objects (pickled once), the list dropped before the fork."""
    import pb_memory
    lib = _lib()
    gc.collect()
    data = pb_memory.build_objects(cfg.mem_items)
    arena = lib.Arena(data, kind="pickle", name="pybench-objects")
    del data            # the README's advice: build the arena, drop the list
    gc.collect()
    try:
        out = dict(arena_kib=arena.nbytes // 1024)
        out.update(pb_memory.read_all("arena", cfg.workers, pb_memory._read_all, arena,
                                      cfg.mem_items))
    finally:
        arena.close()
    return out


def run_start(cfg):
    """libarena.Pool(workers) until a first task's result, per arena size."""
    lib = _lib()
    rows = []
    for size in cfg.start_sizes:
        chunk = min(size, 1 << 20)
        arena = lib.Arena((b"\x01" * chunk for _ in range(max(1, size // chunk))), kind="bytes")
        try:
            t0 = now()
            pool = lib.Pool(_first_byte, arena, workers=cfg.workers, depth=cfg.depth)
            pool.submit(0).result(timeout=60)
            t = (now() - t0) / 1e9
            pool.close()
            rows.append(dict(kind="arena", dataset_bytes=size, arena_bytes=arena.nbytes,
                             start_s=t))
        finally:
            arena.close()
    return rows


def _first_byte(arena, i):
    return arena[i][0]


# ---- the adapters (libarena.adapters) ----------------------------------------

def _adapters():
    try:
        import libarena.adapters as ad
    except ImportError as e:
        raise Skipped("libarena.adapters not importable (%s)" % e)
    return ad


def run_seed_adapter(cfg, seq):
    """A Keras user's path: Enqueuer over the seed's Sequence itself
    (inherited by fork, no arena), seq[i] in the workers, in order."""
    from pb_seed import check_item
    ad = _adapters()
    res = Result("seed", "adapter", "libarena.adapters.Enqueuer(seq, workers=%d, depth=%d): the "
                 "Sequence inherited by fork, seq[i] packed in the worker, unpacked here"
                 % (cfg.workers, cfg.depth))
    t0 = now()
    n = cfg.tasks
    with ad.Enqueuer(_Head(seq, n), workers=cfg.workers, depth=cfg.depth) as enq:
        res.setup_ns = now() - t0
        pids = [p for p in enq.worker_pids() if p]
        cpu = CpuWatch(pids)
        bad = 0
        st = now()
        for i, acc in enumerate(enq):
            if not check_item(i, acc):
                bad += 1
        end = now()
        res.tasks, res.total_ns, res.bad_items = n, end - st, bad
        cpu.stop(res)
        read_memory(res, pids)
    res.ok = bad == 0
    if not res.ok:
        res.error = "%d wrong items" % bad
    return res


class _Head:
    """The first n items of seq (an epoch of n tasks)."""

    def __init__(self, seq, n):
        self.seq, self.n = seq, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.seq[i % len(self.seq)]


def run_batches_adapter(cfg, items):
    """A PyTorch user's path: libarena.adapters.DataLoader over the same
    map-style Dataset as the torch row (batch_size=64, default_collate in
    the workers), tensors back with no copy on this side."""
    from pb_batches import BATCH_ITEMS, ItemDataset, make_checker, rss_every
    from pb_seed import import_torch
    import_torch()      # the adapter collates with torch's default_collate
    ad = _adapters()
    from pb_common import RssSampler
    res = Result("batches", "adapter", "libarena.adapters.DataLoader(batch_size=%d, "
                 "num_workers=%d, "
                 "prefetch_factor=%d): default_collate in the workers, tensors back unpacked "
                 "in place" % (BATCH_ITEMS, cfg.workers, max(1, cfg.depth // cfg.workers)))
    n = cfg.batches
    count = len(items)
    check = make_checker(count)
    rss = RssSampler(n, rss_every(n))
    # One epoch of n batches over item indices that wrap, as the torch row's
    # batch sampler does (an epoch boundary every 16 batches would drain the
    # pipeline each time).
    t0 = now()
    dl = ad.DataLoader(ItemDataset(_Head(items, n * BATCH_ITEMS)), batch_size=BATCH_ITEMS,
                       num_workers=cfg.workers, prefetch_factor=max(1, cfg.depth // cfg.workers),
                       result_bytes=4 * ((4 << 20) + (1 << 16)))
    try:
        res.setup_ns = now() - t0
        pids = [p for p in dl.worker_pids() if p]
        cpu = CpuWatch(pids)
        bad = 0
        st = now()
        for b, x in enumerate(dl):
            if not check(b, x):
                bad += 1
            del x
            rss.sample(b)
        end = now()
        res.tasks, res.total_ns, res.bad_items = n, end - st, bad
        cpu.stop(res)
        read_memory(res, pids)
        rss.store(res)
    finally:
        dl.close()
    res.ok = bad == 0
    if not res.ok:
        res.error = "%d wrong batches" % bad
    return res
