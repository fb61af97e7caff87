# memcheck over the plain suite:  make valgrind   (in make check)
# Every test program of the plain build runs under valgrind's memcheck,
# following forked and exec'd children (--trace-children=yes); any error
# fails it (--error-exitcode).  SAN=valgrind in the environment makes the
# tests trim their task counts (testutil.h under_sanitizer()).
# What runs: test_arena; test_pool (the pool's whole API, hostile workers,
# result space; counts trimmed); test_workers (the fork server, signals, fds,
# lost exit statuses); test_supervise (pools with forked workers: deaths,
# restarts, hangs, chaos), with ARENA_NO_URING=1 since valgrind 3.19 holds
# every thread while one waits in io_uring_enter, and the pool's no-pidfd
# supervision (valgrind lacks clone3 and pidfd_*); and the fuzz seeds and
# regression inputs of the image, env, recv and inspect harnesses, with what
# the fuzzers grew in build/fuzz/corpus (every validator a peer reaches).
# test_pass too; under valgrind (SAN=valgrind) it skips the three checks that
# cannot hold there: a spawn of a program that does not exist (valgrind is
# what gets exec'd), a forked child's exit code (valgrind's when it finds a
# leak in what the child inherited), arena-inspect --pid (pidfd_getfd).
VALGRIND ?= valgrind
VALGRIND_OPTS := --error-exitcode=99 --trace-children=yes --child-silent-after-fork=no \
	--leak-check=full --errors-for-leak-kinds=definite --track-fds=no -q
VALGRIND_TESTS ?= $(B)/tests/test_arena $(B)/tests/test_pool $(B)/tests/test_workers \
	$(B)/tests/test_supervise $(B)/tests/test_pass \
	"$(B)/tests/fuzz-replay-image tests/fuzz/corpus/image tests/fuzz/regress/image build/fuzz/corpus/image" \
	"$(B)/tests/fuzz-replay-env tests/fuzz/corpus/env tests/fuzz/regress/env build/fuzz/corpus/env" \
	"$(B)/tests/fuzz-replay-recv tests/fuzz/corpus/recv tests/fuzz/regress/recv build/fuzz/corpus/recv" \
	"$(B)/tests/fuzz-replay-inspect tests/fuzz/corpus/inspect tests/fuzz/regress/inspect build/fuzz/corpus/inspect"

.PHONY: valgrind
valgrind: all tests
	$(Q)command -v $(VALGRIND) >/dev/null || { echo "valgrind missing (tools/install-deps proof)"; exit 1; }
	$(Q)rc=0; for t in $(VALGRIND_TESTS); do \
		set -- $$t; log=$(B)/valgrind-$$(basename $$1).log; \
		echo "== valgrind $$t"; start=$$(date +%s); \
		SAN=valgrind ARENA_NO_URING=1 B=$(B) timeout -k 10 900 $(VALGRIND) $(VALGRIND_OPTS) $$t >$$log 2>&1; r=$$?; \
		tail -2 $$log; \
		echo "   exit $$r, $$(( $$(date +%s) - start )) s (log: $$log)"; \
		[ $$r -eq 0 ] || rc=1; \
	done; exit $$rc

CHECK_EXTRA += valgrind
