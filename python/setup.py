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

setup(
    ext_modules=[
        Extension(
            "libarena._libarena",
            sources=[os.path.relpath(p, here) for p in ["_libarena.c", *lib_src]],
            include_dirs=[os.path.join(top, "include"), os.path.join(top, "lib")],
            extra_compile_args=["-std=gnu11", "-fvisibility=hidden", "-pthread"],
            extra_link_args=["-pthread"],
            libraries=["uring"],
        )
    ],
)
