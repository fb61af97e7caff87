/* SPDX-License-Identifier: MIT */
/*
 * The parent's private side of a pool.  Three process-private locks (never in
 * shared memory, so no dead process can hold one):
 *   prod_lock  the producer side: SQ tails, dispatch state, stop flag.
 *   cons_lock  the consumer side: CQ heads, completion buffer, supervision.
 *   rel_lock   result-space accounting (release may come from any thread).
 * Lock order: cons_lock, then prod_lock, then rel_lock.  No lock is held
 * while sleeping.
 */
#ifndef ARENA_POOL_INTERNAL_H
#define ARENA_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arena_internal.h"
#include "channel.h"
#include "forkserver.h"
#include "uring.h"

struct pending;

#define WAKE_COST_NS 30000u     /* what waking a sleeping worker costs */
#define AWAKE_GRACE_NS 50000u   /* a worker we just woke counts as awake */
#define OVERSUBSCRIBE_NS 1000000u /* queued work that wakes more workers than CPUs */
#define SYNC_WAKE_TASK_NS 5000u /* tasks at least this long: sleepers use their
				   wake pipes (pool_tasks_long) */
#define COALESCE_N 32u          /* reap.c gather(): the least batch worth waiting
				   for, a quarter of what is in flight */
#define SUPERVISE_TICK_NS 10000000ull /* fallback: pidfd (or waitid) poll period */
#define IDLE_LOOKS 8            /* a reaper with nothing in flight looks 8x less often */
#define DEFAULT_SPIN_NS 50000u  /* the most a worker spins (worker.c spin_budget) */
#define MAX_START_FAILS 5       /* then the worker slot is given up */
#define RESTART_BACKOFF_MIN_NS 1000000ull    /* a failed fork is retried after 1 ms, */
#define RESTART_BACKOFF_MAX_NS 1000000000ull /* doubling up to 1 s, for ever */

/* Result space handed out by one worker, in allocation order. */
struct res_fifo {
	uint64_t *end;          /* end position of each allocation; bit 63: released */
	uint64_t head, tail;    /* absolute allocation numbers */
	uint64_t cap;           /* power of two */
};

/* Per worker, the consumer's side (cons_lock unless said otherwise). */
struct pool_worker {
	pid_t pid;              /* 0: gone before it could be watched */
	int pidfd;              /* -1 when not running, or no pidfds (no_pidfd) */
	int running;            /* started and not yet reaped */
	uint32_t gen;           /* incarnation, for stale uring events */
	uint32_t cq_head;
	/* Our record of its tasks (see struct pool_wprod, recs): the oldest
	 * one not yet completed.  Its completions must come in this order. */
	uint32_t rec_head;
	int hang_killed;
	uint64_t gen_done;      /* completions from this incarnation */
	uint32_t start_fails;   /* incarnations in a row that failed at start */
	int exited_clean;
	int watch_pending;      /* its pidfd is not yet watched by the io_uring */
	uint64_t restart_due;   /* a failed start is retried then; 0 = none */
	uint64_t restart_backoff;
	uint64_t hang_seq;      /* seq of the task a deadline kill was for */
	/* rel_lock */
	uint64_t res_end;       /* end of the last allocation read (E) */
	uint64_t res_head;      /* everything before is released (F) */
	uint64_t space_gen;     /* its space announcement last woken */
	struct res_fifo fifo;
};

/* Per worker, the producer's side (prod_lock); a separate array, so the
 * producer and the consumer threads never write one cache line. */
struct pool_wprod {
	uint32_t sq_tail;
	/*
	 * The parent's own record of every task given to this worker, by SQ
	 * position (the worker runs its SQ in order): positions [rec_head,
	 * sq_tail) are in flight on it.  Written here (push_to, at sq_tail
	 * only) before the channel's SQ slot; the only source of what is
	 * delivered (seq, index, user_data) and of what is run again after a
	 * death: the channel's copy is the worker's to scribble on.  A slot
	 * is not reused while in flight: its tasks count in `inflight` (<=
	 * depth <= SQ size).  An entry is a run of tasks (channel.h): the
	 * consumer advances the oldest one, recs[rec_head], task by task as
	 * they complete (reap.c pool_record_done, cons_lock), so at small
	 * depths the two threads may write one line of this array.
	 */
	struct chan_sqe *recs;
	/* Tasks pushed so far, and that count when the entry at each SQ
	 * position was pushed: the tasks queued behind a worker's sq_head,
	 * for dispatch (submit.c snapshot; runs make slots fewer). */
	uint64_t pushed;
	uint64_t *pushed_at;
	/* sq_tail as last published (release, after the records are written):
	 * the consumer reads records only below it. */
	_Atomic uint32_t pub_tail;
	int alive;              /* takes tasks */
	uint64_t woken_at;
	uint64_t wake_gen;      /* its task announcement last woken (evc.h) */
};

struct cq_slot {
	struct arena_cqe cqe;
	int valid;
};

/*
 * Fields are grouped by the thread that writes them, each group on cache
 * lines of its own: the producer and the consumer run on different CPUs and
 * a line both write would move between them on every task.
 */
struct arena_pool {
	/* Set at creation, read-only afterwards. */
	struct chan c;
	int chan_fd;
	/*
	 * The reapers' wake pipe: a worker that wakes a sleeping reaper writes
	 * a byte instead of FUTEX_WAKE, and the reaper sleeps in poll() on it.
	 * A pipe write is a "sync" wake-up: the kernel puts the reaper on the
	 * waker's CPU, whose worker is about to wait, instead of the CPU it last
	 * ran on, where the other worker computes (bench/handoff: 4.2-4.5 us of
	 * reaper CPU a wake-up against 16.5-16.9, and the other worker's CPU
	 * spared).  Forked workers inherit the write end from the fork server,
	 * exec'd ones find it in ARENA_WORKER (its third field).
	 */
	int wake_r, wake_w;
	/*
	 * The producers' wake pipe, the same for a producer that waits for room
	 * (submit.c wait_space): the thread that reaps wakes it, and a pipe
	 * write puts it on the reaper's CPU, not on a worker's.  One producer
	 * at a time sleeps on it (space_pipe_busy), announced with weight 1;
	 * others sleep on the private futex with weight 2 (evc.h evc_wake_fd).
	 */
	int space_r, space_w;
	const struct arena *a;
	struct arena_pool_opts o;
	char *worker_path;
	char **worker_argv;     /* deep copy of o.worker_argv, or NULL */
	int *keep_fds;          /* copy of o.keep_fds */
	uint32_t nkeep_fds;
	uint32_t index_base;    /* test knob: first ring index */
	uint32_t nworkers, depth, max_attempts, ordered;
	uint32_t space_need;    /* free slots that wake a sleeping producer */
	/* 1: a producer that waits for room sleeps on the wake pipe (space_r)
	 * however short the tasks, where space_need is 3/4 of the depth (fewer
	 * workers than CPUs): the pipe's sync wake-up puts it on its waker's
	 * CPU, the consumer's, where the futex's put it back on the CPU it
	 * last ran on, a worker's, and it preempted that worker on every
	 * wake-up for as long as the pool ran (submit.c wait_space). */
	int space_pipe_always;
	uint32_t ncpu;          /* the creator's CPUs (sys_cpus; our copy of
				 * ctl.ncpu) */
	pid_t self;
	pid_t creator_tid;
	/* No pidfds (the kernel, a seccomp profile or valgrind refuses them,
	 * or a test asked): workers are known by pid, their deaths found by
	 * waitid(P_PID, WNOWAIT) every SUPERVISE_TICK_NS, signals sent with
	 * kill() while they are our unreaped children (supervise.c). */
	int no_pidfd;
	struct pool_worker *w;
	struct pool_wprod *wp;
	struct chan_sqe *recs_all;  /* every worker's record (pool_wprod.recs) */
	uint64_t *pushed_all;       /* and pool_wprod.pushed_at */

	/* Producer side. */
	_Alignas(CACHELINE) pthread_mutex_t prod_lock;
	_Atomic int stopped;    /* set under prod_lock: submissions refused */
	struct pending *pend;   /* a sleeping producer's batch (submit.c) */
	/* The thread that called submit last and took room itself (a hint for
	 * reap.c gather; a reaper taking for a producer does not count). */
	_Atomic uintptr_t last_submitter;
	_Atomic uint64_t next_seq;
	_Atomic uint64_t st_submitted, st_prod_wakes, st_skipped, st_prod_waits,
		st_prod_wait_ns;

	/* Written by both sides, rarely or by design. */
	_Alignas(CACHELINE) _Atomic int failed; /* 0, or the error every call returns */
	/* Tasks in flight: submitted and not yet reaped (the seed's Queue). */
	_Atomic uint32_t inflight;
	_Atomic uint32_t space_seq;     /* producers sleep here (evc.h) */
	_Atomic uint64_t space_ann;
	_Atomic uint32_t space_pipe_busy; /* a producer sleeps on space_r */
	_Atomic int pend_offered; /* pend is set (a hint: reapers check it
				     under prod_lock) */
	/* The longest recent task time of a worker (submit.c snapshot), for
	 * pool_tasks_long(). */
	_Atomic uint64_t task_ns_hint;

	/* Consumer side. */
	_Alignas(CACHELINE) pthread_mutex_t cons_lock, rel_lock;
	int stopping_cancel;    /* cons_lock */
	int workers_gone;       /* cons_lock: stop finished */
	/* Completions read from the CQs, not yet delivered (cons_lock). */
	struct cq_slot *cbuf;
	uint32_t cmask;
	uint64_t cnext;         /* ordered: next seq to deliver; else FIFO head */
	uint64_t ctail;         /* unordered FIFO tail */
	uint64_t ncompleted;    /* completions accepted, real or synthetic */
	/* While a reaper harvests for itself (reap.c harvest_all): its
	 * caller's array, filled directly while nothing waits in cbuf. */
	struct arena_cqe *sink;
	unsigned sink_n, sink_max;
	uint32_t rr;            /* harvest start, for fairness */
	uint64_t space_gen;     /* producer announcement last woken */
	uint64_t cq_ann;        /* reapers' announcement word, our copy (evc.h) */
	struct sup_uring u;
	int uring_busy;         /* cons_lock: a reaper sleeps in the io_uring
	                         * and/or on the wake pipe; it alone touches
	                         * them until it takes the lock */
	/* Written under cons_lock, read anywhere (a hint for sleep ticks). */
	_Atomic uint32_t watches_pending; /* workers with watch_pending */
	_Atomic uint32_t restarts_pending; /* workers with restart_due */
	/* The fork server (cons_lock, and prod_lock when restarting). */
	struct fsrv fs;
	uint32_t test_fail_starts, test_fail_watches, test_runs;
	void (*test_spawn_race)(void *arg, int received); /* pool_test.h spawn_race */
	void *test_spawn_race_arg;
	int started_once;
	uint64_t last_poll_ns;
	uint64_t look_ns;          /* sys_look_ns(): a sleeping reaper looks this often */
	_Atomic uint64_t st_reaped, st_completed, st_cons_waits, st_cons_wakes,
		st_cons_wait_ns, st_crashes, st_rerun, st_failed, st_restarted, st_hangs;
};

/* Counters written by many threads (atomic add). */
#define STAT_ADD(p, f, v) atomic_fetch_add_explicit(&(p)->f, (v), memory_order_relaxed)
/* Counters with one writer at a time (under its side's lock): a plain add,
 * no locked instruction; readers (arena_pool_stats) may see a stale value. */
#define STAT_ADD1(p, f, v)                                                      \
	atomic_store_explicit(&(p)->f,                                          \
			      atomic_load_explicit(&(p)->f, memory_order_relaxed) + (v), \
			      memory_order_relaxed)

/*
 * Whether a waiting producer (submit.c wait_space) and the reaper that owns
 * the wake pipe (reap.c) sleep on their wake pipes, else on the futex: only
 * while tasks are long (the longest recent task time, submit.c snapshot, at
 * least SYNC_WAKE_TASK_NS).  A pipe's sync wake-up runs the sleeper on its
 * waker's CPU, which spares a computing worker's CPU; with tiny tasks the
 * other CPU holds at most an idle worker, and FUTEX_WAKE lets the sleeper run
 * there beside its waker instead of after it.  Measured (ring-bench
 * --workers 2,5 --depths 10, alternating runs, us a task):
 *  - the producer, two-thread rows, medians of 6: 20 us tasks 12.7-12.8
 *    with this rule, 12.6-12.8 always on the pipe, 13.2-13.5 always on the
 *    futex; tiny tasks 1.7-2.0, 2.3-2.4, 1.9-2.2;
 *  - the reaper, 5 runs: tiny tasks, two threads, 5 workers, 1.19-1.34 on
 *    the futex against 1.67-2.06 on the pipe; one thread, 2 workers,
 *    0.20-0.23 against 0.26-0.56; 20 us tasks, one thread, 11.3-11.8 on the
 *    pipe against 12.0-12.5.
 */
static inline int pool_tasks_long(struct arena_pool *p)
{
	/* relaxed: a hint; either choice is correct (evc.h evc_wake_fd). */
	return atomic_load_explicit(&p->task_ns_hint, memory_order_relaxed) >=
	       SYNC_WAKE_TASK_NS;
}

/* pool.c */
ARENA_HIDDEN int pool_start_worker(struct arena_pool *p, unsigned i);
ARENA_HIDDEN void pool_fail(struct arena_pool *p, int err);
/* Wakes every reaper asleep (the futex and the wake pipe); after the caller
 * made what they wait for visible.  Any thread, no lock needed. */
ARENA_HIDDEN void pool_wake_reapers(struct arena_pool *p);
/* Bumps space_seq, FUTEX_WAKEs and writes the producers' pipe: for changes
 * every sleeping producer must see (failure, stop). */
ARENA_HIDDEN void pool_wake_producers(struct arena_pool *p);
/* reap.c */
ARENA_HIDDEN int pool_harvest(struct arena_pool *p, unsigned i);
/* The first task of rec only; _run: every task of the run rec. */
ARENA_HIDDEN void pool_complete_synthetic(struct arena_pool *p, const struct chan_sqe *rec,
					  int status);
ARENA_HIDDEN void pool_complete_synthetic_run(struct arena_pool *p, const struct chan_sqe *rec,
					      int status);
ARENA_HIDDEN void pool_record_done(struct arena_pool *p, unsigned i, struct chan_sqe *rec);
ARENA_HIDDEN int pool_records_init(struct arena_pool *p, uint32_t index_base);
ARENA_HIDDEN void pool_records_free(struct arena_pool *p);
ARENA_HIDDEN int pool_fifo_init(struct res_fifo *f);
/* supervise.c */
ARENA_HIDDEN int pool_supervise(struct arena_pool *p, int force_poll);
ARENA_HIDDEN int pool_handle_exit(struct arena_pool *p, unsigned i);
ARENA_HIDDEN void pool_unseen_exit(struct arena_pool *p, unsigned i);
ARENA_HIDDEN int pool_arm_watches(struct arena_pool *p);
ARENA_HIDDEN int pool_signal_worker(struct arena_pool *p, unsigned i, int sig);
ARENA_HIDDEN int pool_consumer_sleep(struct arena_pool *p, uint32_t v, int64_t timeout_ns,
				     int use_uring, int use_pipe);
/* submit.c */
ARENA_HIDDEN int pool_push_locked(struct arena_pool *p, const struct chan_sqe *sqe,
				  uint64_t *touched);
ARENA_HIDDEN void pool_publish_locked(struct arena_pool *p, uint64_t touched);
/* A reaper that freed room takes from a sleeping producer's batch while
 * more of it is left than the room (submit.c struct pending).  Returns 1
 * when sleeping producers should be woken: room is left (the rest of that
 * batch fits it), or the batch cannot go on.  cons_lock may be held; takes
 * prod_lock. */
ARENA_HIDDEN int pool_take_pending(struct arena_pool *p);

#endif
