/* SPDX-License-Identifier: MIT */
/*
 * arena-bench, pipe mode: what a C programmer does without libarena.  The
 * workers are forked after the sequence is built, so each holds it by
 * copy-on-write; only indexes and results travel, over pipes.  This is the
 * fair baseline for the arena: same sharing, but syscalls per task.
 */
#include <errno.h>

#include "bench.h"

static int pipe_get(struct worker_ctx *w, uint64_t index, const uint8_t *payload,
		    size_t plen, const void **item, size_t *len)
{
	const struct workload *wl = w->wl;

	if (index >= wl->count)
		return -ERANGE;
	*item = wl->blob + wl->off[index];
	*len = wl->off[index + 1] - wl->off[index];
	return 0;
}

const struct fork_mode bench_pipe_mode = {
	.mode = MODE_PIPE,
	.inherit_sequence = true,
	.get = pipe_get,
};
