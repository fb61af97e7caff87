# SPDX-License-Identifier: MIT
# The extension is built from the library's sources next door (../lib), so
# `pip install ./python` needs nothing but a C compiler, Python's headers and
# liburing-dev (./tools/install-deps python).
import glob
import os

from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))
top = os.path.dirname(here)
lib_src = sorted(glob.glob(os.path.join(top, "lib", "*.c")))
if not lib_src:
    raise SystemExit("libarena's sources (../lib) not found: install from a checkout, "
                     "`pip install ./python` at its top")
# The extension itself: one file a concern, sharing _libarena/_libarena.h.
ext_src = sorted(glob.glob(os.path.join(here, "_libarena", "*.c")))
if not ext_src:
    raise SystemExit("the extension's sources (python/_libarena/*.c) not found")

# The parts of the C API that arrive over time (see _libarena/_libarena.h).
with open(os.path.join(top, "include", "arena.h")) as f:
    header = f.read()
macros = [(name, "1") for name, word in (("HAVE_WORKER_INIT", "worker_init"),
                                         ("HAVE_SUBMIT_RANGE", "arena_pool_submit_range"),
                                         ("HAVE_KEEP_FDS", "keep_fds"),
                                         ("HAVE_RESULT_SPACE", "arena_pool_result_space"))
          if word in header]

setup(
    ext_modules=[
        Extension(
            "libarena._libarena",
            sources=[os.path.relpath(p, here) for p in [*ext_src, *lib_src]],
            depends=["_libarena/_libarena.h", "_libarena/exports.map"],
            include_dirs=[os.path.join(top, "include"), os.path.join(top, "lib")],
            extra_compile_args=["-std=gnu11", "-fvisibility=hidden", "-pthread"],
            extra_link_args=["-pthread", "-Wl,--version-script=" +
                             os.path.join(here, "_libarena", "exports.map")],
            define_macros=macros,
            libraries=["uring"],
        )
    ],
)
