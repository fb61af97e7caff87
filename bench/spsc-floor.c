/* SPDX-License-Identifier: MIT */
/*
 * spsc-floor: the least a tiny task can cost when it crosses between two
 * processes through shared memory, with none of the pool's protocol: one
 * parent thread and one forked worker, an SQ and a CQ of fixed-size records
 * and a result area, both sides spinning (nobody sleeps), depth tasks in
 * flight.  Each task moves what an arena pool task moves: a 32-byte task
 * record (index, user data, seq, op), the item's bytes copied into the
 * result area, a 32-byte completion (seq, offset, length, status); the
 * parent reads every result and checks it.  Also run with 16-byte records
 * and without result bytes, to show what each part costs.
 *
 * With THREADS 2 the parent has ring-bench's two-thread shape: a producer
 * thread submits batches of 64 and, with no room, sleeps on a futex until
 * half the depth is free again; a consumer thread reaps and checks.  Three
 * threads then share the CPUs where the pipe pools have two: this is the
 * floor of ring-bench's two-thread tiny rows.
 *
 * What it leaves out, and the pool has: exactly-once re-runs after a death
 * (the task in hand, the parent's own record), checks of everything the
 * worker wrote, result space given back out of order, a choice of worker,
 * sleeping when idle, locks for many threads.  So this is a floor for the
 * pool's tiny bulk rows (ring-bench, depth 1024), not a design.
 *
 * usage: spsc-floor [TASKS [DEPTH [THREADS]]]   (2000000 1024 1)
 * Prints one line per record shape: wall ns a task and each side's CPU ns.
 * Exit: 0, or 1 on any error or wrong result.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "spsc.h"

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 2000000;
	unsigned depth = argc > 2 ? (unsigned)atoi(argv[2]) : 1024;
	unsigned threads = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
	struct spsc_shared *s;
	int r = 0;

	if (!n || !depth || depth > SPSC_RING || (threads != 1 && threads != 2)) {
		fprintf(stderr, "usage: spsc-floor [TASKS [DEPTH <= %u [THREADS 1|2]]]\n",
			SPSC_RING);
		return 1;
	}
	if (!(s = spsc_map()))
		return perror("mmap"), 1;
	for (int k = SPSC_FULL32; k <= SPSC_NO_RESULT && !r; k++) {
		struct spsc_result res;

		if (spsc_run(s, (enum spsc_shape)k, n, depth, threads, &res) < 0) {
			fprintf(stderr, "spsc-floor: a wrong completion or result, or no fork\n");
			r = 1;
		} else if (threads == 2) {
			printf("%-46s  depth %u, 2 threads: %6.1f ns a task wall, CPU producer "
			       "%6.1f, consumer %6.1f, worker %6.1f\n", spsc_shape_name[k], depth,
			       res.wall_ns, res.parent_ns, res.cons_ns, res.worker_ns);
		} else {
			printf("%-46s  depth %u: %6.1f ns a task wall, CPU parent %6.1f, worker "
			       "%6.1f\n", spsc_shape_name[k], depth, res.wall_ns, res.parent_ns,
			       res.worker_ns);
		}
	}
	spsc_unmap(s);
	return r;
}
