/* SPDX-License-Identifier: MIT */
/*
 * The worker loop: take tasks from this worker's SQ, run the task function,
 * publish results and completions, sleep on the wake word only when idle.
 * Ordering of the writes that make a death decidable: see channel.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "arena_internal.h"
#include "evc.h"
#include "killpoint.h"
#include "worker.h"

#define IDLE_CHECK_NS (250 * 1000 * 1000) /* parent-death check when idle */
#define SIGNAL_BATCH 16       /* wake the consumer once per 16 tasks at most, */
#define SIGNAL_WORK_NS 20000  /* and, with more queued, once they took this
				 long: a wake-up costs 5-15 us of CPU here */
#define SIGNAL_DELAY_NS 100000 /* or once completions waited this long */
#define LONG_QUEUE_NS 1000000 /* queued beyond this: the reaper's own look
				 (sys_look_ns: once every 1.25 kernel ticks while
				 tasks are in flight) comes before this queue runs
				 short; then the rules below signal */
#define CLOCK_STRIDE 16       /* tiny tasks: one clock read per 16 */
#define CYCLE_CHECK 4         /* and one cycle-counter read per 4 (divides
				 CLOCK_STRIDE) */
#define PRECISE_NS 2000       /* tasks this slow: one clock read each */
#define SPIN_MIN_NS 2000      /* shortest spin worth starting */
#define CALIBRATE_NS 1000     /* shortest interval that calibrates cycles */
#define LEAVE_MIN_NS 1000000 /* leave a reaper's CPU at most this often */
#define WRAP_AT (64u << 10)   /* wrap_early: results this far into the area */
#define WRAP_RECHECK 4096     /* may restart at 0; looked at once per this */
			      /* many bytes of results */
#define LOOK_NS (CHAN_LOOK_MS * 1000000ull) /* look_load's period */

static int signal_consumer(struct worker *wk);

int arena_task_result_ref(struct arena_task *t, const void *data, size_t len)
{
	if (!t || (len && !arena_contains(t->arena, data, len)))
		return -EINVAL;
	if (!len)
		data = arena_base(t->arena); /* an empty result needs no bytes */
	t->ref = data;
	t->ref_len = len;
	return 0;
}

/* The default task, once its item is found. */
static inline int get_item_done(struct arena_task *t, const void *p, size_t len)
{
	if (t->op == ARENA_OP_REF)
		return arena_task_result_ref(t, p, len);
	if (t->op != ARENA_OP_COPY)
		return -EOPNOTSUPP;
	if (len > t->out_cap)
		return -EMSGSIZE;
	if (len)
		memcpy(t->out, p, len);
	return (int)(len > INT_MAX ? -EMSGSIZE : (int)len);
}

int arena_task_get_item(struct arena_task *t)
{
	const void *p;
	size_t len;
	int r = arena_get(t->arena, t->index, &p, &len);

	return r < 0 ? r : get_item_done(t, p, len);
}

/*
 * Runs the pool's task function; the default one inline, without
 * arena_get()'s argument checks (the worker's arena is mapped and run_task
 * checked the index): two calls and a dozen branches fewer on every tiny
 * task (callgrind).
 */
static inline int call_task(struct worker *wk, struct arena_task *t)
{
	const void *p;
	size_t len;
	int r;

	if (wk->fn != arena_task_get_item || !wk->a->map)
		return wk->fn(t);
	r = arena_item(wk->a, t->index, &p, &len);
	return r < 0 ? r : get_item_done(t, p, len);
}

static _Noreturn void corrupt(struct worker *wk)
{
	atomic_store_explicit(&wk->w->rec.state, ARENA_WORKER_EXITED, memory_order_relaxed);
	_exit(CHAN_EXIT_CORRUPT);
}

static uint32_t stop_state(struct worker *wk)
{
	/* acquire: pairs with the parent's release store of stop, which
	 * follows its last sq_tail publication, so a re-read of the tail
	 * after seeing stop sees every task. */
	return atomic_load_explicit(&wk->c->g->ctl.stop, memory_order_acquire);
}

/* Reads cons.res_head once and checks it against our own position.  Our
 * view only moves forward: after a reset (below) it is ahead of what the
 * consumer has published until the consumer sees that allocation. */
static void refresh_res_head(struct worker *wk)
{
	uint64_t h = atomic_load_explicit(&wk->w->cons.res_head, memory_order_acquire);

	/* acquire: the consumer is done with the bytes before h. */
	if (h > wk->res_pos)
		corrupt(wk);
	if (h > wk->res_head)
		wk->res_head = h;
	if (wk->res_pos - wk->res_head > wk->c->res_bytes)
		corrupt(wk);
}

/*
 * When every result was released, start again at the area's first byte: the
 * results stay in a few hot pages instead of cycling through the area, and a
 * result as large as the area fits.  The consumer sees an allocation at
 * offset 0 while it holds nothing and moves its head the same way
 * (reap.c account_result).
 */
static void reset_if_empty(struct worker *wk)
{
	uint64_t R = wk->c->res_bytes, off = chan_res_at(wk->c, wk->res_pos);

	if (off && wk->res_pos == wk->res_head) {
		wk->res_pos += R - off;
		wk->res_head = wk->res_pos;
	}
}

/*
 * Sleeps until the parent bumps our wake word (new tasks, stop, or released
 * result space) or IDLE_CHECK_NS pass.  `ann` is where we announce
 * ourselves: slow.wake_ann for tasks (the producer checks it), or
 * slow.space_ann for space (the consumer checks it on release); `ready`
 * re-checks the condition after announcing (evc.h).
 */
static void idle_wait(struct worker *wk, _Atomic uint64_t *ann,
		      int (*ready)(struct worker *))
{
	struct chan_worker *w = wk->w;
	uint64_t t0;
	uint32_t v;
	int r;

	if (wk->unsignaled)
		signal_consumer(wk);
	v = evc_prepare(ann, &w->prod.wake_seq);
	if (ready(wk)) {
		evc_done(ann);
		return;
	}
	atomic_store_explicit(&w->rec.state, ARENA_WORKER_SLEEPING, memory_order_relaxed);
	KILLPOINT(ann == &w->slow.space_ann ? KP_SPACE_WAIT : KP_NONE, &wk->task);
	t0 = sys_now_ns();
	r = evc_sleep(&w->prod.wake_seq, v, KP_NO_POLL(IDLE_CHECK_NS, 60000000000ll), 0);
	wk->wait_ns += sys_now_ns() - t0;
	wk->waits++;
	/* -EAGAIN: the word had moved, no switch (look_load counts the rest). */
	if (r != -EAGAIN)
		wk->sleeps++;
	evc_done(ann);
	atomic_store_explicit(&w->rec.state, ARENA_WORKER_RUNNING, memory_order_relaxed);
	atomic_store_explicit(&w->rec.waits, wk->waits, memory_order_relaxed);
	atomic_store_explicit(&w->rec.wait_ns, wk->wait_ns, memory_order_relaxed);
	if (r == -ETIMEDOUT && (uint32_t)getppid() != wk->parent_pid)
		_exit(CHAN_EXIT_ORPHAN);
}

static int tasks_ready(struct worker *wk)
{
	uint32_t tail = atomic_load_explicit(&wk->w->prod.sq_tail, memory_order_acquire);

	return tail != wk->head || stop_state(wk);
}

static int space_ready(struct worker *wk)
{
	uint64_t old = wk->res_head;

	refresh_res_head(wk);
	return wk->res_head != old || stop_state(wk) == CHAN_STOP_CANCEL;
}

/*
 * How long to spin for new tasks: about twice the recent wait for them (the
 * gap), at least SPIN_MIN_NS, at most spin_ns; not at all when the gaps are
 * longer than spin_ns, since then the spin would end before the work comes
 * and only burn the CPU.  The gap is measured whether we spun or slept, so a
 * change of pattern is seen either way.
 */
static uint64_t spin_budget(uint64_t gap, uint64_t cap)
{
	uint64_t b = 2 * gap;

	if (gap > cap)
		return 0;
	if (b < SPIN_MIN_NS)
		b = SPIN_MIN_NS;
	return b < cap ? b : cap;
}

/*
 * Spins while a spinner slot is free.  `polite`: we just woke a reaper that
 * slept on this CPU; yield now and then so that it runs here at once if the
 * scheduler queued it behind us (it may as well have gone to another CPU,
 * and then we keep spinning).
 */
static int spin_for_tasks(struct worker *wk, int polite)
{
	const struct chan_ctl *ctl = &wk->c->g->ctl;
	uint64_t budget = spin_budget(wk->gap_ema, ctl->spin_ns), end;
	unsigned i;
	int found = 0;

	if (!budget || !spin_enter(&wk->c->g->spin.spinners, ctl->spin_policy, ctl->ncpu))
		return 0;
	end = sys_now_ns() + budget;
	for (i = 1; !found; i++) {
		found = tasks_ready(wk);
		if (!(i & 63)) {
			if (sys_now_ns() > end)
				break;
			if (polite)
				sched_yield();
		}
		cpu_relax();
	}
	spin_leave(&wk->c->g->spin.spinners);
	return found;
}

struct slice {
	uint64_t off, cap;
};

/*
 * Restarts our results at the area's first byte before the area's end, once
 * they are WRAP_AT into it and the run at its start that the consumer has
 * released is at least half of what we used and twice the largest result
 * we published: results then cycle through the first tens of KiB, not the
 * whole area.  A page of the area is mapped by its first write here and its
 * first read in the consumer, in every process: 15.7 us for a write fault
 * and 8.6 us for a read fault on this guest (shadow page tables), 1-2 us on
 * bare metal.  Cycling through the default 1 MiB, ring-bench's 20 us
 * 2-worker depth-1024 row paid that on every page of 15,000 results a
 * worker; with this rule its parent took 0.27 us of CPU a task against 0.64
 * and its workers 21.83 against 22.55 (8 alternated pairs; README, "Session
 * 16").  The consumer accepts a result at offset 0 anywhere (reap.c
 * account_result);
 * the tail we skip counts as held until that result is released, so a
 * result the consumer keeps from then on stops us after the run at the
 * start, not after a whole area: callers that keep results out of order ask
 * for the whole area (ARENA_POOL_HOLD_RESULTS).  Returns 1 when it skipped:
 * run_task gives the tail back to a task that wants more than the run at
 * the start.
 */
static int wrap_early(struct worker *wk)
{
	uint64_t R = wk->c->res_bytes, off, lap, h;

	/* One compare a task: wrap_next is where we look next. */
	if (!wk->c->g->ctl.wrap_early || R < 4ull * WRAP_AT || wk->res_pos < wk->wrap_next)
		return 0;
	off = chan_res_at(wk->c, wk->res_pos);
	if (off < WRAP_AT) {
		wk->wrap_next = wk->res_pos - off + WRAP_AT;
		return 0;
	}
	/* The consumer's head is on a line it writes: read at most once per
	 * WRAP_RECHECK bytes, not on every task. */
	wk->wrap_next = wk->res_pos + WRAP_RECHECK;
	refresh_res_head(wk);
	lap = wk->res_pos - off;
	if (wk->res_head < lap)
		return 0;   /* a result of the previous lap still holds the start */
	h = wk->res_head - lap;
	if (h < off / 2 || h < 2 * wk->res_big)
		return 0;
	wk->res_pos += R - off;
	return 1;
}

/* The free run of the result area that starts at our position. */
static struct slice free_slice(struct worker *wk)
{
	uint64_t R = wk->c->res_bytes, used = wk->res_pos - wk->res_head;
	uint64_t off = chan_res_at(wk->c, wk->res_pos), tail_room = R - off, free = R - used;
	struct slice s = { off, free < tail_room ? free : tail_room };

	return s;
}

enum { ROOM_NONE, ROOM_RETRY, ROOM_WAIT };

/*
 * A task wanted more than the `cap` bytes it was given.  Returns ROOM_RETRY
 * when a larger free run is available now (restarting at the area's start
 * when nothing is held, or skipping the tail when the run at the start is
 * larger), ROOM_WAIT when earlier results still hold the space, ROOM_NONE
 * when the whole area was offered: -EMSGSIZE is then final.
 */
static int more_room(struct worker *wk, uint64_t cap, uint64_t pos0)
{
	uint64_t R = wk->c->res_bytes, used, tail_room, free;

	refresh_res_head(wk);
	/* A tail we skipped for this task is not in any completion yet: the
	 * consumer's head stops at pos0, where our last published result
	 * ended.  When it gets there, nothing is held and the skip is void
	 * (else the skipped bytes would count as used for ever). */
	if (wk->res_pos != pos0 && wk->res_head == pos0)
		wk->res_pos = pos0;
	used = wk->res_pos - wk->res_head;
	tail_room = R - chan_res_at(wk->c, wk->res_pos);
	free = R - used;
	if (used == 0 && tail_room < R) {
		reset_if_empty(wk);
		return ROOM_RETRY;
	}
	if (tail_room < free && free - tail_room > cap) {
		wk->res_pos += tail_room;
		return ROOM_RETRY;
	}
	if (free_slice(wk).cap > cap)
		return ROOM_RETRY;
	return used == 0 ? ROOM_NONE : ROOM_WAIT;
}

/* Runs one task into *cqe; allocates its result space. */
static void run_task(struct worker *wk, const struct chan_sqe *sqe, struct chan_cqe *cqe)
{
	uint64_t R = wk->c->res_bytes;
	/* Two loads, not the one 16-byte load the compiler makes of these
	 * neighbours: the previous task stored them one by one, and a load
	 * the store queue cannot forward waits until every store before it,
	 * the result bytes and the CQE on lines the consumer reads, has
	 * reached the cache (perf of `parent-cost 1 1024 2000000 0 2`: 55% of
	 * worker_run's samples right behind that load; 20 alternated pairs,
	 * medians: 42.1 ns a task against 44.9, the consumer's CPU 22.8
	 * against 25.1). */
	uint64_t pos0 = __atomic_load_n(&wk->res_pos, __ATOMIC_RELAXED);
	uint64_t head0 = __atomic_load_n(&wk->res_head, __ATOMIC_RELAXED);
	struct arena_task t;
	struct slice s;
	int rc, room, early;

	memset(cqe, 0, sizeof(*cqe));
	cqe->seq = sqe->seq;
	if (sqe->index >= wk->a->count) {
		cqe->status = -ERANGE;
		return;
	}
	early = wrap_early(wk);
	for (;;) {
		s = free_slice(wk);
		if (s.cap < R / 2 && s.cap < 4096) {
			refresh_res_head(wk);
			s = free_slice(wk);
		}
		memset(&t, 0, sizeof(t));
		t.arena = wk->a;
		t.index = sqe->index;
		t.user_data = sqe->user_data;
		t.op = sqe->op;
		t.worker = wk->id;
		t.arg = wk->arg;
		t.out = chan_res(wk->c, wk->id) + s.off;
		t.out_cap = s.cap;
		rc = call_task(wk, &t);
		if (rc != -EMSGSIZE || t.ref)
			break;
		if (early) {
			/* Our early restart offered less than the tail had. */
			early = 0;
			wk->res_pos = pos0;
			continue;
		}
		room = more_room(wk, s.cap, pos0);
		if (room == ROOM_NONE || (room == ROOM_WAIT && stop_state(wk) == CHAN_STOP_CANCEL))
			break;
		if (room == ROOM_WAIT) {
			/* Waiting for the consumer is not the task hanging. */
			atomic_store_explicit(&wk->w->hot.task_start_ns, 0, memory_order_relaxed);
			idle_wait(wk, &wk->w->slow.space_ann, space_ready);
			if (wk->c->g->ctl.task_clock)
				atomic_store_explicit(&wk->w->hot.task_start_ns, sys_now_ns(),
						      memory_order_relaxed);
		}
	}
	if (t.ref) {
		cqe->flags = CQE_F_ARENA;
		cqe->res_off = (uint64_t)((const uint8_t *)t.ref - (const uint8_t *)arena_base(wk->a));
		cqe->res_len = t.ref_len;
	} else if (rc > 0 && (uint64_t)rc <= s.cap) {
		cqe->res_off = s.off;
		cqe->res_len = (uint64_t)rc;
		wk->res_pos += ((uint64_t)rc + 7) & ~7ull;
		if ((uint64_t)rc > wk->res_big)
			wk->res_big = (uint64_t)rc;
		cqe->status = 0;
		return;
	} else if (rc > 0) {
		rc = -EOVERFLOW;  /* the task claims more than it was given */
	}
	/* No bytes were published: a skip or reset made for this task is
	 * undone, so our account matches the consumer's. */
	wk->res_pos = pos0;
	wk->res_head = head0;
	cqe->status = rc < 0 ? rc : 0;
}

static void post(struct worker *wk, const struct chan_cqe *cqe)
{
	struct chan_worker *w = wk->w;
	uint32_t mask = wk->c->cq_mask;
	struct chan_cqe *slot;

	/* The CQ holds at most `depth` entries by construction (tasks in
	 * flight are bounded); wait politely if a parent bug says otherwise.
	 * The consumer's head is read only when our last copy says full: it is
	 * on a line the consumer writes, a cache miss per task otherwise. */
	while (wk->cq_tail - wk->cq_head > mask) {
		/* acquire: the consumer copied the CQEs before it moved cq_head. */
		uint32_t h = atomic_load_explicit(&w->cons.cq_head, memory_order_acquire);

		if (h - wk->cq_head > wk->cq_tail - wk->cq_head)
			corrupt(wk); /* ahead of what we posted */
		wk->cq_head = h;
		if (wk->cq_tail - wk->cq_head <= mask)
			break;
		if (stop_state(wk) == CHAN_STOP_CANCEL)
			return;
		if (wk->unsignaled)
			signal_consumer(wk); /* never sleep on unsignaled completions */
		usleep(100);
	}
	KILLPOINT(KP_AFTER_RESULT, &wk->task);
	slot = &chan_cq(wk->c, wk->id)[wk->cq_tail & mask];
	/* Field by field (relaxed: cq_tail's release below publishes them):
	 * a 16-byte copy of the CQE built on our stack is a load the CPU
	 * cannot forward from the narrower stores that built it, and it waits
	 * for every store before it, the result bytes' included, to reach
	 * the cache (perf: over half of the worker's samples). */
	__atomic_store_n(&slot->seq, cqe->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->res_off, cqe->res_off, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->res_len, cqe->res_len, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->status, cqe->status, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->flags, cqe->flags, __ATOMIC_RELAXED);
	KILLPOINT(KP_AFTER_CQE, &wk->task);
	/* release: the CQE and the result bytes are written before the
	 * consumer's acquire load of cq_tail can see them. */
	atomic_store_explicit(&w->hot.cq_tail, ++wk->cq_tail, memory_order_release);
	KILLPOINT(KP_AFTER_CQ_TAIL, &wk->task);
	/* release: the task in hand is cleared only after its completion is
	 * published, so a death in between never loses or doubles it. */
	atomic_store_explicit(&w->hot.inhand_valid, 0, memory_order_release);
	atomic_store_explicit(&w->rec.res_alloc, wk->res_pos, memory_order_relaxed);
	atomic_store_explicit(&w->rec.tasks_done, ++wk->tasks_done, memory_order_relaxed);
	wk->unsignaled++;
}

/*
 * Wakes the consumer if it sleeps.  Called when signal_due() says so, and always
 * before this worker itself waits: a consumer is never left asleep with
 * completions it was not told about while we sleep.
 */
static int signal_consumer(struct worker *wk)
{
	wk->unsignaled = 0;
	if (!evc_wake_fd_shared(&wk->c->g->cq_waiters.ann, &wk->cq_gen, &wk->c->g->cq_seq.woken,
				&wk->c->g->cq_seq.seq, wk->wake_fd, 0))
		return 0;
	wk->wakes++;
	atomic_store_explicit(&wk->w->rec.wakes, wk->wakes, memory_order_relaxed);
	return 1;
}

/*
 * Whether to tell the consumer about the completions posted so far, with
 * `left` tasks still queued here (t: the recent task time; counted from the
 * SQ tail the batch was taken at, and asked again with what was queued
 * since before a signal goes out: queued_since):
 *  - when the queue is empty;
 *  - never while more than LONG_QUEUE_NS of work is queued here: nothing
 *    here runs dry soon, and the reaper looks by itself once a tick and a
 *    quarter while tasks are in flight (sys_look_ns, supervise.c);
 *  - after SIGNAL_BATCH tasks, once they took SIGNAL_WORK_NS: 16 tiny
 *    tasks are half a microsecond of work, and a consumer woken for each
 *    16 goes back to sleep as often.  ring-bench's tiny depth-1024 rows
 *    fell into that mode (10,000-21,000 consumer sleeps a row, 0.11-0.20
 *    us a task, 0.02-0.03 futex calls) in 4 of 6 runs with 2 workers;
 *    with this rule in none of 16 (130-2,720 sleeps, 0.047-0.073 us).
 *    With 1 worker the row was in a middle mode of about 2,000 sleeps
 *    (66 ns a task) in 13 of 16 runs and in one of about 70 (46 ns) in 3,
 *    against 3, 2 and 1 (the 10,000+ mode) of 6 before; other sets had
 *    that row at 46 ns more often before (README, "What changed in
 *    session 9");
 *  - once they have waited about SIGNAL_DELAY_NS and are at least as many
 *    as the tasks still queued: a refill is then due, and a queue half
 *    drained still covers the refill's latency.
 * Each consumer wake-up takes a CPU from a worker when the workers fill the
 * CPUs (5-15 us of CPU here): with 20 us tasks, 0.02-0.03 consumer sleeps a
 * task instead of 0.10-0.15 at depth 1024 and 0.07-0.12 instead of
 * 0.13-0.17 at depths 32 and 64 (ring-bench).  Telling it earlier, before a
 * short queue runs dry so that the refill comes before it does, measured
 * slower on 2 CPUs: 0.25-0.36 waits a task instead of 0.17-0.2 (one-thread
 * rows), more CPU than the idle gap it closes.
 */
static int signal_due(const struct worker *wk, uint32_t left)
{
	uint64_t t = wk->task_ns > wk->last_dt ? wk->task_ns : wk->last_dt;

	if (!wk->unsignaled)
		return 0;
	if (!left)
		return 1;
	if ((uint64_t)left * t > LONG_QUEUE_NS)
		return 0;
	if (wk->unsignaled >= SIGNAL_BATCH && wk->unsignaled * t >= SIGNAL_WORK_NS)
		return 1;
	return wk->unsignaled * t >= SIGNAL_DELAY_NS && wk->unsignaled >= left;
}

/*
 * We just woke a reaper that went to sleep on the CPU we run on: it may need
 * this CPU, and a plain spin here would keep it off (and make the scheduler
 * split the pair across CPUs, where every later wake-up is an
 * inter-processor one).  The spin that follows yields (spin_for_tasks).
 */
static int woke_a_neighbour(struct worker *wk)
{
	uint32_t cpu = atomic_load_explicit(&wk->c->g->cq_waiters.cpu, memory_order_relaxed);

	return cpu == (uint32_t)sched_getcpu();
}

/*
 * We just woke a reaper that sleeps on the CPU we run on, and the CPUs
 * outnumber the workers: move to another CPU, so that the reaper runs at
 * once and we keep running.  The scheduler puts a woken thread on its
 * waker's CPU or its last one, and here both were ours: left alone, the
 * reaper preempted us on every wake-up while another CPU idled, for as long
 * as the pool ran (sched_switch traces of `parent-cost 1 1024 1000000 0 2`:
 * about 950 preemptions of the worker in a run).  Only a nudge: our mask is
 * given back whole (sys_leave_cpu).  ring-bench's tiny two-thread 1-worker
 * depth-1024 row, with the producer's sleep on the pipe (submit.c
 * wait_space), 20 alternated runs each (`--workers 1 --depths 1,1024
 * --one-thread-depth 0`): the worker preempted fewer than 100 times in 18
 * runs against 3, median 0.038 us a task against 0.057.  At most once per
 * LEAVE_MIN_NS: a move costs two system calls and a migration.  Returns 1
 * when we moved (no polite spin is needed then).
 */
static int leave_reaper_cpu(struct worker *wk)
{
	uint64_t now = sys_now_ns();
	int r;

	if (wk->leave_off || wk->c->workers >= wk->c->g->ctl.ncpu ||
	    now - wk->left_at < LEAVE_MIN_NS)
		return 0;
	wk->left_at = now;
	r = sys_leave_cpu();
	if (r != -EAGAIN)
		wk->moves++; /* may have migrated (look_load) */
	/* Any failure but "nowhere to go" ends the moves for good: one whose
	 * mask restore failed left us a CPU short (still within the
	 * creator's), and every later one would take another. */
	if (r < 0 && r != -EAGAIN)
		wk->leave_off = 1;
	return r == 0;
}

static void note_task_time(struct worker *wk, uint64_t dt)
{
	wk->last_dt = dt;
	wk->task_ns = wk->task_ns ? (wk->task_ns * 7 + dt) / 8 : dt;
	atomic_store_explicit(&wk->w->rec.task_ns, wk->task_ns, memory_order_relaxed);
}

/* A cycle-counter read: a few nanoseconds, no fence; enough to notice a slow
 * task inside a stride.  0 where there is none (every task is then timed). */
static inline uint64_t cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return 0;
#endif
}

static void clock_start(struct worker *wk)
{
	wk->t_last = sys_now_ns();
	wk->tsc_last = wk->tsc_prev = cycles();
	wk->n_since = 0;
}

/*
 * Tells the parent whether our tasks block (hot.load; submit.c snapshot
 * feeds no more awake workers than CPUs with tasks that do not): at the end
 * of a stride of tasks (clock_flush) at least LOOK_NS after the last look,
 * the voluntary context switches since then (getrusage, 1 us here).  A
 * task that sleeps (I/O, a lock, a timer) makes one; preemption and yields
 * do not, so five workers taking turns on two CPUs still read as
 * CPU-bound.  Our own sleeps make one each at most, a move
 * (leave_reaper_cpu) two: a look after them says "blocks" only when the
 * switches outnumber them, and "CPU" only when there were none of them.
 * Every look stores its time (hot.look_ms): inside a long task we do not
 * look, and the parent stops believing the last answer.  Where getrusage
 * fails the answer is CHAN_LOAD_UNKNOWN, and dispatch feeds every worker,
 * as before this look.
 */
static void look_load(struct worker *wk, uint64_t now)
{
	uint64_t nv, own = wk->sleeps + 2 * wk->moves;
	uint32_t load = wk->load;

	wk->look_next = now + LOOK_NS;
	if (sys_voluntary_switches(&nv) < 0) {
		wk->look_on = 0;
		load = CHAN_LOAD_UNKNOWN;
	} else {
		/* A first look has nothing to compare yet. */
		if (wk->look_on) {
			uint64_t dv = nv - wk->look_nvcsw, down = own - wk->look_own;

			if (dv > down)
				load = CHAN_LOAD_BLOCKS;
			else if (!down)
				load = CHAN_LOAD_CPU;
		}
		wk->look_on = 1;
		wk->look_nvcsw = nv;
		wk->look_own = own;
	}
	if (load != wk->load) {
		wk->load = load;
		/* relaxed: a hint, read once by the parent's dispatch. */
		atomic_store_explicit(&wk->w->hot.load, load, memory_order_relaxed);
	}
	/* relaxed: a hint; the two words need not be seen together (a stale
	 * time with a new answer, or the reverse, is one look off). */
	atomic_store_explicit(&wk->w->hot.look_ms, (uint32_t)(now / 1000000), memory_order_relaxed);
}

/* Ends a stride of tiny tasks: their mean time is one sample.  Also learns
 * how many cycles PRECISE_NS is (both clocks run at a constant rate). */
static void clock_flush(struct worker *wk)
{
	uint64_t now, c;

	if (!wk->n_since)
		return;
	now = sys_now_ns();
	c = cycles();
	if (c > wk->tsc_last && now - wk->t_last >= CALIBRATE_NS)
		wk->slow_ticks = (c - wk->tsc_last) * PRECISE_NS / (now - wk->t_last);
	note_task_time(wk, (now - wk->t_last) / wk->n_since);
	if (now >= wk->look_next)
		look_load(wk, now);
	wk->t_last = now;
	wk->tsc_last = wk->tsc_prev = c;
	wk->n_since = 0;
}

/*
 * Task times feed dispatch (rec.task_ns) and hang deadlines (task_start_ns).
 * A clock read costs tens of nanoseconds, as much as a tiny task: tasks are
 * timed one by one only when a deadline is set or they are slow enough
 * (PRECISE_NS) for the read not to matter; tiny tasks are timed in strides of
 * CLOCK_STRIDE, cut short by a task the cycle counter finds slow (so a slow
 * task after tiny ones is timed at once, and signal_due() sees its time).  A
 * task's start is the previous one's end within a run, or the end of the
 * wake-up call that followed it.
 */
static void run_one(struct worker *wk, const struct chan_sqe *sqe, uint32_t pos, int in_slot)
{
	struct chan_worker *w = wk->w;
	struct chan_cqe cqe;
	int exact = wk->c->g->ctl.task_clock || wk->task_ns >= PRECISE_NS || !wk->slow_ticks;

	if (!wk->t_last)
		clock_start(wk);
	if (exact) {
		clock_flush(wk);
		/* release (both): task_seq after the previous start's reset to 0,
		 * the start after task_seq; the parent reads them as a pair
		 * (supervise.c check_deadlines). */
		atomic_store_explicit(&w->rec.task_seq, sqe->seq, memory_order_release);
		atomic_store_explicit(&w->hot.task_start_ns, wk->t_last, memory_order_release);
	}
	KILLPOINT(KP_TAKEN, sqe);
#ifdef ARENA_KILLPOINTS
	wk->task = *sqe; /* what the kill points read */
#endif
	w->hot.inhand_seq = sqe->seq;
	w->hot.inhand_pos = pos;
	/* release: the copy of the task above is complete before it counts as
	 * in hand; then sq_head (release) gives its slot back. */
	atomic_store_explicit(&w->hot.inhand_valid, 1, memory_order_release);
	KILLPOINT(KP_AFTER_INHAND, sqe);
	/* The first task of a run gives its slot back; the rest run from our
	 * copy of it. */
	if (in_slot)
		atomic_store_explicit(&w->hot.sq_head, ++wk->head, memory_order_release);
	KILLPOINT(KP_RETRY, sqe);
	run_task(wk, sqe, &cqe);
	wk->n_since++;
	if (exact) {
		clock_flush(wk);
		atomic_store_explicit(&w->hot.task_start_ns, 0, memory_order_relaxed);
	} else if (!(wk->n_since % CYCLE_CHECK)) {
		/* A cycle-counter read costs about 10 ns here, a quarter of a
		 * tiny task's whole cost to the worker (perf): read once per
		 * CYCLE_CHECK tasks, a slow task is noticed at most
		 * CYCLE_CHECK - 1 tasks late. */
		uint64_t c = cycles();

		if (wk->n_since >= CLOCK_STRIDE || c - wk->tsc_prev > wk->slow_ticks)
			clock_flush(wk);
		else
			wk->tsc_prev = c;
	}
	post(wk, &cqe);
}

/*
 * Before a signal that signal_due() asked for: adds to *later the tasks the
 * producer queued since *seen, the tail the count was taken at; 0 when it
 * queued none (the decision stands).  The run loop takes the SQ tail once a
 * batch and counts down from it, so near each batch's end the queue looked
 * short however full the producer had kept it, and with 20 us tasks at depth
 * 1024 every batch ended in a few signals: 776 consumer wake-ups for 60,000
 * tasks (`parent-cost 2 1024 60000 20 2`), 12 us of the parent's CPU each,
 * where the consumer's own look would have done.  Only a hint: a scribbled
 * tail can only cost a signal, and the run loop's check catches it when it
 * takes the tail next.
 */
static int queued_since(struct worker *wk, uint32_t *seen, uint32_t *later)
{
	/* acquire: pairs with the producer's release of sq_tail, like the run
	 * loop's load (chan_sq_tasks reads the entries' counts). */
	uint32_t tail = atomic_load_explicit(&wk->w->prod.sq_tail, memory_order_acquire);
	uint32_t more;

	if (tail == *seen)
		return 0;
	more = chan_sq_tasks(wk->c, wk->id, *seen, tail);
	*seen = tail;
	*later = *later + more < *later ? UINT32_MAX : *later + more;
	return 1;
}

static int cancelled(const struct worker *wk)
{
	return atomic_load_explicit(&wk->c->g->ctl.stop, memory_order_relaxed) ==
	       CHAN_STOP_CANCEL;
}

int worker_run(struct worker *wk)
{
	struct chan_worker *w = wk->w;
	uint32_t mask = wk->c->sq_mask;
	uint32_t later;       /* tasks queued behind the entry being run */
	uint32_t seen;        /* the SQ tail that `later` counts up to */
	int yield_cpu = 0;    /* a reaper we woke may need this CPU */

	wk->cq_gen = EVC_NONE;
	/* Start from the state the parent left for us (checked by it). */
	wk->head = atomic_load_explicit(&w->hot.sq_head, memory_order_relaxed);
	wk->cq_tail = atomic_load_explicit(&w->hot.cq_tail, memory_order_relaxed);
	wk->cq_head = atomic_load_explicit(&w->cons.cq_head, memory_order_acquire);
	if (wk->cq_tail - wk->cq_head > wk->c->cq_mask + 1)
		corrupt(wk);
	wk->res_pos = w->cons.res_start;
	refresh_res_head(wk);
	atomic_store_explicit(&w->rec.pid, (uint32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&w->rec.state, ARENA_WORKER_RUNNING, memory_order_relaxed);
	for (;;) {
		uint32_t stop = stop_state(wk);
		uint32_t tail = atomic_load_explicit(&w->prod.sq_tail, memory_order_acquire);

		/* acquire: pairs with the producer's release of sq_tail, so
		 * the slots before it are written. */
		if (tail - wk->head > mask + 1)
			corrupt(wk);
		if (stop == CHAN_STOP_CANCEL || (stop && tail == wk->head))
			break;
		if (tail == wk->head) {
			if (!wk->idle_since)
				wk->idle_since = sys_now_ns();
			if (!spin_for_tasks(wk, yield_cpu))
				idle_wait(wk, &w->slow.wake_ann, tasks_ready);
			yield_cpu = 0;
			continue;
		}
		refresh_res_head(wk);
		reset_if_empty(wk);
		clock_start(wk);
		if (wk->idle_since) {
			uint64_t gap = wk->t_last - wk->idle_since, cap = 2ull * wk->c->g->ctl.spin_ns;

			/* One long idle must not stop spinning for dozens of
			 * short gaps after it. */
			if (gap > cap)
				gap = cap;
			/* A gap shorter than the least spin is tasks arriving
			 * back to back, not an idle period: counted, a worker
			 * faster than its producer's one-at-a-time submissions
			 * learns a 2 us budget from them and then sleeps
			 * through every refill after the producer waited for
			 * room (arena-bench, the seed's program: worker sleeps
			 * 2,100-4,000 a run against 50-160 without them). */
			if (gap >= SPIN_MIN_NS)
				wk->gap_ema = wk->gap_ema ? (wk->gap_ema * 3 + gap) / 4 : gap;
			wk->idle_since = 0;
		}
		/* Tasks, not entries: a queue of runs would look up to 64
		 * times shorter than it is.  A hint (a scribbled count is
		 * refused below when its entry comes up). */
		later = chan_sq_tasks(wk->c, wk->id, wk->head, tail);
		seen = tail;
		while (wk->head != tail && !cancelled(wk)) {
			struct chan_sqe sqe = chan_sq(wk->c, wk->id)[wk->head & mask];
			uint32_t pos = wk->head, k, n = sqe.count;

			/* Our parent writes runs of 1 to 64; anything else is
			 * another process's scribbling. */
			if (n == 0 || n > CHAN_RUN_MAX)
				corrupt(wk);
			later = later > n ? later - n : 0;
			for (k = 0; k < n; k++) {
				run_one(wk, &sqe, pos, k == 0);
				chan_sqe_next(&sqe);
				if (signal_due(wk, later + (n - 1 - k)) &&
				    (!queued_since(wk, &seen, &later) ||
				     signal_due(wk, later + (n - 1 - k)))) {
					/* A wake-up's system call is not task time: close
					 * the stride before it, start a new one after. */
					clock_flush(wk);
					if (signal_consumer(wk)) {
						if (woke_a_neighbour(wk) && !leave_reaper_cpu(wk))
							yield_cpu = 1;
						clock_start(wk);
					}
				}
				if (cancelled(wk))
					break;
			}
		}
		clock_flush(wk);
	}
	if (wk->unsignaled)
		signal_consumer(wk);
	atomic_store_explicit(&w->rec.state, ARENA_WORKER_EXITED, memory_order_relaxed);
	return CHAN_EXIT_OK;
}
