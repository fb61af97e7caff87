#!/bin/sh
# Replays every fuzz seed and regression input through its harness, built
# with the normal compiler (and the suite's sanitizer, if any): a bug a
# fuzzer once found stays fixed without clang.  (tests/fuzz/README.md)
set -u
B=${B:-build}
here=$(dirname "$0")
rc=0
for h in image env recv inspect channel; do
	bin=$B/tests/fuzz-replay-$h
	[ -x "$bin" ] || { echo "fuzz replay: $bin missing"; exit 1; }
	if ! "$bin" "$here/fuzz/corpus/$h" "$here/fuzz/regress/$h"; then
		echo "fuzz replay: $h FAILED"
		rc=1
	fi
done
exit $rc
