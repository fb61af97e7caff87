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
static void requeue_one(struct arena_pool *p, const struct chan_sqe *sqe, uint64_t *touched)
{
	if (p->stopping_cancel)
		pool_complete_synthetic(p, sqe, -ECANCELED);
	else if (pool_push_locked(p, sqe, touched) < 0)
		pool_complete_synthetic(p, sqe, -ECHILD);
}

/* Moves a dead worker's lost and queued tasks to survivors. */
static void requeue(struct arena_pool *p, unsigned dead, const struct chan_sqe *lost,
		    uint32_t head)
{
	struct pool_wprod *pw = &p->wp[dead];
	uint64_t touched = 0;
	uint32_t k;

	pw->alive = 0;
	if (lost)
		requeue_one(p, lost, &touched);
	/* The SQ slots are ours (the parent wrote them); no worker reads them. */
	for (k = head; k != pw->sq_tail; k++)
		requeue_one(p, &chan_sq(&p->c, dead)[k & p->c.sq_mask], &touched);
	pw->sq_tail = head;
	if (touched)
		pool_publish_locked(p, touched);
}

int pool_handle_exit(struct arena_pool *p, unsigned i)
{
	struct pool_worker *pw = &p->w[i];
	struct chan_worker *w = chan_w(&p->c, i);
	struct chan_sqe sqe, *lost = NULL;
	siginfo_t si;
	uint32_t head;
	int clean, hang = pw->hang_killed, restarted = 0;

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
	head = atomic_load_explicit(&w->hot.sq_head, memory_order_acquire);
	if (p->wp[i].sq_tail - head > p->c.sq_mask + 1) {
		pool_fail(p, -EBADMSG);
		head = p->wp[i].sq_tail;
	}
	if (atomic_load_explicit(&w->hot.inhand_valid, memory_order_acquire)) {
		uint32_t pos = w->hot.inhand_pos;
		int taken = w->hot.inhand_retry ? 1 : head == pos + 1;

		sqe = w->hot.inhand; /* one copy; only the copy is used */
		if (taken && !(pw->last_valid && pw->last_seq == sqe.seq) &&
		    sqe.index < arena_count(p->a) &&
		    sqe.seq < atomic_load_explicit(&p->next_seq, memory_order_relaxed))
			lost = &sqe;
	} else if (pw->retry_pending) {
		/* Killed before it even took the task it was started to re-run:
		 * that task did not kill it, so it costs no attempt. */
		sqe = pw->retry;
		if (sqe.attempts)
			sqe.attempts--;
		lost = &sqe;
	}
	pw->retry_pending = 0;
	if (!clean)
		STAT_ADD(p, st_crashes, 1);
	if (lost) {
		lost->attempts = lost->attempts < p->max_attempts ? lost->attempts + 1
								  : p->max_attempts;
		if (lost->attempts >= p->max_attempts || p->stopping_cancel) {
			pool_complete_synthetic(p, lost, p->stopping_cancel ? -ECANCELED
							 : hang ? -ETIMEDOUT
							 : -EOWNERDEAD);
			if (!p->stopping_cancel)
				STAT_ADD(p, st_failed, 1);
			lost = NULL;
		} else {
			STAT_ADD(p, st_rerun, 1);
		}
	}
	/* A spinner killed mid-spin leaves the hint one too high. */
	if (atomic_load_explicit(&w->rec.state, memory_order_relaxed) != ARENA_WORKER_SLEEPING)
		atomic_store_explicit(&p->c.g->spin.spinners, 0, memory_order_relaxed);
	/* A worker that exits with an error before completing anything (an
	 * exec'd program that cannot attach, say) is not restarted for ever. */
	if (si.si_code == CLD_EXITED && si.si_status != 0 && !pw->gen_done && !lost)
		pw->start_fails++;
	else
		pw->start_fails = 0;
	if (!clean && !p->stopping_cancel && !(p->o.flags & ARENA_POOL_NO_RESTART) &&
	    pw->start_fails < MAX_START_FAILS) {
		/* The replacement starts from state we checked, not the dead
		 * worker's words. */
		atomic_store_explicit(&w->hot.sq_head, head, memory_order_relaxed);
		atomic_store_explicit(&w->hot.cq_tail, pw->cq_head, memory_order_relaxed);
		atomic_store_explicit(&w->hot.inhand_valid, 0, memory_order_relaxed);
		atomic_store_explicit(&w->hot.task_start_ns, 0, memory_order_relaxed);
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
		if (lost) {
			w->cons.retry = *lost;
			pw->retry = *lost;
			pw->retry_pending = 1;
		}
		/* release: the retry slot is written before the worker that
		 * reads retry_valid with acquire exists at all; the ordering
		 * matters only for the documentation of intent (fork orders). */
		atomic_store_explicit(&w->cons.retry_valid, lost ? 1 : 0, memory_order_release);
		if (pool_start_worker(p, i) == 0) {
			restarted = 1;
			STAT_ADD(p, st_restarted, 1);
			if (p->u.ok)
				sup_uring_flush(&p->u);
		}
	}
	if (!restarted)
		requeue(p, i, lost, head);
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
