# SPDX-License-Identifier: MIT
"""Adapters for Keras and PyTorch users: their dataset object, libarena's
workers.

    enq = libarena.adapters.Enqueuer(seq, workers=5, shuffle=True)
    model.fit(enq.forever(), steps_per_epoch=len(seq), epochs=10)     # Keras

    loader = libarena.adapters.DataLoader(ds, batch_size=64, shuffle=True,
                                          num_workers=5)               # PyTorch
    for epoch in range(10):
        for x, y in loader: ...

Enqueuer takes any object with __len__ and __getitem__ (a Keras Sequence or
PyDataset, a torch map-style Dataset, a list) and yields obj[i] computed in
worker processes: in order, at most `depth` items in flight, a new shuffle
each epoch when asked, and the same workers for every epoch (Keras starts a
new Pool each epoch).  A worker that dies (OOM killer, a crash in a C
extension, SIGKILL) is replaced and the item it was computing is computed
again, once: the epoch goes on, in order.  Keras' enqueuer waits for ever in
that case and torch's DataLoader fails the epoch.

The workers are forked when the Enqueuer is made: they see the dataset as it
is then (copy-on-write), and only indices travel to them.  With
start_method='spawn' they are fresh interpreters instead (a parent with
threads, CUDA or JAX must not fork): the dataset reaches them by pickle,
once per worker start, and then only indices travel.  What obj[i]
returns comes back with pickle protocol 5, numpy arrays and tensors out of
band: copied once on this side into memory of their own (the default), or,
with zero_copy=True, as read-only arrays over the worker's result space,
which they hold until they are dropped (see Enqueuer).

Forked workers keep the files this process has open when they start
(regular files and directories: what an open() file, an h5py or sqlite
file, a memmap's file hold), as torch's forked workers do; keep_fds
chooses otherwise (see Enqueuer).

Neither Keras nor torch is imported here unless the dataset or the collate
function needs it (DataLoader uses torch's default_collate when torch is
installed).
"""
import errno
import fcntl
import io
import itertools
import mmap
import os
import pickle
import random
import socket
import stat
import struct
import types
import warnings

from . import _worker
from ._libarena import Arena
from ._pool import Pool, _cpus, _main_path

__all__ = ["Enqueuer", "DataLoader", "pack", "unpack"]

# ---- results: pickle protocol 5 with the large buffers out of band -----------

_MAGIC = b"LAPK"
_HEAD = struct.Struct("<4sII")      # magic, pickle length, buffer count
_LEN = struct.Struct("<Q")
_ALIGN = 64                          # each buffer starts 64-byte aligned


def _torch():
    import sys
    return sys.modules.get("torch")


def _tensor_from_numpy(a):
    """Rebuilds a CPU tensor over the array's memory (no copy)."""
    import torch
    with warnings.catch_warnings():
        # The array is a read-only view of the result space: writing to the
        # tensor is allowed by the mapping and affects only this result.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


class _Pickler(pickle.Pickler):
    """Sends CPU tensors as numpy arrays (out of band), rebuilt as tensors."""

    def reducer_override(self, obj):
        torch = _torch()
        if torch is not None and type(obj) is torch.Tensor and obj.device.type == "cpu" \
                and not obj.requires_grad:
            try:
                return _tensor_from_numpy, (obj.contiguous().numpy(),)
            except (TypeError, RuntimeError):   # a dtype numpy lacks
                pass
        return NotImplemented


def pack(obj, out=None):
    """obj as one bytes-like: a pickle (protocol 5) whose large buffers
    (numpy arrays, tensors) follow it raw, each 64-byte aligned.  With out
    (a bytearray), packs into it (grown as needed) and returns a memoryview
    of the packed part: a worker reuses one buffer for all its results."""
    bufs = []
    f = io.BytesIO()
    _Pickler(f, protocol=5, buffer_callback=bufs.append).dump(obj)
    p = f.getbuffer()
    raws = [b.raw() for b in bufs]
    size = _HEAD.size + _LEN.size * len(raws) + len(p)
    offs = []
    for r in raws:
        size = (size + _ALIGN - 1) // _ALIGN * _ALIGN
        offs.append(size)
        size += r.nbytes
    if out is None:
        out = bytearray(size)
    elif len(out) < size:
        out.extend(bytes(size - len(out)))
    _HEAD.pack_into(out, 0, _MAGIC, len(p), len(raws))
    pos = _HEAD.size
    for r in raws:
        _LEN.pack_into(out, pos, r.nbytes)
        pos += _LEN.size
    out[pos:pos + len(p)] = p
    for off, r in zip(offs, raws):
        out[off:off + r.nbytes] = r
    return out if len(out) == size else memoryview(out)[:size]


def unpack(buf):
    """The object pack() made, its arrays over buf's memory (no copy)."""
    mv = memoryview(buf).cast("B")
    magic, plen, nbufs = _HEAD.unpack_from(mv, 0)
    if magic != _MAGIC:
        raise ValueError("not a packed result")
    pos = _HEAD.size
    sizes = [_LEN.unpack_from(mv, pos + _LEN.size * k)[0] for k in range(nbufs)]
    pos += _LEN.size * nbufs
    p = mv[pos:pos + plen]
    pos += plen
    views = []
    for n in sizes:
        pos = (pos + _ALIGN - 1) // _ALIGN * _ALIGN
        if pos + n > len(mv):
            raise ValueError("truncated packed result")
        views.append(mv[pos:pos + n])
        pos += n
    return pickle.loads(p, buffers=views)


def _worker_setup():
    """Once per worker process, before its first item: what torch's own
    DataLoader does in its workers.  torch's intra-op thread pool (inherited
    half-alive by fork, or started afresh under spawn) would otherwise run
    every op on threads that compete with the other workers for the CPUs
    (measured: 6 times the CPU per 4 MiB batch)."""
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(1)
    _keep_heap()


def _keep_heap():
    """glibc: serve large blocks from the heap and do not give it back, so
    that a batch-sized block is reused from one item to the next instead of
    being mapped, faulted in page by page, and unmapped each time.  A worker
    holds a few batches at most; the memory goes when it exits."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)      # the largest glibc takes
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):     # not glibc: nothing to tune
        pass


class _GetItem:
    """The task: obj[i], packed.  Runs in the workers.  Each worker
    packs into one buffer of its own, reused: a new 4 MiB buffer per batch
    costs a thousand page faults each time the allocator gives the memory
    back to the kernel (measured: most of a worker's time per batch)."""

    def __init__(self, obj, in_worker=False):
        self.obj = obj
        # Made in the parent (fork): no set-up there, only in the children.
        self.ready_pid = None if in_worker else os.getpid()
        self.scratch = None

    def __call__(self, arena, i):
        if self.ready_pid != os.getpid():
            _worker_setup()
            self.ready_pid = os.getpid()
            self.scratch = bytearray()
        item = self.obj[i]
        try:
            return pack(item, self.scratch)
        except BufferError:     # a view of it still alive: start another
            self.scratch = bytearray()
            return pack(item, self.scratch)


# ---- spawn: the dataset travels pickled, in an arena --------------------------

class _MainFinder(pickle.Pickler):
    """A pickler that notes whether the pickle names a class or function of
    __main__ (the user's script): a spawned worker must then run the script
    as __mp_main__ before it unpickles, as multiprocessing's spawn does."""

    uses_main = False

    def reducer_override(self, obj):
        if isinstance(obj, (type, types.FunctionType)) and \
                getattr(obj, "__module__", None) == "__main__":
            self.uses_main = True
        return NotImplemented


def _spawn_payload(obj, what):
    """obj for spawned workers: [u64 pickle length][pickle][the script's
    path, when the pickle needs it].  Raises here, before any worker
    starts, what would otherwise fail in every worker."""
    f = io.BytesIO()
    f.write(bytes(_LEN.size))
    p = _MainFinder(f, protocol=5)
    try:
        p.dump(obj)
    except Exception as e:   # noqa: BLE001 - pickle raises many types
        raise TypeError(
            "start_method='spawn' sends %s to the workers by pickle, and it cannot be "
            "pickled (%s: %s): use module-level classes and functions (no lambdas, "
            "locks, open files), or start_method='fork'" % (what, type(e).__name__, e)) from e
    plen = f.tell() - _LEN.size
    if p.uses_main:
        f.write(os.fsencode(_main_path(what + " (or a class it uses)")))
    buf = f.getbuffer()
    _LEN.pack_into(buf, 0, plen)
    return buf


def _spawn_load(mv):
    """The object _spawn_payload packed (in a spawned worker)."""
    (plen,) = _LEN.unpack_from(mv, 0)
    main = bytes(mv[_LEN.size + plen:])
    if main:
        _worker.import_main(os.fsdecode(main))
    return pickle.loads(mv[_LEN.size:_LEN.size + plen])


def _spawn_arena(obj, n, what):
    """The arena a spawned pool runs over: n items (one at least, for the
    tasks' indices), the first the payload, the others empty."""
    payload = _spawn_payload(obj, what)
    try:
        return Arena(itertools.chain((payload,), itertools.repeat(b"", max(1, n) - 1)),
                     kind="bytes")
    finally:
        payload.release()


_spawned = None     # in a spawned worker: its _GetItem, made at its first item


def _spawned_item(arena, i):
    """The task of spawned workers, which import it by name: the first
    item unpickles the dataset from the arena's item 0 (one pool a worker,
    so one dataset a process)."""
    global _spawned
    if _spawned is None:
        with arena.view(0) as mv:
            _spawned = _GetItem(_spawn_load(mv), in_worker=True)
    return _spawned(arena, i)


# ---- the fds the workers keep --------------------------------------------------

# The library's limit (lib/pool.c arena_pool_create: at most 64 keep_fds).
_MAX_KEEP = 64
# Memfds of libarena's own machinery, by name: pools' channels (their result
# areas), DataLoader's order (a spawned loader adds its own through _own_fds).
_OWN_MEMFDS = ("/memfd:arena-channel", "/memfd:libarena-order")
_OWN_ANON = ("anon_inode:[pidfd]", "anon_inode:[io_uring]")


def _libarenas(fd, link):
    """True for libarena's own fds, which a scan leaves out.  Arenas
    (sealed memfds) and other pools' channels: kept, they would hold that
    memory for as long as the workers live (a forked worker has the
    mappings it needs already; a pool keeps its own arena's fd itself).
    Other pools' fork-server sockets (the only unix SOCK_SEQPACKET sockets
    libarena makes): kept, the server would not see EOF when its pool
    closes, and that close would wait a second for it.  pidfds, io_urings."""
    if link.startswith(_OWN_ANON) or link.startswith(_OWN_MEMFDS):
        return True
    if link.startswith("socket:"):
        try:
            s = socket.socket(fileno=fd)      # reads family and type
        except OSError:
            return False
        own = s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET
        s.detach()                            # the fd stays open
        return own
    if not link.startswith("/memfd:"):
        return False
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE)
    except OSError:
        return False


def _open_fds(mode):
    """The fds of this process that keep_fds=mode ('files' or 'all') keeps:
    every one but 0, 1, 2 (kept anyway) and libarena's own; 'files' only
    regular files and directories."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < 3:
            continue
        try:
            mode_bits = os.fstat(fd).st_mode
            if mode == "files" and not (stat.S_ISREG(mode_bits) or stat.S_ISDIR(mode_bits)):
                continue
            link = os.readlink("/proc/self/fd/" + name)
        except OSError:          # the listing's own fd, closed by now
            continue
        if not _libarenas(fd, link):
            out.append(fd)
    return sorted(out)


def _fd_of(x):
    """An fd, or an object's fileno() (as Pool's keep_fds takes them)."""
    fd = x if isinstance(x, int) else x.fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError("keep_fds: %r is not an fd" % (x,))
    return fd


def _keep_spec(keep_fds, start_method):
    """keep_fds checked, as restart() reads it: 'files', 'all' or a list."""
    if keep_fds is None:
        return "files" if start_method == "fork" else []
    if isinstance(keep_fds, str):
        if keep_fds not in ("files", "all"):
            raise ValueError("keep_fds must be 'files', 'all', or fds (or objects with "
                             "fileno()), not %r" % (keep_fds,))
        return keep_fds
    return list(keep_fds)


def _merge_fds(fds, spec):
    """fds without duplicates and the standard streams; ValueError when
    more than the workers can keep."""
    out = sorted({fd for fd in fds if fd >= 3})
    if len(out) > _MAX_KEEP:
        what = ("this process has %d %s open" % (len(out), "files" if spec == "files" else "fds")
                if isinstance(spec, str) else "%d fds" % len(out))
        raise ValueError(
            "keep_fds=%s: %s, and the workers can keep %d at most: list the ones the "
            "dataset reads in keep_fds=[...], or open them in the workers (on first use)"
            % (repr(spec) if isinstance(spec, str) else "[...]", what, _MAX_KEEP))
    return out


def _note_closed_fd(e, spec):
    """An EBADF from a worker: says which fds the workers have."""
    if spec == "files":
        kept = "the files (not pipes, sockets, devices) this process had open when they started"
    elif spec == "all":
        kept = "the fds this process had open when they started"
    elif spec:
        kept = "the fds listed in keep_fds only"
    else:
        kept = "no fd of this process but 0, 1 and 2 (keep_fds=[])"
    e.add_note("libarena.adapters: an fd closed in the workers? They keep %s: list it in "
               "keep_fds, pass keep_fds='all' (pipes and sockets too), or restart() after "
               "opening it" % kept)


# ---- Enqueuer ----------------------------------------------------------------

class Enqueuer:
    """Enqueuer(dataset, *, workers=None, depth=10, shuffle=False, seed=None,
    max_attempts=3, task_timeout=None, result_bytes=32 MiB,
    on_epoch_end=True, zero_copy=False, start_method='fork', keep_fds=None)

    dataset[i] for every i, computed by `workers` processes (default: the
    CPUs), in order (a shuffled order each epoch when shuffle), at most
    `depth` items in flight (Keras' max_queue_size).

    - ``for x in enq:`` or ``enq.epoch()``: one epoch; ``enq.forever()``:
      epoch after epoch (Keras' fit with steps_per_epoch=len(dataset)).
    - seed: the shuffles are random.Random(seed + epoch) permutations, so a
      run can be repeated.
    - A worker that dies is replaced and its item computed again; an item
      that kills its worker max_attempts times raises WorkerCrashed where it
      would have been yielded.  task_timeout (seconds) kills and retries a
      hung item (TaskTimeout after max_attempts).
    - An exception raised by dataset[i] is raised where item i would have
      been yielded, with the worker's traceback as its __cause__; it ends
      that epoch (the workers stay: the next epoch can start).
    - on_epoch_end: after each complete epoch, calls dataset.on_epoch_end()
      here when it exists (Keras' contract).  The workers keep the dataset
      they started with: state that on_epoch_end changes is not seen by
      them; call restart() after changing the dataset to start new ones.
    - result_bytes: each worker's result area; it must hold a few items.
    - zero_copy: False (the default) copies each large result once, here,
      into memory of its own (writable arrays and tensors), and frees the
      worker's result space at once.  True hands out read-only arrays over
      the result space itself, with no copy: each holds its worker's space
      until it is dropped, and one item kept for good (a batch kept for a
      plot, a list of every batch) stalls its worker for good once the
      worker's area wraps around to it -- the epoch then waits for ever.
      Use it when every item is dropped before the next few are read.
    - start_method: 'fork' (the default) forks the workers from this
      process now: they see the dataset as it is, copy-on-write, and
      nothing of it is pickled; make the Enqueuer before starting threads
      (a warning says when this process has some).  'spawn' starts fresh
      interpreters instead, for a parent that cannot fork safely (threads,
      CUDA, JAX; torch's multiprocessing_context='spawn'): the dataset is
      pickled here, once, into shared memory, and each worker unpickles a
      copy of its own (a replacement too).  The dataset must pickle, and
      its class be importable by name in a new interpreter (a module's, or
      the main script's, which the workers run as __mp_main__: guard the
      script with ``if __name__ == "__main__":``).  If not, TypeError (it
      does not pickle) or ValueError (a class of an interactive session)
      is raised here, before any worker starts.  restart() pickles it again:
      the new workers get the dataset as it is at restart() (if it no
      longer pickles, restart() raises and the old workers stay).
    - keep_fds: the fds the workers keep open besides 0, 1 and 2; the
      others are closed in them (reading one raises OSError EBADF, with a
      note saying what was kept).  None (the default) is 'files' under
      fork and nothing under spawn (a pickle carries no open file, and
      torch's spawned workers have none either).  'files': every regular
      file and directory this process has open when the workers start (an
      open() file, an h5py or sqlite file, a memmap's), as torch's forked
      workers have them.  'all': every fd, pipes and sockets too (torch's
      fork exactly).  Or a list of fds or objects with fileno(): those
      only.  libarena's own fds (arenas, other pools') are never kept.
      Why 'files' and not 'all' by default: a pipe this process closes
      must still reach EOF (a worker holding its write end would hang its
      reader), a connection must not be shared by every worker, and a
      notebook's dozens of sockets must not reach the limit below.
      restart() reads keep_fds again (the files open then, each object's
      fileno() then).  The workers keep 64 fds at most: more raises
      ValueError, naming the count (from restart() once the old workers
      have stopped: the Enqueuer is then closed until a restart() works).
    - close() (or ``with``) stops and reaps the workers.
    """

    def __init__(self, dataset, *, workers=None, depth=10, shuffle=False, seed=None,
                 max_attempts=3, task_timeout=None, result_bytes=32 << 20, on_epoch_end=True,
                 zero_copy=False, start_method="fork", keep_fds=None, _own_fds=None):
        self._pool = self._arena = None
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError("the dataset needs __len__ and __getitem__ (a Keras Sequence/"
                            "PyDataset, a torch map-style Dataset, a list)")
        if start_method not in ("fork", "spawn"):
            raise ValueError("start_method must be 'fork' or 'spawn'")
        self.dataset = dataset
        self.start_method = start_method
        self.keep_fds = _keep_spec(keep_fds, start_method)
        # A function giving the adapter's own fds the workers keep
        # (DataLoader's order, under spawn), with keep_fds.
        self._own_fds = _own_fds
        self.shuffle = shuffle
        self.seed = random.randrange(1 << 62) if seed is None else seed
        self.call_on_epoch_end = on_epoch_end
        self.zero_copy = zero_copy
        self.epochs_done = 0        # epochs read to the end
        self.epochs_started = 0
        # Large results as views (64 KiB and up): zero_copy hands them out,
        # and otherwise epoch() copies each once into a bytearray, so that
        # the arrays and tensors unpacked from it are writable.
        self._opts = dict(workers=workers, depth=depth, max_attempts=max_attempts,
                          task_timeout=task_timeout, result_bytes=result_bytes,
                          view_threshold=65536)
        self._n = 0
        self.restart()

    def restart(self):
        """Stops the workers and starts new ones with the dataset as it is
        now: forked from it, or under spawn sent to them pickled; they keep
        the fds keep_fds names now."""
        # The listed fds first: a closed file leaves the workers as they are.
        listed = [] if isinstance(self.keep_fds, str) else [_fd_of(x) for x in self.keep_fds]
        if self.start_method == "fork":
            self._stop()
            self._n = len(self.dataset)
            self._pool = Pool(_GetItem(self.dataset), size=max(1, self._n),
                              keep_fds=self._fds(listed), **self._opts)
            return
        # Pickled first: a dataset that does not pickle leaves the workers
        # as they are.  Our fds before it: the dataset may pickle their numbers.
        n = len(self.dataset)
        if self._own_fds:
            listed += self._own_fds()
        arena = _spawn_arena(self.dataset, n, "the dataset")
        self._stop()
        self._n, self._arena = n, arena
        try:
            self._pool = Pool(_spawned_item, self._arena, start_method="spawn",
                              keep_fds=self._fds(listed), **self._opts)
        except BaseException:
            self._stop()
            raise

    def _fds(self, listed):
        """listed, and what keep_fds='files'/'all' finds open: read after
        the old pool stopped (its fds closed, their numbers free for the
        new pool's own) and just before the new one forks."""
        scan = _open_fds(self.keep_fds) if isinstance(self.keep_fds, str) else []
        return _merge_fds(listed + scan, self.keep_fds)

    def order(self, epoch):
        """The indices of an epoch, in the order they are yielded."""
        idx = list(range(self._n))
        if self.shuffle:
            random.Random(self.seed + epoch).shuffle(idx)
        return idx

    def epoch(self):
        """Yields dataset[i] for one epoch, in order."""
        if self._pool is None:
            raise ValueError("the Enqueuer is closed")
        order = self.order(self.epochs_started)
        self.epochs_started += 1
        results = self._pool.imap(order)
        while True:
            try:
                buf = next(results)
            except StopIteration:
                break
            except OSError as e:
                if e.errno == errno.EBADF:
                    _note_closed_fd(e, self.keep_fds)
                raise
            if not self.zero_copy and isinstance(buf, memoryview):
                # One copy, and the worker's result space is free at once.
                data = bytearray(buf)
                buf.release()
                buf = data
            item = unpack(buf)
            del buf
            yield item
        self.epochs_done += 1
        end = getattr(self.dataset, "on_epoch_end", None)
        if self.call_on_epoch_end and callable(end):
            end()

    def __iter__(self):
        return self.epoch()

    def __len__(self):
        return self._n

    def forever(self):
        """Epoch after epoch, without end."""
        while True:
            yield from self.epoch()

    def worker_pids(self):
        return self._pool.worker_pids() if self._pool else []

    def stats(self):
        return self._pool.stats() if self._pool else {}

    def _stop(self):
        if self._pool is not None:
            self._pool.close(cancel=True)
            self._pool = None
        if self._arena is not None:      # spawn: the pickled dataset's
            self._arena.close()
            self._arena = None

    def close(self):
        self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._stop()
        except Exception:   # noqa: BLE001 - interpreter shutdown
            pass


# ---- DataLoader ---------------------------------------------------------------

def _default_collate():
    try:
        from torch.utils.data import default_collate
        return default_collate
    except ImportError:
        return _stack_collate


def _stack_collate(batch):
    """Without torch: numpy arrays stacked, tuples/lists/dicts collated by
    position or key, numbers into arrays, anything else as a list."""
    import numpy as np
    first = batch[0]
    if isinstance(first, tuple) or isinstance(first, list):
        return type(first)(_stack_collate(list(col)) for col in zip(*batch))
    if isinstance(first, dict):
        return {k: _stack_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (np.ndarray, int, float, np.generic)):
        return np.stack([np.asarray(b) for b in batch])
    return list(batch)


class _Batches:
    """Batch b of the current epoch: collate([dataset[i] for i in its
    indices]).  The epoch's order lives in a shared mapping that the parent
    rewrites between epochs: anonymous under fork (the workers inherit
    it); under spawn a memfd, whose fd the workers inherit at the same
    number (keep_fds) and map when they unpickle this."""

    def __init__(self, dataset, batch_size, drop_last, collate, spawn=False):
        n = len(dataset)
        self.dataset, self.n, self.bs, self.collate = dataset, n, batch_size, collate
        self.batches = n // batch_size if drop_last else (n + batch_size - 1) // batch_size
        self.spawn = spawn
        self.order, self.order_fd = None, -1
        self._map_order()

    def _map_order(self):
        size = max(8, 8 * self.n)
        if not self.spawn:
            self.order = mmap.mmap(-1, size)     # MAP_SHARED | MAP_ANONYMOUS
            return
        fd = os.memfd_create("libarena-order", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            self.order = mmap.mmap(fd, size)    # on a dup of fd, not its own
        except BaseException:
            os.close(fd)
            raise
        self.order_fd = fd

    def order_fds(self):
        """Spawn: the fd the workers map the order from (made again after
        close(), for a restart())."""
        if self.order_fd < 0:
            self._map_order()
        return (self.order_fd,)

    def close(self):
        if self.order_fd >= 0:
            self.order.close()
            os.close(self.order_fd)
            self.order_fd = -1

    def __getstate__(self):
        if not self.spawn:
            raise TypeError("a fork-mode DataLoader's batches are not pickled")
        assert self.order_fd >= 0, "the workers' fd is made before the pickle"
        state = dict(self.__dict__)
        state["order"] = None
        return state

    def __setstate__(self, state):
        # In a spawned worker: order_fd is the parent's, inherited.
        state["order"] = mmap.mmap(state["order_fd"], max(8, 8 * state["n"]),
                                   prot=mmap.PROT_READ)
        self.__dict__.update(state)

    def set_order(self, idx):
        self.order[:8 * len(idx)] = struct.pack("<%dq" % len(idx), *idx)

    def __len__(self):
        return self.batches

    def __getitem__(self, b):
        lo = b * self.bs
        hi = min(lo + self.bs, self.n)
        idx = struct.unpack_from("<%dq" % (hi - lo), self.order, 8 * lo)
        return self.collate([self.dataset[i] for i in idx])


def _loader_start_method(start_method, context):
    """start_method, or the one torch's multiprocessing_context names (a
    name or a multiprocessing context); 'fork' when neither is given."""
    if context is None:
        return start_method or "fork"
    name = context if isinstance(context, str) else context.get_start_method()
    # forkserver: a process that is not this one, the dataset pickled -- spawn.
    method = {"fork": "fork", "spawn": "spawn", "forkserver": "spawn"}.get(name)
    if method is None:
        raise ValueError("multiprocessing_context must be 'fork', 'spawn' or 'forkserver', "
                         "not %r" % (name,))
    if start_method is not None and start_method != method:
        raise ValueError("start_method=%r and multiprocessing_context=%r disagree"
                         % (start_method, name))
    return method


class DataLoader:
    """DataLoader(dataset, batch_size=1, shuffle=False, *, num_workers=None,
    collate_fn=None, drop_last=False, prefetch_factor=2, seed=None,
    max_attempts=3, timeout=None, result_bytes=32 MiB, zero_copy=False,
    start_method='fork', keep_fds=None, **ignored)

    The torch.utils.data.DataLoader arguments a map-style dataset uses, on
    libarena's workers: each task builds one batch (collate_fn over
    dataset[i] for the batch's indices; torch's default_collate when torch
    is installed) in a worker; batches come back in order (one copy here,
    or none with zero_copy=True: see Enqueuer), at most num_workers *
    prefetch_factor in flight, a new shuffle each epoch (iterate the loader
    again), the
    same workers for every epoch.  A killed worker's batch is built again
    and the epoch goes on.

    start_method 'fork' (the default) or 'spawn', as for Enqueuer; torch's
    multiprocessing_context ('fork', 'spawn', or a multiprocessing context)
    chooses it too ('forkserver' means 'spawn').  Under spawn the dataset
    and collate_fn reach the workers by pickle: each must pickle and be
    importable by name (TypeError or ValueError here otherwise), and
    restart() sends the dataset as it is then.  keep_fds as for Enqueuer:
    by default forked workers keep the files this process has open (the
    dataset's h5py file, say), as torch's do, and spawned ones none; the
    order of a spawned loader's batches is kept besides.  persistent_workers,
    pin_memory and worker_init_fn are accepted and ignored (the workers
    are always persistent).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, *, num_workers=None,
                 collate_fn=None, drop_last=False, prefetch_factor=2, seed=None,
                 max_attempts=3, timeout=None, result_bytes=32 << 20, zero_copy=False,
                 start_method=None, keep_fds=None, **ignored):
        if batch_size is None or batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        unknown = set(ignored) - {"persistent_workers", "pin_memory", "worker_init_fn",
                                  "multiprocessing_context", "generator", "sampler_seed"}
        if unknown:
            raise TypeError("unsupported DataLoader arguments: %s" % ", ".join(sorted(unknown)))
        if start_method not in (None, "fork", "spawn"):
            raise ValueError("start_method must be 'fork' or 'spawn'")
        start_method = _loader_start_method(start_method, ignored.get("multiprocessing_context"))
        spawn = start_method == "spawn"
        if spawn and collate_fn is not None:
            _spawn_payload(collate_fn, "collate_fn")     # an error that names it
        workers = num_workers or _cpus()
        self.dataset = dataset
        self.batch_size = batch_size
        self.start_method = start_method
        self._batches = _Batches(dataset, batch_size, drop_last, collate_fn or _default_collate(),
                                 spawn)
        self._shuffle = shuffle
        try:
            self._enq = Enqueuer(self._batches, workers=workers,
                                 depth=max(1, workers * (prefetch_factor or 2)), shuffle=False,
                                 seed=seed, max_attempts=max_attempts, task_timeout=timeout,
                                 result_bytes=result_bytes, on_epoch_end=False,
                                 zero_copy=zero_copy, start_method=start_method,
                                 keep_fds=keep_fds,
                                 _own_fds=self._batches.order_fds if spawn else None)
        except BaseException:
            self._batches.close()
            raise
        self._rng = random.Random(self._enq.seed)

    def __len__(self):
        return len(self._batches)

    def __iter__(self):
        idx = list(range(self._batches.n))
        if self._shuffle:
            self._rng.shuffle(idx)
        self._batches.set_order(idx)     # no batch of the last epoch in flight
        return self._enq.epoch()

    def worker_pids(self):
        return self._enq.worker_pids()

    @property
    def keep_fds(self):
        return self._enq.keep_fds

    def restart(self):
        """New workers with the dataset as it is now: forked from it, or
        under spawn sent to them pickled; they keep the fds keep_fds names
        now."""
        self._enq.restart()

    def close(self):
        self._enq.close()
        self._batches.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
