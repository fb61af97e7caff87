# SPDX-License-Identifier: MIT
"""The entry point of spawned workers (Pool(start_method='spawn'), and the
adapters' spawn mode).

Started as ``python -c <boot> <sys.path as JSON> <module> <qualname> <main>``
with the arena and channel fds inherited (ARENA_FD): imports the task
function by name and runs the worker loop until the pool stops.
"""
import importlib
import runpy
import signal
import sys


def import_main(main_path):
    """The parent's script, run as __mp_main__ (its `if __name__ ==
    "__main__":` block does not run) and standing for __main__, as
    multiprocessing's spawn does: what it defines can be found by name
    (a task function, or a class a pickle refers to)."""
    mod = sys.modules.get("__mp_main__")
    if mod is None:
        ns = runpy.run_path(main_path, run_name="__mp_main__")
        mod = type(sys)("__mp_main__")
        mod.__dict__.update(ns)
        sys.modules["__mp_main__"] = sys.modules["__main__"] = mod
    return mod


def _resolve(module, qualname, main_path):
    if module == "__main__":
        obj = import_main(main_path)
    else:
        obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv):
    # Ctrl-C goes to the parent, which stops the pool; the workers go with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module, qualname, main_path = argv
    func = _resolve(module, qualname, main_path)
    from . import _libarena
    from ._libarena import Arena
    return _libarena.worker_main(func, Arena)
