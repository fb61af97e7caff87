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
 * What it leaves out, and the pool has: exactly-once re-runs after a death
 * (the task in hand, the parent's own record), checks of everything the
 * worker wrote, result space given back out of order, a choice of worker,
 * sleeping when idle, locks for many threads.  So this is a floor for the
 * pool's tiny bulk rows (ring-bench, depth 1024), not a design.
 *
 * usage: spsc-floor [TASKS [DEPTH]]   (2000000 1024)
 * Prints one line per record shape: wall ns a task and each side's CPU ns.
 * Exit: 0, or 1 on any error or wrong result.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpu_relax.h"

#define ITEMS 1000
#define ITEM_BYTES 40
#define RING 2048u                /* SQ and CQ slots, a power of two */
#define RES_BYTES (1u << 20)      /* result area, a power of two */
#define LINE 64

struct rec32 {
	uint64_t index, user_data, seq;
	uint32_t op, pad;
};

struct cqe32 {
	uint64_t seq, off, len;
	int32_t status;
	uint32_t flags;
};

struct rec16 {
	uint32_t index, op;
	uint64_t seq;
};

struct cqe16 {
	uint32_t seq, off, len;
	int32_t status;
};

struct shared {
	_Alignas(LINE) _Atomic uint32_t sq_tail;   /* parent */
	_Alignas(LINE) _Atomic uint32_t sq_head;   /* worker */
	_Alignas(LINE) _Atomic uint32_t cq_tail;   /* worker */
	_Alignas(LINE) _Atomic uint32_t cq_head;   /* parent */
	_Alignas(LINE) _Atomic uint32_t stop;
	_Alignas(LINE) uint8_t sq[RING * sizeof(struct rec32)];
	_Alignas(LINE) uint8_t cq[RING * sizeof(struct cqe32)];
	_Alignas(LINE) uint8_t items[ITEMS][ITEM_BYTES];
	_Alignas(4096) uint8_t res[RES_BYTES];
};

enum shape { FULL32, SMALL16, NO_RESULT };

static const char *const shape_name[] = {
	"32-byte task and completion, 40 result bytes",
	"16-byte task and completion, 40 result bytes",
	"32-byte task and completion, no result bytes",
};

static double clock_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* The worker: take each task, copy its item into the result area, post. */
static void worker(struct shared *s, enum shape k)
{
	uint32_t head = 0, tail = 0, res = 0;

	for (;;) {
		uint32_t t = atomic_load_explicit(&s->sq_tail, memory_order_acquire);

		if (t == head) {
			if (atomic_load_explicit(&s->stop, memory_order_relaxed))
				_exit(0);
			cpu_relax();
			continue;
		}
		for (; head != t; head++, tail++) {
			uint64_t index, seq, len = k == NO_RESULT ? 0 : ITEM_BYTES;

			if (k == SMALL16) {
				const struct rec16 *r = (const struct rec16 *)s->sq + (head & (RING - 1));

				index = r->index;
				seq = r->seq;
			} else {
				const struct rec32 *r = (const struct rec32 *)s->sq + (head & (RING - 1));

				index = r->index;
				seq = r->seq;
			}
			if (index >= ITEMS)
				_exit(2);
			if (len)
				memcpy(s->res + res, s->items[index], len);
			/* Wait for CQ room (the parent reaps in bulk). */
			while (tail - atomic_load_explicit(&s->cq_head, memory_order_acquire) >= RING)
				cpu_relax();
			if (k == SMALL16) {
				struct cqe16 *c = (struct cqe16 *)s->cq + (tail & (RING - 1));

				c->seq = (uint32_t)seq;
				c->off = res;
				c->len = (uint32_t)len;
				c->status = 0;
			} else {
				struct cqe32 *c = (struct cqe32 *)s->cq + (tail & (RING - 1));

				c->seq = seq;
				c->off = res;
				c->len = len;
				c->status = 0;
				c->flags = 0;
			}
			res = (res + 64) & (RES_BYTES - 1);
			atomic_store_explicit(&s->sq_head, head + 1, memory_order_release);
			atomic_store_explicit(&s->cq_tail, tail + 1, memory_order_release);
		}
	}
}

static int run(struct shared *s, enum shape k, uint64_t n, unsigned depth)
{
	uint64_t sub = 0, got = 0;
	uint32_t cqh = 0;
	double w0, c0, k0;
	clockid_t wclk;
	pid_t pid;
	int st;

	memset(s, 0, offsetof(struct shared, items));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return perror("fork"), 1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		worker(s, k);
	}
	if (clock_getcpuclockid(pid, &wclk) != 0)
		return fprintf(stderr, "spsc-floor: no CPU clock for the worker\n"), 1;
	k0 = clock_ns(wclk);
	c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = clock_ns(CLOCK_MONOTONIC);
	while (got < n) {
		uint32_t t;

		/* Submit up to depth in flight, then publish once. */
		for (; sub < n && sub - got < depth; sub++) {
			uint32_t slot = (uint32_t)sub & (RING - 1);

			if (k == SMALL16) {
				struct rec16 *r = (struct rec16 *)s->sq + slot;

				r->index = (uint32_t)(sub % ITEMS);
				r->op = 0;
				r->seq = sub;
			} else {
				struct rec32 *r = (struct rec32 *)s->sq + slot;

				r->index = sub % ITEMS;
				r->user_data = sub;
				r->seq = sub;
				r->op = 0;
			}
		}
		atomic_store_explicit(&s->sq_tail, (uint32_t)sub, memory_order_release);
		/* Reap what is there, checking each completion and result. */
		t = atomic_load_explicit(&s->cq_tail, memory_order_acquire);
		if (t == cqh) {
			cpu_relax();
			continue;
		}
		for (; cqh != t; cqh++, got++) {
			uint64_t seq, off, len;

			if (k == SMALL16) {
				const struct cqe16 *c = (const struct cqe16 *)s->cq + (cqh & (RING - 1));

				seq = c->seq, off = c->off, len = c->len;
				if (seq != (uint32_t)got)
					goto bad;
			} else {
				const struct cqe32 *c = (const struct cqe32 *)s->cq + (cqh & (RING - 1));

				seq = c->seq, off = c->off, len = c->len;
				if (seq != got)
					goto bad;
			}
			if (len != (k == NO_RESULT ? 0u : ITEM_BYTES) || off > RES_BYTES - len ||
			    memcmp(s->res + off, s->items[got % ITEMS], len))
				goto bad;
		}
		atomic_store_explicit(&s->cq_head, cqh, memory_order_release);
	}
	printf("%-46s  depth %u: %6.1f ns a task wall, CPU parent %6.1f, worker %6.1f\n",
	       shape_name[k], depth, (clock_ns(CLOCK_MONOTONIC) - w0) / n,
	       (clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / n, (clock_ns(wclk) - k0) / n);
	atomic_store(&s->stop, 1);
	waitpid(pid, &st, 0);
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
bad:
	fprintf(stderr, "spsc-floor: a wrong completion or result (task %llu)\n",
		(unsigned long long)got);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 2000000;
	unsigned depth = argc > 2 ? (unsigned)atoi(argv[2]) : 1024;
	struct shared *s;
	int r = 0;

	if (!n || !depth || depth > RING) {
		fprintf(stderr, "usage: spsc-floor [TASKS [DEPTH <= %u]]\n", RING);
		return 1;
	}
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return perror("mmap"), 1;
	for (unsigned i = 0; i < ITEMS; i++)
		for (unsigned j = 0; j < ITEM_BYTES; j++)
			s->items[i][j] = (uint8_t)(i * 7 + j);
	for (int k = FULL32; k <= NO_RESULT && !r; k++)
		r = run(s, (enum shape)k, n, depth);
	munmap(s, sizeof(*s));
	return r;
}
