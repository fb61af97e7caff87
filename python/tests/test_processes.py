# SPDX-License-Identifier: MIT
"""Worker processes: deaths, poison items, hangs, signals, the GIL, fork with
threads, the spawn mode, Python's fork hooks, memory."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import libarena
import tasks
from conftest import shm_users


def test_worker_sigkilled_mid_run(no_leaks):
    """Every item delivered exactly once, in order, across a worker's death."""
    n = 2000
    with libarena.Pool(tasks.slow, libarena.Arena([b""] * n), workers=3) as p:
        out = []
        for x in p.imap():
            out.append(x)
            if len(out) == 100:
                os.kill(p.worker_pids()[0], signal.SIGKILL)
        assert out == list(range(n))
        s = p.stats()
        assert s["crashes"] >= 1 and s["workers_restarted"] >= 1
        assert s["reaped"] == n


def test_poison_item(no_leaks):
    with libarena.Pool(tasks.kill_self_on_13, libarena.Arena([b""] * 30), workers=2,
                       max_attempts=2) as p:
        it = p.imap()
        got = []
        while True:
            try:
                got.append(next(it))
            except StopIteration:
                break
            except libarena.WorkerCrashed as e:
                crashed = e
                got.append("crashed")
        assert got == [i if i != 13 else "crashed" for i in range(30)]
        assert "item 13" in str(crashed) and crashed.errno == 130   # EOWNERDEAD
        assert p.submit(12).result() == 12                           # still working


def test_hang_with_deadline(no_leaks):
    with libarena.Pool(tasks.hang_on_5, libarena.Arena([b""] * 10), workers=2,
                       task_timeout=0.5, max_attempts=1) as p:
        fs = [p.submit(i) for i in range(10)]
        with pytest.raises(libarena.TaskTimeout) as e:
            fs[5].result()
        assert isinstance(e.value, TimeoutError) and isinstance(e.value, libarena.WorkerCrashed)
        assert [f.result() for f in fs if f.index != 5] == [i for i in range(10) if i != 5]


def test_ctrl_c_during_a_blocking_wait(no_leaks):
    """SIGINT during one long wait inside the extension raises
    KeyboardInterrupt at once; and during Future.result()."""
    with libarena.Pool(tasks.sleep_long, libarena.Arena([b""]), workers=1) as p:
        f = p.submit(0)
        for wait in (lambda: p._p.reap(16, 30_000_000_000), f.result):
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                wait()
            assert time.monotonic() - t0 < 20        # not the 30 s wait
            timer.join()
        p.terminate()


def test_gil_released_while_waiting(no_leaks):
    """Another thread runs during one blocking wait inside the extension: it
    leaves time stamps inside the wait's window (with the GIL held, it could
    run only before and after)."""
    with libarena.Pool(tasks.sleep_long, libarena.Arena([b""]), workers=1) as p:
        f = p.submit(0)
        stamps, stop = [], threading.Event()

        def spin():
            while not stop.is_set():
                stamps.append(time.monotonic())
                time.sleep(0)               # (releases the GIL itself too)
                for _ in range(1000):
                    pass

        t = threading.Thread(target=spin)
        t.start()
        while not stamps:
            time.sleep(0.01)
        t0 = time.monotonic()
        assert p._p.reap(16, 1_000_000_000) == []          # one 1 s wait in C
        t1 = time.monotonic()
        stop.set()
        t.join()
        inside = [x for x in stamps if t0 + 0.2 < x < t1 - 0.2]
        assert inside, "the other thread did not run while we waited"
        with pytest.raises(TimeoutError):
            f.result(timeout=0.2)
        p.terminate()


def test_fork_with_threads_warns(no_leaks):
    ev = threading.Event()
    t = threading.Thread(target=ev.wait)
    t.start()
    try:
        with pytest.warns(RuntimeWarning, match="threads"):
            p = libarena.Pool(tasks.double, libarena.Arena([b""] * 10), workers=1)
        with p:
            assert p.map() == [2 * i for i in range(10)]
    finally:
        ev.set()
        t.join()


def test_spawn_mode(no_leaks):
    a = libarena.Arena([("test_string_%d" % i, [1, 3, 4]) for i in range(500)])
    with libarena.Pool(tasks.get_item, a, workers=2, start_method="spawn") as p:
        assert p.map() == [("test_string_%d" % i, [1, 3, 4]) for i in range(500)]
        with open("/proc/%d/cmdline" % p.worker_pids()[0], "rb") as f:
            assert b"libarena._worker" in f.read()   # exec'd, not forked
    arr = libarena.Arena([np.full(10, i) for i in range(20)])
    with libarena.Pool(tasks.get_item, arr, workers=1, start_method="spawn") as p:
        assert [int(x.sum()) for x in p.imap()] == [10 * i for i in range(20)]
        # a worker killed in spawn mode is replaced by a spawned one
        os.kill(p.worker_pids()[0], signal.SIGKILL)
        assert [int(x.sum()) for x in p.map(range(5))] == [0, 10, 20, 30, 40]


def test_spawn_mode_from_a_script(tmp_path):
    """A task defined in the main script, as multiprocessing's spawn allows."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import libarena

        def square(arena, i):
            return i * i

        if __name__ == "__main__":
            with libarena.Pool(square, size=50, workers=2, start_method="spawn") as p:
                print(sum(p.map()))
    """))
    env = dict(os.environ)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(sum(i * i for i in range(50)))


def test_fork_hooks_run_in_workers(no_leaks):
    """PyOS_AfterFork_Child ran: os.register_at_fork callbacks, random
    reseeded (workers do not share the parent's sequence), threading reset."""
    marks = []
    os.register_at_fork(after_in_child=lambda: marks.append(os.getpid()))
    random.seed(1234)

    def task(a, i):
        return (os.getpid(), list(marks), random.random(), threading.active_count(),
                threading.current_thread() is threading.main_thread())

    with libarena.Pool(task, size=20, workers=2) as p:
        out = p.map()
    for pid, m, _r, nthreads, is_main in out:
        assert m == [pid]
        assert nthreads == 1 and is_main
    assert len({r for _, _, r, _, _ in out}) == 20       # no two workers alike
    random.seed(1234)
    parent_first = random.random()
    assert parent_first not in {r for _, _, r, _, _ in out[:1]}


def _freeze_count(a, i):
    import gc
    return gc.get_freeze_count()


def test_inherited_objects_frozen_in_workers(no_leaks):
    """gc.freeze() in forked workers: their collections never write to the
    headers of the parent's objects (which would copy those pages)."""
    import gc
    keep = [[i] for i in range(20000)]                    # noqa: F841 - inherited by fork
    with libarena.Pool(_freeze_count, size=2, workers=2) as p:
        assert all(n >= 20000 for n in p.map())
    assert gc.get_freeze_count() == 0                     # not in the parent


def test_no_shm_file_used(no_leaks):
    a = libarena.Arena([np.ones(1000)] * 10)
    with libarena.Pool(tasks.get_item, a, workers=2) as p:
        assert len(p.map()) == 10
        assert shm_users() == set()
        for pid in p.worker_pids():
            assert shm_users(pid) == set()


def test_small_dev_shm():
    """With /dev/shm mounted at 64 MiB (a container's default), a 256 MiB arena
    and the pool over it work: nothing lives in /dev/shm."""
    code = textwrap.dedent("""
        import numpy as np, libarena
        a = libarena.Arena(np.full(1 << 20, i, dtype=np.uint8) for i in range(256))
        def total(arena, i):
            return int(arena[i].sum())
        with libarena.Pool(total, a, workers=2) as p:
            assert p.map() == [(i % 256) << 20 for i in range(256)]
        print("ok")
    """)
    sh = 'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$0" -c "$1"'
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c", sh, sys.executable, code],
                           capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.skip("no unshare")
    if r.returncode != 0 and ("Operation not permitted" in r.stderr or "mount:" in r.stderr):
        pytest.skip("cannot remount /dev/shm here: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def _private_dirty():
    """Private_Dirty of every mapping but the arena's: where copy-on-write
    copies land.  (The arena's own pages count as private dirty too when this
    worker is the only process mapping them, but they are shared memory.)"""
    total, skip = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                skip = "/memfd:" in line
            elif first == "Private_Dirty:" and not skip:
                total += int(line.split()[1]) * 1024
    return total


N_OBJ = 200000
_LIST = None


def _read_all_list(a, i):
    before = _private_dirty()
    for x in _LIST:
        x[1][0]
    return _private_dirty() - before


def _read_all_arena(a, i):
    before = _private_dirty()
    for k in range(len(a)):
        a[k][1][0]
    return _private_dirty() - before


def test_worker_memory_flat_with_arena(no_leaks):
    """The copy-on-read growth PyTorch users hit: a worker reading every
    object of a list inherited by fork dirties its pages (reference counts);
    reading every item of the arena does not."""
    global _LIST
    items = [("test_string_%d" % i, [1, 3, 4]) for i in range(N_OBJ)]
    _LIST = items
    with libarena.Pool(_read_all_list, size=1, workers=1) as p:
        grown_list = p.submit(0).result()
    _LIST = None
    with libarena.Arena(items) as a:
        del items
        with libarena.Pool(_read_all_arena, a, workers=1) as p:
            grown_arena = p.submit(0).result()
    print("Private_Dirty growth (arena mapping excluded): list %d KiB, arena %d KiB" % (grown_list >> 10, grown_arena >> 10))
    assert grown_list > 20 << 20                  # ~ the list's objects, copied
    assert grown_arena < 4 << 20                  # flat: a few pages of allocator
    assert grown_list > 10 * max(grown_arena, 1 << 20)


def test_replacement_while_another_thread_runs(no_leaks):
    """The issue's deadlock: a worker replaced while another Python thread is
    busy (it may hold the GIL when the replacement starts).  The replacement
    must run Python tasks, and every item comes back once, in order."""
    with libarena.Pool(tasks.slow, libarena.Arena([b""] * 600), workers=2) as p:
        stop = threading.Event()

        def busy():
            x = 0
            while not stop.is_set():
                x += 1

        t = threading.Thread(target=busy)
        t.start()
        try:
            out = []
            for x in p.imap():
                out.append(x)
                if len(out) in (50, 250):
                    os.kill(p.worker_pids()[len(out) % 2], signal.SIGKILL)
            assert out == list(range(600))
            assert p.stats()["workers_restarted"] >= 2
        finally:
            stop.set()
            t.join()


def test_parent_fds_in_workers(tmp_path, no_leaks):
    """Forked workers close the parent's files unless kept (keep_fds)."""
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as f:
        fd = f.fileno()

        def read_at(a, i):
            return os.pread(fd, 1, i)

        with libarena.Pool(read_at, size=10, workers=1, keep_fds=[f]) as p:
            assert b"".join(p.map()) == b"0123456789"
        with libarena.Pool(read_at, size=1, workers=1) as p:
            with pytest.raises(OSError) as e:
                p.submit(0).result()
            assert e.value.errno == 9                    # EBADF: closed in the worker


def test_examples_seed_runs():
    """python/examples/seed.py (the README's measurement) keeps working."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, os.path.join(here, "..", "examples", "seed.py"),
                        "--items", "3000", "--reps", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["stream", "futures", "imap"]
