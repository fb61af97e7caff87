# SPDX-License-Identifier: MIT
"""Datasets for test_adapters.py, in a module of their own: under
start_method='spawn' the workers import them by name, and this module is
light to import (test_adapters.py imports pytest)."""
import mmap
import os
import signal
import struct
import time

# Generous bounds: these tests must pass on a loaded 2-CPU machine.  None is
# a speed assertion; each one bounds a wait that would otherwise be a hang.
WAIT_S = 60


class SharedInts:
    """n C ints in an anonymous shared mapping, inherited by forked workers
    (no /dev/shm file, unlike multiprocessing.Array).  It does not pickle:
    spawned workers cannot have it."""

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

    def close(self):
        self._ints.release()
        self._map.close()


class FileInts(SharedInts):
    """n C ints in a file, mapped shared: it pickles as its path, so
    spawned workers map the same ints."""

    def __init__(self, path, n, create=True):
        self.path, self.n = str(path), n
        with open(self.path, "w+b" if create else "r+b") as f:
            if create:
                f.truncate(4 * max(1, n))
            self._map = mmap.mmap(f.fileno(), 4 * max(1, n))
        self._ints = memoryview(self._map).cast("i")

    def __reduce__(self):
        return FileInts, (self.path, self.n, False)


class Probe:
    """A map-style dataset (the shape of a Keras Sequence or a torch
    Dataset): item i is (i, i * i).  Counts every computation of every
    index in shared memory; the victim index, while armed, reports its pid
    and sleeps until it is killed.  The counters are inherited by fork, or,
    with shared=<a directory>, in files there that spawned workers map."""

    def __init__(self, n, victim=-1, shared=None):
        self.n = n
        self.victim = victim
        if shared is None:
            self.calls = SharedInts(n)
            self.flags = SharedInts(2)      # armed, the victim's pid
        else:
            self.calls = FileInts(os.path.join(shared, "calls"), n)
            self.flags = FileInts(os.path.join(shared, "flags"), 2)
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
        return kill_victim(self.flags)

    def close(self):
        self.calls.close()
        self.flags.close()


def kill_victim(flags):
    """flags: [armed, the victim's pid] (see Probe.kill_victim)."""
    deadline = time.monotonic() + WAIT_S
    while flags[1] == 0:
        assert time.monotonic() < deadline, "the victim item never started"
        time.sleep(0.005)
    pid = flags[1]
    flags[0] = 0
    os.kill(pid, signal.SIGKILL)
    return pid


def file_value(i):
    return 7 * i + 1


class FdItems:
    """Item i is (i, the i-th int32 of the file open at fd), read with
    os.pread on the fd: a dataset holding an open file, as an h5py.File or
    a sqlite connection does.  It pickles as the fd's number."""

    def __init__(self, fd, n):
        self.fd, self.n = fd, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return (i, struct.unpack("<i", os.pread(self.fd, 4, 4 * i))[0])


class FileItems(FdItems):
    """FdItems over a file of n ints (file_value(i)) written at path and
    opened in __init__ (self.file).  The victim index, while armed, sleeps
    in the worker until kill_victim() kills it (fork only)."""

    def __init__(self, path, n, victim=-1):
        self.path = str(path)
        with open(self.path, "wb") as f:
            f.write(struct.pack("<%di" % n, *map(file_value, range(n))))
        self.file = open(self.path, "rb")
        super().__init__(self.file.fileno(), n)
        self.victim = victim
        self.flags = SharedInts(2)          # armed, the victim's pid
        self.flags[0] = 1 if victim >= 0 else 0

    def __getitem__(self, i):
        if i == self.victim and self.flags[0]:
            self.flags[1] = os.getpid()
            time.sleep(3600)            # the test kills this worker
        return super().__getitem__(i)

    def kill_victim(self):
        return kill_victim(self.flags)

    def __reduce__(self):
        return FdItems, (self.fd, self.n)

    def close(self):
        self.file.close()
        self.flags.close()


class Squares:
    """Item i is (i, k * i * i): k tells which copy of the dataset a
    worker holds."""

    def __init__(self, n, k=1):
        self.n, self.k = n, k

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return (i, self.k * i * i)


def as_list(batch):
    """A collate_fn that needs neither torch nor numpy in the workers."""
    return list(batch)


def firsts(batch):
    return [x[0] for x in batch]
