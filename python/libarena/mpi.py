# SPDX-License-Identifier: MIT
"""libarena.mpi: one arena per node shared by every MPI rank, from mpi4py.

    from mpi4py import MPI
    import libarena.mpi

    # every rank of the communicator calls it; one rank per node loads
    arena = libarena.mpi.share(MPI.COMM_WORLD, path="/data/set.arena")
    # or builds (the callable runs in one rank per node only)
    arena = libarena.mpi.share(MPI.COMM_WORLD, build=make_items, kind="pickle")

Every rank gets a libarena.Arena over the same sealed memfd as the other
ranks of its node: one copy of the dataset per node, whatever the number of
ranks.  It is the C library's arena_mpi_share() (libarena_mpi.so, built by
`make mpi`), so a rank that dies, a garbage message or a corrupt image give
every rank of the node an error within the timeout, never a hang:
CorruptArenaError (EBADMSG), FileNotFoundError, PermissionError (EPERM:
an unsealed memfd), ConnectionResetError (a rank of this node died),
TimeoutError (the bound passed: a rank elsewhere died or never came),
OSError otherwise.  After such an error, call comm.Abort(): a collective
with a dead rank may still be pending.

The library is looked for in $LIBARENA_MPI_LIBRARY, next to this package in
the build tree (build/libarena_mpi.so.1), then by the linker's search.
"""
import ctypes
import ctypes.util
import errno as _errno
import os

from ._libarena import Arena, CorruptArenaError

__all__ = ["share", "library"]


class _CreateOpts(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("align", ctypes.c_uint32),
                ("name", ctypes.c_char_p)]


_BUILD_FD = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _Opts(ctypes.Structure):
    # struct arena_mpi_opts (include/arena_mpi.h)
    _fields_ = [("flags", ctypes.c_uint32), ("_reserved", ctypes.c_uint32),
                ("path", ctypes.c_char_p), ("build", ctypes.c_void_p),
                ("build_fd", _BUILD_FD), ("build_arg", ctypes.c_void_p),
                ("create", ctypes.POINTER(_CreateOpts)),
                ("timeout_ns", ctypes.c_int64)]


_lib = None


def library():
    """The loaded libarena_mpi (ctypes.CDLL); OSError when it is missing."""
    global _lib
    if _lib is not None:
        return _lib
    here = os.path.dirname(os.path.abspath(__file__))
    names = [os.environ.get("LIBARENA_MPI_LIBRARY"),
             os.path.join(here, "..", "..", "libarena_mpi.so.1"),
             ctypes.util.find_library("arena_mpi")]
    last = None
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            break
        except OSError as e:
            last = e
    else:
        raise OSError(_errno.ENOENT, "libarena_mpi not found (make mpi; or set "
                      "LIBARENA_MPI_LIBRARY)" + (f": {last}" if last else ""))
    lib.arena_mpi_share.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
                                    ctypes.POINTER(_Opts)]
    lib.arena_mpi_share.restype = ctypes.c_int
    lib.arena_mpi_arena.argtypes = [ctypes.c_void_p]
    lib.arena_mpi_arena.restype = ctypes.c_void_p
    lib.arena_mpi_close.argtypes = [ctypes.c_void_p]
    lib.arena_mpi_close.restype = None
    lib.arena_fd.argtypes = [ctypes.c_void_p]
    lib.arena_fd.restype = ctypes.c_int
    lib.arena_strerror.argtypes = [ctypes.c_int]
    lib.arena_strerror.restype = ctypes.c_char_p
    _lib = lib
    return lib


def _comm_handle(comm):
    """The C MPI_Comm of an mpi4py communicator."""
    from mpi4py import MPI
    return ctypes.c_void_p(MPI._handleof(comm))


def _error(lib, r):
    err = -r
    msg = lib.arena_strerror(r).decode(errors="replace")
    if err == _errno.EBADMSG:
        return CorruptArenaError(err, msg)
    return OSError(err, msg)  # maps ENOENT, ECONNRESET, ETIMEDOUT... to subclasses


def share(comm, path=None, build=None, *, kind=None, timeout=120.0):
    """Collective over comm: the same Arena on every rank, one copy per node.

    path: an image file (Arena.save) that every node can read at that path;
    or build: a callable returning the items (as for Arena(items, kind=kind)),
    run by one rank per node.  timeout (seconds, None for none) bounds the
    whole share after the communicator's split.
    """
    if (path is None) == (build is None):
        raise ValueError("share() needs exactly one of path and build")
    lib = library()
    opts = _Opts()
    opts.timeout_ns = -1 if timeout is None else max(1, int(timeout * 1e9))
    failure = []

    def build_fd(_arg):
        try:
            a = Arena(build(), kind=kind)
            try:
                return os.dup(a.fileno())  # the library owns the copy
            finally:
                a.close()
        except BaseException as e:  # reported after the collective ends
            failure.append(e)
            return -_errno.ECANCELED

    cb = _BUILD_FD(build_fd)  # alive until share returns
    if path is not None:
        opts.path = os.fsencode(path)
    else:
        opts.build_fd = cb
    m = ctypes.c_void_p()
    r = lib.arena_mpi_share(ctypes.byref(m), _comm_handle(comm), ctypes.byref(opts))
    if failure:
        raise failure[0]
    if r < 0:
        if r == -_errno.ECANCELED:
            raise OSError(_errno.ECANCELED, "the node's loader failed to build the arena")
        raise _error(lib, r)
    try:
        return Arena.from_fd(lib.arena_fd(lib.arena_mpi_arena(m)))
    finally:
        lib.arena_mpi_close(m)
