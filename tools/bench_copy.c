/* SPDX-License-Identifier: MIT */
/*
 * arena-bench, copy mode: the seed's first attempt.  Pool.apply_async(get_item,
 * (seq, i)) pickles the whole sequence for every call and the worker
 * unpickles it to return one item.  Here every task carries the serialized
 * sequence through the worker's task pipe (bench_fork.c ships it); the worker
 * parses all of it, then returns item i.
 */
#include <errno.h>
#include <stdlib.h>

#include "bench.h"

static int copy_get(struct worker_ctx *w, uint64_t index, const uint8_t *payload,
		    size_t plen, const void **item, size_t *len)
{
	uint64_t count, *off;
	int r = sequence_parse(payload, plen, &count, &off);

	if (r < 0)
		return r;
	if (index >= count) {
		free(off);
		return -ERANGE;
	}
	/* Offsets count from the first record, after the u64 count. */
	*item = payload + 8 + off[index];
	*len = off[index + 1] - off[index];
	free(off);
	return 0;
}

const struct fork_mode bench_copy_mode = {
	.mode = MODE_COPY,
	.ship_sequence = true,
	.get = copy_get,
};
