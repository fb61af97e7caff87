/* SPDX-License-Identifier: MIT */
/*
 * The consumer: read completions from the workers' CQs (each one copied out
 * once and checked before use), deliver them (in submission order when the
 * pool is ordered), and give result space back on release.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "evc.h"
#include "pool_internal.h"

#define REL_BIT (1ull << 63)
#define COALESCE_TASK_NS 200u   /* for tasks at most this long */
#define COALESCE_MIN_NS 100u    /* the least time a task is taken to need */
#define COALESCE_MAX_NS 50000u  /* and the longest wait (depths up to 2^20) */

int pool_fifo_init(struct res_fifo *f)
{
	f->cap = 256;
	f->head = f->tail = 0;
	f->end = malloc(f->cap * sizeof(*f->end));
	return f->end ? 0 : -ENOMEM;
}

static int fifo_push(struct res_fifo *f, uint64_t end, uint64_t *idx)
{
	if (f->tail - f->head == f->cap) {
		uint64_t ncap = f->cap * 2, k, *ne = malloc(ncap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		for (k = f->head; k < f->tail; k++)
			ne[k & (ncap - 1)] = f->end[k & (f->cap - 1)];
		free(f->end);
		f->end = ne;
		f->cap = ncap;
	}
	f->end[f->tail & (f->cap - 1)] = end;
	*idx = f->tail++;
	return 0;
}

/*
 * Checks a result's place against our own account of worker i's area: it
 * must start where the previous one ended (or at 0 when the worker skipped
 * the area's tail) and must not reach bytes not yet released.  rel_lock held.
 */
static int account_result(struct arena_pool *p, unsigned i, uint64_t off, uint64_t len,
			  uint64_t *ticket)
{
	struct pool_worker *pw = &p->w[i];
	uint64_t R = p->c.res_bytes, E = pw->res_end, m = chan_res_at(&p->c, E), la, ne, idx;
	int r;

	if (len > R)
		return -EBADMSG;
	la = (len + 7) & ~7ull;
	if (off == m && la <= R - m) {
		ne = E + la;
	} else if (off == 0 && m != 0 && la <= R) {
		if (pw->res_head == E) {
			/* Nothing held: the worker restarted at the area's start
			 * (worker.c reset_if_empty); the skipped tail is free. */
			pw->res_head = E + (R - m);
			/* release: pairs with the worker's acquire in refresh. */
			atomic_store_explicit(&chan_w(&p->c, i)->cons.res_head, pw->res_head,
					      memory_order_release);
		}
		ne = E + (R - m) + la;
	} else {
		return -EBADMSG;
	}
	if (ne - pw->res_head > R)
		return -EBADMSG;
	r = fifo_push(&pw->fifo, ne, &idx);
	if (r < 0)
		return r;
	pw->res_end = ne;
	*ticket = ((idx + 1) << 8) | i;
	return 0;
}

/* A completion accepted, into cbuf (place) or a reaper's array. */
static void count_completed(struct arena_pool *p)
{
	p->ncompleted++;
	STAT_ADD1(p, st_completed, 1);
}

static int place(struct arena_pool *p, const struct arena_cqe *out)
{
	struct cq_slot *s;

	if (p->ordered) {
		/* In flight <= depth, so a seq in flight is inside the window. */
		if (out->seq - p->cnext > p->cmask)
			return -EBADMSG;
		s = &p->cbuf[out->seq & p->cmask];
		if (s->valid)
			return -EBADMSG;
	} else {
		if (p->ctail - p->cnext > p->cmask)
			return -EBADMSG;
		s = &p->cbuf[p->ctail++ & p->cmask];
	}
	s->cqe = *out;
	s->valid = 1;
	count_completed(p);
	return 0;
}

/* The records live as long as the pool: one ring per worker, SQ-sized, in
 * one allocation. */
int pool_records_init(struct arena_pool *p, uint32_t index_base)
{
	size_t n = (size_t)p->c.sq_mask + 1;
	unsigned i;

	p->recs_all = calloc(n * p->nworkers, sizeof(struct chan_sqe));
	p->pushed_all = calloc(n * p->nworkers, sizeof(uint64_t));
	if (!p->recs_all || !p->pushed_all)
		return -ENOMEM;
	for (i = 0; i < p->nworkers; i++) {
		p->wp[i].recs = p->recs_all + i * n;
		p->wp[i].pushed_at = p->pushed_all + i * n;
		atomic_init(&p->wp[i].pub_tail, index_base);
		p->w[i].rec_head = index_base;
	}
	return 0;
}

void pool_records_free(struct arena_pool *p)
{
	free(p->recs_all);
	free(p->pushed_all);
}

/*
 * This thread placed completions that a reaper asleep has not seen (a dead
 * worker's, completed here, or ones harvested for several callers): wake
 * every reaper asleep, at once rather than at its next look.  Their
 * announcements are our own copy (p->cq_ann, evc_prepare_owned), written
 * under cons_lock, which we hold: a reaper that announced before we took the
 * lock waits on a seq older than our bump (evc.h); one that takes the lock
 * after us finds the completions before it sleeps.  cons_lock held.
 */
static void wake_reapers_locked(struct arena_pool *p)
{
	if (evc_sleepers(p->cq_ann))
		pool_wake_reapers(p);
}

/*
 * Completes, without a worker, a task taken out of our own record (a dead
 * worker's, by supervise.c): its caller has removed it from the record, so it
 * is completed at most once, like a real completion.  cons_lock held.
 */
void pool_complete_synthetic(struct arena_pool *p, const struct chan_sqe *rec, int status)
{
	struct arena_cqe c = {
		.user_data = rec->user_data,
		.index = rec->index,
		.seq = rec->seq,
		.status = status,
		.worker = UINT32_MAX,
	};

	if (place(p, &c) < 0)
		pool_fail(p, -EBADMSG);
	wake_reapers_locked(p);
}

/* The same for every task of the run rec. */
void pool_complete_synthetic_run(struct arena_pool *p, const struct chan_sqe *rec, int status)
{
	struct chan_sqe t = *rec;
	uint32_t k;

	for (k = 0; k < rec->count; k++, chan_sqe_next(&t))
		pool_complete_synthetic(p, &t, status);
}

/*
 * The first task of worker i's oldest record `rec` is done: the record now
 * starts at the run's next task (which has run nowhere: no attempts), or,
 * at the end of its run, is done with.  So the oldest record always starts
 * with the task the worker runs or runs next (supervise.c's task in hand).
 * cons_lock held.
 */
void pool_record_done(struct arena_pool *p, unsigned i, struct chan_sqe *rec)
{
	if (rec->count > 1) {
		chan_sqe_next(rec);
		rec->count--;
	} else {
		p->w[i].rec_head++;
	}
}

/* A worker-written word, loaded once (the worker may change it meanwhile). */
#define LOAD_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/*
 * Turns worker i's next CQE into a delivered completion, or says it is
 * corrupt.  What is delivered (seq, index, user_data) comes from `rec`, our
 * record of the oldest task in flight on that worker; the worker's entry
 * only has to name it (seq) and say how it ended.  rel_lock held.
 */
static int convert(struct arena_pool *p, unsigned i, const struct chan_cqe *e,
		   const struct chan_sqe *rec, uint8_t *res, struct arena_cqe *out)
{
	uint64_t seq = LOAD_ONCE(e->seq), off, len;
	int32_t status;
	uint32_t flags;
	int r;

	if (seq != rec->seq)
		return -EBADMSG; /* not the task it runs: forged, replayed, reordered */
	status = LOAD_ONCE(e->status);
	flags = LOAD_ONCE(e->flags);
	off = LOAD_ONCE(e->res_off);
	len = LOAD_ONCE(e->res_len);
	if (status > 0)
		return -EBADMSG;
	/* Every field written (no memset: this is the hot path). */
	out->data = NULL;
	out->ticket = 0;
	out->user_data = rec->user_data;
	out->index = rec->index;
	out->seq = rec->seq;
	out->status = status;
	out->worker = i;
	out->len = len;
	if (flags == CQE_F_ARENA) {
		uint64_t asz = arena_size(p->a);
		const uint8_t *base = arena_base(p->a);

		if (!len)
			return 0; /* an empty item: no bytes to point at */
		if (off > asz || len > asz - off || !arena_contains(p->a, base + off, len))
			return -EBADMSG;
		out->data = base + off;
		return 0;
	}
	if (flags)
		return -EBADMSG;
	if (!len)
		return 0;
	if (status < 0)
		return -EBADMSG; /* an error carries no result */
	r = account_result(p, i, off, len, &out->ticket);
	if (r < 0)
		return r;
	out->data = res + off;
	return 0;
}

int pool_harvest(struct arena_pool *p, unsigned i)
{
	struct chan_worker *w = chan_w(&p->c, i);
	struct pool_worker *pw = &p->w[i];
	struct pool_wprod *wp = &p->wp[i];
	const struct chan_cqe *cq = chan_cq(&p->c, i);
	uint8_t *res = chan_res(&p->c, i);
	uint32_t cq_mask = p->c.cq_mask, sq_mask = p->c.sq_mask;
	/* acquire: pairs with the worker's release of cq_tail; the CQEs and
	 * result bytes before it are complete. */
	uint32_t tail = atomic_load_explicit(&w->hot.cq_tail, memory_order_acquire);
	uint32_t n = tail - pw->cq_head, pub;
	int direct;

	if (!n)
		return 0;
	if (n > p->c.cq_mask + 1) {
		pool_fail(p, -EBADMSG);
		return -EBADMSG;
	}
	/* Harvesting for a caller directly (harvest_all): only what it takes,
	 * each straight into its array (one copy of each completion, not
	 * three).  The rest waits in the CQ, where the next reap finds it,
	 * rather than in cbuf, from where it would take two more copies. */
	direct = p->sink_max != 0;
	if (direct && n > p->sink_max - p->sink_n) {
		n = p->sink_max - p->sink_n;
		if (!n)
			return 0;
		tail = pw->cq_head + n;
	}
	/* acquire: pairs with the producer's release in pool_publish_locked;
	 * the records below pub are written. */
	pub = atomic_load_explicit(&wp->pub_tail, memory_order_acquire);
	pthread_mutex_lock(&p->rel_lock);
	while (pw->cq_head != tail) {
		const struct chan_cqe *e = &cq[pw->cq_head & cq_mask];
		struct arena_cqe out, *dst = direct ? &p->sink[p->sink_n] : &out;
		struct chan_sqe *rec = &wp->recs[pw->rec_head & sq_mask];
		int r = -EBADMSG;

		/* A completion is accepted only for the oldest task in flight
		 * on this worker: never more completions than tasks, never one
		 * task twice, never a task of another worker. */
		if (pw->rec_head != pub)
			r = convert(p, i, e, rec, res, dst);
		if (r == 0 && direct) {
			p->sink_n++;
			count_completed(p);
		} else if (r == 0) {
			r = place(p, &out);
		}
		if (r < 0) {
			pthread_mutex_unlock(&p->rel_lock);
			pool_fail(p, r);
			return r;
		}
		pool_record_done(p, i, rec);
		pw->gen_done++;
		pw->cq_head++;
	}
	pthread_mutex_unlock(&p->rel_lock);
	/* release: our copies are taken before the worker reuses the slots. */
	atomic_store_explicit(&w->cons.cq_head, pw->cq_head, memory_order_release);
	return (int)n;
}

static unsigned deliver(struct arena_pool *p, struct arena_cqe *out, unsigned max)
{
	/* harvest_all's direct ones first: nothing waited in cbuf then, and
	 * anything placed there since came later (FIFO kept). */
	unsigned n = p->sink_n;

	p->sink_n = 0;
	p->sink = NULL;

	while (n < max) {
		struct cq_slot *s;

		if (p->ordered) {
			s = &p->cbuf[p->cnext & p->cmask];
			if (!s->valid)
				break;
		} else {
			if (p->cnext == p->ctail)
				break;
			s = &p->cbuf[p->cnext & p->cmask];
		}
		out[n++] = s->cqe;
		s->valid = 0;
		p->cnext++;
	}
	if (n) {
		/* release: pairs with the producer's acquire load in wait_space. */
		uint32_t left = atomic_fetch_sub_explicit(&p->inflight, n,
							  memory_order_release) - n;

		STAT_ADD1(p, st_reaped, n);
		/* A sleeping producer waits for space_need free slots (submit.c);
		 * smaller gaps are not worth its wake-up.  Every delivery makes
		 * this check, so the one that opens the gap wakes it. */
		if (p->depth - left >= p->space_need &&
		    (!atomic_load_explicit(&p->pend_offered, memory_order_relaxed) ||
		     pool_take_pending(p)) &&
		    evc_wake_fd(&p->space_ann, &p->space_gen, &p->space_seq, p->space_w, 1))
			STAT_ADD1(p, st_cons_wakes, 1);
	}
	return n;
}

static int cq_nonempty(struct arena_pool *p)
{
	unsigned i;

	for (i = 0; i < p->nworkers; i++)
		if (atomic_load_explicit(&chan_w(&p->c, i)->hot.cq_tail, memory_order_relaxed) !=
		    p->w[i].cq_head)
			return 1;
	return 0;
}

/*
 * Harvests every worker: in an unordered pool while cbuf holds nothing,
 * straight into out[] and only up to max (the rest stays in the CQs);
 * else everything, into cbuf.  deliver() counts the direct ones first
 * (sink_n), which keeps the FIFO order: anything in cbuf then came later.
 * cons_lock held.
 */
static void harvest_all(struct arena_pool *p, struct arena_cqe *out, unsigned max)
{
	unsigned k;

	if (!p->ordered && p->cnext == p->ctail) {
		p->sink = out;
		p->sink_max = max;
	}
	for (k = 0; k < p->nworkers; k++)
		if (pool_harvest(p, (p->rr + k) % p->nworkers) < 0)
			break;
	p->rr++;
	p->sink_max = 0; /* supervision's harvests go to cbuf */
}

/* Completions published and not yet harvested, summed over the workers (a
 * hint: each cq_tail is checked when harvested). */
static unsigned cq_ready(struct arena_pool *p)
{
	unsigned i, n = 0;

	for (i = 0; i < p->nworkers; i++)
		n += atomic_load_explicit(&chan_w(&p->c, i)->hot.cq_tail, memory_order_relaxed) -
		     p->w[i].cq_head;
	return n;
}

/*
 * Tiny tasks, many in flight, and a caller that submits and reaps in one
 * thread (the shape of the Python module's imap, of parent-cost and of
 * ring-bench's one-thread rows): let completions gather
 * into a batch of a quarter of what is in flight (at most the caller's max)
 * before taking them, for at most the time that batch takes to run.
 *
 * A reaper that takes each completion as soon as it is published reads the
 * CQ and result lines while the worker still writes the next entries on
 * them, so those lines cross between the CPUs again and again; and a
 * caller that submits what it reaped keeps the pool in that state for
 * good.  Measured (bench/parent-cost 1 1024, alternated runs): the same
 * binary without this ran at 44-50 ns a task with about 240 tasks a reap
 * or, in one run of 5, at 84 ns with 10; with a batch of 32 every run took
 * 220-243 a reap; a batch of 32 with only that much harvested (below), 42
 * a reap and 50 ns; a quarter of what is in flight, 253 a reap and 40-50
 * ns.  In a slow phase of the host, 110-135 ns against 142-180.
 *
 * Where another thread submits (the seed's two-thread shape), only while
 * that thread sleeps for room and with fewer workers than CPUs: otherwise
 * the wait cost more than it saved (ring-bench, tiny tasks, 2 workers,
 * depth 1024: 0.14-0.16 us a task against 0.08-0.10), that thread and the
 * workers needing the CPU it would spin on.  While it sleeps, a reaper
 * that took completions as they came caught up with the worker and read
 * each line as it was written (6-7 completions a reap, session 9, once
 * the producer slept for half the depth: pool.c space_need); with the
 * gather, 63 of a caller's 64 (`parent-cost 1 1024 2000000 0 2`).
 * ring-bench's tiny two-thread 1-worker depth-1024 row, 8 runs each in
 * ABBA order: median 0.048 us a task (0.035-0.039 in 4) against 0.065
 * (0.046-0.049 in 3) without the gather and the half depth.  With 2 and
 * 5 workers, the gather on then too: medians 0.066 and 0.078 against
 * 0.061 and 0.071 (8 runs ABBA), hence only below the CPUs.
 * Not under ARENA_SPIN_NEVER, nor where in flight stays under 4 x
 * COALESCE_N (the seed's depth of 10) or tasks are slower than
 * COALESCE_TASK_NS.  The wait is bounded (and never over COALESCE_MAX_NS,
 * whatever the depth and the caller's max): a worker that stopped (asleep
 * for space, dead) costs one bounded wait.  cons_lock held.
 */
static void gather(struct arena_pool *p, unsigned max)
{
	/* relaxed (all): hints; the wait is only an optimization. */
	uint64_t tns = atomic_load_explicit(&p->task_ns_hint, memory_order_relaxed), end, wait;
	/* A quarter of what is in flight: the batch the caller then submits
	 * again, so the batches stay that large. */
	unsigned want = atomic_load_explicit(&p->inflight, memory_order_relaxed) / 4, k;

	if (want > max)
		want = max;
	if (p->o.spin == ARENA_SPIN_NEVER || tns > COALESCE_TASK_NS || want < COALESCE_N ||
	    (atomic_load_explicit(&p->last_submitter, memory_order_relaxed) !=
	     (uintptr_t)pthread_self() &&
	     !(p->nworkers < p->ncpu &&
	       evc_sleepers(atomic_load_explicit(&p->space_ann, memory_order_relaxed)))) ||
	    cq_ready(p) >= want)
		return;
	wait = (uint64_t)want * (tns > COALESCE_MIN_NS ? tns : COALESCE_MIN_NS);
	end = sys_now_ns() + (wait < COALESCE_MAX_NS ? wait : COALESCE_MAX_NS);
	do {
		/* Looks about 100 ns apart (a pause is 25 ns here): each reads
		 * a line of every worker that it writes on every task.  (Ending
		 * the wait early when no completion came for 10 looks, for a
		 * worker waiting for this CPU, measured worse there:
		 * `taskset -c 0 parent-cost 1 1024`, 152 against 127 ns a
		 * task, smaller batches.) */
		for (k = 0; k < 4; k++)
			cpu_relax();
	} while (cq_ready(p) < want && sys_now_ns() < end);
}

int arena_pool_reap(struct arena_pool *p, struct arena_cqe *cqes, unsigned max,
		    int64_t timeout_ns)
{
	uint64_t deadline = timeout_ns > 0 ? sys_now_ns() + (uint64_t)timeout_ns : 0;
	int r;

	if (!p || !cqes || !max)
		return -EINVAL;
	pthread_mutex_lock(&p->cons_lock);
	for (;;) {
		unsigned n;
		int64_t left = -1;
		uint32_t v;
		int use_uring, use_pipe, owner;
		uint32_t weight;

		r = atomic_load_explicit(&p->failed, memory_order_relaxed);
		if (r)
			break;
		if (timeout_ns)
			gather(p, max);
		harvest_all(p, cqes, max);
		pool_supervise(p, 0);
		n = deliver(p, cqes, max);
		if (n) {
			r = (int)n;
			break;
		}
		r = atomic_load_explicit(&p->failed, memory_order_relaxed);
		if (r)
			break;
		/* Nothing more can come: the workers are gone, or nothing is
		 * in flight and nothing more may be submitted. */
		if ((p->workers_gone && !cq_nonempty(p)) ||
		    (atomic_load(&p->stopped) &&
		     !atomic_load_explicit(&p->inflight, memory_order_acquire))) {
			r = -ENODATA;
			break;
		}
		if (timeout_ns == 0) {
			r = -EAGAIN;
			break;
		}
		if (timeout_ns > 0) {
			uint64_t now = sys_now_ns();

			if (now >= deadline) {
				r = -ETIMEDOUT;
				break;
			}
			left = (int64_t)(deadline - now);
		}
		/* Where we sleep: a worker that wakes us from that CPU leaves it
		 * to us instead of spinning on it (worker.c). */
		atomic_store_explicit(&p->c.g->cq_waiters.cpu, (uint32_t)sched_getcpu(),
				      memory_order_relaxed);
		/*
		 * One sleeper at a time owns the io_uring and the wake pipe
		 * (uring_busy); the others sleep on the futex, announced with
		 * weight 2, so that wakers also call FUTEX_WAKE (evc.h
		 * evc_wake_fd).
		 *
		 * The owner sleeps on the pipe only while tasks are long
		 * (pool_tasks_long), else on the futex: with io_uring in the
		 * ring's FUTEX_WAIT (deaths still seen); a kernel without it
		 * keeps the pipe.
		 */
		owner = !p->uring_busy;
		use_uring = p->u.ok && owner;
		use_pipe = owner && (pool_tasks_long(p) || (use_uring && !p->u.futex_ok));
		weight = use_pipe ? 1 : 2;
		v = evc_prepare_owned(&p->c.g->cq_waiters.ann, &p->cq_ann, &p->c.g->cq_seq.seq,
				      weight);
		if (cq_nonempty(p)) {
			evc_done_owned(&p->c.g->cq_waiters.ann, &p->cq_ann, weight);
			continue;
		}
		/* Sleep without the lock (stop and other reapers need it). */
		p->uring_busy |= use_uring || use_pipe;
		if (use_uring)
			pool_arm_watches(p); /* sent with the wait (one owner) */
		pthread_mutex_unlock(&p->cons_lock);
		r = pool_consumer_sleep(p, v, left, use_uring, use_pipe);
		pthread_mutex_lock(&p->cons_lock);
		if (use_uring || use_pipe)
			p->uring_busy = 0;
		evc_done_owned(&p->c.g->cq_waiters.ann, &p->cq_ann, weight);
		/* A signal handler ran: the caller may want to act on it. */
		if (r == -EINTR && (p->o.flags & ARENA_POOL_EINTR))
			break;
	}
	/* Completions we harvested beyond our max, or left in the CQs, are
	 * for other reapers. */
	if (p->ordered ? p->cbuf[p->cnext & p->cmask].valid
		       : p->cnext != p->ctail || cq_nonempty(p))
		wake_reapers_locked(p);
	pthread_mutex_unlock(&p->cons_lock);
	return r;
}

/* The worker a ticket's result space belongs to, with its allocation
 * number in *idx; -1 for no result space, or a ticket outside the window or
 * released already (ignored).  rel_lock held. */
static inline int ticket_find(struct arena_pool *p, uint64_t ticket, uint64_t *idx)
{
	unsigned i = ticket & 0xff;
	struct res_fifo *f;

	*idx = (ticket >> 8) - 1;
	if (!ticket || i >= p->nworkers)
		return -1;
	f = &p->w[i].fifo;
	if (*idx < f->head || *idx >= f->tail || (f->end[*idx & (f->cap - 1)] & REL_BIT))
		return -1;
	return (int)i;
}

/* Marks one ticket released.  Returns the worker whose head may move, or -1
 * (ticket_find).  rel_lock held. */
static int mark_released(struct arena_pool *p, uint64_t ticket)
{
	uint64_t idx;
	int i = ticket_find(p, ticket, &idx);

	if (i >= 0)
		p->w[i].fifo.end[idx & (p->w[i].fifo.cap - 1)] |= REL_BIT;
	return i;
}

/* Moves worker i's released head past every released allocation at the
 * front, tells the worker, and wakes it if it waits for space.  `moved`:
 * release_many's in-order path already moved the head, to newh.  rel_lock
 * held (it serializes pw->space_gen too). */
static void advance_head(struct arena_pool *p, unsigned i, int moved, uint64_t newh)
{
	struct pool_worker *pw = &p->w[i];
	struct res_fifo *f = &pw->fifo;
	struct chan_worker *w = chan_w(&p->c, i);

	while (f->head != f->tail && (f->end[f->head & (f->cap - 1)] & REL_BIT)) {
		newh = f->end[f->head & (f->cap - 1)] & ~REL_BIT;
		f->head++;
		moved = 1;
	}
	if (!moved)
		return;
	pw->res_head = newh;
	/* release: we are done reading the bytes before newh. */
	atomic_store_explicit(&w->cons.res_head, newh, memory_order_release);
	/* A worker may be waiting for this space (evc.h). */
	evc_wake(&w->slow.space_ann, &pw->space_gen, &w->prod.wake_seq, 1, 0);
}

int arena_pool_release(struct arena_pool *p, const struct arena_cqe *cqe)
{
	int i;

	if (!p || !cqe)
		return -EINVAL;
	if (!cqe->ticket)
		return 0;
	pthread_mutex_lock(&p->rel_lock);
	i = mark_released(p, cqe->ticket);
	if (i >= 0)
		advance_head(p, (unsigned)i, 0, 0);
	pthread_mutex_unlock(&p->rel_lock);
	return 0;
}

int arena_pool_release_many(struct arena_pool *p, const struct arena_cqe *cqes, unsigned n)
{
	uint64_t touched = 0, inorder = 0, newh[CHAN_MAX_WORKERS];
	unsigned k;

	/* A negative count (a failed reap's result, say) cast to unsigned. */
	if (!p || (n && !cqes) || n > INT_MAX)
		return -EINVAL;
	if (!n)
		return 0;
	pthread_mutex_lock(&p->rel_lock);
	for (k = 0; k < n; k++) {
		uint64_t idx;
		int i = ticket_find(p, cqes[k].ticket, &idx);
		struct res_fifo *f;

		if (i < 0)
			continue;
		f = &p->w[i].fifo;
		/* In order (the usual case: a reap's results released as they
		 * came): the oldest allocation, so the head moves past it now,
		 * without a mark and a second walk (callgrind, parent-cost 1
		 * 1024: 40 instructions a task for the release, not 54). */
		if (idx == f->head) {
			newh[i] = f->end[idx & (f->cap - 1)];
			f->head++;
			inorder |= 1ull << i;
		} else {
			f->end[idx & (f->cap - 1)] |= REL_BIT;
			touched |= 1ull << i;
		}
	}
	/* One head move (one fence, one wake check) per worker. */
	for (k = 0; k < p->nworkers; k++)
		if ((touched | inorder) & (1ull << k))
			advance_head(p, k, !!(inorder & (1ull << k)),
				     inorder & (1ull << k) ? newh[k] : 0);
	pthread_mutex_unlock(&p->rel_lock);
	return 0;
}

int arena_pool_result_space(struct arena_pool *p, unsigned i, uint64_t *held, uint64_t *size,
			    int *waiting)
{
	uint64_t h;

	if (!p)
		return -EINVAL;
	if (i >= p->nworkers)
		return -ERANGE;
	/* Our own account (rel_lock): everything from the oldest allocation
	 * not released to the end of the newest read. */
	pthread_mutex_lock(&p->rel_lock);
	h = p->w[i].res_end - p->w[i].res_head;
	pthread_mutex_unlock(&p->rel_lock);
	if (held)
		*held = h;
	if (size)
		*size = p->c.res_bytes;
	if (waiting)
		/* relaxed: a worker-written hint, any value is safe here. */
		*waiting = evc_sleepers(atomic_load_explicit(&chan_w(&p->c, i)->slow.space_ann,
							     memory_order_relaxed)) != 0;
	return 0;
}
