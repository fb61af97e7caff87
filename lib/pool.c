/* SPDX-License-Identifier: MIT */
/* Pool life cycle: create, start workers (fork or posix_spawn), stop, destroy. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evc.h"
#include "pool_internal.h"
#include "pool_test.h"
#include "worker.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

void pool_fail(struct arena_pool *p, int err)
{
	int zero = 0;

	/* First error wins; every later call reports it. */
	if (!atomic_compare_exchange_strong(&p->failed, &zero, err))
		return;
	/* A producer or reaper asleep now would wait for space or completions
	 * that a failed pool never makes: wake them to see the error. */
	pool_wake_producers(p);
	pool_wake_reapers(p);
}

void pool_wake_producers(struct arena_pool *p)
{
	/* release: a producer that reads the new seq sees what the caller
	 * published. */
	atomic_fetch_add_explicit(&p->space_seq, 1, memory_order_release);
	sys_futex_wake((uint32_t *)&p->space_seq, INT_MAX, 1);
	if (p->space_w >= 0)
		sys_poke(p->space_w);
}

void pool_wake_reapers(struct arena_pool *p)
{
	/* release: a reaper that reads the new seq sees what the caller
	 * published. */
	atomic_fetch_add_explicit(&p->c.g->cq_seq.seq, 1, memory_order_release);
	sys_futex_wake((uint32_t *)&p->c.g->cq_seq.seq, INT_MAX, 0);
	if (p->wake_w >= 0)
		sys_poke(p->wake_w);
}

/* Starts worker i through the fork server.  cons_lock held (or create). */
int pool_start_worker(struct arena_pool *p, unsigned i)
{
	struct pool_worker *pw = &p->w[i];
	pid_t pid;
	int pidfd, r;

	r = fsrv_spawn(p, i, &pidfd, &pid);
	if (r < 0)
		return r;
	pw->pid = pid;
	pw->pidfd = pidfd;
	pw->running = 1;
	pw->gen++;
	pw->hang_killed = 0;
	pw->exited_clean = 0;
	pw->gen_done = 0;
	/* The io_uring's owner arms the watch (supervise.c pool_arm_watches):
	 * whoever starts a worker may not own the ring right now.  A reaper
	 * asleep in the ring is woken to arm it.  Without a pidfd there is
	 * nothing to watch: the tick polls it (supervise.c). */
	if (p->u.ok && pidfd >= 0 && !pw->watch_pending) {
		pw->watch_pending = 1;
		atomic_fetch_add_explicit(&p->watches_pending, 1, memory_order_relaxed);
		if (p->uring_busy)
			pool_wake_reapers(p);
	}
	return 0;
}

static int check_opts(const struct arena *a, const struct arena_pool_opts *o)
{
	const uint32_t known = ARENA_POOL_ORDERED | ARENA_POOL_NO_URING |
			       ARENA_POOL_NO_RESTART | ARENA_POOL_NO_SUPERVISE |
			       ARENA_POOL_EINTR | ARENA_POOL_HOLD_RESULTS |
			       ARENA_POOL_TEST_OPTS;
	unsigned k;

	if (!a || !arena_is_sealed(a))
		return -EINVAL;
	if (o->flags & ~known)
		return -EINVAL;
	if (o->workers > CHAN_MAX_WORKERS || o->depth > (1u << 20))
		return -EINVAL;
	if (o->spin > ARENA_SPIN_ALWAYS)
		return -EINVAL;
	/* A field this library does not know is not silently ignored. */
	if (o->reserved0)
		return -EINVAL;
	for (k = 0; k < sizeof(o->reserved) / sizeof(o->reserved[0]); k++)
		if (o->reserved[k])
			return -EINVAL;
	if (o->nkeep_fds > CHAN_MAX_WORKERS || (o->nkeep_fds && !o->keep_fds))
		return -EINVAL;
	for (k = 0; k < o->nkeep_fds; k++)
		if (o->keep_fds[k] < 0)
			return -EINVAL;
	/* worker_init runs in forked workers only: an exec'd worker runs its
	 * own program. */
	if (o->worker_init && o->worker_path)
		return -EINVAL;
	return 0;
}

/* Deep copies of what the caller's pointers name (used at every restart). */
static int copy_opts(struct arena_pool *p, const struct arena_pool_opts *o)
{
	size_t n = 0, k;

	if (o->worker_path && !(p->worker_path = strdup(o->worker_path)))
		return -ENOMEM;
	if (o->worker_argv) {
		while (o->worker_argv[n])
			n++;
		p->worker_argv = calloc(n + 1, sizeof(*p->worker_argv));
		if (!p->worker_argv)
			return -ENOMEM;
		for (k = 0; k < n; k++)
			if (!(p->worker_argv[k] = strdup(o->worker_argv[k])))
				return -ENOMEM;
	}
	if (o->nkeep_fds) {
		p->keep_fds = calloc(o->nkeep_fds, sizeof(*p->keep_fds));
		if (!p->keep_fds)
			return -ENOMEM;
		memcpy(p->keep_fds, o->keep_fds, o->nkeep_fds * sizeof(*p->keep_fds));
		p->nkeep_fds = o->nkeep_fds;
	}
	/* The caller's pointers are not used after create. */
	p->o.worker_path = NULL;
	p->o.worker_argv = NULL;
	p->o.keep_fds = NULL;
	return 0;
}

static void kill_and_reap(struct arena_pool *p, unsigned i)
{
	struct pool_worker *pw = &p->w[i];

	siginfo_t si;

	if (!pw->running)
		return;
	pool_signal_worker(p, i, SIGKILL);
	/* ECHILD (SIGCHLD ignored, another thread's waitpid) is fine. */
	if (pw->pidfd >= 0)
		while (waitid(P_PIDFD, (id_t)pw->pidfd, &si, WEXITED | __WALL) < 0 &&
		       errno == EINTR)
			;
	else if (pw->pid > 0)
		while (waitid(P_PID, (id_t)pw->pid, &si, WEXITED | __WALL) < 0 && errno == EINTR)
			;
	if (pw->pidfd >= 0)
		sys_close(pw->pidfd);
	pw->pidfd = -1;
	pw->running = 0;
}

static void pool_free(struct arena_pool *p)
{
	unsigned i;

	if (p->w) {
		for (i = 0; i < p->nworkers; i++) {
			kill_and_reap(p, i);
			free(p->w[i].fifo.end);
		}
	}
	fsrv_stop(&p->fs);
	sup_uring_exit(&p->u);
	if (p->c.base)
		chan_unmap(&p->c);
	if (p->chan_fd >= 0)
		sys_close(p->chan_fd);
	if (p->wake_r >= 0)
		sys_close(p->wake_r);
	if (p->wake_w >= 0)
		sys_close(p->wake_w);
	if (p->space_r >= 0)
		sys_close(p->space_r);
	if (p->space_w >= 0)
		sys_close(p->space_w);
	pthread_mutex_destroy(&p->prod_lock);
	pthread_mutex_destroy(&p->cons_lock);
	pthread_mutex_destroy(&p->rel_lock);
	free(p->worker_path);
	if (p->worker_argv)
		for (char **v = p->worker_argv; *v; v++)
			free(*v);
	free(p->worker_argv);
	free(p->keep_fds);
	free(p->cbuf);
	pool_records_free(p);
	free(p->w);
	free(p->wp);
	free(p);
}

int arena_pool_create(struct arena_pool **out, const struct arena *a,
		      const struct arena_pool_opts *opts)
{
	struct arena_pool_opts o = { 0 };
	const struct arena_pool_test_opts *t = NULL;
	struct chan_params prm;
	struct arena_pool *p;
	unsigned i;
	int r;

	if (!out)
		return -EINVAL;
	if (opts)
		o = *opts;
	r = check_opts(a, &o);
	if (r < 0)
		return r;
	if (o.flags & ARENA_POOL_TEST_OPTS)
		t = (const struct arena_pool_test_opts *)opts;
	/* Aligned: its producer and consumer groups start cache lines. */
	p = aligned_alloc(CACHELINE, (sizeof(*p) + CACHELINE - 1) & ~(size_t)(CACHELINE - 1));
	if (!p)
		return -ENOMEM;
	memset(p, 0, sizeof(*p));
	p->chan_fd = -1;
	p->wake_r = p->wake_w = -1;
	p->space_r = p->space_w = -1;
	p->fs.sock = p->fs.pidfd = -1;
	pthread_mutex_init(&p->prod_lock, NULL);
	pthread_mutex_init(&p->cons_lock, NULL);
	pthread_mutex_init(&p->rel_lock, NULL);
	p->a = a;
	p->o = o;
	p->nworkers = o.workers ? o.workers : 1;
	p->depth = o.depth ? o.depth : 10;
	/* The record counts attempts in 16 bits (channel.h chan_sqe). */
	p->max_attempts = !o.max_attempts ? 3 : o.max_attempts > UINT16_MAX ? UINT16_MAX : o.max_attempts;
	p->ordered = !!(o.flags & ARENA_POOL_ORDERED);
	p->self = getpid();
	p->creator_tid = (pid_t)syscall(SYS_gettid);
	if (t) {
		p->index_base = t->ring_index_base;
		p->test_fail_starts = t->fail_starts;
		p->test_fail_watches = t->fail_watches;
		p->test_runs = t->runs;
		p->test_spawn_race = t->spawn_race;
		p->test_spawn_race_arg = t->spawn_race_arg;
		p->no_pidfd = t->no_pidfd != 0;
	}
	if (!sys_pidfd_usable())
		p->no_pidfd = 1;
	r = copy_opts(p, &o);
	if (r < 0)
		goto fail;
	p->cmask = pow2_at_least(p->depth) - 1;
	p->cbuf = calloc((size_t)p->cmask + 1, sizeof(*p->cbuf));
	p->w = calloc(p->nworkers, sizeof(*p->w));
	p->wp = aligned_alloc(CACHELINE, (p->nworkers * sizeof(*p->wp) + CACHELINE - 1) &
					    ~(size_t)(CACHELINE - 1));
	if (!p->cbuf || !p->w || !p->wp) {
		r = -ENOMEM;
		goto fail;
	}
	/* Zeroed: a stale wake_gen from freed memory would skip a real wake. */
	memset(p->wp, 0, p->nworkers * sizeof(*p->wp));
	p->space_gen = EVC_NONE;
	for (i = 0; i < p->nworkers; i++) {
		p->w[i].pidfd = -1;
		r = pool_fifo_init(&p->w[i].fifo);
		if (r < 0)
			goto fail;
	}
	prm.workers = p->nworkers;
	prm.depth = p->depth;
	prm.res_bytes = o.result_bytes ? o.result_bytes : (1u << 20);
	prm.arena_size = arena_size(a);
	prm.index_base = p->index_base;
	r = chan_create(&p->c, &p->chan_fd, &prm);
	if (r < 0)
		goto fail;
	p->ncpu = sys_cpus();
	p->c.g->ctl.ncpu = p->ncpu;
	/* Deep queues refill in batches: a sleeping producer is woken once a
	 * quarter of the depth is free; three quarters, from a depth of 4 x
	 * COALESCE_N (128) with fewer workers than CPUs, where a reaper
	 * gathers while it sleeps (reap.c gather) on a CPU no worker needs.
	 * Half the depth halved the producer's sleeps (12 ns of its CPU a task
	 * against 16.5, `parent-cost 1 1024 2000000 0 2`); without the gather
	 * the consumer of the two-thread shape then reaped 6-7 completions at
	 * a time against 55-60 and read each line as the worker wrote it
	 * (41-44 ns a task against 38).  There the producer and the consumer
	 * share a CPU, whose time a task bounds the pool's: three quarters,
	 * ring-bench's tiny two-thread 1-worker depth-1024 row at 0.034 us a
	 * task against 0.038 (10 alternated pairs, producer 10 ns of CPU a
	 * task against 13); seven eighths let the worker run dry (0.035-0.051).
	 * The seed's depth of 10 keeps 2. */
	p->space_pipe_always = p->depth >= 4 * COALESCE_N && p->nworkers < p->ncpu;
	p->space_need = p->space_pipe_always ? p->depth / 4 * 3 : p->depth >= 8 ? p->depth / 4 : 1;
	p->c.g->ctl.spin_policy = o.spin;
	p->c.g->ctl.task_clock = o.task_deadline_ns != 0;
	p->c.g->ctl.wrap_early = !(o.flags & ARENA_POOL_HOLD_RESULTS);
	p->c.g->ctl.spin_ns = o.spin_ns ? o.spin_ns : DEFAULT_SPIN_NS;
	if (o.spin == ARENA_SPIN_NEVER)
		p->c.g->ctl.spin_ns = 0;
	for (i = 0; i < p->nworkers; i++) {
		p->wp[i].sq_tail = prm.index_base;
		p->wp[i].alive = 1;
		p->wp[i].wake_gen = EVC_NONE;
		p->w[i].space_gen = EVC_NONE;
		p->w[i].cq_head = prm.index_base;
	}
	r = pool_records_init(p, prm.index_base);
	if (r < 0)
		goto fail;
	/* The reapers' wake pipe, before the fork server (every worker holds
	 * its write end). */
	r = sys_wake_pipe(&p->wake_r, &p->wake_w);
	if (r < 0)
		goto fail;
	/* Every worker starts from the fork server, forked now, before the
	 * io_uring exists: no worker ever holds the ring. */
	r = fsrv_start(p);
	if (r < 0)
		goto fail;
	/* The producers' wake pipe, after it: no worker ever holds it. */
	r = sys_wake_pipe(&p->space_r, &p->space_w);
	if (r < 0)
		goto fail;
	if (!(o.flags & (ARENA_POOL_NO_URING | ARENA_POOL_NO_SUPERVISE)))
		sup_uring_init(&p->u, 2 * CHAN_MAX_WORKERS + 8); /* failure: fallback */
	for (i = 0; i < p->nworkers; i++) {
		r = pool_start_worker(p, i);
		if (r < 0)
			goto fail;
	}
	if (p->u.ok) {
		r = pool_arm_watches(p);
		if (r == 0)
			r = sup_uring_flush(&p->u);
		if (r < 0)
			goto fail;
	}
	p->started_once = 1; /* test knobs count from here */
	p->last_poll_ns = sys_now_ns();
	p->look_ns = sys_look_ns();
	*out = p;
	return 0;
fail:
	pool_free(p);
	return r;
}

/* Wakes every worker whether or not it announced itself (stop). */
static void wake_all(struct arena_pool *p)
{
	unsigned i;

	for (i = 0; i < p->nworkers; i++) {
		struct chan_worker *w = chan_w(&p->c, i);

		atomic_fetch_add_explicit(&w->prod.wake_seq, 1, memory_order_release);
		sys_futex_wake((uint32_t *)&w->prod.wake_seq, 1, 0);
	}
}

static int all_gone(struct arena_pool *p)
{
	unsigned i;

	/* A slot whose restart is pending still has work to finish. */
	for (i = 0; i < p->nworkers; i++)
		if (p->w[i].running || p->w[i].restart_due)
			return 0;
	return 1;
}

int arena_pool_stop(struct arena_pool *p, uint32_t flags, int64_t timeout_ns)
{
	uint64_t deadline = timeout_ns > 0 ? sys_now_ns() + (uint64_t)timeout_ns : 0;
	int r = 0;

	if (!p || (flags & ~ARENA_STOP_CANCEL))
		return -EINVAL;
	pthread_mutex_lock(&p->prod_lock);
	p->stopped = 1;
	pthread_mutex_unlock(&p->prod_lock);
	/* A producer waiting for room gets -EPIPE now, not when the drain
	 * is over (a delivery would wake it sooner only while some other
	 * thread reaps). */
	pool_wake_producers(p);
	pthread_mutex_lock(&p->cons_lock);
	if (flags & ARENA_STOP_CANCEL)
		p->stopping_cancel = 1;
	/* release: every sq_tail published before this store is visible to a
	 * worker that reads stop with acquire (worker.c stop_state). */
	if (atomic_load_explicit(&p->c.g->ctl.stop, memory_order_relaxed) != CHAN_STOP_CANCEL)
		atomic_store_explicit(&p->c.g->ctl.stop,
				      (flags & ARENA_STOP_CANCEL) ? CHAN_STOP_CANCEL
								  : CHAN_STOP_DRAIN,
				      memory_order_release);
	wake_all(p);
	for (;;) {
		struct pollfd pfd[CHAN_MAX_WORKERS];
		unsigned i, n = 0;
		int64_t slice = 100 * 1000 * 1000;

		pool_supervise(p, 1);
		if (atomic_load_explicit(&p->restarts_pending, memory_order_relaxed))
			slice = 5 * 1000 * 1000; /* retry failed forks soon */
		if (p->no_pidfd)
			slice = (int64_t)SUPERVISE_TICK_NS; /* nothing to poll(): look */
		if (all_gone(p))
			break;
		for (i = 0; i < p->nworkers; i++)
			if (p->w[i].pidfd >= 0) {
				pfd[n].fd = p->w[i].pidfd;
				pfd[n++].events = POLLIN;
			}
		if (timeout_ns == 0 || (deadline && sys_now_ns() >= deadline)) {
			r = -ETIMEDOUT;
			break;
		}
		if (deadline && (int64_t)(deadline - sys_now_ns()) < slice)
			slice = (int64_t)(deadline - sys_now_ns());
		/* Sleep without the lock: reapers must go on releasing space. */
		pthread_mutex_unlock(&p->cons_lock);
		n = poll(pfd, n, (int)(slice / 1000000) + 1) < 0 && errno == EINTR;
		pthread_mutex_lock(&p->cons_lock);
		/* A signal handler ran: the caller may want to act on it (and
		 * call stop again to go on waiting). */
		if (n && (p->o.flags & ARENA_POOL_EINTR)) {
			r = -EINTR;
			break;
		}
	}
	if (r == 0) {
		p->workers_gone = 1;
		/* No worker will start again: no child is left after a stop. */
		fsrv_stop(&p->fs);
	}
	pthread_mutex_unlock(&p->cons_lock);
	/* A reaper waiting for completions that will never come: wake it. */
	pool_wake_reapers(p);
	pool_wake_producers(p);
	return r;
}

void arena_pool_destroy(struct arena_pool *p)
{
	if (!p)
		return;
	if (!p->workers_gone && arena_pool_stop(p, ARENA_STOP_CANCEL, 2000000000ll) < 0) {
		/* A worker stuck in its task: kill what is left. */
		pthread_mutex_lock(&p->cons_lock);
		for (unsigned i = 0; i < p->nworkers; i++)
			kill_and_reap(p, i);
		pthread_mutex_unlock(&p->cons_lock);
	}
	pool_free(p);
}

int arena_pool_stats(const struct arena_pool *p, struct arena_pool_stats *st)
{
	unsigned i;

	if (!p || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
#define LD(f) atomic_load_explicit(&p->f, memory_order_relaxed)
	st->submitted = LD(st_submitted);
	st->reaped = LD(st_reaped);
	st->completed = LD(st_completed);
	st->producer_waits = LD(st_prod_waits);
	st->producer_wakes = LD(st_prod_wakes);
	st->consumer_waits = LD(st_cons_waits);
	st->consumer_wakes = LD(st_cons_wakes);
	st->wakes_skipped = LD(st_skipped);
	st->producer_wait_ns = LD(st_prod_wait_ns);
	st->consumer_wait_ns = LD(st_cons_wait_ns);
	st->crashes = LD(st_crashes);
	st->tasks_rerun = LD(st_rerun);
	st->tasks_failed = LD(st_failed);
	st->workers_restarted = LD(st_restarted);
	st->hangs_killed = LD(st_hangs);
#undef LD
	st->workers = p->nworkers;
	st->depth = p->depth;
	st->uring = p->u.ok;
	for (i = 0; i < p->nworkers; i++) {
		struct chan_worker *w = chan_w(&p->c, i);

		/* Worker-written counters: informational, any value is safe. */
		st->worker_waits += atomic_load_explicit(&w->rec.waits, memory_order_relaxed);
		st->worker_wakes += atomic_load_explicit(&w->rec.wakes, memory_order_relaxed);
		st->worker_wait_ns += atomic_load_explicit(&w->rec.wait_ns, memory_order_relaxed);
		if (i < 64)
			st->tasks_per_worker[i] =
				atomic_load_explicit(&w->rec.tasks_done, memory_order_relaxed);
	}
	return 0;
}

int arena_pool_worker_pid(const struct arena_pool *p, unsigned i)
{
	pthread_mutex_t *lock;
	int r;

	if (!p || i >= p->nworkers)
		return -ERANGE;
	/* The supervisor changes pid and pidfd under cons_lock (never held
	 * while sleeping); the lock is private state, not the pool's value. */
	lock = (pthread_mutex_t *)&p->cons_lock;
	pthread_mutex_lock(lock);
	/* pid 0: it was gone before its pid could be read (SIGCHLD ignored). */
	r = p->w[i].running && p->w[i].pid > 0 ? p->w[i].pid : -ESRCH;
	pthread_mutex_unlock(lock);
	return r;
}

int arena_pool_channel_fd(const struct arena_pool *p)
{
	return p ? p->chan_fd : -EINVAL;
}

/* ---- exec'd workers ---------------------------------------------------- */

int arena_worker_main(arena_task_fn task, void *arg)
{
	const char *fds = getenv("ARENA_FD"), *wid = getenv("ARENA_WORKER");
	struct arena *a = NULL;
	struct worker wk;
	struct chan c;
	int afd, cfd, wfd, ppid, r;
	unsigned id;

	if (!fds || !wid || sscanf(fds, "%d,%d", &afd, &cfd) != 2 ||
	    sscanf(wid, "%u,%d,%d", &id, &ppid, &wfd) != 3)
		return -EINVAL;
	/* The reapers' wake pipe: only ever written to, so a write end is
	 * all it must be (a wrong fd would take our bytes, not give any). */
	r = sys_check_pipe_w(wfd);
	if (r < 0)
		return r;
	r = worker_guard_parent((uint32_t)ppid);
	if (r < 0)
		return r;
	r = arena_open_fd(&a, afd, 0);
	if (r < 0)
		return r;
	memset(&c, 0, sizeof(c));
	r = chan_map(&c, cfd, 1);
	if (r == 0 && (id >= c.workers || c.g->hdr.arena_size != arena_size(a)))
		r = -EBADMSG;
	if (r < 0) {
		chan_unmap(&c);
		arena_close(a);
		return r;
	}
	/* The fds were inherited only for this: the mappings stay. */
	sys_close(afd);
	sys_close(cfd);
	memset(&wk, 0, sizeof(wk));
	wk.c = &c;
	wk.w = chan_w(&c, id);
	wk.a = a;
	wk.fn = task ? task : arena_task_get_item;
	wk.arg = arg;
	wk.id = id;
	wk.parent_pid = (uint32_t)ppid;
	/* Inherited for the worker loop only: not for the task's children. */
	sys_set_cloexec(wfd, 1);
	wk.wake_fd = wfd;
	r = worker_run(&wk);
	chan_unmap(&c);
	arena_close(a);
	sys_close(wfd);
	return r;
}
