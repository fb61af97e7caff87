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


class Probe:
    """A map-style dataset (the shape of a Keras Sequence or a torch
    Dataset): item i is (i, i * i).  Counts every computation of every
    index in shared memory; the victim index, while armed, reports its pid
    and sleeps until it is killed."""

    def __init__(self, n, victim=-1):
        self.n = n
        self.victim = victim
        self.calls = mp.Array("i", n, lock=False)     # inherited by fork
        self.armed = mp.Value("i", 1 if victim >= 0 else 0, lock=False)
        self.victim_pid = mp.Value("i", 0, lock=False)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.calls[i] += 1
        if i == self.victim and self.armed.value:
            self.victim_pid.value = os.getpid()
            time.sleep(3600)            # the test kills this worker
        return (i, i * i)

    def kill_victim(self):
        """Waits for the victim's worker to be inside item victim, disarms
        the item (its recomputation returns normally) and SIGKILLs it."""
        deadline = time.monotonic() + WAIT_S
        while self.victim_pid.value == 0:
            assert time.monotonic() < deadline, "the victim item never started"
            time.sleep(0.005)
        pid = self.victim_pid.value
        self.armed.value = 0
        os.kill(pid, signal.SIGKILL)
        return pid


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
