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
 * THREADS 2 is ring-bench's two-thread shape: a producer thread submits
 * batches of 64, waiting for room, and a consumer thread reaps and releases
 * batches of 64; each thread's CPU time is printed (thread CPU clocks).
 *
 * usage: parent-cost [WORKERS [DEPTH [TASKS [WORK_US [THREADS]]]]]   (2 1024 2000000 0 1)
 * Exit: 0, or 1 on any error or wrong result.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
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

/* The two-thread shape's consumer. */
struct consumer {
	struct arena_pool *p;
	unsigned long n;
	const char *item;
	unsigned long reaps;
	double cpu_ns;
	int err;
};

static void *consume(void *arg)
{
	struct consumer *c = arg;
	struct arena_cqe cq[64];
	double c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	unsigned long got = 0;

	while (got < c->n) {
		int r = arena_pool_reap(c->p, cq, 64, -1), i;

		if (r < 0) {
			c->err = fail("arena_pool_reap", r);
			break;
		}
		c->reaps++;
		for (i = 0; i < r; i++)
			if (cq[i].status || cq[i].len != ITEM_BYTES ||
			    memcmp(cq[i].data, c->item, ITEM_BYTES)) {
				c->err = fail("a wrong result", -EBADMSG);
				return NULL;
			}
		if ((i = arena_pool_release_many(c->p, cq, (unsigned)r)) < 0) {
			c->err = fail("arena_pool_release_many", i);
			break;
		}
		got += (unsigned long)r;
	}
	c->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

/* Submits n tasks in batches of 64 from this thread while another reaps. */
static int two_threads(struct arena_pool *p, unsigned w, unsigned d, unsigned long n,
		       const char *item)
{
	struct consumer c = { .p = p, .n = n, .item = item };
	struct arena_pool_stats st;
	double k0 = workers_cpu_ns(p, w), c0, w0;
	unsigned long sub = 0, submits = 0;
	struct arena_sqe sq[64];
	pthread_t th;
	int r;

	if (pthread_create(&th, NULL, consume, &c) != 0)
		return fail("pthread_create", -EAGAIN);
	c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = wall_ns();
	while (sub < n) {
		unsigned m = 0;

		while (m < 64 && sub + m < n) {
			sq[m] = (struct arena_sqe){ .index = (sub + m) % ITEMS, .user_data = sub + m };
			m++;
		}
		for (unsigned off = 0; off < m; off += (unsigned)r) {
			r = arena_pool_submit(p, sq + off, m - off, -1);
			if (r <= 0) {
				pthread_join(th, NULL);
				return fail("arena_pool_submit", r < 0 ? r : -EIO);
			}
			submits++;
		}
		sub += m;
	}
	c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	pthread_join(th, NULL);
	if (c.err)
		return c.err;
	printf("workers %u depth %u tasks %lu, 2 threads: producer cpu %.1f ns/task, consumer "
	       "cpu %.1f, workers cpu %.1f, wall %.1f ns/task; %.1f tasks a submit, %.1f a "
	       "reap\n", w, d, n, c0 / n, c.cpu_ns / n, (workers_cpu_ns(p, w) - k0) / n,
	       (wall_ns() - w0) / n, (double)n / submits, (double)n / c.reaps);
	if (arena_pool_stats(p, &st) == 0)
		printf("  futex calls: producer %llu waits %llu wakes, consumer %llu/%llu, "
		       "workers %llu/%llu; wait ms: producer %.1f consumer %.1f workers %.1f\n",
		       (unsigned long long)st.producer_waits, (unsigned long long)st.producer_wakes,
		       (unsigned long long)st.consumer_waits, (unsigned long long)st.consumer_wakes,
		       (unsigned long long)st.worker_waits, (unsigned long long)st.worker_wakes,
		       st.producer_wait_ns / 1e6, st.consumer_wait_ns / 1e6, st.worker_wait_ns / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned w = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
	unsigned d = argc > 2 ? (unsigned)atoi(argv[2]) : 1024;
	unsigned long n = argc > 3 ? strtoul(argv[3], NULL, 0) : 2000000, sub = 0, got = 0;
	unsigned long reaps = 0, submits = 0;
	struct arena_pool_opts o = { .workers = w, .depth = d };
	unsigned threads = argc > 5 ? (unsigned)atoi(argv[5]) : 1;
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

	if (!w || w > 64 || !d || !n || (threads != 1 && threads != 2)) {
		fprintf(stderr, "usage: parent-cost [WORKERS [DEPTH [TASKS [WORK_US [THREADS 1|2]]]]]\n");
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
	if (threads == 2) {
		if ((r = two_threads(p, w, d, n, item)) != 0)
			return r;
		goto out;
	}
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
out:
	if ((r = arena_pool_stop(p, ARENA_STOP_DRAIN, -1)) < 0)
		return fail("arena_pool_stop", r);
	arena_pool_destroy(p);
	arena_close(a);
	return 0;
}
