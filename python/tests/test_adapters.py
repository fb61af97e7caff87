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

The files a dataset holds open (keep_fds): torch's forked workers have
every fd of the parent, libarena's the files by default, or what keep_fds
lists.

The adapters' start_method='spawn' (fresh interpreters, the dataset sent
by pickle) at the end: the same items as under fork, the same recovery.
"""
import errno
import multiprocessing as mp
import os
import queue
import select
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

from adapter_data import (WAIT_S, FileItems, Probe, SharedInts, Squares, as_list, file_value,
                          firsts)
from conftest import children


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


def _epoch_with_a_kill(enq, ds, n, victim):
    """One epoch of enq while ds's victim item kills its worker: the epoch
    goes on, in order; the victim is computed twice (the killed attempt and
    one more), every other item once.  Returns the items."""
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
    return got


def test_enqueuer_recomputes_the_item_of_a_killed_worker_once():
    """The same kill as above, through an Enqueuer."""
    ad = _adapters()
    n, victim = 40, 7
    ds = Probe(n, victim)
    with ad.Enqueuer(ds, workers=3, depth=10) as enq:
        got = _epoch_with_a_kill(enq, ds, n, victim)
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


# ---- the files a dataset holds open: keep_fds ---------------------------------
# A dataset that reads item i from a file it opened (os.pread on its fd), as
# an h5py.File or a sqlite connection does.

def _file_want(n):
    return [(i, file_value(i)) for i in range(n)]


def _fd_link(pid, fd):
    try:
        return os.readlink("/proc/%d/fd/%d" % (pid, fd))
    except OSError:
        return None


def test_workers_read_the_file_the_dataset_holds(tmp_path, no_leaks):
    """Closed in the workers (keep_fds=()), the file raises EBADF where the
    item is read, raised where it would have been yielded, with a note
    naming keep_fds.  Kept by default (this process's files), listed (the
    file, or its fd), or with 'all': every item right, for both adapters,
    and again after restart()."""
    ad = _adapters()
    n = 12
    ds = FileItems(tmp_path / "ints", n)
    adapters = (
        (lambda **kw: ad.Enqueuer(ds, workers=2, **kw), lambda it: list(it)),
        (lambda **kw: ad.DataLoader(ds, batch_size=5, num_workers=2, collate_fn=as_list, **kw),
         lambda it: [x for b in it for x in b]),
    )
    try:
        for make, items in adapters:
            with make(keep_fds=()) as it:
                with pytest.raises(OSError) as e:
                    items(it)
                assert e.value.errno == errno.EBADF
                assert "os.pread" in str(e.value.__cause__)     # the worker's traceback
                assert any("keep_fds" in note for note in e.value.__notes__)
            for keep in (None, [ds.file], [ds.fd], "all"):
                with make(keep_fds=keep) as it:
                    assert items(it) == _file_want(n)
                    it.restart()
                    assert items(it) == _file_want(n), "kept across restart()"
    finally:
        ds.close()


def test_restart_keeps_the_files_open_then(tmp_path, no_leaks):
    """The default reads this process's files at restart() again: a file
    the dataset opened after the workers started is theirs after it."""
    ad = _adapters()
    ds = FileItems(tmp_path / "ints", 6)
    first = ds.fd
    try:
        with ad.Enqueuer(ds, workers=2) as enq:
            ds.fd = os.dup(first)               # opened now: not in the workers
            enq.restart()
            assert list(enq) == _file_want(6)
            assert all(_fd_link(pid, ds.fd) == ds.path for pid in enq.worker_pids())
    finally:
        if ds.fd != first:
            os.close(ds.fd)
        ds.close()


def test_default_keeps_files_not_pipes(no_leaks):
    """A pipe this process closes reaches EOF while the default's workers
    live (a kept write end would hang its reader); keep_fds='all' keeps
    pipes too, as torch's fork does, and EOF waits for the workers."""
    ad = _adapters()
    for keep, eof_while_alive in ((None, True), ("all", False)):
        r, w = os.pipe()
        try:
            with ad.Enqueuer(Squares(4), workers=2, keep_fds=keep) as enq:
                assert list(enq) == [(i, i * i) for i in range(4)]
                os.close(w)
                w = -1
                ready = select.select([r], [], [], WAIT_S if eof_while_alive else 0.3)[0]
                assert bool(ready) == eof_while_alive
            assert select.select([r], [], [], WAIT_S)[0] and os.read(r, 1) == b""
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)


def test_all_leaves_out_libarenas_own_fds(no_leaks):
    """keep_fds='all' keeps every fd but libarena's own: another pool's
    arena and channel, its pidfds and io_uring, and its fork server's
    socket (held, the server would not see its pool close)."""
    ad = _adapters()
    import libarena
    import tasks
    other = libarena.Arena([b"x"] * 4, name="other-arena")
    try:
        with libarena.Pool(tasks.double, other, workers=2) as p:
            assert p.map() == [0, 2, 4, 6]
            ours = {_fd_link(os.getpid(), int(fd)) for fd in os.listdir("/proc/self/fd")}
            own = {t for t in ours if t and t.startswith(("/memfd:", "anon_inode:", "socket:"))}
            assert "/memfd:other-arena (deleted)" in own
            assert any(t.startswith("socket:") for t in own), "the pool's fork server"
            r, w = os.pipe()
            try:
                with ad.Enqueuer(Squares(4), workers=2, keep_fds="all") as enq:
                    assert list(enq) == [(i, i * i) for i in range(4)]
                    for pid in enq.worker_pids():
                        held = {_fd_link(pid, int(fd)) for fd in os.listdir("/proc/%d/fd" % pid)}
                        assert _fd_link(os.getpid(), w) in held, "the application's pipe"
                        assert not held & own, "the other pool's fds"
            finally:
                os.close(r)
                os.close(w)
    finally:
        other.close()


def test_replacement_of_a_killed_worker_reads_the_kept_file(tmp_path):
    """A worker SIGKILLed inside an item: its replacement starts from the
    fork server, which kept the file too, and reads it -- one worker, so
    the replacement computes the item again and every one after it."""
    ad = _adapters()
    n, victim = 16, 5
    ds = FileItems(tmp_path / "ints", n, victim)
    try:
        with ad.Enqueuer(ds, workers=1, depth=4, keep_fds=[ds.file]) as enq:
            (first,) = enq.worker_pids()
            kids = children()
            assert len(kids) == 2 and first in kids, "the worker and the fork server"
            assert all(_fd_link(pid, ds.fd) == ds.path for pid in kids)
            killer = threading.Thread(target=ds.kill_victim, daemon=True)
            killer.start()
            got = bounded(lambda: list(enq))
            killer.join(WAIT_S)
            assert not killer.is_alive()
            assert got == _file_want(n)
            (pid,) = enq.worker_pids()
            assert pid != first and enq.stats()["crashes"] == 1
            assert _fd_link(pid, ds.fd) == ds.path
    finally:
        ds.close()


def test_more_fds_than_the_workers_keep(tmp_path, no_leaks):
    """The workers keep 64 fds at most: more is a ValueError that says how
    many, before any worker starts.  An unknown mode is one too."""
    ad = _adapters()
    files = [open(tmp_path / ("f%d" % k), "wb") for k in range(70)]
    try:
        with pytest.raises(ValueError, match="keep_fds=.*: 65 fds, .* 64 at most"):
            ad.Enqueuer(Squares(4), workers=2, keep_fds=files[:65])
        for keep, what in ((None, "files"), ("all", "fds")):
            with pytest.raises(ValueError, match="this process has ([0-9]+) %s open" % what) as e:
                ad.DataLoader(Squares(4), num_workers=2, collate_fn=as_list, keep_fds=keep)
            assert int(e.value.args[0].split("has ")[1].split()[0]) >= 70
        with pytest.raises(ValueError, match="keep_fds must be"):
            ad.Enqueuer(Squares(4), workers=2, keep_fds="some")
        assert children() == []
    finally:
        for f in files:
            f.close()


# ---- start_method='spawn' -----------------------------------------------------
# Each spawned interpreter costs 50-100 ms: 2 workers, few pools.

def _exec_d(pids):
    """True when every pid runs a spawned interpreter (not a fork of us)."""
    for pid in pids:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if b"libarena._worker" not in f.read():
                return False
    return True


def test_spawn_enqueuer_gives_what_fork_gives(no_leaks):
    """In order and shuffled, two epochs each: the same items as forked
    workers give.  The parent has a thread: spawning does not warn."""
    ad = _adapters()
    ds = Squares(30)
    want = {}
    for shuffle in (False, True):
        with ad.Enqueuer(ds, workers=2, shuffle=shuffle, seed=5) as enq:
            want[shuffle] = [list(enq), list(enq)]
    ev = threading.Event()
    th = threading.Thread(target=ev.wait)
    th.start()
    try:
        for shuffle in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                enq = ad.Enqueuer(ds, workers=2, shuffle=shuffle, seed=5,
                                  start_method="spawn")
            with enq:
                assert [list(enq), list(enq)] == want[shuffle]
                assert _exec_d(enq.worker_pids())
    finally:
        ev.set()
        th.join()
    assert want[True][0] != want[True][1] and sorted(want[True][0]) == want[False][0]


def test_spawn_dataloader_gives_what_fork_gives(no_leaks):
    """The shuffled order reaches spawned workers (a memfd they inherit,
    not fork's shared mapping): the same batches, epoch after epoch.
    torch's multiprocessing_context='spawn' chooses spawn too."""
    ad = _adapters()
    ds = Squares(30)
    for shuffle in (False, True):
        with ad.DataLoader(ds, batch_size=4, shuffle=shuffle, num_workers=2, seed=9,
                           collate_fn=as_list) as dl:
            want = [list(dl), list(dl)]
        kw = {"multiprocessing_context": "spawn"} if shuffle else {"start_method": "spawn"}
        with ad.DataLoader(ds, batch_size=4, shuffle=shuffle, num_workers=2, seed=9,
                           collate_fn=as_list, **kw) as dl:
            assert dl.start_method == "spawn"
            assert [list(dl), list(dl)] == want
            assert _exec_d(dl.worker_pids())
        assert sorted(x for b in want[0] for x in b) == [ds[i] for i in range(30)]
    assert want[0] != want[1], "a new shuffle each epoch"


def test_spawn_enqueuer_recomputes_the_item_of_a_killed_worker_once(tmp_path):
    """As under fork: the replacement, spawned, unpickles the dataset
    again and computes the item; every other item once."""
    ad = _adapters()
    n, victim = 40, 7
    ds = Probe(n, victim, shared=tmp_path)
    try:
        with ad.Enqueuer(ds, workers=2, depth=10, start_method="spawn") as enq:
            _epoch_with_a_kill(enq, ds, n, victim)
            assert _exec_d(enq.worker_pids())
    finally:
        ds.close()


def test_spawn_dataloader_survives_a_killed_worker(tmp_path):
    ad = _adapters()
    probe = Probe(64, victim=21, shared=tmp_path)
    try:
        with ad.DataLoader(probe, batch_size=8, num_workers=2, start_method="spawn",
                           collate_fn=firsts) as dl:
            killer = threading.Thread(target=probe.kill_victim, daemon=True)
            killer.start()
            got = bounded(lambda: list(dl))
            killer.join(WAIT_S)
            assert [i for b in got for i in b] == list(range(64))
            assert list(probe.calls) == [2 if 16 <= i <= 21 else 1 for i in range(64)]
    finally:
        probe.close()


def test_spawn_refuses_what_does_not_pickle(no_leaks):
    """Found at construction, before any worker starts, with the reason."""
    ad = _adapters()
    ds = Probe(10)                       # its counters: an anonymous mapping
    try:
        with pytest.raises(TypeError, match="(?s)the dataset .* by pickle.*mmap"):
            ad.Enqueuer(ds, workers=2, start_method="spawn")
        with pytest.raises(TypeError, match="the dataset .* by pickle"):
            ad.DataLoader(ds, num_workers=2, start_method="spawn", collate_fn=as_list)
        with pytest.raises(TypeError, match="collate_fn .* by pickle"):
            ad.DataLoader(Squares(10), num_workers=2, start_method="spawn",
                          collate_fn=lambda b: b)
        with pytest.raises(ValueError, match="disagree"):
            ad.DataLoader(Squares(10), start_method="fork", multiprocessing_context="spawn")
        with pytest.raises(ValueError, match="start_method"):
            ad.Enqueuer(Squares(10), start_method="forkserver")
        assert ds.calls[0] == 0
    finally:
        ds.close()


def test_spawn_restart_sends_the_dataset_as_it_is(no_leaks):
    """Spawned workers hold the copy they unpickled; restart() pickles the
    dataset again (one that no longer pickles leaves the old workers).  A
    closed DataLoader restarts too (its order's memfd is made again)."""
    ad = _adapters()
    ds = Squares(12)
    with ad.Enqueuer(ds, workers=2, start_method="spawn") as enq:
        assert list(enq) == [(i, i * i) for i in range(12)]
        ds.k = 2
        assert list(enq) == [(i, i * i) for i in range(12)], "the workers' copy"
        enq.restart()
        assert list(enq) == [(i, 2 * i * i) for i in range(12)]
        ds.k = threading.Lock()
        with pytest.raises(TypeError, match="pickle"):
            enq.restart()
        assert list(enq) == [(i, 2 * i * i) for i in range(12)], "the old workers stay"
    ds = Squares(12)
    dl = ad.DataLoader(ds, batch_size=5, shuffle=True, num_workers=2, start_method="spawn",
                       collate_fn=as_list)
    first = [x for b in dl for x in b]
    dl.close()
    ds.k = 3
    dl.restart()
    with dl:
        again = [x for b in dl for x in b]
    assert sorted(first) == [(i, i * i) for i in range(12)]
    assert sorted(again) == [(i, 3 * i * i) for i in range(12)]


def test_spawn_dataset_of_the_main_script(tmp_path):
    """A dataset class defined in the user's script: the workers run the
    script as __mp_main__ to unpickle it (its guarded block does not run).
    In an interactive session they could not: ValueError at construction."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import libarena.adapters

        class Cubes:
            def __len__(self):
                return 20
            def __getitem__(self, i):
                return i ** 3

        if __name__ == "__main__":
            with libarena.adapters.Enqueuer(Cubes(), workers=2, start_method="spawn") as enq:
                print(sum(enq))
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=WAIT_S)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(sum(i ** 3 for i in range(20)))
    code = script.read_text().replace('if __name__ == "__main__":', "if True:")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=WAIT_S)
    assert r.returncode != 0 and "ValueError" in r.stderr and "interactive" in r.stderr


def test_spawn_workers_keep_the_listed_fds(tmp_path, no_leaks):
    """Under spawn the dataset arrives pickled (here as its fd's number):
    the workers keep no fd of ours by default (torch's spawn neither), and
    keep_fds=[the file] keeps it next to DataLoader's own memfd (the
    shuffled order)."""
    ad = _adapters()
    n = 12
    ds = FileItems(tmp_path / "ints", n)
    kw = dict(batch_size=5, shuffle=True, num_workers=2, seed=4, start_method="spawn",
              collate_fn=as_list)
    try:
        with ad.DataLoader(ds, **kw) as dl:
            with pytest.raises(OSError) as e:
                list(dl)
            assert e.value.errno == errno.EBADF
        with ad.DataLoader(ds, keep_fds=[ds.file], **kw) as dl:
            epochs = [[x for b in dl for x in b] for _ in range(2)]
            assert _exec_d(dl.worker_pids())
        assert all(sorted(e) == _file_want(n) for e in epochs)
        assert epochs[0] != epochs[1], "the order's memfd still reaches them"
    finally:
        ds.close()
