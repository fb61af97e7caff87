# SPDX-License-Identifier: MIT
"""Task functions for the tests (module level: spawned workers import them)."""
import os
import signal
import time


def get_item(arena, i):
    return arena[i]


def double(arena, i):
    return i * 2


def pid_of(arena, i):
    return (i, os.getpid())


def raise_on_7(arena, i):
    if i == 7:
        raise KeyError("no item %d" % i)
    return i


def kill_self_on_13(arena, i):
    if i == 13:
        os.kill(os.getpid(), signal.SIGKILL)
    return i


def hang_on_5(arena, i):
    if i == 5:
        time.sleep(3600)
    return i


def slow(arena, i):
    time.sleep(0.002)
    return i


def sleep_long(arena, i):
    time.sleep(30)
    return i


def bytes_of(arena, i):
    return bytes([i % 256]) * (i * 1000)
