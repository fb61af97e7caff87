/* SPDX-License-Identifier: MIT */
/*
 * Supervision: notice a worker's death (pidfd, through io_uring or a poll;
 * without pidfds, waitid(P_PID, WNOWAIT) on the poll's tick),
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
#include "killpoint.h"
#include "pool_internal.h"
#include "pool_test.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Gives one task of a worker that is gone to a survivor, or completes it. */
static void requeue_one(struct arena_pool *p, const struct chan_sqe *rec, uint64_t *touched)
{
	if (p->stopping_cancel)
		pool_complete_synthetic_run(p, rec, -ECANCELED);
	else if (pool_push_locked(p, rec, touched) < 0)
		pool_complete_synthetic_run(p, rec, -ECHILD);
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
	    __atomic_load_n(&w->hot.inhand_seq, __ATOMIC_RELAXED) != rec->seq)
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
	rec->attempts = (uint16_t)(rec->attempts < p->max_attempts ? rec->attempts + 1u
								 : p->max_attempts);
	if (rec->attempts >= p->max_attempts || p->stopping_cancel) {
		pool_complete_synthetic(p, rec, p->stopping_cancel ? -ECANCELED : status);
		if (!p->stopping_cancel)
			STAT_ADD(p, st_failed, 1);
		/* The rest of its run, if any, goes on (or is cancelled with
		 * the other tasks in flight). */
		pool_record_done(p, i, rec);
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
	/* The dead worker's look is not its replacement's (submit.c). */
	atomic_store_explicit(&w->hot.load, CHAN_LOAD_UNKNOWN, memory_order_relaxed);
	/* A dead sleeper's announcements (the owner is dead, so a plain
	 * store is safe); what it left there may be garbage, so every
	 * waker forgets the generation it woke (evc.h, rule 3). */
	atomic_store_explicit(&w->slow.wake_ann,
			      atomic_load_explicit(&w->slow.wake_ann, memory_order_relaxed) &
			      ~(EVC_GEN - 1), memory_order_relaxed);
	atomic_store_explicit(&w->slow.space_ann,
			      atomic_load_explicit(&w->slow.space_ann, memory_order_relaxed) &
			      ~(EVC_GEN - 1), memory_order_relaxed);
	wp->wake_gen = EVC_NONE;
	pthread_mutex_lock(&p->rel_lock);
	w->cons.res_start = pw->res_end;
	pw->space_gen = EVC_NONE;
	pthread_mutex_unlock(&p->rel_lock);
	/* No retry slot: the task in hand is the first one of the SQ again.
	 * release: everything above is written before the replacement exists
	 * (fork orders it anyway; this documents the intent). */
	atomic_store_explicit(&w->cons.retry_valid, 0, memory_order_release);
}

/* waitid on worker i, by pidfd or (no_pidfd) by pid.  0 or -errno; a
 * worker gone before its pid was known (pid 0) is -ECHILD. */
static int wait_worker(const struct pool_worker *pw, siginfo_t *si, int flags)
{
	int r;

	if (pw->pidfd < 0 && pw->pid <= 0)
		return -ECHILD;
	do
		r = pw->pidfd >= 0 ? waitid(P_PIDFD, (id_t)pw->pidfd, si, flags | __WALL)
				   : waitid(P_PID, (id_t)pw->pid, si, flags | __WALL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? SYS_ERR() : 0;
}

/*
 * Signals worker i while it runs.  Without a pidfd, kill() is safe only
 * while it is our unreaped child (sys_kill_child): its pid is ours until we
 * reap it.  cons_lock held (nobody reaps it meanwhile).
 */
int pool_signal_worker(struct arena_pool *p, unsigned i, int sig)
{
	struct pool_worker *pw = &p->w[i];

	if (!pw->running)
		return -ESRCH;
	if (pw->pidfd >= 0)
		return sys_pidfd_send_signal(pw->pidfd, sig);
	return sys_kill_child(pw->pid, sig);
}

/* no_pidfd: has worker i exited (or been reaped by someone else)?  One
 * waitid, reaping nothing. */
static int exited_by_pid(const struct pool_worker *pw)
{
	return sys_child_state(pw->pid) != 1;
}

/*
 * How worker i ended: 1 clean, 0 not; -1 when it has not exited (a stale or
 * forged poll event).  *status gets the exit code when it exited, -1 when
 * killed or unknown.  The status is lost when SIGCHLD is ignored (the kernel
 * reaps it) or another thread's waitpid(-1) took it (waitid: ECHILD); the
 * worker's own record decides then: it exited cleanly only if it said so,
 * stop was set and it had nothing in hand.
 */
static int exit_clean(struct arena_pool *p, unsigned i, int *status)
{
	struct pool_worker *pw = &p->w[i];
	struct chan_worker *w = chan_w(&p->c, i);
	siginfo_t si;
	int r;

	memset(&si, 0, sizeof(si));
	r = wait_worker(pw, &si, WEXITED | WNOHANG);
	*status = -1;
	if (r == 0 && si.si_pid == 0)
		return -1;
	if (r == 0) {
		if (si.si_code != CLD_EXITED)
			return 0;
		*status = si.si_status;
		return si.si_status == CHAN_EXIT_OK;
	}
	return atomic_load_explicit(&w->rec.state, memory_order_relaxed) == ARENA_WORKER_EXITED &&
	       atomic_load_explicit(&p->c.g->ctl.stop, memory_order_relaxed) != 0 &&
	       !atomic_load_explicit(&w->hot.inhand_valid, memory_order_acquire);
}

/* A start that failed for want of resources (a process limit, memory, no
 * free fd for the pidfd) is worth trying again; a dead fork server is not. */
static int start_error_transient(int r)
{
	return r == -EAGAIN || r == -ENOMEM || r == -ENOSPC || r == -EINTR ||
	       r == -EMFILE || r == -ENFILE;
}

static int others_alive(struct arena_pool *p, unsigned i)
{
	unsigned k;

	for (k = 0; k < p->nworkers; k++)
		if (k != i && p->wp[k].alive)
			return 1;
	return 0;
}

/*
 * Starts the replacement of worker i, prepared by prepare_restart.  Returns
 * 1 when the slot is taken care of (started, or a retry is scheduled), 0
 * when it must be given up (its tasks then go to the survivors).  A failed
 * fork is retried with a backoff from RESTART_BACKOFF_MIN_NS doubling to
 * RESTART_BACKOFF_MAX_NS.  Meanwhile its tasks go to the survivors, or, with
 * none left, wait in its queue (and our record) for the replacement.
 * prod_lock held (and dropped while the fork server answers), cons_lock
 * held.
 */
static int restart(struct arena_pool *p, unsigned i)
{
	struct pool_worker *pw = &p->w[i];
	int r;

	/* Submitters need not wait for the fork server's answer (up to
	 * FSRV_TIMEOUT_MS if it hangs): the slot's words are prepared, tasks
	 * they queue on it meanwhile are the replacement's, or the
	 * survivors' below.  cons_lock, still held, keeps the rest. */
	pthread_mutex_unlock(&p->prod_lock);
	r = pool_start_worker(p, i);
	pthread_mutex_lock(&p->prod_lock);
	if (r == 0) {
		if (pw->restart_due)
			atomic_fetch_sub_explicit(&p->restarts_pending, 1, memory_order_relaxed);
		pw->restart_due = 0;
		pw->restart_backoff = 0;
		p->wp[i].alive = 1;
		STAT_ADD(p, st_restarted, 1);
		return 1;
	}
	if (!start_error_transient(r))
		return 0;
	if (!pw->restart_due)
		atomic_fetch_add_explicit(&p->restarts_pending, 1, memory_order_relaxed);
	pw->restart_backoff = pw->restart_backoff ? 2 * pw->restart_backoff : RESTART_BACKOFF_MIN_NS;
	if (pw->restart_backoff > RESTART_BACKOFF_MAX_NS)
		pw->restart_backoff = RESTART_BACKOFF_MAX_NS;
	pw->restart_due = sys_now_ns() + pw->restart_backoff;
	/* Survivors run its tasks meanwhile; the replacement starts empty. */
	if (p->wp[i].alive && others_alive(p, i))
		requeue(p, i);
	return 1;
}

/* Gives up a slot whose restart was pending: its tasks go to the
 * survivors (or complete).  prod_lock held. */
static void give_up_restart(struct arena_pool *p, unsigned i)
{
	atomic_fetch_sub_explicit(&p->restarts_pending, 1, memory_order_relaxed);
	p->w[i].restart_due = 0;
	requeue(p, i);
}

/* Tries the restarts whose backoff has passed.  cons_lock held. */
static void retry_restarts(struct arena_pool *p, uint64_t now)
{
	unsigned i;

	for (i = 0; i < p->nworkers; i++) {
		struct pool_worker *pw = &p->w[i];
		int idle;

		if (!pw->restart_due || now < pw->restart_due)
			continue;
		pthread_mutex_lock(&p->prod_lock);
		idle = pw->rec_head == p->wp[i].sq_tail;
		if (p->stopping_cancel ||
		    (idle && atomic_load_explicit(&p->c.g->ctl.stop, memory_order_relaxed))) {
			give_up_restart(p, i);
		} else {
			prepare_restart(p, i);
			if (!restart(p, i))
				give_up_restart(p, i);
		}
		pthread_mutex_unlock(&p->prod_lock);
	}
}

/* A spinner killed mid-spin leaves the hint one too high (channel.h). */
static void reset_spin_hint(struct arena_pool *p, unsigned i)
{
	if (atomic_load_explicit(&chan_w(&p->c, i)->rec.state, memory_order_relaxed) !=
	    ARENA_WORKER_SLEEPING)
		atomic_store_explicit(&p->c.g->spin.spinners, 0, memory_order_relaxed);
}

/*
 * A worker that its start killed and reaped before we knew it (fsrv_spawn:
 * its pidfd found no free fd).  It may have run a moment: what it completed
 * is valid and delivered once, here, and its spinning is forgotten.  The
 * rest of its traces go with the slot's next prepare_restart, or the slot's
 * tasks with requeue.  cons_lock held (or create).
 */
void pool_unseen_exit(struct arena_pool *p, unsigned i)
{
	pool_harvest(p, i);
	reset_spin_hint(p, i);
}

/* cons_lock held.  Returns 1 when worker i turned out to be alive. */
int pool_handle_exit(struct arena_pool *p, unsigned i)
{
	struct pool_worker *pw = &p->w[i];
	const struct chan_sqe *rec;
	int clean, status, restarted = 0, in_hand;

	/* Reap it now: no zombie, whatever happens next. */
	clean = exit_clean(p, i, &status);
	if (clean < 0)
		return 1;
	if (pw->pidfd >= 0)
		sys_close(pw->pidfd);
	pw->pidfd = -1;
	pw->running = 0;
	if (pw->watch_pending) {
		pw->watch_pending = 0;
		atomic_fetch_sub_explicit(&p->watches_pending, 1, memory_order_relaxed);
	}
	if (status == CHAN_EXIT_CORRUPT)
		pool_fail(p, -EBADMSG);
	/* Completions it published before dying are valid: deliver them once. */
	pool_harvest(p, i);
	pthread_mutex_lock(&p->prod_lock);
	if (!clean)
		STAT_ADD(p, st_crashes, 1);
	/* A deadline kill is charged to the task that overran; when it landed
	 * after that task ended (the next one was in hand), the task in hand
	 * did not kill its worker: it runs again at no cost. */
	rec = task_in_hand(p, i);
	if (pw->hang_killed && rec && rec->seq != pw->hang_seq) {
		in_hand = 1;
		STAT_ADD(p, st_rerun, 1);
	} else {
		in_hand = charge_in_hand(p, i, pw->hang_killed ? -ETIMEDOUT : -EOWNERDEAD);
	}
	reset_spin_hint(p, i);
	/* A worker that exits with an error before completing anything (an
	 * exec'd program that cannot attach, say) is not restarted for ever. */
	if (status > 0 && !pw->gen_done && !in_hand)
		pw->start_fails++;
	else
		pw->start_fails = 0;
	/* During a stop, a worker with nothing in flight on it is not
	 * replaced (whatever it died of): there is nothing left for it. */
	if (!clean && !p->stopping_cancel && !(p->o.flags & ARENA_POOL_NO_RESTART) &&
	    pw->start_fails < MAX_START_FAILS &&
	    !(atomic_load_explicit(&p->c.g->ctl.stop, memory_order_relaxed) &&
	      pw->rec_head == p->wp[i].sq_tail)) {
		prepare_restart(p, i);
		restarted = restart(p, i);
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
		struct chan_worker *w = chan_w(&p->c, i);
		uint64_t start, seq;

		if (!pw->running || pw->hang_killed)
			continue;
		/* The task's start and seq as a pair (the worker stores seq,
		 * then start, both release): a start read again unchanged
		 * means seq is that task's.  acquire: pairs with the worker's
		 * release stores (worker.c run_one). */
		start = atomic_load_explicit(&w->hot.task_start_ns, memory_order_acquire);
		if (!start || now <= start || now - start <= p->o.task_deadline_ns)
			continue;
		seq = atomic_load_explicit(&w->rec.task_seq, memory_order_acquire);
		if (atomic_load_explicit(&w->hot.task_start_ns, memory_order_relaxed) != start)
			continue; /* it moved on: look again next time */
		pool_signal_worker(p, i, SIGKILL);
		pw->hang_killed = 1;
		pw->hang_seq = seq;
		STAT_ADD(p, st_hangs, 1);
	}
}

/*
 * Queues a poll for every started worker whose pidfd is not watched yet.
 * Only the ring's owner calls it: a thread holding cons_lock while no reaper
 * sleeps in the ring (uring_busy 0), or the reaper about to sleep in it.
 * liburing's submission side is not thread-safe, so this is the one way to
 * it.  A watch that cannot be queued stays pending, and the slot is polled
 * meanwhile (pool_supervise): an error handled, not ignored.  Sent by the
 * next submit (the caller's flush or wait).  cons_lock held.
 */
int pool_arm_watches(struct arena_pool *p)
{
	unsigned i;
	int r = 0;

	if (!atomic_load_explicit(&p->watches_pending, memory_order_relaxed))
		return 0;
	for (i = 0; i < p->nworkers; i++) {
		struct pool_worker *pw = &p->w[i];

		if (!pw->watch_pending)
			continue;
		if (pw->pidfd >= 0) {
			if (p->test_fail_watches && p->started_once) {
				p->test_fail_watches--;
				r = -EBUSY;
				break;
			}
			r = sup_uring_watch_pidfd(&p->u, pw->pidfd,
						  ((uint64_t)(pw->gen & 0xfffff) << 8) | i);
			if (r < 0)
				break;
		}
		pw->watch_pending = 0;
		atomic_fetch_sub_explicit(&p->watches_pending, 1, memory_order_relaxed);
	}
	return r;
}

/* Events already in the io_uring CQ (no system call).  The ring's owner
 * only (see pool_arm_watches).  cons_lock held. */
static void uring_events(struct arena_pool *p)
{
	uint64_t tag;
	int32_t res;
	unsigned i;

	while (sup_uring_next(&p->u, &tag, &res)) {
		struct pool_worker *pw;

		if ((tag & 0xF0000000ull) != URING_TAG_PIDFD)
			continue;
		i = tag & 0xff;
		if (i >= p->nworkers)
			continue;
		pw = &p->w[i];
		if (pw->pidfd < 0 || ((tag >> 8) & 0xfffff) != (pw->gen & 0xfffff))
			continue;
		/* A failed poll, or one that fired for a worker still alive:
		 * watch it again (never wait on a live worker). */
		if ((res <= 0 || pool_handle_exit(p, i)) && !pw->watch_pending) {
			pw->watch_pending = 1;
			atomic_fetch_add_explicit(&p->watches_pending, 1, memory_order_relaxed);
		}
	}
	if (atomic_load_explicit(&p->watches_pending, memory_order_relaxed)) {
		pool_arm_watches(p);
		sup_uring_flush(&p->u);
	}
}

/* cons_lock held.  Notices exits; force_poll polls every pidfd now. */
int pool_supervise(struct arena_pool *p, int force_poll)
{
	uint64_t now = 0;
	unsigned i;
	int unwatched;

	if ((p->o.flags & ARENA_POOL_NO_SUPERVISE) && !force_poll)
		return 0;
	if (p->u.ok && !p->uring_busy)
		uring_events(p);
	unwatched = !p->u.ok || p->no_pidfd ||
		    atomic_load_explicit(&p->watches_pending, memory_order_relaxed);
	/* The clock only when something is timed: this runs on every reap. */
	if (unwatched || p->o.task_deadline_ns ||
	    atomic_load_explicit(&p->restarts_pending, memory_order_relaxed))
		now = sys_now_ns();
	if (force_poll || (unwatched && now - p->last_poll_ns >= SUPERVISE_TICK_NS)) {
		struct pollfd pfd[CHAN_MAX_WORKERS];
		unsigned idx[CHAN_MAX_WORKERS], n = 0, k;

		p->last_poll_ns = now;
		for (i = 0; i < p->nworkers; i++)
			if (p->w[i].running && p->w[i].pidfd < 0 && exited_by_pid(&p->w[i]))
				pool_handle_exit(p, i);
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
	if (atomic_load_explicit(&p->restarts_pending, memory_order_relaxed))
		retry_restarts(p, now);
	if (p->o.task_deadline_ns)
		check_deadlines(p, now);
	return 0;
}

/* No lock held.  Sleeps until a completion, a death (io_uring) or timeout. */
int pool_consumer_sleep(struct arena_pool *p, uint32_t v, int64_t timeout_ns, int use_uring,
			int use_pipe)
{
	_Atomic uint32_t *seq = &p->c.g->cq_seq.seq;
	int64_t t = timeout_ns, look;
	uint64_t t0 = sys_now_ns();
	int r;

	/* Without io_uring, deaths and hangs are found by polling: wake up at
	 * least once a tick.  With it, only hang deadlines need a tick. */
	if (!(p->o.flags & ARENA_POOL_NO_SUPERVISE) &&
	    (!use_uring || p->no_pidfd || p->o.task_deadline_ns ||
	     atomic_load_explicit(&p->watches_pending, memory_order_relaxed) ||
	     atomic_load_explicit(&p->restarts_pending, memory_order_relaxed))) {
		int64_t tick = (int64_t)SUPERVISE_TICK_NS;

		if (p->o.task_deadline_ns && (int64_t)p->o.task_deadline_ns / 4 < tick)
			tick = (int64_t)p->o.task_deadline_ns / 4 + 1;
		if (atomic_load_explicit(&p->restarts_pending, memory_order_relaxed))
			tick = (int64_t)RESTART_BACKOFF_MIN_NS;
		if (t < 0 || t > tick)
			t = tick;
	}
	/* A worker signals its completions in batches, at the latest when its
	 * queue runs dry; completions posted just before a long task would wait
	 * for that task.  While tasks are in flight, look once a tick and a
	 * quarter (sys.h sys_look_ns: a shorter timer costs every sleep two
	 * timer reprograms).  With none in flight, once every IDLE_LOOKS looks:
	 * tasks submitted after we went to sleep are then in flight without
	 * this sleep having a look (a submit does not wake the reaper; that
	 * would cost a wake-up a task where a reaper sleeps between tasks). */
	look = (int64_t)p->look_ns;
	if (!atomic_load_explicit(&p->inflight, memory_order_relaxed))
		look *= IDLE_LOOKS;
	if (t < 0 || t > look)
		t = look;
	t = KP_NO_POLL(t, timeout_ns);
	if (use_pipe) {
		if (use_uring)
			sup_uring_flush(&p->u); /* the watches armed with the wait */
		/* The reapers' wake pipe (pool_internal.h wake_r), and the
		 * io_uring, whose completions are the workers' deaths. */
		r = evc_sleep_fd(seq, v, p->wake_r, use_uring ? p->u.ring.ring_fd : -1, t);
	} else if (use_uring) {
		/* The futex and the deaths in one io_uring_enter (reap.c
		 * chooses this only where the kernel has FUTEX_WAIT). */
		sup_uring_arm_futex(&p->u, (uint32_t *)seq, v);
		r = sup_uring_wait(&p->u, t);
	} else {
		r = evc_sleep(seq, v, t, 0);
	}
	STAT_ADD(p, st_cons_waits, 1);
	STAT_ADD(p, st_cons_wait_ns, sys_now_ns() - t0);
	return r;
}
