/* SPDX-License-Identifier: MIT */
/*
 * parent-cost: what one task costs the parent, in CPU time.  One thread
 * submits tiny tasks (the default task copying a 40-byte item) in batches of
 * up to 256 and reaps and releases them in batches, with W workers and D
 * tasks in flight; it prints the parent's CPU time (user + system, this
 * process only: the workers are not counted) and wall time per task.
 *
 * CPU time is what the parent's own bookkeeping costs (submission, the task
 * record, checks, delivery), and what the workers' costs (their CPU clocks);
 * a side that waits for the other spins a while before it sleeps, so the
 * faster side's figure includes some waiting: the slower side's is the
 * bound.  On a loaded machine CPU time varies far less than a throughput
 * does, so compare the minimum over several runs, alternating the builds
 * compared:
 *   for i in 1 2 3 4 5; do old/parent-cost 2 1024; new/parent-cost 2 1024; done
 *
 * WORK_US > 0 makes each task compute that long first (the ring-bench work
 * rows' shape: how much a parent sleep and wake costs).
 *
 * usage: parent-cost [WORKERS [DEPTH [TASKS [WORK_US]]]]   (2 1024 2000000 0)
 * Exit: 0, or 1 on any error or wrong result.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <arena.h>

#define ITEMS 1000
#define ITEM_BYTES 40
#define BATCH 256

static double cpu_ns(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e9 +
	       (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e3;
}

static double clock_ns(clockid_t id)
{
	struct timespec t;

	if (clock_gettime(id, &t) < 0)
		return 0;
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static double wall_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* The workers' CPU time, summed over their CPU clocks. */
static double workers_cpu_ns(struct arena_pool *p, unsigned w)
{
	double sum = 0;

	for (unsigned i = 0; i < w; i++) {
		pid_t pid = arena_pool_worker_pid(p, i);
		clockid_t id;

		if (pid > 0 && clock_getcpuclockid(pid, &id) == 0)
			sum += clock_ns(id);
	}
	return sum;
}

static unsigned work_us;

/* Computes for work_us of wall time (the worker is alone on its CPU when the
 * machine is quiet), then copies the item like the default task. */
static int task_work(struct arena_task *t)
{
	double end = wall_ns() + work_us * 1e3;

	while (wall_ns() < end)
		;
	return arena_task_get_item(t);
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "parent-cost: %s: %s\n", what, arena_strerror(r));
	return 1;
}

int main(int argc, char **argv)
{
	unsigned w = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
	unsigned d = argc > 2 ? (unsigned)atoi(argv[2]) : 1024;
	unsigned long n = argc > 3 ? strtoul(argv[3], NULL, 0) : 2000000, sub = 0, got = 0;
	unsigned long reaps = 0, submits = 0;
	struct arena_pool_opts o = { .workers = w, .depth = d };
	work_us = argc > 4 ? (unsigned)atoi(argv[4]) : 0;
	if (work_us)
		o.task = task_work;
	struct arena_sqe sq[BATCH];
	struct arena_cqe cq[BATCH];
	char item[ITEM_BYTES];
	struct arena_pool *p;
	struct arena *a;
	double c0, w0, k0;
	int r, i;

	if (!w || w > 64 || !d || !n) {
		fprintf(stderr, "usage: parent-cost [WORKERS [DEPTH [TASKS [WORK_US]]]]\n");
		return 1;
	}
	memset(item, 'x', sizeof(item));
	if ((r = arena_create(&a, NULL)) < 0)
		return fail("arena_create", r);
	for (i = 0; i < ITEMS; i++)
		if ((r = arena_append(a, item, sizeof(item), NULL)) < 0)
			return fail("arena_append", r);
	if ((r = arena_seal(a)) < 0)
		return fail("arena_seal", r);
	if ((r = arena_pool_create(&p, a, &o)) < 0)
		return fail("arena_pool_create", r);
	k0 = workers_cpu_ns(p, w);
	c0 = cpu_ns();
	w0 = wall_ns();
	while (got < n) {
		unsigned m = 0;

		while (m < BATCH && sub + m < n) {
			sq[m] = (struct arena_sqe){ .index = (sub + m) % ITEMS, .user_data = sub + m };
			m++;
		}
		if (m) {
			/* Wait only when nothing is in flight to reap instead. */
			r = arena_pool_submit(p, sq, m, got == sub ? -1 : 0);
			if (r > 0)
				sub += (unsigned long)r, submits++;
			else if (r != -EAGAIN)
				return fail("arena_pool_submit", r);
		}
		r = arena_pool_reap(p, cq, BATCH, sub > got ? -1 : 0);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return fail("arena_pool_reap", r);
		reaps++;
		for (i = 0; i < r; i++)
			if (cq[i].status || cq[i].len != ITEM_BYTES ||
			    memcmp(cq[i].data, item, ITEM_BYTES))
				return fail("a wrong result", -EBADMSG);
		if ((i = arena_pool_release_many(p, cq, (unsigned)r)) < 0)
			return fail("arena_pool_release_many", i);
		got += (unsigned long)r;
	}
	printf("workers %u depth %u tasks %lu: parent cpu %.1f ns/task, workers cpu %.1f, "
	       "wall %.1f ns/task; %.1f tasks a submit, %.1f a reap\n", w, d, n,
	       (cpu_ns() - c0) / n, (workers_cpu_ns(p, w) - k0) / n, (wall_ns() - w0) / n,
	       (double)n / submits, (double)n / reaps);
	if ((r = arena_pool_stop(p, ARENA_STOP_DRAIN, -1)) < 0)
		return fail("arena_pool_stop", r);
	arena_pool_destroy(p);
	arena_close(a);
	return 0;
}
