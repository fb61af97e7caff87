# SPDX-License-Identifier: MIT
"""pybench: what every mode shares -- clocks, the per-mode result record,
latency statistics, CPU time and memory of live processes (/proc), and the
seed's producer/consumer shape around a multiprocessing.Pool.

Only the standard library here: numpy and torch are imported by the modes
that need them, so a missing peer is a skipped row, not a crash.
"""
import os
import queue
import resource
import threading
import time

now = time.perf_counter_ns

# A run that sees no result for this long is a hang, and fails (arena-bench's
# BENCH_STALL_NS).
STALL_S = 30.0

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Skipped(Exception):
    """A peer that is not installed here: the row says so, the run goes on."""


class Result:
    """What one run of one mode measured (arena-bench's struct mode_result)."""

    def __init__(self, workload, mode, what):
        self.workload = workload
        self.mode = mode
        self.what = what            # one line: what the mode does
        self.ok = False
        self.skipped = False
        self.error = None
        self.tasks = 0
        self.setup_ns = 0           # workers/server/dataset before the timed run
        self.total_ns = 0           # first submit to last result received
        self.lat = None             # sorted per-task round trips (ns), or None
        self.cpu_parent_ns = 0      # the parent, every thread
        self.cpu_workers_ns = 0     # the workers, during the timed run
        self.cpu_server_ns = 0      # a Manager's server, during the timed run
        self.worker_hwm_kb = None   # largest worker VmHWM
        self.worker_pss_kb = None   # mean worker Pss
        self.worker_seq_pss_kb = None  # mean Pss of the dataset's own mapping
        self.helpers_pss_kb = None  # workers + server
        self.consumer_rss_kb = None  # [base, last, max] (RssSampler)
        self.consumer_rss_samples_kb = None
        self.consumer_anon_kb = None   # the same for private anonymous memory
        self.bad_items = 0          # results that were not what was asked for
        self.notes = []

    def per_task_ns(self):
        return self.total_ns / self.tasks if self.tasks and self.total_ns else 0.0

    def tasks_per_s(self):
        return self.tasks * 1e9 / self.total_ns if self.total_ns else 0.0

    def cpu_per_task_ns(self):
        cpu = self.cpu_parent_ns + self.cpu_workers_ns + self.cpu_server_ns
        return cpu / self.tasks if self.tasks else 0.0

    def percentile(self, p):
        if not self.lat:
            return None
        k = min(len(self.lat) - 1, int(p / 100.0 * len(self.lat)))
        return self.lat[k]

    def mean_latency(self):
        return sum(self.lat) / len(self.lat) if self.lat else None


def latencies(submit, done, n):
    """Sorted round trips of tasks 0..n-1 (done[i] - submit[i])."""
    return sorted(done[i] - submit[i] for i in range(n))


# ---- CPU time and memory of processes, from /proc ----------------------------

def proc_cpu_ns(pid):
    """utime + stime of every thread of pid, in ns (clock-tick resolution)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // _TICK


def self_cpu_ns():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def rollup(pid):
    """/proc/PID/smaps_rollup as {field: KiB} (Pss, Private_Dirty, ...)."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def private_dirty_split(pid):
    """Private_Dirty of PID in KiB, as (every mapping but shared memory
    files', theirs): /proc/PID/smaps.  A memfd's pages (an arena's) count as
    private dirty while this process is the only one mapping them, though
    they are one shared copy, not this process's own: copy-on-write copies
    land in the first figure only (python/tests/test_processes.py measures
    the same way)."""
    own = shm = 0
    in_shm = False
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    in_shm = "/memfd:" in line
                elif first == "Private_Dirty:":
                    kib = int(line.split()[1])
                    if in_shm:
                        shm += kib
                    else:
                        own += kib
    except OSError:
        pass
    return own, shm


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mapping_pss_kb(pid, name):
    """Sum of Pss over pid's mappings whose path contains name."""
    total, inside = 0, False
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    inside = name in line
                elif inside and first == "Pss:":
                    total += int(line.split()[1])
    except OSError:
        return None
    return total


def self_rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE // 1024


def self_rss_anon_kb():
    """Resident private anonymous memory (resident - shared): where a copy
    of a batch would land."""
    with open("/proc/self/statm") as f:
        v = f.read().split()
    return (int(v[1]) - int(v[2])) * _PAGE // 1024


class CpuWatch:
    """CPU time of the parent, its workers and a server over the timed run."""

    def __init__(self, workers, server=None):
        self.workers = list(workers)
        self.server = server
        self.p0 = self_cpu_ns()
        self.w0 = sum(proc_cpu_ns(p) for p in self.workers)
        self.s0 = proc_cpu_ns(server) if server else 0

    def stop(self, res):
        res.cpu_parent_ns = self_cpu_ns() - self.p0
        res.cpu_workers_ns = sum(proc_cpu_ns(p) for p in self.workers) - self.w0
        if self.server:
            res.cpu_server_ns = proc_cpu_ns(self.server) - self.s0


def read_memory(res, workers, server=None, seq_mapping=None):
    """Workers' memory before they exit (arena-bench's w.* columns)."""
    workers = list(workers)
    if not workers:
        return
    hwm = [status_kb(p, "VmHWM") or 0 for p in workers]
    pss = [rollup(p).get("Pss", 0) for p in workers]
    res.worker_hwm_kb = max(hwm)
    res.worker_pss_kb = sum(pss) // len(pss)
    res.helpers_pss_kb = sum(pss) + (rollup(server).get("Pss", 0) if server else 0)
    if seq_mapping:
        seq = [mapping_pss_kb(p, seq_mapping) or 0 for p in workers]
        res.worker_seq_pss_kb = sum(seq) // len(seq)


# ---- the seed's shape over a multiprocessing.Pool -----------------------------

def producer_consumer(ntasks, put, take, check, res, on_failure=None):
    """The seed's two threads: the main thread put(i)s every task, a consumer
    thread takes the results in order (take() -> value) and checks each.
    check(i, value) -> bool.  put(i, failure) is given the consumer's failure
    list so that a blocking put can give up; on_failure() runs in the consumer
    after it failed.  Fills res.tasks, total_ns, lat and bad_items; raises on
    a task error or a stall."""
    submit = [0] * ntasks
    done = [0] * ntasks
    failure = []

    def run():
        try:
            bad = 0
            for i in range(ntasks):
                acc = take()
                done[i] = now()
                if not check(i, acc):
                    bad += 1
            res.bad_items = bad
        except BaseException as e:   # reported by the main thread
            failure.append(e)
            if on_failure:
                on_failure()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    st = now()
    for i in range(ntasks):
        if failure:
            break
        submit[i] = now()
        put(i, failure)
    th.join()
    end = now()
    if failure:
        raise failure[0]
    res.tasks = ntasks
    res.total_ns = end - st
    res.lat = latencies(submit, done, ntasks)


def queue_shape(ntasks, depth, start, wait, check, res):
    """The seed's loop as written: the main thread starts each task
    (start(i) -> a handle) and puts the handle in a Queue(depth); a consumer
    thread takes them in order and waits for each (wait(handle) -> value)."""
    qu = queue.Queue(depth)

    def put(i, failure):
        r = start(i)
        while True:     # qu.put(block=True), giving up when the consumer died
            try:
                qu.put(r, timeout=1.0)
                return
            except queue.Full:
                if failure:
                    return

    def drain():        # unblock a producer waiting on a full queue
        while True:
            try:
                qu.get_nowait()
            except queue.Empty:
                return

    producer_consumer(ntasks, put, lambda: wait(qu.get(block=True)), check, res, drain)


def seed_shape(pool, func, args_of, ntasks, depth, check, res, progress=None):
    """The seed's loop over a multiprocessing.Pool: apply_async(func,
    args_of(i)), AsyncResult.get() in the consumer (queue_shape)."""
    queue_shape(ntasks, depth, lambda i: pool.apply_async(func, args_of(i)),
                lambda r: r.get(timeout=STALL_S), check, res)


def timed_iter(indices, stamps):
    """Yields indices, writing the time each one is taken into stamps[k]:
    a task's submit time when a pool or DataLoader pulls its indices."""
    for k, i in enumerate(indices):
        stamps[k] = now()
        yield i


class RssSampler:
    """The consumer's RSS every `every` results.  Growth is counted over the
    second half of the run: in the first, the pipeline's buffers (slots, a
    pool's result areas, the allocator's pools) are touched for the first
    time, which is bounded; a copy kept per batch grows in both halves."""

    def __init__(self, ntasks, every):
        self.n, self.every, self.kb, self.anon = ntasks, max(1, every), [], []

    def sample(self, i):
        if i % self.every == 0 or i == self.n - 1:
            self.kb.append(self_rss_kb())
            self.anon.append(self_rss_anon_kb())

    def store(self, res):
        if self.kb:
            k = len(self.kb) // 2
            res.consumer_rss_kb = [self.kb[k], self.kb[-1], max(self.kb)]
            res.consumer_rss_samples_kb = list(self.kb)
            res.consumer_anon_kb = [self.anon[k], self.anon[-1], max(self.anon)]


def consume_ordered(it, ntasks, check, res, submit, st, rss_every=0):
    """Takes ntasks results from an ordered iterator (imap, a DataLoader)
    started at st (ns, before its first submit), checking each: fills res
    like seed_shape.  rss_every > 0 samples the consumer's RSS (RssSampler)."""
    done = [0] * ntasks
    bad = 0
    rss = RssSampler(ntasks, rss_every) if rss_every else None
    for i in range(ntasks):
        v = next(it)
        done[i] = now()
        if not check(i, v):
            bad += 1
        del v
        if rss:
            rss.sample(i)
    end = now()
    res.tasks = ntasks
    res.total_ns = end - st
    res.bad_items = bad
    res.lat = latencies(submit, done, ntasks)
    if rss:
        rss.store(res)
