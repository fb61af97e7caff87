# SPDX-License-Identifier: MIT
"""Arena: every item kind round trip, indexing, views, save/open, close."""
import gc
import os
import pickle

import numpy as np
import pytest

import libarena


def test_bytes_round_trip():
    items = [b"", b"a", bytes(range(256)) * 100, bytearray(b"xyz"), memoryview(b"mv")]
    with libarena.Arena(items) as a:
        assert a.kind == "bytes" and len(a) == len(items)
        for i, x in enumerate(items):
            v = a[i]
            assert isinstance(v, memoryview) and v.readonly
            assert bytes(v) == bytes(x)
        assert [bytes(v) for v in a] == [bytes(x) for x in items]


def test_pickle_round_trip():
    items = [("test_string_%d" % i, [1, 3, 4]) for i in range(1000)] + [None, {"k": 1.5}, 2 ** 80]
    with libarena.Arena(items) as a:
        assert a.kind == "pickle" and len(a) == len(items)
        assert list(a) == items
        assert pickle.loads(a.view(3)) == items[3]


@pytest.mark.parametrize("arr", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.array([1, 2, 3], dtype=">i8"),
    np.zeros((0, 5), dtype=np.uint8),
    np.array(3.5),
    np.array([True, False]),
    np.arange(6, dtype=np.complex128).reshape(2, 3, 1),
    np.arange(10, dtype=np.int16)[::2],          # not contiguous: stored contiguous
])
def test_ndarray_round_trip(arr):
    with libarena.Arena([arr, arr]) as a:
        assert a.kind == "ndarray"
        x = a[1]
        assert isinstance(x, np.ndarray)
        assert x.dtype == arr.dtype and x.shape == arr.shape
        assert np.array_equal(x, arr)
        assert not x.flags.writeable
        with pytest.raises(ValueError):
            x[...] = 0
        assert x.ctypes.data % 16 == 0            # aligned for any dtype


def test_ndarray_zero_copy():
    a = libarena.Arena([np.ones(1 << 20, dtype=np.uint8)])
    x, y = a[0], a[0]
    assert np.shares_memory(x, y)                 # both point into the mapping


def test_kind_forced_and_bad():
    a = libarena.Arena([b"abc"], kind="pickle")
    assert a[0] == b"abc" and a.kind == "pickle"
    with pytest.raises(ValueError):
        libarena.Arena([b"abc"], kind="json")
    with pytest.raises(TypeError):
        libarena.Arena([object()], kind="bytes")
    e = libarena.Arena([])
    assert len(e) == 0 and list(e) == []


def test_indexing_errors():
    a = libarena.Arena([b"0", b"1", b"2"])
    assert bytes(a[-1]) == b"2" and bytes(a[-3]) == b"0"
    for bad in (3, -4, 2 ** 70):
        with pytest.raises(IndexError):
            a[bad]
    with pytest.raises(TypeError):
        a["x"]
    with pytest.raises(TypeError):
        a[1.0]


def test_views_outlive_close():
    a = libarena.Arena([np.arange(1000, dtype=np.int64)])
    b = libarena.Arena([b"hello" * 1000])
    x, v = a[0], b[0]
    fd = a.fileno()
    a.close()
    b.close()
    assert a.closed and b.closed
    with pytest.raises(ValueError):
        a[0]
    with pytest.raises(ValueError):
        len(a)
    # the mappings are still there for the views
    assert int(x.sum()) == sum(range(1000))
    assert bytes(v[:5]) == b"hello"
    os.fstat(fd)                                  # not closed yet
    del x, v
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)                              # the last view closed it


def test_save_open_from_fd(tmp_path, no_leaks):
    items = [np.full((4, 4), i, dtype=np.float64) for i in range(10)]
    p = tmp_path / "a.arena"
    with libarena.Arena(items) as a:
        a.save(p)
        a.save(str(p) + "2")
        with libarena.Arena.from_fd(a.fileno()) as c:
            assert c.kind == "ndarray" and np.array_equal(c[9], items[9])
    with libarena.Arena.open(p) as b:
        assert b.kind == "ndarray" and len(b) == 10
        assert all(np.array_equal(b[i], items[i]) for i in range(10))
        assert b.nbytes > 10 * 128


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        libarena.Arena.open(tmp_path / "missing")
    assert e.value.filename is not None
    bad = tmp_path / "bad"
    bad.write_bytes(b"not an arena" * 100)
    with pytest.raises(libarena.CorruptArenaError) as e:
        libarena.Arena.open(bad)
    assert isinstance(e.value, OSError) and e.value.errno is not None
    r, w = os.pipe()
    try:
        with pytest.raises((ValueError, OSError)):
            libarena.Arena.from_fd(r)
    finally:
        os.close(r)
        os.close(w)


def test_not_picklable():
    with pytest.raises(TypeError):
        pickle.dumps(libarena.Arena([b"x"]))


def test_no_shm_file_no_fd_leak(no_leaks):
    for _ in range(3):
        with libarena.Arena([b"x" * 100000] * 10) as a:
            assert os.readlink("/proc/self/fd/%d" % a.fileno()).startswith("/memfd:")


def test_extension_exports_init_only():
    # The library linked into the extension stays private to it: with
    # libarena.so.1 also loaded (libarena.mpi does, RTLD_GLOBAL) the
    # extension's calls must still bind to its own copy.
    import shutil
    import subprocess
    from libarena import _libarena

    nm = shutil.which("nm")
    if not nm:
        pytest.skip("nm (binutils) not installed")
    out = subprocess.run([nm, "-D", "--defined-only", _libarena.__file__],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines()
             if len(line.split()) == 3 and line.split()[1] in "TDBR"}
    assert names == {"PyInit__libarena"}, sorted(names)
