# SPDX-License-Identifier: MIT
"""pybench, memory and start-up:

read-all: a 1,000,000-object dataset ('test_string_i', [1, 3, 4]) and 5
forked Pool workers, each reading every item once; each worker's
Private_Dirty (smaps) before and after, the arena's shared mapping apart
(pb_common.private_dirty_split: its pages count as private dirty while one
worker alone maps them, but they are not copies).  With a list inherited by
fork, reading writes reference counts into the parent's copy-on-write pages
(pytorch#5902), so every worker ends up with its own copy of them.  The
parent calls gc.freeze() before forking, in both cases, so that a garbage
collection in a worker does not walk the parent's other objects (without it,
a collection in one worker was seen to add ~19 MiB whatever the dataset).

start: the time from Pool(5) (which forks the 5 workers) until a first
task's result is back, with 1 MiB and with 1 GiB of dataset in the
parent.  fork copies the page tables of private memory, so a Pool's start
grows with the dataset held in the parent's heap.
"""
import gc
import multiprocessing as mp
import os

from pb_common import Skipped, now, private_dirty_split, rollup, self_rss_kb

_DATA = None        # the dataset, inherited by fork
_BARRIER = None     # one task per worker


def build_objects(n):
    return [("test_string_%d" % i, [1, 3, 4]) for i in range(n)]


def _read_all(_):
    """In a worker: read every item once, report Private_Dirty around it."""
    _BARRIER.wait(timeout=60)       # every worker takes exactly one task
    before, shm_before = private_dirty_split(os.getpid())
    n = 0
    data = _DATA
    for i in range(len(data)):
        t = data[i]
        n += len(t[0]) + t[1][2]
    after, shm_after = private_dirty_split(os.getpid())
    return dict(pid=os.getpid(), checksum=n,
                private_dirty_before_kib=before, private_dirty_after_kib=after,
                shared_file_private_dirty_growth_kib=shm_after - shm_before,
                pss_after_kib=rollup(os.getpid()).get("Pss", 0))


def expected_checksum(n):
    return sum(len("test_string_%d" % i) + 4 for i in range(n))


def read_all(kind, nworkers, reader, data, n):
    """Forks a multiprocessing Pool(nworkers) over data (a list or an arena,
    inherited by fork: the same harness for both) and runs reader once per
    worker."""
    global _DATA, _BARRIER
    ctx = mp.get_context("fork")
    _DATA, _BARRIER = data, ctx.Barrier(nworkers)
    # gc.freeze(): a collection in a worker would otherwise walk (and so
    # write to) every object the parent had, whatever the dataset; frozen,
    # what remains is what reading the dataset itself writes.
    gc.collect()
    gc.freeze()
    try:
        with ctx.Pool(nworkers) as pool:
            rows = pool.map(reader, range(nworkers), chunksize=1)
    finally:
        gc.unfreeze()
        _DATA = _BARRIER = None
    want = expected_checksum(n)
    growth = [r["private_dirty_after_kib"] - r["private_dirty_before_kib"] for r in rows]
    return dict(kind=kind, workers=nworkers, items=n,
                ok=all(r["checksum"] == want for r in rows)
                and len({r["pid"] for r in rows}) == nworkers,
                worker_private_dirty_growth_kib=growth,
                total_private_dirty_growth_kib=sum(growth),
                worker_shared_file_private_dirty_kib=[
                    r["shared_file_private_dirty_growth_kib"] for r in rows],
                per_worker=rows)


def run_read_all_list(cfg):
    gc.collect()
    rss0 = self_rss_kb()
    data = build_objects(cfg.mem_items)
    out = dict(parent_dataset_rss_kib=self_rss_kb() - rss0)
    out.update(read_all("list", cfg.workers, _read_all, data, cfg.mem_items))
    del data
    gc.collect()
    return out


# ---- start time -------------------------------------------------------------

def _noop(k):
    return k


def pool_start_s(nworkers):
    """Pool(nworkers) (which forks every worker) until a first task's result
    is back, in seconds."""
    ctx = mp.get_context("fork")
    t0 = now()
    pool = ctx.Pool(nworkers)
    pool.apply_async(_noop, (0,)).get(timeout=60)
    t = (now() - t0) / 1e9
    pool.terminate()
    pool.join()
    return t


def run_start_pool(cfg):
    """multiprocessing.Pool's start with each dataset size in the heap."""
    rows = []
    for size in cfg.start_sizes:
        global _DATA
        _DATA = bytes(b"\x01") * size     # resident, like a loaded dataset
        try:
            rows.append(dict(kind="pool", dataset_bytes=size, start_s=pool_start_s(cfg.workers)))
        finally:
            _DATA = None
    return rows


def run_memory(cfg, arena_mod=None):
    """The read-all experiment and start times: the list/Pool side always,
    the arena side when the libarena module is importable."""
    out = dict(read_all=[], start=[])
    out["read_all"].append(run_read_all_list(cfg))
    out["start"].extend(run_start_pool(cfg))
    if arena_mod is None:
        out["arena_skipped"] = "libarena module not importable"
        return out
    try:
        out["read_all"].append(arena_mod.run_read_all(cfg))
        out["start"].extend(arena_mod.run_start(cfg))
    except Skipped as e:
        out["arena_skipped"] = str(e)
    return out
