# SPDX-License-Identifier: MIT
"""pybench, the libarena rows (written against the libarena Python module)."""
from pb_common import Skipped


def check_available():
    try:
        import libarena  # noqa: F401
    except ImportError as e:
        raise Skipped("libarena module not importable (%s)" % e)
