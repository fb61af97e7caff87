/* SPDX-License-Identifier: MIT */
/*
 * The producer: bounded submission (the seed's Queue(depth)) and dispatch of
 * each task to one worker's SQ.
 *
 * Dispatch keeps short tasks on workers that are awake: waking a sleeping
 * worker costs tens of microseconds, running a tiny task well under one.  A
 * sleeping worker is woken only when the work already queued on every awake
 * worker would take longer than a wake-up (queued tasks x the worker's recent
 * task time > WAKE_COST_NS), and while as many workers as CPUs are awake only
 * when the queues are long (OVERSUBSCRIBE_NS).  Otherwise the task goes to
 * the awake worker with the least queued.
 *
 * A producer that must wait for room offers the rest of its batch (struct
 * pending): a reaper that frees room dispatches from it while more is left
 * than the room, and wakes the producer once the rest fits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>

#include "evc.h"
#include "pool_internal.h"

#define RUN_TASK_NS 1000u   /* tasks this short (recently) go in runs */
#define RUN_SPAN_NS 10000u  /* about the most work one run holds */
#define RUN_MAX CHAN_RUN_MAX /* and the most tasks (worker.c rejects more) */

struct disp {
	uint32_t queued;        /* tasks taken by the worker not yet */
	uint32_t slots;         /* and the SQ slots they fill */
	uint32_t inhand;        /* 1 while it runs a task (a hint) */
	uint64_t task_ns;
	int awake;
};

/*
 * Fills d from the workers' words and returns how many awake workers to
 * feed: all of them, or as many as there are CPUs where the awake ones
 * that looked found their tasks on a CPU or waiting for one, and none
 * found them blocking (worker.c look_load).  More workers than CPUs then
 * only take turns on the CPUs, each turn a context switch and caches
 * filled again: ring-bench's 20 us depth-1024 row with 5 workers on 2
 * CPUs, 8 alternated pairs, went from 0.988 to 1.030 of the batched pipe
 * pool's speed and from 1.010 to 0.972 of its CPU a task (README,
 * "Session 17").  Tasks that block keep every worker fed, as before; so
 * does a worker whose last look is old (inside one long task, which may
 * sleep): from then on the other workers take the new tasks and, with the
 * cap off, sleeping ones are woken for the queues as before.
 */
static unsigned snapshot(struct arena_pool *p, struct disp *d, uint64_t now)
{
	uint64_t longest = 0;
	uint32_t now_ms = (uint32_t)(now / 1000000); /* channel.h hot.look_ms */
	unsigned i, n_cpu = 0, n_other = 0;

	for (i = 0; i < p->nworkers; i++) {
		struct chan_worker *w = chan_w(&p->c, i);
		struct pool_wprod *pw = &p->wp[i];
		/* Worker-written words, read once.  Only a hint for dispatch: a
		 * garbage head gives a poor choice, never a bad access.
		 * acquire: pairs with the worker's release of sq_head (it copied
		 * the slots before it out first); the slots we refill on its
		 * word are free (liburing reads khead the same way). */
		uint32_t head = atomic_load_explicit(&w->hot.sq_head, memory_order_acquire);
		uint64_t queued;
		uint64_t tns = atomic_load_explicit(&w->rec.task_ns, memory_order_relaxed);
		/* Asleep for tasks, or blocked on result space: either way it
		 * does not run what we queue now. */
		uint32_t sleeping =
			evc_sleepers(atomic_load_explicit(&w->slow.wake_ann, memory_order_relaxed)) +
			evc_sleepers(atomic_load_explicit(&w->slow.space_ann, memory_order_relaxed));

		d[i].slots = pw->sq_tail - head;
		if (d[i].slots > p->c.sq_mask + 1) {
			/* Only a misbehaving worker moves its head past our tail. */
			pool_fail(p, -EBADMSG);
			d[i].slots = p->c.sq_mask + 1;
		}
		/* Tasks, from our count at the head's position (a slot not yet
		 * reused: slots in flight <= SQ size); after a restart the head
		 * run's done tasks still count (a hint). */
		queued = d[i].slots ? pw->pushed - pw->pushed_at[head & p->c.sq_mask] : 0;
		d[i].queued = queued <= p->depth ? (uint32_t)queued : p->depth;
		d[i].inhand = atomic_load_explicit(&w->hot.inhand_valid, memory_order_relaxed) != 0;
		/* A worker that has timed no task yet is taken to be as slow as a
		 * wake-up: a fresh pool then spreads tasks that block rather than
		 * queueing them all behind the first. */
		d[i].task_ns = tns ? (tns < 1000000000u ? tns : 1000000000u) : WAKE_COST_NS;
		d[i].awake = pw->alive && (!sleeping || now - pw->woken_at < AWAKE_GRACE_NS);
		if (tns > longest)
			longest = tns;
		if (d[i].awake) {
			/* relaxed (both): a hint, read once; garbage counts as
			 * blocking.  An old look is from before a long task the
			 * worker is still in, which may sleep: blocking too. */
			uint32_t load = atomic_load_explicit(&w->hot.load, memory_order_relaxed);
			uint32_t age = now_ms - atomic_load_explicit(&w->hot.look_ms,
								     memory_order_relaxed);

			if (load == CHAN_LOAD_CPU && age <= CHAN_LOOK_STALE_MS)
				n_cpu++;
			else if (load != CHAN_LOAD_UNKNOWN)
				n_other++;
		}
	}
	/* relaxed: a hint (pool_tasks_long). */
	atomic_store_explicit(&p->task_ns_hint, longest, memory_order_relaxed);
	/* Not on one CPU: a task that blocks after all would hold every task
	 * fed to the one worker, and with them the depth. */
	return n_cpu && !n_other && p->ncpu > 1 ? p->ncpu : p->nworkers;
}

static int pick(struct arena_pool *p, const struct disp *d, unsigned feed)
{
	int best_awake = -1, best_asleep = -1, least_awake = -1, best_any = -1;
	uint64_t least_cost = UINT64_MAX, any_cost = UINT64_MAX;
	unsigned i, n_awake = 0;

	/* One worker: every rule below comes to "it, if it can take one". */
	if (p->nworkers == 1)
		return p->wp[0].alive && d[0].slots <= p->c.sq_mask ? 0 : -1;
	for (i = 0; i < p->nworkers; i++) {
		/* The task in hand counts: a worker that runs a long task with
		 * nothing queued behind it is busy, not free. */
		uint64_t cost = (uint64_t)(d[i].queued + d[i].inhand) * d[i].task_ns;

		if (!p->wp[i].alive || d[i].slots > p->c.sq_mask)
			continue;
		if (cost < any_cost)
			any_cost = cost, best_any = (int)i;
		if (d[i].awake) {
			/* Awake workers beyond `feed` get no more: they run
			 * dry and sleep. */
			if (n_awake++ >= feed)
				continue;
			if (cost < least_cost)
				least_cost = cost, least_awake = (int)i;
			if (cost < WAKE_COST_NS &&
			    (best_awake < 0 || d[i].queued < d[best_awake].queued))
				best_awake = (int)i;
		} else if (best_asleep < 0 || d[i].queued < d[best_asleep].queued) {
			best_asleep = (int)i;
		}
	}
	if (best_awake >= 0)
		return best_awake;
	/* More awake workers than CPUs add context switches, not speed, unless
	 * the queues are so long that they would wait for a CPU anyway and the
	 * tasks may block (not known not to: snapshot). */
	if (best_asleep >= 0 &&
	    (n_awake < p->ncpu || least_awake < 0 ||
	     (feed > p->ncpu && least_cost > OVERSUBSCRIBE_NS)))
		return best_asleep;
	return least_awake >= 0 ? least_awake : best_any;
}

/*
 * Writes one task into our record and the worker's SQ (not yet published).
 * The fields come in registers and go out as plain stores: a task built in
 * a struct on the stack field by field and copied 16 bytes at a time is a
 * load the CPU cannot forward from those stores; it waits until they, and
 * every store before them (the SQ's, to lines the worker holds), reach the
 * cache.  perf put 85% of dispatch's samples on that copy.  prod_lock held.
 */
static void push_to(struct arena_pool *p, unsigned i, uint64_t index, uint64_t user_data,
		    uint64_t seq, uint32_t op, uint16_t attempts, uint16_t count)
{
	struct pool_wprod *pw = &p->wp[i];
	struct chan_sqe *r = &pw->recs[pw->sq_tail & p->c.sq_mask];
	struct chan_sqe *s = &chan_sq(&p->c, i)[pw->sq_tail & p->c.sq_mask];

	r->index = index;
	r->user_data = user_data;
	r->seq = seq;
	r->op = op;
	r->attempts = attempts;
	r->count = count;
	pw->pushed_at[pw->sq_tail & p->c.sq_mask] = pw->pushed;
	pw->pushed += count;
	s->index = index;
	s->user_data = user_data;
	s->seq = seq;
	s->op = op;
	s->attempts = attempts;
	s->count = count;
	pw->sq_tail++;
}

/* Dispatches a run of `count` tasks (one SQ entry) using (and updating) a
 * snapshot of the workers. */
static int dispatch(struct arena_pool *p, struct disp *d, unsigned feed, uint64_t index,
		    uint64_t user_data, uint64_t seq, uint32_t op, uint16_t attempts,
		    uint16_t count, uint64_t *touched)
{
	int i = pick(p, d, feed);

	if (i < 0)
		return -ECHILD;
	push_to(p, (unsigned)i, index, user_data, seq, op, attempts, count);
	d[i].queued += count;
	d[i].slots++;
	d[i].awake = 1; /* woken at publish if it sleeps */
	*touched |= 1ull << i;
	return 0;
}

int pool_push_locked(struct arena_pool *p, const struct chan_sqe *rec, uint64_t *touched)
{
	struct disp d[CHAN_MAX_WORKERS];
	unsigned feed = snapshot(p, d, sys_now_ns());

	return dispatch(p, d, feed, rec->index, rec->user_data, rec->seq, rec->op,
			rec->attempts, rec->count, touched);
}

/* Publishes the SQ tails of the touched workers and wakes those asleep. */
void pool_publish_locked(struct arena_pool *p, uint64_t touched)
{
	uint64_t now = 0;
	unsigned i;

	for (i = 0; i < p->nworkers; i++)
		if (touched & (1ull << i)) {
			/* release: our records are written before a consumer
			 * reads them (reap.c pool_harvest). */
			atomic_store_explicit(&p->wp[i].pub_tail, p->wp[i].sq_tail,
					      memory_order_release);
			/* release: the SQEs are written before the worker's
			 * acquire load of sq_tail can see them. */
			atomic_store_explicit(&chan_w(&p->c, i)->prod.sq_tail, p->wp[i].sq_tail,
					      memory_order_release);
		}
	/* One full fence for the whole batch (evc.h, W1 -> W2). */
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < p->nworkers; i++) {
		struct chan_worker *w = chan_w(&p->c, i);

		if (!(touched & (1ull << i)))
			continue;
		if (evc_wake_fenced(&w->slow.wake_ann, &p->wp[i].wake_gen, &w->prod.wake_seq,
				    1, 0)) {
			if (!now)
				now = sys_now_ns();
			p->wp[i].woken_at = now;
			STAT_ADD1(p, st_prod_wakes, 1);
		} else {
			STAT_ADD1(p, st_skipped, 1);
		}
	}
}

/* What to submit: an array of entries, or a range of indices. */
struct batch {
	const struct arena_sqe *sqes;   /* NULL: the range below */
	uint64_t first, ud_first;
	uint32_t op;
};

/*
 * What is left of a batch whose producer sleeps for room (wait_space): a
 * reaper that frees room takes entries from it (pool_take_pending, from
 * reap.c deliver) while more of it is left than the room, and wakes the
 * producer, as for any room, once the rest fits: the producer returns the
 * count taken and its caller's next call takes the rest.  In the two-thread
 * shape (a producer and a consumer thread, depth tasks in flight) the
 * producer then wakes once a call, not once a refill of the depth: one
 * sleeping hand-off fewer on the way from a completion to the next task.
 * One producer at a time offers its batch (pool->pend);
 * others sleep as before.  `b` and `n` are read, `done` and `err` written
 * only under prod_lock; the sleeping producer reads done and err in its
 * re-check, hence atomic (ordered by the evc fences, like `inflight`).
 */
struct pending {
	const struct batch *b;
	uint32_t n;
	_Atomic uint32_t done;  /* entries taken, by the reaper or not */
	_Atomic int err;        /* why entry `done` cannot be taken, or 0 */
};

/*
 * Whether reapers stopped taking from pd: an entry they cannot take (err).
 * A reaper never takes the last of a batch (pool_take_pending), so done
 * stays below n and err is the only way a batch ends while offered.
 */
static int pending_failed(struct pending *pd)
{
	/* relaxed: read after the sleeper's fence (evc.h S2), written before
	 * the waker's (W1); the lock orders the writes among reapers. */
	return atomic_load_explicit(&pd->err, memory_order_relaxed) != 0;
}

/* Offers pd to reapers; 1 when it is the pool's pending batch now. */
static int offer(struct arena_pool *p, struct pending *pd)
{
	int ok = 0;

	pthread_mutex_lock(&p->prod_lock);
	if (!p->pend && !p->stopped) {
		p->pend = pd;
		/* relaxed: a hint; the reaper reads pend itself under the lock.
		 * A reaper that reads a stale 0 wakes us instead of taking for
		 * us; a stale 1 costs it the lock and a wake check. */
		atomic_store_explicit(&p->pend_offered, 1, memory_order_relaxed);
		ok = 1;
	}
	pthread_mutex_unlock(&p->prod_lock);
	return ok;
}

/* Takes pd back: no reaper touches it after this returns. */
static void withdraw(struct arena_pool *p)
{
	pthread_mutex_lock(&p->prod_lock);
	p->pend = NULL;
	atomic_store_explicit(&p->pend_offered, 0, memory_order_relaxed);
	pthread_mutex_unlock(&p->prod_lock);
}

/*
 * Waits until fewer than depth tasks are in flight, or (pd) until reapers
 * met an entry of our batch they cannot take.  No lock held.  On return nobody else holds
 * pd; pd->done says how many entries reapers took meanwhile.
 */
static int wait_space(struct arena_pool *p, uint64_t deadline, int64_t timeout_ns,
		      struct pending *pd)
{
	int offered = 0, r;

	for (;;) {
		uint32_t v, weight;
		int64_t left = -1;
		uint64_t t0;
		int pipe;

		if ((r = atomic_load_explicit(&p->failed, memory_order_relaxed)))
			break;
		r = -EPIPE;
		if (atomic_load(&p->stopped))
			break;
		r = 0;
		if ((offered && pending_failed(pd)) ||
		    atomic_load_explicit(&p->inflight, memory_order_acquire) < p->depth)
			break;
		r = -EAGAIN;
		if (timeout_ns == 0)
			break;
		if (timeout_ns > 0) {
			uint64_t now = sys_now_ns();

			r = -ETIMEDOUT;
			if (now >= deadline)
				break;
			left = (int64_t)(deadline - now);
		}
		/* Offered before the announcement below, so that a reaper that
		 * frees room from now on takes it for us instead of waking us
		 * to take it.  No wake-up depends on where the offer is: the
		 * announcement and the re-check (finished, or room) do that
		 * (the Spin model's "lateoffer" verifies). */
		if (!offered)
			offered = offer(p, pd);
		/* While tasks are long (pool_tasks_long), or always where the
		 * pool has a CPU for its parent (space_pipe_always), one
		 * producer at a time sleeps on the pipe (pool_internal.h
		 * space_r); acquire: the previous owner's drain is before our
		 * poll.  Others sleep on the futex with weight 2.  Measured with
		 * the worker's own move (worker.c leave_reaper_cpu): the tiny
		 * two-thread 1-worker depth-1024 row of ring-bench preempted its
		 * worker about 1,900 times a run in 6 of 20 runs with the futex
		 * here, in 1 of 20 with the pipe (`--workers 1 --depths 1024
		 * --one-thread-depth 0`, alternated).  Session 11 tried this pipe
		 * without that move: no better, the consumer then landing on the
		 * worker's CPU instead. */
		pipe = (pool_tasks_long(p) || p->space_pipe_always) &&
		       !atomic_exchange_explicit(&p->space_pipe_busy, 1, memory_order_acquire);
		weight = pipe ? 1 : 2;
		v = evc_prepare_w(&p->space_ann, &p->space_seq, weight);
		if (p->depth - atomic_load_explicit(&p->inflight, memory_order_acquire) >=
		    p->space_need || (offered && pending_failed(pd)) ||
		    atomic_load(&p->stopped) ||
		    atomic_load_explicit(&p->failed, memory_order_relaxed)) {
			evc_done_w(&p->space_ann, weight);
			if (pipe)
				atomic_store_explicit(&p->space_pipe_busy, 0, memory_order_release);
			continue;
		}
		t0 = sys_now_ns();
		if (pipe)
			r = evc_sleep_fd(&p->space_seq, v, p->space_r, -1, left);
		else
			r = evc_sleep(&p->space_seq, v, left, 1);
		evc_done_w(&p->space_ann, weight);
		if (pipe)
			/* After evc_done_w: the next owner's weight 1 must not be
			 * counted with ours (an even count gets no byte; the
			 * Spin model's "earlyrelease").  release: our drain
			 * before the next owner's poll. */
			atomic_store_explicit(&p->space_pipe_busy, 0, memory_order_release);
		STAT_ADD(p, st_prod_waits, 1);
		STAT_ADD(p, st_prod_wait_ns, sys_now_ns() - t0);
		/* A signal handler ran: the caller may want to act on it. */
		if (r == -EINTR && (p->o.flags & ARENA_POOL_EINTR))
			break;
		r = 0;
	}
	if (offered)
		withdraw(p);
	return r;
}

/* Entry k of a batch; -EINVAL or -ERANGE when it can never be taken. */
static inline int batch_get(const struct batch *b, uint32_t k, uint64_t count,
			    struct chan_sqe *out)
{
	if (b->sqes) {
		if (b->sqes[k].flags)
			return -EINVAL;
		if (b->sqes[k].index >= count)
			return -ERANGE;
		out->index = b->sqes[k].index;
		out->user_data = b->sqes[k].user_data;
		out->op = b->sqes[k].op;
	} else {
		if (b->first >= count || k >= count - b->first)
			return -ERANGE;
		out->index = b->first + k;
		out->user_data = b->ud_first + k;
		out->op = b->op;
	}
	return 0;
}

/* How many of the n entries of b from entry `from` on can be taken (each
 * checked as batch_get does, in one tight pass). */
static uint32_t valid_prefix(const struct batch *b, uint32_t from, uint32_t n, uint64_t count)
{
	const struct arena_sqe *s;
	uint32_t k;

	if (!b->sqes) {
		if (b->first >= count || from >= count - b->first)
			return 0;
		return count - b->first - from < n ? (uint32_t)(count - b->first - from) : n;
	}
	s = b->sqes + from; /* not before: NULL + from is undefined */
	for (k = 0; k < n; k++)
		if (s[k].flags || s[k].index >= count)
			break;
	return k;
}

/* How many entries from `from` on (at most max, >= 1) continue the first
 * one's run: items, user data one up each, the same op.  A range is one. */
static uint32_t run_length(const struct batch *b, uint32_t from, uint32_t max)
{
	const struct arena_sqe *s;
	uint32_t n;

	if (!b->sqes)
		return max;
	s = b->sqes + from;
	for (n = 1; n < max; n++)
		if (s[n].index != s[0].index + n || s[n].user_data != s[0].user_data + n ||
		    s[n].op != s[0].op)
			break;
	return n;
}

/*
 * The longest run (one SQ entry for consecutive items) for a batch of
 * `room`: runs only while the workers' recent tasks are tiny (the longest of
 * them at most RUN_TASK_NS, measured: a pool's first tasks, of unknown
 * length, go one by one), a run's work about RUN_SPAN_NS at most, and the
 * batch spread over every worker.  A run costs the producer one entry
 * instead of `count`; its tasks still complete one by one.  Measured
 * (parent-cost W 1024 2000000 0 THREADS, 6 alternated pairs, medians of
 * wall ns a task): two threads 40 against 53 (1 worker) and 50 against 80
 * (2 workers); one thread 41 against 48 (2 workers), 43 against 38 (1
 * worker, within the host's noise); callgrind, one thread: the producer's
 * side 43 instructions a task against 120.  prod_lock held, after
 * snapshot().
 */
static uint32_t run_limit(const struct arena_pool *p, uint32_t room)
{
	/* relaxed: a hint (snapshot's); garbage from a worker only makes runs
	 * longer or shorter. */
	uint64_t tns = atomic_load_explicit(&p->task_ns_hint, memory_order_relaxed);
	uint64_t n;

	if (p->test_runs)
		tns = 1;
	else if (!tns || tns > RUN_TASK_NS)
		return 1;
	n = RUN_SPAN_NS / tns;
	if (n > RUN_MAX)
		n = RUN_MAX;
	if (n > room / p->nworkers)
		n = room / p->nworkers;
	return n ? (uint32_t)n : 1;
}

/*
 * Takes up to `room` entries of b, from entry `from`: counts them in flight,
 * dispatches them and publishes them.  *taken gets how many; the return is 0,
 * or why entry from + *taken was not taken.  prod_lock held, room > 0 and
 * free in flight.
 */
static int take_locked(struct arena_pool *p, const struct batch *b, uint32_t from,
		       uint32_t room, uint32_t *taken)
{
	struct disp d[CHAN_MAX_WORKERS];
	struct chan_sqe sqe = { 0 };
	uint64_t touched = 0, count = arena_count(p->a), seq;
	uint32_t k, n, done = 0, run_max;
	unsigned feed;
	int r = 0;

	*taken = 0;
	feed = snapshot(p, d, sys_now_ns());
	if ((r = atomic_load_explicit(&p->failed, memory_order_relaxed)))
		return r;
	/* Only a valid prefix is taken: nothing counted in flight is given back
	 * but for a dispatch failure (below). */
	k = valid_prefix(b, from, room, count);
	if (k < room)
		r = batch_get(b, from + k, count, &sqe);
	room = k;
	/* Counted in flight before any is visible (one add for the batch): a
	 * reaper never sees more completions than tasks counted. */
	atomic_fetch_add_explicit(&p->inflight, room, memory_order_relaxed);
	seq = atomic_load_explicit(&p->next_seq, memory_order_relaxed);
	run_max = run_limit(p, room);
	for (k = 0; k < room; k += n) {
		int e;

		batch_get(b, from + k, count, &sqe);
		n = run_length(b, from + k, room - k < run_max ? room - k : run_max);
		if ((e = dispatch(p, d, feed, sqe.index, sqe.user_data, seq + k, sqe.op, 0,
				  (uint16_t)n, &touched)) < 0) {
			r = e;
			break;
		}
		done += n;
	}
	if (done < room) {
		atomic_fetch_sub_explicit(&p->inflight, room - done, memory_order_relaxed);
		/* Room given back: a producer may have gone to sleep on the
		 * count we held (evc.h: every change that can satisfy a sleeper
		 * is followed by a wake check).  NULL: space_gen is the
		 * consumer's. */
		evc_wake_fd(&p->space_ann, NULL, &p->space_seq, p->space_w, 1);
	}
	/* release: a reaper validating seq < next_seq sees the counting above;
	 * stored before the SQ tails publish any of these tasks. */
	atomic_store_explicit(&p->next_seq, seq + done, memory_order_release);
	if (touched)
		pool_publish_locked(p, touched);
	STAT_ADD1(p, st_submitted, done);
	*taken = done;
	return r;
}

int pool_take_pending(struct arena_pool *p)
{
	struct pending *pd;
	int wake = 1;

	pthread_mutex_lock(&p->prod_lock);
	pd = p->pend;
	if (pd && !p->stopped && !atomic_load_explicit(&p->failed, memory_order_relaxed)) {
		uint32_t done = atomic_load_explicit(&pd->done, memory_order_relaxed);
		uint32_t room = p->depth - atomic_load_explicit(&p->inflight, memory_order_acquire);

		/* Only a take that leaves some of the batch saves its producer
		 * a wake-up; the rest of a batch that fits the room is the
		 * producer's to take when it wakes (a reaper dispatching one
		 * task a call for it measured slower: arena-bench). */
		if (!pending_failed(pd) && room && room <= p->depth && pd->n - done > room) {
			uint32_t taken;
			int r;

			r = take_locked(p, pd->b, done, room, &taken);
			atomic_store_explicit(&pd->done, done + taken, memory_order_relaxed);
			if (r < 0)
				atomic_store_explicit(&pd->err, r, memory_order_relaxed);
		}
		/* Its producer wakes when the rest of its batch fits the room
		 * (room left, below) or an entry cannot be taken; others when
		 * room is left that they would wait for. */
		wake = pending_failed(pd) ||
		       p->depth - atomic_load_explicit(&p->inflight, memory_order_relaxed) >=
			       p->space_need;
	}
	pthread_mutex_unlock(&p->prod_lock);
	return wake;
}

static int submit_batch(struct arena_pool *p, const struct batch *b, uint32_t n,
			int64_t timeout_ns)
{
	uint64_t deadline = timeout_ns > 0 ? sys_now_ns() + (uint64_t)timeout_ns : 0;
	struct pending pd = { .b = b, .n = n };
	struct chan_sqe sqe = { 0 };
	uint32_t room, taken;
	int r;

	/* A first entry that can never be taken fails now, not after waiting
	 * for room (the arena's count never shrinks). */
	r = batch_get(b, 0, arena_count(p->a), &sqe);
	if (r < 0)
		return r;
	for (;;) {
		r = wait_space(p, deadline, timeout_ns, &pd);
		/* Reapers took entries for us while we slept: that is our
		 * answer (a count, like a submission that found less room). */
		if ((taken = atomic_load_explicit(&pd.done, memory_order_relaxed)))
			return (int)taken;
		if (!r)
			r = atomic_load_explicit(&pd.err, memory_order_relaxed);
		if (r < 0)
			return r;
		pthread_mutex_lock(&p->prod_lock);
		r = atomic_load_explicit(&p->failed, memory_order_relaxed);
		if (p->stopped || r) {
			pthread_mutex_unlock(&p->prod_lock);
			return r ? r : -EPIPE;
		}
		/* Other producers may have taken the room meanwhile. */
		room = p->depth - atomic_load_explicit(&p->inflight, memory_order_acquire);
		if (room && room <= p->depth)
			break;
		pthread_mutex_unlock(&p->prod_lock);
	}
	if (room > n)
		room = n;
	r = take_locked(p, b, 0, room, &taken);
	/* relaxed: a hint (reap.c gather).  The caller's thread, not a reaper
	 * that takes for it (pool_take_pending). */
	atomic_store_explicit(&p->last_submitter, (uintptr_t)pthread_self(), memory_order_relaxed);
	pthread_mutex_unlock(&p->prod_lock);
	return taken ? (int)taken : r;
}

int arena_pool_submit(struct arena_pool *p, const struct arena_sqe *sqes, unsigned n,
		      int64_t timeout_ns)
{
	struct batch b = { .sqes = sqes };

	if (!p || (n && !sqes))
		return -EINVAL;
	if (!n)
		return 0;
	return submit_batch(p, &b, n, timeout_ns);
}

int arena_pool_submit_range(struct arena_pool *p, uint64_t first, uint32_t count,
			    uint64_t user_data_first, uint32_t op, int64_t timeout_ns)
{
	struct batch b = { .first = first, .ud_first = user_data_first, .op = op };

	if (!p)
		return -EINVAL;
	if (!count)
		return 0;
	return submit_batch(p, &b, count, timeout_ns);
}

int arena_pool_submit1(struct arena_pool *p, uint64_t index, uint64_t user_data)
{
	struct arena_sqe sqe = { .index = index, .user_data = user_data };
	int r = arena_pool_submit(p, &sqe, 1, -1);

	return r < 0 ? r : 0;
}
