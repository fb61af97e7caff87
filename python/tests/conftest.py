# SPDX-License-Identifier: MIT
import gc
import os

import pytest


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def children():
    """Pids of this process's live children."""
    me = str(os.getpid())
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                out.append(int(d))
    return out


def shm_users(pid="self"):
    """The /dev/shm files a process has open or mapped (other programs on
    the machine use /dev/shm too: a listing of it proves nothing)."""
    used = set()
    try:
        for fd in os.listdir("/proc/%s/fd" % pid):
            try:
                t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("/dev/shm/"):
                used.add(t)
        with open("/proc/%s/maps" % pid) as f:
            used.update(line.split(None, 5)[5].strip() for line in f
                        if "/dev/shm/" in line)
    except OSError:
        pass
    return used


@pytest.fixture
def no_leaks():
    """Checks that what the test made is gone after it: fds, child
    processes; and that no /dev/shm file was open or mapped at the end."""
    gc.collect()
    fds = open_fds()
    yield
    gc.collect()
    assert open_fds() - fds == set(), "fds leaked"
    assert shm_users() == set(), "/dev/shm files in use"
    assert children() == [], "worker processes left"
