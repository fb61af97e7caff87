#!/bin/sh
# SPDX-License-Identifier: MIT
# The build as a user meets it: the shared library exports only arena_*
# under a SONAME, `make install` (PREFIX and DESTDIR) puts a usable header,
# libraries and pkg-config file in place, a program builds from pkg-config
# against the shared and against the static library and runs, and
# `make uninstall` removes every installed file.
# Env: B (build dir, default build), CC, SAN (a sanitizer build: skipped).
# Exit 0 ok, 77 skipped, anything else failed.  Writes only to a temp dir
# (and, through make, to the build dir).
set -u
LC_ALL=C
export LC_ALL

if [ -n "${SAN:-}" ]; then
	echo "test_build: skipped under SAN=$SAN (checks the plain build)"
	exit 77
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
B=${B:-build}
case $B in /*) ;; *) B=$root/$B ;; esac
CC=${CC:-cc}
# make must not see a sanitizer or build dir from our environment
unset SAN

for tool in nm readelf pkg-config make "$CC"; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "test_build: skipped: $tool not found"
		exit 77
	}
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/arena-build.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

fails=0
fail() {
	echo "test_build: FAIL: $*"
	fails=$((fails + 1))
}
ok() {
	echo "test_build: ok: $*"
}

# The library must be current: the check is of what make builds now.
make -s --no-print-directory -C "$root" lib >"$tmp/make.log" 2>&1 || {
	cat "$tmp/make.log"
	echo "test_build: FAIL: make lib"
	exit 1
}

so=$B/libarena.so
[ -e "$so" ] || { echo "test_build: FAIL: no $so"; exit 1; }

# --- exports ---------------------------------------------------------------
# nm shows versioned names as name@@LIBARENA_1 (binutils >= 2.35), and the
# version node itself as an absolute symbol LIBARENA_1.
nm -D --defined-only "$so" >"$tmp/nm" || { echo "test_build: FAIL: nm"; exit 1; }
awk '{ print $NF }' "$tmp/nm" | sed 's/@.*//' | grep -v '^LIBARENA_1$' | sort -u >"$tmp/exports"
bad=$(grep -v '^arena_' "$tmp/exports" | tr '\n' ' ')
if [ -n "$bad" ]; then
	fail "exported names without the arena_ prefix: $bad"
elif [ ! -s "$tmp/exports" ]; then
	fail "no exported symbols"
else
	ok "$(wc -l <"$tmp/exports") exports, all arena_*"
fi
# Every function the public header declares is in the library.
sed -n 's/^[a-z].*[ *]\(arena_[a-z0-9_]*\)(.*/\1/p' "$root/include/arena.h" | sort -u >"$tmp/declared"
missing=$(comm -23 "$tmp/declared" "$tmp/exports" | tr '\n' ' ')
if [ -n "$missing" ]; then
	fail "declared in arena.h but not exported: $missing"
else
	ok "all $(wc -l <"$tmp/declared") functions of arena.h exported"
fi
# Static archive: internal names are global there and can collide with a
# program's own (sys_close...).  Reported, not failed: fixing it needs the
# Makefile (ld -r + objcopy --localize-hidden, or prefixed names).
leaky=$(nm -g --defined-only "$B/libarena.a" 2>/dev/null |
	awk 'NF == 3 && $2 ~ /[TDRBC]/ { print $3 }' | grep -v '^arena_' | sort -u | tr '\n' ' ')
[ -n "$leaky" ] && echo "test_build: note: libarena.a defines global non-arena_ names: $leaky"

# --- SONAME ------------------------------------------------------------------
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" = "libarena.so.1" ]; then
	ok "SONAME $soname"
else
	fail "SONAME is '$soname', want libarena.so.1"
fi

# --- make install PREFIX -------------------------------------------------------
prefix=$tmp/prefix
if ! make -s --no-print-directory -C "$root" install PREFIX="$prefix" >"$tmp/make.log" 2>&1; then
	cat "$tmp/make.log"
	echo "test_build: FAIL: make install PREFIX=$prefix"
	exit 1
fi
installed="include/arena.h lib/libarena.a lib/libarena.so lib/libarena.so.1 lib/pkgconfig/libarena.pc"
for f in $installed; do
	[ -e "$prefix/$f" ] || fail "make install: $f missing"
done
[ -L "$prefix/lib/libarena.so.1" ] || fail "make install: libarena.so.1 is not a symlink"
[ -e "$prefix/lib/libarena.so.1.0.0" ] || fail "make install: libarena.so.1.0.0 missing"
cmp -s "$root/include/arena.h" "$prefix/include/arena.h" || fail "installed arena.h differs"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
pc_libdir=$(pkg-config --variable=libdir libarena)
pc_incdir=$(pkg-config --variable=includedir libarena)
if [ "$pc_libdir" != "$prefix/lib" ] || [ "$pc_incdir" != "$prefix/include" ]; then
	fail "libarena.pc names libdir=$pc_libdir includedir=$pc_incdir, want $prefix/lib and $prefix/include (stale .pc from another PREFIX?)"
else
	ok "libarena.pc points at the prefix"
fi
pc_version=$(pkg-config --modversion libarena)
[ "$pc_version" = "1.0.0" ] || fail "pkg-config --modversion: '$pc_version'"

cat >"$tmp/prog.c" <<'EOF'
#include <arena.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	struct arena *a, *b;
	const void *p;
	size_t len;
	uint64_t i;

	if (arena_create(&a, NULL) || arena_append(a, "zero", 4, NULL) ||
	    arena_append(a, "hello, arena", 12, &i) || arena_seal(a))
		return 1;
	if (arena_open_fd(&b, arena_fd(a), 0) || arena_get(b, i, &p, &len) ||
	    len != 12 || memcmp(p, "hello, arena", 12))
		return 2;
	arena_close(b);
	arena_close(a);
	puts("OK");
	return 0;
}
EOF

# Shared: must need libarena.so.1 and run from the prefix.
cflags=$(pkg-config --cflags libarena) || fail "pkg-config --cflags libarena"
libs=$(pkg-config --libs libarena) || fail "pkg-config --libs libarena"
# shellcheck disable=SC2086
if $CC -o "$tmp/prog-shared" "$tmp/prog.c" $cflags $libs 2>"$tmp/cc.log"; then
	readelf -d "$tmp/prog-shared" | grep -q 'NEEDED.*\[libarena\.so\.1\]' ||
		fail "shared program does not need libarena.so.1"
	out=$(LD_LIBRARY_PATH="$prefix/lib" "$tmp/prog-shared" 2>&1)
	if [ "$out" = OK ]; then ok "shared link: $cflags $libs"; else fail "shared program printed '$out'"; fi
else
	cat "$tmp/cc.log"
	fail "build against the shared library: $cflags $libs"
fi

# Static: libarena.a only (libc and liburing stay shared), from --static.
slibs=$(pkg-config --static --libs libarena) || fail "pkg-config --static --libs libarena"
slibs=$(printf ' %s ' "$slibs" | sed 's/ -larena / -Wl,-Bstatic -larena -Wl,-Bdynamic /')
# shellcheck disable=SC2086
if $CC -o "$tmp/prog-static" "$tmp/prog.c" $cflags $slibs 2>"$tmp/cc.log"; then
	if readelf -d "$tmp/prog-static" | grep -q 'NEEDED.*libarena'; then
		fail "static program still needs libarena.so"
	fi
	# no LD_LIBRARY_PATH: nothing of libarena is loaded at run time
	out=$(unset LD_LIBRARY_PATH; "$tmp/prog-static" 2>&1)
	if [ "$out" = OK ]; then ok "static link: $slibs"; else fail "static program printed '$out'"; fi
else
	cat "$tmp/cc.log"
	fail "build against the static library: $cflags $slibs"
fi

# --- make uninstall PREFIX -----------------------------------------------------
make -s --no-print-directory -C "$root" uninstall PREFIX="$prefix" >"$tmp/make.log" 2>&1 ||
	{ cat "$tmp/make.log"; fail "make uninstall PREFIX=$prefix"; }
left=$(cd "$prefix" && find . ! -type d | sort | tr '\n' ' ')
if [ -z "$left" ]; then ok "make uninstall removed everything"; else fail "left after uninstall: $left"; fi

# --- DESTDIR: staged install for /usr ---------------------------------------------
dest=$tmp/dest
if make -s --no-print-directory -C "$root" install PREFIX=/usr DESTDIR="$dest" >"$tmp/make.log" 2>&1; then
	for f in $installed; do
		[ -e "$dest/usr/$f" ] || fail "make install DESTDIR: usr/$f missing"
	done
	grep -q '^libdir=/usr/lib$' "$dest/usr/lib/pkgconfig/libarena.pc" 2>/dev/null ||
		fail "DESTDIR install: libarena.pc libdir is not /usr/lib: $(grep '^libdir=' "$dest/usr/lib/pkgconfig/libarena.pc" 2>/dev/null)"
	if grep -q "$dest" "$dest/usr/lib/pkgconfig/libarena.pc" 2>/dev/null; then
		fail "DESTDIR leaked into libarena.pc"
	fi
	make -s --no-print-directory -C "$root" uninstall PREFIX=/usr DESTDIR="$dest" >"$tmp/make.log" 2>&1 ||
		fail "make uninstall DESTDIR"
	left=$(cd "$dest" && find . ! -type d | sort | tr '\n' ' ')
	if [ -z "$left" ]; then ok "DESTDIR install and uninstall"; else fail "left after DESTDIR uninstall: $left"; fi
else
	cat "$tmp/make.log"
	fail "make install PREFIX=/usr DESTDIR=$dest"
fi

# The .pc in the build dir must not have been left naming a temp prefix
# that vanishes with this script (it is what `make install` installs next).
if grep -q "$tmp" "$B/libarena.pc" 2>/dev/null; then
	echo "test_build: note: $B/libarena.pc names this test's temp prefix"
fi

if [ "$fails" -ne 0 ]; then
	echo "test_build: $fails check(s) failed"
	exit 1
fi
echo "test_build: all checks passed"
exit 0
