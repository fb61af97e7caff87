#!/bin/sh
# The MPI part's tests: build/mpi/mpi-test under `mpirun --oversubscribe -np 4`
# on this one machine, as "2 nodes x 2 ranks" (ARENA_MPI_NODES=2) and as one
# node.  Each case has a hard bound (a hang is a failure).  Skips (exit 0,
# with a message) when Open MPI's mpirun is missing.
#
# Dead ranks: by default Open MPI's mpirun kills the whole job when a rank
# dies; the cases marked "recovery" run with --enable-recovery, so that the
# survivors live on and must each report an error themselves: at once on the
# dead rank's node (pidfd, socket hang-up), at the bound (here 8 s) on the
# other node.  One case checks the default: the job ends, non-zero, quickly.
set -u
B=${B:-build}
T=$B/mpi/mpi-test
if ! command -v mpirun >/dev/null 2>&1; then
	echo "MPI tests skipped: mpirun not found (tools/install-deps mpi)"
	exit 0
fi
if [ "$(id -u)" = 0 ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# No network transports to probe on one machine: faster start, no warnings.
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# Under SAN=address: Open MPI frees little of its own at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
DIR=$(mktemp -d /tmp/arena-mpi-test.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
BOUND=8        # the share / gather bound given to the library, seconds
LIMIT=90       # the most any one mpirun may take
pass=0 fail=0 failed=""

# run NAME EXPECT_RC REPORTS -- mpirun arguments...
# EXPECT_RC: 0, any (not a timeout), killed (mpirun ended the job);
# REPORTS: ranks that must print their line, as R (ok or the expected error)
# or R:CODE (this errno, e.g. -104 = ECONNRESET: seen at once, not at the
# bound).
run() {
	name=$1 want=$2 who=$3
	shift 4
	start=$(date +%s)
	timeout -k 5 $LIMIT mpirun --oversubscribe -np 4 "$@" >"$DIR/out" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	ok=1
	case $rc in 124|137) [ "$want" = killed ] || ok=0 ;; esac
	[ $rc -ge 124 ] && [ $rc -ne 137 ] && ok=0   # timeout's own codes
	if [ "$want" = 0 ] && [ $rc -ne 0 ]; then ok=0; fi
	if [ "$want" = killed ] && { [ $rc -eq 0 ] || [ $rc -eq 124 ]; }; then ok=0; fi
	for w in $who; do
		r=${w%%:*} code=${w#*:}
		if [ "$r" = "$w" ]; then
			grep -q "^mpi-test rank $r: .*as expected\|^mpi-test rank $r: ok" "$DIR/out" || ok=0
		else
			grep -q "^mpi-test rank $r: error $code " "$DIR/out" || ok=0
		fi
	done
	grep -q "FAILED" "$DIR/out" && ok=0
	if [ $ok = 1 ]; then
		pass=$((pass + 1)); echo "== mpi $name: ok (${secs}s)"
	else
		fail=$((fail + 1)); failed="$failed $name"
		echo "== mpi $name: FAILED (mpirun exit $rc after ${secs}s)"; cat "$DIR/out"
	fi
}
N2="-x ARENA_MPI_NODES=2"
RE="--enable-recovery"

run share-2x2        0 "0 1 2 3" -- $N2 $T share 2 "$DIR"
run share-1x4        0 "0 1 2 3" -- $T share 1 "$DIR"
run truncated-image  0 "0 1 2 3" -- $N2 $T corrupt trunc "$DIR"
run corrupt-table    0 "0 1 2 3" -- $N2 $T corrupt table "$DIR"
run missing-image    0 "0 1 2 3" -- $N2 $T corrupt missing "$DIR"
run unsealed-memfd   0 "0 1 2 3" -- $N2 $T corrupt unsealed "$DIR"
run garbage-arena    0 "0:-74 1:-74 2:-74 3:-74" -- $N2 -x ARENA_MPI_FAULT=garbage-arena:2 $T fail $BOUND
run garbage-hello    0 "0:-71 1:-71 2:-71 3:-71" -- $N2 -x ARENA_MPI_FAULT=garbage-hello:1 $T fail $BOUND
run kill-before-share any "0:-110 2:-110 3:-110" -- $RE $N2 -x ARENA_MPI_FAULT=kill-before-share:1 $T fail $BOUND
run kill-before-connect any "0:-104 2:-110 3:-110" -- $RE $N2 -x ARENA_MPI_FAULT=kill-before-connect:1 $T fail $BOUND
run kill-after-recv  any "2:-104 0:-110 1:-110" -- $RE $N2 -x ARENA_MPI_FAULT=kill-after-recv:3 $T fail $BOUND
run kill-loader      any "1:-104 2:-110 3:-110" -- $RE $N2 -x ARENA_MPI_FAULT=kill-loader-loaded:0 $T fail $BOUND
run kill-during-run  any "0:-104 2:-110 3:-110" -- $RE $N2 $T killrun 1 $BOUND
run kill-default-mpirun killed "" -- -x ARENA_MPI_FAULT=kill-after-recv:1 $T fail $BOUND

# arena-mpi-bench, small: every phase runs and prints its goals line.
start=$(date +%s)
if timeout -k 5 $LIMIT mpirun --oversubscribe -np 4 $B/tools/arena-mpi-bench --items 2000 \
	--tasks 200 --image-mib 8 --reps 1 --image "$DIR/bench.img" >"$DIR/out" 2>&1 &&
	grep -q "^goals  memory per node" "$DIR/out" && [ ! -e "$DIR/bench.img" ]; then
	pass=$((pass + 1)); echo "== mpi bench-small: ok ($(( $(date +%s) - start ))s)"
else
	fail=$((fail + 1)); failed="$failed bench-small"; echo "== mpi bench-small: FAILED"; cat "$DIR/out"
fi
echo "[mpi] $pass passed, $fail failed"
[ -n "$failed" ] && echo "failed:$failed"
[ $fail -eq 0 ]
