/* SPDX-License-Identifier: MIT */
/*
 * The channel: what a worker can write, applied to a live pool's channel
 * between reaps; then the parent's reap / release / submit / stop path.
 *
 * Each input makes a pool (1-2 forked workers, depth 4, 4 KiB result areas)
 * on a 5-item arena, runs 4 tasks through it (checked), freezes the workers
 * (SIGSTOP), then plays a misbehaving worker: the input is a list of
 * patches  [u8 where][u16 offset][u8 len][len bytes]  written into the
 * channel (where & 7: 0 hot line, 1 rec line, 2 slow line, 3 CQ slots,
 * 4 result area, 5 anywhere in the worker block, 6 the global lines,
 * 7 a reap (timeout 0) + release instead of a patch; where >> 3 & 1: which
 * worker).  (Results point into the pool's own mapping of the channel,
 * p->c; our patches go through a second mapping of the same memfd.)  Then reaps, releases, submits, lets the workers run again and
 * stops (drain, bounded) and reaps until the end.
 *
 * Properties: no sanitizer report; no hang (every wait is bounded); every
 * result delivered points inside the arena or that worker's result area;
 * and, unless the pool failed with -EBADMSG: no task delivered twice, each
 * completion names the index and user_data that were submitted with its
 * seq, and after a drain every task was delivered.
 * Byte 0: bit 0 two workers, bit 1 ordered, bit 2 no io_uring, bit 3
 * submit two more tasks before freezing, bit 4 batches in runs (the test
 * knob: SQ entries of several tasks, whose count a patch can scribble).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

#include "fuzz_util.h"
#include "pool_internal.h"
#include "pool_test.h"

#define NT 64          /* tasks at most per input */
#define MAX_S 1000000000ll

struct state {
	struct arena_pool *p;
	struct chan c;           /* our own read-write view of the channel */
	uint64_t nsub;           /* tasks submitted (seq 0..nsub-1) */
	uint64_t index[NT], ud[NT];
	uint8_t seen[NT];
	int failed;              /* the pool said -EBADMSG (or another error) */
	unsigned nworkers;
};

static struct arena *A;

static void check_cqe(struct state *s, const struct arena_cqe *e)
{
	if (e->len) {
		int in_arena = fuzz_inside(arena_base(A), arena_size(A), e->data, e->len);
		int in_res = e->worker < s->nworkers &&
			     fuzz_inside(chan_res(&s->p->c, e->worker), s->c.res_bytes, e->data, e->len);

		FUZZ_CHECK(e->data && (in_arena || in_res));
		fuzz_touch(e->data, e->len);
	}
	FUZZ_CHECK(e->seq < s->nsub);
	if (s->failed)
		return;
	FUZZ_CHECK(!s->seen[e->seq]);          /* delivered once */
	s->seen[e->seq] = 1;
	FUZZ_CHECK(e->index == s->index[e->seq]);
	FUZZ_CHECK(e->user_data == s->ud[e->seq]);
}

static void note(struct state *s, int r)
{
	if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT && r != -ENODATA)
		s->failed = 1;
}

/* Reaps what is there (timeout given) and releases it.  Returns the count or
 * a negative error. */
static int reap_some(struct state *s, int64_t timeout_ns)
{
	struct arena_cqe e[8];
	int r = arena_pool_reap(s->p, e, 8, timeout_ns), k;

	note(s, r);
	for (k = 0; k < r; k++)
		check_cqe(s, &e[k]);
	if (r > 0)
		arena_pool_release_many(s->p, e, (unsigned)r);
	return r;
}

static int submit(struct state *s, unsigned n)
{
	struct arena_sqe q[NT];
	unsigned k;
	int r;

	if (s->nsub + n > NT)
		return 0;
	for (k = 0; k < n; k++) {
		q[k].index = (s->nsub + k) % arena_count(A);
		q[k].user_data = 1000 + s->nsub + k;
		q[k].op = 0;
		q[k].flags = 0;
		s->index[s->nsub + k] = q[k].index;
		s->ud[s->nsub + k] = q[k].user_data;
	}
	r = arena_pool_submit(s->p, q, n, 0);
	note(s, r);
	if (r > 0)
		s->nsub += (uint64_t)r;
	return r;
}

static void signal_workers(struct state *s, int sig)
{
	unsigned i;

	for (i = 0; i < s->nworkers; i++) {
		int pid = arena_pool_worker_pid(s->p, i);

		if (pid > 0) {
			kill(pid, sig);
			if (sig == SIGSTOP) {
				siginfo_t si;

				/* frozen for sure before we write */
				waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOWAIT);
			}
		}
	}
}

static void patch(struct state *s, unsigned where, unsigned off, const uint8_t *b, unsigned len)
{
	unsigned wi = (where >> 3) % s->nworkers;
	struct chan_worker *w = chan_w(&s->c, wi);
	uint8_t *base;
	uint64_t span;

	switch (where & 7) {
	case 0: base = (uint8_t *)&w->hot; span = sizeof(w->hot); break;
	case 1: base = (uint8_t *)&w->rec; span = sizeof(w->rec); break;
	case 2: base = (uint8_t *)&w->slow; span = sizeof(w->slow); break;
	case 3: base = (uint8_t *)chan_cq(&s->c, wi);
		span = (uint64_t)(s->c.cq_mask + 1) * sizeof(struct chan_cqe); break;
	case 4: base = chan_res(&s->c, wi); span = s->c.res_bytes; break;
	case 5: /* up to the result area's end: a guard page follows */
		base = (uint8_t *)w;
		span = (uint64_t)(chan_res(&s->c, wi) - base) + s->c.res_bytes; break;
	default: base = s->c.base; span = sizeof(struct chan_global); break;
	}
	if (len > span)
		len = (unsigned)span;
	off %= (unsigned)(span - len + 1);
	memcpy(base + off, b, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena_pool_test_opts t;
	struct arena_pool_opts o;
	struct state s;
	uint8_t mode;
	int r, k;

	if (size < 1 || size > 4096)
		return 0;
	if (!A)
		A = fuzz_arena();
	mode = data[0];
	data++, size--;
	memset(&s, 0, sizeof(s));
	memset(&o, 0, sizeof(o));
	o.workers = s.nworkers = (mode & 1) ? 2 : 1;
	o.depth = 4;
	o.result_bytes = 4096;
	o.max_attempts = 2;
	o.flags = ((mode & 2) ? ARENA_POOL_ORDERED : 0) | ((mode & 4) ? ARENA_POOL_NO_URING : 0) |
		  ARENA_POOL_TEST_OPTS;
	memset(&t, 0, sizeof(t));
	t.o = o;
	t.runs = (mode & 16) != 0;
	if (arena_pool_create(&s.p, A, &t.o) < 0)
		abort();
	if (chan_map(&s.c, arena_pool_channel_fd(s.p), 1) < 0)
		abort();
	/* An honest run first: every result right. */
	FUZZ_CHECK(submit(&s, 4) == 4);
	for (k = 0; k < 4;) {
		struct arena_cqe e[4];
		int i;

		r = arena_pool_reap(s.p, e, 4, 10 * MAX_S);
		FUZZ_CHECK(r > 0);
		for (i = 0; i < r; i++) {
			const void *p;
			size_t l;

			check_cqe(&s, &e[i]);
			FUZZ_CHECK(e[i].status == 0);
			arena_get(A, e[i].index, &p, &l);
			FUZZ_CHECK(e[i].len == l && (!l || !memcmp(e[i].data, p, l)));
		}
		arena_pool_release_many(s.p, e, (unsigned)r);
		k += r;
	}
	if (mode & 8)
		submit(&s, 2);
	signal_workers(&s, SIGSTOP);
	/* The misbehaving worker. */
	while (size >= 4) {
		unsigned where = data[0], off = data[1] | (unsigned)data[2] << 8, len = data[3];

		data += 4, size -= 4;
		if ((where & 7) == 7) {
			reap_some(&s, 0);
			continue;
		}
		if (len > size)
			len = (unsigned)size;
		patch(&s, where, off, data, len);
		data += len, size -= len;
	}
	/* The parent's paths over what it finds. */
	for (k = 0; k < 3; k++)
		reap_some(&s, 0);
	submit(&s, 2);
	reap_some(&s, 0);
	signal_workers(&s, SIGCONT);
	for (k = 0; k < 4 && !s.failed; k++)
		if (reap_some(&s, MAX_S / 200) <= 0)
			break;
	r = arena_pool_stop(s.p, ARENA_STOP_DRAIN, 3 * MAX_S);
	note(&s, r == -ETIMEDOUT ? -EBUSY : r);
	for (k = 0; k < NT + 4; k++) {
		r = reap_some(&s, MAX_S);
		if (r < 0 && r != -EAGAIN)
			break;
	}
	/* drained, not failed: every task delivered */
	if (!s.failed && r == -ENODATA) {
		uint64_t q;

		for (q = 0; q < s.nsub; q++)
			FUZZ_CHECK(s.seen[q]);
	}
	chan_unmap(&s.c);
	arena_pool_destroy(s.p);
	return 0;
}
