/* SPDX-License-Identifier: MIT */
/* The worker side of the channel: the loop every worker process runs. */
#ifndef ARENA_WORKER_H
#define ARENA_WORKER_H

#include "arena.h"
#include "channel.h"

struct worker {
	const struct chan *c;
	struct chan_worker *w;
	const struct arena *a;
	arena_task_fn fn;
	void *arg;
	unsigned id;
	uint32_t parent_pid;
	int wake_fd;           /* the reapers' wake pipe (pool_internal.h wake_r) */
	/* Private copies of the worker-owned indices: never read back. */
	uint32_t head, cq_tail;
	uint32_t cq_head;      /* last value of cons.cq_head seen */
	uint64_t res_pos;      /* next free result byte (free-running) */
	uint64_t res_head;     /* last value of cons.res_head seen */
	uint64_t res_big;      /* the largest result we published */
	uint64_t wrap_next;    /* res_pos at which wrap_early looks again */
	uint64_t tasks_done, waits, wakes, wait_ns, task_ns;
	uint64_t cq_gen;       /* consumer announcement last woken (evc.h) */
	uint32_t unsignaled;   /* completions posted since the last wake check */
	uint64_t left_at;      /* when we last left a reaper's CPU */
	int leave_off;         /* a move failed: no more (leave_reaper_cpu) */
	uint64_t t_last;       /* last clock read in this run of tasks, or 0 */
	uint32_t n_since;      /* tasks finished since t_last */
	uint64_t tsc_last;     /* cycle counter at t_last */
	uint64_t tsc_prev;     /* cycle counter at the previous task's end */
	uint64_t slow_ticks;   /* cycles in PRECISE_NS; 0 = not known yet */
	uint64_t idle_since;   /* when the queue ran empty, 0 while busy */
	uint64_t gap_ema;      /* recent time from an empty queue to new tasks */
	uint64_t last_dt;      /* the latest sample (a task, or a stride's mean) */
	uint32_t load;         /* CHAN_LOAD_* we last published; hot.load
				* starts as ours, CHAN_LOAD_UNKNOWN (0): a new
				* channel, or the parent's reset for a
				* replacement (supervise.c prepare_restart) */
	uint64_t sleeps;       /* waits that slept (not -EAGAIN): look_load */
	uint64_t moves;        /* leave_reaper_cpu moves (they block briefly) */
	uint64_t look_next;    /* when look_load looks next (0: at once) */
	int look_on;           /* look_nvcsw and look_own hold a look */
	uint64_t look_nvcsw, look_own; /* at the last look: voluntary switches,
				* and our own sleeps and moves (look_load) */
	struct chan_sqe task;  /* the task in hand: written and read by kill-point
				* builds only (lib/killpoint.h) */
};

/* Runs until stop; returns the exit code for _exit(). Never returns in the
 * middle of a task. */
ARENA_HIDDEN int worker_run(struct worker *wk);

/* Sets up the parent-death guard (forkserver.c). */
ARENA_HIDDEN int worker_guard_parent(uint32_t parent_pid);

#endif
