/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory floor of a tiny task, with none of the pool's protocol
 * (spsc-floor.c says what it measures and leaves out); ring-bench runs it
 * too, so its tiny rows have their floor from the same minute.  Everything
 * here is static: each benchmark that includes it gets its own copy.
 */
#ifndef BENCH_SPSC_H
#define BENCH_SPSC_H

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpu_relax.h"

#define SPSC_ITEMS 1000
#define SPSC_ITEM_BYTES 40
#define SPSC_RING 2048u                /* SQ and CQ slots, a power of two */
#define SPSC_RES_BYTES (1u << 20)      /* result area, a power of two */
#define SPSC_LINE 64

struct spsc_rec32 {
	uint64_t index, user_data, seq;
	uint32_t op, pad;
};

struct spsc_cqe32 {
	uint64_t seq, off, len;
	int32_t status;
	uint32_t flags;
};

struct spsc_rec16 {
	uint32_t index, op;
	uint64_t seq;
};

struct spsc_cqe16 {
	uint32_t seq, off, len;
	int32_t status;
};

struct spsc_shared {
	_Alignas(SPSC_LINE) _Atomic uint32_t sq_tail;   /* parent */
	_Alignas(SPSC_LINE) _Atomic uint32_t sq_head;   /* worker */
	_Alignas(SPSC_LINE) _Atomic uint32_t cq_tail;   /* worker */
	_Alignas(SPSC_LINE) _Atomic uint32_t cq_head;   /* parent */
	_Alignas(SPSC_LINE) _Atomic uint32_t stop;
	_Alignas(SPSC_LINE) uint8_t sq[SPSC_RING * sizeof(struct spsc_rec32)];
	_Alignas(SPSC_LINE) uint8_t cq[SPSC_RING * sizeof(struct spsc_cqe32)];
	_Alignas(SPSC_LINE) uint8_t items[SPSC_ITEMS][SPSC_ITEM_BYTES];
	_Alignas(4096) uint8_t res[SPSC_RES_BYTES];
};

enum spsc_shape { SPSC_FULL32, SPSC_SMALL16, SPSC_NO_RESULT };

static const char *const spsc_shape_name[] = {
	"32-byte task and completion, 40 result bytes",
	"16-byte task and completion, 40 result bytes",
	"32-byte task and completion, no result bytes",
};

static double spsc_clock_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* The worker: take each task, copy its item into the result area, post. */
static void spsc_worker(struct spsc_shared *s, enum spsc_shape k)
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
			uint64_t index, seq, len = k == SPSC_NO_RESULT ? 0 : SPSC_ITEM_BYTES;

			if (k == SPSC_SMALL16) {
				const struct spsc_rec16 *r = (const struct spsc_rec16 *)s->sq + (head & (SPSC_RING - 1));

				index = r->index;
				seq = r->seq;
			} else {
				const struct spsc_rec32 *r = (const struct spsc_rec32 *)s->sq + (head & (SPSC_RING - 1));

				index = r->index;
				seq = r->seq;
			}
			if (index >= SPSC_ITEMS)
				_exit(2);
			if (len)
				memcpy(s->res + res, s->items[index], len);
			/* Wait for CQ room (the parent reaps in bulk). */
			while (tail - atomic_load_explicit(&s->cq_head, memory_order_acquire) >= SPSC_RING)
				cpu_relax();
			if (k == SPSC_SMALL16) {
				struct spsc_cqe16 *c = (struct spsc_cqe16 *)s->cq + (tail & (SPSC_RING - 1));

				c->seq = (uint32_t)seq;
				c->off = res;
				c->len = (uint32_t)len;
				c->status = 0;
			} else {
				struct spsc_cqe32 *c = (struct spsc_cqe32 *)s->cq + (tail & (SPSC_RING - 1));

				c->seq = seq;
				c->off = res;
				c->len = len;
				c->status = 0;
				c->flags = 0;
			}
			res = (res + 64) & (SPSC_RES_BYTES - 1);
			atomic_store_explicit(&s->sq_head, head + 1, memory_order_release);
			atomic_store_explicit(&s->cq_tail, tail + 1, memory_order_release);
		}
	}
}

/* Writes tasks [from, to) into the SQ (the caller publishes the tail). */
static void spsc_submit(struct spsc_shared *s, enum spsc_shape k, uint64_t from, uint64_t to)
{
	for (uint64_t sub = from; sub < to; sub++) {
		uint32_t slot = (uint32_t)sub & (SPSC_RING - 1);

		if (k == SPSC_SMALL16) {
			struct spsc_rec16 *r = (struct spsc_rec16 *)s->sq + slot;

			r->index = (uint32_t)(sub % SPSC_ITEMS);
			r->op = 0;
			r->seq = sub;
		} else {
			struct spsc_rec32 *r = (struct spsc_rec32 *)s->sq + slot;

			r->index = sub % SPSC_ITEMS;
			r->user_data = sub;
			r->seq = sub;
			r->op = 0;
		}
	}
}

/* Reaps what the CQ holds, checking each completion and result, and gives
 * the slots back.  Returns how many, or -1 on a wrong one. */
static int64_t spsc_reap(struct spsc_shared *s, enum spsc_shape k, uint32_t *cqh, uint64_t *got)
{
	uint32_t t = atomic_load_explicit(&s->cq_tail, memory_order_acquire);
	uint32_t h = *cqh, n;
	uint64_t g = *got;

	for (; h != t; h++, g++) {
		uint64_t seq, off, len;

		if (k == SPSC_SMALL16) {
			const struct spsc_cqe16 *c = (const struct spsc_cqe16 *)s->cq + (h & (SPSC_RING - 1));

			seq = c->seq, off = c->off, len = c->len;
			if (seq != (uint32_t)g)
				return -1;
		} else {
			const struct spsc_cqe32 *c = (const struct spsc_cqe32 *)s->cq + (h & (SPSC_RING - 1));

			seq = c->seq, off = c->off, len = c->len;
			if (seq != g)
				return -1;
		}
		if (len != (k == SPSC_NO_RESULT ? 0u : SPSC_ITEM_BYTES) || off > SPSC_RES_BYTES - len ||
		    memcmp(s->res + off, s->items[g % SPSC_ITEMS], len))
			return -1;
	}
	if (h != *cqh)
		atomic_store_explicit(&s->cq_head, h, memory_order_release);
	n = h - *cqh;
	*cqh = h;
	*got = g;
	return n;
}

/* One parent thread: submit up to depth in flight, publish once, reap. */
static int spsc_parent_one(struct spsc_shared *s, enum spsc_shape k, uint64_t n, unsigned depth)
{
	uint64_t sub = 0, got = 0;
	uint32_t cqh = 0;

	while (got < n) {
		uint64_t to = got + depth < n ? got + depth : n;
		int64_t r;

		if (to > sub) {
			spsc_submit(s, k, sub, to);
			sub = to;
			atomic_store_explicit(&s->sq_tail, (uint32_t)sub, memory_order_release);
		}
		r = spsc_reap(s, k, &cqh, &got);
		if (r < 0)
			return -1;
		if (r == 0)
			cpu_relax();
	}
	return 0;
}

/* The two-thread parent: the consumer's side. */
struct spsc_consumer {
	struct spsc_shared *s;
	enum spsc_shape k;
	uint64_t n;
	_Atomic uint32_t got;       /* completions so far (low 32 bits) */
	_Atomic uint32_t waiting;   /* the producer sleeps on got */
	_Atomic uint32_t wake_at;   /* ... until got reaches this */
	_Atomic int bad;
	double cpu_ns;
};

static long spsc_futex(_Atomic uint32_t *w, int op, uint32_t val)
{
	return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static void *spsc_consumer_main(void *arg)
{
	struct spsc_consumer *c = arg;
	uint64_t got = 0;
	uint32_t cqh = 0;
	double c0 = spsc_clock_ns(CLOCK_THREAD_CPUTIME_ID);

	while (got < c->n) {
		int64_t r = spsc_reap(c->s, c->k, &cqh, &got);

		if (r < 0) {
			/* bad first, then a change of got and a wake: the
			 * producer, asleep or about to be, sees one of them. */
			atomic_store(&c->bad, 1);
			atomic_fetch_add(&c->got, 1);
			spsc_futex(&c->got, FUTEX_WAKE_PRIVATE, 1);
			break;
		}
		if (r == 0) {
			cpu_relax();
			continue;
		}
		/* seq_cst store, then seq_cst load of waiting: with the
		 * producer's store of waiting and load of got (also seq_cst),
		 * one of the two sees the other (no lost wake-up). */
		atomic_store(&c->got, (uint32_t)got);
		if (atomic_load(&c->waiting) &&
		    (int32_t)((uint32_t)got - atomic_load_explicit(&c->wake_at, memory_order_relaxed)) >= 0) {
			atomic_store_explicit(&c->waiting, 0, memory_order_relaxed);
			spsc_futex(&c->got, FUTEX_WAKE_PRIVATE, 1);
		}
	}
	c->cpu_ns = spsc_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

/* Two parent threads: this one submits batches of 64 and sleeps without
 * room; spsc_consumer_main reaps; *cons_ns: its CPU ns. */
static int spsc_parent_two(struct spsc_shared *s, enum spsc_shape k, uint64_t n, unsigned depth, double *cons_ns)
{
	struct spsc_consumer c = { .s = s, .k = k, .n = n };
	unsigned batch = depth < 128 ? (depth + 1) / 2 : 64;
	uint64_t sub = 0;
	pthread_t th;

	if (pthread_create(&th, NULL, spsc_consumer_main, &c) != 0)
		return -1;
	while (sub < n && !atomic_load(&c.bad)) {
		uint32_t g = atomic_load(&c.got);
		uint64_t done = sub - (uint32_t)((uint32_t)sub - g);   /* got, widened */
		uint64_t to = sub + batch < n ? sub + batch : n;

		if (to - done > depth) {
			/* No room for a batch: sleep until half the depth is free. */
			atomic_store_explicit(&c.wake_at, (uint32_t)(sub - depth / 2),
					      memory_order_relaxed);
			atomic_store(&c.waiting, 1);
			if (!atomic_load(&c.bad) && atomic_load(&c.got) == g)
				spsc_futex(&c.got, FUTEX_WAIT_PRIVATE, g);
			atomic_store_explicit(&c.waiting, 0, memory_order_relaxed);
			continue;
		}
		spsc_submit(s, k, sub, to);
		sub = to;
		atomic_store_explicit(&s->sq_tail, (uint32_t)sub, memory_order_release);
	}
	pthread_join(th, NULL);
	*cons_ns = c.cpu_ns;
	return c.bad ? -1 : 0;
}

/* Per task, over one run. */
struct spsc_result {
	double wall_ns, parent_ns, cons_ns, worker_ns;   /* cons_ns: 2 threads only */
};

/*
 * Forks a worker, runs n tasks of shape k, depth in flight, with 1 or 2
 * parent threads (this one submits; with 2 a second one reaps).  Returns 0,
 * or -1 on a wrong completion or result, a failed fork or thread (the
 * worker is ended and reaped either way).
 */
static int spsc_run(struct spsc_shared *s, enum spsc_shape k, uint64_t n, unsigned depth,
		    unsigned threads, struct spsc_result *out)
{
	double w0, c0, k0, cons_ns = 0;
	clockid_t wclk;
	pid_t pid;
	int st, r;

	memset(s, 0, offsetof(struct spsc_shared, items));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		spsc_worker(s, k);
	}
	r = clock_getcpuclockid(pid, &wclk) == 0 ? 0 : -1;
	k0 = r ? 0 : spsc_clock_ns(wclk);
	c0 = spsc_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = spsc_clock_ns(CLOCK_MONOTONIC);
	if (!r)
		r = threads == 2 ? spsc_parent_two(s, k, n, depth, &cons_ns)
				 : spsc_parent_one(s, k, n, depth);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	out->wall_ns = (spsc_clock_ns(CLOCK_MONOTONIC) - w0) / n;
	out->parent_ns = (spsc_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / n;
	out->cons_ns = cons_ns / n;
	out->worker_ns = (spsc_clock_ns(wclk) - k0) / n;
	atomic_store(&s->stop, 1);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The shared mapping, items filled in; NULL without memory. */
static struct spsc_shared *spsc_map(void)
{
	struct spsc_shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (s == MAP_FAILED)
		return NULL;
	for (unsigned i = 0; i < SPSC_ITEMS; i++)
		for (unsigned j = 0; j < SPSC_ITEM_BYTES; j++)
			s->items[i][j] = (uint8_t)(i * 7 + j);
	return s;
}

static void spsc_unmap(struct spsc_shared *s)
{
	munmap(s, sizeof(*s));
}

#endif
