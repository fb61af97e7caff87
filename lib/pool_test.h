/* SPDX-License-Identifier: MIT */
/*
 * Test-only knobs of a pool: not part of the API (tests and benchmarks
 * include this with -Ilib).  ARENA_POOL_TEST_OPTS says that the opts passed
 * to arena_pool_create are the first member of a struct arena_pool_test_opts.
 */
#ifndef ARENA_POOL_TEST_H
#define ARENA_POOL_TEST_H

#include "arena.h"

#define ARENA_POOL_NO_SUPERVISE (1u << 31) /* do not watch workers (benchmarks
                                            * of the supervision cost only) */
#define ARENA_POOL_TEST_OPTS (1u << 30)    /* opts is a arena_pool_test_opts */

struct arena_pool_test_opts {
	struct arena_pool_opts o;
	uint32_t ring_index_base; /* first ring index (wrap-around tests) */
	uint32_t fail_starts;     /* the fork server fails this many worker
	                           * starts after the first ones with -EAGAIN */
	uint32_t fail_watches;    /* this many io_uring pidfd watches after the
	                           * first ones fail (the slot is then polled) */
	uint32_t no_pidfd;        /* supervise without pidfds, as where the
	                           * kernel or valgrind has none */
	/* Called by every worker start, in the thread that starts it (its
	 * locks held), with received 0 between the close of the fd kept free
	 * for the pidfd and the receipt of the fork server's answer, then
	 * with received 1 right after that receipt: a test plays another
	 * thread of the application there, one that opens fds. */
	void (*spawn_race)(void *arg, int received);
	void *spawn_race_arg;
	uint32_t runs;            /* batches go in runs (channel.h chan_sqe)
	                           * whatever the tasks' time: supervision
	                           * tests kill workers inside runs */
};

#endif
