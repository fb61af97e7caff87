#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""pybench: the seed's experiment in Python, with what Python users run
today side by side with libarena, in one run.

Workloads (see --help): the seed's tiny items; 4 MiB numpy batches built by
the task (the Keras/PyTorch case); workers reading every item of a
1,000,000-object dataset (Private_Dirty); a 5-worker pool's start time with
1 MiB and 1 GiB datasets.  This file: options, the run loop, goals, exit
status.  Run it with Debian's /usr/bin/python3 (numpy, torch).
"""
import argparse
import os
import platform
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from pb_common import Result, Skipped  # noqa: E402

SEED_MODES = ["floor", "copy", "manager", "pool", "pool-imap", "shm", "torch", "arena",
              "arena-futures", "arena-bytes", "arena-imap", "adapter"]
BATCH_MODES = ["pool", "shm-slots", "torch", "arena", "adapter"]
WORKLOADS = ["seed", "batches", "memory"]

EPILOG = """\
modes of the seed workload (100,000 items ('test_string', [1, 3, 4])):
  floor       no pool: the seed's Queue(10) and consumer thread alone, the
              consumer unpickling each item (what the shape itself costs)
  copy        the seed as written: apply_async(get_item, (seq, i)) pickles the
              whole sequence into every task (Pool(5), Queue(10), consumer thread)
  manager     the seed's HolderManager + ListProxy: apply_async(get_item, (holder, i))
  pool        the same shape with the sequence inherited by fork: only indices
              travel (the best plain Pool can do)
  pool-imap   that pool through Pool.imap(chunksize=1) (no depth bound)
  shm         items pickled once into multiprocessing.shared_memory (inherited
              by fork) + offsets; the worker unpickles item i
  torch       torch.utils.data.DataLoader(num_workers=5, batch_size=None,
              prefetch_factor=2, persistent_workers), when torch imports
  arena       libarena: the seed's shape with the list in an Arena and
              libarena.Pool(get_item, arena, workers=5, depth=10): the seed's
              get_item in the workers, the producer put()s indices into
              pool.stream() (depth 10 in flight), a consumer thread get()s
              and unpickles each result
  arena-futures  the seed's own code on libarena: submit(i) futures through a
              Queue(10) to the consumer thread
  arena-bytes arena-futures over an arena of the items' pickles: the worker
              returns the stored bytes, the consumer unpickles them
  arena-imap  libarena's Pool.imap over the first arena (one thread)
  adapter     libarena.adapters.Enqueuer over the seed's Sequence itself (a
              Keras user's path: no arena, the Sequence inherited by fork)
modes of the batches workload (4 MiB float32 = 64 items of 64 KiB stacked):
  pool, shm-slots, torch, arena (see bench/py/pb_batches.py), adapter
  (libarena.adapters.DataLoader over the torch row's Dataset)
memory: 5 forked workers each read every item of 1,000,000 objects: each
  worker's Private_Dirty growth with a list inherited by fork and with an
  arena; start time of a 5-worker pool with 1 MiB and 1 GiB datasets.

A peer that is not installed (torch, the libarena module) is a skipped row,
not a failure.  Exit status: 0 every mode that ran returned the right items,
1 a mode failed, 2 bad options.
"""


def count(s):
    """A positive count with an optional k/M/G suffix (powers of 1024)."""
    mul = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(s[-1:].lower(), 1)
    try:
        v = int(s[:-1] if mul > 1 else s) * mul
    except ValueError:
        raise argparse.ArgumentTypeError("not a count: %r" % s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1: %r" % s)
    return v


def names(allowed):
    def parse(s):
        got = [x for x in s.split(",") if x]
        if got == ["all"]:
            return list(allowed)
        bad = [x for x in got if x not in allowed]
        if bad or not got:
            raise argparse.ArgumentTypeError("unknown %s (from %s)" % (",".join(bad) or "''",
                                                                       ",".join(allowed)))
        return got
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pybench", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--items", type=count, default=100000, help="items of the seed's sequence (100000)")
    a("--tasks", type=count, default=100000,
      help="tasks of every seed mode but copy and manager (100000)")
    a("--copy-tasks", type=count, default=20, help="tasks of copy, ~0.1 s each (20)")
    a("--manager-tasks", type=count, default=2000, help="tasks of manager, ~2 ms each (2000)")
    a("--workers", type=count, default=5, help="worker processes (5)")
    a("--depth", type=count, default=10, help="tasks in flight, the seed's Queue(10) (10)")
    a("--batches", type=count, default=1000, help="4 MiB batches per batch mode (1000)")
    a("--batch-dataset", type=count, default=1024, help="64 KiB items of the batch dataset (1024)")
    a("--mem-items", type=count, default=1000000,
      help="objects of the read-all experiment (1000000)")
    a("--start-sizes", default="1M,1G", help="dataset sizes for the start time (1M,1G)")
    a("--workloads", type=names(WORKLOADS), default=list(WORKLOADS),
      help="from seed,batches,memory (all)")
    a("--modes", type=names(sorted(set(SEED_MODES + BATCH_MODES))), default=None,
      help="only these modes, in any workload (all)")
    a("--json", help="write the results as JSON")
    a("--csv", help="write the modes as CSV")
    a("--quick", action="store_true", help="tiny counts: a smoke run of every mode in seconds")
    cfg = p.parse_args(argv)
    try:
        cfg.start_sizes = [count(x) for x in cfg.start_sizes.split(",") if x]
    except argparse.ArgumentTypeError as e:
        p.error("--start-sizes: %s" % e)
    if cfg.workers > 64 or cfg.depth > 4096:
        p.error("--workers is at most 64, --depth at most 4096")
    if cfg.quick:
        cfg.items, cfg.tasks, cfg.copy_tasks, cfg.manager_tasks = 2000, 300, 3, 30
        cfg.batches, cfg.batch_dataset, cfg.mem_items = 12, 64, 20000
        cfg.start_sizes = [1 << 20, 8 << 20]
    cfg.copy_tasks = min(cfg.copy_tasks, cfg.tasks)
    cfg.manager_tasks = min(cfg.manager_tasks, cfg.tasks)
    return cfg


def environment():
    env = {"python": platform.python_version(), "executable": sys.executable,
           "machine": "%s, %d CPUs" % (platform.machine(), os.cpu_count()),
           "loadavg": list(os.getloadavg())}
    return env


def say(msg):
    print("pybench: " + msg, file=sys.stderr, flush=True)


def run_one(rows, wl, mode, what, fn, *args):
    """Runs one mode: a Skipped peer or an error becomes its row."""
    say("%s %s ..." % (wl, mode))
    try:
        res = fn(*args)
    except Skipped as e:
        res = Result(wl, mode, what)
        res.skipped, res.error = True, str(e)
        say("%s %s: skipped: %s" % (wl, mode, e))
    except Exception as e:
        res = Result(wl, mode, what)
        res.error = "%s: %s" % (type(e).__name__, e)
        traceback.print_exc()
    rows.append(res)
    return res


def arena_module():
    """pb_arena (the libarena rows), or the reason it cannot run.  The
    module is taken from PYTHONPATH, else from the tree's build/python
    (what `make` builds)."""
    built = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "python")
    if os.path.isdir(os.path.join(built, "libarena")) and built not in sys.path:
        import importlib.util
        if importlib.util.find_spec("libarena") is None:
            sys.path.append(built)
    try:
        import pb_arena
        pb_arena.check_available()
        return pb_arena, None
    except Skipped as e:
        return None, str(e)
    except ImportError as e:
        return None, "libarena module not importable (%s)" % e


def run_seed(cfg, rows, want):
    import pb_seed
    seq = pb_seed.build_sequence(cfg.items)
    arena, why = arena_module()
    table = [("floor", pb_seed.run_floor), ("copy", pb_seed.run_copy),
             ("manager", pb_seed.run_manager), ("pool", pb_seed.run_pool),
             ("pool-imap", lambda c, s: pb_seed.run_pool(c, s, imap=True)),
             ("shm", pb_seed.run_shm), ("torch", pb_seed.run_torch)]
    if arena:
        table += [("arena", arena.run_seed), ("arena-futures", arena.run_seed_futures),
                  ("arena-bytes", arena.run_seed_bytes),
                  ("arena-imap", arena.run_seed_imap), ("adapter", arena.run_seed_adapter)]
    for mode, fn in table:
        if want(mode):
            run_one(rows, "seed", mode, "", fn, cfg, seq)
    for mode in ("arena", "arena-futures", "arena-bytes", "arena-imap", "adapter"):
        if not arena and want(mode):
            run_one(rows, "seed", mode, "", _skip, why)


def _skip(why):
    raise Skipped(why)


def run_batches(cfg, rows, want):
    import pb_batches
    try:
        items = pb_batches.build_items(cfg.batch_dataset)
    except ImportError as e:
        for mode in BATCH_MODES:
            if want(mode):
                run_one(rows, "batches", mode, "", _skip, "numpy not importable (%s)" % e)
        return
    arena, why = arena_module()
    table = [("pool", pb_batches.run_pool), ("shm-slots", pb_batches.run_shm_slots),
             ("torch", pb_batches.run_torch)]
    if arena:
        table += [("arena", arena.run_batches), ("adapter", arena.run_batches_adapter)]
    for mode, fn in table:
        if want(mode):
            run_one(rows, "batches", mode, "", fn, cfg, items)
    for mode in ("arena", "adapter"):
        if not arena and want(mode):
            run_one(rows, "batches", mode, "", _skip, why)


def run_memory(cfg):
    import pb_memory
    arena, why = arena_module()
    say("memory: read-all and start time ...")
    mem = pb_memory.run_memory(cfg, arena)
    if why:
        mem["arena_skipped"] = why
    return mem


def main(argv=None):
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    env = environment()
    rows, mem = [], None
    want = (lambda m: True) if cfg.modes is None else (lambda m: m in cfg.modes)
    if "seed" in cfg.workloads:
        run_seed(cfg, rows, want)
    if "batches" in cfg.workloads:
        run_batches(cfg, rows, want)
    failed_memory = None
    if "memory" in cfg.workloads:
        try:
            mem = run_memory(cfg)
        except Exception as e:
            traceback.print_exc()
            failed_memory = "%s: %s" % (type(e).__name__, e)
            mem = {"error": failed_memory, "read_all": [], "start": []}
    if "torch" in sys.modules:
        env["torch"] = sys.modules["torch"].__version__
    import pb_goals
    goals = pb_goals.evaluate(rows, mem)
    import pb_report
    pb_report.table(sys.stdout, cfg, rows, env)
    if mem and not failed_memory:
        pb_report.memory_table(sys.stdout, mem)
    pb_goals.print_goals(sys.stdout, goals)
    if cfg.json:
        pb_report.to_json(cfg.json, cfg, rows, mem, env, goals)
    if cfg.csv:
        pb_report.to_csv(cfg.csv, cfg, rows)
    bad = [r for r in rows if not r.ok and not r.skipped]
    if mem and not failed_memory:
        bad += [r for r in mem["read_all"] if not r["ok"]]
    return 1 if bad or failed_memory else 0


if __name__ == "__main__":
    sys.exit(main())
