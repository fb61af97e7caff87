/* SPDX-License-Identifier: MIT */
/*
 * Supervision: notice a worker's death (pidfd, through io_uring or a poll),
 * decide what it had in hand, run lost tasks again exactly once, fail a task
 * that keeps killing workers, replace the worker, kill hung tasks.
 * The decision rule follows the write order documented in channel.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "evc.h"
#include "pool_internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Gives one task of a worker that is gone to a survivor, or completes it. */
static void requeue_one(struct arena_pool *p, const struct chan_sqe *rec, uint64_t *touched)
{
	if (p->stopping_cancel)
		pool_complete_synthetic(p, rec, -ECANCELED);
	else if (pool_push_locked(p, rec, touched) < 0)
		pool_complete_synthetic(p, rec, -ECHILD);
}

/*
 * Moves every task in flight on a worker that is gone to survivors (or
 * completes it), taking them from our own record: never from the SQ slots in
 * the channel, which any worker can write.  cons_lock and prod_lock held.
 */
static void requeue(struct arena_pool *p, unsigned dead)
{
	struct pool_wprod *wp = &p->wp[dead];
	struct pool_worker *pw = &p->w[dead];
	uint64_t touched = 0;

	wp->alive = 0;
	for (; pw->rec_head != wp->sq_tail; pw->rec_head++)
		requeue_one(p, &wp->recs[pw->rec_head & p->c.sq_mask], &touched);
	if (touched)
		pool_publish_locked(p, touched);
}

/*
 * The task a dead worker was running, if any: only the oldest task in flight
 * on it can be (it runs them in order and its earlier completions were
 * harvested), so the worker's `inhand` words only say whether it had taken
 * that one.  Whatever they say, the task comes from our record: a dead
 * worker naming another task (an old, finished one, say) names nothing.
 * cons_lock and prod_lock held.
 */
static struct chan_sqe *task_in_hand(struct arena_pool *p, unsigned i)
{
	struct chan_worker *w = chan_w(&p->c, i);
	struct pool_worker *pw = &p->w[i];
	struct chan_sqe *rec;

	if (pw->rec_head == p->wp[i].sq_tail)
		return NULL;
	rec = &p->wp[i].recs[pw->rec_head & p->c.sq_mask];
	/* acquire: pairs with the worker's release of inhand_valid. */
	if (!atomic_load_explicit(&w->hot.inhand_valid, memory_order_acquire) ||
	    __atomic_load_n(&w->hot.inhand.seq, __ATOMIC_RELAXED) != rec->seq)
		return NULL;
	return rec;
}

/*
 * Charges the task in hand one attempt; one that has killed max_attempts
 * workers (or any, while cancelling) completes now with `status`, and is
 * taken out of the record.  Returns 1 when a task was in hand.
 */
static int charge_in_hand(struct arena_pool *p, unsigned i, int status)
{
	struct chan_sqe *rec = task_in_hand(p, i);

	if (!rec)
		return 0;
	rec->attempts = rec->attempts < p->max_attempts ? rec->attempts + 1 : p->max_attempts;
	if (rec->attempts >= p->max_attempts || p->stopping_cancel) {
		pool_complete_synthetic(p, rec, p->stopping_cancel ? -ECANCELED : status);
		if (!p->stopping_cancel)
			STAT_ADD(p, st_failed, 1);
		p->w[i].rec_head++;
	} else {
		STAT_ADD(p, st_rerun, 1);
	}
	return 1;
}

/*
 * Before a replacement starts: its SQ is rewritten from our record (tasks
 * [rec_head, sq_tail) in order, the one in hand first), and the words it
 * starts from are ours, not the dead worker's.  cons_lock and prod_lock held.
 */
static void prepare_restart(struct arena_pool *p, unsigned i)
{
	struct chan_worker *w = chan_w(&p->c, i);
	struct pool_worker *pw = &p->w[i];
	struct pool_wprod *wp = &p->wp[i];
	uint32_t k;

	for (k = pw->rec_head; k != wp->sq_tail; k++)
		chan_sq(&p->c, i)[k & p->c.sq_mask] = wp->recs[k & p->c.sq_mask];
	atomic_store_explicit(&w->prod.sq_tail, wp->sq_tail, memory_order_relaxed);
	atomic_store_explicit(&w->hot.sq_head, pw->rec_head, memory_order_relaxed);
	atomic_store_explicit(&w->hot.cq_tail, pw->cq_head, memory_order_relaxed);
	atomic_store_explicit(&w->cons.cq_head, pw->cq_head, memory_order_relaxed);
	atomic_store_explicit(&w->hot.inhand_valid, 0, memory_order_relaxed);
	atomic_store_explicit(&w->hot.task_start_ns, 0, memory_order_relaxed);
	/* No retry slot: the task in hand is the first one of the SQ again.
	 * release: everything above is written before the replacement exists
	 * (fork orders it anyway; this documents the intent). */
	atomic_store_explicit(&w->cons.retry_valid, 0, memory_order_release);
}

int pool_handle_exit(struct arena_pool *p, unsigned i)
{
	struct pool_worker *pw = &p->w[i];
	struct chan_worker *w = chan_w(&p->c, i);
	siginfo_t si;
	int clean, hang = pw->hang_killed, restarted = 0, in_hand;

	memset(&si, 0, sizeof(si));
	/* Reap it now: no zombie, whatever happens next. */
	if (waitid(P_PIDFD, (id_t)pw->pidfd, &si, WEXITED) < 0)
		si.si_code = CLD_KILLED;
	sys_close(pw->pidfd);
	pw->pidfd = -1;
	clean = si.si_code == CLD_EXITED && si.si_status == CHAN_EXIT_OK;
	if (si.si_code == CLD_EXITED && si.si_status == CHAN_EXIT_CORRUPT)
		pool_fail(p, -EBADMSG);
	/* Completions it published before dying are valid: deliver them once. */
	pool_harvest(p, i);
	pthread_mutex_lock(&p->prod_lock);
	if (!clean)
		STAT_ADD(p, st_crashes, 1);
	in_hand = charge_in_hand(p, i, hang ? -ETIMEDOUT : -EOWNERDEAD);
	/* A spinner killed mid-spin leaves the hint one too high. */
	if (atomic_load_explicit(&w->rec.state, memory_order_relaxed) != ARENA_WORKER_SLEEPING)
		atomic_store_explicit(&p->c.g->spin.spinners, 0, memory_order_relaxed);
	/* A worker that exits with an error before completing anything (an
	 * exec'd program that cannot attach, say) is not restarted for ever. */
	if (si.si_code == CLD_EXITED && si.si_status != 0 && !pw->gen_done && !in_hand)
		pw->start_fails++;
	else
		pw->start_fails = 0;
	if (!clean && !p->stopping_cancel && !(p->o.flags & ARENA_POOL_NO_RESTART) &&
	    pw->start_fails < MAX_START_FAILS) {
		prepare_restart(p, i);
		/* A dead sleeper's announcements (the owner is dead, so a plain
		 * store is safe); what it left there may be garbage, so every
		 * waker forgets the generation it woke (evc.h, rule 3). */
		atomic_store_explicit(&w->slow.wake_ann,
				      atomic_load_explicit(&w->slow.wake_ann, memory_order_relaxed) &
				      ~(EVC_GEN - 1), memory_order_relaxed);
		atomic_store_explicit(&w->slow.space_ann,
				      atomic_load_explicit(&w->slow.space_ann, memory_order_relaxed) &
				      ~(EVC_GEN - 1), memory_order_relaxed);
		p->wp[i].wake_gen = EVC_NONE;
		pthread_mutex_lock(&p->rel_lock);
		w->cons.res_start = pw->res_end;
		pw->space_gen = EVC_NONE;
		pthread_mutex_unlock(&p->rel_lock);
		if (pool_start_worker(p, i) == 0) {
			restarted = 1;
			STAT_ADD(p, st_restarted, 1);
			if (p->u.ok)
				sup_uring_flush(&p->u);
		}
	}
	if (!restarted)
		requeue(p, i);
	pthread_mutex_unlock(&p->prod_lock);
	return 0;
}

static void check_deadlines(struct arena_pool *p, uint64_t now)
{
	unsigned i;

	for (i = 0; i < p->nworkers; i++) {
		struct pool_worker *pw = &p->w[i];
		uint64_t start;

		if (pw->pidfd < 0 || pw->hang_killed)
			continue;
		start = atomic_load_explicit(&chan_w(&p->c, i)->hot.task_start_ns,
					     memory_order_relaxed);
		if (start && now > start && now - start > p->o.task_deadline_ns) {
			sys_pidfd_send_signal(pw->pidfd, SIGKILL);
			pw->hang_killed = 1;
			STAT_ADD(p, st_hangs, 1);
		}
	}
}

/* cons_lock held.  Notices exits; force_poll polls every pidfd now. */
int pool_supervise(struct arena_pool *p, int force_poll)
{
	uint64_t now = 0, tag;
	int32_t res;
	unsigned i;

	if ((p->o.flags & ARENA_POOL_NO_SUPERVISE) && !force_poll)
		return 0;
	if (p->u.ok && !p->uring_busy) {
		/* Events already in the io_uring CQ: no system call. */
		while (sup_uring_next(&p->u, &tag, &res)) {
			if ((tag & 0xF0000000ull) != URING_TAG_PIDFD)
				continue;
			i = tag & 0xff;
			if (i < p->nworkers && p->w[i].pidfd >= 0 &&
			    ((tag >> 8) & 0xfffff) == (p->w[i].gen & 0xfffff))
				pool_handle_exit(p, i);
		}
	}
	/* The clock only when something is timed: this runs on every reap. */
	if (!p->u.ok || p->o.task_deadline_ns)
		now = sys_now_ns();
	if (force_poll || (!p->u.ok && now - p->last_poll_ns >= SUPERVISE_TICK_NS)) {
		struct pollfd pfd[CHAN_MAX_WORKERS];
		unsigned idx[CHAN_MAX_WORKERS], n = 0, k;

		p->last_poll_ns = now;
		for (i = 0; i < p->nworkers; i++)
			if (p->w[i].pidfd >= 0) {
				pfd[n].fd = p->w[i].pidfd;
				pfd[n].events = POLLIN;
				pfd[n].revents = 0;
				idx[n++] = i;
			}
		if (n && poll(pfd, n, 0) > 0)
			for (k = 0; k < n; k++)
				if (pfd[k].revents)
					pool_handle_exit(p, idx[k]);
	}
	if (p->o.task_deadline_ns)
		check_deadlines(p, now);
	return 0;
}

/* No lock held.  Sleeps until a completion, a death (io_uring) or timeout. */
int pool_consumer_sleep(struct arena_pool *p, uint32_t v, int64_t timeout_ns, int use_uring)
{
	_Atomic uint32_t *seq = &p->c.g->cq_seq.seq;
	int64_t t = timeout_ns;
	uint64_t t0 = sys_now_ns();
	int r;

	/* Without io_uring, deaths and hangs are found by polling: wake up at
	 * least once a tick.  With it, only hang deadlines need a tick. */
	if (!(p->o.flags & ARENA_POOL_NO_SUPERVISE) &&
	    (!use_uring || !p->u.futex_ok || p->o.task_deadline_ns)) {
		int64_t tick = (int64_t)SUPERVISE_TICK_NS;

		if (p->o.task_deadline_ns && (int64_t)p->o.task_deadline_ns / 4 < tick)
			tick = (int64_t)p->o.task_deadline_ns / 4 + 1;
		if (t < 0 || t > tick)
			t = tick;
	}
	/* A worker signals its completions in batches, at the latest when its
	 * queue runs dry; completions posted just before a long task would wait
	 * for that task.  While tasks are in flight, look at least this often. */
	if (atomic_load_explicit(&p->inflight, memory_order_relaxed) &&
	    (t < 0 || t > (int64_t)UNSIGNALED_TICK_NS))
		t = (int64_t)UNSIGNALED_TICK_NS;
	if (use_uring && p->u.futex_ok) {
		sup_uring_arm_futex(&p->u, (uint32_t *)seq, v);
		r = sup_uring_wait(&p->u, t);
	} else {
		if (use_uring)
			sup_uring_flush(&p->u);
		r = evc_sleep(seq, v, t, 0);
	}
	STAT_ADD(p, st_cons_waits, 1);
	STAT_ADD(p, st_cons_wait_ns, sys_now_ns() - t0);
	return r;
}
