#!/bin/sh
# CI check of the README's install path: a fresh venv that sees Debian's
# packages, `pip install ./python` with no network and no build isolation
# (setuptools from Debian), then the module used from outside the tree.
# Works on a copy of the sources, so the checkout stays clean.
set -eu
PYTHON=${PYTHON:-/usr/bin/python3}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
(cd "$top" && tar cf - include lib python/_libarena python/setup.py python/pyproject.toml \
	python/README-python.md python/libarena) | (cd "$tmp/src" && tar xf -)
"$PYTHON" -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install -q --no-index --no-build-isolation --disable-pip-version-check "$tmp/src/python"
cd "$tmp"
"$tmp/venv/bin/python" - <<'PY'
import libarena, sys
assert libarena.__file__.startswith(sys.prefix), libarena.__file__
a = libarena.Arena([("item", i) for i in range(100)])
def task(arena, i):
    return arena[i][1] * 2
with libarena.Pool(task, a, workers=2) as p:
    assert p.map() == [2 * i for i in range(100)]
print("python-install-check: ok (venv install from ./python, no network)")
PY
