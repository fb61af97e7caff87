# SPDX-License-Identifier: MIT
"""The seed's workload on libarena, timed: 100,000 ('test_string', [1, 3, 4])
items, 5 workers running the seed's get_item (a Python function), 10 tasks in
flight, the consumer unpickling each item.  Three forms:

  stream   the seed's shape: the main thread put()s, a consumer thread get()s
  futures  the seed's own code: submit() futures through a Queue(10)
  imap     one thread

Usage: PYTHONPATH=build/python /usr/bin/python3 python/examples/seed.py [--items N] [--reps R]
Prints microseconds per item (median of the repetitions) for each form.
"""
import argparse
import queue
import statistics
import threading
import time

import libarena


def get_item(seq, idx):
    return seq[idx]


def run_stream(pool, n):
    s = pool.stream()

    def consumer():
        for _ in range(n):
            s.get()

    th = threading.Thread(target=consumer)
    t0 = time.perf_counter()
    th.start()
    for i in range(n):
        s.put(i)
    th.join()
    return time.perf_counter() - t0


def run_futures(pool, n):
    qu = queue.Queue(10)

    def run():
        for _ in range(n):
            qu.get(block=True).result()

    th = threading.Thread(target=run, daemon=True)
    t0 = time.perf_counter()
    th.start()
    for i in range(n):
        qu.put(pool.submit(i), block=True)
    th.join()
    return time.perf_counter() - t0


def run_imap(pool, n):
    t0 = time.perf_counter()
    for _ in pool.imap(range(n)):
        pass
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=5)
    a = ap.parse_args()
    arena = libarena.Arena(("test_string", [1, 3, 4]) for _ in range(a.items))
    with libarena.Pool(get_item, arena, workers=a.workers, depth=10) as pool:
        for name, fn in (("stream", run_stream), ("futures", run_futures), ("imap", run_imap)):
            times = [fn(pool, a.items) for _ in range(a.reps)]
            per = [t / a.items * 1e6 for t in times]
            print("%-8s %7.2f us/item (median of %d; range %.2f-%.2f)"
                  % (name, statistics.median(per), a.reps, min(per), max(per)))


if __name__ == "__main__":
    main()
